"""Painted cloud: a labelled frame's ``<name>.cloud.png`` says where its cloud is.

A frame label says a sky is clear or cloudy, not how much of it is cloud nor where. A painted mask says both. It is
an image of the frame's own size beside it (``labelled/cloudy/0412.jpg`` -> ``labelled/cloudy/0412.cloud.png``):
black clear sky, white cloud, anything between (a soft brush's edge) or transparent not judged, and left out. Any
image editor paints one (``skyedge label``'s ``p`` key does); the frame's class folder still gives its class. Read
here for both its users: ``skyedge adapt`` refits the cloud head to it on the device, and a training recipe's
``image_folder`` source trains the cloud map on it as per-pixel truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.errors import SkyedgeError
from skyedge.preprocess import NO_SKY

MASK_SUFFIX = ".cloud.png"
# Who painted a mask, kept in the PNG as a text chunk (image editors keep or drop it; a person's paint has none):
# ``skyedge star-labels`` marks its own, so that a person who overrules the stars' label drops their paint too.
PAINTER_KEY = "skyedge-painter"
STARS_PAINTER = "stars"
CLEAR_AT_MOST = 63  # grey levels: at most this is clear sky, at least CLOUD_AT_LEAST cloud, between not judged
CLOUD_AT_LEAST = 192


class MaskError(SkyedgeError, ValueError):
    """A painted mask that cannot be used: says which file and why."""


def is_mask(path: Path) -> bool:
    """Whether ``path`` is a painted mask (not a frame)."""
    return path.name.lower().endswith(MASK_SUFFIX)


def mask_path(frame: Path) -> Path:
    """Where a frame's painted mask lies."""
    return frame.with_name(frame.stem + MASK_SUFFIX)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The mask at ``path`` as cloud truth of a frame of ``shape`` (uint8: 0 clear, 250 cloud, NO_SKY not judged)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MaskError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise MaskError(f"{path}: {image.dtype} pixels; paint an 8- or 16-bit image")
    alpha = image[..., 3] if image.ndim == 3 and image.shape[2] == 4 else None
    grey = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY) if image.ndim == 3 and image.shape[2] >= 3 else image
    grey = grey.reshape(grey.shape[:2])
    if grey.shape != tuple(shape):
        raise MaskError(
            f"{path}: {grey.shape[1]}x{grey.shape[0]} pixels, its frame {shape[1]}x{shape[0]}: paint on the frame's "
            "own size"
        )
    truth = np.full(grey.shape, NO_SKY, np.uint8)
    truth[grey <= CLEAR_AT_MOST] = 0
    truth[grey >= CLOUD_AT_LEAST] = 250
    if alpha is not None:
        truth[alpha < 128] = NO_SKY
    return truth


def write_mask(path: Path, paint: np.ndarray, painter: str | None = None) -> None:
    """Write a painted mask (uint8 grey: 0 clear sky, 255 cloud, 128 not judged) as a PNG; ``painter``, when not a
    person, is recorded in it (:func:`mask_painter`). OSError naming the file when it cannot be written."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if painter is not None:
        info.add_text(PAINTER_KEY, painter)
    try:
        Image.fromarray(np.ascontiguousarray(paint, np.uint8)).save(path, format="PNG", pnginfo=info)
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: cannot write the painted mask ({exc})") from None


def mask_painter(path: Path) -> str | None:
    """Who painted the mask at ``path`` as :func:`write_mask` recorded it (``STARS_PAINTER``); None for a person,
    another editor, or a file that cannot be read (reads the PNG's header only)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            painter = image.info.get(PAINTER_KEY)
    except (OSError, ValueError):
        return None
    return painter if isinstance(painter, str) else None
