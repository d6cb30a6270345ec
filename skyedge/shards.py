"""The on-disk data set format: a folder of ``.npz`` shards and a ``manifest.json``.

::

    DIR/manifest.json      format, task, classes, item count, shard list (file, count, sha256),
                           array specs, simulator name/config/seed, creation time
    DIR/shard-00000.npz    arrays with the item axis first:
                             images      frame: (n, H, W) or (n, H, W, 3), uint8/uint16 ADU
                                         sequence: (n, T, S, S) float32 electrons
                             labels      (n,) int64 index into manifest classes
                             conditions  sequence only: (n, T, K) float32, names in manifest
                             meta.<key>  (n,) one per metadata field (float64 or unicode)

Shards are written by worker processes in parallel; each shard's random
stream is spawned from the data set seed, so the output is identical whatever
the number of workers. A reader checks every shard's sha256 against the
manifest, so a truncated copy is reported, not trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skyedge.errors import SkyedgeError

FORMAT = "skyedge-shards/1"
MANIFEST = "manifest.json"


class DatasetError(SkyedgeError, ValueError):
    """A data set folder that cannot be read as written."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_shard(directory: Path, index: int, arrays: dict[str, np.ndarray], meta: list[dict]) -> dict:
    """Write one shard (arrays + per-item metadata columns); return its manifest entry."""
    columns = {}
    for key in sorted({k for m in meta for k in m}):
        values = [m.get(key) for m in meta]
        if all(isinstance(v, (int, float, np.floating, np.integer, bool)) or v is None for v in values):
            columns[f"meta.{key}"] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[f"meta.{key}"] = np.array(["" if v is None else str(v) for v in values])
    name = f"shard-{index:05d}.npz"
    path = directory / name
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays, **columns)
    os.replace(tmp, path)
    return {"file": name, "count": int(len(arrays["labels"])), "sha256": sha256_file(path)}


def write_manifest(
    directory: Path,
    *,
    task: str,
    classes: list[str],
    shards: list[dict],
    arrays: dict,
    simulator: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write manifest.json last, so a folder with a manifest is a complete data set."""
    manifest = {
        "format": FORMAT,
        "task": task,
        "classes": list(classes),
        "count": int(sum(s["count"] for s in shards)),
        "shards": shards,
        "arrays": arrays,
        "simulator": simulator,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **(extra or {}),
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


@dataclass
class ShardedDataset:
    """A data set folder opened for reading; arrays are loaded shard by shard or all at once."""

    root: Path
    manifest: dict

    @classmethod
    def open(cls, root: str | os.PathLike, verify: bool = True) -> ShardedDataset:
        """Open DIR, check its manifest and (by default) every shard's sha256."""
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            raise DatasetError(f"{root}: no {MANIFEST}; not a skyedge data set (or still being written)")
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON: {exc}") from None
        if manifest.get("format") != FORMAT:
            raise DatasetError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
        for key in ("task", "classes", "shards"):
            if key not in manifest:
                raise DatasetError(f"{path}: missing key '{key}'")
        if verify:
            for shard in manifest["shards"]:
                file = root / shard["file"]
                if not file.exists():
                    raise DatasetError(f"{file}: listed in the manifest but missing")
                if sha256_file(file) != shard["sha256"]:
                    raise DatasetError(f"{file}: sha256 differs from the manifest (truncated or modified copy)")
        return cls(root, manifest)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def task(self) -> str:
        return self.manifest["task"]

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def iter_shards(self) -> Iterator[dict[str, np.ndarray]]:
        """Each shard's arrays as a dict (metadata under 'meta.<key>')."""
        for shard in self.manifest["shards"]:
            with np.load(self.root / shard["file"], allow_pickle=False) as data:
                yield {k: data[k] for k in data.files}

    def load(self) -> dict[str, np.ndarray]:
        """All shards concatenated (the tiny and test sets fit in memory)."""
        parts: dict[str, list] = {}
        for arrays in self.iter_shards():
            for key, value in arrays.items():
                parts.setdefault(key, []).append(value)
        return {k: np.concatenate(v) for k, v in parts.items()}

    def content_hash(self) -> str:
        """sha256 over the shard hashes: identifies the data a model was trained on."""
        digest = hashlib.sha256()
        for shard in self.manifest["shards"]:
            digest.update(shard["sha256"].encode())
        return digest.hexdigest()
