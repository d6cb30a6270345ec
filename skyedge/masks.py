"""Per-camera masks: the parts of a frame that are not sky (trees, buildings, a dome slit, text overlays).

A mask is a PNG the size of the camera's frames (white = sky) and/or rectangles to hide. Shared by the training
loaders and the edge, so both see the same pixels; :func:`skyedge.preprocess.prepare_frame` ignores masked
pixels in the stretch and zeroes them in the model input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.errors import SkyedgeError


class MaskError(SkyedgeError, ValueError):
    """A mask that cannot be used (unreadable, or not the frame's size), naming the file or key."""


class FrameMask:
    """The boolean sky mask for frames of a given size (True = sky); None when nothing is masked."""

    def __init__(self, image: str | Path | None = None, rectangles: list[list[int]] | None = None, key: str = "mask"):
        self.image_path = Path(image) if image is not None else None
        self.rectangles = [tuple(r) for r in rectangles or []]
        self.key = key
        self._image: np.ndarray | None = None
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        if self.image_path is not None:
            import cv2

            data = cv2.imread(str(self.image_path), cv2.IMREAD_GRAYSCALE)
            if data is None:
                raise MaskError(f"{self.key}.image: {self.image_path} is not a readable image")
            self._image = data > 127

    @property
    def empty(self) -> bool:
        """Whether the mask hides nothing."""
        return self._image is None and not self.rectangles

    @property
    def shape(self) -> tuple[int, int] | None:
        """(H, W) the mask image was drawn for, or None for rectangles only."""
        return None if self._image is None else self._image.shape

    def array(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The mask for an (H, W) frame (read-only, cached); raises MaskError when the image does not fit."""
        if self.empty:
            return None
        shape = (int(shape[0]), int(shape[1]))
        cached = self._cache.get(shape)
        if cached is not None:
            return cached
        if self._image is not None and self._image.shape != shape:
            h, w = self._image.shape
            raise MaskError(
                f"{self.key}.image: {self.image_path} is {w}x{h} but the camera's frames are {shape[1]}x{shape[0]}"
            )
        mask = self._image.copy() if self._image is not None else np.ones(shape, dtype=bool)
        for x, y, width, height in self.rectangles:
            mask[y : y + height, x : x + width] = False
        mask.flags.writeable = False
        self._cache[shape] = mask
        return mask


def combined(*masks: np.ndarray | None) -> np.ndarray | None:
    """The sky seen by every mask (logical and); None when none masks anything."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m
    return out


def card_mask(card, package_dir: str | Path | None) -> FrameMask | None:
    """The mask a model card names (its image resolved inside the package), or None."""
    spec = card.preprocess.mask
    if spec is None:
        return None
    image = Path(package_dir) / spec.file if spec.file else None
    return FrameMask(image, spec.rectangles, key=f"{package_dir}/skyedge.json preprocess.mask")
