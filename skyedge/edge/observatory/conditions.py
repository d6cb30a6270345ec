"""The latest cloud report of one camera, for readers on other threads (the Alpaca server, the target endpoint).

Written by the publisher thread (through the camera's verdicts) after every classification that carried a cloud
map; read by HTTP server threads. A lock keeps a reader from seeing half an update.
"""

from __future__ import annotations

import threading
import time


class SkyConditions:
    """The newest :class:`~skyedge.edge.cloud_map.CloudReport` and when it came."""

    def __init__(self):
        self._lock = threading.Lock()
        self._report = None
        self._at: float | None = None  # monotonic time of the last update

    def update(self, report) -> None:
        """A new cloud report (publisher thread)."""
        with self._lock:
            self._report, self._at = report, time.monotonic()

    def latest(self):
        """(the newest report or None, seconds since it came or None)."""
        with self._lock:
            if self._at is None:
                return None, None
            return self._report, time.monotonic() - self._at
