"""When a frame was taken, from the file itself, and which clock said so.

Sources, tried in the pipeline's configured order:

* ``fits``: ``DATE-AVG`` or ``MJD-AVG`` (mid-exposure), else ``DATE-OBS`` or ``MJD-OBS`` (the start) plus half of
  ``EXPTIME``; a ``DATE-OBS`` that holds only a date takes its time from ``TIME-OBS`` or ``UT`` (the older
  convention), and without one is no capture time (midnight would be a guess). FITS times are UTC.
* ``exif``: ``DateTimeOriginal`` (with ``SubSecTimeOriginal`` and ``OffsetTimeOriginal`` when present) in
  JPEG, TIFF, PNG and WebP files (:mod:`skyedge.exif`), else ``DateTimeDigitized``, else IFD0's ``DateTime`` (some
  cameras write only that); without an offset it is local camera time (``camera_timezone``).
* ``filename``: a strftime pattern (``filename_format``) found anywhere in the file name, in camera time.
* ``file``: the file's modification time, the last resort: logged once per pipeline, because it is when
  the file was written, not when the sky was seen.

The message says which one was used (``captured_from``). A time before ``EARLIEST`` (2001) is a camera clock
that was reset (1970, 1980 and 2000 are what reset clocks read), not a capture time: it is logged once and the
next source is tried, so a reset camera clock falls back to the file's time rather than placing the sun wrong.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from skyedge.errors import SkyedgeError
from skyedge.exif import FileExif
from skyedge.fits_time import header_mjd, header_time

log = logging.getLogger(__name__)

_FIELDS = {
    "%Y": r"\d{4}",
    "%m": r"\d{2}",
    "%d": r"\d{2}",
    "%H": r"\d{2}",
    "%M": r"\d{2}",
    "%S": r"\d{2}",
    "%f": r"\d{1,6}",
    "%j": r"\d{3}",
    "%y": r"\d{2}",
    "%%": "%",
}


EARLIEST = datetime(2001, 1, 1, tzinfo=timezone.utc)
MAX_EXPOSURE_S = 86400.0  # a longer EXPTIME is a garbled header, not an exposure: DATE-OBS is used as it stands


class CaptureTimeError(SkyedgeError, ValueError):
    """A capture-time setting that cannot work (named key)."""


@dataclass(frozen=True)
class CaptureTime:
    """A POSIX time and the clock it came from."""

    posix: float
    source: str


def parse_timezone(name: str) -> tzinfo:
    """``UTC``, ``+02:00`` / ``-0530``, or an IANA name such as ``Europe/Madrid``."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CaptureTimeError(
            f"capture_time.camera_timezone: unknown time zone {name!r} (UTC, +HH:MM or an IANA name)"
        ) from None


def _pattern_regex(fmt: str) -> re.Pattern:
    out, i = "", 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            code = fmt[i : i + 2]
            if code not in _FIELDS:
                raise CaptureTimeError(f"capture_time.filename_format: {code} is not supported ({', '.join(_FIELDS)})")
            out += _FIELDS[code]
            i += 2
        else:
            out += re.escape(fmt[i])
            i += 1
    return re.compile(out)


def _fits_time(header: dict) -> tuple[datetime, str] | None:
    for key, read in (("DATE-AVG", header_time), ("MJD-AVG", header_mjd)):
        if key in header and (t := read(header, key)) is not None:
            return t, f"fits:{key}"
    for key, read in (("DATE-OBS", header_time), ("MJD-OBS", header_mjd)):
        if key in header and (t := read(header, key)) is not None:
            exptime = header.get("EXPTIME")
            if isinstance(exptime, (int, float)) and not isinstance(exptime, bool) and 0 < exptime < MAX_EXPOSURE_S:
                return t + timedelta(seconds=exptime / 2), f"fits:{key}+EXPTIME/2"
            return t, f"fits:{key}"
    return None


# (tag, its sub-second tag, its offset tag, name), in order of preference: when the shutter opened, when the
# image was stored, when the file was last changed by the camera (IFD0, which some cameras fill alone).
_EXIF_TIMES = (
    (0x9003, 0x9291, 0x9011, "DateTimeOriginal"),
    (0x9004, 0x9292, 0x9012, "DateTimeDigitized"),
    (0x0132, 0x9290, 0x9010, "DateTime"),
)


def _exif_time(file_exif: FileExif, camera_tz: tzinfo) -> tuple[datetime, str] | None:
    exif = file_exif.tags
    if exif is None:
        return None
    for tag, subsec_tag, offset_tag, name in _EXIF_TIMES:
        try:
            t = datetime.strptime(str(exif.get(tag) or "").strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue  # absent, blank or "0000:00:00 00:00:00": the next tag
        sub = str(exif.get(subsec_tag) or "").strip()
        if sub.isdigit():
            t = t.replace(microsecond=int(sub.ljust(6, "0")[:6]))
        offset = str(exif.get(offset_tag) or "").strip()  # e.g. "+02:00"
        tz = parse_timezone(offset) if re.fullmatch(r"[+-]\d{2}:\d{2}", offset) else camera_tz
        return t.replace(tzinfo=tz), f"exif:{name}"
    return None


class CaptureClock:
    """A pipeline's way of finding capture times (see the module docstring)."""

    def __init__(self, section, camera: str):
        self.sources, self.camera = list(section.sources), camera
        self.timezone = parse_timezone(section.camera_timezone)
        self.fmt = section.filename_format
        self.pattern = _pattern_regex(self.fmt) if self.fmt else None
        if "filename" in self.sources and self.fmt is None:
            self.sources.remove("filename")  # nothing to look for in the name
        self._warned = self._reset_warned = False

    def of(self, path: str, header: dict, fallback: float | None, fallback_clock: str = "file-mtime",
           exif: FileExif | None = None) -> CaptureTime | None:
        """The capture time of the frame read from ``path`` (with its header; ``exif``: the file's EXIF when another
        reader shares it); ``fallback`` is the time the source itself recorded (``fallback_clock``: the file's
        modification time, or the camera read)."""
        exif = exif or FileExif(path)
        for source in self.sources:
            if source == "file":
                found = (datetime.fromtimestamp(fallback, timezone.utc), fallback_clock) if fallback is not None else None
            else:
                found = self._read(source, path, header, exif)
            if found is None or self._reset(found, path):
                continue
            if source == "file":
                if not self._warned and fallback_clock == "file-mtime":
                    log.warning(
                        "%s: no capture time in %s (tried %s); using file times, which say when a file was "
                        "written, not when the sky was seen (logged once)",
                        self.camera,
                        Path(path).name,
                        ", ".join(s for s in self.sources if s != "file"),
                    )
                    self._warned = True
                return CaptureTime(fallback, fallback_clock)
            return CaptureTime(found[0].timestamp(), found[1])
        return None

    def _read(self, source: str, path: str, header: dict, exif: FileExif) -> tuple[datetime, str] | None:
        """The time one source gives, and its name, or None."""
        if source == "fits":
            return _fits_time(header)
        if source == "exif":
            return _exif_time(exif, self.timezone)
        match = self.pattern.search(Path(path).name) if source == "filename" else None
        if match is None:
            return None
        try:
            return datetime.strptime(match.group(0), self.fmt).replace(tzinfo=self.timezone), "filename"
        except ValueError:
            return None

    def _reset(self, found: tuple[datetime, str], path: str) -> bool:
        """Whether ``found`` is a reset clock's (before ``EARLIEST``), said once per pipeline."""
        if found[0] >= EARLIEST:
            return False
        if not self._reset_warned:
            log.warning(
                "%s: %s says %s was taken at %s, before %d: a reset clock, not a capture time; the next source in "
                "capture_time.sources is used, and with none left the frame has no capture time (logged once)",
                self.camera, found[1], Path(path).name, found[0].isoformat(), EARLIEST.year,
            )
            self._reset_warned = True
        return True
