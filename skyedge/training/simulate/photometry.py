"""Magnitudes, counts and detector noise.

Conventions used by every simulator: the zero point ZP is the magnitude that
gives one electron in the exposure, so a source of magnitude m yields
``10**(-0.4 * (m - ZP))`` electrons; the sky level is in electrons per pixel;
images are written in ADU = electrons / gain + bias.
"""

from __future__ import annotations

import math

import numpy as np

from skyedge.training.simulate.psf import FWHM_PER_SIGMA


def mag_to_electrons(mag, zero_point):
    """Total electrons collected from a source of magnitude ``mag``."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - zero_point))


def electrons_to_mag(electrons, zero_point):
    """Inverse of :func:`mag_to_electrons`."""
    return zero_point - 2.5 * np.log10(electrons)


def expose(expected_electrons: np.ndarray, read_noise: float, rng: np.random.Generator) -> np.ndarray:
    """A detector readout: Poisson photon noise on the expected signal plus Gaussian read noise (electrons)."""
    signal = rng.poisson(np.clip(expected_electrons, 0.0, None)).astype(np.float64)
    return signal + rng.normal(0.0, read_noise, size=signal.shape)


def to_adu(electrons: np.ndarray, gain: float, bias: float, bit_depth: int) -> np.ndarray:
    """Electrons to digitised ADU, clipped to the converter's range (saturation), as uint8/uint16."""
    top = 2**bit_depth - 1
    adu = np.clip(np.rint(electrons / gain + bias), 0, top)
    return adu.astype(np.uint8 if bit_depth <= 8 else np.uint16)


def limiting_magnitude(zero_point: float, fwhm: float, sky: float, read_noise: float, snr: float = 5.0) -> float:
    """Magnitude detected at ``snr`` in an optimal Gaussian aperture (noise-equivalent area 4*pi*sigma^2)."""
    sigma = fwhm / FWHM_PER_SIGMA
    area = 4.0 * math.pi * sigma**2
    noise_per_area = area * (sky + read_noise**2)
    # Solve S / sqrt(S + B) = snr for S.
    s = 0.5 * (snr**2 + math.sqrt(snr**4 + 4.0 * snr**2 * noise_per_area))
    return zero_point - 2.5 * math.log10(s)


def airmass(zenith_angle_rad):
    """Kasten & Young (1989) airmass, finite at the horizon."""
    z = np.degrees(np.asarray(zenith_angle_rad, dtype=np.float64))
    return 1.0 / (np.cos(np.radians(z)) + 0.50572 * (96.07995 - z) ** -1.6364)
