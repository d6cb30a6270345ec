"""Files a device keeps rewriting for months (a camera's geometry, its static places): replaced whole or not at all,
and on the disk before they replace the old one.

A temporary file renamed over the old one keeps readers from half a file, but not a power cut: the rename can reach
the disk before the data does, and the file is then empty or full of NUL bytes (ext4 guards the common case,
other file systems and SD cards need not). So the data is flushed to the disk first, and the folder after the
rename. Rewriting a camera geometry costs one fsync per clear frame taught (at most one per ``solve_every_s``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data``, durably: a crash at any point leaves either the old file or the new one."""
    path = Path(path)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _mode_for(path: Path) -> int:
    """The old file's permissions, or what ``open()`` gives a new one (0666 less the umask): mkstemp's owner-only
    file would hide it from the service user or the person that reads it."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (another thread may be creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Put the rename itself on the disk (best effort: not every system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
