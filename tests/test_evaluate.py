"""`skyedge evaluate`: simulated cameras a model never saw, scored as the model alone and as a device that knows
its site answers (the sun decides day, the model's day may not overrule it at night)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyedge.daylight import without_day
from skyedge.training.data.loaders import Loaded
from skyedge.training.evaluate import site_known_answers

CLASSES = ["cloudy", "moon", "clear", "day"]


def _data(sun_alt):
    return Loaded(images=[], labels=np.zeros(len(sun_alt), int), classes=CLASSES, meta={"sun_alt_deg": np.array(sun_alt)})


def test_the_sun_decides_day_and_the_models_day_gives_way_at_night():
    prob = np.array(
        [
            [0.1, 0.2, 0.3, 0.4],  # night (no sun: the simulator's NaN): the model's 'day' is taken out -> clear
            [0.1, 0.2, 0.6, 0.1],  # sun at +20 deg: 'day' before any model, whatever the model says
            [0.1, 0.2, 0.6, 0.1],  # sun at -11 deg: above -12, still day
            [0.5, 0.1, 0.1, 0.3],  # sun at -30 deg: night, the model's own night answer stands
        ]
    )
    pred, modelled = site_known_answers(prob, _data([np.nan, 20.0, -11.0, -30.0]), CLASSES)
    assert [CLASSES[i] for i in pred] == ["clear", "day", "day", "cloudy"]
    assert modelled.tolist() == [True, False, False, True]


def test_a_moon_answer_without_a_moon_in_the_sky_passes_to_the_next_class():
    """As the edge's default ``moon_below_horizon: reclassify``: where the simulator put no moon (NaN altitude), the
    model's 'moon' gives way to its next class; with the moon up it stands; a model certain of 'moon' keeps it."""
    prob = np.array(
        [
            [0.3, 0.6, 0.1, 0.0],  # no moon in the sky: moon taken out -> cloudy
            [0.3, 0.6, 0.1, 0.0],  # the moon at 25 deg: moon stands
            [0.0, 1.0, 0.0, 0.0],  # no moon, but nothing else: moon stays (the edge refuses the frame)
        ]
    )
    data = Loaded(
        images=[], labels=np.zeros(3, int), classes=CLASSES,
        meta={"sun_alt_deg": np.full(3, -40.0), "moon_altitude_deg": np.array([np.nan, 25.0, np.nan])},
    )
    pred, _ = site_known_answers(prob, data, CLASSES)
    assert [CLASSES[i] for i in pred] == ["cloudy", "moon", "moon"]


def test_without_day_renormalises_only_the_night_rows():
    prob = np.array([[0.2, 0.2, 0.2, 0.4], [0.2, 0.2, 0.2, 0.4]], np.float32)
    p = without_day(prob, np.array([True, False]), 3)
    np.testing.assert_allclose(p[0], [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(p[1], prob[1])
    assert prob[0, 3] == np.float32(0.4)  # the caller's array is left alone


def test_site_known_needs_the_sun_where_day_frames_are_simulated():
    data = Loaded(images=[], labels=np.zeros(1, int), classes=CLASSES, meta={})
    with pytest.raises(ValueError, match="sun_alt_deg"):
        site_known_answers(np.full((1, 4), 0.25), data, CLASSES)


def test_evaluate_cli_scores_an_unseen_profile_both_ways(tiny_frame_run, tmp_path):
    from skyedge.cli import main

    out = tmp_path / "unseen.json"
    args = ["evaluate", str(tiny_frame_run), "--profile", "rpi-fisheye-jpeg", "--n", "12", "--seed", "5"]
    assert main([*args, "--data-root", str(tmp_path / "data"), "--site-known", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    scores = result["profiles"]["rpi-fisheye-jpeg"]
    assert scores["items"] == 12 and 0.0 <= scores["accuracy"] <= 1.0
    # This run has no 'day' class and the profile's frames are all night: the sun changes nothing.
    assert scores["site_known"]["accuracy"] == scores["accuracy"]
    assert result["unseen_mean_accuracy_site_known"] == scores["site_known"]["accuracy"]
