"""``skyedge star-labels``: a labelled folder for a site's camera from its stars alone, no person needed.

Every frame under FOLDER (a camera's frames, or what a pipeline's ``collect:`` kept, date folders and all) goes in
capture-time order through one :class:`~skyedge.stars.watch.StarWatch`, as a pipeline's would: it solves the
camera's geometry when it has none or when the camera moved, and learns how deep the camera sees from its clear
frames. Each night frame the stars decide (:mod:`skyedge.stars.labels`) is copied, unchanged, into
``OUT/<class>/`` with its cloud painted beside it (``<name>.cloud.png``), named as `skyedge label` names its copies
(so that its page, run on the same folders, shows these labels and a person corrects them or labels the rest): the
folder `skyedge adapt`, `skyedge calibrate` and a training recipe's ``image_folder`` source read. A frame already
labelled in OUT (by a person, under any class) is left as it is. Unreadable files, frames without a capture time
and daylight frames are counted and skipped; one bad file never stops the rest.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from skyedge.commands import add_command
from skyedge.edge.tools.geometry import FrameSkipped, GeometryCommandError, frame_image, night_frame, parse_site
from skyedge.imageio import IMAGE_SUFFIXES
from skyedge.labelled_folder import copy_name, frames_under, labelled_files
from skyedge.painted_cloud import STARS_PAINTER, mask_path, write_mask


def frames_to_label(folder: Path, out: Path) -> list[Path]:
    """The frames under ``folder`` as ``skyedge label`` finds them (:func:`~skyedge.labelled_folder.frames_under`);
    refused naming the folder when it is none or holds no frames."""
    if not folder.is_dir():
        raise GeometryCommandError(f"{folder}: not a folder")
    found = frames_under(folder, out)
    if not found:
        raise GeometryCommandError(f"{folder}: no frames ({', '.join(IMAGE_SUFFIXES)})")
    return found


def _already_labelled(out: Path) -> set[str]:
    """Names of the frames OUT already holds, under any class."""
    if not out.is_dir():
        return set()
    return {frame.name for frame, _ in labelled_files(out)}


@dataclass
class CameraSetup:
    """What the stars need of the camera: its site, its clock, the geometry to start from (None: solved from the
    frames), its site mask and the widest star."""

    site: tuple[float, float, float]
    clock: object  # a CaptureClock
    geometry: object = None  # a CameraGeometry
    mask: object = None  # a FrameMask
    star_size_px: int = 7


def label_frames(files: list[Path], folder: Path, out: Path, camera: CameraSetup, progress=None
                 ) -> tuple[Counter, list[tuple[str, str]]]:
    """Label the night frames among ``files`` (under ``folder``: :func:`frames_to_label`) from their stars into
    ``out``; the outcomes counted, and the skipped files with why. ``progress`` is called twice per file: as its time
    is read, and as its stars are (at once for a file that is no night frame)."""
    from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris
    from skyedge.stars.labels import star_label
    from skyedge.stars.watch import StarWatch

    clock, eph = camera.clock, Ephemeris(*camera.site, chunk_s=ARCHIVE_CHUNK_S)
    watch = StarWatch(camera.site, geometry=camera.geometry, star_size_px=camera.star_size_px)
    kept = _already_labelled(out)
    counts, skipped, night = Counter(), [], []
    for path in files:  # the capture times first: the watch must see the sky in the order it turned
        try:
            _, posix, sky = night_frame(path, clock, eph)
        except FrameSkipped as exc:
            counts[exc.status] += 1
            if exc.status != "daylight":  # a day frame is no fault: counted only
                skipped.append((str(path.relative_to(folder)), f"{exc.status}: {exc.detail}"))
            steps = 2  # no stars to read: its second step is done too
        else:
            night.append((posix, path, sky))
            steps = 1
        if progress is not None:
            for _ in range(steps):
                progress()
    night.sort(key=lambda item: item[0])
    for posix, path, sky in night:
        try:  # read again: a night of 2k frames would not fit in memory
            image, _ = frame_image(path)
        except FrameSkipped as exc:  # gone since: reported, the rest are labelled
            counts[exc.status] += 1
            skipped.append((str(path.relative_to(folder)), f"{exc.status}: {exc.detail}"))
            if progress is not None:
                progress()
            continue
        moon = (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination)
        shape = image.shape[:2]
        mask = camera.mask.array(shape) if camera.mask is not None else None
        report = watch.observe(image, posix, moon, mask, sky.sun_alt_deg)
        lens = watch.geometry.lens_for(shape) if watch.geometry is not None else None
        label = star_label(report.visibility, lens, shape, moon, mask)
        if progress is not None:
            progress()
        if label is None:
            counts["not decided" if report.visibility is not None else "no star verdict"] += 1
            continue
        name = copy_name(folder, path)  # as `skyedge label` names it, so that its page shows the label
        if name in kept:
            counts["already labelled"] += 1
            continue
        target = out / label.label / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            write_mask(mask_path(target), label.paint, painter=STARS_PAINTER)
        except OSError as exc:  # a full disk stops nothing already written
            counts["not written"] += 1
            skipped.append((str(path.relative_to(folder)), f"not written: {exc}"))
            continue
        kept.add(name)
        counts[label.label] += 1
    return counts, skipped


_STAR_LABELS_HELP = """\
star-labels: label a camera's night frames from its stars alone (clear, moon, cloudy, with the cloud painted)

Walks FOLDER's frames (date folders too: a pipeline's collect folder) in capture-time order through one star
watch, as a pipeline runs it: the camera's geometry is solved from the stars (or read from --geometry) and its
depth learnt from its clear frames. A night frame whose expected stars are seen across the sky is labelled clear
(moon under a moon 15 deg up and half lit), one whose stars are gone cloudy, each with its cloud painted sector by
sector (<name>.cloud.png); skies between are left for a person. The frames are copied unchanged into
OUT/<class>/, named as skyedge label names them, the labelled folder adapt, calibrate and training read; frames OUT
already holds are left alone. Thin cloud the stars shine through reads clear: `skyedge label FOLDER --out OUT`
shows the stars' labels to check and the frames left to label (docs/stars.md).

With --config the camera is as its pipeline has it (site, capture times, mask, saved geometry); without, --site
and the time options say.

example:
  skyedge star-labels /var/lib/skyedge/collect --config /etc/skyedge/allsky.yaml --out labelled/site
  skyedge star-labels frames/ --site 38.607,93.896,4200 --filename-format %Y-%m-%d-%H-%M-%S --camera-timezone +08:00 --out labelled/site
  skyedge label frames/ --out labelled/site      # check them, label the skies between
  skyedge adapt models/allsky --data labelled/site --out models/allsky-site --refit-map-head
"""


def add_star_labels_command(subparsers) -> None:
    """Register `skyedge star-labels`."""
    s = add_command(subparsers, _STAR_LABELS_HELP)
    s.add_argument("folder", help="folder of one camera's frames (FITS, JPEG, PNG, TIFF; subfolders too)")
    s.add_argument("--out", required=True, help="labelled folder to write (OUT/<class>/<frame> and its .cloud.png)")
    s.add_argument("--config", default=None, help="the deployment YAML the camera runs under: its site, capture times, "
                   "mask, star size and saved geometry, as its pipeline's star watch has them")
    s.add_argument("--camera", default=None, help="the pipeline in --config (default: the first)")
    s.add_argument("--site", default=None, help="LAT,LON[,ELEVATION_M]: degrees north and east, metres (without --config)")
    s.add_argument("--geometry", default=None, help="the camera's geometry file (skyedge geometry); default: --config's "
                   "saved one, else solved from the frames")
    s.add_argument("--filename-format", default=None, help="strftime pattern of the capture time in file names (without --config)")
    s.add_argument("--camera-timezone", default="UTC", help="time zone of EXIF times and file names (UTC, +08:00, an IANA name; without --config)")
    s.add_argument("--file-times", action="store_true", help="fall back on file modification times (without --config)")
    s.set_defaults(func=_star_labels)


def _camera_setup(args) -> CameraSetup:
    """The camera as --config's pipeline has it, or as the options say."""
    from skyedge.edge.allsky.capture_time import CaptureClock
    from skyedge.edge.config import CaptureTimeSection
    from skyedge.stars.geometry_file import load_geometry

    geometry = None
    if args.geometry:
        if not Path(args.geometry).is_file():
            raise GeometryCommandError(f"--geometry {args.geometry}: no such file")
        geometry = load_geometry(args.geometry)
    if args.config:
        from skyedge.edge.allsky.pipeline_geometry import saved_geometry
        from skyedge.edge.config import load_edge_config
        from skyedge.edge.preparation import pipeline_in, site_mask

        section = pipeline_in(args.config, args.camera)
        where = load_edge_config(args.config).site_location
        if where is None and not args.site:
            raise GeometryCommandError(f"{args.config} has no site_location: add it, or give --site")
        site = parse_site(args.site) if args.site else (where.latitude_deg, where.longitude_deg, where.elevation_m)
        size = section.stars.star_size_px if section.stars is not None else 7
        return CameraSetup(site, CaptureClock(section.capture_time, section.camera), geometry or saved_geometry(section), site_mask(section), size)
    if not args.site:
        raise GeometryCommandError("--site LAT,LON[,ELEVATION_M] or --config (a deployment with site_location) is needed: "
                                   "the stars' places depend on where the camera is")
    sources = ["fits", "exif", "filename"] + (["file"] if args.file_times else [])
    clock = CaptureClock(CaptureTimeSection(sources=sources, camera_timezone=args.camera_timezone, filename_format=args.filename_format), "star-labels")
    return CameraSetup(parse_site(args.site), clock, geometry)


def _star_labels(args) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from skyedge.errors import SkyedgeError

    console = Console()
    folder, out = Path(args.folder), Path(args.out)
    try:
        camera = _camera_setup(args)
        files = frames_to_label(folder, out)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("reading the stars", total=2 * len(files))
            counts, skipped = label_frames(files, folder, out, camera, progress=lambda: bar.advance(task))
    except (GeometryCommandError, SkyedgeError) as exc:
        print(f"skyedge star-labels: {exc}", file=sys.stderr)
        return 2
    for name, why in skipped[:20]:
        console.print(f"[yellow]{name}: {why}[/yellow]")
    if len(skipped) > 20:
        console.print(f"[yellow]... and {len(skipped) - 20} more skipped[/yellow]")
    labelled = sum(counts[c] for c in ("clear", "moon", "cloudy"))
    console.print(
        f"labelled {labelled} frames into {out}: "
        + ", ".join(f"{counts[c]} {c}" for c in ("clear", "moon", "cloudy"))
        + "; not labelled: "
        + (", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if k not in ("clear", "moon", "cloudy")) or "none")
    )
    if counts["clear"] or counts["moon"]:  # where a person's minutes buy most (docs/results.md)
        console.print(
            f"check the clear and moon labels before training on them (thin cloud the stars see through reads clear): "
            f"skyedge label {folder} --out {out}, filtered by label",
            soft_wrap=True,  # a command to copy: not broken inside a path
        )
    return 0 if labelled else 1
