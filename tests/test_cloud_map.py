"""The cloud map: sectors on the cloudynight layout through the camera's geometry, cloud cover in the messages,
and the optional safety rule on it. Stub packages: the map is a fixed function of the frame (bright = cloudy)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_helpers import messages, write_config

from skyedge.cli import main
from skyedge.edge.allsky.cloud_map import LAYOUT, SECTORS, CloudMapper, sector_of
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
    from skyedge.edge.allsky.cloud_map import MODEL_WEIGHT_STARS, with_stars
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


def test_the_daemon_reports_cloud_cover_and_the_map_rule_can_veto_or_vouch(tmp_path, camera_frames, capsys):
    """A stub model with a cloud map (bright = cloudy). Every class counted safe: with the map rule on, frames with
    cloud are unsafe whatever the class says. No class counted safe but every class left to the map: the map alone
    decides."""
    from stub_packages import FRAME_CLASSES, frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    incoming = tmp_path / "in"
    incoming.mkdir()
    for f in camera_frames[:8]:
        (incoming / f.name).write_bytes(f.read_bytes())
    everything = {"safe_classes": FRAME_CLASSES, "hold_frames": 2}
    map_decides = {"safe_classes": [], "cloud_map_decides": FRAME_CLASSES, "hold_frames": 2}
    cases = (
        ("class", {**everything, "max_cloud_cover": None}, True),
        ("veto", {**everything, "max_cloud_cover": 0.0}, False),
        ("vouch", {**map_decides, "max_cloud_cover": 100.0}, True),  # no class is safe; the map vouches for all
        ("vouch-none", {**map_decides, "max_cloud_cover": 0.0}, False),
    )
    for rule, safety, want_safe in cases:
        log = tmp_path / f"r-{rule}.jsonl"
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
    # The map cannot decide for a model that has none: refused at start, by key.
    plain = frame_package(tmp_path / "plain", size=64)
    cfg = write_config(
        tmp_path / "e-plain.yaml",
        plain,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "state_file": str(tmp_path / "s-plain.db")},
        {"jsonl": {"path": str(tmp_path / "plain.jsonl")}},
        pipeline={"safety": {**map_decides, "max_cloud_cover": 10.0}},
    )
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--once"]) != 0
    assert "safety.cloud_map_decides: the model has no cloud map" in capsys.readouterr().err


def _verdicts(**safety):
    from types import SimpleNamespace

    from skyedge.edge.config_observatory import SafetySection, SkyStateSection
    from skyedge.edge.observatory.verdicts import FrameVerdicts

    return FrameVerdicts(SimpleNamespace(sky_state=SkyStateSection(), safety=SafetySection(**safety), weather_files=None))


def _report(cloud_zenith: float, cloud_low: float):
    """A cloud report with ``cloud_zenith`` in the zenith disc and the first three rings, ``cloud_low`` in the last."""
    from skyedge.edge.allsky.cloud_map import CloudReport

    sectors = (cloud_zenith,) * 25 + (cloud_low,) * 8
    return CloudReport(cloud_cover=100.0 * float(np.mean(sectors)), sectors=sectors, geometry="default")


def test_the_cloud_map_decides_for_the_classes_it_is_given_and_vetoes_the_rest():
    """``cloud_map_decides: [cloudy]``: a frame the classifier calls cloudy is safe when the map reads little cloud
    within ``cloud_zenith_deg`` and unsafe otherwise or without a map; a safe class is still vetoed by a cloudy map;
    classes outside both lists stay unsafe whatever the map says."""
    from pydantic import ValidationError

    from skyedge.edge.config_observatory import SafetySection

    with pytest.raises(ValidationError, match="max_cloud_cover"):
        SafetySection(cloud_map_decides=["cloudy"])
    rule = {"safe_classes": ["clear"], "cloud_map_decides": ["cloudy"], "max_cloud_cover": 10.0, "cloud_zenith_deg": 72.0}
    clear_high, cloud_high = _report(0.05, 0.9), _report(0.5, 0.0)  # low cloud lies outside the 72 deg it looks at

    v = _verdicts(hold_frames=2, **rule)
    assert v.decided("cloudy", 0.9, clear_high, -30.0) == []  # one frame: the hold is not met yet
    flip = v.decided("cloudy", 0.9, clear_high, -30.0)[0]
    assert flip.safe and "'cloudy' with cloud cover 5% within 72 deg" in flip.reason and v.safety.is_safe()
    flip = v.decided("cloudy", 0.9, cloud_high, -30.0)[0]
    assert not flip.safe and "cloud cover 50% within 72 deg" in flip.reason

    v = _verdicts(hold_frames=1, **rule)
    assert not v.decided("cloudy", 0.9, None, -30.0) and not v.safety.is_safe()
    assert "no cloud map" in v.safety.reason
    assert v.decided("clear", 0.9, None, -30.0)[0].safe  # a safe class without a map keeps the class rule
    assert not v.decided("clear", 0.9, cloud_high, -30.0)[0].safe  # ... and with a cloudy map is vetoed
    assert not v.decided("unrecognised", 0.9, clear_high, -30.0) and not v.safety.is_safe()

    # Without the list the map only ever vetoes: a cloudy answer stays unsafe under a clear map.
    v = _verdicts(hold_frames=1, safe_classes=["clear"], max_cloud_cover=10.0, cloud_zenith_deg=72.0)
    assert not v.decided("cloudy", 0.9, clear_high, -30.0) and not v.safety.is_safe()


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
