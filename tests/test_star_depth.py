"""How deep a camera sees, learnt from every clear frame and kept across restarts: a camera that comes to see
less deep (a dirtied dome) still reads its clear skies as clear; limits typed in stay as they are."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import yaml

from skyedge.stars.depth import DepthPool
from skyedge.stars.geometry_file import CameraGeometry, GeometryFileError, load_geometry, save_geometry
from skyedge.stars.lens import Lens
from skyedge.stars.watch import StarWatch
from skyedge.training.simulate.starfield import render_star_field

SITE = (38.607, 93.896, 4200.0)
NIGHT = 1525712400.0  # 2018-05-07 17:00 UTC, the sun far below
LENS, SHAPE = Lens(255.5, 255.5, 230.0, 20.0), (512, 512)
DAY_S = 86400.0


def _frame(t: float, depth_mag: float, seed: int) -> np.ndarray:
    return render_star_field(LENS, SHAPE, SITE, t, limiting_mag=depth_mag, seed=seed)


def _night(k: int) -> float:
    # Each night at another hour (23:15 local solar time, give or take two hours): a star that stays on one pixel
    # night after night is a hot pixel, not a star.
    return NIGHT + k * DAY_S + ((k * 53) % 240 - 120) * 60.0


def test_limits_follow_a_camera_that_comes_to_see_less_deep_across_a_restart(tmp_path, caplog):
    path = tmp_path / "geometry.yaml"
    watch = StarWatch(SITE, CameraGeometry(LENS, SHAPE, None, {}), save_to=path, solve=False)
    assert watch.observe(_frame(_night(0), 5.0, seed=0), _night(0)).visibility is None  # nothing guessed
    for k in range(1, 20):  # commissioned on deep nights
        watch.observe(_frame(_night(k), 5.0, seed=k), _night(k))
    deep = load_geometry(path)
    assert deep.limiting_mag is not None and deep.limiting_mag[0] >= 4.5 and deep.depth.frames == 20
    # Restarted; the dome has dirtied since: the same clear skies, 1.75 magnitudes less deep.
    typed = StarWatch(SITE, CameraGeometry(LENS, SHAPE, deep.limiting_mag, {}), save_to=tmp_path / "typed.yaml", solve=False)
    watch = StarWatch(SITE, load_geometry(path), save_to=path, solve=False)
    full_moon_high = (70.0, 180.0, 1.0)
    moonlit = watch.observe(_frame(_night(20), 3.25, seed=20), _night(20), full_moon_high)
    assert moonlit.visibility is not None and load_geometry(path).depth.frames == 20  # too bright a sky to teach
    assert "dimmed_mag" not in moonlit.message()  # as deep as it ever was
    with caplog.at_level(logging.WARNING, logger="skyedge.stars.watch"):
        for k in range(21, 31):
            watch.observe(_frame(_night(k), 3.25, seed=k), _night(k))
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Said once as it dims a magnitude, not each time the limits move.
    assert len(said) == 1 and str(path) in said[0] and "dome" in said[0], said
    shallow = load_geometry(path)
    assert shallow.depth.frames == 30 and "30 clear frames" in shallow.fit["limits_from"]
    assert shallow.limiting_mag[0] <= deep.limiting_mag[0] - 1.0
    assert re.search(rf"the zenith disc: stars to Hp [0-9.]+, once {deep.limiting_mag[0]:g}", said[0]), said
    t = _night(31)
    clear = _frame(t, 3.25, seed=31)
    report = watch.observe(clear, t)
    assert report.visibility.zenith_fraction >= 0.9
    # Every message says it too, for as long as it lasts, and after a restart (it is the file's, not the log's).
    assert report.message()["dimmed_mag"] >= 1.0
    assert StarWatch(SITE, load_geometry(path), solve=False).observe(clear, t).message()["dimmed_mag"] >= 1.0
    # Limits typed in are kept: the clear sky reads about half its stars gone, as the cross-check's cloud.
    assert typed.observe(clear, t).visibility.zenith_fraction <= 0.6
    assert not (tmp_path / "typed.yaml").exists()
    # Frames a minute apart on one night teach once per solve_every_s, not sixty times.
    for s in range(1, 4):
        watch.observe(_frame(t + 60.0 * s, 3.25, seed=40 + s), t + 60.0 * s)
    assert load_geometry(path).depth.frames == 31


def test_a_broken_completeness_pool_names_its_key(tmp_path):
    path = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, (4.0, 4.0, 3.5, None, None), {}), path)
    doc = yaml.safe_load(path.read_text())
    assert "completeness" not in doc  # limits typed in carry no pool
    bins = [-1.5, 6.5, 0.5]
    doc["completeness"] = {"frames": 3, "magnitude_bins": bins, "seen": [[0.0] * 16] * 5, "present": [[1.0] * 15] * 5}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(GeometryFileError, match=r"geometry.yaml: completeness.present must be 5 rows of 16"):
        load_geometry(path)
    doc["completeness"]["present"] = [[1.0] * 16] * 5
    doc["completeness"]["seen"] = [[2.0] * 16] * 5
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(GeometryFileError, match="completeness.seen exceeds"):
        load_geometry(path)
    doc["completeness"]["magnitude_bins"] = [-1.0, 7.0, 1.0]  # counted in other bins: relearnt, not an error
    path.write_text(yaml.safe_dump(doc))
    assert load_geometry(path).depth is None


def test_one_ring_alone_is_noise_two_are_a_dimmed_camera():
    # Deepest limits with a fluke in the 36-54 deg ring (Hp 5.0 once, as on the real development camera).
    pool = DepthPool.empty()
    pool = DepthPool(pool.seen, pool.present, frames=40, deepest=(4.5, 4.5, 5.0, 4.0, 3.0))
    assert pool.dimmed_by((4.5, 4.5, 4.0, 2.0, None)) is None  # that ring alone back at its usual depth
    assert pool.dimmed_by((3.5, 4.5, 4.0, 2.0, None)) == 1.0  # the zenith disc too: the whole sky dims
    assert pool.dimmed_by((2.5, 3.0, 3.5, None, None)) == 1.5  # what two rings at least have lost
    assert pool.dimmed_by((None, None, 4.5, None, None)) is not None  # rings that see nothing at all count


def test_a_veil_the_stars_shine_through_reads_as_extinction_and_the_reference_survives_a_restart(tmp_path):
    path = tmp_path / "geometry.yaml"
    watch = StarWatch(SITE, CameraGeometry(LENS, SHAPE, None, {}), save_to=path, solve=False)
    for k in range(8):
        watch.observe(_frame(_night(k), 5.0, seed=k), _night(k))
    learnt = load_geometry(path)
    # The first clear frames teach the limits; those after them the stars' brightness too.
    assert learnt.depth.frames == 8 and 3 <= len(learnt.depth.zero_points) <= 5
    restarted = StarWatch(SITE, learnt, save_to=path, solve=False)
    t = _night(8)
    clear = restarted.observe(_frame(t, 5.0, seed=80), t).visibility
    veiled = restarted.observe(_frame(t + 60.0, 3.5, seed=81), t + 60.0).visibility  # every star 1.5 mag fainter
    assert abs(clear.extinction_mag) <= 0.3
    assert veiled.zenith_fraction >= 0.5  # counting alone would call it clear
    assert 1.1 <= veiled.extinction_mag <= 1.9
    assert veiled.message()["extinction_mag"] == round(veiled.extinction_mag, 2)
    # Under a high full moon stars are counted, not weighed: the moonlight's allowance is no photometric model.
    moonlit = restarted.observe(_frame(t + 120.0, 3.5, seed=82), t + 120.0, (70.0, 180.0, 1.0)).visibility
    assert moonlit.zenith_fraction is not None and moonlit.extinction_mag is None
    # A file from before the stars' brightness was learnt reads back without it, and it is learnt afresh.
    doc = yaml.safe_load(path.read_text())
    doc["completeness"].pop("zero_points")
    path.write_text(yaml.safe_dump(doc))
    assert load_geometry(path).depth.zero_points == ()
    assert StarWatch(SITE, load_geometry(path), solve=False).observe(_frame(t, 5.0, seed=80), t).visibility.extinction_mag is None
    doc["completeness"]["zero_points"] = ["bright"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(GeometryFileError, match="geometry.yaml: completeness.zero_points must be a list of numbers"):
        load_geometry(path)
