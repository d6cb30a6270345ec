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

Which files: those matching the kind's ``patterns``, less ``exclude`` (a file's or folder's name, or a path
below the root); hidden and excluded folders are never searched, and ``recursive`` sources do not follow
symlinked folders. A folder below the root that cannot be listed is logged once and left out; a folder that holds
files or folders but nothing the patterns take is said once, with examples (frames of another kind, or in folders
below it and ``recursive`` off: the commonest mistake in pointing a source at a camera's folder). Every poll lists
the folder (an old night's folder below it only when it changed, or once a minute), so the listing avoids per-file
work it does not need (docs/benchmarks.md "Watched folders").

Each kind says only how to order its files and how to turn one into a frame
(:meth:`FolderSource._sort_key`, :meth:`FolderSource._decode`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
import threading
import time
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
# A folder below the root whose files were all handled, unchanged for QUIET_AFTER_S, is not listed again while
# its modification time stays the same (a file created, renamed or deleted there changes it): an old night's
# folder costs one stat a poll, not one per frame. The folder a camera is writing into now is always listed (its
# time is fresh), so a network share's cached folder times cannot hold a new frame back. A file rewritten in place
# changes no folder's time, so every folder is listed afresh every FULL_SCAN_EVERY_S; the root always is.
# Likewise a handled file unchanged for QUIET_AFTER_S is not looked at again (no stat) between full listings while
# its folder lists it under the same inode (nor matched against the patterns again): a flat folder of months of
# frames costs a listing a poll, not a stat and two pattern matches per frame (docs/benchmarks.md).
# A new file, or one renamed over an old one, has another inode and is read at once. A file seen rewritten in
# place (an all-sky program's live image) is never still again; an old file rewritten in place for the first
# time waits for the full listing.
QUIET_AFTER_S = 600.0
FULL_SCAN_EVERY_S = 60.0


def _any_of(patterns: list[str]):
    """A case-insensitive match function for any of these shell patterns (never matching when there are none)."""
    if not patterns:
        return lambda _: False
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns)).match


def _split_exclude(patterns: list[str]) -> tuple:
    """(match a name, match a path below the root) for ``exclude`` patterns: a pattern with a '/' is a path."""
    names = [p for p in patterns if "/" not in p.strip("/")]
    paths = [p.strip("/") for p in patterns if "/" in p.strip("/")]
    return _any_of(names), _any_of(paths)


def excluded_below(patterns: list[str], relative: str) -> bool:
    """Whether ``exclude`` patterns leave out a path below the root ('/'-separated): a pattern without '/' matches
    the name of the file or of any folder on its way, one with '/' its path or a folder's above it."""
    by_name, by_path = _split_exclude(patterns)
    parts = relative.lower().strip("/").split("/")
    return any(by_name(part) for part in parts) or any(by_path("/".join(parts[:k])) for k in range(1, len(parts) + 1))


class FolderSource:
    """Iterates new, settled files in the kind's order; ``once`` stops when none are left or on their way."""

    recursive = False

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.root = Path(spec.path)
        if not self.root.is_dir():
            raise StartupError(f"source.path: {self.root} is not a directory")
        state = Path(spec.state_file) if spec.state_file else self.root / STATE_FILE
        self.state = ProcessedState(state)
        self._first_seen: dict[FileKey, float] = {}
        self._pruned_at, self._pruned_marks = time.monotonic(), 0
        self._real_prefix = os.path.join(os.path.realpath(self.root), "")  # the resolved root, ending in "/"
        # One regular expression per kind of test: a scan judges every file in the folder at every poll.
        self._included = _any_of(spec.patterns)
        self._excluded_name, self._excluded_path = _split_exclude(spec.exclude)
        self._unlistable_seen: set[str] = set()
        # quiet folder -> (its modification time, its files' key paths, its subfolders as (prefix, path))
        self._quiet: dict[str, tuple[int, list[str], list[tuple[str, str]]]] = {}
        self._full_scan_at = -FULL_SCAN_EVERY_S
        self._still: dict[str, tuple[int, FileKey]] = {}  # path below the root -> (inode, key) of a still file
        self._rewritten: set[str] = set()  # paths below the root seen in a second version: never still
        in_root = os.path.join(os.path.realpath(state.parent), "") == self._real_prefix
        self._own_names = {state.name + end for end in ("", "-wal", "-shm", "-journal")} if in_root else set()
        self._said_nothing_matches = False

    def stores(self) -> list:
        """Durable stores whose ``problem`` the publisher watches."""
        return [self.state]

    def _unlistable(self, folder: str, exc: OSError) -> None:
        """A folder below the root that cannot be listed: logged once and left out (one unreadable night's folder
        must not stop the others)."""
        if folder not in self._unlistable_seen:
            self._unlistable_seen.add(folder)
            log.warning("%s: cannot list this folder (%s); its files are left out", folder, exc.strerror or exc)

    def _entries(self, full: bool) -> tuple[list, dict, list[str], tuple[int, int, list[str]]]:
        """(candidate files as (entry, path below the root with '/', folder, its still record or None: a still file
        listed under the same inode is not judged again); the folders listed, as folder ->
        (modification time, subfolders, whether it is old enough to fall quiet); the key paths of the quiet folders
        not listed; the entries no pattern took, as (how many, how many of them folders, three examples)).
        ``full``: list every folder, quiet or not.

        Hidden and excluded folders are not searched, and symlinked folders not followed (no loops). A folder's
        own exclusion is judged when it is met, so a file is judged by its name and, for patterns with a '/',
        its path. Raises OSError when the root itself cannot be listed.
        """
        found, listed, quiet_paths, folders = [], {}, [], [("", str(self.root))]
        still = {} if full else self._still  # judged by the patterns when they fell still (the patterns do not change)
        passed_over, passed_folders, examples = 0, 0, []
        now = time.time()
        while folders:
            prefix, folder = folders.pop()
            try:
                mtime = os.stat(folder).st_mtime_ns if prefix else 0
                quiet = None if full or not prefix else self._quiet.get(folder)
                if quiet is not None and quiet[0] == mtime:
                    quiet_paths += quiet[1]
                    folders += quiet[2]
                    continue
                self._quiet.pop(folder, None)
                with os.scandir(folder) as listing:
                    entries = list(listing)
            except OSError as exc:
                self._quiet.pop(folder, None)
                if not prefix:
                    raise
                if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):  # gone: an old night deleted
                    self._unlistable(folder, exc)
                continue
            subfolders = []
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                relative = prefix + name
                known = still.get(relative)
                if known is not None and entry.inode() == known[0]:
                    found.append((entry, relative, folder, known))
                    continue
                lower = name.lower()
                if self._excluded_name(lower) or self._excluded_path(relative.lower()):
                    continue
                if self.recursive and entry.is_dir(follow_symlinks=False):
                    subfolders.append((relative + "/", entry.path))
                elif self._included(lower):
                    found.append((entry, relative, folder, None))
                elif prefix or name not in self._own_names:  # the source's own state file is no frame
                    is_dir = entry.is_dir(follow_symlinks=False)
                    passed_over, passed_folders = passed_over + 1, passed_folders + is_dir
                    if len(examples) < 3:
                        examples.append(relative + ("/" if is_dir else ""))
            folders += subfolders
            listed[folder] = (mtime, subfolders, bool(prefix) and now - mtime / 1e9 >= QUIET_AFTER_S)
        return found, listed, quiet_paths, (passed_over, passed_folders, examples)

    def _nothing_matches(self, passed_over: int, passed_folders: int, examples: list[str]) -> None:
        """Said once: the folder holds files (or folders) but nothing the source reads, the commonest mistake in
        pointing a source at a camera's folder (frames of another kind, or in folders below it)."""
        if self._said_nothing_matches:
            return
        self._said_nothing_matches = True
        below = passed_folders and not self.recursive
        hint = f" Frames in the {passed_folders} folder(s) below it are read with source.recursive: true." if below else ""
        log.warning(
            "%s: nothing here matches source.patterns (%s): %d entries passed over, e.g. %s. Nothing is read until "
            "a file that matches arrives.%s",
            self.root, ", ".join(self.spec.patterns), passed_over, ", ".join(examples), hint,
        )

    def _key(self, entry: os.DirEntry, relative: str) -> tuple[FileKey, os.stat_result] | None:
        """The file version's key and its status (following a symlink), or None if it is gone since the listing.

        The key's path is the resolved one (restart-safe state files depend on it). A plain file below the
        resolved root, reached through no symlinked folder, needs no resolving, which is most of a scan's cost
        on a folder of many thousand files.
        """
        try:
            if not entry.is_symlink():
                st = entry.stat()
                return (self._real_prefix + relative, st.st_size, st.st_mtime_ns), st
            path = Path(entry.path)
            try:
                st = path.stat()
            except FileNotFoundError:
                st = path.lstat()  # a dangling symlink: keyed by the link itself
            return file_key(path, st), st
        except FileNotFoundError:
            return None  # gone since the listing

    def _scan(self) -> tuple[list[tuple[Path, FileKey]], list[tuple[Path, FileKey, str]], bool]:
        """(files ready to read, in order; entries that can never be read, with why; whether others are settling).

        Raises OSError when the folder itself cannot be listed.
        """
        now, mono = time.time(), time.monotonic()
        ready, unusable, waiting = [], [], False
        first_seen: dict[FileKey, float] = {}
        full = mono - self._full_scan_at >= FULL_SCAN_EVERY_S
        if full:
            self._full_scan_at = mono
        entries, listed, quiet_paths, passed = self._entries(full)
        if full and not entries and not quiet_paths and passed[0]:
            self._nothing_matches(*passed)
        present: set[str] = set(quiet_paths)
        paths_in: dict[str, list[str]] = {}
        busy: set[str] = set()  # folders with a file not handled yet (or gone while listed): not quiet
        still: dict[str, tuple[int, FileKey]] = {}
        for entry, relative, folder, known in entries:
            if known is not None:
                key, st = known[1], None  # handled when it fell still, and its version is still the state's
            else:
                found = self._key(entry, relative)
                if found is None:
                    busy.add(folder)
                    continue
                key, st = found
            present.add(key[0])
            if listed[folder][2]:  # only a folder that may fall quiet needs its files' paths kept
                paths_in.setdefault(folder, []).append(key[0])
            if st is None:
                still[relative] = known
                continue
            if self.state.handled(key):
                if now - st.st_mtime >= QUIET_AFTER_S and relative not in self._rewritten and not entry.is_symlink():
                    still[relative] = (entry.inode(), key)
                continue
            if self.state.known(key[0]):
                self._rewritten.add(relative)
            busy.add(folder)
            p = Path(entry.path)
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISLNK(st.st_mode):
                    unusable.append((p, key, f"{p}: symlink to {os.readlink(p)!r}, which does not exist"))
                else:
                    target = f"symlink to {os.readlink(p)!r}, " if entry.is_symlink() else ""
                    unusable.append((p, key, f"{p}: {target}not a regular file (never read)"))
                continue
            seen = first_seen[key] = self._first_seen.get(key, mono)
            age = now - st.st_mtime
            if not (0 <= age and age >= self.spec.settle_s) and mono - seen < self.spec.settle_s:
                waiting = True  # still being written (or just arrived)
                continue
            ready.append((self._sort_key(p, st), p, key))
        self._first_seen, self._still = first_seen, still
        for folder, (mtime, subfolders, old) in listed.items():
            if old and folder not in busy:
                self._quiet[folder] = (mtime, paths_in.get(folder, []), subfolders)
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
