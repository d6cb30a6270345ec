"""An append-only JSON-lines audit log: one line per message, with its topic, QoS and retain flag.

A full disk never leaves half a line behind: a write that fails is cut back
to the last whole line, and the lines wait in a bounded memory buffer until
the disk accepts them (:meth:`JsonlReporter.retry`); lines beyond the bound
are dropped and counted. :attr:`JsonlReporter.problem` says what is wrong meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path

from skyedge.edge.messages import Message

log = logging.getLogger(__name__)

MAX_PENDING_LINES = 100_000


class JsonlReporter:
    """Appends ``{"topic", "qos", "retain", "payload"}`` lines; each line goes to the file as written."""

    name = "jsonl"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()
        self._dropped = 0
        self.problem: str | None = None

    def listen(self, topic: str, callback) -> None:
        """A file hears nothing."""

    def stores(self) -> list:
        """This log is a durable store whose ``problem`` the publisher watches."""
        return [self]

    def publish(self, message: Message) -> None:
        """Append one message."""
        m = message
        line = json.dumps({"topic": m.topic, "qos": m.qos, "retain": m.retain, "payload": m.payload}, separators=(",", ":"))
        with self._lock:
            if len(self._pending) >= MAX_PENDING_LINES:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append((line + "\n").encode())
            self._write_pending()

    def _write_pending(self) -> None:
        while self._pending:
            data = self._pending[0]
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(28, "short write (No space left on device?)")
            except OSError as exc:
                try:
                    os.ftruncate(self._fd, end)  # never leave a partial line
                except OSError:
                    pass
                if self.problem is None:
                    log.error("%s: cannot append (%s); holding lines in memory", self.path, exc.strerror or exc)
                self.problem = exc.strerror or str(exc)
                return
            self._pending.popleft()
        if self.problem is not None:
            log.info("%s: writable again; held lines written", self.path)
        self.problem = None

    def retry(self) -> None:
        """Write lines the disk refused earlier (called periodically)."""
        with self._lock:
            self._write_pending()

    def depth(self) -> int:
        """Lines waiting for the disk."""
        return len(self._pending)

    def dropped(self) -> int:
        """Lines shed because the disk refused them for too long."""
        return self._dropped

    def close(self) -> None:
        """Write what is held (if the disk lets us) and close the file."""
        with self._lock:
            self._write_pending()
            if self._pending:
                log.error("%s: %d line(s) could not be written and are lost", self.path, len(self._pending))
            os.close(self._fd)


def read_jsonl(path: str | Path) -> list[dict]:
    """Every message of a JSON-lines log (tests and audits)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
