"""A backend that answers from a script instead of a model (``backend.kind: scripted``).

For rehearsing what observatory control does with skyedge's answers before a
model is trained (roof automations, dashboards, the Alpaca client), and for
testing the runtime's plumbing on any machine: the answers do not depend on
what a freshly trained model happens to say. It satisfies the
:class:`~skyedge.edge.backends.Backend` protocol like the real backends.

The script is a list of answers taken in turn, one per model input (a frame,
or one object of a field), and started again from the top when it runs out.
An answer is a class name (probability ``confidence`` for it, the rest shared
by the other classes), a mapping of class -> probability, or
``unrecognised`` (a frame model's open-set distance then lies beyond the
card's threshold). Every other output of the graph (state, embedding) is
zeros of the card's shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from skyedge.errors import SkyedgeError

UNRECOGNISED = "unrecognised"


class ScriptError(SkyedgeError, ValueError):
    """A script the model cannot answer (a class it does not have, an empty script)."""


def _rows(answers: Sequence[str | Mapping[str, float]], classes: list[str], confidence: float) -> list:
    """(probabilities, unrecognised) per answer, checked against the model's classes."""
    if not answers:
        raise ScriptError("backend.script: empty; list at least one answer (a class name)")
    rows = []
    rest = (1.0 - confidence) / max(len(classes) - 1, 1)
    for n, answer in enumerate(answers):
        where = f"backend.script[{n}]"
        if isinstance(answer, str):
            if answer == UNRECOGNISED:
                rows.append((np.full(len(classes), 1.0 / len(classes), np.float32), True))
                continue
            if answer not in classes:
                raise ScriptError(f"{where}: {answer!r} is not one of the model's classes {classes} (or '{UNRECOGNISED}')")
            p = np.full(len(classes), rest, np.float32)
            p[classes.index(answer)] = confidence
        else:
            unknown = sorted(set(answer) - set(classes))
            if unknown:
                raise ScriptError(f"{where}: {unknown} not among the model's classes {classes}")
            p = np.array([float(answer.get(c, 0.0)) for c in classes], np.float32)
            if p.sum() <= 0:
                raise ScriptError(f"{where}: probabilities must not all be zero")
            p /= p.sum()
        rows.append((p, False))
    return rows


class ScriptedBackend:
    """Answers ``answers`` in turn for the package's graph (see the module docstring)."""

    name = "scripted"

    def __init__(self, package, answers: Sequence[str | Mapping[str, float]], confidence: float = 0.9):
        card = package.card
        self.input_names = [t.name for t in package.inputs]
        self.outputs = card.step.outputs if package.graph == "step" else card.outputs
        self.classes = list(card.classes)
        self.threshold = card.metric_head.unknown_threshold
        self._script = itertools.cycle(_rows(answers, self.classes, confidence))
        self.calls = 0

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The next answers, one per row of the batch, in every output's shape."""
        first = inputs[self.input_names[0]]
        n = first.shape[0]
        steps = first.shape[1] if first.ndim == 5 else None  # a sequence graph's time axis
        rows = [next(self._script) for _ in range(n)]
        probabilities = np.stack([p for p, _ in rows]) if rows else np.zeros((0, len(self.classes)), np.float32)
        beyond = 2.0 * self.threshold if self.threshold else 1e6
        out = {}
        for spec in self.outputs:
            if spec.role == "probabilities":
                out[spec.name] = probabilities if steps is None else np.repeat(probabilities[:, None], steps, axis=1)
            elif spec.role == "min_distance":
                out[spec.name] = np.array([beyond if u else 0.0 for _, u in rows], np.float32)
            else:
                dims = [n if d == "batch" else steps if d == "time" else d for d in spec.shape]
                out[spec.name] = np.zeros([d if isinstance(d, int) else 1 for d in dims], np.float32)
        self.calls += 1
        return out

    def close(self) -> None:
        """Nothing to release."""
