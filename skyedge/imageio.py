"""Reading the image files camera and telescope software write: FITS, PNG, JPEG, TIFF (8/16-bit).

Shared by the training loaders and the edge's directory source. Integer data
keeps its bit depth; FITS data comes back as float32 (BZERO/BSCALE applied)
with its header. Unreadable files raise :class:`FrameReadError` naming the
file and the reason, so a caller can count, report and skip it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.errors import InputError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fz")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
IMAGE_SUFFIXES = FITS_SUFFIXES + RASTER_SUFFIXES  # every file read_frame reads: what a folder of frames may hold


class FrameReadError(InputError):
    """A file that is not a usable image, with the file name in the message."""


class FrameGone(FrameReadError):
    """The file vanished between the folder listing and the read (camera software rotating old frames)."""


class FrameTooLarge(FrameReadError):
    """The header announces more pixels than the caller allows; nothing was decoded."""


def is_fits(path: str | Path) -> bool:
    return str(path).lower().endswith(FITS_SUFFIXES)


def read_frame(path: str | Path, max_pixels: int | None = None) -> tuple[np.ndarray, dict]:
    """Image data (H, W) or (H, W, 3) RGB, and a header dict (FITS keywords; empty for rasters).

    With ``max_pixels`` the image size is read from the file's header first and a larger image is refused
    before anything is decoded (a 400 KB PNG can decode to gigabytes).
    """
    path = Path(path)
    try:
        if max_pixels is not None:
            _check_size(path, max_pixels)
        if is_fits(path):
            return _read_fits(path)
        return _read_raster(path)
    except FileNotFoundError:
        raise FrameGone(f"{path}: no such file (or it vanished before it could be read)") from None


def _check_size(path: Path, max_pixels: int) -> None:
    size = image_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        w, h = size
        raise FrameTooLarge(
            f"{path}: {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of {max_pixels / 1e6:.1f} "
            "(source.max_pixels); not decoded"
        )


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header alone (PNG, JPEG, TIFF, WebP, FITS), or None when it cannot tell."""
    path = Path(path)
    with open(path, "rb") as fh:
        if is_fits(path):
            parsed = _fits_header(fh)
            if parsed is None:
                return None
            header = parsed[0]
            if header.get("NAXIS") not in (2, 3):
                return None
            return int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
        head = fh.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head.startswith(b"\xff\xd8"):
            fh.seek(2)
            return _jpeg_size(fh)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            fh.seek(0)
            return _tiff_size(fh)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    # The first chunk says it: VP8X (extended: metadata, alpha) carries the canvas, VP8 (lossy) its key frame's
    # 14-bit sizes after the start code, VP8L (lossless) 14-bit sizes less one after its signature byte.
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(fh) -> tuple[int, int] | None:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG and DAC).
    while True:
        marker = fh.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            continue  # markers without a length
        length = fh.read(2)
        if len(length) < 2:
            return None
        n = int.from_bytes(length, "big")
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            body = fh.read(5)
            if len(body) < 5:
                return None
            return int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big")
        fh.seek(n - 2, 1)


def _tiff_size(fh) -> tuple[int, int] | None:
    head = fh.read(8)
    order = "little" if head[:2] == b"II" else "big"
    fh.seek(int.from_bytes(head[4:8], order))
    count_bytes = fh.read(2)
    if len(count_bytes) < 2:
        return None
    found = {}
    for _ in range(int.from_bytes(count_bytes, order)):
        entry = fh.read(12)
        if len(entry) < 12:
            return None
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            value = entry[8:10] if kind == 3 else entry[8:12]
            found[tag] = int.from_bytes(value, order)
    return (found[256], found[257]) if len(found) == 2 else None


def _read_raster(path: Path) -> tuple[np.ndarray, dict]:
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


def _fits_header(fh) -> tuple[dict, int] | None:
    """The primary header's keywords and the data offset, read block by block (None: not a FITS header)."""
    header: dict = {}
    pos = 0
    while True:
        block = fh.read(_BLOCK)
        if len(block) < _BLOCK:
            return None
        pos += _BLOCK
        for i in range(0, _BLOCK, _CARD):
            card = block[i : i + _CARD].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                return header, pos
            if card[8:10] == "= " and key not in ("COMMENT", "HISTORY", ""):
                header[key] = _parse_card_value(card[10:])


def _read_simple_fits(path: Path) -> tuple[np.ndarray, dict] | None:
    """A primary-HDU 2-D (or 3 x H x W) image read straight from the bytes, or None to defer to astropy.

    Camera software writes exactly this layout; astropy's general reader spends milliseconds per frame
    parsing cards, which at the edge is more than the model's inference.
    """
    with open(path, "rb") as fh:
        parsed = _fits_header(fh)
        if parsed is None:
            return None
        header, _ = parsed
        if not header.get("SIMPLE") or header.get("NAXIS") not in (2, 3) or header.get("BITPIX") not in _BITPIX:
            return None
        shape = tuple(int(header.get(f"NAXIS{n}", 0)) for n in range(header["NAXIS"], 0, -1))
        count = int(np.prod(shape))
        dtype = np.dtype(_BITPIX[header["BITPIX"]])
        raw = fh.read(count * dtype.itemsize)
    if count == 0 or len(raw) < count * dtype.itemsize:
        return None
    data = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape).astype(np.float32)
    bscale, bzero = float(header.get("BSCALE", 1)), float(header.get("BZERO", 0))
    if bscale != 1.0 or bzero != 0.0:
        data = data * np.float32(bscale) + np.float32(bzero)
    return data, header


def _read_fits(path: Path) -> tuple[np.ndarray, dict]:
    fast = None
    try:
        fast = _read_simple_fits(path)
    except FileNotFoundError:
        raise
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
            with fits.open(path, memmap=False) as hdul:  # FileNotFoundError passes through (vanished)
                hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
                if hdu is None:
                    raise FrameReadError(f"{path}: FITS file has no image data")
                data = np.asarray(hdu.data, dtype=np.float32)
                header = {k: v for k, v in hdu.header.items() if k not in ("COMMENT", "HISTORY", "")}
    except (FrameReadError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for damaged files
        raise FrameReadError(f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})") from None
    if data.ndim == 3 and data.shape[0] == 3:
        data = np.moveaxis(data, 0, -1)  # FITS colour cubes are (3, H, W)
    elif data.ndim != 2:
        raise FrameReadError(f"{path}: FITS image has unsupported shape {data.shape}")
    return data, header
