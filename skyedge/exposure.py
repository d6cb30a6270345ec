"""The exposure time a frame's file records: how an auto-exposing camera says it is daylight.

An all-sky camera with automatic exposure keeps the sky at a useful level day and night, so a daylight frame
can look like a bright, structured night sky. Its exposure cannot: a night sky needs seconds (even a full
moon's sky about a second), daylight a millisecond or less. The camera program writes the exposure into the
file: FITS ``EXPTIME`` (or ``EXPOSURE``), EXIF ``ExposureTime`` in JPEG, TIFF, PNG and WebP (:mod:`skyedge.exif`). A
frame exposed for less than ``day_max_exposure_s`` is a daytime frame, whatever the pixels suggest; the edge
answers it ``day``.
"""

from __future__ import annotations

import math
from pathlib import Path

from skyedge.exif import FileExif

DAY_MAX_EXPOSURE_S = 0.01  # shorter than a 25 fps video frame (0.04 s), far longer than daylight's ~0.001 s
NIGHT_MIN_EXPOSURE_S = 1.0  # this long or longer: no camera exposes daylight so long, it is night (or twilight)
_EXPOSURE_TIME = 0x829A


def _positive(value) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def exposure_seconds(path: str | Path, header: dict | None = None, exif: FileExif | None = None) -> float | None:
    """The recorded exposure of the frame read from ``path`` (FITS ``header`` given; ``exif``: the file's EXIF when
    another reader shares it), or None when none is."""
    header = header or {}
    for key in ("EXPTIME", "EXPOSURE"):
        if key in header:
            return _positive(header[key])
    tags = (exif or FileExif(path)).tags  # JPEG keeps it in the Exif sub-IFD, a TIFF may in IFD0: both read
    return _positive(tags.get(_EXPOSURE_TIME)) if tags else None


def is_daylight_exposure(exposure_s: float | None, limit_s: float | None = DAY_MAX_EXPOSURE_S) -> bool:
    """Whether an exposure this short means a daytime frame (False when either is unknown or the check is off)."""
    return exposure_s is not None and limit_s is not None and exposure_s < limit_s


def is_night_exposure(exposure_s: float | None, limit_s: float | None = NIGHT_MIN_EXPOSURE_S) -> bool:
    """Whether a recorded exposure is one only a night sky gets (``limit_s`` or longer)."""
    return exposure_s is not None and limit_s is not None and exposure_s >= limit_s
