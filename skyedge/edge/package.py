"""Open a model package on the device: card, the ONNX file for the configured precision, integrity checks.

Everything that can be wrong with a package is found here, at start: a
missing directory or card, a precision the package lacks, a file whose sha256
differs from the card (a half-copied model), a class list other than the one
the deployment expects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from skyedge.cpu_int8 import saturation_note
from skyedge.errors import SkyedgeError
from skyedge.model_card import ModelCard, read_card
from skyedge.precisions import card_key_for, preferred_key, withheld, withheld_note
from skyedge.shards import sha256_file

log = logging.getLogger(__name__)


class PackageError(SkyedgeError, ValueError):
    """A model package this device cannot run as configured."""


@dataclass(frozen=True)
class Package:
    """A verified package: its card and the ONNX file chosen for the precision and backend."""

    path: Path
    card: ModelCard
    precision: str
    key: str  # the card's file key (``int8-cpu`` when ONNX Runtime runs INT8)
    onnx_file: Path
    onnx_sha256: str
    graph: str = "full"  # or a sequence model's incremental "step" graph

    @property
    def inputs(self) -> list:
        """The chosen graph's input tensors."""
        return self.card.step.inputs if self.graph == "step" else self.card.inputs

    @property
    def model_info(self) -> dict:
        """The ``model`` block of every MQTT message."""
        return {"name": self.card.name, "sha256": self.onnx_sha256, "precision": self.precision}


def open_package(
    path: str | Path, precision: str, backend: str, expect_classes: list[str] | None = None, graph: str | None = None
) -> Package:
    """Read the card, pick and verify the file for ``precision``; raise :class:`PackageError` naming the problem.

    ``graph``: ``full`` or ``step``; by default a sequence model's step graph (what the field pipeline runs:
    one epoch per object per call), else the full graph."""
    path = Path(path)
    if not path.is_dir():
        raise PackageError(f"model.package: {path} is not a directory (copy the package from the workstation)")
    card = read_card(path)
    if expect_classes is not None and list(expect_classes) != list(card.classes):
        raise PackageError(
            f"model.expect_classes: the deployment expects {expect_classes} but {path}/skyedge.json lists "
            f"{card.classes}: wrong model for this camera?"
        )
    graph = graph or ("step" if card.task == "sequence" else "full")
    if graph == "step" and card.step is None:
        raise PackageError(
            f"{path}/skyedge.json: the sequence model has no step graph (the incremental form the edge runs); "
            "re-export it with this version's `skyedge export` (and calibrate again for int8)"
        )
    files = card.step.files if graph == "step" else card.files
    key = card_key_for(precision, backend, files)
    if key not in files:
        raise PackageError(
            f"model.precision: {path} has no {precision} {graph} graph (card files: {', '.join(sorted(files))})"
            + (withheld_note(path, precision) or "; run `skyedge calibrate` (int8) or re-export (fp16)")
        )
    file = path / files[key]
    preferred = preferred_key(precision, backend)
    if key != preferred and preferred in withheld(path, precision):
        # The backend's own form failed the gate; another of the same precision runs in its place (right, slower).
        log.warning("model.precision: %s runs %s%s", path, files[key], withheld_note(path, precision))
    if not file.exists():
        raise PackageError(f"{file}: listed in the card but missing from the package")
    digest = sha256_file(file)
    expected = card.sha256.get(file.name)
    if expected is not None and expected != digest:
        raise PackageError(f"{file}: sha256 differs from the card (truncated or modified copy); copy the package again")
    note = saturation_note(path, file.name)  # '' but for the U8S8 form with 8-bit weights on an x86 without VNNI
    if note:
        log.warning("model.precision: %s", note)
    return Package(path, card, precision, key, file, digest, graph)
