"""Debounced sky state: per-frame classes -> the state observatory control acts on, with events.

The state changes only when ``hysteresis_frames`` consecutive frames agree on a
new class, so one odd frame does not open or close a roof. 'unrecognised' (open-set
rejection) counts as a class of its own. A camera silent for ``stale_after_s``
is 'stale'. Whether a state is safe is the safety policy's call (:mod:`skyedge.edge.observatory.safety`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

AURORA = {"arc", "diffuse", "discrete"}


@dataclass
class Transition:
    """A state change, with what the contract's state and event messages need."""

    state: str
    previous: str | None
    confidence: float
    frames: int
    event: str
    severity: str
    message: str


def _event_for(state: str, previous: str | None, frames: int) -> tuple[str, str, str]:
    why = f"{frames} consecutive frames" if frames else "no frames"
    if state == "cloudy":
        return "cloud_cover", "warning", f"cloud cover began ({why} classified cloudy)"
    if state in AURORA and previous not in AURORA:
        return "aurora_onset", "info", f"aurora onset: {state} ({why})"
    if state == "clear":
        return "sky_clear", "info", f"sky clear ({why})"
    if state == "moon":
        return "moon", "info", f"moon in the field ({why})"
    if state == "day":
        return "state_change", "info", f"daytime: the sun is above the day threshold (was {previous})"
    if state == "stale":
        return "state_change", "critical", f"no classification for the stale timeout (was {previous})"
    return "state_change", "warning" if state == "unrecognised" else "info", f"sky state {previous} -> {state} ({why})"


class SkyState:
    """Hysteresis over consecutive frames; call :meth:`update` per frame and :meth:`check_stale` periodically."""

    def __init__(self, hysteresis_frames: int, stale_after_s: float):
        self.n, self.stale_after_s = hysteresis_frames, stale_after_s
        self.state: str | None = None
        self.candidate: str | None = None
        self.run: list[float] = []
        self.last_seen = time.monotonic()

    def update(self, label: str, confidence: float) -> Transition | None:
        """Feed one frame's class ('unrecognised' and 'day' allowed); return a transition when the state changes."""
        self.last_seen = time.monotonic()
        if label != self.candidate:
            self.candidate, self.run = label, []
        self.run.append(confidence)
        if label == self.state or len(self.run) < self.n:
            return None
        previous, self.state = self.state, label
        event, severity, message = _event_for(label, previous, len(self.run))
        return Transition(
            label,
            previous,
            float(sum(self.run) / len(self.run)),
            len(self.run),
            event,
            severity,
            message,
        )

    def check_stale(self) -> Transition | None:
        """The 'stale' transition when the camera has been silent too long."""
        if self.state in (None, "stale") or time.monotonic() - self.last_seen < self.stale_after_s:
            return None
        previous, self.state, self.candidate, self.run = self.state, "stale", None, []
        event, severity, message = _event_for("stale", previous, 0)
        return Transition("stale", previous, 0.0, 0, event, severity, message)
