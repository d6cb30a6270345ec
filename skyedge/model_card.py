"""The model card, ``skyedge.json``: the contract between workstation and device.

A versioned, torch-free description of a model package (docs/architecture.md "The model
package"): task, classes, tensor specs, preprocessing, sequence limits, the
metric head and provenance. :func:`write_card` validates before writing;
:func:`read_card` refuses a card that is invalid or written by a newer schema,
naming the field, so the edge never guesses.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from skyedge.durable import replace_file
from skyedge.precisions import CARD_KEYS
from skyedge.validation import SchemaError, format_errors

__all__ = [
    "CARD_FILE",
    "CARD_SCHEMA_VERSION",
    "ModelCard",
    "ModelCardError",
    "TensorSpec",
    "Preprocess",
    "Stretch",
    "SequenceSpec",
    "MetricHead",
    "Provenance",
    "read_card",
    "write_card",
    "card_json_schema",
]

CARD_FILE = "skyedge.json"
CARD_SCHEMA_VERSION = 1


class ModelCardError(SchemaError):
    """A model card the reader cannot satisfy."""


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Dim = Annotated[int, Field(gt=0)] | Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TensorSpec(_Card):
    """One graph input or output. A string dimension is dynamic and names its axis."""

    name: str = Field(min_length=1)
    role: Literal[
        "image", "stamps", "conditions", "probabilities", "logits", "min_distance", "embedding", "state", "cloud_map"
    ]
    dtype: Literal["float32", "float16", "int64", "int32", "uint8"] = "float32"
    shape: list[Dim] = Field(min_length=1)
    layout: str | None = Field(default=None, description="axis letters, e.g. NCHW or NTCHW")

    @model_validator(mode="after")
    def _layout_matches_rank(self):
        if self.layout is not None and len(self.layout) != len(self.shape):
            raise ValueError(f"layout '{self.layout}' has {len(self.layout)} axes but shape has {len(self.shape)}")
        return self


class Stretch(_Card):
    """How raw counts become [0, 1] before normalisation (16-bit and FITS data keep range until here).

    ``median``: asinh of the excess over the black point (``low_percentile``) in units of the sky median's
    excess, ``ceiling`` times the median mapping to 1: no bright outlier (a text overlay, the moon, saturated
    stars) moves the anchor, and any camera gain cancels. ``rank``: each pixel's rank among the sky's pixels:
    unchanged by any monotone camera curve (gain, gamma, auto-stretch).
    """

    kind: Literal["linear", "asinh", "percentile", "median", "rank"] = "linear"
    low: float | None = Field(default=None, description="linear: raw value mapped to 0 (default: dtype minimum)")
    high: float | None = Field(default=None, description="linear: raw value mapped to 1 (default: dtype maximum)")
    low_percentile: float = Field(default=1.0, ge=0, le=100)
    high_percentile: float = Field(default=99.5, ge=0, le=100)
    asinh_a: float = Field(default=0.1, gt=0, description="asinh softening relative to the percentile range")
    ceiling: float = Field(default=30.0, gt=1, description="median: excess over black, in medians, that maps to 1")

    @model_validator(mode="after")
    def _ordered(self):
        if self.low_percentile >= self.high_percentile:
            raise ValueError("low_percentile must be below high_percentile")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("low must be below high")
        return self


class CardMask(_Card):
    """The mask the model was trained with (its image travels in the package); edge and calibration apply it."""

    file: str | None = Field(default=None, description="PNG in the package, white = sky")
    rectangles: list[list[Annotated[int, Field(ge=0)]]] = Field(
        default_factory=list, description="[x, y, width, height] boxes hidden, in frame pixels"
    )


class Preprocess(_Card):
    """Everything the edge does to a decoded frame or stamp before the graph."""

    size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] = Field(description="(height, width)")
    channels: Literal[1, 3]
    color: Literal["mono", "rgb"]
    stretch: Stretch = Stretch()
    mean: list[float]
    std: list[Annotated[float, Field(gt=0)]]
    horizon_mask: bool = Field(default=False, description="zero pixels outside the all-sky circle")
    horizon_radius: float = Field(
        default=0.47, gt=0, le=0.5, description="circle radius as a fraction of the image side"
    )
    resize: Literal["area", "linear", "none"] = "area"
    fit: Literal["stretch", "pad"] = Field(
        default="stretch", description="a frame of another aspect: stretched to the model's, or padded (masked)"
    )
    mask: CardMask | None = Field(default=None, description="pixels hidden in training (and so everywhere)")

    @model_validator(mode="after")
    def _per_channel(self):
        if (self.color == "mono") != (self.channels == 1):
            raise ValueError(f"color '{self.color}' does not match channels {self.channels}")
        for key in ("mean", "std"):
            if len(getattr(self, key)) != self.channels:
                raise ValueError(f"{key} has {len(getattr(self, key))} values for {self.channels} channel(s)")
        return self


class SequenceSpec(_Card):
    """Limits of a sequence model: stamp size, epochs, and the per-epoch condition features."""

    stamp_size: Annotated[int, Field(gt=0)]
    stamps: Literal["science"] = Field(
        default="science",
        description="the stamps the model reads: science stamps centred on the object (an archive's reference and "
        "difference stamps are read and not used); archives with larger stamps are cut to stamp_size",
    )
    min_epochs: Annotated[int, Field(ge=1)] = 1
    max_epochs: Annotated[int, Field(ge=1)]
    conditions: list[str] = Field(default_factory=list, description="feature order of the conditions input")
    flux_scale: Literal["zero_point", "noise"] = Field(
        default="zero_point",
        description="zero_point: flux scaled to flux_reference_zp with each epoch's zero point (an error in the "
        "assumed zero point scales every stamp); noise: flux in units of the epoch's pixel noise (no zero point)",
    )
    flux_reference_zp: float = Field(
        default=25.0, description="flux_scale zero_point: stamps are scaled to this zero point with each epoch's MAGZP"
    )
    asinh_softening: float = Field(
        default=10.0, gt=0, description="flux scale of the stamp scaling (electrons at the reference zero point, or "
        "noise sigmas)"
    )
    stamp_scaling: Literal["asinh", "linear"] = Field(
        default="asinh",
        description="asinh(flux/softening), or flux/softening: linear keeps a PSF's pixel sum equal to its flux",
    )
    conditions_mean: list[float] = Field(default_factory=list)
    conditions_std: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs {self.min_epochs} exceeds max_epochs {self.max_epochs}")
        for key in ("conditions_mean", "conditions_std"):
            values = getattr(self, key)
            if values and len(values) != len(self.conditions):
                raise ValueError(f"{key} has {len(values)} values for {len(self.conditions)} conditions")
        return self


class MetricHead(_Card):
    """The classifier on top of the embedding, fitted after training and folded into the graph."""

    kind: Literal["softmax", "mahalanobis", "ridge"]
    embedding_dim: Annotated[int, Field(gt=0)] | None = None
    in_graph: bool = True
    unknown_threshold: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="min Mahalanobis distance above which a result is 'unknown'"
    )
    loss: str | None = Field(default=None, description="training loss: cross_entropy, triplet, arcface")
    statistics: str | None = Field(
        default=None, description="file in the package with the head's class means, covariance and counts (adapt)"
    )


class Provenance(_Card):
    """Where the model came from, so a result on the device can be traced to a training run."""

    created: datetime
    git_revision: str | None = None
    config_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    data_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    training_run: str | None = None
    framework: dict[str, str] = Field(default_factory=dict, description="library versions used to train/export")
    metrics: dict[str, float] = Field(default_factory=dict)

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone (UTC), e.g. 2026-11-23T10:00:00Z")
        return value.astimezone(timezone.utc)


class Adaptation(_Card):
    """How ``skyedge adapt`` made this package from another: the parent, the site's data, what it changed."""

    parent_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the parent package's FP32 model")
    parent_name: str
    data_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the labelled files (names + bytes)")
    counts: dict[str, Annotated[int, Field(ge=0)]] = Field(description="labelled frames per class")
    added_classes: list[str] = Field(default_factory=list)
    created: datetime
    report: str = Field(default="adapt.json", description="file in the package with accuracy before and after")


class StepGraph(_Card):
    """A sequence model's incremental form: the next epochs of each history plus the state after the earlier ones.

    Same ``stamps``/``conditions``/``probabilities`` as the full graph, plus ``state`` inputs (zero for a new
    object) and outputs; ``state`` maps each state input to the output that carries it to the next call.
    """

    inputs: list[TensorSpec] = Field(min_length=3)
    outputs: list[TensorSpec] = Field(min_length=2)
    state: dict[str, str] = Field(min_length=1, description="state input -> the output holding its next value")
    files: dict[Literal[CARD_KEYS], str] = Field(description="precision -> ONNX file of the step graph")

    @model_validator(mode="after")
    def _carried(self):
        ins = {t.name for t in self.inputs if t.role == "state"}
        outs = {t.name for t in self.outputs if t.role == "state"}
        if set(self.state) != ins or set(self.state.values()) != outs:
            raise ValueError(f"state {self.state} must pair every state input {sorted(ins)} with an output {sorted(outs)}")
        if "fp32" not in self.files:
            raise ValueError("files must name the fp32 step graph")
        return self

    def input(self, role: str) -> TensorSpec:
        """The input tensor with this role."""
        return next(t for t in self.inputs if t.role == role)


class ModelCard(_Card):
    """``skyedge.json``: everything the edge needs to run a model package, nothing that needs torch."""

    schema_version: Literal[1] = CARD_SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Literal["frame", "sequence"]
    classes: list[Annotated[str, Field(min_length=1)]] = Field(min_length=2)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    preprocess: Preprocess
    sequence: SequenceSpec | None = None
    metric_head: MetricHead
    files: dict[Literal[CARD_KEYS], str] = Field(
        default_factory=lambda: {"fp32": "model.onnx"}, description="precision -> ONNX file in the package"
    )
    sha256: dict[str, str] = Field(default_factory=dict, description="file name -> sha256 of that file")
    provenance: Provenance
    adaptation: Adaptation | None = Field(default=None, description="set by skyedge adapt")
    step: StepGraph | None = Field(
        default=None, description="sequence models: the incremental graph the edge runs (one epoch per object per call)"
    )

    @field_validator("classes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"class names must be unique; repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _coherent(self):
        if self.task == "sequence" and self.sequence is None:
            raise ValueError("a sequence model needs the 'sequence' block (stamp size, epoch limits)")
        if self.task == "frame" and self.sequence is not None:
            raise ValueError("a frame model must not have a 'sequence' block")
        names = [t.name for t in self.inputs + self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique, got {names}")
        image_role = "image" if self.task == "frame" else "stamps"
        if not any(t.role == image_role for t in self.inputs):
            raise ValueError(f"a {self.task} model needs an input with role '{image_role}'")
        if not any(t.role == "probabilities" for t in self.outputs):
            raise ValueError("one output must have role 'probabilities'")
        for out in self.outputs:
            if out.role in ("probabilities", "logits") and isinstance(out.shape[-1], int):
                if out.shape[-1] != len(self.classes):
                    raise ValueError(
                        f"output '{out.name}' has {out.shape[-1]} class scores but the card lists "
                        f"{len(self.classes)} classes"
                    )
        if self.metric_head.kind == "mahalanobis" and not any(t.role == "min_distance" for t in self.outputs):
            raise ValueError("a mahalanobis head needs an output with role 'min_distance'")
        if "fp32" not in self.files:
            raise ValueError("files must name the fp32 model")
        if self.step is not None and self.task != "sequence":
            raise ValueError("only a sequence model has a step graph")
        return self

    def input(self, role: str) -> TensorSpec:
        """The input tensor with this role."""
        for tensor in self.inputs:
            if tensor.role == role:
                return tensor
        raise KeyError(f"model '{self.name}' has no input with role '{role}'")

    def output(self, role: str) -> TensorSpec:
        """The output tensor with this role."""
        for tensor in self.outputs:
            if tensor.role == role:
                return tensor
        raise KeyError(f"model '{self.name}' has no output with role '{role}'")


def _card_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / CARD_FILE if path.is_dir() else path


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read and validate a card from a package directory or a ``skyedge.json`` path."""
    file = _card_path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelCardError(
            source, ["no model card here: is this a model package directory?"], "cannot read"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(source, [str(exc)], "cannot read") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelCardError(source, [f"line {exc.lineno}, column {exc.colno}: {exc.msg}"], "not valid JSON") from None
    if not isinstance(data, dict):
        raise ModelCardError(source, [f"expected a JSON object, got {type(data).__name__}"])
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelCardError(source, [f"schema_version: expected an integer, got {version!r}"])
    if version > CARD_SCHEMA_VERSION:
        raise ModelCardError(
            source,
            [
                f"schema_version: card schema {version} is newer than this skyedge understands "
                f"(up to {CARD_SCHEMA_VERSION}); upgrade skyedge on this device or re-export with a matching version"
            ],
            "refused",
        )
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        raise ModelCardError(source, format_errors(exc, data, ModelCard)) from None


def write_card(card: ModelCard | dict, package_dir: str | os.PathLike) -> Path:
    """Validate and write ``skyedge.json`` into ``package_dir`` atomically; return its path."""
    if not isinstance(card, ModelCard):
        try:
            card = ModelCard.model_validate(card)
        except ValidationError as exc:
            raise ModelCardError(f"{package_dir}/{CARD_FILE}", format_errors(exc, card, ModelCard)) from None
    package_dir = Path(package_dir)
    package_dir.mkdir(parents=True, exist_ok=True)
    target = package_dir / CARD_FILE
    text = card.model_dump_json(indent=2, exclude_none=False) + "\n"
    # Whole or not at all, so a reader never sees half a card; as readable as the package's other files (a
    # service user other than the one who copied the package reads it).
    replace_file(target, text.encode("utf-8"))
    return target


def card_json_schema() -> dict:
    """The card's JSON Schema (shipped as schemas/model_card.schema.json for non-Python readers)."""
    schema = ModelCard.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://skyedge.invalid/schemas/model_card/{CARD_SCHEMA_VERSION}"
    return schema


if __name__ == "__main__":
    print(json.dumps(card_json_schema(), indent=2))
