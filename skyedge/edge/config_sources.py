"""The ``source`` section of a pipeline: a camera, a watched folder of all-sky frames, or a telescope field's frames.

Split from :mod:`skyedge.edge.config` so each section file stays small; validated with the rest of the file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from skyedge.config import PathField, Schema

# What all-sky programs write beside or below the frames they capture (AllskyTeam's allsky: keogram/,
# startrails/, thumbnails/ in each night's folder; indi-allsky: *-keogram_*, *-startrail_*): images of the
# night, not of the sky, that a recursive or shared folder would otherwise feed to the model.
ALLSKY_PRODUCTS = ("*keogram*", "*startrail*", "thumbnail*")


class CameraSourceSection(Schema):
    """OpenCV VideoCapture: a V4L2 index, an RTSP URL or a GStreamer pipeline string."""

    kind: Literal["camera"]
    uri: int | str
    api: Literal["any", "v4l2", "ffmpeg", "gstreamer"] = "any"
    interval_s: Annotated[float, Field(ge=0)] = 0.0
    reconnect_initial_s: Annotated[float, Field(gt=0)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0)] = 60.0


class FolderSourceSection(Schema):
    """What both folder sources share: where to look, when a file is complete, where the state lives."""

    path: PathField
    settle_s: Annotated[float, Field(ge=0)] = Field(
        default=1.0, description="a file must stay unchanged this long before it is read"
    )
    poll_s: Annotated[float, Field(gt=0)] = Field(
        default=0.5, description="how often the folder is listed (20,000 handled files in one folder: about 0.03 s a poll on 2 cores)"
    )
    state_file: PathField | None = Field(default=None, description="default: <path>/.skyedge-state.sqlite")
    max_pixels: Annotated[int, Field(ge=64)] = Field(
        default=64_000_000, description="larger images (from the file header) are refused before decoding"
    )
    retry_initial_s: Annotated[float, Field(gt=0)] = Field(
        default=1.0, description="a vanished or unreadable folder is retried after this, doubling"
    )
    retry_max_s: Annotated[float, Field(gt=0)] = 60.0
    exclude: list[str] = Field(
        default_factory=list,
        description="files never read: a pattern matches the file's name, any folder's name on its way from path "
        "(that folder is not searched), or, with a '/', its path below path; case-insensitive",
    )


class DirectorySourceSection(FolderSourceSection):
    """A folder where camera software drops FITS/JPEG/PNG/TIFF/WebP files."""

    kind: Literal["directory"]
    patterns: list[str] = Field(
        default_factory=lambda: ["*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fz", "*.jpg", "*.jpeg", "*.png", "*.tif", "*.tiff", "*.webp"]
    )
    recursive: bool = False
    exclude: list[str] = Field(
        default_factory=lambda: list(ALLSKY_PRODUCTS),
        description="files never read (name, folder name or path below path; case-insensitive); the default "
        "leaves out what all-sky programs make from the frames (keograms, star trails, thumbnails); a list given "
        "replaces it",
    )
    frame_shape: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="[H, W] or [H, W, 3]: only frames of this shape are accepted; default: learned and remembered",
    )


class FitsSequenceSourceSection(FolderSourceSection):
    """Telescope frames of one field over time: a reference, difference imaging on every epoch, objects followed."""

    kind: Literal["fits-sequence"]
    catalog: PathField | None = Field(
        default=None, description="CSV with id,x,y of objects to follow from the start; default: the reference's sources"
    )
    patterns: list[str] = Field(default_factory=lambda: ["*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fz"])
    reference: PathField | None = Field(
        default=None,
        description="template FITS frame (FWHM and MAGZP from its header, else measured and zero_point); "
        "default: built from the first epochs",
    )
    reference_epochs: Annotated[int, Field(ge=1, le=50)] = Field(
        default=3, description="epochs median-combined into the reference when none is configured"
    )
    detect_threshold_sigma: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="residuals (and reference sources) beyond this S/N after the PSF-matched filter"
    )
    detect_new: bool = Field(default=True, description="create objects for residuals away from every known object")
    real_bogus: bool = Field(
        default=True,
        description="judge new residuals before they become objects: cosmic rays and flickering pixels (sharper "
        "than the frame's stars), misregistration dipoles; bogus ones are counted in the field message",
    )
    real_bogus_model: str | None = Field(
        default="builtin",
        description="after the physics, a learnt real/bogus network judges each new residual's triplet (frame, "
        "template, difference): 'builtin' (packaged; trained on simulated and real artefacts), a path to an .onnx "
        "with its .json card (skyedge train-real-bogus), or null (physics only); needs real_bogus",
    )
    match_radius_px: Annotated[float, Field(gt=0)] = Field(
        default=3.0, description="a residual within this distance of an object belongs to it"
    )
    align: bool = Field(
        default=True,
        description="match each epoch's stars to the reference's and undo the drift, rotation or meridian flip "
        "(false: frames are already registered)",
    )
    zero_point: float = Field(
        default=25.0,
        description="magnitude zero point given to the reference when its frames' headers have no MAGZP; every "
        "epoch's is then measured relative to it from the stars (clouds show as a drop); a model with flux_scale "
        "noise uses only the differences, so any value serves",
    )
    ring_epochs: Annotated[int, Field(ge=0, le=256)] = Field(
        default=8,
        description="recent frames kept so a new object's history starts before its detection (memory: this many "
        "frames; capped at the model's max_epochs - 1)",
    )
    poll_s: Annotated[float, Field(gt=0)] = 1.0
    forget_after_epochs: Annotated[int, Field(ge=1)] = Field(
        default=5, description="an object found by difference imaging and not detected again for this many epochs "
        "is retired (final message; bounded memory)"
    )
    max_objects: Annotated[int, Field(ge=1)] = Field(
        default=50_000, description="objects followed at once; beyond it new detections are counted, not followed"
    )


SourceSection = Annotated[
    CameraSourceSection | DirectorySourceSection | FitsSequenceSourceSection, Field(discriminator="kind")
]
