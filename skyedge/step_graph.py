"""Running a sequence model's step graph: zero states for new histories, and whole histories a chunk at a time.

The step graph (the card's ``step`` block) takes the next epochs of each history
plus the state after the earlier ones and returns the probabilities at those
epochs and the state after them. Export checks it against the full graph with
:func:`run_chained`, calibration collects the inputs it sees the same way, the
edge carries the state between epochs, and the bench compares the two graphs.
Any callable ``name -> array`` in, ``name -> array`` out runs it (an ONNX
Runtime session's wrapper or an edge backend's ``infer``). numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from skyedge.model_card import StepGraph

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def zero_state(step: StepGraph, n: int) -> dict[str, np.ndarray]:
    """The state before an object's first epoch, for ``n`` objects."""
    return {
        t.name: np.zeros((n, *t.shape[1:]), dtype=np.float32) for t in step.inputs if t.role == "state"
    }


def carry(step: StepGraph, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state inputs of the next call, from one call's outputs."""
    return {name: outputs[out] for name, out in step.state.items()}


def run_chained(
    run: Run,
    step: StepGraph,
    inputs: dict[str, np.ndarray],
    chunk: int = 1,
    collect: list | None = None,
) -> np.ndarray:
    """Probabilities (N, T, C) for whole histories ``inputs`` (the full graph's stamps/conditions), run ``chunk``
    epochs per call with the state carried between calls; every call's inputs are appended to ``collect``."""
    stamps = step.input("stamps").name
    n, t = inputs[stamps].shape[:2]
    state = zero_state(step, n)
    probabilities = next(o.name for o in step.outputs if o.role == "probabilities")
    parts = []
    for start in range(0, t, chunk):
        feed = {k: np.ascontiguousarray(v[:, start : start + chunk]) for k, v in inputs.items()} | state
        if collect is not None:
            collect.append(feed)
        outputs = run(feed)
        parts.append(outputs[probabilities])
        state = carry(step, outputs)
    return np.concatenate(parts, axis=1)


def session_runner(session) -> Run:
    """An ONNX Runtime session as a :data:`Run`."""
    names = [o.name for o in session.get_outputs()]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feed), strict=True))

    return run
