"""Stars in the edge runtime: the cross-checks with teeth, collection of disagreements, a geometry solved and
saved on the device, a broken geometry file refused at start and a garbled one solved afresh. Answers are scripted (stub backend): the test
is of the plumbing and the stars, not of what a model says."""

from __future__ import annotations

import json

import yaml
from edge_helpers import messages, write_config
from star_frames import LENS, LOCATION, NIGHT, SHAPE, SITE, star_frame

from skyedge.cli import main
from skyedge.stars.catalogue import default_catalogue
from skyedge.stars.depth import DepthPool
from skyedge.stars.detection import detect_stars
from skyedge.stars.geometry_file import CameraGeometry, load_geometry, save_geometry
from skyedge.stars.visibility import SEEN_RULE, completeness_counts, limiting_magnitudes, star_zero_point
from skyedge.training.simulate.starfield import render_star_field


def _limits():
    cat = default_catalogue()
    counts = []
    for k in range(3):
        t = NIGHT - 3600.0 * (k + 1)
        img = render_star_field(LENS, SHAPE, SITE, t, limiting_mag=4.5, seed=90 + k)
        counts.append(completeness_counts(detect_stars(img), cat.at(*SITE, t), LENS, SHAPE))
    return limiting_magnitudes(sum(c[0] for c in counts), sum(c[1] for c in counts))


def _config(tmp_path, package, incoming, log, script, stars: dict | None | str, collect=None, checks=None):
    """``stars``: the section's keys, None for ``stars: null``, or "left out"; ``checks``: the checks section."""
    pipeline = {} if stars == "left out" else {"stars": stars}
    if checks is not None:
        pipeline["checks"] = checks
    if collect is not None:
        pipeline["collect"] = {"path": str(collect), "below_confidence": None, "every_minutes": None, "around_changes": 0, "unrecognised": False}
    return write_config(
        tmp_path / "e.yaml", package, {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}}, site_location=LOCATION, batch_size=1, script=script, pipeline=pipeline,
    )


def test_clear_without_stars_is_unsafe_and_cloudy_under_stars_is_flagged_and_collected(stub_frame_package, tmp_path):
    geometry = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, _limits(), {"frames": 3}), geometry)
    incoming, log, kept = tmp_path / "in", tmp_path / "r.jsonl", tmp_path / "kept"
    incoming.mkdir()
    star_frame(incoming / "f0.fits", NIGHT, cloudy=True, seed=1)  # overcast, the model says clear
    star_frame(incoming / "f1.fits", NIGHT + 60, cloudy=False, seed=2)  # starry, the model says cloudy
    star_frame(incoming / "f2.fits", NIGHT + 120, cloudy=False, seed=3)  # starry, the model says clear
    star_frame(incoming / "f3.fits", NIGHT + 180, cloudy=True, seed=5)  # overcast, the model says moonlit
    script = ["clear", "cloudy", "clear", "moon"]
    # The moon is down at these times: the moon check only flags, so the stars' own check of 'moon' is seen.
    cfg = _config(tmp_path, stub_frame_package, incoming, log, script, {"geometry": str(geometry)}, kept, {"moon_below_horizon": "flag"})
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    got = {m["frame_id"]: m for m in messages(log, "classification")}
    overcast, disputed, clear = got["f0.fits"], got["f1.fits"], got["f2.fits"]
    assert overcast["class"] == "unrecognised" and overcast["top_class"] == "clear"
    assert overcast["checks"] == ["clear_without_stars"] and overcast["stars"]["zenith_visible_fraction"] < 0.5
    assert disputed["class"] == "cloudy" and disputed["checks"] == ["stars_disagree"]
    assert clear["class"] == "clear" and not clear.get("checks")
    # Lit cloud passes for a moonlit sky: a 'moon' answer is held to the stars too (to a lower share).
    lit = got["f3.fits"]
    assert lit["class"] == "unrecognised" and lit["top_class"] == "moon" and "clear_without_stars" in lit["checks"]
    assert clear["stars"]["geometry"] == "saved" and clear["stars"]["zenith_visible_fraction"] >= 0.8
    assert len(clear["stars"]["sectors"]) == 33
    sidecars = [json.loads(p.read_text()) for p in kept.rglob("*.json")]
    assert [s["frame_id"] for s in sidecars if "stars_disagree" in s["collected_because"]] == ["f1.fits"]


def _learnt_geometry():
    """A geometry as a device leaves it after its first clear frames: limits and the stars' brightness learnt."""
    cat, pool, frames = default_catalogue(), DepthPool.empty(), []
    for k in range(6):
        t = NIGHT - 3600.0 * (k + 1)
        frames.append((detect_stars(render_star_field(LENS, SHAPE, SITE, t, limiting_mag=4.5, seed=90 + k)), cat.at(*SITE, t)))
        pool = pool.added(completeness_counts(*frames[-1], LENS, SHAPE))
    limits = pool.limits()
    for det, stars in frames:
        pool = pool.added(completeness_counts(det, stars, LENS, SHAPE), star_zero_point(det, stars, LENS, SHAPE, limits))
    return CameraGeometry(LENS, SHAPE, limits, {"limits_seen_as": SEEN_RULE}, pool)


def test_a_clear_answer_under_a_veil_the_stars_shine_through_is_unsafe(stub_frame_package, tmp_path):
    for weighed in (True, False):
        run = tmp_path / str(weighed)
        run.mkdir()
        geometry, incoming, log = run / "geometry.yaml", run / "in", run / "r.jsonl"
        save_geometry(_learnt_geometry(), geometry)
        incoming.mkdir()
        star_frame(incoming / "f0.fits", NIGHT, cloudy=False, seed=1, veil_mag=1.5)  # thin cloud: stars 1.5 mag fainter
        star_frame(incoming / "f1.fits", NIGHT + 60, cloudy=False, seed=2)
        stars = {"geometry": str(geometry)} if weighed else {"geometry": str(geometry), "max_extinction_mag": None}
        cfg = _config(run, stub_frame_package, incoming, log, ["clear", "clear"], stars)
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        got = {m["frame_id"]: m for m in messages(log, "classification")}
        veiled, clear = got["f0.fits"], got["f1.fits"]
        assert veiled["stars"]["zenith_visible_fraction"] >= 0.5 and veiled["stars"]["extinction_mag"] > 1.0
        assert clear["class"] == "clear" and not clear.get("checks") and abs(clear["stars"]["extinction_mag"]) <= 0.3
        if weighed:  # the stars are there, but dimmed as by cloud
            assert veiled["class"] == "unrecognised" and veiled["top_class"] == "clear" and veiled["checks"] == ["clear_without_stars"]
        else:  # only counted: the veiled sky passes
            assert veiled["class"] == "clear" and not veiled.get("checks")


def test_a_clock_an_hour_off_is_said_in_the_message_and_the_geometry_kept(stub_frame_package, tmp_path):
    """Frames stamped an hour before they were taken (the camera's time zone set wrong): every message says so,
    by how much, and the saved geometry is neither replaced nor counted against."""
    geometry = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, _limits(), {"frames": 3}), geometry)
    before = geometry.read_bytes()
    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    for k in range(2):
        star_frame(incoming / f"f{k}.fits", NIGHT + 3600.0 + 600.0 * k, cloudy=False, seed=20 + k, stamped=NIGHT + 600.0 * k)
    cfg = _config(tmp_path, stub_frame_package, incoming, log, ["clear"], {"geometry": str(geometry), "solve_every_s": 0})
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    got = sorted(messages(log, "classification"), key=lambda m: m["frame_id"])
    assert [m["stars"]["geometry"] for m in got] == ["saved", "saved"] and geometry.read_bytes() == before
    assert all(abs(m["stars"]["clock_offset_min"] - 60) <= 3 for m in got)
    assert all(m["class"] == "unrecognised" and "clear_without_stars" in m["checks"] for m in got)  # unsafe meanwhile


def test_a_camera_without_geometry_solves_and_saves_one(stub_frame_package, tmp_path):
    geometry = tmp_path / "cam" / "geometry.yaml"
    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    for k in range(4):
        star_frame(incoming / f"f{k}.fits", NIGHT + 900.0 * k, cloudy=False, seed=10 + k)
    cfg = _config(tmp_path, stub_frame_package, incoming, log, ["clear"], {"geometry": str(geometry), "solve_every_s": 0})
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    got = sorted(messages(log, "classification"), key=lambda m: m["frame_id"])
    assert [m["stars"]["geometry"] for m in got[:3]] == ["solved"] * 3
    assert got[2]["stars"]["zenith_visible_fraction"] is not None  # limits learnt from three solved frames
    assert got[3]["stars"]["geometry"] == "saved"  # it sees its stars: no need to solve again
    saved = load_geometry(geometry)
    assert abs(saved.lens.cx - LENS.cx) < 1.0 and abs(((saved.lens.north_deg - LENS.north_deg) + 180) % 360 - 180) < 0.5
    assert saved.fit["limits_seen_as"] == SEEN_RULE


def test_a_located_site_watches_its_stars_unasked_and_null_turns_it_off(stub_frame_package, tmp_path):
    """Left out, the stars section is on wherever the site is known: the geometry is solved from the frames and
    kept beside the folder's state file. ``stars: null`` keeps the watch off; without site_location there is none."""
    from skyedge.edge.config import load_edge_config
    from skyedge.edge.config_observatory import geometry_file

    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    for k in range(4):
        star_frame(incoming / f"f{k}.fits", NIGHT + 900.0 * k, cloudy=False, seed=10 + k)
    cfg = _config(tmp_path, stub_frame_package, incoming, log, ["clear"], "left out")
    assert geometry_file(load_edge_config(cfg).pipelines[0]) == incoming / ".skyedge-allsky-geometry.yaml"
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    got = sorted(messages(log, "classification"), key=lambda m: m["frame_id"])
    assert [m["stars"]["geometry"] for m in got[:3]] == ["solved"] * 3 and got[3]["stars"]["zenith_visible_fraction"] >= 0.8
    saved = load_geometry(incoming / ".skyedge-allsky-geometry.yaml")
    assert abs(saved.lens.cx - LENS.cx) < 1.0
    off = _config(tmp_path, stub_frame_package, incoming, tmp_path / "off.jsonl", ["clear"], None)
    assert load_edge_config(off).pipelines[0].stars is None
    unlocated = yaml.safe_load(cfg.read_text())
    del unlocated["site_location"]
    (tmp_path / "unlocated.yaml").write_text(yaml.safe_dump(unlocated))
    assert load_edge_config(tmp_path / "unlocated.yaml").pipelines[0].stars is None


def test_a_broken_geometry_file_stops_the_start_naming_the_key(stub_frame_package, tmp_path, capsys):
    geometry = tmp_path / "geometry.yaml"
    geometry.write_text(yaml.safe_dump({"orientation": {"projection": "fisheye"}, "frame_shape": [10, 10]}))
    incoming = tmp_path / "in"
    incoming.mkdir()
    cfg = _config(tmp_path, stub_frame_package, incoming, tmp_path / "r.jsonl", ["clear"], {"geometry": str(geometry)})
    assert main(["run", "--config", str(cfg), "--once"]) != 0
    assert "stars.geometry" in capsys.readouterr().err


def test_a_geometry_file_a_power_cut_garbled_is_set_aside_and_solved_afresh(stub_frame_package, tmp_path, capsys):
    """What a power cut can leave of a file being rewritten (NUL bytes) keeps no device down when it solves its own
    geometry: the file is set aside whole and the sky solves it again. A pipeline told not to solve cannot."""
    geometry = tmp_path / "cam" / "geometry.yaml"
    geometry.parent.mkdir()
    geometry.write_bytes(b"\0" * 700)
    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    for k in range(3):
        star_frame(incoming / f"f{k}.fits", NIGHT + 900.0 * k, cloudy=False, seed=10 + k)
    fixed = _config(tmp_path, stub_frame_package, incoming, tmp_path / "fixed.jsonl", ["clear"], {"geometry": str(geometry), "solve": False})
    assert main(["run", "--config", str(fixed), "--once"]) != 0  # nothing to go by: refused, naming the key
    err = capsys.readouterr().err
    assert "stars.geometry" in err and "NUL bytes" in err and geometry.read_bytes() == b"\0" * 700
    cfg = _config(tmp_path, stub_frame_package, incoming, log, ["clear"], {"geometry": str(geometry), "solve_every_s": 0})
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    err = capsys.readouterr().err
    assert "set aside" in err and str(geometry) in err
    assert (tmp_path / "cam" / "geometry.yaml.unreadable").read_bytes() == b"\0" * 700
    got = sorted(messages(log, "classification"), key=lambda m: m["frame_id"])
    assert [m["stars"]["geometry"] for m in got] == ["solved"] * 3
    assert abs(load_geometry(geometry).lens.cx - LENS.cx) < 1.0


def test_stars_need_a_site(stub_frame_package, tmp_path, capsys):
    incoming = tmp_path / "in"
    incoming.mkdir()
    cfg = write_config(
        tmp_path / "e.yaml", stub_frame_package, {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(tmp_path / "r.jsonl")}}, script=["clear"], pipeline={"stars": {"geometry": str(tmp_path / "g.yaml")}},
    )
    assert main(["run", "--config", str(cfg), "--once"]) != 0
    assert "site_location" in capsys.readouterr().err


def test_stars_refine_the_cloud_map_when_asked(tmp_path):
    """With refine_cloud_map each sector where stars are expected lies between the model's cloud fraction and the
    stars' (1 - visible fraction), and the map says both sources; without it, the model's map alone."""
    from stub_packages import frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    geometry = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, _limits(), {"frames": 3}), geometry)
    got = {}
    for refine in (False, True):
        incoming, log = tmp_path / f"in-{refine}", tmp_path / f"r-{refine}.jsonl"
        incoming.mkdir()
        star_frame(incoming / "f0.fits", NIGHT, cloudy="east", seed=4)  # half the stars hidden: the sources disagree
        cfg = _config(tmp_path, package, incoming, log, ["clear"], {"geometry": str(geometry), "refine_cloud_map": refine})
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        (got[refine],) = messages(log, "classification")
    plain, refined = got[False], got[True]
    assert plain["cloud_map"]["source"] == "model" and refined["cloud_map"]["source"] == "both"
    stars = refined["stars"]["sectors"]
    changed = 0
    for k, v in enumerate(stars):
        model, both = plain["cloud_map"]["sectors"][k], refined["cloud_map"]["sectors"][k]
        if v is None or model is None:
            assert both == model
            continue
        lo, hi = sorted((model, 1.0 - v))
        assert lo - 1e-3 <= both <= hi + 1e-3
        changed += abs(both - model) > 1e-3
    assert changed > 0


def test_cloudmap_draws_on_the_geometry_the_stars_saved_as_the_edge_does(tmp_path):
    """A camera whose orientation its stars solved: ``skyedge cloudmap`` reads the saved geometry as the edge does,
    so the sectors drawn for checking are the sectors the edge reported, not the default lens circle's."""
    from stub_packages import frame_package

    from skyedge.edge.config import load_edge_config
    from skyedge.edge.tools.cloud_overlay import write_overlay

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    geometry = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, _limits(), {"frames": 3}), geometry)
    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    frame = star_frame(incoming / "f0.fits", NIGHT, cloudy="east", seed=4)
    cfg = write_config(  # the package's own graph, not a script: the edge's map is the model's
        tmp_path / "e.yaml", package, {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}}, site_location=LOCATION, batch_size=1, pipeline={"stars": {"geometry": str(geometry), "refine_cloud_map": False}},
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    (edge,) = messages(log, "classification")
    pipeline = load_edge_config(cfg).pipelines[0]
    drawn = write_overlay(package, frame, tmp_path / "map.png", pipeline)
    assert edge["cloud_map"]["geometry"] == drawn.geometry == "stars"
    assert edge["cloud_map"]["sectors"] == [None if s is None else round(s, 3) for s in drawn.sectors]
    default = write_overlay(package, frame, tmp_path / "default.png")
    assert default.geometry == "default" and list(default.sectors) != list(drawn.sectors)
