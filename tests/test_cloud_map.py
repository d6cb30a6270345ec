"""The cloud map: sectors on the cloudynight layout through the camera's geometry, cloud cover in the messages,
and the optional safety rule on it. Stub packages: the map is a fixed function of the frame (bright = cloudy)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_helpers import messages, write_config

from skyedge.cli import main
from skyedge.edge.cloud_map import LAYOUT, SECTORS, CloudMapper, sector_of
from skyedge.edge.config import OrientationSection
from skyedge.model_card import Preprocess, Stretch
from skyedge.payloads import validate_payload

SPEC = Preprocess(
    size=(160, 160),
    channels=1,
    color="mono",
    stretch=Stretch(kind="rank"),
    mean=[0.5],
    std=[0.29],
    horizon_mask=True,
    horizon_radius=0.47,
    fit="pad",
)


def test_the_layout_is_a_zenith_disc_and_four_rings_of_eight_segments():
    assert SECTORS == 33
    assert sector_of(np.array([0.0, 17.9]), np.array([0.0, 300.0])).tolist() == [0, 0]
    # Ring 1 (18-36 deg), segments of 45 deg from north through east.
    assert sector_of(np.full(8, 20.0), np.arange(8) * 45.0 + 1.0).tolist() == list(range(1, 9))
    assert sector_of(np.array([40.0, 60.0, 80.0]), np.array([0.0, 0.0, 359.0])).tolist() == [9, 17, 32]
    assert sector_of(np.array([95.0]), np.array([0.0])).tolist() == [-1]  # below the horizon
    # the horizon itself is the outer ring's (a lens puts pixels on it exactly); an undefined direction is no sector
    assert sector_of(np.array([90.0, 90.0, np.nan]), np.array([0.0, 359.0, 0.0])).tolist() == [25, 32, -1]


def _map_north_cloudy(n: int = 10) -> np.ndarray:
    """A model-grid map (1, n, n): cloud over the upper half of the model input (north, with north up)."""
    grid = np.zeros((1, n, n), np.float32)
    grid[:, : n // 2] = 1.0
    return grid


def test_sectors_follow_the_geometry_north_up_or_rotated():
    default = CloudMapper(SPEC).report(_map_north_cloudy(), (480, 640))
    assert default.geometry == "default" and len(default.sectors) == SECTORS
    assert 45.0 < default.cloud_cover < 55.0  # half the sky
    north, south = [default.sectors[1 + 8 * 2 + k] for k in (0, 4)]  # ring 3, segments N (0-45) and S (180-225)
    assert north > 0.9 and south < 0.1
    # The same map from a camera whose north points down the image: the cloud is now in the south.
    turned = OrientationSection(north_angle_deg=180.0, horizon_radius=0.47)
    report = CloudMapper(SPEC, turned).report(_map_north_cloudy(), (480, 640))
    assert report.geometry == "configured"
    assert report.sectors[1 + 8 * 2 + 0] < 0.1 and report.sectors[1 + 8 * 2 + 4] > 0.9
    # The zenith rings alone: the disc sits on the boundary, ring 1 is half cloudy.
    assert report.clear_within(36.0) == pytest.approx(0.5, abs=0.15)


def test_stars_refine_the_sectors_they_see_in_proportion_to_how_many_are_expected():
    from skyedge.edge.cloud_map import MODEL_WEIGHT_STARS, with_stars
    from skyedge.stars.visibility import Visibility

    model = CloudMapper(SPEC).report(_map_north_cloudy(), (480, 640))
    north, south = 1 + 8 * 2 + 0, 1 + 8 * 2 + 4
    seen = [None] * SECTORS
    expected = [0] * SECTORS
    # The model calls the north overcast; twenty stars there are all seen. Two stars in the south are unseen.
    seen[north], expected[north] = 1.0, 20
    seen[south], expected[south] = 0.0, 2
    vis = Visibility(22, 20, 0.0, tuple(seen), tuple(expected), 0, 0, 4.0)
    both = with_stars(model, vis)
    assert both.source == "both" and model.source == "model"
    w = MODEL_WEIGHT_STARS
    assert both.sectors[north] == pytest.approx(w * model.sectors[north] / (w + 20))
    assert both.sectors[south] == pytest.approx((w * model.sectors[south] + 2) / (w + 2))
    untouched = [k for k in range(SECTORS) if k not in (north, south)]
    assert [both.sectors[k] for k in untouched] == [model.sectors[k] for k in untouched]
    assert both.cloud_cover < model.cloud_cover  # a clear north sector lowers the cover
    # No stars to go by: the model's report as it was.
    none = Visibility(0, 0, 0.0, (None,) * SECTORS, (0,) * SECTORS, 0, 0, None)
    assert with_stars(model, none) is model and with_stars(model, None) is model


def test_unseen_sectors_are_none_and_masked_sky_does_not_count():
    valid = np.ones((160, 160), bool)
    valid[:, 80:] = False  # the model saw only the left half of the frame (a building, a mask)
    report = CloudMapper(SPEC).report(np.ones((1, 10, 10), np.float32), (480, 480), valid)
    assert report.cloud_cover == pytest.approx(100.0)
    seen = [s for s in report.sectors if s is not None]
    assert 0 < len(seen) < SECTORS and all(s == pytest.approx(1.0) for s in seen)


def test_the_daemon_reports_cloud_cover_and_the_map_rule_can_veto_safety(tmp_path, camera_frames):
    """A stub model with a cloud map (bright = cloudy), every class counted safe. With the map rule on, frames with
    cloud are unsafe whatever the class says."""
    from stub_packages import FRAME_CLASSES, frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    incoming = tmp_path / "in"
    incoming.mkdir()
    for f in camera_frames[:8]:
        (incoming / f.name).write_bytes(f.read_bytes())
    for rule, want_safe in ((None, True), (0.0, False)):
        log = tmp_path / f"r-{rule}.jsonl"
        safety = {"safe_classes": FRAME_CLASSES, "hold_frames": 2, "max_cloud_cover": rule}
        cfg = write_config(
            tmp_path / f"e-{rule}.yaml",
            package,
            {"kind": "directory", "path": str(incoming), "settle_s": 0, "state_file": str(tmp_path / f"s-{rule}.db")},
            {"jsonl": {"path": str(log)}},
            pipeline={"safety": safety, "sky_state": {"hysteresis_frames": 1}},
        )
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        got = messages(log, "classification")
        assert len(got) == 8
        for m in got:
            validate_payload("classification", m)
            assert 0.0 < m["cloud_cover"] <= 100.0 and m["cloud_map"]["layout"] == LAYOUT
            assert m["cloud_map"]["geometry"] == "default" and len(m["cloud_map"]["sectors"]) == SECTORS
        events = [e for e in messages(log, "event") if e["event"] == "safety_change"]
        assert bool(events) == want_safe, events  # never safe: never a change
        states = messages(log, "state")
        assert states and all("cloud_cover" in s for s in states)


def _report(cloud_zenith: float, cloud_low: float):
    """A cloud report with ``cloud_zenith`` in the zenith disc and the first three rings, ``cloud_low`` in the last."""
    from skyedge.edge.cloud_map import CloudReport

    sectors = (cloud_zenith,) * 25 + (cloud_low,) * 8
    return CloudReport(cloud_cover=100.0 * float(np.mean(sectors)), sectors=sectors, geometry="default")


def test_the_cloud_map_check_weighs_clear_against_cloudy_and_nothing_else():
    """``checks.cloud_map``: 'cloudy' under a map that reads at most the limit within the zenith rings, or 'clear' /
    'moon' under one that reads more, is flagged; 'decide' makes the map's side the class (moonlit only where the
    model leans that way and the moon is not known to be down). Aurora, unrecognised and frames without a map are
    left alone, and so is everything when the check is off."""
    from skyedge.edge.allsky.map_check import map_check
    from skyedge.edge.config import ChecksSection

    decide, flag = ChecksSection(cloud_map="decide"), ChecksSection(cloud_map="flag")
    assert ChecksSection().cloud_map == "off" and (decide.cloud_map_max_cover, decide.cloud_map_zenith_deg) == (10.0, 72.0)
    assert ChecksSection(cloud_map=False, moon_below_horizon=False).cloud_map == "off"  # YAML's bare `off`
    p = {"cloudy": 0.9, "clear": 0.04, "moon": 0.06, "arc": 0.0}
    clear_high, cloud_high = _report(0.05, 0.9), _report(0.5, 0.0)  # low cloud lies outside the 72 deg it reads
    assert map_check("cloudy", p, clear_high, decide, moon_down=False) == (["cloud_map_clear"], "moon")
    assert map_check("cloudy", p, clear_high, decide, moon_down=True) == (["cloud_map_clear"], "clear")
    assert map_check("cloudy", {**p, "clear": 0.08}, clear_high, decide, moon_down=False) == (["cloud_map_clear"], "clear")
    assert map_check("cloudy", p, clear_high, flag, moon_down=False) == (["cloud_map_clear"], "cloudy")
    assert map_check("clear", p, cloud_high, decide, moon_down=False) == (["cloud_map_cloudy"], "cloudy")
    assert map_check("moon", p, cloud_high, flag, moon_down=False) == (["cloud_map_cloudy"], "moon")
    assert map_check("clear", p, clear_high, decide, moon_down=False) == ([], "clear")  # they agree
    assert map_check("cloudy", p, cloud_high, decide, moon_down=False) == ([], "cloudy")
    for label in ("arc", "unrecognised", "day"):
        assert map_check(label, p, clear_high, decide, moon_down=False) == ([], label)
    assert map_check("cloudy", p, None, decide, moon_down=False) == ([], "cloudy")
    assert map_check("cloudy", p, clear_high, ChecksSection(), moon_down=False) == ([], "cloudy")
    wider = ChecksSection(cloud_map="decide", cloud_map_zenith_deg=90.0)  # the low cloud now counts: 33% > 10%
    assert map_check("cloudy", p, clear_high, wider, moon_down=False) == ([], "cloudy")


def test_the_daemon_lets_the_cloud_map_decide_the_class_and_safety_follows(tmp_path, camera_frames):
    """A scripted model that answers 'cloudy' with a map of clear sky: with ``checks.cloud_map: decide`` the message's
    class is 'clear', the check is named, the confidence is the model's own probability of 'clear' (a disagreement
    reads as doubt) and the roof may open on safe_classes [clear]; with the check off it stays closed."""
    from stub_packages import frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    incoming = tmp_path / "in"
    incoming.mkdir()
    for f in camera_frames[:4]:
        (incoming / f.name).write_bytes(f.read_bytes())
    for mode, want in (("decide", "clear"), ("off", "cloudy")):
        log = tmp_path / f"r-{mode}.jsonl"
        cfg = write_config(
            tmp_path / f"e-{mode}.yaml",
            package,
            {"kind": "directory", "path": str(incoming), "settle_s": 0, "state_file": str(tmp_path / f"s-{mode}.db")},
            {"jsonl": {"path": str(log)}},
            script=["cloudy"],
            pipeline={"safety": {"safe_classes": ["clear"], "hold_frames": 2}, "checks": {"cloud_map": mode}},
        )
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        got = messages(log, "classification")
        assert len(got) == 4
        for m in got:
            validate_payload("classification", m)
            assert m["top_class"] == "cloudy" and m["class"] == want and m["cloud_cover"] < 10.0
            if mode == "decide":
                assert "cloud_map_clear" in m["checks"] and m["confidence"] == pytest.approx(m["probabilities"]["clear"])
            else:
                assert not m.get("checks")
        events = [e for e in messages(log, "event") if e["event"] == "safety_change"]
        assert bool(events) == (mode == "decide"), events


def test_the_watch_table_shows_cloud_cover():
    import io

    from rich.console import Console

    from skyedge.edge.tools.watch import Board

    board = Board()
    board.update("skyedge/site/dev/status", {"state": "online"})
    board.update("skyedge/site/dev/allsky/classification", {"class": "cloudy", "confidence": 0.9, "cloud_cover": 37.4})
    console = Console(file=io.StringIO(), width=200)
    console.print(board.table())
    text = console.file.getvalue()
    assert "cloud %" in text and " 37 " in text


def test_cloudmap_draws_the_map_over_a_frame(tmp_path, camera_frames, capsys):
    import cv2
    from stub_packages import frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    out = tmp_path / "map.png"
    assert main(["cloudmap", str(camera_frames[0]), "--model", str(package), "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape[:2] == (64, 64) and "cloud cover" in capsys.readouterr().out
    plain = frame_package(tmp_path / "plain", size=64)
    assert main(["cloudmap", str(camera_frames[0]), "--model", str(plain), "--out", str(out)]) == 2
    assert "no cloud map" in capsys.readouterr().err


def test_cloudmap_follows_the_pipelines_mask_and_names_an_unknown_camera(tmp_path, camera_frames, capsys):
    """What the deployment masks is not sky in the picture either: sectors it hides are unseen (the edge counts the
    same way), and a --camera the YAML does not have is refused by name rather than replaced by the first."""
    import cv2
    from stub_packages import frame_package

    from skyedge.edge.config import load_edge_config
    from skyedge.edge.tools.cloud_overlay import write_overlay
    from skyedge.imageio import read_frame

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    h, w = read_frame(camera_frames[0])[0].shape[:2]
    mask = np.full((h, w), 255, np.uint8)
    mask[:, w // 2 :] = 0  # the right half is a building
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    source = {"kind": "directory", "path": str(tmp_path), "settle_s": 0}
    log = {"jsonl": {"path": str(tmp_path / "log.jsonl")}}
    mask_section = {"preprocess": {"mask": {"image": str(tmp_path / "mask.png")}}}
    masked = write_config(tmp_path / "masked.yaml", package, source, log, pipeline=mask_section)
    plain = write_config(tmp_path / "plain.yaml", package, source, log)
    unseen = {}
    for name, cfg in (("masked", masked), ("plain", plain)):
        report = write_overlay(package, camera_frames[0], tmp_path / f"{name}.png", load_edge_config(cfg).pipelines[0])
        unseen[name] = sum(s is None for s in report.sectors)
    assert unseen["masked"] >= unseen["plain"] + 8, unseen  # at least one ring's half of the segments
    args = ["cloudmap", str(camera_frames[0]), "--model", str(package), "--out", str(tmp_path / "x.png")]
    assert main(args + ["--config", str(masked), "--camera", "allsky"]) == 0
    assert main(args + ["--config", str(masked), "--camera", "dome"]) == 2
    assert "--camera dome: no such pipeline" in capsys.readouterr().err
    assert main(["cloudmap", str(tmp_path / "missing.jpg"), "--model", str(package), "--out", str(tmp_path / "y.png")]) == 2
    assert "missing.jpg: no such file" in capsys.readouterr().err


def test_the_real_camera_score_counts_the_truth_over_the_annotated_sky_only(tmp_path):
    """docs/scripts/real_allsky.py's truth: a frame whose polygons cover only a small patch of the sky, all cloud,
    is 100% cloudy, half cloud half sky 50%; the sky nobody annotated is neither (it once counted as clear)."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    from stub_packages import frame_package

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_allsky import sector_truth

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    sky, cloud = np.zeros((256, 256), bool), np.zeros((256, 256), bool)
    cloud[96:160, 96:160] = True
    frame = SimpleNamespace(image=np.zeros((256, 256), np.uint8), sky=sky, cloud=cloud)
    cover, sectors = sector_truth(package, frame)
    assert cover == pytest.approx(100.0, abs=0.5)
    assert sectors[0] == pytest.approx(1.0, abs=0.01) and sum(s is not None for s in sectors) < SECTORS
    cloud[:, 128:], sky[96:160, 128:160] = False, True
    assert sector_truth(package, frame)[0] == pytest.approx(50.0, abs=3.0)


def test_the_real_camera_intervals_resample_nights_not_frames():
    """docs/scripts/real_allsky.py's 95% intervals: ten frames a night agree with each other, so ten nights carry
    the uncertainty of ten draws, not a hundred."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_allsky import night_interval

    nights = np.repeat(np.arange(10), 10)
    flags = nights < 5  # half the nights safe, every frame of a night alike
    lo, hi = night_interval(flags, nights)
    assert lo < 0.5 < hi and hi - lo > 0.4  # as wide as 10 draws (a frame-by-frame interval: about 0.2)
    lo_f, hi_f = night_interval(flags, np.arange(100))  # each frame its own night
    assert hi_f - lo_f < 0.25
    assert night_interval(np.ones(30, bool), np.repeat(np.arange(3), 10)) == [1.0, 1.0]
    assert night_interval([], []) is None


def test_the_real_camera_frontier_is_the_best_any_threshold_can_do():
    """docs/scripts/real_frontier.py: at a cap on unsafe-truth frames called safe, the share of safe-truth frames a
    threshold keeps; and the logistic fit it fuses the stars with separates what is separable."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_frontier import fit_logistic, frontier, two_fold_scores

    safe = np.array([True] * 10 + [False] * 100)
    score = np.concatenate([np.linspace(0.5, 1.0, 10), np.linspace(0.0, 0.9, 100)])
    good, bad = frontier(score, safe, 0.03)
    assert bad <= 0.03 and good == pytest.approx(0.3)  # the top three unsafe scores (0.87-0.9) let three through
    assert frontier(score, safe, 0.0) == (pytest.approx(0.2), 0.0)  # nothing unsafe: only scores above 0.9 (two)
    assert frontier(score, safe, 1.0) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 1] > 0.2).astype(float)  # the second feature decides, the first is noise
    beta = fit_logistic(x, y)
    assert abs(beta[2]) > 5 * abs(beta[1])
    fused = two_fold_scores(x, y, np.arange(400) % 2)
    assert ((fused >= 0.5) == (y > 0)).mean() > 0.95


def test_the_real_camera_map_rule_reads_the_sectors_as_the_edge_does():
    """docs/scripts/real_frontier.py's cloud-map rule: the cover within 72 deg is the edge's own figure (the first 25
    sectors), a class the map decides for is safe only under the limit, and the two-fold limit is chosen on one half
    and scored on the other."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_frontier import map_called, map_cover, two_fold_limit

    payload = {"cloud_map": {"sectors": [0.04] * 25 + [1.0] * 8}}
    assert map_cover(payload) == pytest.approx(4.0) and map_cover(payload, 90.0) > 20.0
    classes = np.array(["clear", "cloudy", "cloudy", "unrecognised", "moon"])
    cover = np.array([4.0, 4.0, 40.0, 0.0, 20.0])
    assert map_called(classes, cover, 10.0, ()).tolist() == [True, False, False, False, False]
    assert map_called(classes, cover, 10.0, ("cloudy",)).tolist() == [True, True, False, False, False]
    # Half a: safe skies read 0-9%, unsafe 10-19%; half b the same 5 points higher. The limit chosen on a (9.5%)
    # keeps half of b's safe frames and none of its unsafe ones; chosen on b (14.5%), it lets half of a's unsafe
    # frames through: each half is scored by a limit it did not choose.
    safe = np.array([True] * 10 + [False] * 10 + [True] * 10 + [False] * 10)
    cover = np.concatenate([np.arange(20.0), np.arange(20.0) + 5.0])
    half = np.array(["a"] * 20 + ["b"] * 20)
    called, limits = two_fold_limit(np.array(["cloudy"] * 40), cover, safe, half, ("cloudy",))
    assert limits == [9.5, 14.5]
    assert called[:20].sum() == 15 and called[20:].sum() == 5


def test_the_real_camera_map_band_lets_the_class_stand_between_its_limits():
    """docs/scripts/real_frontier.py's band rule: at lo == hi it is the map deciding; between lo and hi the class
    stands; the band is chosen on one half of the nights and scored on the other."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_frontier import band_called, map_called, two_fold_band

    classes = np.array(["clear", "cloudy", "cloudy", "moon", "clear", "unrecognised"])
    cover = np.array([4.0, 4.0, 15.0, 15.0, 30.0, 0.0])
    assert band_called(classes, cover, 10.0, 10.0).tolist() == map_called(classes, cover, 10.0, ("cloudy",)).tolist()
    # 5-20: the cloudy answer at 4% is made safe, the moon at 15% keeps its class, the clear at 30% is overruled.
    assert band_called(classes, cover, 5.0, 20.0).tolist() == [True, True, False, True, False, False]
    # Half a: every answer 'cloudy'; safe skies read 0-4%, unsafe 5-9%. Half b: every answer 'clear'; safe skies
    # read 0-4%, unsafe 20-24%. On a the band must keep lo below 5; on b hi below 20: each half's choice is scored
    # on the other, and b's lo (any) or a's hi (any) cannot let the other half's unsafe frames through.
    safe = np.array(([True] * 5 + [False] * 5) * 2)
    cover = np.concatenate([np.arange(10.0), np.r_[np.arange(5.0), np.arange(5.0) + 20.0]])
    classes = np.array(["cloudy"] * 10 + ["clear"] * 10)
    half = np.array(["a"] * 10 + ["b"] * 10)
    called, bands = two_fold_band(classes, cover, safe, half)
    assert 4.0 <= bands[0][0] < 5.0 and 4.0 <= bands[1][1] < 20.0
    assert called[~safe].sum() == 0 and called[10:15].all()


def test_the_real_camera_stars_check_reads_a_message_as_the_edge_does():
    """docs/scripts/real_frontier.py's offline clear_without_stars: the zenith's fraction, else the whole sky's,
    under the edge's least share for 'clear' (0.5) or the lower one for 'moon' (0.3); no verdict, no turn."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_frontier import stars_turned

    rows = [{"zenith_visible_fraction": 0.4, "visible_fraction": 0.9}, {"zenith_visible_fraction": None, "visible_fraction": 0.4},
            {"zenith_visible_fraction": 0.4}, {"zenith_visible_fraction": 0.2}, None, {"zenith_visible_fraction": 0.1}]
    classes = np.array(["clear", "clear", "moon", "moon", "clear", "cloudy"])
    assert stars_turned(classes, rows).tolist() == [True, True, False, True, False, False]


def test_the_map_refit_measurement_learns_a_head_from_frame_labels():
    """docs/scripts/real_map_refit.py: a 1x1 logistic head fitted on frames labelled all clear or all cloud ranks
    new frames by the feature channel that carries cloud (and not by one that is noise)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "docs" / "scripts"))
    from real_map_refit import auc, fit_head, frame_cover

    rng = np.random.default_rng(0)

    def frames(cloud: np.ndarray) -> np.ndarray:  # channel 0 reads the cloud, channels 1-3 are noise
        f = rng.normal(size=(len(cloud), 4, 5, 5)).astype(np.float32)
        f[:, 0] += 3.0 * cloud[:, None, None]
        return f

    train_cloud = np.r_[np.zeros(5), np.ones(5)]
    known = np.ones((10, 5, 5), np.float32)
    head = fit_head(frames(train_cloud), train_cloud[:, None, None] * known, known)
    test_cloud = rng.uniform(size=40)
    cover = frame_cover(head(frames(test_cloud)), np.ones((40, 5, 5), np.float32))
    assert auc(cover, test_cloud > 0.5) > 0.9
    assert auc(rng.normal(size=40), test_cloud > 0.5) < 0.8
