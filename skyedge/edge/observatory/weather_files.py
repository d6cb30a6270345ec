"""The files observatory control software already reads: a Boltwood II one-line file and an INDI Weather Watcher file.

* **Boltwood II** (Clarity II's "single line data file"): read without a driver by ACP, Voyager, SkyRoof,
  CCD Commander and others. Fixed columns: local date and time, units, sky-minus-ambient, ambient and sensor
  temperatures, wind, humidity, dew point, heater, rain and wet flags, seconds since the last valid data,
  the VB6 ``Now()`` day number, then the condition fields: cloud (0 unknown, 1 clear, 2 cloudy, 3 very
  cloudy), wind, rain, daylight (0 unknown, 1 dark, 2 light, 3 very light), roof-close request and alert.
  skyedge measures none of the temperatures, wind or humidity: those columns are 0 and their condition
  fields 0 (unknown); software that acts on them must be told they are not measured.
* **Weather Watcher** (INDI, for Ekos): ``key=value`` lines. ``clouds`` is the cloud cover in percent (the
  driver's default keyword, safe range 0-20); the driver ignores the other keys, written for people.

Cloud condition: from the cloud map's cover where the model has one (below ``clear_below`` percent clear, from
``very_cloudy_above`` very cloudy, between cloudy), else from the class (the safe classes clear, ``cloudy``
very cloudy, aurora and others cloudy, ``unrecognised`` unknown). Stale data (no classification for
``stale_after_s``) is marked as such: Boltwood's cloud field goes to 0 with the alert flag and the roof-close
request set and ``Since`` counting; Weather Watcher's ``clouds`` goes to 100, so Ekos closes.
Files are written atomically (a temporary file renamed over the old one), by the publisher thread only.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

VB6_EPOCH = datetime(1899, 12, 30)  # day 0 of VB6's Now()
UNKNOWN, CLEAR, CLOUDY, VERY_CLOUDY = 0, 1, 2, 3


@dataclass
class Reading:
    """The latest classification as the files report it."""

    at: float  # time.time() of the classification
    label: str
    cloud_cover: float | None
    sun_alt_deg: float | None
    safe: bool


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class WeatherFiles:
    """Writes the configured files after every classification and, between them, as data goes stale."""

    def __init__(self, section, safe_classes: list[str]):
        self.boltwood = Path(section.boltwood) if section.boltwood else None
        self.watcher = Path(section.weather_watcher) if section.weather_watcher else None
        self.clear_below, self.very_cloudy_above = section.clear_below, section.very_cloudy_above
        self.stale_after_s = section.stale_after_s
        self.safe_classes = set(safe_classes)
        self.last: Reading | None = None
        self._written_stale = False
        self.problem: str | None = None

    @property
    def path(self) -> Path:
        """Where the files go (for the publisher's storage events)."""
        return self.boltwood or self.watcher

    def retry(self) -> None:
        """After a failed write: try again (the publisher's store check)."""
        if self.problem is not None and self.last is not None:
            self._write(time.time())

    def cloud_condition(self, r: Reading) -> int:
        """0 unknown, 1 clear, 2 cloudy, 3 very cloudy."""
        if r.cloud_cover is not None:
            if r.cloud_cover < self.clear_below:
                return CLEAR
            return VERY_CLOUDY if r.cloud_cover >= self.very_cloudy_above else CLOUDY
        if r.label in self.safe_classes:
            return CLEAR
        if r.label == "cloudy":
            return VERY_CLOUDY
        return UNKNOWN if r.label in ("unrecognised", "day") else CLOUDY

    @staticmethod
    def daylight(r: Reading) -> int:
        """0 unknown, 1 dark, 2 light (twilight), 3 very light (the sun up)."""
        if r.sun_alt_deg is not None:
            return 3 if r.sun_alt_deg > 0 else 2 if r.sun_alt_deg > -12 else 1
        return 3 if r.label == "day" else 1 if r.label != "unrecognised" else 0

    def update(self, reading: Reading) -> None:
        """A new classification: write both files now."""
        self.last, self._written_stale = reading, False
        self._write(time.time())

    def check(self, now: float | None = None) -> None:
        """Called on the publisher's clock: rewrite once the data has gone stale (and keep ``Since`` counting)."""
        if self.last is None:
            return
        now = time.time() if now is None else now
        stale = now - self.last.at > self.stale_after_s
        if stale or self._written_stale:
            self._written_stale = stale
            self._write(now)

    def _write(self, now: float) -> None:
        r = self.last
        stale = now - r.at > self.stale_after_s
        try:
            if self.boltwood is not None:
                atomic_write(self.boltwood, boltwood_line(r, now, self.cloud_condition(r), self.daylight(r), stale) + "\n")
            if self.watcher is not None:
                atomic_write(self.watcher, watcher_text(r, now, stale))
            self.problem = None
        except OSError as exc:  # a full or read-only disk: reported by the publisher, retried next time
            if self.problem is None:
                log.error("cannot write the weather files: %s", exc)
            self.problem = str(exc)


def boltwood_line(r: Reading, now: float, cloud: int, daylight: int, stale: bool) -> str:
    """One Boltwood II line (Clarity II's fixed columns) for reading ``r`` written at ``now``."""
    local = datetime.fromtimestamp(now)
    since = min(int(now - r.at), 99999)
    days = (local - VB6_EPOCH).total_seconds() / 86400.0
    if stale:
        cloud = UNKNOWN
    close = 1 if (stale or not r.safe) else 0
    alert = 1 if (stale or cloud == VERY_CLOUDY) else 0
    return (
        f"{local:%Y-%m-%d} {local:%H:%M:%S}.{local.microsecond // 10000:02d} C K"
        f" {0.0:6.1f} {0.0:6.1f} {0.0:6.1f} {0.0:6.1f} {0:3d} {0.0:6.1f} {0:3d}"
        f" 0 0 {since:05d} {days:012.5f} {cloud} {UNKNOWN} {UNKNOWN} {daylight} {close} {alert}"
    )


def watcher_text(r: Reading, now: float, stale: bool) -> str:
    """Weather Watcher ``key=value`` lines: ``clouds`` in percent (100 when stale: unsafe)."""
    if stale:
        clouds = 100.0
    elif r.cloud_cover is not None:
        clouds = r.cloud_cover
    else:
        clouds = 0.0 if r.safe else 100.0  # no map: the safety verdict, as all or nothing
    lines = {
        "clouds": f"{clouds:.1f}",
        "skyedge_class": r.label,
        "skyedge_safe": "1" if (r.safe and not stale) else "0",
        "skyedge_stale": "1" if stale else "0",
        "skyedge_age_s": f"{now - r.at:.0f}",
        "skyedge_updated": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())
