"""How a pipeline prepares its camera's frames for the model: Bayer pattern, dark, flat, and the site's mask over
the one the model was trained with. One definition for the running pipeline and for `skyedge adapt --config` (and
the pipeline's site mask for `skyedge cloudmap` and `skyedge star-labels`), so that a site's labelled frames are
embedded exactly as its camera's frames are classified (a raw colour camera's mosaic read without its Bayer pattern
is another image altogether)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyedge.edge.config import StartupError
from skyedge.errors import SkyedgeError
from skyedge.imageio import read_frame
from skyedge.masks import FrameMask, combined
from skyedge.preprocess import prepare_frame_and_sky


def site_mask(section) -> FrameMask:
    """The pipeline's ``preprocess.mask`` (what is not sky at this site); a bad mask is an error naming the key."""
    mask = section.preprocess.mask
    return FrameMask(mask.image, mask.rectangles, key=f"pipelines[{section.camera}].preprocess.mask")


def _calibration_frame(path, key: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return read_frame(path)[0]
    except Exception as exc:  # noqa: BLE001 - reported as a config error naming the key
        raise StartupError(f"preprocess.{key}: cannot read {path}: {exc}") from None


@dataclass
class FramePreparation:
    """A camera's frames as its model takes them; without a pipeline, only the model's own mask applies."""

    preprocess: object  # the card's preprocess section
    model_mask: FrameMask | None = None  # what the model was trained without
    site: FrameMask | None = None  # the pipeline's preprocess.mask: what is not sky at this site
    bayer: str | None = None
    dark: np.ndarray | None = None
    flat: np.ndarray | None = None

    @classmethod
    def of_pipeline(cls, section, preprocess, model_mask: FrameMask | None) -> FramePreparation:
        """The preparation a pipeline section configures; a calibration frame or mask that cannot be read is a
        StartupError (or MaskError) naming the key."""
        p = section.preprocess
        return cls(preprocess, model_mask, site_mask(section), p.bayer, _calibration_frame(p.dark, "dark"), _calibration_frame(p.flat, "flat"))

    def site_array(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The site's sky for frames of ``shape`` (True = sky; None: nothing masked)."""
        return self.site.array(shape) if self.site is not None else None

    def mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The sky the model reads in frames of ``shape``: the site's mask and the model's together."""
        return combined(self.site_array(shape), self.model_mask.array(shape) if self.model_mask is not None else None)

    def prepare(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model input (C, H, W) and the sky it shows, from a frame as the camera wrote it (``mask``: its
        :meth:`mask`, when the caller has it already)."""
        mask = self.mask(image.shape[:2]) if mask is None else mask
        return prepare_frame_and_sky(image, self.preprocess, bayer=self.bayer, dark=self.dark, flat=self.flat, mask=mask)


def pipeline_in(config: str | Path, camera: str | None = None):
    """The pipeline section for ``camera`` (default: the first) in a deployment file; an unknown camera is an error
    naming those the file has."""
    from skyedge.edge.config import load_edge_config

    pipelines = load_edge_config(config).pipelines
    chosen = next((p for p in pipelines if p.camera == camera), None) if camera else pipelines[0]
    if chosen is None:
        raise SkyedgeError(f"--camera {camera}: no such pipeline in {config} (it has {', '.join(p.camera for p in pipelines)})")
    return chosen
