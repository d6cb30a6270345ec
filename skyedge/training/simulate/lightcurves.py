"""Light-curve models: magnitude versus time for each transient/variable class.

Each ``draw_<class>`` returns a callable ``mag(mjd)`` plus the drawn parameters.
Ranges follow the literature the classes come from: Bazin et al. (2009) for
supernova rise/decline, RR Lyrae periods 0.2-0.9 d and amplitudes 0.3-1.2 mag,
classical Cepheids 1.5-30 d and 0.2-1.0 mag, eclipsing binaries 0.3-5 d
(ranges trimmed to what a two-week, 24-epoch window can show).
"""

from __future__ import annotations

import math

import numpy as np


def bazin_flux(t, t0, tau_rise, tau_fall):
    """Bazin et al. (2009) normalised flux: exponential rise and decline around t0."""
    x = np.asarray(t, dtype=np.float64) - t0
    return np.exp(-np.clip(x / tau_fall, -50, 50)) / (1.0 + np.exp(-np.clip(x / tau_rise, -50, 50)))


def draw_sn(rng, mjd_range, mag_range, latest_peak_days: float = -5.0):
    """A supernova: Bazin light curve peaking inside the observed window (or before it), at the latest
    ``latest_peak_days`` after its last epoch (positive: some are still rising when the sequence ends)."""
    lo, hi = mjd_range
    t0 = rng.uniform(lo - 10, hi + latest_peak_days)
    tau_rise, tau_fall = rng.uniform(1.5, 6.0), rng.uniform(15, 45)
    peak = rng.uniform(*mag_range)
    # Normalise to the true maximum of the template.
    grid = np.linspace(t0 - 30, t0 + 30, 601)
    fmax = bazin_flux(grid, t0, tau_rise, tau_fall).max()

    def mag(t):
        flux = bazin_flux(t, t0, tau_rise, tau_fall) / fmax
        return peak - 2.5 * np.log10(np.clip(flux, 1e-6, None))

    return mag, {"t0": t0, "tau_rise": tau_rise, "tau_fall": tau_fall, "peak_mag": peak}


def _periodic(period, amplitude, mean_mag, skew, phase0, harmonics):
    """Asymmetric pulsator: a fast rise and slow decline from a skewed Fourier series."""

    def mag(t):
        phase = ((np.asarray(t) - phase0) / period) % 1.0
        # Warp phase so the rise occupies only `skew` of the cycle.
        warped = np.where(phase < skew, 0.5 * phase / skew, 0.5 + 0.5 * (phase - skew) / (1 - skew))
        shape = sum(np.cos(2 * math.pi * k * warped) / k**1.2 for k in range(1, harmonics + 1))
        shape = shape / sum(1 / k**1.2 for k in range(1, harmonics + 1))
        return mean_mag - 0.5 * amplitude * shape  # brighter (smaller mag) at phase 0

    return mag


def draw_rrlyrae(rng, mjd_range, mag_range):
    """RR Lyrae: RRab (0.45-0.9 d, 0.5-1.2 mag, sharp rise) or RRc (0.2-0.45 d, 0.3-0.6 mag, near-sinusoidal)."""
    if rng.uniform() < 0.7:
        period, amplitude, skew, harmonics = rng.uniform(0.45, 0.9), rng.uniform(0.5, 1.2), rng.uniform(0.1, 0.2), 4
    else:
        period, amplitude, skew, harmonics = rng.uniform(0.2, 0.45), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.5), 2
    mean = rng.uniform(*mag_range)
    mag = _periodic(period, amplitude, mean, skew, rng.uniform(0, period), harmonics)
    return mag, {"period": period, "amplitude": amplitude, "mean_mag": mean}


def draw_cepheid(rng, mjd_range, mag_range):
    """Classical Cepheid: log-uniform 1.5-30 d period, 0.2-1.0 mag amplitude, sawtooth-like."""
    period = math.exp(rng.uniform(math.log(1.5), math.log(30.0)))
    amplitude, skew = rng.uniform(0.2, 1.0), rng.uniform(0.2, 0.35)
    mean = rng.uniform(*mag_range)
    mag = _periodic(period, amplitude, mean, skew, rng.uniform(0, period), 3)
    return mag, {"period": period, "amplitude": amplitude, "mean_mag": mean}


def draw_eb(rng, mjd_range, mag_range):
    """Eclipsing binary: flat out of eclipse, primary and secondary dips of 0.05-0.15 of the period."""
    period = math.exp(rng.uniform(math.log(0.3), math.log(5.0)))
    depth1, depth2 = rng.uniform(0.4, 1.2), 0.0
    if rng.uniform() < 0.6:
        depth2 = depth1 * rng.uniform(0.1, 0.7)
    width = rng.uniform(0.05, 0.15)
    mean = rng.uniform(*mag_range)
    phase0 = rng.uniform(0, period)

    def mag(t):
        phase = ((np.asarray(t) - phase0) / period) % 1.0
        d1 = np.minimum(phase, 1 - phase)
        d2 = np.abs(phase - 0.5)
        dip = depth1 * np.exp(-0.5 * (d1 / (width / 2.355)) ** 2) + depth2 * np.exp(-0.5 * (d2 / (width / 2.355)) ** 2)
        return mean + dip

    return mag, {"period": period, "depth1": depth1, "depth2": depth2, "width": width, "mean_mag": mean}


def draw_nonvariable(rng, mjd_range, mag_range):
    """A constant star."""
    mean = rng.uniform(*mag_range)
    return (lambda t: np.full(np.shape(t), mean)), {"mean_mag": mean}


DRAWERS = {
    "SN": draw_sn,
    "RRLyrae": draw_rrlyrae,
    "Cepheid": draw_cepheid,
    "EB": draw_eb,
    "nonvariable": draw_nonvariable,
}
