"""A frame file's EXIF tags, read from its header without decoding the image.

JPEG and TIFF carry EXIF in their header, WebP in an ``EXIF`` chunk, PNG in an ``eXIf`` chunk (the PNG 1.5
extension, written by Pillow and by camera programs that save their PNG frames through it). Pillow reads a PNG's
chunks up to the first image data when the file is opened, so an ``eXIf`` chunk placed before it (as the extension
asks) is in ``info`` at once, as a WebP's is. Asked for a PNG's EXIF otherwise, Pillow decodes the whole image to
look behind it: a cost per frame this module never pays, so an ``eXIf`` after the image data is not read.
"""

from __future__ import annotations

from pathlib import Path

from skyedge.imageio import RASTER_SUFFIXES

EXIF_IFD = 0x8769  # the Exif sub-IFD: capture times, exposure


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
                raw = im.info.get("exif")
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


class FileExif:
    """One frame file's EXIF, read on first use and kept: its capture time and its exposure both ask for it."""

    def __init__(self, path: str | Path):
        self.path = path
        self._read = False
        self._tags: dict[int, object] | None = None

    @property
    def tags(self) -> dict[int, object] | None:
        """:func:`read_exif` of the file, read once."""
        if not self._read:
            self._tags, self._read = read_exif(self.path), True
        return self._tags
