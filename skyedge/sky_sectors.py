"""The sky's sectors on the cloudynight layout (Mommert 2020, AJ 159:178), shared by the cloud map and star
visibility: sector 0 is the zenith disc (zenith angle below 18 deg), then four rings from the zenith outwards,
18-36, 36-54, 54-72 and 72-90 deg, each of eight 45-deg azimuth segments from north through east (segment k
covers azimuth 45k to 45(k+1) deg). Ring r (1-4), segment k (0-7) is sector 1 + 8(r-1) + k."""

from __future__ import annotations

import numpy as np

LAYOUT = "cloudynight-33"
RING_EDGES_DEG = (18.0, 36.0, 54.0, 72.0, 90.0)  # the zenith disc's edge, then the outer edge of each ring
SEGMENTS = 8
SECTORS = 1 + SEGMENTS * (len(RING_EDGES_DEG) - 1)


def sector_of(zenith_deg: np.ndarray, azimuth_deg: np.ndarray) -> np.ndarray:
    """Sector index (0-32) of sky directions; -1 below the horizon (and where the direction is undefined, NaN)."""
    zenith = np.asarray(zenith_deg, np.float64)
    # A ring's inner edge belongs to it; the horizon itself (zenith exactly 90, the pixels a lens puts on its
    # horizon circle) to the outermost ring, not to a sixth one.
    ring = np.minimum(np.searchsorted(np.asarray(RING_EDGES_DEG), zenith, side="right"), len(RING_EDGES_DEG) - 1)
    segment = np.floor((np.asarray(azimuth_deg) % 360.0) / (360.0 / SEGMENTS)).astype(np.int64)
    sector = np.where(ring == 0, 0, 1 + SEGMENTS * (ring - 1) + segment)
    with np.errstate(invalid="ignore"):
        return np.where(zenith <= RING_EDGES_DEG[-1], sector, -1).astype(np.int64)
