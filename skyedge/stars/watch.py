"""One camera's stars, frame after frame: detection, visibility against the saved geometry, and upkeep of that
geometry when the camera has none or has moved.

Per night frame (:meth:`StarWatch.observe`, the pipeline's source thread; ~20-200 ms for 0.25-4 Mpixel):

1. stars are detected (:mod:`skyedge.stars.detection`), without the places that stay put while the sky turns
   (:mod:`skyedge.stars.static_spots`: a colour camera's hot pixels, a lamp; kept beside the geometry file, at
   most ``SPOTS_SAVE_EVERY_S`` of capture time behind, so that a restart does not unlearn them);
2. with a geometry, the expected stars are compared with them (:mod:`skyedge.stars.visibility`);
3. without one, or when a frame with many stars sees few of the expected ones (a remounted or rotated camera
   looks exactly like that; a cloudy frame has too few stars to try), the frame is solved blind
   (:mod:`skyedge.stars.solve`, 0.3-0.4 s on 2 cores, at most once per ``solve_every_s``). A solution that holds
   replaces the geometry and is saved; a frame that does not solve leaves the saved geometry alone. With a geometry, the
   camera's clock is checked too (:mod:`skyedge.stars.clock`): a frame whose stars the saved lens matches at
   another time, clearly better than the blind solve at its stated time, has a wrong capture time, not a moved
   camera, and its solution is not adopted (it would be a lens shifted to make up for the time); the log says by how much, and so does each message's ``stars`` object
   (``clock_offset_min``) until a frame's stars are seen at their stated time again. A camera's first solve has no
   lens to check the clock against; there the sky is fitted at other times too
   (:func:`~skyedge.stars.clock.solved_at_another_time`), and a clearly better fit is adopted and said the same way;
4. otherwise a frame with many stars *tracks* the geometry, at most once per ``solve_every_s``: the saved lens
   is refitted to this frame's stars, starting where it is (matches within 3 deg, then 1), and replaces the saved
   one only when it matches ``TRACK_GAIN`` times the stars the saved lens does. A camera that settles or is
   nudged by a few pixels still sees half its sky's stars, so the blind solve never fires, but the zenith's
   stars fall outside their 1-degree circles and the cross-check reads cloud: on the real development camera a
   6-pixel drift between 2021 and 2023 left a clear frame reading 0.39 of its zenith stars (docs/results.md).

Limiting magnitudes come from the geometry file; a camera solved here learns them from the completeness of every
clear frame it sees with its geometry (:mod:`skyedge.stars.depth`: at most one per ``solve_every_s``, pooled with
a memory of about 200 clear frames and kept in the geometry file, so they follow the camera over months and
across restarts), after ``LEARN_FRAMES`` of them: until then its visibility is unknown (None), never guessed.
Limits typed into the file, without that pool, are kept as they are.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skyedge.stars.catalogue import StarCatalogue, default_catalogue
from skyedge.stars.clock import clock_check, solved_at_another_time
from skyedge.stars.depth import DIMMED_BY_MAG, MEMORY_FRAMES, DepthPool, dark_sky_counts
from skyedge.stars.detection import detect_stars
from skyedge.stars.geometry_file import CameraGeometry, save_geometry
from skyedge.stars.solve import (
    FIT_MIN_ALT_DEG,
    MIN_MATCHED,
    MIN_MATCHED_SHARE,
    NoGeometry,
    matched_count,
    refine,
    solve_frame,
)
from skyedge.stars.static_spots import POLE_DEG, StaticSpots, load_static_spots
from skyedge.stars.visibility import (
    SEEN_RULE,
    Visibility,
    star_visibility,
    star_zero_point,
)

log = logging.getLogger(__name__)

RING_NAMES = ("the zenith disc", "18-36 deg from the zenith", "36-54 deg from the zenith")
RESOLVE_BELOW = 0.5  # whole-sky visible fraction under which a frame rich in stars is solved again
TRACK_GAIN = 1.25  # a tracked lens replaces the saved one only when it matches this many times its stars
SPOTS_SAVE_EVERY_S = 600.0
CLOCK_WARN_EVERY_S = 6 * 3600.0


def static_spots_file(geometry_file: Path) -> Path:
    """Where a camera's static places are kept: beside its geometry file (``NAME.static.npz``)."""
    return geometry_file.with_name(geometry_file.stem + ".static.npz")


@dataclass(frozen=True)
class StarReport:
    """One frame's stars."""

    detected: int
    visibility: Visibility | None
    geometry: str  # 'saved', 'solved' (blind, this frame), 'tracked' (the saved one refitted to this frame), or 'none'
    # How far the stars last put the capture time from the truth (s; None: never found off, or seen right since).
    clock_offset_s: float | None = None
    # Magnitudes less deep than the camera once saw, in two inner rings at least (None: not dimmed, or not known).
    dimmed_mag: float | None = None

    def message(self) -> dict:
        """The classification message's ``stars`` object."""
        out = {"detected": self.detected, "geometry": self.geometry}
        if self.clock_offset_s is not None:
            out["clock_offset_min"] = int(round(self.clock_offset_s / 60.0))
        if self.dimmed_mag is not None:
            out["dimmed_mag"] = self.dimmed_mag
        if self.visibility is not None:
            out.update(self.visibility.message())
        else:
            out.update({"expected": None, "seen": None, "visible_fraction": None, "zenith_visible_fraction": None, "limiting_mag": None})
        return out


class StarWatch:
    """Stars for one camera at one site (``site``: latitude, longitude, elevation)."""

    def __init__(
        self,
        site: tuple[float, float, float],
        geometry: CameraGeometry | None = None,
        save_to: Path | None = None,
        solve: bool = True,
        solve_every_s: float = 600.0,
        star_size_px: int = 7,
        catalogue: StarCatalogue | None = None,
        on_geometry=None,
    ):
        self.site, self.geometry, self.save_to = site, geometry, save_to
        self.solve, self.solve_every_s, self.star_size_px = solve, solve_every_s, star_size_px
        self.catalogue = catalogue or default_catalogue()
        self.on_geometry = on_geometry  # called with the new CameraGeometry after a solve (source thread)
        self._last_solve = self._last_track = self._last_depth = -np.inf
        self._dimmed_said = 0.0  # magnitudes less deep than the camera once saw, as last said in the log
        # Limits learnt here go on being learnt after a restart (the file keeps their pool); limits without a pool
        # (typed in, or from an older skyedge) or counted by another rule are kept as they are.
        self._learning = geometry is None or geometry.limiting_mag is None or (
            geometry.depth is not None and geometry.fit.get("limits_seen_as") == SEEN_RULE
        )
        if not self._learning and geometry.fit.get("limits_from") and geometry.fit.get("limits_seen_as") != SEEN_RULE:
            log.warning(
                "%s: its limiting magnitudes were learnt counting stars by another rule (%s, now %s): they may expect "
                "too few stars; solve the camera again (skyedge geometry) to relearn them",
                save_to or "the camera geometry", geometry.fit.get("limits_seen_as", "blind 5-sigma detections"), SEEN_RULE,
            )
        self._circle: tuple[tuple, np.ndarray] | None = None  # the saved lens's sky, kept per (lens, frame shape)
        self.solves = self.solve_failures = self.tracks = self.clock_offsets = 0
        self.last_clock_check = None  # the latest believed ClockCheck (skyedge.stars.clock)
        self._clock_warned = -np.inf
        self.static_spots = StaticSpots()
        self._spots_file = static_spots_file(save_to) if save_to is not None else None
        self._spots_loaded = self._spots_file is None
        self._spots_saved = -np.inf
        self._spots_unsaved = False

    def observe(
        self, image: np.ndarray, posix: float, moon: tuple[float, float, float] | None = None, mask: np.ndarray | None = None, sun_alt_deg: float | None = None
    ) -> StarReport:
        """Stars in one night frame captured at ``posix``; ``moon``: (altitude, azimuth, illuminated fraction);
        ``mask``: True on sky pixels; ``sun_alt_deg``: in twilight, fewer stars are expected."""
        shape = image.shape[:2]
        sky = self._within_lens(mask, shape)
        det = self._detect(image, sky, posix)
        stars = self.catalogue.at(*self.site, posix)
        vis = self._visibility(det, stars, shape, sky, moon, sun_alt_deg)
        state = "saved" if self.geometry else "none"
        poor = vis is None or vis.visible_fraction is None or vis.visible_fraction < RESOLVE_BELOW
        rich = self.solve and len(det) >= 2 * MIN_MATCHED
        if rich and not poor and posix - self._last_track >= self.solve_every_s:
            self._last_track = posix
            if self._track(det, stars, shape, posix):
                state = "tracked"
        elif rich and poor and posix - self._last_solve >= self.solve_every_s:
            self._last_solve = posix
            if self._solve_blind(det, stars, shape, posix):
                state = "solved"
                sky = self._within_lens(mask, shape)
                det = self._detect(image, sky, posix)
        deeper = self._learn_depth(det, stars, shape, sky, moon, sun_alt_deg, posix)
        if state in ("tracked", "solved") or deeper:
            vis = self._visibility(det, stars, shape, sky, moon, sun_alt_deg)
        if not poor:  # the saved lens sees the stars at the stated time: the clock is right (again)
            self.last_clock_check = None
        offset = self.last_clock_check.offset_s if self.last_clock_check is not None else None
        return StarReport(len(det), vis, state, offset, self._dimmed())

    def _solve_blind(self, det, stars, shape: tuple[int, int], posix: float) -> bool:
        """Solve the geometry from this frame alone and adopt it; False (counted) when the frame cannot give one, or
        when the saved lens (limits learnt or not) matches its stars clearly better at another time:
        then the clock is off, not the lens (:mod:`skyedge.stars.clock`), and a blind solve at the stated time would
        fit a lens shifted to make up for it. A lens nudged a little matches at a time a few minutes off too, but
        no better than the solve at the stated time does: that is the lens."""
        try:
            sol = solve_frame(det, self.catalogue, self.site, posix, shape)
        except NoGeometry as exc:
            sol, why = None, exc
        check = clock_check(det, self.geometry.lens_for(shape), self.catalogue, self.site, posix) if self.geometry is not None else None
        if check is not None and check.believed and (sol is None or check.matched >= TRACK_GAIN * sol.matched):
            self._clock_off(check, posix)
            return False
        if sol is None:
            self.solve_failures += 1
            log.debug("no geometry from this frame: %s", why)
            return False
        if self.geometry is None:  # nothing to check the clock against: does the sky fit better at another time?
            other = solved_at_another_time(det, self.catalogue, self.site, posix, sol)
            if other is not None:
                sol, check = other
                self._clock_off(check, posix)
        self.solves += 1
        self._adopt(sol, shape, posix)
        return True

    def _clock_off(self, check, posix: float) -> None:
        """Count and keep a believed clock offset, and say it at most every ``CLOCK_WARN_EVERY_S``."""
        self.clock_offsets += 1
        self.last_clock_check = check
        if not posix - CLOCK_WARN_EVERY_S < self._clock_warned <= posix:
            self._clock_warned = posix
            log.warning(
                "%s: the stars match this frame %s from its capture time: the camera's clock, or the pipeline's "
                "capture_time (camera_timezone; a daylight-saving change?), is off. The geometry is kept; stars are "
                "counted at the stated time, so they read as hidden until the time is mended",
                self.save_to or "the star watch",
                check.describe(),
            )

    def _detect(self, image: np.ndarray, mask: np.ndarray | None, posix: float):
        """The frame's stars, without the places that stay put while the sky turns (hot pixels and lamps)."""
        det = detect_stars(image, mask=mask, star_size_px=self.star_size_px)
        pole, pole_px = None, 0.0
        if self.geometry is not None:
            lens = self.geometry.lens_for(image.shape[:2])
            alt, az = abs(self.site[0]), (0.0 if self.site[0] >= 0 else 180.0)
            (px,), (py,) = lens.project(np.array([alt]), np.array([az]))
            pole, pole_px = (float(px), float(py)), POLE_DEG / max(float(lens.degrees_per_px(max(alt, 1.0))), 1e-9)
        if not self._spots_loaded:
            self._load_spots(image.shape[:2])
        det = self.static_spots.screen(det, posix, pole, pole_px)
        if self._spots_file is not None and (posix - self._spots_saved >= SPOTS_SAVE_EVERY_S or posix < self._spots_saved):
            self._spots_saved = posix
            try:
                self.static_spots.save(self._spots_file, image.shape[:2])
            except OSError as exc:  # the watch carries on with them in memory; said once, not every ten minutes
                (log.debug if self._spots_unsaved else log.warning)("%s: cannot save the static places (%s)", self._spots_file, exc)
                self._spots_unsaved = True
        return det

    def _load_spots(self, shape: tuple[int, int]) -> None:
        """The static places learnt before a restart, if any were saved for frames of this size."""
        self._spots_loaded = True
        if not self._spots_file.exists():
            return
        try:
            self.static_spots = load_static_spots(self._spots_file, shape)
        except ValueError as exc:  # relearnt from the frames, as on a new camera
            log.warning("%s; learning the static places afresh", exc)
        else:
            log.info("%s: %d static places (hot pixels, lamps) from before", self._spots_file, len(self.static_spots))

    def _within_lens(self, mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
        """The sky mask as far as the saved lens's horizon circle reaches (``mask`` itself without a geometry).
        What lies outside it (a frame's dark corners, a caption, the camera's housing) only adds false
        detections, to the counts and to a blind solve's brightest stars alike: on the real development camera
        without a site mask 39% of clear frames read under half their zenith stars, and a remounted camera did
        not solve again; within the lens 5%, and it did (docs/results.md). A camera that moves keeps most of its
        sky inside the old circle; one replaced by another camera wants its geometry file removed."""
        if self.geometry is None:
            return mask
        lens = self.geometry.lens_for(shape)
        if self._circle is None or self._circle[0] != (lens, shape):
            self._circle = ((lens, shape), lens.sky_mask(shape))
        circle = self._circle[1]
        return circle if mask is None else circle & np.asarray(mask, bool)

    def _track(self, det, stars, shape, posix: float) -> bool:
        """Refit the saved lens to this frame's stars; adopt it if it matches clearly more of them."""
        lens = self.geometry.lens_for(shape)
        up = stars.subset(stars.alt_deg >= FIT_MIN_ALT_DEG)
        before = matched_count(lens, det, up)
        try:
            sol = refine(lens, [(det, up)], (lens.projection,))
        except NoGeometry:
            return False
        if sol.matched < max(MIN_MATCHED, MIN_MATCHED_SHARE * len(det), TRACK_GAIN * before):
            return False
        self.tracks += 1
        self._adopt(sol, shape, posix, how="tracked")
        return True

    def _visibility(self, det, stars, shape, mask, moon, sun_alt_deg) -> Visibility | None:
        g = self.geometry
        if g is None or g.limiting_mag is None:
            return None
        reference = g.depth.reference_zero_point if self._learning and g.depth is not None else None
        return star_visibility(det, stars, g.lens_for(shape), shape, g.limiting_mag, mask, moon, sun_alt_deg, reference)

    def _adopt(self, sol, shape, posix: float, how: str = "solved") -> None:
        old = self.geometry
        was = old.lens_for(shape) if old is not None else None
        moved = was is None or abs(((was.north_deg - sol.lens.north_deg) + 180) % 360 - 180) > 1.0
        shifted_px = 0.0 if was is None else float(np.hypot(was.cx - sol.lens.cx, was.cy - sol.lens.cy))
        # How deep the camera sees is the camera's and the site's, not the pose's: limits and their pool stay.
        kept = {k: old.fit[k] for k in ("limits_from", "limits_seen_as") if old is not None and k in old.fit}
        fit = {
            **sol.summary(),
            "solved_utc": datetime.fromtimestamp(posix, timezone.utc).isoformat(timespec="seconds"),
            "how": how,  # 'solved' blind, or 'tracked': the saved lens refitted
            "site": list(self.site),
            **kept,
        }
        self.geometry = CameraGeometry(sol.lens, shape, old.limiting_mag if old else None, fit, old.depth if old else None)
        if moved or shifted_px > 1.0:
            what = "solved" if old is None else f"{how}, moved {shifted_px:.1f} px"
            log.info("camera geometry %s: north %.1f deg, zenith (%.0f, %.0f) px, %s", what, sol.lens.north_deg, sol.lens.cx, sol.lens.cy, sol.lens.projection)
        self._save()
        if self.on_geometry is not None:
            self.on_geometry(self.geometry)

    def _learn_depth(self, det, stars, shape, mask, moon, sun_alt_deg, posix: float) -> bool:
        """Pool this frame's completeness if it is clear (:mod:`skyedge.stars.depth`) and relearn the limits from
        the pool; True when they changed. One frame is tried per ``solve_every_s`` of capture time (the counts
        cost 4 ms at 512 px, 27 ms at 2k on 2 cores); the file is saved whenever the pool grows."""
        g = self.geometry
        if not self._learning or g is None or posix - self._last_depth < self.solve_every_s:
            return False
        counts = dark_sky_counts(det, stars, g.lens_for(shape), shape, mask, moon, sun_alt_deg)
        if counts is None:  # a moonlit or twilit sky leaves the turn to the next frame
            return False
        self._last_depth = posix
        pool = g.depth if g.depth is not None else DepthPool.empty()
        zero_point = star_zero_point(det, stars, g.lens_for(shape), shape, g.limiting_mag, mask, moon, sun_alt_deg) if g.limiting_mag else None
        grown = pool.added(counts, zero_point)
        if grown is pool:
            return False
        limits = grown.limits()
        fit = g.fit
        if limits:
            fit = {**g.fit, "limits_from": f"{grown.frames} clear frames (a memory of {MEMORY_FRAMES})", "limits_seen_as": SEEN_RULE}
            if limits != g.limiting_mag:
                self._say_dimmed(grown, limits)
            grown = grown.remembering(limits)
        self.geometry = dataclasses.replace(g, limiting_mag=limits if limits else g.limiting_mag, fit=fit, depth=grown)
        self._save()
        return self.geometry.limiting_mag != g.limiting_mag

    def _dimmed(self) -> float | None:
        """Magnitudes less deep than the camera once saw (:meth:`DepthPool.dimmed_by`), for limits learnt here."""
        g = self.geometry
        if not self._learning or g is None or g.depth is None:
            return None
        return g.depth.dimmed_by(g.limiting_mag)

    def _say_dimmed(self, pool: DepthPool, limits: tuple) -> None:
        """A camera that sees a magnitude less deep than it once did is said in the log, again only when it has
        come to see another magnitude less deep (its limits follow it: its clear skies still read clear)."""
        by = pool.dimmed_by(limits)
        if by is None:  # cleaned, or never dimmed: the next dimming is said afresh
            self._dimmed_said = 0.0
            return
        if by < self._dimmed_said + DIMMED_BY_MAG:
            return
        self._dimmed_said = by
        dimmed = pool.dimmed(limits)
        log.warning(
            "%s: the camera sees a magnitude or more less deep than it once did (%s): a dirty or dewed dome, "
            "a lens out of focus, haze, or a camera replaced? Its limits follow it, so its clear skies still read clear",
            self.save_to or "the star watch",
            "; ".join(f"{RING_NAMES[r]}: stars to Hp {'none' if now is None else f'{now:g}'}, once {best:g}" for r, now, best in dimmed),
        )

    def _save(self) -> None:
        if self.save_to is not None:
            try:
                save_geometry(self.geometry, self.save_to)
            except OSError as exc:  # the device carries on with the geometry in memory
                log.warning("%s: cannot save the camera geometry (%s)", self.save_to, exc)
