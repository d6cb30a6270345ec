"""ONNX Runtime backend: CPU by default; CUDA/TensorRT execution providers where the install has them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from skyedge.precisions import ort_session

log = logging.getLogger(__name__)


class OnnxRuntimeBackend:
    """One InferenceSession; ``infer`` takes and returns name -> array with the batch axis first."""

    name = "onnxruntime"

    def __init__(self, model: Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        usable = [p for p in wanted if p in available]
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning("ONNX Runtime providers not available here, skipped: %s", ", ".join(missing))
        if "CPUExecutionProvider" not in usable:
            usable.append("CPUExecutionProvider")
        self.session = ort_session(model, threads, usable)
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.model = Path(model)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch."""
        outs = self.session.run(self.output_names, {k: inputs[k] for k in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))

    def close(self) -> None:
        """Release the session."""
        self.session = None
