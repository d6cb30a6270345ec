"""Reading the image files camera and telescope software write: FITS, PNG, JPEG, TIFF (8/16-bit).

Shared by the training loaders and the edge's directory source. Integer data
keeps its bit depth; FITS data comes back as float32 (BZERO/BSCALE applied)
with its header. Unreadable files raise :class:`FrameReadError` naming the
file and the reason, so a caller can count, report and skip it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fz")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class FrameReadError(ValueError):
    """A file that is not a usable image, with the file name in the message."""


def is_fits(path: str | Path) -> bool:
    return str(path).lower().endswith(FITS_SUFFIXES)


def read_frame(path: str | Path) -> tuple[np.ndarray, dict]:
    """Image data (H, W) or (H, W, 3) RGB, and a header dict (FITS keywords; empty for rasters)."""
    path = Path(path)
    if is_fits(path):
        return _read_fits(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise FrameReadError(f"{path}: unsupported file type '{path.suffix}'")
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise FrameReadError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameReadError(f"{path}: not a decodable {path.suffix.lstrip('.').upper()} image (truncated or corrupt)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[..., :3]
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise FrameReadError(f"{path}: unsupported pixel type {image.dtype}")
    return image, {}


def _read_fits(path: Path) -> tuple[np.ndarray, dict]:
    import warnings

    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
                if hdu is None:
                    raise FrameReadError(f"{path}: FITS file has no image data")
                data = np.asarray(hdu.data, dtype=np.float32)
                header = {k: v for k, v in hdu.header.items() if k not in ("COMMENT", "HISTORY", "")}
    except FrameReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for damaged files
        raise FrameReadError(f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})") from None
    if data.ndim == 3 and data.shape[0] == 3:
        data = np.moveaxis(data, 0, -1)  # FITS colour cubes are (3, H, W)
    elif data.ndim != 2:
        raise FrameReadError(f"{path}: FITS image has unsupported shape {data.shape}")
    return data, header
