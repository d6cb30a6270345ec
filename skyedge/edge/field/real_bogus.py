"""The learnt real/bogus stage: a small CNN judges each new residual that the physics (:mod:`.vetting`) let pass,
from its triplet (the frame on the reference grid, the flux-matched template, their difference), as braai and
ZTF's real/bogus network do.

Trained (``skyedge train-real-bogus``) on residuals harvested by ``skyedge field-harvest``: the simulator's
artefacts and variable sources, and real frames' residuals (where no source can be, every one is bogus; sources
planted by ``skyedge field-inject`` are the real ones). The package ships one such model
(``data/real_bogus.onnx`` and its card ``real_bogus.json``: what it was trained on, its threshold, its scores).

Stamps are measured in the frame's pixel noise and compressed by asinh, so the model sees the same numbers
whatever the camera's gain or zero point. Off-grid pixels are 0.

Source thread only (owned by the field's tracker).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from skyedge.errors import SkyedgeError

STAMP = 15  # px: a triplet's side (the seeing disc of a small telescope, with room for a misregistration's lobes)
SOFTENING = 3.0  # noise sigmas: asinh is linear below, logarithmic above
BUILTIN = "builtin"


def triplets(science: np.ndarray, template: np.ndarray, difference: np.ndarray, x, y, noise: float) -> np.ndarray:
    """(N, 3, STAMP, STAMP) float32 stamps about reference-grid positions (``x``, ``y``): frame, template and
    difference, in ``noise`` units, asinh-compressed; NaN and off-grid pixels 0."""
    half = STAMP // 2
    ix = np.rint(np.asarray(x, float)).astype(np.int64)
    iy = np.rint(np.asarray(y, float)).astype(np.int64)
    offsets = np.arange(-half, half + 1)
    rows = iy[:, None, None] + offsets[None, :, None]
    cols = ix[:, None, None] + offsets[None, None, :]
    h, w = difference.shape
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    rows, cols = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    scale = SOFTENING * (noise if noise > 0 else 1.0)
    out = np.zeros((len(ix), 3, STAMP, STAMP), np.float32)
    for c, image in enumerate((science, template, difference)):
        cut = np.where(inside, image[rows, cols], 0.0)
        out[:, c] = np.arcsinh(np.nan_to_num(cut) / scale)
    return out


class RealBogusModel:
    """An ONNX real/bogus network and its card: ``p_real(stamps)`` and the ``threshold`` below which a residual
    is bogus."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        card_path = path.with_suffix(".json")
        if not path.is_file() or not card_path.is_file():
            raise SkyedgeError(
                f"real_bogus_model: {path} (and its card {card_path.name}) not found; 'builtin' is the packaged one"
            )
        self.card = json.loads(card_path.read_text())
        if self.card.get("stamp") != STAMP:
            raise SkyedgeError(f"real_bogus_model: {card_path} is for {self.card.get('stamp')} px stamps, not {STAMP}")
        self.threshold = float(self.card["threshold"])
        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a few stamps per epoch: threads would cost more than they give
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def p_real(self, stamps: np.ndarray) -> np.ndarray:
        """Probability that each triplet holds a real source."""
        if len(stamps) == 0:
            return np.zeros(0, np.float32)
        logits = self.session.run(None, {self.input: np.ascontiguousarray(stamps, np.float32)})[0]
        return (1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64).reshape(-1)))).astype(np.float32)


def builtin_path() -> Path:
    """The packaged model."""
    return Path(str(resources.files("skyedge.edge.field").joinpath("data").joinpath("real_bogus.onnx")))


def load(setting: str | None) -> RealBogusModel | None:
    """The model a field's ``real_bogus_model`` names: ``builtin``, a path to an .onnx with its .json card, or none."""
    if setting is None:
        return None
    return RealBogusModel(builtin_path() if setting == BUILTIN else Path(setting).expanduser())
