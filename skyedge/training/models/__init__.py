"""PyTorch models: frame classifier (backbone + metric head) and recurrent sequence classifiers.

Importing this package registers every model with :func:`~skyedge.training.models.registry.create_model`.
"""

from skyedge.training.models import frame, sequence  # noqa: F401 - registers the models
from skyedge.training.models.registry import create_model

__all__ = ["create_model"]
