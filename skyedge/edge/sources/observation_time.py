"""When a telescope frame was taken, from whatever its header says: ``MJD-OBS`` (a finite number); else
``DATE-OBS`` (an offset such as ``-0700`` is honoured, none means UTC; a bare date takes its time of day from
``TIME-OBS`` or ``UT``); else ``UT-OBS`` or ``DATE``; else the file's modification time (said so). Read by
:mod:`skyedge.fits_time`, alike on Python 3.10 and later. Used to order a field's epochs and to time them."""

from __future__ import annotations

import os
from datetime import datetime

from skyedge.fits_time import header_mjd, header_time

MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01


def _mjd_of(when: datetime) -> float:
    return when.timestamp() / 86400.0 + MJD_UNIX_EPOCH


def observation_time(header: dict, path: str) -> tuple[float, str]:
    """(MJD at the start of the exposure, where it came from)."""
    if header_mjd(header, "MJD-OBS") is not None:
        return float(header["MJD-OBS"]), "header:MJD-OBS"
    for key in ("DATE-OBS", "UT-OBS", "DATE"):
        if key in header:
            when = header_time(header, key)
            if when is not None:
                return _mjd_of(when), f"header:{key}"
    return os.path.getmtime(path) / 86400.0 + MJD_UNIX_EPOCH, "file-mtime"
