"""The durable outbox behind store-and-forward: SQLite in WAL mode, one row per message until the broker acks it.

A message is written here before any attempt to send it and deleted only on
PUBACK (QoS 1) or once sent (QoS 0), so a broker outage or a crash of the edge
process loses nothing: the next start replays what is left, oldest first, so
each topic keeps its order. The queue is bounded; when full, the oldest
metrics, then the oldest classifications, are dropped (counted); state,
status, event and discovery messages are never dropped.

A full disk (or any write error) must not silence the device: messages then
go to a bounded memory tier with the same ids, order and drop policy, are sent
from there as usual, and are written to the file as soon as it accepts them
again (:meth:`Outbox.retry`). :attr:`Outbox.problem` says what is wrong meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Drop order when the outbox is full: the least valuable first. Others are never dropped.
DROPPABLE = ("metrics", "classification")


@dataclass(frozen=True)
class Row:
    """One queued message."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    schema: str | None


class Outbox:
    """Thread-safe; ``put`` from the publisher thread, ``peek``/``ack`` from the sender."""

    def __init__(self, path: str | Path, max_messages: int = 100_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.problem: str | None = None
        self._memory: OrderedDict[int, tuple] = OrderedDict()  # id -> row values, while the file refuses writes
        self._acked: set[int] = set()  # acknowledged rows the file refused to delete: never resent, deleted later
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives a process crash (not necessarily a power cut).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, "
                "created REAL NOT NULL, schema TEXT)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            if "schema" not in columns:  # an outbox written by an earlier version: keep its queued rows
                self._db.execute("ALTER TABLE outbox ADD COLUMN schema TEXT")
                self._db.execute(
                    "UPDATE outbox SET schema = 'skyedge.' || kind || '/1' WHERE kind IN "
                    "('status', 'classification', 'state', 'event', 'metrics')"
                )
            self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            last = self._db.execute("SELECT MAX(id) FROM outbox").fetchone()[0]
            seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
            self._next_id = max(last or 0, seq[0] if seq else 0) + 1
            self._dropped_in_memory: dict[str, int] = {}

    # ------------------------------------------------------------ writing

    def put(self, topic: str, payload: bytes, qos: int, retain: bool, kind: str, schema: str | None = None) -> None:
        """Append one message (durably when the disk allows); enforce the bound."""
        with self._lock:
            row_id, self._next_id = self._next_id, self._next_id + 1
            self._memory[row_id] = (topic, payload, qos, int(retain), kind, time.time(), schema)
            self._count += 1
            self._persist()
            if self._count > self.max_messages:
                self._shed()

    def _persist(self) -> None:
        """Move the memory tier into the file, in order, in one transaction; keep it in memory on failure."""
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO outbox (id, topic, payload, qos, retain, kind, created, schema) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(i, *values) for i, values in self._memory.items()],
                )
        except sqlite3.Error as exc:
            if self.problem is None:
                log.error("%s: cannot write the outbox (%s); holding messages in memory", self.path, exc)
            self.problem = str(exc)
            return
        self._memory.clear()
        if self.problem is not None:
            log.info("%s: writable again; messages held in memory are on disk", self.path)
        self.problem = None

    def retry(self) -> None:
        """Write (and delete) what the disk refused earlier (called periodically)."""
        with self._lock:
            if self._memory:
                self._persist()
            if self._acked:
                self._delete_acked()

    def _delete_acked(self) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in self._acked])
        except sqlite3.Error as exc:
            self.problem = str(exc)
            return
        self._acked.clear()
        if not self._memory:
            self.problem = None

    def _shed(self) -> None:
        excess = self._count - self.max_messages
        for kind in DROPPABLE:
            if excess <= 0:
                break
            # Oldest first: the file holds the older rows, the memory tier the newer ones.
            removed = 0
            try:
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind=? ORDER BY id LIMIT ?)",
                    (kind, excess),
                )
                removed = cur.rowcount
            except sqlite3.Error:
                removed = 0
            for row_id in [i for i, v in self._memory.items() if v[4] == kind][: excess - removed]:
                del self._memory[row_id]
                removed += 1
            if removed:
                self._count_drop(kind, removed)
                self._count -= removed
                excess -= removed

    def _count_drop(self, kind: str, n: int) -> None:
        try:
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (f"dropped_{kind}", n),
            )
        except sqlite3.Error:
            self._dropped_in_memory[kind] = self._dropped_in_memory.get(kind, 0) + n

    # ------------------------------------------------------------ sending

    def peek(self, limit: int, after_id: int = 0) -> list[Row]:
        """The oldest queued messages with id above ``after_id`` (file first, then the memory tier)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, kind, schema FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
            out = [Row(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6]) for r in rows if r[0] not in self._acked]
            for row_id, v in self._memory.items():
                if len(out) >= limit:
                    break
                if row_id > after_id:
                    out.append(Row(row_id, v[0], v[1], v[2], bool(v[3]), v[4], v[6]))
        return out

    def ack(self, row_id: int) -> None:
        """The broker has it: forget it."""
        with self._lock:
            if self._memory.pop(row_id, None) is not None:
                self._count -= 1
                return
            try:
                cur = self._db.execute("DELETE FROM outbox WHERE id=?", (row_id,))
                self._count -= cur.rowcount
            except sqlite3.Error as exc:
                # A delete needs a little space too: remember the ack (never resend), delete when the disk allows.
                if self.problem is None:
                    log.warning("%s: cannot delete acknowledged messages (%s); retrying", self.path, exc)
                self.problem = str(exc)
                self._acked.add(row_id)
                self._count -= 1

    def depth(self) -> int:
        """Messages not yet acknowledged."""
        with self._lock:
            return self._count

    def dropped(self) -> dict[str, int]:
        """Messages shed by the bound, by kind, since the outbox was created."""
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM counters WHERE name LIKE 'dropped_%'").fetchall()
            counts = {name[len("dropped_") :]: int(value) for name, value in rows}
            for kind, n in self._dropped_in_memory.items():
                counts[kind] = counts.get(kind, 0) + n
        return counts

    def close(self) -> None:
        """Write what memory holds (if the disk lets us) and close (queued rows stay for the next start)."""
        with self._lock:
            if self._memory:
                self._persist()
            if self._acked:
                self._delete_acked()
            if self._memory:
                log.error("%s: %d message(s) could not be written to disk and are lost", self.path, len(self._memory))
            self._db.close()
