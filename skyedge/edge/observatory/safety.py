"""The safety policy behind the ASCOM SafetyMonitor and the `safe` flag: when may the roof be open?

Safe only after a run of frames in a safe class lasting at least
``hold_frames`` frames and ``hold_s`` seconds; unsafe at once on any other
class (``unrecognised`` included), when the last classification is older than
``stale_after_s``, and while the camera or pipeline has failed. Unsafe is the
default: no frame yet means unsafe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SafetyChange:
    """A flip of the verdict, with the reason the event message carries."""

    safe: bool
    reason: str


class SafetyPolicy:
    """Thread-safe: frames arrive on the report thread, clients ask from the HTTP server's threads."""

    def __init__(
        self, safe_classes: list[str], hold_frames: int = 3, hold_s: float = 0.0, stale_after_s: float = 300.0
    ):
        self.safe_classes = set(safe_classes)
        self.hold_frames, self.hold_s, self.stale_after_s = hold_frames, hold_s, stale_after_s
        self._lock = threading.Lock()
        self._run = 0
        self._run_start: float | None = None
        self._last_frame: float | None = None
        self._failed: str | None = None
        self._reported = False  # the verdict last returned as a change; only frame/failed/check move it
        self.reason = "no classification yet"

    def _evaluate(self, now: float) -> tuple[bool, str]:
        if self._failed:
            return False, f"pipeline failed: {self._failed}"
        if self._last_frame is None:
            return False, "no classification yet"
        if now - self._last_frame > self.stale_after_s:
            return (
                False,
                f"stale: no classification for {now - self._last_frame:.0f} s (limit {self.stale_after_s:g} s)",
            )
        if self._run == 0:
            return False, self.reason
        held = now - self._run_start
        if self._run < self.hold_frames or held < self.hold_s:
            return (
                False,
                f"safe class for {self._run} frame(s) / {held:.0f} s; need {self.hold_frames} / {self.hold_s:g} s",
            )
        return True, f"safe class for {self._run} frames / {held:.0f} s"

    def _settle(self, now: float) -> SafetyChange | None:
        verdict, why = self._evaluate(now)
        changed = verdict != self._reported
        self._reported, self.reason = verdict, why
        return SafetyChange(verdict, why) if changed else None

    def frame(self, label: str, now: float | None = None, veto: str | None = None) -> SafetyChange | None:
        """Feed one classification; return the change of verdict, if any. ``veto``: why this frame is unsafe
        whatever its class (the cloud map's rule)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._last_frame, self._failed = now, None
            if veto is not None:
                self._run, self._run_start = 0, None
                self.reason = veto
            elif label in self.safe_classes:
                if self._run == 0:
                    self._run_start = now
                self._run += 1
            else:
                self._run, self._run_start = 0, None
                self.reason = f"unsafe class '{label}'"
            return self._settle(now)

    def failed(self, why: str, now: float | None = None) -> SafetyChange | None:
        """The camera or pipeline failed: unsafe until the next good frame."""
        with self._lock:
            self._failed, self._run, self._run_start = why, 0, None
            return self._settle(time.monotonic() if now is None else now)

    def check(self, now: float | None = None) -> SafetyChange | None:
        """Re-evaluate with the clock (staleness, hold time); return a change, if any."""
        with self._lock:
            return self._settle(time.monotonic() if now is None else now)

    def is_safe(self, now: float | None = None) -> bool:
        """The verdict now (re-evaluated, so a stale camera is unsafe even between frames).

        Asking never consumes a change: the next :meth:`check` still reports a flip that happened meanwhile.
        """
        with self._lock:
            verdict, self.reason = self._evaluate(time.monotonic() if now is None else now)
            return verdict
