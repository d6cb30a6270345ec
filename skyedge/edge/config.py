"""The edge deployment file (``configs/edge/*.yaml``): one device, its model, its pipelines, its reporters.

Validated in full when ``skyedge run`` starts (docs/architecture.md "Edge runtime"), so a
typo in a camera name or a missing password variable stops the service at
once instead of an hour into the night. Defaults are documented in
``configs/edge/allsky.yaml``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from skyedge.config import PathField, Schema
from skyedge.daylight import DAY_SUN_ALT_DEG
from skyedge.edge.config_checks import ChecksSection
from skyedge.edge.config_observatory import (
    AlpacaSection,
    HomeAssistantSection,
    SafetySection,
    SkyStateSection,
    StarsSection,
    WeatherFilesSection,
)
from skyedge.edge.config_sources import SourceSection
from skyedge.edge.config_types import Precision, TopicSegment
from skyedge.errors import SkyedgeError
from skyedge.exposure import DAY_MAX_EXPOSURE_S, NIGHT_MIN_EXPOSURE_S
from skyedge.stars.lens import check_distortion, check_tilt


class StartupError(SkyedgeError, ValueError):
    """A deployment that validates but cannot start here (a model that cannot serve it, a path that cannot be
    used): the message names the key and says what to do, like any other config error."""


class ModelSection(Schema):
    """Which model package to run and how."""

    package: PathField = Field(description="model package directory (holds skyedge.json)")
    precision: Precision = "fp32"
    expect_classes: list[str] | None = Field(
        default=None, description="when set, start fails unless the card lists exactly these classes"
    )


class BackendSection(Schema):
    """The inference backend shared by every pipeline of this device."""

    kind: Literal["onnxruntime", "tensorrt", "auto", "scripted"] = Field(
        default="auto",
        description="auto: TensorRT where usable, else ONNX Runtime; scripted: answers from `script`, no model run "
        "(rehearse observatory control before a model is trained)",
    )
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: Annotated[int, Field(ge=0)] = 0
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 8
    max_wait_ms: Annotated[float, Field(ge=0, le=10_000)] = 50.0
    engine_dir: PathField | None = Field(default=None, description="default: <package>/engines")
    dla_core: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="TensorRT: run the engine built for this DLA core (skyedge engine --dla N)"
    )
    script: list[str | dict[str, float]] | None = Field(
        default=None, description="kind scripted: answers in turn (class names, class -> probability, 'unrecognised')"
    )

    @model_validator(mode="after")
    def _script_for_scripted(self):
        if (self.kind == "scripted") != (self.script is not None):
            raise ValueError("script goes with kind: scripted (and kind: scripted needs a script)")
        return self


class MaskSection(Schema):
    """What the model must not see: trees, buildings, a dome slit, text overlays (masked pixels are ignored)."""

    image: PathField | None = Field(default=None, description="PNG the size of the camera's frames; white = sky")
    rectangles: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]] = Field(
        default_factory=list, description="[x, y, width, height] boxes to hide, in frame pixels (text overlays)"
    )


class PreprocessSection(Schema):
    """Site-specific corrections; the model card decides the rest (size, stretch, normalisation)."""

    bayer: Literal["RGGB", "BGGR", "GRBG", "GBRG"] | None = None
    dark: PathField | None = None
    flat: PathField | None = None
    mask: MaskSection = MaskSection()


class SiteLocation(Schema):
    """Where the cameras are: needed for the sun and moon of every frame (day gating, cross-checks)."""

    latitude_deg: Annotated[float, Field(ge=-90, le=90)]
    longitude_deg: Annotated[float, Field(ge=-180, le=180)] = Field(description="east positive")
    elevation_m: Annotated[float, Field(ge=-500, le=9000)] = 0.0


class CaptureTimeSection(Schema):
    """Where a frame's capture time comes from, tried in order; the file's time is the last resort (logged)."""

    sources: list[Literal["fits", "exif", "filename", "file"]] = Field(
        default_factory=lambda: ["fits", "exif", "filename", "file"]
    )
    camera_timezone: str = Field(
        default="UTC", description="time zone of EXIF times and file names: UTC, an IANA name or +HH:MM"
    )
    filename_format: str | None = Field(
        default=None, description="strftime pattern found in the file name, e.g. %Y%m%d_%H%M%S"
    )


class OrientationSection(Schema):
    """How the all-sky lens maps the sky onto the frame, so the moon's position in the image is known."""

    projection: Literal["equidistant", "equisolid", "stereographic"] = "equidistant"
    centre: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.5, 0.5], min_length=2, max_length=2, description="zenith, as fractions of (x, y)"
    )
    horizon_radius: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.47, description="horizon circle radius as a fraction of the frame's shorter side"
    )
    north_angle_deg: float = Field(default=0.0, description="image angle of north from 'up', counter-clockwise")
    east: Literal["left", "right"] = Field(
        default="left", description="east is left of north for a camera looking up (the sky seen from below)"
    )
    distortion: list[float] = Field(default_factory=lambda: [0.0, 0.0], min_length=2, max_length=2, description=(
        "(d1, d2): how the lens departs from its projection (docs/stars.md); the star watch fits it"))
    tilt_deg: list[float] = Field(default_factory=lambda: [0.0, 0.0], min_length=2, max_length=2, description=(
        "how far the optical axis leans toward east and toward north (centre is then the axis's pixel); fitted too"))

    @model_validator(mode="after")
    def _lens_keeps_the_sky_in_order(self):
        check_distortion(self.projection, self.distortion)
        check_tilt(self.tilt_deg)
        return self


class CollectSection(Schema):
    """Frames kept on the device for labelling (``skyedge label``, ``skyedge adapt``): copies plus JSON sidecars."""

    path: PathField = Field(
        description="folder the copies go to (created; one subfolder per UTC day); not inside a source.path "
        "searched recursively unless source.exclude leaves it out (the copies would be read again)"
    )
    unrecognised: bool = Field(default=True, description="every frame the verdict calls 'unrecognised'")
    below_confidence: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=0.6, description="every frame whose verdict confidence is below this (null: off)"
    )
    around_changes: Annotated[int, Field(ge=0, le=20)] = Field(
        default=2, description="frames kept before and after each sky-state change (0: off)"
    )
    every_minutes: Annotated[float, Field(gt=0)] | None = Field(
        default=30.0, description="one frame every this many minutes, whatever it shows (null: off)"
    )
    max_files: Annotated[int, Field(ge=1)] = Field(default=5000, description="quota: frames kept, oldest go first")
    max_bytes: Annotated[int, Field(ge=1)] = Field(default=2_000_000_000, description="quota: bytes, frames + sidecars")


class FieldMessagesSection(Schema):
    """Which per-object messages a telescope field publishes; every epoch also gets one summary message."""

    policy: Literal["changes", "every_epoch"] = Field(
        default="changes",
        description="changes: an object's first answer, a class change, a transient candidate and its final "
        "answer when retired; every_epoch: every object every epoch (small fields only)",
    )
    candidate_classes: list[str] = Field(
        default_factory=lambda: ["SN"], description="classes that make an object a transient candidate"
    )
    candidate_probability: Annotated[float, Field(ge=0, le=1)] = 0.8
    candidate_min_detections: Annotated[int, Field(ge=0)] = Field(
        default=2,
        description="epochs in which the object must have been brighter than the reference in the difference "
        "image (beyond detect_threshold_sigma, not judged an artefact) before it can be a candidate: a star that "
        "never changed is no transient, whatever the model answers for it, and one noise peak is not enough "
        "(surveys ask for two detections); 0: the model's answer alone",
    )
    summary_candidates: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=50, description="the most probable candidates listed in each epoch's summary"
    )


class PipelineSection(Schema):
    """One camera or telescope: a source and its per-site settings."""

    camera: TopicSegment
    source: SourceSection
    preprocess: PreprocessSection = PreprocessSection()
    sky_state: SkyStateSection = SkyStateSection()
    safety: SafetySection = SafetySection()
    capture_time: CaptureTimeSection = CaptureTimeSection()
    day_sun_alt_deg: Annotated[float, Field(ge=-18, le=10)] = Field(
        default=DAY_SUN_ALT_DEG,
        description="sun higher than this: the frame is 'day', not a night-sky class (needs site_location)",
    )
    day_max_exposure_s: Annotated[float, Field(gt=0)] | None = Field(
        default=DAY_MAX_EXPOSURE_S,
        description="a frame whose file records a shorter exposure (FITS EXPTIME, EXIF ExposureTime) is 'day' "
        "(an auto-exposing camera by daylight); null: off",
    )
    night_min_exposure_s: Annotated[float, Field(gt=0)] | None = Field(
        default=NIGHT_MIN_EXPOSURE_S,
        description="a frame whose file records this long an exposure is night: the model may not call it 'day' "
        "(without site_location; with it, the sun decides and checks.clock_vs_exposure doubts a clock it contradicts); null: off",
    )
    checks: ChecksSection = ChecksSection()
    views: Literal[1, 4] = Field(
        default=1, description="all-sky: 4 averages the model over each frame's quarter turns (an answer independent of the mount; 4x the inference)"
    )
    orientation: OrientationSection | None = Field(default=None, description="the lens's sky mapping (moon position)")
    collect: CollectSection | None = Field(default=None, description="keep frames for labelling (directory sources)")
    stars: StarsSection | None = Field(
        default=None,
        description="star visibility and the geometry from the sky (all-sky; needs site_location); on with its "
        "defaults wherever site_location is given and the key is left out; null: off",
    )
    weather_files: WeatherFilesSection | None = Field(
        default=None, description="Boltwood II and Weather Watcher files for observatory software (all-sky)"
    )
    field_messages: FieldMessagesSection = Field(
        default_factory=FieldMessagesSection, description="telescope fields: what is published per object"
    )


class TlsSection(Schema):
    """TLS to the broker; the hostname check is on unless explicitly turned off."""

    ca_file: PathField
    cert_file: PathField | None = None
    key_file: PathField | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self):
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        return self


class MqttSection(Schema):
    """The broker skyedge reports to."""

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, description="default: skyedge-<site>-<device>")
    username: str | None = None
    password: Annotated[SecretStr, Field(strict=False)] | None = Field(
        default=None, description="use ${ENV_VAR}; never write it in the file"
    )
    password_file: PathField | None = None
    tls: TlsSection | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    session_expiry_s: Annotated[int, Field(ge=0)] = 86_400
    queue_path: PathField | None = Field(default=None, description="store-and-forward SQLite file")
    queue_max_messages: Annotated[int, Field(ge=100)] = 100_000
    metrics_interval_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _one_password(self):
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self


class JsonlSection(Schema):
    """An append-only JSON-lines audit log of every message."""

    path: PathField


class ReportersSection(Schema):
    """Where results go; at least one reporter is required."""

    mqtt: MqttSection | None = None
    jsonl: JsonlSection | None = None

    @model_validator(mode="after")
    def _at_least_one(self):
        if self.mqtt is None and self.jsonl is None:
            raise ValueError("configure at least one reporter (mqtt or jsonl)")
        return self


class EdgeConfig(Schema):
    """A whole device: identity, model, backend, pipelines and reporters."""

    site: TopicSegment
    device: TopicSegment
    site_location: SiteLocation | None = Field(
        default=None, description="optional; without it there is no ephemeris, day gating or cross-check"
    )
    model: ModelSection
    backend: BackendSection = BackendSection()
    pipelines: list[PipelineSection] = Field(min_length=1)
    reporters: ReportersSection
    alpaca: AlpacaSection = AlpacaSection()
    homeassistant: HomeAssistantSection = HomeAssistantSection()

    @model_validator(mode="before")
    @classmethod
    def _stars_where_the_site_is_known(cls, data):
        """A site's stars are known wherever its location is: an all-sky pipeline that leaves ``stars`` out gets
        the section's defaults (the geometry solved from its own frames); ``stars: null`` keeps them off."""
        if not isinstance(data, dict) or data.get("site_location") is None or not isinstance(data.get("pipelines"), list):
            return data
        pipelines = []
        for p in data["pipelines"]:
            source = p.get("source") if isinstance(p, dict) else None
            sky = isinstance(source, dict) and "stars" not in p and source.get("kind") != "fits-sequence"
            pipelines.append({**p, "stars": {}} if sky else p)
        return {**data, "pipelines": pipelines}

    @model_validator(mode="after")
    def _unique_cameras(self):
        cameras = [p.camera for p in self.pipelines]
        repeated = sorted({c for c in cameras if cameras.count(c) > 1})
        if repeated:
            raise ValueError(
                f"camera names must be unique per device (they are topic levels); repeated: {', '.join(repeated)}"
            )
        if self.alpaca.enabled and self.alpaca.camera is not None and self.alpaca.camera not in cameras:
            raise ValueError(f"alpaca.camera '{self.alpaca.camera}' is not one of the pipelines ({', '.join(cameras)})")
        oriented = [p.camera for p in self.pipelines if p.orientation is not None]
        if oriented and self.site_location is None:
            raise ValueError(f"pipelines {oriented} set an orientation, which needs site_location (where the sky is)")
        starry = [p.camera for p in self.pipelines if p.stars is not None]
        if starry and self.site_location is None:
            raise ValueError(f"pipelines {starry} set stars, which needs site_location (which stars are up)")
        if self.homeassistant.enabled and self.reporters.mqtt is None:
            raise ValueError("homeassistant.enabled needs reporters.mqtt (discovery is published over MQTT)")
        return self


def load_edge_config(path, check_paths: bool = False) -> EdgeConfig:
    """Load and validate an edge deployment file; ``check_paths`` also checks every path it names (at start)."""
    from skyedge.config import load_config
    from skyedge.edge.startup import path_problems

    return load_config(path, EdgeConfig, checks=path_problems if check_paths else None)
