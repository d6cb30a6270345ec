"""LabelMe annotations of all-sky frames: the frame, per-pixel sky/cloud truth, and a frame label from the sky itself.

LabelMe (JSON, version 4-5) is a common format for hand-drawn polygons; all-sky
cloud data sets use it with polygons labelled ``sky``, ``cloud`` and
``contamination`` (dome, masts, lens artefacts). The frame is inside the JSON
(``imageData``, base64) or beside it (``imagePath``). Pixels are drawn in the
order sky, cloud, contamination, so a cloud drawn over the sky is cloud and
anything in a contamination polygon is no sky at all; a pixel in no polygon is
outside the sky. Hand-typed labels are matched to those three names when they
are close (``contination`` -> contamination, ``clode`` -> cloud); any other
label is reported once and ignored.

A frame-level class needs more than the polygons: whether it was day, and
whether a bright moon was up. :func:`frame_label` decides it from the cloud
fraction and the ephemeris at the capture time, by :data:`RULE` (documented in
docs/results.md, "Real all-sky data").
"""

from __future__ import annotations

import base64
import difflib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from skyedge.shards import DatasetError

log = logging.getLogger(__name__)

REGIONS = ("sky", "cloud", "contamination")  # drawing order: later ones win

# How a night frame's class follows from its cloud fraction and the moon (sun below RULE["night_sun_alt_deg"]).
RULE = {
    "night_sun_alt_deg": -12.0,  # above: 'day'
    "moon_min_alt_deg": 15.0,  # a moon at least this high and this full, over a (nearly) clear sky: 'moon'
    "moon_min_illumination": 0.5,
    "moon_max_cloud": 0.05,
    "clear_max_cloud": 0.01,  # at most this cloud fraction: 'clear'
    "cloudy_min_cloud": 0.95,  # at least: 'cloudy'; anything between is 'partly' (partly cloudy)
}
PARTLY = "partly"


@dataclass(frozen=True)
class AnnotatedFrame:
    """One annotated frame: RGB pixels and boolean region masks of the same size."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8, RGB
    sky: np.ndarray  # clear sky
    cloud: np.ndarray
    contamination: np.ndarray

    @property
    def cloud_fraction(self) -> float:
        """Cloud pixels over all sky pixels (clear + cloud); NaN where no sky was drawn."""
        cloud, sky = int(self.cloud.sum()), int(self.sky.sum())
        return cloud / (cloud + sky) if cloud + sky else float("nan")


_warned: set[str] = set()


def region_of(label: str) -> str | None:
    """The region a polygon label names (close misspellings accepted), or None."""
    name = label.strip().lower()
    if name in REGIONS:
        return name
    close = difflib.get_close_matches(name, REGIONS, n=1, cutoff=0.6)
    if close:
        return close[0]
    if name not in _warned:
        _warned.add(name)
        log.warning("LabelMe label %r is none of %s: its polygons are ignored", label, ", ".join(REGIONS))
    return None


def _decode(path: Path, doc: dict) -> np.ndarray:
    import cv2

    if doc.get("imageData"):
        data = np.frombuffer(base64.b64decode(doc["imageData"]), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    else:
        file = path.parent / doc.get("imagePath", "")
        image = cv2.imread(str(file), cv2.IMREAD_COLOR) if file.is_file() else None
    if image is None:
        raise DatasetError(f"{path}: no readable image (imageData empty and imagePath {doc.get('imagePath')!r} unreadable)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_labelme(path: str | Path) -> AnnotatedFrame:
    """One LabelMe JSON file as an :class:`AnnotatedFrame`; errors name the file and the field."""
    import cv2

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a LabelMe JSON file ({exc})") from None
    if "shapes" not in doc:
        raise DatasetError(f"{path}: no 'shapes' (not a LabelMe annotation)")
    image = _decode(path, doc)
    h, w = image.shape[:2]
    masks = {r: np.zeros((h, w), np.uint8) for r in REGIONS}
    for n, shape in enumerate(doc["shapes"]):
        region = region_of(str(shape.get("label", "")))
        if region is None:
            continue
        points = np.asarray(shape.get("points", []), np.float64)
        if shape.get("shape_type", "polygon") != "polygon" or points.ndim != 2 or len(points) < 3:
            log.warning("%s: shapes[%d] is not a polygon of 3 points or more; ignored", path, n)
            continue
        cv2.fillPoly(masks[region], [np.rint(points).astype(np.int32)], 1)
    contamination = masks["contamination"].astype(bool)
    cloud = masks["cloud"].astype(bool) & ~contamination
    sky = masks["sky"].astype(bool) & ~cloud & ~contamination
    return AnnotatedFrame(path.stem, image, sky, cloud, contamination)


def capture_time(name: str, fmt: str, utc_offset_hours: float) -> datetime:
    """The UTC capture time a file name encodes in local time (``fmt`` as for strptime)."""
    try:
        local = datetime.strptime(name, fmt)
    except ValueError:
        raise DatasetError(f"{name}: does not match the capture-time format {fmt!r}") from None
    return (local - timedelta(hours=utc_offset_hours)).replace(tzinfo=timezone.utc)


def frame_label(
    cloud_fraction: float, sun_alt_deg: float, moon_alt_deg: float, moon_illumination: float
) -> str | None:
    """'day', 'moon', 'clear', 'cloudy' or 'partly' by :data:`RULE`; None for a night frame whose polygons draw no
    sky at all (nothing to say about its clouds)."""
    r = RULE
    if sun_alt_deg > r["night_sun_alt_deg"]:
        return "day"
    if not np.isfinite(cloud_fraction):
        return None
    bright_moon = moon_alt_deg > r["moon_min_alt_deg"] and moon_illumination > r["moon_min_illumination"]
    if bright_moon and cloud_fraction <= r["moon_max_cloud"]:
        return "moon"
    if cloud_fraction <= r["clear_max_cloud"]:
        return "clear"
    if cloud_fraction >= r["cloudy_min_cloud"]:
        return "cloudy"
    return PARTLY


def night_of(when: datetime, longitude_deg: float) -> str:
    """The local night a moment belongs to (its evening's date at the site's solar time): frames of one night
    share it, so a split by night keeps a night's frames together."""
    solar = when + timedelta(hours=longitude_deg / 15.0)
    return (solar - timedelta(hours=12)).date().isoformat()


@dataclass(frozen=True)
class Labelled:
    """One annotated frame placed in time, with its label from the sky."""

    path: Path
    captured: datetime
    night: str
    frame: AnnotatedFrame
    label: str  # day, moon, clear, cloudy or partly
    sun_alt_deg: float


def labelled_frames(root, site, time_format: str, utc_offset_hours: float, nights=None) -> list[Labelled]:
    """Every LabelMe file in ``root`` with its label (:func:`frame_label`) from the ephemeris at ``site``
    (``latitude_deg``, ``longitude_deg``, ``elevation_m``); ``nights``: a part of the nights only (``part``,
    ``fraction``, ``seed``: the seeded draw a recipe's night split makes)."""
    from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris

    root = Path(root)
    files = sorted(root.glob("*.json"))
    if not files:
        raise DatasetError(f"{root}: no LabelMe JSON files")
    eph = Ephemeris(site.latitude_deg, site.longitude_deg, site.elevation_m, chunk_s=ARCHIVE_CHUNK_S)
    placed = []
    for file in files:
        when = capture_time(file.stem, time_format, utc_offset_hours)
        placed.append((file, when, night_of(when, site.longitude_deg)))
    if nights is not None:
        names = sorted({night for _, _, night in placed})
        order = np.random.default_rng(nights.seed).permutation(len(names))
        test = {names[i] for i in order[: int(round(nights.fraction * len(names)))]}
        placed = [r for r in placed if (r[2] in test) == (nights.part == "test")]
    out = []
    for file, when, night in placed:
        frame = read_labelme(file)
        sky = eph.at(when.timestamp())
        label = frame_label(frame.cloud_fraction, sky.sun_alt_deg, sky.moon_alt_deg, sky.moon_illumination)
        if label is None:
            log.info("%s: no sky drawn at night; left out", file)
            continue
        out.append(Labelled(file, when, night, frame, label, sky.sun_alt_deg))
    return out


def cloud_truth(frame: AnnotatedFrame) -> np.ndarray:
    """The frame's polygons as per-pixel cloud truth (uint8: 250 cloud, 0 clear sky, 255 no sky)."""
    truth = np.full(frame.sky.shape, 255, np.uint8)
    truth[frame.sky] = 0
    truth[frame.cloud] = 250
    return truth


def load_labelme(source):
    """A recipe's ``kind: labelme`` source as a :class:`~skyedge.training.data.loaders.Loaded`: frames, classes by
    :func:`frame_label` (partly cloudy as ``source.partly_as``), per-pixel cloud truth, and each frame's night;
    with ``source.aurora``, copies of clear and moonlit frames with a simulated aurora, labelled by its kind."""
    from skyedge.training.data.loaders import Loaded, _hash_files

    rows = labelled_frames(source.path, source.site, source.time_format, source.utc_offset_hours, source.nights)
    rows = [r for r in rows if r.label != "day" or source.include_day]
    images = [r.frame.image for r in rows]
    truth = [r.label for r in rows]
    files, nights = [str(r.path) for r in rows], [r.night for r in rows]
    cloud = [cloud_truth(r.frame) for r in rows]
    weight = [1.0] * len(rows)
    data_hash = _hash_files([r.path for r in rows])
    if source.aurora is not None:
        from skyedge.training.simulate.aurora_overlay import append_aurora_copies

        masks = [r.frame.sky | r.frame.cloud for r in rows]
        columns = {"file": files, "night": nights, "weight": weight}
        made = append_aurora_copies(images, truth, cloud, columns, masks, source.aurora)
        log.info("%s: %d copies of clear and moonlit frames with a simulated aurora", source.path, made)
        data_hash += "+aurora:" + source.aurora.model_dump_json()
    labels = [source.partly_as if t == PARTLY else t for t in truth]
    classes = sorted(set(labels))
    return Loaded(
        images,
        np.array([classes.index(lab) for lab in labels], dtype=np.int64),
        classes,
        meta={"file": np.array(files), "night": np.array(nights), "truth": np.array(truth), "weight": np.array(weight)},
        data_hash=data_hash,
        cloud=cloud,
    )
