"""An append-only JSON-lines audit log: one line per message, with its topic, QoS and retain flag."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from skyedge.edge.messages import Message


class JsonlReporter:
    """Appends ``{"topic", "qos", "retain", "payload"}`` lines; each line is flushed as written."""

    name = "jsonl"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def publish(self, message: Message) -> None:
        """Append one message."""
        m = message
        line = json.dumps({"topic": m.topic, "qos": m.qos, "retain": m.retain, "payload": m.payload}, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def depth(self) -> int:
        """Messages waiting to be delivered (none: lines are written at once)."""
        return 0

    def dropped(self) -> int:
        """Messages shed (none: every line is written)."""
        return 0

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._fh.close()


def read_jsonl(path: str | Path) -> list[dict]:
    """Every message of a JSON-lines log (tests and audits)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
