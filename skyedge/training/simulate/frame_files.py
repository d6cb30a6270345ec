"""Writes simulated frames as the files camera software drops: PNG, JPEG, TIFF or FITS with headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

EXTENSIONS = {"png": ".png", "jpg": ".jpg", "tiff": ".tif", "fits": ".fits"}


def write_frame(path: Path, image: np.ndarray, fmt: str, header: dict | None = None) -> Path:
    """Write one frame; colour arrays are (H, W, 3) RGB. JPEG is 8-bit, so 16-bit data is scaled down."""
    path = path.with_suffix(EXTENSIONS[fmt])
    if fmt == "fits":
        from astropy.io import fits

        data = image if image.ndim == 2 else np.moveaxis(image, -1, 0)  # FITS colour cubes are (3, H, W)
        hdu = fits.PrimaryHDU(data=data)  # uint16 is stored as int16 + BZERO=32768, the FITS convention
        for key, value in (header or {}).items():
            hdu.header[key] = value
        hdu.writeto(path, overwrite=True)
        return path
    out = image
    if fmt == "jpg" and out.dtype == np.uint16:
        out = (out >> 8).astype(np.uint8)
    if fmt in ("jpg", "tiff") and header and "EXPTIME" in header:
        return _write_with_exif(path, out, float(header["EXPTIME"]))
    if out.ndim == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), out):
        raise OSError(f"OpenCV could not write {path}")
    return path


def _write_with_exif(path: Path, image: np.ndarray, exposure_s: float) -> Path:
    """JPEG or TIFF with the EXIF ExposureTime a camera program writes (how the edge tells daylight)."""
    from fractions import Fraction

    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    im = Image.fromarray(image)
    ratio = Fraction(exposure_s).limit_denominator(1_000_000)
    exposure = IFDRational(ratio.numerator, ratio.denominator)
    if path.suffix == ".jpg":
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x829A] = exposure  # the Exif sub-IFD's ExposureTime
        im.save(path, quality=95, exif=exif)
    else:
        im.save(path, tiffinfo={0x829A: exposure})  # TIFF carries the tag in its own directory
    return path


def fits_header(meta: dict, index: int, exptime: float = 30.0, start: datetime | None = None) -> dict:
    """FITS keywords an all-sky camera program would write, plus the simulation truth (SIM*)."""
    start = start or datetime(2026, 1, 1, 20, 0, tzinfo=timezone.utc)
    when = start + timedelta(seconds=60 * index)
    header = {
        "IMAGETYP": "LIGHT",
        "DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "EXPTIME": float(f"{float(meta.get('exposure_s', exptime)):.6g}"),
        "GAIN": round(float(meta.get("gain", 1.0)), 4),
        "RDNOISE": round(float(meta.get("read_noise", 0.0)), 3),
        "INSTRUME": "skyedge-sim",
        "SIMCLASS": meta.get("label", ""),
        "SIMSEC": meta.get("secondary", "") or "none",
    }
    if meta.get("bayer"):
        header["BAYERPAT"] = meta["bayer"]
    return header
