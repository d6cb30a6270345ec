"""Simulated aurorae on real frames: light only on the annotated sky, the lens found from the annotations, copies
that a labelme source adds with their kind, their night and their frame's cloud truth (an image folder's copies:
test_loaders.py)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from skyedge.training.config import AuroraOverlaySpec, DataSource
from skyedge.training.simulate.aurora_overlay import annotated_circle, aurora_copies, aurora_strength, overlay_aurora


def _frame(size=128, centre=(66.0, 60.0), radius=50.0, seed=0):
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(60, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.hypot(xx - centre[0], yy - centre[1]) <= radius
    return image, mask


@pytest.mark.parametrize("kind", ["arc", "discrete", "diffuse"])
def test_an_aurora_adds_green_light_on_the_sky_only(kind):
    image, mask = _frame()
    out = overlay_aurora(image, kind, np.random.default_rng(3), mask=mask, centre=(66, 60), horizon_radius=50)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    gain = out[mask].astype(float) - image[mask].astype(float)
    assert (gain >= 0).all() and gain.max() > 40 and (gain.sum(axis=1) > 3).mean() > 0.02
    red, green, blue = gain.mean(axis=0)
    assert green > red and green > blue  # the 557.7 nm oxygen line leads (discrete ones may have red tops)


def test_the_same_seed_draws_the_same_aurora_and_another_seed_another():
    image, mask = _frame()
    a, b, c = (overlay_aurora(image, "arc", np.random.default_rng(s), mask=mask, centre=(66, 60), horizon_radius=50)
               for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_input_is_refused_naming_what_is_wrong():
    image, mask = _frame()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="curtain"):
        overlay_aurora(image, "curtain", rng, mask=mask, centre=(66, 60), horizon_radius=50)
    with pytest.raises(ValueError, match="mask shape"):
        overlay_aurora(image, "arc", rng, mask=mask[:10], centre=(66, 60), horizon_radius=50)
    with pytest.raises(ValueError, match="int32"):
        overlay_aurora(image.astype(np.int32), "arc", rng, mask=mask, centre=(66, 60), horizon_radius=50)
    with pytest.raises(ValueError, match="mono"):
        overlay_aurora(image[..., :2], "arc", rng, mask=mask, centre=(66, 60), horizon_radius=50)


def test_a_raw_mono_frame_gets_the_light_in_its_own_linear_units_above_its_bias():
    """A 16-bit mono camera's raw frame (bias 800 ADU, sky 200 above it) and a float FITS frame with NaN: the aurora
    is added linearly, in units of the sky above the bias, on the sky only; shape, dtype and NaN are kept."""
    _, mask = _frame()
    rng = np.random.default_rng(0)
    raw = (800 + 200 * mask + rng.normal(0, 5, mask.shape)).astype(np.uint16)
    raw[:4] = 800  # the unexposed rows
    out = overlay_aurora(raw, "arc", np.random.default_rng(3), mask=mask, centre=(66, 60), horizon_radius=50)
    assert out.shape == raw.shape and out.dtype == np.uint16
    gain = out.astype(float) - raw.astype(float)
    assert (gain[~mask] == 0).all() and (gain >= 0).all()
    unbiased = raw.astype(np.float64) - 800  # the same sky without the bias: the same light, not five times it
    light = overlay_aurora(unbiased, "arc", np.random.default_rng(3), mask=mask, centre=(66, 60), horizon_radius=50)
    assert gain.max() > 1000 and np.abs(gain - (light - unbiased)).max() <= 1.0
    fits = raw.astype(np.float32)
    fits[10, 60] = np.nan
    out = overlay_aurora(fits, "arc", np.random.default_rng(3), mask=mask, centre=(66, 60), horizon_radius=50)
    assert out.dtype == np.float32 and np.isnan(out[10, 60]) and np.isfinite(out[mask & np.isfinite(fits)]).all()
    assert np.nanmax(out - fits) > 1000


def test_the_lens_circle_is_found_from_the_annotated_sky():
    masks = [_frame(centre=(66.0, 60.0), radius=50.0)[1]]
    (x, y), radius = annotated_circle(masks)
    assert abs(x - 66) <= 1.5 and abs(y - 60) <= 1.5 and abs(radius - 50) <= 1.5
    with pytest.raises(ValueError, match="no annotated sky"):
        annotated_circle([np.zeros((8, 8), bool)])


def test_copies_are_made_of_clear_and_moonlit_frames_only_each_kind_in_turn():
    frames = [_frame(seed=s) for s in range(6)]
    images, masks = [f[0] for f in frames], [f[1] for f in frames]
    labels = ["clear", "cloudy", "moon", "partly", "clear", "day"]
    spec = AuroraOverlaySpec(copies_per_frame=3, seed=4)
    copies = aurora_copies(images, masks, labels, spec)
    assert sorted({i for i, _, _ in copies}) == [0, 2, 4]
    assert [k for _, _, k in copies] == ["arc", "discrete", "diffuse"] * 3
    again = aurora_copies(images, masks, labels, spec)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(copies, again, strict=True))
    half = aurora_copies(images, masks, labels, AuroraOverlaySpec(fraction=0.34, kinds=["diffuse"]))
    assert len(half) == 1 and half[0][2] == "diffuse" and half[0][0] in (0, 2, 4)
    assert aurora_copies(images, masks, ["cloudy"] * 6, spec) == []
    unknown = [m if i != 2 else None for i, m in enumerate(masks)]  # a frame whose sky is not known is not copied
    assert sorted({i for i, _, _ in aurora_copies(images, unknown, labels, spec)}) == [0, 4]


def test_strengths_spread_evenly_over_decades_within_their_bounds():
    rng = np.random.default_rng(0)
    drawn = np.array([aurora_strength(rng, (0.1, 10.0)) for _ in range(4000)])
    assert drawn.min() >= 0.1 and drawn.max() <= 10.0
    decades = np.histogram(np.log10(drawn), bins=[-1, 0, 1])[0] / drawn.size
    assert np.allclose(decades, 0.5, atol=0.03), decades  # as many between 0.1 and 1 as between 1 and 10
    assert aurora_strength(rng, (2.0, 2.0)) == pytest.approx(2.0)


def test_the_recipe_keys_are_checked_at_load():
    site = {"latitude_deg": 28.76, "longitude_deg": -17.88}
    with pytest.raises(ValidationError, match="aurora applies to kinds 'labelme' and 'image_folder' only"):
        DataSource(kind="shards", path=".", aurora={})
    assert DataSource(kind="image_folder", path=".", aurora={}).aurora.fraction == 1.0
    with pytest.raises(ValidationError, match="strength"):
        DataSource(kind="labelme", path=".", site=site, aurora={"strength": [1.0, 0.5]})
    with pytest.raises(ValidationError, match="kinds"):
        DataSource(kind="labelme", path=".", site=site, aurora={"kinds": ["curtain"]})
    assert DataSource(kind="labelme", path=".", site=site, aurora={"copies_per_frame": 3}).aurora.copies_per_frame == 3
