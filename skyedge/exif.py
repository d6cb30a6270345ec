"""A frame file's EXIF tags, read from its header without decoding the image.

JPEG and TIFF carry EXIF in their header, WebP in an ``EXIF`` chunk, PNG in an ``eXIf`` chunk (the PNG 1.5
extension, written by Pillow and by camera programs that save their PNG frames through it). Pillow reads a PNG's
chunks up to the first image data when the file is opened, so an ``eXIf`` chunk placed before it (as the extension
asks) is in ``info`` at once, as a WebP's is. Asked for a PNG's EXIF otherwise, Pillow decodes the whole image to
look behind it (84 ms for a 2k 16-bit frame): instead the file's last 64 KiB are read, where a writer that appends
its ``eXIf`` after the image data puts it.
"""

from __future__ import annotations

import os
import struct
import zlib
from functools import cached_property
from pathlib import Path

from skyedge.imageio import RASTER_SUFFIXES

EXIF_IFD = 0x8769  # the Exif sub-IFD: capture times, exposure
PNG_TAIL = 1 << 16  # an eXIf chunk behind the image data is looked for this far from the end


def read_exif(path: str | Path) -> dict[int, object] | None:
    """IFD0's tags and the Exif sub-IFD's, merged (the sub-IFD wins where both hold a tag), or None when the file
    has no EXIF, is not a kind that carries it, or cannot be read."""
    path = Path(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:  # FITS keeps its times in its header
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            if im.format in ("PNG", "WEBP"):
                raw = im.info.get("exif") or (_png_exif_behind_data(path) if im.format == "PNG" else None)
                if not raw:
                    return None
                exif = Image.Exif()
                exif.load(raw)
            else:
                exif = im.getexif()
            merged = {**exif, **exif.get_ifd(EXIF_IFD)}
    except Exception:  # noqa: BLE001 - unreadable metadata is no metadata; the frame itself is judged elsewhere
        return None
    return merged or None


def _png_exif_behind_data(path: Path) -> bytes | None:
    """The data of an ``eXIf`` chunk in a PNG's last 64 KiB, where a writer that appends it after the image data puts
    it (None: none there). One read at the end of the file, whatever the frame's size; a chunk counts only when its
    CRC holds, so image bytes that happen to spell the name are not taken for it."""
    with open(path, "rb") as fh:  # Pillow has read its signature already
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(8, size - PNG_TAIL))
        tail = fh.read()
    at = tail.rfind(b"eXIf")
    while at >= 4:
        (length,) = struct.unpack(">I", tail[at - 4 : at])
        end = at + 4 + length
        if end + 4 <= len(tail) and zlib.crc32(tail[at:end]) == struct.unpack(">I", tail[end : end + 4])[0]:
            return tail[at + 4 : end]
        at = tail.rfind(b"eXIf", 0, at)
    return None


class FileExif:
    """One frame file's EXIF, read on first use and kept: its capture time and its exposure both ask for it."""

    def __init__(self, path: str | Path):
        self.path = path

    @cached_property
    def tags(self) -> dict[int, object] | None:
        """:func:`read_exif` of the file, read once."""
        return read_exif(self.path)
