"""When a telescope frame was taken, from whatever its header says: ``MJD-OBS``; else ``DATE-OBS`` (an offset
such as ``-0700`` is honoured; none means UTC); else ``UT-OBS`` or ``DATE``; else the file's modification time
(said so). Used to order a field's epochs and to time them."""

from __future__ import annotations

import os
from datetime import datetime, timezone

MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01


def _mjd_of(when: datetime) -> float:
    return when.timestamp() / 86400.0 + MJD_UNIX_EPOCH


def _parse_time(text: str) -> datetime | None:
    text = str(text).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            when = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None


def observation_time(header: dict, path: str) -> tuple[float, str]:
    """(MJD at the start of the exposure, where it came from)."""
    if "MJD-OBS" in header:
        try:
            return float(header["MJD-OBS"]), "header:MJD-OBS"
        except (TypeError, ValueError):
            pass
    for key in ("DATE-OBS", "UT-OBS", "DATE"):
        if key in header:
            when = _parse_time(header[key])
            if when is not None:
                return _mjd_of(when), f"header:{key}"
    return os.path.getmtime(path) / 86400.0 + MJD_UNIX_EPOCH, "file-mtime"
