"""Collection of frames for labelling (``collect:`` per pipeline): what the model found hard, kept on the device.

The policy (:class:`CollectPolicy`, on the publisher thread) picks frames from each classification: every
``unrecognised`` frame, every frame whose verdict confidence is below ``below_confidence``, the frames around
each sky-state change (``around_changes`` before and after), and one frame every ``every_minutes``. The writer
(:class:`FrameCollector`, its own thread) copies each picked file with a JSON sidecar (the classification
message: prediction, probabilities, distance, capture time, camera, model hash, and why it was picked) into
``path/<YYYY-MM-DD>/`` and keeps the folder within ``max_files`` and ``max_bytes``, oldest first.

Collection never slows inference: the publisher only hands a path and a dict to a bounded queue and moves on;
when the queue is full the frame is not collected (counted). A file gone before it could be copied is skipped.
A full or failing disk stops collection, reported through ``problem`` (the publisher's storage events), and it
resumes when a later write succeeds. Originals are only ever read.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
RETRY_AFTER_S = 60.0  # after a failed write, how long collection waits before trying the disk again


@dataclass
class Pick:
    """One frame chosen for collection: its file, the classification message, and why it was chosen."""

    source: str
    message: dict
    reasons: list[str]


class CollectPolicy:
    """Which classifications to keep (publisher thread only)."""

    def __init__(self, spec):
        self.spec = spec
        self._recent: deque[tuple[str, dict]] = deque(maxlen=max(spec.around_changes, 0))
        self._after = 0
        self._last_periodic: float | None = None

    def picks(self, source: str, message: dict, state_changed: bool, now: float | None = None) -> list[Pick]:
        """The frames to collect now: this one (if it qualifies) and, on a state change, the ones before it."""
        now = time.monotonic() if now is None else now
        s, reasons, out = self.spec, [], []
        if s.unrecognised and message.get("class") == "unrecognised":
            reasons.append("unrecognised")
        checks = message.get("checks") or ()
        # The model against the sky's stars, or against its own cloud map: disagreements are the best frames to label.
        reasons += [c for c in ("stars_disagree", "cloud_map_clear", "cloud_map_cloudy") if c in checks]
        confidence = message.get("confidence")
        if s.below_confidence is not None and confidence is not None and confidence < s.below_confidence:
            reasons.append("low_confidence")
        if state_changed and s.around_changes > 0:
            out += [Pick(src, msg, ["before_state_change"]) for src, msg in self._recent]
            self._recent.clear()
            self._after = s.around_changes + 1  # this frame and the next ones
        if self._after > 0:
            reasons.append("state_change" if state_changed else "after_state_change")
            self._after -= 1
        if s.every_minutes is not None and (
            self._last_periodic is None or now - self._last_periodic >= 60.0 * s.every_minutes
        ):
            reasons.append("periodic")
            self._last_periodic = now
        if reasons:
            out.append(Pick(source, message, reasons))
        elif s.around_changes > 0:
            self._recent.append((source, message))
        return out


class FrameCollector:
    """Copies picked frames and their sidecars on its own thread, within the quota."""

    def __init__(self, spec, camera: str, retry_after_s: float = RETRY_AFTER_S):
        self.spec, self.camera, self.retry_after_s = spec, camera, retry_after_s
        self.path = Path(spec.path)
        self.problem: str | None = None
        self.collected = self.dropped = self.vanished = 0
        self._queue: queue.Queue[Pick | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._index: deque[tuple[Path, int]] = deque()  # (frame file, bytes of frame + sidecar), oldest first
        self._bytes = 0
        self._scan()
        self._thread = threading.Thread(target=self._run, name=f"collect-{camera}", daemon=True)
        self._thread.start()

    def stores(self) -> list:
        return [self]

    # ------------------------------------------------------------ publisher thread

    def offer(self, pick: Pick) -> None:
        """Hand a frame to the writer; never waits (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(pick)
        except queue.Full:
            self.dropped += 1

    def retry(self) -> None:
        """Nothing to do here: the writer tries the disk again with the next frame after a pause."""

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every frame handed over so far is written or skipped (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------ writer thread

    def _scan(self) -> None:
        """The frames already collected (a restart keeps honouring the quota)."""
        found = []
        if self.path.is_dir():
            for sidecar in self.path.rglob("*.json"):
                frame = next((p for p in sidecar.parent.glob(sidecar.stem + ".*") if p.suffix != ".json"), None)
                if frame is None:
                    continue
                try:
                    found.append((frame.stat().st_mtime, frame, frame.stat().st_size + sidecar.stat().st_size))
                except OSError:
                    continue
        for _, frame, size in sorted(found):
            self._index.append((frame, size))
            self._bytes += size

    def _run(self) -> None:
        while True:
            pick = self._queue.get()
            try:
                if pick is None:
                    return
                self._handle(pick)
            finally:
                self._queue.task_done()

    def _handle(self, pick: Pick) -> None:
        if self.problem is not None and time.monotonic() < self._retry_at:
            self.dropped += 1
            return
        try:
            self._write(pick)
        except FileNotFoundError:
            self.vanished += 1  # rotated away by the camera software before we got to it
        except OSError as exc:
            if self.problem is None:
                log.error("%s: cannot collect frames (%s); collection paused", self.path, exc.strerror or exc)
            self.problem = exc.strerror or str(exc)
            self._retry_at = time.monotonic() + self.retry_after_s
            self.dropped += 1
        except Exception:  # one frame never stops collection
            log.exception("%s: collecting %s failed", self.path, pick.source)
            self.dropped += 1

    def _write(self, pick: Pick) -> None:
        src = Path(pick.source)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = self.path / day
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"{self.camera}-{src.name}"
        n = 1
        while dst.exists() or dst.with_suffix(".json").exists():
            dst = folder / f"{self.camera}-{src.stem}-{n}{src.suffix}"
            n += 1
        sidecar = dst.with_name(dst.stem + ".json")
        try:
            shutil.copyfile(src, dst)
            text = json.dumps({"collected_because": pick.reasons, "original": str(src), **pick.message}, indent=1)
            with open(sidecar, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except BaseException:
            for p in (dst, sidecar):  # never leave a frame without its sidecar, or half a copy
                try:
                    p.unlink()
                except OSError:
                    pass
            raise
        size = dst.stat().st_size + sidecar.stat().st_size
        with self._lock:
            self._index.append((dst, size))
            self._bytes += size
            self.collected += 1
            self._enforce_quota()
        if self.problem is not None:
            log.info("%s: collecting frames again", self.path)
        self.problem = None

    def _enforce_quota(self) -> None:
        s = self.spec
        while self._index and (len(self._index) > s.max_files or self._bytes > s.max_bytes):
            frame, size = self._index.popleft()
            for p in (frame, frame.with_name(frame.stem + ".json")):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            self._bytes -= size

    def usage(self) -> tuple[int, int]:
        """(frames, bytes) in the collection now."""
        with self._lock:
            return len(self._index), self._bytes
