"""Cost of the stars per frame on this machine: detection, visibility (with the catalogue's positions; of which
weighing the stars, the frame's zero point), a tracking
refit (the saved lens 3 px off, refitted to the frame's stars, as the star watch does at most once per
solve_every_s) and a blind solve, on simulated frames of the real sky at 512 and 2048 px (medians of 5 runs, one
process).

    python docs/scripts/stars_bench.py
"""

from __future__ import annotations

import statistics
import time

from skyedge.stars.catalogue import default_catalogue
from skyedge.stars.detection import detect_stars
from skyedge.stars.lens import Lens
from skyedge.stars.solve import FIT_MIN_ALT_DEG, matched_count, refine, solve_frame
from skyedge.stars.visibility import completeness_counts, limiting_magnitudes, star_visibility, star_zero_point
from skyedge.training.simulate.starfield import render_star_field

SITE = (38.607, 93.896, 4200.0)
NIGHT = 1525712400.0


def median_s(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Print one line per frame size."""
    cat = default_catalogue()
    for size, star in ((512, 7), (2048, 11)):
        lens = Lens((size - 1) / 2, (size - 1) / 2, 0.45 * size, 30.0, "left", "equisolid")
        img = render_star_field(lens, (size, size), SITE, NIGHT, limiting_mag=5.0, fwhm_px=1.8 * size / 512, seed=1)
        det = detect_stars(img, star_size_px=star)
        stars = cat.at(*SITE, NIGHT)
        limits = limiting_magnitudes(*completeness_counts(det, stars, lens, img.shape))
        detect = median_s(lambda img=img, star=star: detect_stars(img, star_size_px=star))
        visible = median_s(lambda det=det, lens=lens, img=img, limits=limits: star_visibility(det, cat.at(*SITE, NIGHT), lens, img.shape, limits))
        weigh = median_s(lambda det=det, lens=lens, img=img, limits=limits, stars=stars: star_zero_point(det, stars, lens, img.shape, limits))
        up = stars.subset(stars.alt_deg >= FIT_MIN_ALT_DEG)
        nudged = lens.with_(cx=lens.cx - 2.5 * size / 512, cy=lens.cy - 2.0 * size / 512)

        def track(det=det, up=up, nudged=nudged):  # what StarWatch._track does
            matched_count(nudged, det, up)
            refine(nudged, [(det, up)], (nudged.projection,))

        tracking = median_s(track)
        solve = median_s(lambda det=det, img=img: solve_frame(det, cat, SITE, NIGHT, img.shape), repeats=3)
        print(
            f"{size}x{size}: {len(det)} stars; detection {detect * 1e3:.0f} ms, visibility {visible * 1e3:.0f} ms (of which weighing "
            f"the stars {weigh * 1e3:.1f} ms; per frame: "
            f"{1e3 * (detect + visible):.0f} ms), tracking refit {tracking * 1e3:.0f} ms, blind solve {solve:.2f} s"
        )


if __name__ == "__main__":
    main()
