"""When a frame was taken, from the file itself, and which clock said so.

Sources, tried in the pipeline's configured order:

* ``fits``: ``DATE-AVG`` (mid-exposure) or ``DATE-OBS`` plus half of ``EXPTIME`` (``DATE-OBS`` is the start);
  FITS times are UTC.
* ``exif``: ``DateTimeOriginal`` (with ``SubSecTimeOriginal`` and ``OffsetTimeOriginal`` when present) in
  JPEG and TIFF files; without an offset it is local camera time (``camera_timezone``).
* ``filename``: a strftime pattern (``filename_format``) found anywhere in the file name, in camera time.
* ``file``: the file's modification time, the last resort: logged once per pipeline, because it is when
  the file was written, not when the sky was seen.

The message says which one was used (``captured_from``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from skyedge.errors import SkyedgeError

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
    def parse(value) -> datetime | None:
        try:
            t = datetime.fromisoformat(str(value).strip().replace("Z", ""))
        except ValueError:
            return None
        return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t

    if "DATE-AVG" in header and (t := parse(header["DATE-AVG"])) is not None:
        return t, "fits:DATE-AVG"
    if "DATE-OBS" in header and (t := parse(header["DATE-OBS"])) is not None:
        exptime = header.get("EXPTIME")
        if isinstance(exptime, (int, float)) and exptime > 0:
            return t + timedelta(seconds=exptime / 2), "fits:DATE-OBS+EXPTIME/2"
        return t, "fits:DATE-OBS"
    return None


def _exif_time(path: Path, camera_tz: tzinfo) -> tuple[datetime, str] | None:
    if path.suffix.lower() not in (".jpg", ".jpeg", ".tif", ".tiff"):
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            exif = im.getexif().get_ifd(0x8769)  # the Exif sub-IFD
    except Exception:  # noqa: BLE001 - no EXIF is simply no EXIF
        return None
    original = exif.get(0x9003)  # DateTimeOriginal
    if not original:
        return None
    try:
        t = datetime.strptime(str(original).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    sub = str(exif.get(0x9291) or "").strip()  # SubSecTimeOriginal
    if sub.isdigit():
        t = t.replace(microsecond=int(sub.ljust(6, "0")[:6]))
    offset = str(exif.get(0x9011) or "").strip()  # OffsetTimeOriginal, e.g. "+02:00"
    tz = parse_timezone(offset) if re.fullmatch(r"[+-]\d{2}:\d{2}", offset) else camera_tz
    return t.replace(tzinfo=tz), "exif:DateTimeOriginal"


class CaptureClock:
    """A pipeline's way of finding capture times (see the module docstring)."""

    def __init__(self, section, camera: str):
        self.sources, self.camera = list(section.sources), camera
        self.timezone = parse_timezone(section.camera_timezone)
        self.fmt = section.filename_format
        self.pattern = _pattern_regex(self.fmt) if self.fmt else None
        if "filename" in self.sources and self.fmt is None:
            self.sources.remove("filename")  # nothing to look for in the name
        self._warned = False

    def of(self, path: str, header: dict, fallback: float | None, fallback_clock: str = "file-mtime") -> CaptureTime | None:
        """The capture time of the frame read from ``path`` (with its header); ``fallback`` is the time the
        source itself recorded (``fallback_clock``: the file's modification time, or the camera read)."""
        found = None
        for source in self.sources:
            if source == "fits":
                found = _fits_time(header)
            elif source == "exif":
                found = _exif_time(Path(path), self.timezone)
            elif source == "filename":
                match = self.pattern.search(Path(path).name)
                if match:
                    try:
                        found = datetime.strptime(match.group(0), self.fmt).replace(tzinfo=self.timezone), "filename"
                    except ValueError:
                        found = None
            elif source == "file" and fallback is not None:
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
            if found is not None:
                return CaptureTime(found[0].timestamp(), found[1])
        return None
