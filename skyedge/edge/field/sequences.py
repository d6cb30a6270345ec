"""Sequence inputs for a whole field at once: stamps cut for thousands of objects, and their carried state.

* stamps for thousands of objects from one frame by fancy indexing
  (:func:`skyedge.preprocess.cut_stamps`), not a Python loop per object;
* :func:`epoch_inputs`: model inputs for many objects at one epoch (the step
  graph's T = 1), each with its own time since its previous epoch.
* :func:`history_inputs`: model inputs for objects found this epoch, over the
  recent frames kept and this one (forced photometry on stamps), so their
  histories start before detection.
* :class:`StateStore`: each object's recurrent state between epochs, by row;
  only the inference thread reads and writes it.
"""

from __future__ import annotations

import numpy as np

from skyedge.dataset_inputs import RAW_CONDITIONS
from skyedge.edge.field.align import Alignment
from skyedge.model_card import SequenceSpec, StepGraph
from skyedge.preprocess import condition_features, cut_stamps, normalised_conditions, prepare_stamps


def _raw(conditions: dict) -> dict[str, float]:
    return {k: conditions[k] for k in RAW_CONDITIONS}


def epoch_inputs(
    image: np.ndarray,
    conditions: dict,
    alignment: Alignment,
    x: np.ndarray,
    y: np.ndarray,
    last_mjd: np.ndarray,
    spec: SequenceSpec,
    flux_reference: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N, 1, 1, S, S) and conditions (N, 1, K) for N objects at one epoch (positions on the reference grid,
    ``alignment`` what maps the frame onto it); ``last_mjd`` NaN for an object's first epoch (time since the
    previous epoch 0, as at the start of a training sequence); ``flux_reference`` the field's (zero point, pixel noise)
    that a noise-scaled model's stamps are measured in."""
    cut = cut_stamps(image, *alignment.to_frame(x, y), spec.stamp_size)
    stamps = prepare_stamps(cut, conditions["zero_point"], spec, reference=flux_reference)
    dt = np.where(np.isnan(last_mjd), 0.0, conditions["mjd"] - np.nan_to_num(last_mjd))
    features = normalised_conditions(condition_features(_raw(conditions), spec.conditions, dt_days=dt), spec)
    # Features that do not depend on the object (all but log_dt) come back once for the epoch: one row each.
    features = np.broadcast_to(features, (len(x), features.shape[-1]))
    return stamps[:, None, None], features[:, None].astype(np.float32, copy=True)


def history_inputs(
    frames: list[tuple[np.ndarray, dict, Alignment]],
    x: np.ndarray,
    y: np.ndarray,
    spec: SequenceSpec,
    flux_reference: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N, T, 1, S, S) and conditions (N, T, K) for N objects over T frames ``(image, conditions, alignment)``."""
    stamps = np.stack(
        [
            prepare_stamps(
                cut_stamps(image, *alignment.to_frame(x, y), spec.stamp_size),
                cond["zero_point"],
                spec,
                reference=flux_reference,
            )
            for image, cond, alignment in frames
        ],
        axis=1,
    )
    raw = {k: np.array([cond[k] for _, cond, _ in frames]) for k in RAW_CONDITIONS}
    features = normalised_conditions(condition_features(raw, spec.conditions), spec)
    return stamps[:, :, None], np.broadcast_to(features, (len(x), *features.shape)).copy()


class StateStore:
    """The step graph's state per object row, grown as rows are added (inference thread only)."""

    def __init__(self, step: StepGraph, capacity: int = 1024):
        self.step = step
        self.specs = {t.name: tuple(t.shape[1:]) for t in step.inputs if t.role == "state"}
        self.arrays = {name: np.zeros((capacity, *shape), np.float32) for name, shape in self.specs.items()}

    def gather(self, rows: np.ndarray, fresh: np.ndarray) -> dict[str, np.ndarray]:
        """State inputs for ``rows``; zero where ``fresh`` (an object's first call)."""
        self._fit(int(rows.max()) + 1 if len(rows) else 0)
        out = {}
        for name, array in self.arrays.items():
            got = array[rows]
            got[fresh] = 0.0
            out[name] = got
        return out

    def scatter(self, rows: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """Keep the state after this call for ``rows``."""
        self._fit(int(rows.max()) + 1 if len(rows) else 0)
        for name, out in self.step.state.items():
            self.arrays[name][rows] = outputs[out]

    def _fit(self, n: int) -> None:
        have = len(next(iter(self.arrays.values())))
        if n <= have:
            return
        size = max(n, 2 * have)
        for name, array in self.arrays.items():
            grown = np.zeros((size, *array.shape[1:]), np.float32)
            grown[:have] = array
            self.arrays[name] = grown

    @property
    def nbytes(self) -> int:
        """Memory held."""
        return sum(a.nbytes for a in self.arrays.values())
