"""Times written in FITS headers (and other ISO 8601 text), read the same on every Python the edge runs on.

``datetime.fromisoformat`` on Python 3.10 (JetPack 6's) refuses much of what cameras write: a fraction of one,
two, four, five or seven digits (``18:33:43.5``), an offset without its colon (``-0700``, MicroObservatory's), a
``Z``. 3.11 reads them all, so a frame would carry its time on the workstation and silently lose it on the device.
This parser reads them alike everywhere. Naive times are UTC, as FITS says.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_iso_utc(text) -> datetime | None:
    """A date with a time of day (ISO 8601: any fraction of a second, ``Z`` or an offset with or without its colon)
    as an aware datetime; None for anything else, a bare date included."""
    match = _ISO.fullmatch(str(text).strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = round(int(fraction[:7].ljust(7, "0")) / 10) if fraction else 0  # to the microsecond, rounded
    try:
        t = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=_zone(offset))
    except ValueError:
        return None
    return t + timedelta(microseconds=micro)


def _zone(offset: str | None) -> timezone:
    if offset is None or offset.upper() == "Z":
        return timezone.utc
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)
    return timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))


def header_time(header, key: str) -> datetime | None:
    """``header[key]`` as a time; a bare date (the older convention) with its time of day from ``TIME-OBS`` or
    ``UT``, and without one None: midnight would be a guess."""
    text = str(header.get(key, "") or "").strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        clock = next((str(header[k]).strip() for k in ("TIME-OBS", "UT") if header.get(k) not in (None, "")), None)
        text = f"{text}T{clock}" if clock is not None else ""
    return parse_iso_utc(text) if text else None


def header_mjd(header, key: str) -> datetime | None:
    """``header[key]`` as a Modified Julian Date, or None when it is not a finite number in a plausible range."""
    value = header.get(key)
    try:
        days = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        return None
    return MJD_EPOCH + timedelta(days=days) if math.isfinite(days) and 0 < days < 200_000 else None
