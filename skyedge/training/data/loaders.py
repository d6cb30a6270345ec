"""Loaders for training data: simulated shards and the real formats (image folder, OATH table, FITS sequences).

Each returns a :class:`Loaded` with images, labels and class names; loaders
are plain callables chosen by the recipe's ``data.*.kind``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyedge.imageio import read_frame
from skyedge.labelled_folder import class_folders, frames_in
from skyedge.painted_cloud import MaskError, mask_path, read_mask
from skyedge.preprocess import PreprocessError, debayer
from skyedge.shards import MANIFEST, DatasetError, ShardedDataset

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A data set in memory: frames are a list of arrays (sizes may differ); sequences a (N, T, S, S) array."""

    images: list | np.ndarray
    labels: np.ndarray
    classes: list[str]
    conditions: np.ndarray | None = None  # (N, T, 6) raw: mjd, fwhm, sky, zero_point, exptime, airmass
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    data_hash: str = ""
    cloud: list | None = None  # frames: per-pixel cloud truth (uint8 opacity x 250, 255 no sky) or None per frame

    def __len__(self) -> int:
        return len(self.labels)


def load_shards(path, simulate=None, task: str = "frame") -> Loaded:
    """A sharded data set; simulated first when the folder has no manifest and ``simulate`` is given."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        if simulate is None:
            raise DatasetError(f"{path}: no {MANIFEST} (simulate it with `skyedge simulate`, or add data.*.simulate)")
        _simulate(path, simulate, task)
    ds = ShardedDataset.open(path)
    if simulate is not None:
        _check_simulated(path, ds.manifest, simulate)
    if ds.task != task:
        raise DatasetError(f"{path}: a '{ds.task}' data set, but the recipe trains a '{task}' model")
    arrays = ds.load()
    meta = {k[5:]: v for k, v in arrays.items() if k.startswith("meta.")}
    images = arrays["images"]
    cloud = list(arrays["cloud"]) if "cloud" in arrays else None
    return Loaded(
        images=list(images) if task == "frame" else images,
        labels=arrays["labels"],
        classes=ds.classes,
        conditions=arrays.get("conditions"),
        meta=meta,
        data_hash=ds.content_hash(),
        cloud=cloud,
    )


def _simulate(path: Path, spec, task: str) -> None:
    if task == "frame":
        from skyedge.training.simulate.allsky import AllskyConfig, simulate_allsky
        from skyedge.training.simulate.profiles import profile_config

        config = _tuples(spec.config)
        profile = config.pop("profile", None)
        cfg = profile_config(profile, **config) if profile else AllskyConfig(**config)
        simulate_allsky(spec.n, path, seed=spec.seed, cfg=cfg)
    else:
        from skyedge.training.simulate.obslog import CadenceConfig
        from skyedge.training.simulate.transients import TransientConfig, simulate_transients

        config = dict(spec.config)
        cadence = CadenceConfig(**_tuples(config.pop("cadence", {})))
        simulate_transients(spec.n, path, seed=spec.seed, cfg=TransientConfig(cadence=cadence, **_tuples(config)))


def _check_simulated(path: Path, manifest: dict, spec) -> None:
    """Refuse a folder simulated with another count, seed or setting than the recipe's ``simulate``: it would be
    trained on silently (a recipe edited after its data were made), and its numbers credited to the recipe."""
    recorded = manifest.get("simulator")
    if not isinstance(recorded, dict):
        return  # not made by skyedge's simulator: nothing to compare
    wanted = {"n": spec.n, "seed": spec.seed, **{f"config.{k}": v for k, v in _flat(spec.config).items()}}
    found = {"n": manifest.get("count"), "seed": recorded.get("seed")}
    found.update({f"config.{k}": v for k, v in _flat(recorded.get("config") or {}).items()})
    differ = [f"{k}: recipe {wanted[k]!r}, on disk {found[k]!r}" for k in wanted if k in found and _same(wanted[k]) != _same(found[k])]
    if differ:
        raise DatasetError(
            f"{path}: simulated with other settings than the recipe's data.*.simulate ({'; '.join(differ)}); "
            "delete the folder to simulate it again, or give the recipe another path"
        )


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same(value):
    return json.loads(json.dumps(value))  # tuples and lists alike


def _tuples(config: dict) -> dict:
    """YAML lists -> tuples for the frozen simulator dataclasses."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _hash_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def load_image_folder(path, aurora=None, bayer: str | None = None) -> Loaded:
    """``path/<class>/<image>``: one sub-folder per class, any of PNG/JPEG/TIFF/FITS (hidden files left out:
    :mod:`skyedge.labelled_folder`). A frame's painted cloud (``<name>.cloud.png`` beside it,
    :mod:`skyedge.painted_cloud`: what ``skyedge label`` writes) is its per-pixel cloud truth, never a frame of its
    own. With ``aurora`` (:class:`~skyedge.training.config.AuroraOverlaySpec`), copies of the clear and moon frames
    with a simulated aurora over their sky (:func:`_aurora_copies`). With ``bayer``, the frames are raw mosaics,
    debayered here as the camera's pipeline does (before the copies: an aurora is drawn in colour)."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    classes = [d.name for d in class_folders(root)]
    if len(classes) < 2:
        raise DatasetError(f"{root}: needs one sub-folder per class (at least two), found {classes}")
    images, names, files, cloud, hashed = [], [], [], [], []
    for name in classes:
        for file in frames_in(root / name):
            image = read_frame(file)[0]
            if bayer is not None:
                try:
                    image = debayer(image, bayer)
                except PreprocessError as exc:
                    raise DatasetError(f"{file}: {exc}") from None
            painted = mask_path(file)
            try:
                truth = read_mask(painted, image.shape[:2]) if painted.is_file() else None
            except MaskError as exc:
                raise DatasetError(str(exc)) from None
            images.append(image)
            names.append(name)
            files.append(str(file))
            cloud.append(truth)
            hashed += [file] if truth is None else [file, painted]  # the data's hash covers the painting too
    if not images:
        raise DatasetError(f"{root}: no images found under the class folders")
    meta = {"file": files}
    data_hash = _hash_files(hashed)
    if aurora is not None:
        meta["weight"] = [1.0] * len(images)
        made = _aurora_copies(root, images, names, cloud, meta, aurora)
        log.info("%s: %d copies of clear and moonlit frames with a simulated aurora", root, made)
        data_hash += "+aurora:" + aurora.model_dump_json()
        classes = sorted(set(names))
    return Loaded(
        images,
        np.array([classes.index(n) for n in names], dtype=np.int64),
        classes,
        meta={k: np.array(v) for k, v in meta.items()},
        data_hash=data_hash,
        cloud=cloud if any(c is not None for c in cloud) else None,
    )


def _aurora_copies(root: Path, images: list, names: list[str], cloud: list, meta: dict, spec) -> int:
    """An image folder's aurora copies. A frame's sky is what its painting judged (not the ground or mast left
    unjudged) within the lens circle: the spec's, else the circle the frame's shorter side holds, as a painting
    filled edge to edge (``skyedge label``'s f key) also judges the corners. An unpainted frame's sky is the spec's
    circle; without one it is unknown, and the frame is not copied."""
    from skyedge.preprocess import NO_SKY, horizon_mask
    from skyedge.training.simulate.aurora_overlay import BACKGROUNDS, append_aurora_copies

    given = spec.centre_px is not None and spec.horizon_radius_px is not None
    circles = {}  # per frame size

    def circle(shape: tuple[int, int]) -> np.ndarray:
        if shape not in circles:
            if given:
                yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
                circles[shape] = np.hypot(xx - spec.centre_px[0], yy - spec.centre_px[1]) <= spec.horizon_radius_px
            else:
                circles[shape] = horizon_mask(shape, 0.5)
        return circles[shape]

    masks = [None] * len(images)
    for i in (i for i, n in enumerate(names) if n in BACKGROUNDS):
        truth = cloud[i]
        if truth is None and not given:
            continue
        lens = circle(images[i].shape[:2])
        masks[i] = lens if truth is None else lens & (truth != NO_SKY)
    if not any(m is not None and m.any() for m in masks):
        raise DatasetError(
            f"{root}: aurora copies need the sky of clear and moon frames (folders {'/'.join(BACKGROUNDS)}): paint "
            "them (<name>.cloud.png, `skyedge label`'s p key), give aurora.centre_px and aurora.horizon_radius_px, "
            "or remove the source's aurora key"
        )
    sizes = sorted({m.shape for m in masks if m is not None})
    if len(sizes) > 1:  # one lens is found (or given) per folder: one camera's frames
        raise DatasetError(f"{root}: clear and moon frames of {len(sizes)} sizes ({sizes}); aurora copies need one camera's frames per folder")
    return append_aurora_copies(images, names, cloud, meta, masks, spec)


def load_oath(
    path, labels_csv, file_column: str = "file", label_column: str = "label", classes: list[str] | None = None
) -> Loaded:
    """OATH-style: images under ``path`` and a CSV table naming each file and its class."""
    root, table = Path(path), Path(labels_csv)
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        for column in (file_column, label_column):
            if column not in (reader.fieldnames or []):
                raise DatasetError(f"{table}: no column '{column}' (columns: {reader.fieldnames})")
        rows = list(reader)
    names = classes or sorted({r[label_column] for r in rows})
    images, labels, files = [], [], []
    for line, row in enumerate(rows, start=2):
        if row[label_column] not in names:
            raise DatasetError(f"{table}:{line}: unknown class {row[label_column]!r}")
        file = root / row[file_column]
        if not file.exists():
            raise DatasetError(f"{table}:{line}: image {file} does not exist")
        images.append(read_frame(file)[0])
        labels.append(names.index(row[label_column]))
        files.append(file)
    return Loaded(
        images,
        np.array(labels, dtype=np.int64),
        list(names),
        meta={"file": np.array([str(f) for f in files])},
        data_hash=_hash_files(files),
    )


def load_fits_sequences(path) -> Loaded:
    """``path/<class>/<object>/*.fits``: one stamp per epoch with MJD-OBS, FWHM, SKYLEVEL, MAGZP, EXPTIME, AIRMASS."""
    root = Path(path)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    sequences, conds, labels, files = [], [], [], []
    keys = ("MJD-OBS", "FWHM", "SKYLEVEL", "MAGZP", "EXPTIME", "AIRMASS")
    for k, name in enumerate(classes):
        for obj in sorted(d for d in (root / name).iterdir() if d.is_dir()):
            stamps, rows = [], []
            for file in sorted(obj.glob("*.fits")):
                data, header = read_frame(file)
                missing = [key for key in keys if key not in header]
                if missing:
                    raise DatasetError(f"{file}: header lacks {', '.join(missing)}")
                stamps.append(data)
                rows.append([float(header[key]) for key in keys])
                files.append(file)
            if stamps:
                order = np.argsort([r[0] for r in rows])
                sequences.append(np.stack(stamps)[order])
                conds.append(np.array(rows)[order])
                labels.append(k)
    if not sequences:
        raise DatasetError(f"{root}: no FITS stamp sequences found (expected <class>/<object>/*.fits)")
    images, conditions, lengths = _padded(sequences, conds)
    return Loaded(
        images,
        np.array(labels, dtype=np.int64),
        classes,
        conditions=conditions,
        meta={"length": lengths},
        data_hash=_hash_files(files),
    )


SURVEY_FORMS = {"stamp_cubes": "cubes", "stamp_epochs": "epoch_files", "ztf_alerts": "ztf_alerts"}


def load_survey_stamps(source, classes: list[str] | None = None) -> Loaded:
    """Real survey stamp sequences (:mod:`skyedge.training.data.survey_epochs`: cubes, per-epoch files or ZTF
    alerts), one class for all or from a table keyed by file, object folder or objectId."""
    from skyedge.dataset_inputs import RAW_CONDITIONS
    from skyedge.training.data.survey_epochs import read_survey_stamps

    try:
        sequences = read_survey_stamps(
            [source.path], SURVEY_FORMS[source.kind], zero_point=source.zero_point, stamp_size=source.stamp_size
        )
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if source.label is not None:
        names = [source.label] * len(sequences)
    else:
        table = _label_table(Path(source.labels_csv), source.file_column, source.label_column)
        files = [s.path.name for s in sequences]
        missing = [f for f in files if f not in table]
        if missing:
            raise DatasetError(f"{source.labels_csv}: no label for {', '.join(missing[:5])}")
        names = [table[f] for f in files]
    order = list(classes or [])
    order += sorted(set(names) - set(order))
    size = sequences[0].stamps.shape[1:]
    for s in sequences:
        if s.stamps.shape[1:] != size:
            raise DatasetError(f"{s.path}: stamps of {s.stamps.shape[1:]} beside others of {size}; set stamp_size")
    images, conditions, lengths = _padded(
        [s.stamps for s in sequences],
        [np.stack([s.conditions[k] for k in RAW_CONDITIONS], axis=1) for s in sequences],
    )
    return Loaded(
        images,
        np.array([order.index(n) for n in names], dtype=np.int64),
        order,
        conditions=conditions,
        meta={"length": lengths},
        data_hash=_hash_files([f for s in sequences for f in s.files]),
    )


def _padded(stamps: list[np.ndarray], conditions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences of different lengths as (N, T, S, S) and (N, T, K) arrays and their lengths: padding repeats the
    last epoch (the lengths say what is real; a causal model's earlier answers never see it)."""
    t_max = max(len(s) for s in stamps)
    images = np.empty((len(stamps), t_max, *stamps[0].shape[1:]), dtype=np.float32)
    padded = np.empty((len(stamps), t_max, conditions[0].shape[1]), dtype=np.float32)
    for i, (s, c) in enumerate(zip(stamps, conditions, strict=True)):
        images[i, : len(s)], padded[i, : len(c)] = s, c
        images[i, len(s) :], padded[i, len(c) :] = s[-1], c[-1]
    return images, padded, np.array([len(s) for s in stamps], dtype=np.int64)


def _label_table(path: Path, file_column: str, label_column: str) -> dict[str, str]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for column in (file_column, label_column):
            if column not in (reader.fieldnames or []):
                raise DatasetError(f"{path}: no column '{column}'")
        return {row[file_column]: row[label_column] for row in reader}


def _present(sources) -> list[tuple[int, object]]:
    """The sources to load, each with its place in the recipe's list: those marked ``required: false`` whose path
    is missing are left out with a warning (real data kept outside the repository)."""
    listed = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    present = []
    for n, source in enumerate(listed):
        if not source.required and not Path(source.path).exists():
            log.warning("data source %d (%s): %s does not exist; left out (required: false)", n, source.kind, source.path)
            continue
        present.append((n, source))
    if not present:
        raise DatasetError(f"none of the data sources exist ({', '.join(str(s.path) for s in listed)})")
    return present


def load_sources(sources, task: str, classes: list[str] | None = None) -> Loaded:
    """One DataSource, or several concatenated (classes in order of first appearance; the meta columns all share).
    Meta ``source`` is each item's place in the recipe's list, present or not, as source weights are looked up."""
    present = _present(sources)
    if len(present) == 1:
        place, source = present[0]
        loaded = load_source(source, task, classes)
        if place:  # a later source alone: its weight is not the first's
            loaded.meta["source"] = np.full(len(loaded), place)
        return loaded
    parts = [load_source(s, task, classes) for _, s in present]
    names = list(classes or [])
    for part in parts:
        names += [c for c in part.classes if c not in names]
    labels = np.concatenate([np.array([names.index(p.classes[k]) for k in p.labels], dtype=np.int64) for p in parts])
    shared = set.intersection(*(set(p.meta) for p in parts))
    meta = {k: np.concatenate([np.asarray(p.meta[k]) for p in parts]) for k in sorted(shared)}
    meta["source"] = np.concatenate([np.full(len(p), place) for (place, _), p in zip(present, parts, strict=True)])
    if any("weight" in p.meta for p in parts):  # per-item weights: items of loaders without them count 1
        meta["weight"] = np.concatenate([np.asarray(p.meta.get("weight", np.ones(len(p)))) for p in parts])
    cloud = None
    if task == "frame":
        images = [im for p in parts for im in p.images]
        conditions = None
        if any(p.cloud is not None for p in parts):
            cloud = [c for p in parts for c in (p.cloud if p.cloud is not None else [None] * len(p))]
    else:
        shapes = {p.images.shape[1:] for p in parts}
        if len(shapes) != 1:
            raise DatasetError(f"sequence data sets of different shapes cannot be mixed: {sorted(shapes)}")
        images = np.concatenate([p.images for p in parts])
        conditions = np.concatenate([p.conditions for p in parts])
    digest = hashlib.sha256("".join(p.data_hash for p in parts).encode()).hexdigest()
    return Loaded(images, labels, names, conditions=conditions, meta=meta, data_hash=digest, cloud=cloud)


def load_source(source, task: str, classes: list[str] | None = None) -> Loaded:
    """Dispatch on a recipe's DataSource."""
    if source.kind == "labelme":
        from skyedge.training.data.labelme import load_labelme

        return load_labelme(source)
    if source.kind == "shards":
        return load_shards(source.path, source.simulate, task)
    if source.kind == "image_folder":
        return load_image_folder(source.path, source.aurora, source.bayer)
    if source.kind == "oath":
        return load_oath(source.path, source.labels_csv, source.file_column, source.label_column, classes)
    if source.kind in SURVEY_FORMS:
        return load_survey_stamps(source, classes)
    return load_fits_sequences(source.path)
