"""The durable record of which files a folder source has handled, so a restart processes nothing twice.

A file version is keyed by path, size and modification time, and only a path's last
handled version is kept (a file rewritten in place is read once per version). It is claimed when
read (in memory: the next poll must not yield it again) and recorded in SQLite
only when its result has been reported (the ack), so a crash between the two
retries the file instead of losing it. Unreadable files are recorded too, with
the reason, so they are reported once, not on every poll. Rows of files that
no longer exist are pruned, so the file stays as small as the folder.

The store also keeps a few facts a source learns and must not forget across
restarts (the camera's frame format, a detected catalogue).

A full disk or an I/O error never loses a mark or stops the caller: marks wait
in memory (the files stay claimed, so nothing is processed twice) and are
written when the disk accepts them again; :attr:`ProcessedState.problem` says
what is wrong meanwhile.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

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
        self._in_flight: set[FileKey] = set()  # claimed, not yet recorded (memory only: a restart retries them)
        self._pending: list[tuple] = []  # marks the disk refused; written when it accepts them again
        self.problem: str | None = None
        self.marked = 0  # marks written since the store was opened (the source prunes by this and by time)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed mark survives a process crash; no fsync per frame.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS processed (path TEXT, size INTEGER, mtime_ns INTEGER, "
                "status TEXT, ts REAL, PRIMARY KEY (path, size, mtime_ns))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # The handled version of each path, mirrored in memory: every poll asks about every file in the
            # folder, and one query each cost a scan of 20,000 files 0.2 s. Only a path's last version counts
            # (a file rewritten in place, like an all-sky program's live image.jpg, would otherwise leave a row
            # per exposure, forever): older rows are superseded here and deleted when the next mark is written.
            self._seen: dict[str, tuple[int, int]] = {
                r[0]: (r[1], r[2]) for r in self._db.execute("SELECT path, size, mtime_ns FROM processed ORDER BY ts")
            }

    def seen(self, key: FileKey) -> bool:
        """Whether this exact file version was handled."""
        return self._seen.get(key[0]) == key[1:]

    def known(self, path: str) -> bool:
        """Whether some version of the file at this (key) path was handled."""
        return path in self._seen

    def handled(self, key: FileKey) -> bool:
        """Whether this file version was handled or is on its way through the pipeline now."""
        return key in self._in_flight or self.seen(key)

    def handled_ok(self) -> list[FileKey]:
        """Every file version whose result was reported (status 'ok'), in no particular order."""
        with self._lock:
            return [tuple(r) for r in self._db.execute("SELECT path, size, mtime_ns FROM processed WHERE status='ok'")]

    def claim(self, key: FileKey):
        """Mark a file version as in flight; return the ack that records it once its result is reported."""
        self._in_flight.add(key)

        def ack(status: str = "ok") -> None:
            self.mark(key, status)

        return ack

    def mark(self, key: FileKey, status: str) -> None:
        """Record a file version as handled ('ok' or the reason it was not used)."""
        with self._lock:
            self._pending.append((*key, status, time.time()))
            self._write_pending()

    def _write_pending(self) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?)", self._pending)
                last = {row[0]: row[:3] for row in self._pending}  # two versions of a path may wait together
                self._db.executemany("DELETE FROM processed WHERE path=? AND NOT (size=? AND mtime_ns=?)", last.values())
        except sqlite3.Error as exc:
            if self.problem is None:
                log.error("%s: cannot record processed files (%s); keeping them in memory", self.path, exc)
            self.problem = f"{self.path}: {exc}"
            return
        for row in self._pending:
            self._in_flight.discard(row[:3])
            self._seen[row[0]] = (row[1], row[2])
        self.marked += len(self._pending)
        self._pending.clear()
        if self.problem is not None:
            log.info("%s: writable again; processed files recorded", self.path)
        self.problem = None

    def retry(self) -> None:
        """Write marks the disk refused earlier (called periodically)."""
        with self._lock:
            if self._pending:
                self._write_pending()

    def prune(self, present: set[str]) -> int:
        """Forget files whose path is not in ``present`` (rotated away); return how many rows went."""
        with self._lock:
            paths = [r[0] for r in self._db.execute("SELECT DISTINCT path FROM processed")]
            gone = [(p,) for p in paths if p not in present]
            if gone:
                try:
                    with self._db:
                        self._db.execute("BEGIN")
                        self._db.executemany("DELETE FROM processed WHERE path=?", gone)
                except sqlite3.Error as exc:
                    log.warning("%s: cannot prune (%s); trying again later", self.path, exc)
                    return 0
                for (path,) in gone:
                    self._seen.pop(path, None)
            return len(gone)

    def fact(self, name: str):
        """A remembered fact (JSON value), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM facts WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def remember(self, name: str, value) -> None:
        """Keep a fact across restarts (best effort on a full disk: it is learned again)."""
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?)", (name, json.dumps(value)))
            except sqlite3.Error as exc:
                log.warning("%s: cannot remember %s (%s)", self.path, name, exc)

    def count(self) -> int:
        """Handled file versions."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM processed").fetchone()[0])

    def close(self) -> None:
        """Write what is pending (if the disk lets us) and close the database."""
        with self._lock:
            if self._pending:
                self._write_pending()
            self._db.close()
