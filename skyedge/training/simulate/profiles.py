"""Named camera profiles: a camera and the sky at its site, so a data set can be simulated "as seen by" one camera.

They are deliberately different from each other: lens projection and field of view, circle size and position,
sensor (mono, RGB, raw Bayer), bit depth, linear or auto-stretched with gamma, JPEG compression, NaN outside the
circle, obstructions, text overlays, dew, lens flare, and the site's light pollution. ``skyedge simulate allsky
--profile NAME`` and a recipe's ``simulate.config.profile`` use them; docs/results.md says which ones the tiny
recipe trains on and which it is evaluated on without ever seeing them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from skyedge.training.simulate.camera import CameraModel


@dataclass(frozen=True)
class Profile:
    """A camera and the typical sky of its site (AllskyConfig fields that differ from the defaults)."""

    name: str
    description: str
    camera: CameraModel
    sky: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {}


def _register(profile: Profile) -> None:
    PROFILES[profile.name] = profile


_register(
    Profile(
        "dark-site-mono",
        "A mono astronomy camera (16-bit FITS) with an equidistant 180 deg lens at a dark mountain site.",
        CameraModel(
            width=128, height=128, projection="equidistant", fov_deg=180, circle=0.94, vignetting=(0.1, 0.3), seed=1
        ),
        {"light_pollution": (0.0, 0.3), "domes": (0, 0)},
    )
)
_register(
    Profile(
        "suburban-colour-jpeg",
        "A colour camera whose program auto-stretches and writes JPEG, equisolid 185 deg, trees, a suburb's glow, "
        "a timestamp top left.",
        CameraModel(
            width=128,
            height=128,
            projection="equisolid",
            fov_deg=185,
            circle=0.96,
            sensor="rgb",
            white_balance=(1.25, 1.0, 1.45),
            bit_depth=8,
            encoding="auto_stretch",
            gamma=2.2,
            jpeg_quality=80,
            obstructions=("trees",),
            overlay="top-left",
            seed=2,
        ),
        {"light_pollution": (0.8, 2.5), "domes": (1, 3)},
    )
)
_register(
    Profile(
        "raw-bayer-fits",
        "A raw RGGB sensor written as 16-bit FITS with automatic exposure, stereographic 170 deg, off-centre and "
        "rotated, buildings and a mast.",
        CameraModel(
            width=128,
            height=128,
            projection="stereographic",
            fov_deg=170,
            circle=0.92,
            centre_offset=(0.04, -0.03),
            rotation_deg=35,
            sensor="RGGB",
            white_balance=(1.0, 0.8, 1.1),
            exposure="auto",
            obstructions=("buildings", "mast"),
            seed=3,
        ),
        {"light_pollution": (0.3, 1.2), "domes": (0, 2)},
    )
)
_register(
    Profile(
        "nan-fits-float",
        "A camera writing float FITS with NaN outside the circle, equisolid 190 deg (ground ring), strong vignetting, "
        "lens flare.",
        CameraModel(
            width=128,
            height=128,
            projection="equisolid",
            fov_deg=190,
            circle=0.9,
            vignetting=(0.3, 0.6),
            float_nan_outside=True,
            flare=True,
            seed=4,
        ),
        {"light_pollution": (0.0, 0.8)},
    )
)
_register(
    Profile(
        "arctic-stereo-mono",
        "A mono 16-bit camera at an auroral site, stereographic 180 deg, a small circle, a timestamp top right.",
        CameraModel(
            width=128, height=128, projection="stereographic", fov_deg=180, circle=0.82, overlay="top-right", seed=5
        ),
        {"light_pollution": (0.0, 0.5), "magnetic_axis_deg": 70.0},
    )
)
_register(
    Profile(
        "cropped-wide-jpeg",
        "A 4:3 colour sensor whose 185 deg circle is cropped top and bottom, JPEG with auto-stretch, dew-prone, "
        "a timestamp bottom right.",
        CameraModel(
            width=160,
            height=120,
            projection="equidistant",
            fov_deg=185,
            circle=1.15,
            sensor="rgb",
            white_balance=(1.1, 1.0, 1.3),
            bit_depth=8,
            encoding="auto_stretch",
            gamma=2.0,
            jpeg_quality=75,
            overlay="bottom-right",
            dew_probability=0.25,
            seed=6,
        ),
        {"light_pollution": (0.2, 1.5), "domes": (0, 2)},
    )
)
_register(
    Profile(
        "dome-slit-mono8",
        "An 8-bit mono camera inside a dome that sees the sky through the open slit only, linear PNG.",
        CameraModel(
            width=128,
            height=128,
            projection="equidistant",
            fov_deg=180,
            circle=0.94,
            bit_depth=8,
            obstructions=("slit",),
            seed=7,
        ),
        {"light_pollution": (0.1, 0.8)},
    )
)
_register(
    Profile(
        "rpi-fisheye-jpeg",
        "A Raspberry Pi HQ camera with a 185 deg fisheye: colour, auto-exposure, JPEG quality 70, warm white balance, "
        "trees and a house, a town glow.",
        CameraModel(
            width=128,
            height=128,
            projection="equisolid",
            fov_deg=185,
            circle=0.97,
            centre_offset=(-0.03, 0.02),
            sensor="rgb",
            white_balance=(1.5, 1.0, 0.9),
            bit_depth=8,
            encoding="auto_stretch",
            gamma=1.8,
            jpeg_quality=70,
            obstructions=("trees", "buildings"),
            seed=8,
        ),
        {"light_pollution": (0.5, 2.0), "domes": (1, 2)},
    )
)


_register(
    Profile(
        "observatory-enhanced-jpeg",
        "An observatory's colour all-sky camera at 320 px whose program auto-stretches, enhances (local contrast, "
        "saturation, tint) and writes JPEG; equidistant 180 deg in a small circle, a mast and buildings, flare.",
        CameraModel(
            width=320,
            height=320,
            projection="equidistant",
            fov_deg=180,
            circle=0.84,
            sensor="rgb",
            white_balance=(1.0, 1.05, 0.9),
            bit_depth=8,
            encoding="auto_stretch",
            exposure="auto",
            gamma=2.0,
            jpeg_quality=85,
            obstructions=("mast", "buildings"),
            flare=True,
            enhance=True,
            binning=3,
            seed=9,
        ),
        {"light_pollution": (0.0, 0.8), "limiting_mag": (5.0, 6.8), "fwhm_px": (1.0, 1.8)},
    )
)
_register(
    Profile(
        "white-light-imager-mono",
        "A white-light auroral imager (THEMIS-like): 256 px 16-bit mono, equidistant 170 deg, automatic exposure, "
        "a dark high-latitude site.",
        CameraModel(
            width=256,
            height=256,
            projection="equidistant",
            fov_deg=170,
            circle=0.95,
            exposure="auto",
            binning=4,
            seed=10,
        ),
        {"light_pollution": (0.0, 0.3), "magnetic_axis_deg": 75.0, "limiting_mag": (4.5, 6.0)},
    )
)
# Added last and never used to tune anything (recipes, thresholds, the simulator): the independent check of
# docs/results.md. A 16-bit colour CMOS writing linear PNG through a 200 deg stereographic lens, off-centre.
_register(
    Profile(
        "independent-png16-stereo",
        "A 16-bit colour CMOS writing linear PNG, stereographic 200 deg (a ground ring), off-centre, heavy "
        "vignetting, trees and a mast, a town glow; used only to check, never to train or tune.",
        CameraModel(
            width=288,
            height=288,
            projection="stereographic",
            fov_deg=200,
            circle=0.9,
            centre_offset=(0.03, 0.02),
            rotation_deg=-20,
            sensor="rgb",
            white_balance=(1.3, 1.0, 1.2),
            vignetting=(0.35, 0.6),
            obstructions=("trees", "mast"),
            binning=4,
            seed=11,
        ),
        {"light_pollution": (0.3, 1.5), "domes": (0, 2)},
    )
)


def profile_config(name: str, **overrides):
    """An AllskyConfig for profile ``name``: the site's sky, then ``overrides`` (tuples for ranges)."""
    from skyedge.training.simulate.allsky import AllskyConfig

    if name not in PROFILES:
        raise ValueError(f"unknown camera profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return dataclasses.replace(AllskyConfig(profile=name), **{**PROFILES[name].sky, **overrides})
