"""Counters and latency windows: what the metrics message and `skyedge bench --pipeline` report.

Thread-safe: sources count drops, the inference thread records backend calls,
the publisher records each published result.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class Stats:
    """Counters (processed, corrupt, dropped, failed, vanished), backend calls and time, and recent end-to-end latencies."""

    def __init__(self, window: int = 10_000):
        self.started = time.monotonic()
        self.counts = {"processed": 0, "dropped": 0, "failed": 0, "corrupt": 0, "vanished": 0}
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.backend_s = 0.0
        self.batches = 0
        self._lock = threading.Lock()
        self._last = (time.monotonic(), 0)
        self.first_arrival: float | None = None  # perf_counter of the first item read (pipeline throughput)
        self.last_done: float | None = None

    def add(self, key: str, n: int = 1) -> None:
        """Increment a counter."""
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def backend_call(self, seconds: float) -> None:
        """One backend call."""
        with self._lock:
            self.backend_s += seconds
            self.batches += 1

    def done(self, latency_ms: float, arrived: float, n: int = 1) -> None:
        """``n`` results (a field's objects) answered, ``latency_ms`` after their input arrived (perf_counter
        ``arrived``)."""
        with self._lock:
            if self.first_arrival is None or arrived < self.first_arrival:
                self.first_arrival = arrived
            self.last_done = time.perf_counter()
            self.counts["processed"] += n
            self.latency_ms.append(latency_ms)

    def snapshot(self) -> dict:
        """Counts, throughput since the last snapshot, and latency percentiles."""
        with self._lock:
            now = time.monotonic()
            t0, n0 = self._last
            processed = self.counts["processed"]
            self._last = (now, processed)
            lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
            # Never 0: the contract wants a positive interval, and a stop right after a periodic snapshot comes
            # within the millisecond (the final metrics then failed validation, and the publisher's shutdown
            # stopped before its offline status).
            interval = max(now - t0, 0.001)
            return {
                "interval_s": round(interval, 3),
                "uptime_s": round(now - self.started, 3),
                "throughput": round((processed - n0) / interval, 3),
                "latency_ms": {
                    "p50": round(float(np.percentile(lat, 50)), 3),
                    "p95": round(float(np.percentile(lat, 95)), 3),
                    "p99": round(float(np.percentile(lat, 99)), 3),
                    "max": round(float(lat.max()), 3),
                },
                # Backend calls beside the frames they answered: how full the batches run (several cameras share them).
                "counts": {**self.counts, "backend_calls": self.batches},
            }
