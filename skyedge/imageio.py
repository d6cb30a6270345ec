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


_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_CARD, _BLOCK = 80, 2880


def _parse_card_value(text: str):
    value = text.split("/", 1)[0].strip() if not text.lstrip().startswith("'") else text.strip()
    if value.startswith("'"):
        end = value.find("'", 1)
        while end != -1 and value[end + 1 : end + 2] == "'":  # doubled quote inside a string
            end = value.find("'", end + 2)
        return value[1:end].replace("''", "'").rstrip() if end != -1 else value.strip("'")
    if value in ("T", "F"):
        return value == "T"
    try:
        return int(value)
    except ValueError:
        try:
            return float(value.replace("D", "E"))
        except ValueError:
            return value


def _read_simple_fits(path: Path) -> tuple[np.ndarray, dict] | None:
    """A primary-HDU 2-D (or 3 x H x W) image read straight from the bytes, or None to defer to astropy.

    Camera software writes exactly this layout; astropy's general reader spends milliseconds per frame
    parsing cards, which at the edge is more than the model's inference.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    header: dict = {}
    pos = 0
    while True:
        block = raw[pos : pos + _BLOCK]
        if len(block) < _BLOCK:
            return None
        pos += _BLOCK
        done = False
        for i in range(0, _BLOCK, _CARD):
            card = block[i : i + _CARD].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                done = True
                break
            if card[8:10] == "= " and key not in ("COMMENT", "HISTORY", ""):
                header[key] = _parse_card_value(card[10:])
        if done:
            break
    if not header.get("SIMPLE") or header.get("NAXIS") not in (2, 3) or header.get("BITPIX") not in _BITPIX:
        return None
    shape = tuple(int(header.get(f"NAXIS{n}", 0)) for n in range(header["NAXIS"], 0, -1))
    count = int(np.prod(shape))
    dtype = np.dtype(_BITPIX[header["BITPIX"]])
    if count == 0 or len(raw) < pos + count * dtype.itemsize:
        return None
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=pos).reshape(shape).astype(np.float32)
    bscale, bzero = float(header.get("BSCALE", 1)), float(header.get("BZERO", 0))
    if bscale != 1.0 or bzero != 0.0:
        data = data * np.float32(bscale) + np.float32(bzero)
    return data, header


def _read_fits(path: Path) -> tuple[np.ndarray, dict]:
    fast = None
    try:
        fast = _read_simple_fits(path)
    except (OSError, ValueError, UnicodeError):
        fast = None
    if fast is not None:
        data, header = fast
        if data.ndim == 3 and data.shape[0] == 3:
            data = np.moveaxis(data, 0, -1)
        elif data.ndim != 2:
            raise FrameReadError(f"{path}: FITS image has unsupported shape {data.shape}")
        return data, header
    return _read_fits_astropy(path)


def _read_fits_astropy(path: Path) -> tuple[np.ndarray, dict]:
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
