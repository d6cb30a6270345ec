"""The durable outbox behind store-and-forward: SQLite in WAL mode, one row per message until the broker acks it.

A message is written here before any attempt to send it and deleted only on
PUBACK (QoS 1) or once sent (QoS 0), so a broker outage or a crash of the edge
process loses nothing: the next start replays what is left, oldest first, so
each topic keeps its order. The queue is bounded; when full, the oldest
metrics, then the oldest classifications, are dropped (counted); state,
status and event messages are never dropped.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
    """Thread-safe; ``put`` from the inference thread, ``peek``/``ack`` from the sender."""

    def __init__(self, path: str | Path, max_messages: int = 100_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives a process crash (not necessarily a power cut).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, "
                "created REAL NOT NULL)"
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

    def put(self, topic: str, payload: bytes, qos: int, retain: bool, kind: str, schema: str | None = None) -> None:
        """Append one message durably; enforce the bound."""
        with self._lock:
            self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, kind, schema, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), kind, schema, time.time()),
            )
            self._count += 1
            if self._count > self.max_messages:
                self._shed()

    def _shed(self) -> None:
        excess = self._count - self.max_messages
        for kind in DROPPABLE:
            if excess <= 0:
                break
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind=? ORDER BY id LIMIT ?)",
                (kind, excess),
            )
            if cur.rowcount:
                self._db.execute(
                    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (f"dropped_{kind}", cur.rowcount),
                )
                self._count -= cur.rowcount
                excess -= cur.rowcount

    def peek(self, limit: int, after_id: int = 0) -> list[Row]:
        """The oldest queued messages with id above ``after_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, kind, schema FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Row(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def ack(self, row_id: int) -> None:
        """The broker has it: forget it."""
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE id=?", (row_id,))
            self._count -= cur.rowcount

    def depth(self) -> int:
        """Messages not yet acknowledged."""
        with self._lock:
            return self._count

    def dropped(self) -> dict[str, int]:
        """Messages shed by the bound, by kind, since the outbox was created."""
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM counters WHERE name LIKE 'dropped_%'").fetchall()
        return {name[len("dropped_") :]: int(value) for name, value in rows}

    def close(self) -> None:
        """Close the database (queued rows stay for the next start)."""
        with self._lock:
            self._db.close()
