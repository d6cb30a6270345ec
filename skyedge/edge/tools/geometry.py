"""``skyedge geometry``: a camera's geometry from a folder of its night frames, saved for the pipeline.

Every frame with a capture time, taken while the sun is below -12 deg, is solved blind
(:func:`skyedge.stars.solve.solve_frame`), without the places detected on most of the frames (a colour camera's
hot pixels, a lamp: the stars move between frames, they do not). The solutions are grouped by pose (north within 2 deg, zenith pixel
within 2% of the frame); the largest group is fitted jointly (up to ``JOINT_FRAMES`` frames) and its frames'
clear frames' completeness gives the limiting magnitudes. Frames of other poses are listed: a camera moved during the folder's
time span. Those clear frames' star zero points (on dark skies, three or more) are the reference a frame's extinction
is read against from the pipeline's first frame. Nothing is written when no frame solves, nor when the best frame fits the sky clearly better at another
time than its capture time (the folder's times are off alike, and its lens would be shifted to make up for them).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from skyedge.commands import add_command
from skyedge.stars.catalogue import default_catalogue
from skyedge.stars.depth import DepthPool, dark_sky_counts
from skyedge.stars.detection import detect_stars
from skyedge.stars.geometry_file import CameraGeometry, save_geometry
from skyedge.stars.solve import FIT_MIN_ALT_DEG, NoGeometry, refine, solve_frame
from skyedge.stars.static_spots import places_in_most_frames, without_places
from skyedge.stars.visibility import SEEN_RULE, clear_enough, star_peaks, zero_point_of

if TYPE_CHECKING:
    from skyedge.ephemeris import SkyEphemeris

FRAME_SUFFIXES = {".fits", ".fit", ".fts", ".jpg", ".jpeg", ".png", ".tif", ".tiff"}
NIGHT_SUN_ALT_DEG = -12.0
JOINT_FRAMES = 30


class GeometryCommandError(ValueError):
    """The command cannot work as asked (no frames, no site); the message says why."""


@dataclass
class FrameResult:
    """One frame's outcome."""

    name: str
    status: str  # solved | no capture time | daylight | unsolved | unreadable
    detail: str = ""
    solution: object = None
    det: object = None
    stars: object = None
    shape: tuple[int, int] | None = None
    posix: float | None = None
    counts: tuple | None = None  # completeness (seen, present) per ring and magnitude, on the frame's own solution
    peaks: object = None  # its stars' brightness (visibility.StarPeaks), weighed once the limits are known


def parse_site(text: str) -> tuple[float, float, float]:
    """``LAT,LON[,ELEVATION_M]`` in degrees (north, east positive) and metres."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise GeometryCommandError(f"--site {text!r}: expected LAT,LON[,ELEVATION_M] in degrees and metres") from None
    if len(parts) not in (2, 3) or not -90 <= parts[0] <= 90 or not -180 <= parts[1] <= 360:
        raise GeometryCommandError(f"--site {text!r}: expected LAT,LON[,ELEVATION_M] (latitude -90..90, longitude -180..360)")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0


def solve_frames(folder: Path, site: tuple[float, float, float], clock, star_size_px: int = 7, progress=None
                 ) -> tuple[list[FrameResult], dict[tuple[int, int], StaticPlaces]]:
    """Each frame of ``folder`` solved alone (``clock``: a CaptureClock), without the places that stay put from
    frame to frame (a colour camera's hot pixels, a lamp: :func:`~skyedge.stars.static_spots.places_in_most_frames`),
    and those places per frame size. ``progress`` is called twice per frame: once as it is searched for static
    places, once as it is solved."""
    from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise GeometryCommandError(f"{folder}: no frames ({', '.join(sorted(FRAME_SUFFIXES))})")
    eph, cat = Ephemeris(*site, chunk_s=ARCHIVE_CHUNK_S), default_catalogue()
    results, night = {}, []
    for path in files:  # first pass: which frames can be solved, and where their detections lie
        try:
            image, when, _ = night_frame(path, clock, eph)
        except FrameSkipped as skip:
            results[path.name] = FrameResult(path.name, skip.status, skip.detail)
            if progress is not None:  # no second pass for it
                progress()
        else:
            det = detect_stars(image, star_size_px=star_size_px)
            night.append((path, when, image.shape[:2], det.x, det.y))
        if progress is not None:
            progress()
    static = {}
    for shape in {n[2] for n in night}:  # positions are a frame size's own
        frames = [(n[1], n[3], n[4]) for n in night if n[2] == shape]
        static[shape] = StaticPlaces(*places_in_most_frames(frames), min(f[0] for f in frames), max(f[0] for f in frames))
    for path, when, shape, _, _ in night:
        try:
            image, _ = frame_image(path)
        except FrameSkipped as skip:  # gone or unreadable since the first pass: reported, the rest are solved
            results[path.name] = FrameResult(path.name, skip.status, skip.detail)
            if progress is not None:
                progress()
            continue
        det = without_places(detect_stars(image, star_size_px=star_size_px), static[shape].x, static[shape].y)
        stars = cat.at(*site, when)
        try:
            sol = solve_frame(det, cat, site, when, shape)
            # Completeness and the stars' brightness are read now, while the frame's significance image exists;
            # only the positions are kept (a folder of 2k frames would otherwise hold 16 MB per solved frame).
            sky = eph.at(when)
            moon = (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination)
            counts = dark_sky_counts(det, stars, sol.lens, shape, None, moon, sky.sun_alt_deg)
            # Kept for clear frames only (a few thousand stars each): only they teach the reference.
            clear = counts is not None and clear_enough(*counts)
            peaks = star_peaks(det, stars, sol.lens, shape, None, moon, sky.sun_alt_deg) if clear else None
            det = dataclasses.replace(det, significance=None)
            results[path.name] = FrameResult(
                path.name, "solved", f"{sol.matched} stars, rms {sol.rms_px:.2f} px", sol, det, stars, shape, when, counts, peaks
            )
        except NoGeometry as exc:  # its stars are kept: the camera's clock is checked against them later
            det = dataclasses.replace(det, significance=None)
            results[path.name] = FrameResult(path.name, "unsolved", str(exc), None, det, None, shape, when)
        if progress is not None:
            progress()
    return [results[p.name] for p in files], static


@dataclass
class StaticPlaces:
    """The places that stayed put across a folder's frames of one size, and the capture times the frames span."""

    x: np.ndarray
    y: np.ndarray
    first: float
    last: float


def seed_static_places(geometry_file: Path, shape: tuple[int, int], places: StaticPlaces) -> int:
    """Hand the folder's static places to the star watch: written beside the geometry file, where the watch keeps
    what it learns (:func:`skyedge.stars.watch.static_spots_file`), merged into what it learnt there already for
    frames of this size; how many were new. Without them a colour camera's hot pixels pass for stars for the
    watch's first quarter of an hour."""
    from skyedge.stars.static_spots import StaticSpots, load_static_spots
    from skyedge.stars.watch import static_spots_file

    path = static_spots_file(Path(geometry_file))
    spots = StaticSpots()
    if path.exists():
        try:
            spots = load_static_spots(path, shape)
        except ValueError:  # another frame size, or not a file of its kind: the watch would relearn it anyway
            pass
    added = spots.add_static(places.x, places.y, places.first, places.last)
    if added:
        spots.save(path, shape)
    return added


class FrameSkipped(Exception):
    """A frame that is skipped, and why (status, detail)."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def frame_image(path: Path) -> tuple[np.ndarray, dict]:
    """A frame's image and header; FrameSkipped for one that cannot be read."""
    from skyedge.imageio import read_frame

    try:
        return read_frame(path)
    except Exception as exc:  # noqa: BLE001 - one bad file is reported, the rest are solved
        raise FrameSkipped("unreadable", str(exc)) from None


def night_frame(path: Path, clock, eph) -> tuple[np.ndarray, float, SkyEphemeris]:
    """A night frame's image, capture time and sun and moon then (an ephemeris.SkyEphemeris); FrameSkipped for one
    that cannot be read, has no time, or is by day. The folder tools read a frame twice (first its time, then, in
    time order, its stars: a night of 2k frames would not fit in memory); the second read is :func:`frame_image`."""
    image, header = frame_image(path)
    when = clock.of(str(path), header, None)
    if when is None:
        raise FrameSkipped("no capture time", f"tried {', '.join(clock.sources)}: a frame needs its time to be matched")
    sky = eph.at(when.posix)
    if sky.sun_alt_deg > NIGHT_SUN_ALT_DEG:
        raise FrameSkipped("daylight", f"sun {sky.sun_alt_deg:.0f} deg")
    return image, when.posix, sky


def _same_pose(a, b, side: float) -> bool:
    turn = abs(((a.north_deg - b.north_deg) + 180) % 360 - 180)
    return a.east == b.east and turn <= 2.0 and np.hypot(a.cx - b.cx, a.cy - b.cy) <= 0.02 * side


def pooled(frames: list[FrameResult], limits: tuple[float | None, ...] | None = None) -> DepthPool:
    """The frames' completeness pooled in capture order, with their star zero points read down to ``limits``."""
    depth = DepthPool.empty()
    for r in sorted(frames, key=lambda r: r.posix):
        depth = depth.added(r.counts, None if limits is None else zero_point_of(r.peaks, limits))
    return depth


def combine(results: list[FrameResult], site) -> tuple[CameraGeometry, list[FrameResult], list[FrameResult]]:
    """(the geometry of the largest pose group, its frames, the solved frames of other poses)."""
    solved = [r for r in results if r.status == "solved"]
    if not solved:
        raise GeometryCommandError("no frame solved: " + "; ".join(sorted({r.status for r in results})) + " (see the table)")
    shape = solved[0].shape
    side = min(shape)
    groups: list[list[FrameResult]] = []
    for r in solved:
        if r.shape != shape:
            continue
        for g in groups:
            if _same_pose(g[0].solution.lens, r.solution.lens, side):
                g.append(r)
                break
        else:
            groups.append([r])
    best = max(groups, key=len)
    others = [r for g in groups if g is not best for r in g]
    chosen = sorted(best, key=lambda r: -r.solution.matched)[:JOINT_FRAMES]
    start = chosen[0].solution.lens
    frames = [(r.det, r.stars.subset(r.stars.alt_deg >= FIT_MIN_ALT_DEG)) for r in chosen]
    joint = refine(start, frames)
    depth = pooled(best)
    limits = depth.limits(min_frames=1)
    if limits:  # the clear frames' zero points, read down to the limits their pool gives: a reference from the start
        depth = pooled(best, limits).remembering(limits)  # how deep the camera saw when it was set up
    fit = {
        **joint.summary(),
        "solved_utc": datetime.fromtimestamp(max(r.posix for r in best), timezone.utc).isoformat(timespec="seconds"),
        "site": list(site),
        "limits_from": f"{depth.frames} clear solved frames",
        "limits_seen_as": SEEN_RULE,
    }
    # The pool goes into the file, so a pipeline's star watch goes on learning from it (skyedge.stars.depth).
    return CameraGeometry(joint.lens, shape, limits, fit, depth if depth.frames else None), best, others


def clock_offsets(results: list[FrameResult], geometry: CameraGeometry, site) -> list[tuple[str, object]]:
    """(frame name, ClockCheck) for each starry frame of the geometry's size that did not solve to it (unsolved, or
    another pose) but matches its lens clearly better at another time: a capture time off, not a camera moved."""
    from skyedge.stars.clock import clock_check
    from skyedge.stars.solve import MIN_MATCHED

    cat, out = default_catalogue(), []
    for r in results:
        if r.det is None or r.shape != geometry.frame_shape or len(r.det) < 2 * MIN_MATCHED:
            continue
        if r.status == "solved" and _same_pose(r.solution.lens, geometry.lens, min(r.shape)):
            continue
        check = clock_check(r.det, geometry.lens, cat, site, r.posix)
        if check.believed:
            out.append((r.name, check))
    return out


def shifted_clock(used: list[FrameResult], site) -> tuple[str, object] | None:
    """(frame name, ClockCheck) when the best-matched frame of the pose fits the sky clearly better at another
    time: every frame's capture time is off alike (a time zone), so nothing else in the folder can tell."""
    from skyedge.stars.clock import solved_at_another_time

    best = max(used, key=lambda r: r.solution.matched)
    other = solved_at_another_time(best.det, default_catalogue(), site, best.posix, best.solution)
    return None if other is None else (best.name, other[1])


def run(folder: Path, site_text: str, out: Path, clock_section, star_size_px: int = 7) -> int:
    """The command: solve, combine, save, and print what happened."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from skyedge.edge.allsky.capture_time import CaptureClock

    console = Console()
    site = parse_site(site_text)
    clock = CaptureClock(clock_section, "geometry")
    n = sum(1 for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES) if Path(folder).is_dir() else 0
    if not Path(folder).is_dir():
        raise GeometryCommandError(f"{folder}: not a folder")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("solving frames", total=2 * n)
        results, static = solve_frames(folder, site, clock, star_size_px, progress=lambda: bar.advance(task))
    table = Table("frame", "outcome", "detail")
    for r in results:
        table.add_row(r.name, r.status, r.detail)
    console.print(table)
    try:
        geometry, used, others = combine(results, site)
    except GeometryCommandError as exc:
        console.print(f"[red]{exc}[/red]; {out} left as it was")
        return 1
    shifted = shifted_clock(used, site)
    if shifted is not None:
        name, check = shifted
        console.print(
            f"[red]{name} fits the sky far better at another time than its capture time: {check.describe()}. The "
            f"capture times are off (--camera-timezone, --filename-format, daylight saving?), and a lens solved at "
            f"them is shifted to make up for it[/red]; {out} left as it was"
        )
        return 1
    save_geometry(geometry, out)
    lens = geometry.lens
    bend = f" bent by {[round(v, 4) for v in lens.distortion]}" if any(lens.distortion) else ""
    console.print(
        f"{len(used)} frames of one pose (joint fit over up to {JOINT_FRAMES}): zenith ({lens.cx:.1f}, {lens.cy:.1f}) px, "
        f"horizon radius {lens.radius_px:.1f} px, north {lens.north_deg:.2f} deg, east {lens.east}, {lens.projection}{bend}; "
        f"residual {geometry.fit['rms_px']:.2f} px = {geometry.fit['rms_deg']:.3f} deg ({geometry.fit['matched_stars']} stars); "
        f"limiting magnitude per ring {list(geometry.limiting_mag) if geometry.limiting_mag else 'not learnt (no clear frame)'}"
    )
    if others:
        console.print(f"[yellow]{len(others)} solved frames show another pose (was the camera moved?): {', '.join(r.name for r in others[:10])}[/yellow]")
    offsets = clock_offsets(results, geometry, site)
    if offsets:
        console.print(
            f"[yellow]{len(offsets)} frames match this lens at another time than their capture time: the camera's clock, "
            f"or --camera-timezone / --filename-format, is off (daylight saving?): "
            + "; ".join(f"{name} {check.describe()}" for name, check in offsets[:10])
            + "[/yellow]"
        )
    console.print(f"wrote {out}")
    shape = used[0].shape
    if shape in static and len(static[shape].x):
        try:
            added = seed_static_places(out, shape, static[shape])
        except OSError as exc:  # the geometry is written; the watch learns the places itself
            console.print(f"[yellow]cannot write the static places beside {out} ({exc}); the star watch will learn them[/yellow]")
        else:
            console.print(f"{len(static[shape].x)} static places (hot pixels, lamps) set aside for the star watch, {added} new")
    return 0


_GEOMETRY_HELP = """\
geometry: solve an all-sky camera's geometry (zenith, north, lens projection) from the stars in its night frames

Detects the stars in every night frame of FOLDER, matches them to the bundled Hipparcos catalogue with no prior
beyond "the camera looks up", fits the lens, and writes the geometry file a pipeline's stars section reads
(docs/stars.md), and beside it the places that stayed put across the frames (hot pixels, lamps; NAME.static.npz)
for the pipeline's star watch. Frames need a capture time (FITS DATE-OBS, EXIF, or --filename-format); the site
is required.

example:
  skyedge geometry frames/ --site 38.607,93.896,4200 --filename-format %Y-%m-%d-%H-%M-%S --camera-timezone +08:00 --out cam1-geometry.yaml
"""


def add_geometry_command(subparsers) -> None:
    """Register `skyedge geometry`."""
    g = add_command(subparsers, _GEOMETRY_HELP)
    g.add_argument("folder", help="folder of night frames of one camera (FITS, JPEG, PNG, TIFF)")
    g.add_argument("--site", required=True, help="LAT,LON[,ELEVATION_M]: degrees north and east, metres")
    g.add_argument("--out", default="geometry.yaml", help="geometry file to write (default geometry.yaml)")
    g.add_argument("--filename-format", default=None, help="strftime pattern of the capture time in file names")
    g.add_argument("--camera-timezone", default="UTC", help="time zone of EXIF times and file names (UTC, +08:00, an IANA name)")
    g.add_argument("--file-times", action="store_true", help="fall back on file modification times (when nothing else says)")
    g.add_argument("--star-size-px", type=int, default=7, help="widest star in pixels (default 7; larger for soft 2-4k frames)")
    g.set_defaults(func=_geometry)


def _geometry(args) -> int:
    from pathlib import Path

    from skyedge.edge.allsky.capture_time import CaptureTimeError
    from skyedge.edge.config import CaptureTimeSection

    sources = ["fits", "exif", "filename"] + (["file"] if args.file_times else [])
    try:
        section = CaptureTimeSection(sources=sources, camera_timezone=args.camera_timezone, filename_format=args.filename_format)
        return run(Path(args.folder), args.site, Path(args.out), section, args.star_size_px)
    except (GeometryCommandError, CaptureTimeError) as exc:
        print(f"skyedge geometry: {exc}", file=sys.stderr)
        return 2
