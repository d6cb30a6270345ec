"""The shared half of the two folder sources: list, wait for files to settle, claim, read, remember.

A file is read once it has stopped changing for ``settle_s`` (camera and
telescope software write in place). What was handled is remembered in the
state file (:mod:`skyedge.edge.sources.state`), so a restart processes nothing
twice and skips nothing. Each kind says only how to order its files and how to
turn one into a frame (:meth:`FolderSource._sort_key`, :meth:`FolderSource._decode`).
"""

from __future__ import annotations

import threading
import time
from fnmatch import fnmatch
from pathlib import Path

from skyedge.edge.sources import Ack, RawFrame, Rejected
from skyedge.edge.sources.state import STATE_FILE, FileKey, ProcessedState, file_key


class FolderSource:
    """Iterates new, settled files in the kind's order; ``once`` stops when none are left or on their way."""

    recursive = False

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.root = Path(spec.path)
        if not self.root.is_dir():
            raise FileNotFoundError(f"source.path: {self.root} is not a directory")
        self.state = ProcessedState(Path(spec.state_file) if spec.state_file else self.root / STATE_FILE)

    def _candidates(self) -> list[Path]:
        walker = self.root.rglob("*") if self.recursive else self.root.iterdir()
        return [
            p
            for p in walker
            if p.is_file()
            and not p.name.startswith(".")
            and any(fnmatch(p.name.lower(), pat) for pat in self.spec.patterns)
        ]

    def _scan(self) -> tuple[list[tuple[Path, FileKey]], bool]:
        """Files ready to read, in order, and whether others are still settling."""
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
            ready.append((self._sort_key(p, st), p, key))
        ready.sort(key=lambda r: r[0])
        return [(p, k) for _, p, k in ready], waiting

    def __iter__(self):
        while not self.stop.is_set():
            ready, waiting = self._scan()
            for path, key in ready:
                if self.stop.is_set():
                    return
                yield self._decode(path, key, self.state.claim(key))
            if self.once and not ready and not waiting:
                return
            if not ready:
                self.stop.wait(self.spec.poll_s)

    def _sort_key(self, path: Path, st) -> tuple:
        """The order files are read in."""
        raise NotImplementedError

    def _decode(self, path: Path, key: FileKey, ack: Ack) -> RawFrame | Rejected:
        """One claimed file as a frame, or the reason it cannot be one."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the state file."""
        self.state.close()
