"""Whether a frame's header calls it a calibration frame (dark, bias, flat), which no sky task may read.

Camera and observatory software (MaxIm DL, NINA, INDI, SGP, NOAO pipelines) write the frame's kind in
``IMAGETYP`` (``Light Frame``, ``Dark Frame``, ``Flat Field``, ``Bias Frame``, ``LIGHT``, ``zero``) or
``OBSTYPE``/``FRAMETYP``/``FRAME``. Calibration frames often land in the folder the lights do: a dark read
as an all-sky frame or a field epoch is a frame of nothing, so it is refused by name. A header that says
nothing (most JPEGs) or says anything else (``object``, ``light``, ``focus``) is a sky frame.
"""

from __future__ import annotations

import re

TYPE_KEYS = ("IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME")
# Words that make a frame a calibration frame; "zero" is NOAO's bias, "skyflat"/"domeflat" end in flat.
CALIBRATION_WORDS = re.compile(r"(dark|bias|zero|flat)(\b|_|\s|$)", re.IGNORECASE)


def calibration_kind(header) -> str | None:
    """``"IMAGETYP = 'Dark Frame'"`` when the header calls the frame a calibration frame, else None."""
    if not header:
        return None
    for key in TYPE_KEYS:
        value = header.get(key)
        if isinstance(value, str) and CALIBRATION_WORDS.search(value.strip()):
            return f"{key} = {value.strip()!r}"
    return None


def calibration_reason(path, header) -> str | None:
    """The rejection message for a calibration frame, naming the file and the keyword, or None."""
    kind = calibration_kind(header)
    if kind is None:
        return None
    return f"{path}: a calibration frame ({kind}), not a sky frame (keep calibration frames out of the watched folder)"
