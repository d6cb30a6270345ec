"""Collection for labelling: which frames are kept, the quota, a full disk, and the daemon with it switched on."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from skyedge.edge.config import CollectSection
from skyedge.edge.labelling.collect import CollectPolicy, FrameCollector, Pick


def _msg(label="clear", confidence=0.9, n=0):
    return {"class": label, "confidence": confidence, "frame_id": f"f{n}.fits", "probabilities": {label: confidence}}


def _spec(tmp_path, **kw):
    return CollectSection(path=str(tmp_path / "collected"), **kw)


def test_the_policy_keeps_unrecognised_doubtful_changes_and_one_every_n_minutes(tmp_path):
    policy = CollectPolicy(_spec(tmp_path, below_confidence=0.6, around_changes=2, every_minutes=10))
    picks = policy.picks("a.fits", _msg(), False, now=0.0)
    assert [p.reasons for p in picks] == [["periodic"]]  # the first frame starts the clock
    assert policy.picks("b.fits", _msg(), False, now=60.0) == []
    assert [p.reasons for p in policy.picks("c.fits", _msg("unrecognised", 1.0), False, now=61.0)] == [["unrecognised"]]
    assert [p.reasons for p in policy.picks("d.fits", _msg(confidence=0.4), False, now=62.0)] == [["low_confidence"]]
    for i, src in enumerate(("e.fits", "f.fits", "g.fits")):
        assert policy.picks(src, _msg(), False, now=63.0 + i) == []
    # A state change: the two frames before it, itself, and the two after it.
    changed = policy.picks("h.fits", _msg("cloudy"), True, now=70.0)
    assert [(p.source, p.reasons) for p in changed] == [
        ("f.fits", ["before_state_change"]),
        ("g.fits", ["before_state_change"]),
        ("h.fits", ["state_change"]),
    ]
    assert [p.reasons for p in policy.picks("i.fits", _msg("cloudy"), False, now=71.0)] == [["after_state_change"]]
    assert [p.reasons for p in policy.picks("j.fits", _msg("cloudy"), False, now=72.0)] == [["after_state_change"]]
    assert policy.picks("k.fits", _msg("cloudy"), False, now=73.0) == []
    assert [p.reasons for p in policy.picks("l.fits", _msg(), False, now=661.0)] == [["periodic"]]



def test_the_model_disagreeing_with_the_sky_or_its_own_cloud_map_is_collected(tmp_path):
    policy = CollectPolicy(_spec(tmp_path, below_confidence=None, around_changes=0, every_minutes=None))
    for check in ("stars_disagree", "cloud_map_clear", "cloud_map_cloudy"):
        assert [p.reasons for p in policy.picks("a.fits", {**_msg(), "checks": [check]}, False)] == [[check]]
    assert policy.picks("b.fits", {**_msg(), "checks": ["bright_moon_unseen"]}, False) == []


def test_the_quota_keeps_the_newest_and_never_touches_originals(tmp_path):
    originals = tmp_path / "camera"
    originals.mkdir()
    files = []
    for i in range(12):
        f = originals / f"frame-{i:02d}.fits"
        f.write_bytes(os.urandom(1000))
        files.append(f)
    before = {f: f.read_bytes() for f in files}
    spec = _spec(tmp_path, max_files=5, max_bytes=10**9)
    collector = FrameCollector(spec, "allsky")
    for i, f in enumerate(files):
        collector.offer(Pick(str(f), _msg(n=i), ["low_confidence"]))
    collector.offer(Pick(str(originals / "gone.fits"), _msg(), ["periodic"]))  # rotated away meanwhile
    collector.drain()
    kept = sorted(p.name for p in (tmp_path / "collected").rglob("*.fits"))
    assert kept == [f"allsky-frame-{i:02d}.fits" for i in range(7, 12)]
    for frame in (tmp_path / "collected").rglob("*.fits"):
        side = json.loads(frame.with_suffix(".json").read_text())
        assert side["collected_because"] == ["low_confidence"] and side["original"].endswith(frame.name[7:])
        assert frame.read_bytes() == before[originals / frame.name[7:]]
    assert {f: f.read_bytes() for f in files} == before and collector.vanished == 1
    assert collector.usage() == (5, sum(p.stat().st_size for p in (tmp_path / "collected").rglob("*.*")))
    collector.close()
    # A restart counts what is there: a tighter quota trims it at the next frame.
    again = FrameCollector(_spec(tmp_path, max_files=3, max_bytes=10**9), "allsky")
    assert again.usage()[0] == 5
    again.offer(Pick(str(files[0]), _msg(), ["periodic"]))
    again.drain()
    assert again.usage()[0] == 3 and len(list((tmp_path / "collected").rglob("*.json"))) == 3
    again.close()
    # Bytes count too.
    by_bytes = FrameCollector(_spec(tmp_path / "b", max_files=100, max_bytes=2500), "allsky")
    for f in files[:4]:
        by_bytes.offer(Pick(str(f), _msg(), ["periodic"]))
    by_bytes.drain()
    assert by_bytes.usage()[1] <= 2500 and by_bytes.usage()[0] == 2
    by_bytes.close()


def test_a_full_disk_pauses_collection_and_it_resumes(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        frame = tmp_path / "frame.fits"
        frame.write_bytes(os.urandom(300_000))
        collector = FrameCollector(CollectSection(path=str(disk / "c")), "allsky", retry_after_s=0.0)
        filler = disk / "filler"
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        collector.offer(Pick(str(frame), _msg(), ["periodic"]))
        collector.drain()
        assert collector.problem and collector.usage() == (0, 0)
        assert not list((disk / "c").rglob("*.*"))  # no half copy, no orphan sidecar
        filler.unlink()
        collector.offer(Pick(str(frame), _msg(), ["periodic"]))
        collector.drain()
        assert collector.problem is None and collector.usage()[0] == 1
        collector.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_the_daemon_collects_within_its_quota(stub_frame_package, camera_frames, tmp_path):
    from edge_helpers import messages, write_config

    from skyedge.cli import main

    collected = tmp_path / "collected"
    deployment = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {
            "kind": "directory",
            "path": str(camera_frames[0].parent),
            "settle_s": 0,
            "state_file": str(tmp_path / "s.db"),
        },
        {"jsonl": {"path": str(tmp_path / "r.jsonl")}},
        pipeline={"collect": {"path": str(collected), "below_confidence": 1.0, "max_files": 10}},
    )
    assert main(["run", "--config", str(deployment), "--once"]) == 0
    frames = sorted(collected.rglob("*.fits"))
    assert len(frames) == 10 and len(list(collected.rglob("*.json"))) == 10
    classified = {m["frame_id"]: m for m in messages(tmp_path / "r.jsonl", "classification")}
    assert len(classified) == len(camera_frames)
    for frame in frames:
        side = json.loads(frame.with_suffix(".json").read_text())
        assert side["class"] == classified[side["frame_id"]]["class"] and side["model"]["sha256"]
    counts = messages(tmp_path / "r.jsonl", "metrics")[-1]["counts"]
    assert counts["collected"] >= 10
