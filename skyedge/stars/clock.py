"""The camera's clock checked against the sky: with the lens known, when do the frame's stars match?

A capture time off by an hour (a time zone set wrong, a daylight-saving change the camera made and the pipeline did
not) turns the predicted sky 15 deg about the celestial pole. The stars then miss their predicted places, which
reads as cloud, and a blind solve at the stated time either fails or, worse, fits a lens shifted and turned to make
up for it: a simulated frame taken 30 or 60 minutes after its stated time solved to a zenith 15-31 px and north 5-10
deg from the truth, matching enough stars to be believed (tests/test_stars.py). The sky says which: the saved lens
matches the frame's stars at the right time and at no other.

:func:`clock_check` turns the sky through +-``SPAN_S`` in ``COARSE_S`` steps (matching within 3 deg, which the step
cannot jump), then minute by minute around the best (within 1 deg). An offset is believed when it matches as many
stars as a solve needs, twice what the stated time matches, and twice what an hour either side of it matches
(chance alone in this frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyedge.stars.catalogue import StarCatalogue
from skyedge.stars.detection import Detections
from skyedge.stars.lens import Lens
from skyedge.stars.solve import CHANCE_RATIO, MIN_MATCHED, MIN_MATCHED_SHARE, matched_count, stars_to_match

SPAN_S = 12 * 3600.0  # a clock off by up to half a day (a time zone's worth either way)
COARSE_S = 600.0  # the sky turns 2.5 deg in ten minutes: within the coarse pass's 3 deg
FINE_S = 60.0
MIN_OFFSET_S = 180.0  # closer than this, the stated time is as good (a star moves 0.75 deg)


@dataclass(frozen=True)
class ClockCheck:
    """When the frame's stars match the lens: the best offset from the stated time and how many matched."""

    offset_s: float
    matched: int  # at the best offset
    matched_stated: int  # at the stated time
    matched_aside: int  # the most an hour either side of the best matches: chance alone
    detected: int

    @property
    def believed(self) -> bool:
        """Whether the sky clearly says the stated time is off by ``offset_s``."""
        need = max(MIN_MATCHED, MIN_MATCHED_SHARE * self.detected)
        return (
            abs(self.offset_s) >= MIN_OFFSET_S
            and self.matched >= need
            and self.matched >= CHANCE_RATIO * max(self.matched_stated, self.matched_aside, 1)
        )

    def describe(self) -> str:
        """E.g. '+1 h 00 min (64 stars matched there, 5 at the stated time)'."""
        sign = "+" if self.offset_s >= 0 else "-"
        minutes = int(round(abs(self.offset_s) / 60.0))
        return f"{sign}{minutes // 60} h {minutes % 60:02d} min ({self.matched} stars matched there, {self.matched_stated} at the stated time)"


def clock_check(
    det: Detections, lens: Lens, catalogue: StarCatalogue, site: tuple[float, float, float], posix: float, span_s: float = SPAN_S
) -> ClockCheck:
    """The offset from ``posix`` at which ``lens`` puts the catalogue's stars on the frame's detections."""

    def count(offset: float, radius_deg: float) -> int:
        return matched_count(lens, det, stars_to_match(catalogue, site, posix + offset, len(det)), radius_deg)

    coarse = np.arange(-span_s, span_s + COARSE_S / 2, COARSE_S)
    best = float(coarse[int(np.argmax([count(o, 3.0) for o in coarse]))])
    fine = np.arange(best - COARSE_S, best + COARSE_S + FINE_S / 2, FINE_S)
    counts = np.array([count(o, 1.0) for o in fine])
    best = float(np.median(fine[counts == counts.max()]))  # a star sits within 1 deg for several minutes: the middle
    return ClockCheck(
        offset_s=best,
        matched=int(counts.max()),
        matched_stated=count(0.0, 1.0),
        matched_aside=max(count(best - 3600.0, 1.0), count(best + 3600.0, 1.0)),
        detected=len(det),
    )
