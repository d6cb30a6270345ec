"""A watched folder where camera software drops FITS/JPEG/PNG/TIFF frames.

A file is read once it has stopped changing for ``settle_s`` (camera software
writes in place). What was processed is remembered in a SQLite state file,
keyed by path, size and modification time, and a file is marked only after its
result has been handed to the reporters: a restart processes nothing twice and
skips nothing. Unreadable files are marked too (with the reason), so they are
reported once, not every poll.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from skyedge.edge.sources import RawFrame, Rejected
from skyedge.imageio import FrameReadError, read_frame

log = logging.getLogger(__name__)

STATE_FILE = ".skyedge-state.sqlite"


class ProcessedState:
    """The durable record of handled files (WAL-mode SQLite, safe to share between threads)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._in_flight: set[tuple] = set()  # claimed, not yet acknowledged (memory only: a restart retries them)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed mark survives a process crash; no fsync per frame.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS processed (path TEXT, size INTEGER, mtime_ns INTEGER, "
                "status TEXT, ts REAL, PRIMARY KEY (path, size, mtime_ns))"
            )

    def seen(self, key: tuple[str, int, int]) -> bool:
        """Whether this exact file version was handled."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM processed WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
        return row is not None

    def handled(self, key: tuple[str, int, int]) -> bool:
        """Whether this file version was handled or is on its way through the pipeline now."""
        return key in self._in_flight or self.seen(key)

    def claim(self, key: tuple[str, int, int]):
        """Mark a file version as in flight; return the ack that records it once its result is reported."""
        # Yielded but not yet reported: the next poll must not yield it again.
        self._in_flight.add(key)

        def ack(status: str = "ok") -> None:
            self.mark(key, status)
            self._in_flight.discard(key)

        return ack

    def mark(self, key: tuple[str, int, int], status: str) -> None:
        """Record a file version as handled ('ok' or the rejection reason)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?)", (*key, status, time.time()))

    def count(self) -> int:
        """Handled file versions."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM processed").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def file_key(path: Path, st) -> tuple[str, int, int]:
    """Identity of one version of a file: path, size, modification time."""
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


# Inputs that read but are not usable frames.
MAX_NONFINITE_FRACTION = 0.01


def check_frame(image: np.ndarray, expected: tuple | None) -> str | None:
    """Why a decoded frame is unusable (NaN/inf, wrong size or bit depth), or None."""
    if image.size == 0 or min(image.shape[:2]) < 8:
        return f"image too small: {image.shape}"
    if np.issubdtype(image.dtype, np.floating):
        bad = float((~np.isfinite(image)).mean())
        if bad > MAX_NONFINITE_FRACTION:
            return f"{100 * bad:.1f}% of pixels are NaN or infinite"
    if expected is not None and (image.shape, image.dtype.str) != expected:
        return (
            f"shape/bit depth {image.shape} {image.dtype} differs from this camera's "
            f"{expected[0]} {np.dtype(expected[1])} (wrong camera or mode?)"
        )
    return None


class DirectorySource:
    """Iterates new, settled files in order of modification time; ``once`` stops when none are left."""

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.root = Path(spec.path)
        if not self.root.is_dir():
            raise FileNotFoundError(f"source.path: {self.root} is not a directory")
        self.state = ProcessedState(Path(spec.state_file) if spec.state_file else self.root / STATE_FILE)
        self.expected: tuple | None = None
        self._agree: list[tuple] = []

    def _candidates(self) -> list[Path]:
        walker = self.root.rglob("*") if self.spec.recursive else self.root.iterdir()
        files = []
        for p in walker:
            if (
                p.is_file()
                and not p.name.startswith(".")
                and any(fnmatch(p.name.lower(), pat) for pat in self.spec.patterns)
            ):
                files.append(p)
        return files

    def _ready(self) -> tuple[list[tuple[Path, tuple]], bool]:
        now = time.time()
        ready, waiting = [], False
        for p in self._candidates():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            key = file_key(p, st)
            if self.state.handled(key):
                continue
            if now - st.st_mtime < self.spec.settle_s:
                waiting = True  # still being written (or just arrived)
                continue
            ready.append((p, key, st.st_mtime))
        ready.sort(key=lambda r: (r[2], r[0].name))
        return [(p, k) for p, k, _ in ready], waiting

    def __iter__(self):
        while not self.stop.is_set():
            ready, waiting = self._ready()
            for path, key in ready:
                if self.stop.is_set():
                    return
                yield self._read(path, key)
            if self.once and not ready and not waiting:
                return
            if not ready:
                self.stop.wait(self.spec.poll_s)

    def _read(self, path: Path, key: tuple):
        ack = self.state.claim(key)
        try:
            image, header = read_frame(path)
        except FrameReadError as exc:
            return Rejected(path.name, str(path), str(exc), ack)
        reason = check_frame(image, self.expected)
        if reason:
            return Rejected(path.name, str(path), f"{path}: {reason}", ack)
        if self.expected is None:
            # Learn the camera's frame format from three agreeing frames, not one that may itself be odd.
            form = (image.shape, image.dtype.str)
            self._agree = self._agree + [form] if self._agree and self._agree[-1] == form else [form]
            if len(self._agree) >= 3:
                self.expected = form
        return RawFrame(path.name, str(path), image, header, captured=key[2] / 1e9, ack=ack)

    def close(self) -> None:
        """Close the state file."""
        self.state.close()
