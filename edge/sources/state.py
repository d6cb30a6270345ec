"""The durable record of which files a folder source has handled, so a restart processes nothing twice.

A file version is keyed by path, size and modification time. It is claimed when
read (in memory: the next poll must not yield it again) and recorded in SQLite
only when its result has been reported (the ack), so a crash between the two
retries the file instead of losing it. Unreadable files are recorded too, with
the reason, so they are reported once, not on every poll.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

STATE_FILE = ".skyedge-state.sqlite"

FileKey = tuple[str, int, int]


def file_key(path: Path, st) -> FileKey:
    """Identity of one version of a file: path, size, modification time."""
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


class ProcessedState:
    """WAL-mode SQLite, safe to share between threads (the source claims, the publisher acks)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._in_flight: set[FileKey] = set()  # claimed, not yet acknowledged (memory only: a restart retries them)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed mark survives a process crash; no fsync per frame.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS processed (path TEXT, size INTEGER, mtime_ns INTEGER, "
                "status TEXT, ts REAL, PRIMARY KEY (path, size, mtime_ns))"
            )

    def seen(self, key: FileKey) -> bool:
        """Whether this exact file version was handled."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM processed WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
        return row is not None

    def handled(self, key: FileKey) -> bool:
        """Whether this file version was handled or is on its way through the pipeline now."""
        return key in self._in_flight or self.seen(key)

    def claim(self, key: FileKey):
        """Mark a file version as in flight; return the ack that records it once its result is reported."""
        self._in_flight.add(key)

        def ack(status: str = "ok") -> None:
            self.mark(key, status)
            self._in_flight.discard(key)

        return ack

    def mark(self, key: FileKey, status: str) -> None:
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
