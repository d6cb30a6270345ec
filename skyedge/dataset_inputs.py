"""Model inputs from a labelled data set folder, exactly as the edge prepares them.

Calibration, export checks and accuracy reports must feed a model what the
device will feed it, so they go through :mod:`skyedge.preprocess` with the
model card's parameters, never through training-time tensors. numpy only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyedge.imageio import read_frame
from skyedge.labelled_folder import class_folders, labelled_files
from skyedge.masks import card_mask
from skyedge.model_card import ModelCard
from skyedge.preprocess import BAYER_CODES, prepare_frame, prepare_sequence
from skyedge.shards import MANIFEST, DatasetError, ShardedDataset

# Column order of the raw per-epoch conditions stored in sequence data sets.
RAW_CONDITIONS = ("mjd", "fwhm", "sky", "zero_point", "exptime", "airmass")
# The FITS header keywords an observatory pipeline writes for them (telescope epoch frames).
HEADER_KEYS = {
    "mjd": "MJD-OBS",
    "fwhm": "FWHM",
    "sky": "SKYLEVEL",
    "zero_point": "MAGZP",
    "exptime": "EXPTIME",
    "airmass": "AIRMASS",
}


def raw_conditions(c: np.ndarray) -> dict[str, np.ndarray]:
    """A (..., 6) raw-conditions array as named columns."""
    return {name: c[..., i] for i, name in enumerate(RAW_CONDITIONS)}


@dataclass
class LabelledInputs:
    """Model-ready inputs (name -> array, item axis first), labels in card class order, and strata."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    classes: list[str]
    lengths: np.ndarray | None = None  # sequences: epochs that are real (the rest is right padding)
    strata: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> LabelledInputs:
        """A subset by item index."""
        return LabelledInputs(
            {k: v[idx] for k, v in self.inputs.items()},
            self.labels[idx],
            self.classes,
            None if self.lengths is None else self.lengths[idx],
            self.strata[idx] if len(self.strata) else self.strata,
        )


def _concat(parts: list[LabelledInputs], paths: list) -> LabelledInputs:
    """Several data sets as one (strata stay per set: a camera's brightness terciles are its own)."""
    shapes = {k: {p.inputs[k].shape[1:] for p in parts} for k in parts[0].inputs}
    for name, found in shapes.items():
        if len(found) > 1:
            raise DatasetError(f"{', '.join(map(str, paths))}: input '{name}' has different shapes {sorted(found)}")
    lengths = None if parts[0].lengths is None else np.concatenate([p.lengths for p in parts])
    return LabelledInputs(
        {k: np.concatenate([p.inputs[k] for p in parts]) for k in parts[0].inputs},
        np.concatenate([p.labels for p in parts]),
        parts[0].classes,
        lengths,
        np.concatenate([p.strata for p in parts]),
    )


def _condition_strata(values: np.ndarray, bins: int = 3) -> np.ndarray:
    """Tercile index of a per-item scalar (seeing, sky level): the observing-condition stratum."""
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values)


def load_labelled_inputs(
    path: str | os.PathLike | list,
    card: ModelCard,
    limit: int | None = None,
    package: str | os.PathLike | None = None,
    bayer: str | None = None,
) -> LabelledInputs:
    """Read a skyedge-shards folder (or several, e.g. one per camera; for a frame model also a labelled folder,
    ``DIR/<class>/<frame>``) and prepare every item for ``card``'s model (``package``: where the card's mask image
    lives, when it names one; ``limit``: per folder; ``bayer``: a labelled folder's frames are raw mosaics of this
    pattern, debayered as the camera's pipeline does; shards say their own)."""
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return load_labelled_inputs(path[0], card, limit, package, bayer)
        return _concat([load_labelled_inputs(p, card, limit, package, bayer) for p in path], list(path))
    if card.task == "frame" and Path(path).is_dir() and not (Path(path) / MANIFEST).exists() and class_folders(Path(path)):
        return _labelled_folder_inputs(Path(path), card, limit, package, bayer)
    ds = ShardedDataset.open(path)
    if ds.task != card.task:
        raise DatasetError(f"{path}: a '{ds.task}' data set, but model '{card.name}' is a '{card.task}' model")
    missing = [c for c in ds.classes if c not in card.classes]
    if missing:
        raise DatasetError(f"{path}: classes {missing} are not in model '{card.name}' (classes {card.classes})")
    arrays = ds.load()
    order = np.arange(len(arrays["labels"]))
    if limit is not None and limit < len(order):
        order = np.random.default_rng(0).permutation(len(order))[:limit]
        order.sort()
    remap = np.array([card.classes.index(c) for c in ds.classes])
    labels = remap[arrays["labels"][order]]
    image_name = card.input("image" if card.task == "frame" else "stamps").name
    if card.task == "frame":
        mask = card_mask(card, package)
        images = arrays["images"]
        bayers = arrays.get("meta.bayer")

        def prepared(i):
            bayer = str(bayers[i]) if bayers is not None and str(bayers[i]) in BAYER_CODES else None
            m = mask.array(images[i].shape[:2]) if mask else None
            return prepare_frame(images[i], card.preprocess, bayer=bayer, mask=m)

        frames = np.stack([prepared(i) for i in order])
        brightness = np.array([float(np.median(arrays["images"][i])) for i in order])
        strata = labels * 3 + _condition_strata(brightness)
        return LabelledInputs({image_name: frames}, labels, list(card.classes), strata=strata)
    spec = card.sequence
    xs, cs = [], []
    for i in order:
        x, c = prepare_sequence(arrays["images"][i], raw_conditions(arrays["conditions"][i]), spec)
        xs.append(x)
        cs.append(c)
    lengths = arrays.get("meta.length")
    lengths = np.asarray(lengths[order], dtype=np.int64) if lengths is not None else np.full(len(order), len(xs[0]))
    seeing = np.median(arrays["conditions"][order][..., RAW_CONDITIONS.index("fwhm")], axis=1)
    strata = labels * 3 + _condition_strata(seeing)
    inputs = {image_name: np.stack(xs)}
    if any(t.role == "conditions" for t in card.inputs):
        inputs[card.input("conditions").name] = np.stack(cs)
    return LabelledInputs(inputs, labels, list(card.classes), lengths=lengths, strata=strata)


def _labelled_folder_inputs(root: Path, card: ModelCard, limit: int | None, package, bayer: str | None = None) -> LabelledInputs:
    """A labelled folder (``DIR/<class>/<frame>``, what ``skyedge label`` writes) prepared for a frame model: a
    site's own frames, so that INT8 is calibrated and judged on the camera it will run on."""
    files = labelled_files(root)
    if not files:
        raise DatasetError(f"{root}: no frames in class folders (DIR/<class>/<frame>)")
    if missing := sorted({c for _, c in files} - set(card.classes)):
        raise DatasetError(f"{root}: classes {missing} are not in model '{card.name}' (classes {card.classes})")
    if limit is not None and limit < len(files):
        files = [files[i] for i in sorted(np.random.default_rng(0).permutation(len(files))[:limit])]
    mask = card_mask(card, package)
    frames, brightness = [], []
    for file, _ in files:
        image = read_frame(file)[0]
        try:
            frames.append(prepare_frame(image, card.preprocess, bayer=bayer, mask=mask.array(image.shape[:2]) if mask else None))
        except ValueError as exc:  # a frame that is no mosaic of --bayer, a mask of another size
            raise DatasetError(f"{file}: {exc}") from None
        brightness.append(float(np.nanmedian(image)))
    labels = np.array([card.classes.index(c) for _, c in files], dtype=np.int64)
    strata = labels * 3 + _condition_strata(np.array(brightness))
    return LabelledInputs({card.input("image").name: np.stack(frames)}, labels, list(card.classes), strata=strata)


def random_inputs(card: ModelCard, batch: int, epochs: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs in the card's shapes (time: ``epochs``, else the card's max epochs).

    What export parity, engine checks and benchmarks feed a model when the point is the graph, not the data.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for spec in card.inputs:
        shape = [batch]
        for dim in spec.shape[1:]:
            shape.append(dim if isinstance(dim, int) else (epochs or card.sequence.max_epochs))
        out[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return out
