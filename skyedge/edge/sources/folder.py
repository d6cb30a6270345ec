"""The shared half of the two folder sources: list, wait for files to settle, claim, read, remember.

A file is read once it has stayed unchanged for ``settle_s`` (camera and
telescope software write in place): judged by its modification time, or, when
that lies in this clock's future (a wall-clock step backwards), by watching it
on the monotonic clock. What was handled is remembered in the state file
(:mod:`skyedge.edge.sources.state`), so a restart processes nothing twice and
skips nothing.

The folder's environment changes under a daemon that runs for months, and
none of it stops the source: a file deleted between listing and reading is
skipped and counted (:class:`Vanished`); a symlink to a device or to nothing
is reported once; a folder that vanishes or becomes unreadable is reported as
:class:`SourceFailed`, retried with back-off, and :class:`SourceRecovered`
when it is back.

Each kind says only how to order its files and how to turn one into a frame
(:meth:`FolderSource._sort_key`, :meth:`FolderSource._decode`).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from fnmatch import fnmatch
from pathlib import Path

from skyedge.edge.config import StartupError
from skyedge.edge.sources import Ack, Rejected, SourceFailed, SourceRecovered, Vanished
from skyedge.edge.sources.state import STATE_FILE, FileKey, ProcessedState, file_key
from skyedge.imageio import FrameGone

log = logging.getLogger(__name__)

# State rows of rotated-away files are dropped every so often, and after so many new rows, whichever comes
# first: the state file stays about as large as the folder.
PRUNE_EVERY_S = 600.0
PRUNE_EVERY_MARKS = 5_000


class FolderSource:
    """Iterates new, settled files in the kind's order; ``once`` stops when none are left or on their way."""

    recursive = False

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.root = Path(spec.path)
        if not self.root.is_dir():
            raise StartupError(f"source.path: {self.root} is not a directory")
        self.state = ProcessedState(Path(spec.state_file) if spec.state_file else self.root / STATE_FILE)
        self._first_seen: dict[FileKey, float] = {}
        self._pruned_at, self._pruned_marks = time.monotonic(), 0
        self._patterns = [pat.lower() for pat in spec.patterns]
        self._exclude = [pat.lower().strip("/") for pat in spec.exclude]
        self._unlistable_seen: set[str] = set()

    def stores(self) -> list:
        """Durable stores whose ``problem`` the publisher watches."""
        return [self.state]

    def _excluded(self, relative: str) -> bool:
        """Whether a file or folder (its path below the root, '/'-separated) is one ``exclude`` leaves out."""
        relative = relative.lower()
        parts = relative.split("/")
        return any(
            fnmatch(relative, pat) if "/" in pat else any(fnmatch(part, pat) for part in parts)
            for pat in self._exclude
        )

    def _unlistable(self, exc: OSError) -> None:
        """os.walk's error hook: the root that cannot be listed fails the source; a folder below it is logged once
        and left out (one unreadable night's folder must not stop the others)."""
        if Path(exc.filename or self.root) == self.root:
            raise exc
        if exc.filename not in self._unlistable_seen:
            self._unlistable_seen.add(exc.filename)
            log.warning("%s: cannot list this folder (%s); its files are left out", exc.filename, exc.strerror or exc)

    def _wanted(self, name: str, relative: str) -> bool:
        return (
            not name.startswith(".")
            and any(fnmatch(name.lower(), pat) for pat in self._patterns)
            and not self._excluded(relative)
        )

    def _entries(self) -> list[Path]:
        if not self.recursive:
            return [p for p in self.root.iterdir() if self._wanted(p.name, p.name)]
        found = []
        # os.walk rather than rglob: hidden and excluded folders are pruned, not searched, and symlinked
        # folders are not followed (no loops).
        for folder, dirs, files in os.walk(self.root, onerror=self._unlistable):
            below = Path(folder).relative_to(self.root).as_posix()
            prefix = "" if below == "." else below + "/"
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not self._excluded(prefix + d))
            found += [Path(folder, f) for f in files if self._wanted(f, prefix + f)]
        return found

    def _scan(self) -> tuple[list[tuple[Path, FileKey]], list[tuple[Path, FileKey, str]], bool]:
        """(files ready to read, in order; entries that can never be read, with why; whether others are settling).

        Raises OSError when the folder itself cannot be listed.
        """
        now, mono = time.time(), time.monotonic()
        ready, unusable, waiting = [], [], False
        first_seen: dict[FileKey, float] = {}
        present: set[str] = set()
        for p in self._entries():
            try:
                st = p.stat()
            except FileNotFoundError:
                try:
                    st = p.lstat()  # a dangling symlink: reported once, keyed by the link itself
                except FileNotFoundError:
                    continue  # gone since the listing
                key = file_key(p, st)
                present.add(key[0])
                if not self.state.handled(key):
                    unusable.append((p, key, f"{p}: symlink to {os.readlink(p)!r}, which does not exist"))
                continue
            key = file_key(p, st)
            present.add(key[0])
            if self.state.handled(key):
                continue
            if not stat.S_ISREG(st.st_mode):
                target = f"symlink to {os.readlink(p)!r}, " if p.is_symlink() else ""
                unusable.append((p, key, f"{p}: {target}not a regular file (never read)"))
                continue
            seen = first_seen[key] = self._first_seen.get(key, mono)
            age = now - st.st_mtime
            if not (0 <= age and age >= self.spec.settle_s) and mono - seen < self.spec.settle_s:
                waiting = True  # still being written (or just arrived)
                continue
            ready.append((self._sort_key(p, st), p, key))
        self._first_seen = first_seen
        if mono - self._pruned_at > PRUNE_EVERY_S or self.state.marked - self._pruned_marks > PRUNE_EVERY_MARKS:
            self._pruned_at, self._pruned_marks = mono, self.state.marked
            gone = self.state.prune(present)
            if gone:
                log.info("%s: forgot %d file(s) no longer in the folder", self.root, gone)
        ready.sort(key=lambda r: r[0])
        return [(p, k) for _, p, k in ready], unusable, waiting

    def __iter__(self):
        yield from self._replay()
        delay, failed = self.spec.retry_initial_s, None
        while not self.stop.is_set():
            try:
                ready, unusable, waiting = self._scan()
            except OSError as exc:
                if failed is None:
                    failed = f"{self.root}: cannot list the folder ({exc.strerror or exc}); retrying"
                    yield SourceFailed(str(self.root), failed)
                if self.once:
                    return
                self.stop.wait(delay)
                delay = min(delay * 2, self.spec.retry_max_s)
                continue
            if failed is not None:
                failed, delay = None, self.spec.retry_initial_s
                yield SourceRecovered(str(self.root), f"{self.root}: the folder is readable again")
            for path, key, reason in unusable:
                yield Rejected(path.name, str(path), reason, self.state.claim(key))
            for path, key in ready:
                if self.stop.is_set():
                    return
                ack = self.state.claim(key)
                try:
                    observed = self._decode(path, key, ack)
                except FrameGone as exc:
                    ack("vanished")
                    observed = [Vanished(path.name, str(path), str(exc))]
                yield from observed
            if self.once and not ready and not waiting and not unusable:
                return
            if not ready:
                self.stop.wait(self.spec.poll_s)

    def _replay(self):
        """Frames already reported before a restart that the task needs again to resume (none by default)."""
        return iter(())

    def _sort_key(self, path: Path, st) -> tuple:
        """The order files are read in."""
        raise NotImplementedError

    def _decode(self, path: Path, key: FileKey, ack: Ack) -> list:
        """What one claimed file gives: a frame, or the reason it cannot be one (plus any change it revealed);
        raises FrameGone if it vanished."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the state file."""
        self.state.close()
