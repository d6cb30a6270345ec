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
    try:  # the old file's permissions, not mkstemp's owner-only ones: a person reads these files too
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
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
