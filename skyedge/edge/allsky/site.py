"""What the sky should look like for one frame of one camera: capture time, sun and moon, day gating, cross-checks.

For each frame, :meth:`SiteView.observe` finds the capture time (:mod:`skyedge.edge.allsky.capture_time`), the sun
and moon then (:mod:`skyedge.ephemeris`), whether it is day (sun above ``day_sun_alt_deg``: the frame
is not given to the night-sky model), and, with a camera orientation, where the moon is in the image and
whether its glare is there. After the model answers, :meth:`SiteView.check` holds the answer against
physics (docs/observatory-control.md "Cross-checks"):

* ``moon_below_horizon``: the model says ``moon`` while the moon is more than 2 degrees below the horizon
  (2 degrees of slack: refraction and the glow of a just-set moon);
* ``bright_moon_unseen``: the model says ``clear`` while a moon at least ``bright_moon_min_illumination``
  full is higher than ``bright_moon_min_alt_deg`` and the frame shows no glare where it should be (needs
  ``orientation``).

Before the model, the frame's recorded exposure is held against the sun at its capture time
(``clock_vs_exposure``): a daylight exposure under a sun at least ``CLOCK_NIGHT_SUN_DEG`` down, or a night-long
one (in a frame that shows a sky: not saturated, capped or blank) under a sun at least ``CLOCK_DAY_SUN_DEG`` up,
is something no sky does; the capture clock or its time zone is the likely fault. The frame's answer stands (day
either way by the rules above), flagged, counted and logged at most every ``CLOCK_WARN_EVERY_S``: with a wrong
clock the sun's day gate and every cross-check against the ephemeris are wrong too, and only a person can mend it.

Each check is ``off``, ``flag`` (named in the message's ``checks``) or ``unrecognised`` (flagged, and the
class becomes ``unrecognised``, so it counts as unsafe); ``moon_below_horizon`` may also ``reclassify`` (the
task takes the model's 'moon' out before this check, as its 'day' at night, and the next class answers).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from skyedge.edge.allsky.capture_time import CaptureClock
from skyedge.ephemeris import Ephemeris, SkyEphemeris
from skyedge.exif import FileExif
from skyedge.exposure import exposure_seconds, is_daylight_exposure, is_night_exposure
from skyedge.sanity import frame_problem
from skyedge.stars.lens import Lens

log = logging.getLogger(__name__)

DAY = "day"
MOON_SET_SLACK_DEG = 2.0
GLARE_MIN_RATIO = 1.3  # median brightness near the moon over the sky's median: below this, no visible glare
GLARE_RADIUS = 0.12  # of the horizon radius
# A daylight exposure is impossible under an astronomically dark sky, and a night-long one (unsaturated) in
# sunlight: past these the clock is doubted, not the sky. Twilight between them is left alone.
CLOCK_NIGHT_SUN_DEG = -18.0
CLOCK_DAY_SUN_DEG = 5.0
CLOCK_WARN_EVERY_S = 3600.0


@dataclass(frozen=True)
class Observation:
    """What the site says about one frame before the model sees it."""

    captured: float | None
    captured_from: str | None
    ephemeris: SkyEphemeris | None
    day: bool
    moon_xy: tuple[float, float] | None
    moon_glare: float | None
    exposure_s: float | None = None  # as the file records it
    day_from: str | None = None  # why the frame is 'day': 'ephemeris' (the sun is up) or 'exposure' (a daylight one)
    # What decided day or night: 'sun' (site and capture time), 'exposure' (a daylight or a night-long one), or
    # 'model' (neither known: the model's own 'day' class decides).
    day_evidence: str = "model"
    clock_doubt: bool = False  # the recorded exposure and the sun at the capture time disagree (check clock_vs_exposure)

    @property
    def checks(self) -> tuple[str, ...]:
        """The cross-checks this frame failed before any model saw it."""
        return ("clock_vs_exposure",) if self.clock_doubt else ()

    @property
    def night_known(self) -> bool:
        """Physics says it is night: the model's 'day' class may not overrule it."""
        return not self.day and self.day_evidence != "model"

    def message_fields(self) -> dict:
        """Fields of the classification message."""
        out: dict = {"day_evidence": self.day_evidence}
        if self.captured_from:
            out["captured_from"] = self.captured_from
        if self.exposure_s is not None:
            out["exposure_s"] = self.exposure_s
        if self.day_from is not None:
            out["day_from"] = self.day_from
        if self.ephemeris is not None:
            out["ephemeris"] = self.ephemeris.message()
            if self.moon_xy is not None:
                out["ephemeris"]["moon_xy"] = [round(self.moon_xy[0], 1), round(self.moon_xy[1], 1)]
        return out


def sky_to_pixel(alt_deg: float, az_deg: float, shape: tuple[int, int], orientation) -> tuple[float, float]:
    """(x, y) pixel of a sky direction for an all-sky lens with the given orientation."""
    x, y = Lens.from_orientation(orientation, shape).project(alt_deg, az_deg)
    return float(x), float(y)


def glare_ratio(image: np.ndarray, xy: tuple[float, float], shape: tuple[int, int], orientation) -> float | None:
    """Median brightness within a small disc around ``xy`` over the median of the whole sky circle."""
    h, w = shape
    radius = orientation.horizon_radius * min(h, w)
    cx, cy = orientation.centre[0] * (w - 1), orientation.centre[1] * (h - 1)
    gray = image.astype(np.float32) if image.ndim == 2 else image.astype(np.float32).mean(axis=2)
    yy, xx = np.ogrid[0:h, 0:w]
    sky = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    near = (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= (GLARE_RADIUS * radius) ** 2
    near &= sky
    sky_values = gray[sky & np.isfinite(gray)]
    near_values = gray[near & np.isfinite(gray)]
    if sky_values.size == 0 or near_values.size == 0:
        return None
    base = float(np.median(sky_values))
    return float(np.median(near_values)) / max(base, 1e-6)


class SiteView:
    """One pipeline's site awareness (thread use: ``observe`` on the source thread, ``check`` on inference)."""

    def __init__(self, section, ephemeris: Ephemeris | None):
        self.ephemeris = ephemeris
        self.clock = CaptureClock(section.capture_time, section.camera)
        self.day_sun_alt_deg = section.day_sun_alt_deg
        self.day_max_exposure_s = section.day_max_exposure_s
        self.night_min_exposure_s = section.night_min_exposure_s
        self.checks = section.checks
        self.orientation = section.orientation
        self.camera = section.camera
        self._clock_warned = -float("inf")  # monotonic time of the last clock_vs_exposure warning

    def observe(self, raw) -> Observation:
        """Capture time, ephemeris, exposure, day or not, and the moon's place and glare in this frame (a RawFrame).

        Day is decided by the sun (with a site location) or, on any camera, by a daylight exposure."""
        image, file_time = raw.image, raw.captured
        exif = FileExif(raw.source)  # read at most once, by whichever of the two asks first
        when = self.clock.of(raw.source, raw.header, raw.captured, raw.clock, exif)
        wanted = self.day_max_exposure_s is not None or self.night_min_exposure_s is not None
        exposure = exposure_seconds(raw.source, raw.header, exif) if wanted else None
        by_exposure = "exposure" if is_daylight_exposure(exposure, self.day_max_exposure_s) else None
        if when is None or self.ephemeris is None:
            captured, source = (when.posix, when.source) if when else (file_time, None)
            night = is_night_exposure(exposure, self.night_min_exposure_s)
            evidence = "exposure" if by_exposure or night else "model"
            return Observation(
                captured, source, None, by_exposure is not None, None, None, exposure, by_exposure, evidence
            )
        eph = self.ephemeris.at(when.posix)
        day_from = "ephemeris" if eph.sun_alt_deg > self.day_sun_alt_deg else by_exposure
        moon_xy = glare = None
        if self.orientation is not None and eph.moon_alt_deg > 0 and day_from is None:
            moon_xy = sky_to_pixel(eph.moon_alt_deg, eph.moon_az_deg, image.shape[:2], self.orientation)
            if self._glare_matters(eph):
                glare = glare_ratio(image, moon_xy, image.shape[:2], self.orientation)
        evidence = "exposure" if day_from == "exposure" else "sun"
        doubt = self._clock_doubt(raw, when, eph.sun_alt_deg, exposure, by_exposure is not None)
        return Observation(when.posix, when.source, eph, day_from is not None, moon_xy, glare, exposure, day_from, evidence, doubt)

    def _clock_doubt(self, raw, when, sun_alt_deg: float, exposure: float | None, daylight: bool) -> bool:
        """Whether the recorded exposure (``daylight``: a daylight one) says the opposite of the sun at the capture
        time (logged at most hourly)."""
        if self.checks.clock_vs_exposure == "off" or exposure is None:
            return False
        if daylight and sun_alt_deg <= CLOCK_NIGHT_SUN_DEG:
            says = "a daylight exposure"
        elif is_night_exposure(exposure, self.night_min_exposure_s) and sun_alt_deg >= CLOCK_DAY_SUN_DEG:
            # A camera that keeps its night exposure by day writes white frames, consistent with the sun; a capped
            # lens or a dead sensor shows no sky at all. Only a frame that looks like a sky can doubt the clock.
            if frame_problem(raw.image) is not None:
                return False
            says = "a night-long exposure"
        else:
            return False
        now = time.monotonic()
        if now - self._clock_warned >= CLOCK_WARN_EVERY_S:
            self._clock_warned = now
            stamp = datetime.fromtimestamp(when.posix, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            log.warning(
                "%s: %s was exposed %.4g s, %s, but its capture time (%s, %s) puts the sun at %.1f deg: the camera's "
                "clock or the pipeline's capture_time.camera_timezone is likely wrong (a lamp in the lens can do this "
                "too). Said at most hourly; counted as check_clock_vs_exposure",
                self.camera, raw.frame_id, exposure, says, when.source, stamp, sun_alt_deg,
            )
        return True

    def _glare_matters(self, eph: SkyEphemeris) -> bool:
        c = self.checks
        return (
            c.bright_moon_unseen != "off"
            and eph.moon_alt_deg >= c.bright_moon_min_alt_deg
            and eph.moon_illumination >= c.bright_moon_min_illumination
        )

    @property
    def checks_clock(self) -> bool:
        """Whether frames' exposures are checked against the sun at their capture times (``clock_vs_exposure``)."""
        return self.ephemeris is not None and self.checks.clock_vs_exposure != "off"

    @staticmethod
    def moon_down(seen: Observation | None) -> bool:
        """Whether the ephemeris puts the moon below the horizon (False when unknown)."""
        eph = seen.ephemeris if seen is not None else None
        return eph is not None and eph.moon_alt_deg < -MOON_SET_SLACK_DEG

    def check(self, label: str, seen: Observation | None) -> tuple[list[str], bool]:
        """(failed cross-checks, whether they make the answer 'unrecognised')."""
        if seen is None or seen.ephemeris is None:
            return [], False
        failed, unknown = list(seen.checks), False
        eph, c = seen.ephemeris, self.checks
        if c.moon_below_horizon != "off" and label == "moon" and self.moon_down(seen):
            failed.append("moon_below_horizon")
            # Under 'reclassify' a 'moon' still here named no next class (the task's _moon_set): refused.
            unknown |= c.moon_below_horizon in ("unrecognised", "reclassify")
        if (
            label == "clear"
            and seen.moon_glare is not None
            and self._glare_matters(eph)
            and seen.moon_glare < GLARE_MIN_RATIO
        ):
            failed.append("bright_moon_unseen")
            unknown |= c.bright_moon_unseen == "unrecognised"
        return failed, unknown
