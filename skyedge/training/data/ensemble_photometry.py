"""Each epoch's transparency from the other objects observed at the same time, for archives that give no zero points.

HiTS's stamp cubes carry no zero point, so every epoch is assumed equally clear. The sky was not: over the 2015
run, objects observed within minutes of each other all lost 0.3-0.4 mag on some nights (clouds), and a model told
"same zero point" sees a steady supernova dim and brighten with the weather, which is what a variable star does.
A survey's own pipeline takes the transparency from the field's stars (relative photometry); stamps have no
field, but the other objects of the same archive read together are the next best thing: an epoch's
transparency is the median, over the *other* well-measured objects with an epoch within a few minutes of it, of
their flux at that epoch relative to their own median. The object itself never enters its own estimate, so its
own variability is kept. An object with no such company (read alone, or observed at other times) is unchanged.
"""

from __future__ import annotations

import numpy as np

from skyedge.training.data.survey_epochs import ASSUMED_ZERO_POINTS, StampSequence, border_median, border_noise

WINDOW_MINUTES = 30.0  # epochs this close in time share a sky
MIN_OBJECTS = 3  # fewer companions than this: the median is one object's light curve, not the sky
MIN_SNR = 15.0  # a companion's median flux in its aperture, in noise units: fainter ones are too noisy to use
MAX_COMPANIONS = 200  # the median of this many is the sky's to a percent; more only costs time in a large archive


def relative_flux(seq: StampSequence) -> tuple[np.ndarray, float]:
    """(each epoch's aperture flux over the object's median, the median's signal-to-noise) of one sequence."""
    stamps = np.asarray(seq.stamps, np.float64)
    size = stamps.shape[-1]
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2.0
    # The aperture leaves the 2-pixel border to the background, and is wide enough for a bad night's seeing.
    aperture = np.hypot(yy - centre, xx - centre) <= max(2.0, size / 2.0 - 3.0)
    flux = (stamps[:, aperture] - border_median(stamps)[:, None]).sum(axis=1)
    noise = float(np.median(border_noise(stamps))) * np.sqrt(aperture.sum())
    median = float(np.median(flux))
    if not (median > 0 and noise > 0):
        return np.full(len(flux), np.nan), 0.0
    return flux / median, median / noise


def ensemble_zero_points(sequences: list[StampSequence], window_minutes: float = WINDOW_MINUTES) -> int:
    """Set each sequence's ``zero_point_offset`` (mag per epoch, added to an assumed zero point; negative through
    cloud) from the other sequences' relative fluxes, where the archive gave no zero points; returns how many
    sequences had at least one epoch measured. Zero points the archive gives are left as they are."""
    window = window_minutes / 1440.0
    # Every usable companion epoch in one time-sorted table, so each epoch finds its company by bisection.
    times, fluxes, owners = [], [], []
    for k, seq in enumerate(sequences):
        rel, snr = relative_flux(seq)
        ok = np.isfinite(rel) & (rel > 0)
        if snr >= MIN_SNR and ok.any():
            times.append(np.asarray(seq.conditions["mjd"], np.float64)[ok])
            fluxes.append(rel[ok])
            owners.append(np.full(int(ok.sum()), k))
    if not times:
        return 0
    order = np.argsort(np.concatenate(times), kind="stable")
    times, fluxes, owners = (np.concatenate(a)[order] for a in (times, fluxes, owners))
    changed = 0
    for k, seq in enumerate(sequences):
        if not seq.sources.get("zero_point", "unknown").startswith(ASSUMED_ZERO_POINTS):
            continue
        mjd = np.asarray(seq.conditions["mjd"], np.float64)
        offset, measured = np.zeros(len(mjd)), np.zeros(len(mjd), bool)
        lo, hi = np.searchsorted(times, mjd - window), np.searchsorted(times, mjd + window, side="right")
        used = set()
        for i, t in enumerate(mjd):
            near = np.arange(lo[i], hi[i])
            near = near[owners[near] != k]  # never the object itself
            # Each companion's epoch nearest in time, the nearest MAX_COMPANIONS companions: a bounded median.
            near = near[np.lexsort((np.abs(times[near] - t), owners[near]))]
            near = near[np.unique(owners[near], return_index=True)[1]]
            near = near[np.argsort(np.abs(times[near] - t), kind="stable")[:MAX_COMPANIONS]]
            if len(near) >= MIN_OBJECTS:
                offset[i], measured[i] = 2.5 * np.log10(np.median(fluxes[near])), True
                used.update(owners[near].tolist())
        if measured.any():
            seq.zero_point_offset = offset
            seq.conditions["zero_point"] = seq.conditions["zero_point"] + offset  # NaN (unknown) stays NaN
            seq.sources["zero_point"] += (
                f"; transparency from {len(used)} other objects observed within {window_minutes:g} min "
                f"({int(measured.sum())} of {len(mjd)} epochs)"
            )
            changed += 1
    return changed
