"""Models by name with keyword arguments: what training builds and what a checkpoint rebuilds are the same call.

A training run saves ``{"model": name, "model_args": {...}}`` beside the
weights; :func:`create_model` with those keyword arguments rebuilds the module,
so a reordered constructor parameter can never silently swap two settings.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Make a model constructor available to :func:`create_model` under ``name``."""

    def wrap(fn):
        MODELS[name] = fn
        return fn

    return wrap


def create_model(name: str, **model_args) -> nn.Module:
    """Build the registered model ``name`` from keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name](**model_args)
