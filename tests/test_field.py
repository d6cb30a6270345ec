"""Telescope fields as a survey pipeline runs them: difference imaging on every epoch, new objects, alignment,
retirement, the step graph carried from epoch to epoch, and the publishing policy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyedge.cli import main
from tests.edge_helpers import write_config


def _messages(log, schema):
    rows = [json.loads(line)["payload"] for line in log.read_text().splitlines()]
    return [r for r in rows if r.get("schema", "").startswith(schema)]


def test_cut_stamps_is_the_per_object_cut_for_every_object():
    from skyedge.preprocess import cut_stamp, cut_stamps

    image = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    x = np.array([0.2, 10.6, 49.4, 25.0, -30.0, 3.5])
    y = np.array([0.0, 20.4, 39.0, 39.6, 5.0, 2.5])
    got = cut_stamps(image, x, y, 9)
    assert got.shape == (6, 9, 9)
    for k in range(5):  # reference: an explicit loop over the frame's pixels
        ix, iy = int(round(x[k])), int(round(y[k]))
        want = np.full((9, 9), np.nan, np.float32)
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                if 0 <= iy + dy < 40 and 0 <= ix + dx < 50:
                    want[dy + 4, dx + 4] = image[iy + dy, ix + dx]
        np.testing.assert_array_equal(got[k], want)
        np.testing.assert_array_equal(cut_stamp(image, x[k], y[k], 9), want)
    assert np.isnan(got[4]).all()  # wholly off the frame: nothing wraps around


def _star_field(rng, positions, fluxes, matrix, size=300, hot_column=151):
    """Stars at ``positions`` (reference pixels) seen through a frame whose pixels map onto the reference by
    ``matrix``; a hot column fixed to the detector."""
    yy, xx = np.mgrid[:size, :size]
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    where = positions @ inverse[:, :2].T + inverse[:, 2]
    image = rng.normal(0, 5, (size, size)).astype(np.float32)
    for (x, y), flux in zip(where, fluxes, strict=True):
        image += flux / (2 * np.pi * 1.7**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.7**2))
    image[:, hot_column] += 400.0  # the same in every frame: it must not vote for 'no drift'
    return image.astype(np.float32)


@pytest.mark.parametrize(
    "shift, angle_deg, flip",
    [((3.3, -1.7), 0.0, False), ((-57.45, 40.6), 0.0, False), ((4.0, -6.0), 1.5, False), ((0.0, 0.0), 180.0, False),
     ((0.0, 0.0), 0.0, True)],
    ids=["drift", "large-drift", "rotation", "meridian-flip", "mirror"],
)
def test_alignment_recovers_drift_rotation_and_flip_from_the_stars(shift, angle_deg, flip):
    from skyedge.edge.field.align import align
    from skyedge.edge.field.difference import stars

    rng = np.random.default_rng(2)
    positions = rng.uniform(-40, 340, (140, 2))
    fluxes = rng.uniform(2e3, 4e4, len(positions))
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    linear = np.array([[c, -s], [s, c]]) @ (np.diag([-1.0, 1.0]) if flip else np.eye(2))
    centre = np.array([150.0, 150.0])
    # frame -> reference: about the centre, then the drift
    matrix = np.hstack([linear, (centre - linear @ centre + np.array(shift))[:, None]])
    reference = stars(_star_field(rng, positions, fluxes, np.eye(2, 3)), 4.0)
    frame = _star_field(rng, positions, fluxes, matrix)
    found = align(stars(frame, 4.0), reference)
    assert found is not None
    assert found.flipped == flip
    assert found.matched >= 20
    assert found.residual_px < 0.5  # centroid noise of the fainter stars; the transform itself is checked below
    probe = np.array([[20.0, 30.0], [280.0, 150.0], [150.0, 290.0]])
    got = np.stack(found.to_reference(probe[:, 0], probe[:, 1]), axis=1)
    want = probe @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(got, want, atol=0.3)
    back = np.stack(found.to_frame(got[:, 0], got[:, 1]), axis=1)
    np.testing.assert_allclose(back, probe, atol=1e-6)


def test_alignment_refuses_a_frame_of_other_stars():
    from skyedge.edge.field.align import align
    from skyedge.edge.field.difference import stars

    rng = np.random.default_rng(3)
    fluxes = rng.uniform(2e3, 4e4, 80)
    reference = stars(_star_field(rng, rng.uniform(10, 290, (80, 2)), fluxes, np.eye(2, 3)), 4.0)
    elsewhere = stars(_star_field(rng, rng.uniform(10, 290, (80, 2)), fluxes, np.eye(2, 3)), 4.0)
    assert align(elsewhere, reference) is None


@pytest.fixture(scope="module")
def drifting_field(tmp_path_factory):
    from skyedge.training.simulate.field import FieldConfig, simulate_field
    from skyedge.training.simulate.obslog import CadenceConfig
    from skyedge.training.simulate.transients import TransientConfig

    return simulate_field(
        tmp_path_factory.mktemp("field") / "field",
        seed=5,
        cfg=FieldConfig(
            size=320,
            objects_per_class=5,
            drift_px=3.0,
            hostless_fraction=1.0,
            truth_snr=3,
            transients=TransientConfig(cadence=CadenceConfig(epochs=10)),
        ),
        progress=False,
    )


def test_a_field_without_catalogue_finds_what_is_new(stub_sequence_package, drifting_field, tmp_path):
    """No catalogue, a few pixels of drift, hostless supernovae: the objects that reach 5 sigma in the difference
    image are found (asteroids and hostless supernovae too, which appear after the first epoch), each epoch gets
    one summary, and the default policy publishes far fewer messages than every object every epoch."""
    from skyedge.training.field_evaluation import field_report

    log = tmp_path / "scope.jsonl"
    cfg = write_config(
        tmp_path / "scope.yaml",
        stub_sequence_package,
        {"kind": "fits-sequence", "path": str(drifting_field / "frames"), "settle_s": 0, "forget_after_epochs": 3},
        {"jsonl": {"path": str(log)}},
        camera="field-a",
        batch_size=64,
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    summaries = _messages(log, "skyedge.field")
    assert [s["epoch"] for s in summaries] == list(range(1, 11))
    truth_offsets = json.loads((drifting_field / "truth.json").read_text())["offsets"]
    for s, (dx, dy) in zip(summaries, truth_offsets, strict=True):
        # The drift undone is the drift the simulator applied (the first epoch sets the grid), judged where the
        # frame's centre lands: a fitted rotation of a few thousandths of a degree moves the origin, not the field.
        a = s["alignment"]
        assert not a["flipped"] and abs(a["rotation_deg"]) < 0.1 and a["residual_px"] < 0.5, a
        turn = np.radians(a["rotation_deg"])
        centre = np.array([160.0, 160.0])
        landed = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ centre + [a["dx"], a["dy"]]
        np.testing.assert_allclose(landed - centre, [-dx, -dy], atol=0.15, err_msg=str(a))
    report = field_report(drifting_field, log, stub_sequence_package)
    assert report["detectable"] >= 15
    assert report["completeness"] >= 0.9, report["by_class"]
    assert report["by_class"]["asteroid"]["found"] >= 1 and report["hostless_sn"]["found"] >= 1
    per_object = _messages(log, "skyedge.classification")
    followed = sum(s["objects"]["followed"] for s in summaries)
    assert sum(s["objects"]["classified"] for s in summaries) == followed
    assert len(per_object) < 0.5 * followed  # not every object every epoch
    reasons = {m["published_because"] for m in per_object}
    assert "new" in reasons and "retired" in reasons
    # A retired object's final message is its last; nothing is said about it afterwards.
    retired = [m for m in per_object if m["published_because"] == "retired"]
    for m in retired:
        assert [x for x in per_object if x["object_id"] == m["object_id"]][-1] is m
    assert sum(s["objects"]["retired"] for s in summaries) == len(retired)
    # The first answer of an object found by differencing already covers the epochs before its detection.
    new = [m for m in per_object if m["published_because"] == "new" and not m["object_id"].startswith("src-")]
    assert new and max(m["n_epochs"] for m in new) > 1


def test_every_epoch_policy_and_the_step_graph_match_the_full_graph(stub_sequence_package, drifting_field, tmp_path):
    """Every object every epoch, and each answer equals the full graph run on the object's whole history (stamps
    cut where the edge followed it, on the frames as taken)."""
    from astropy.io import fits

    from skyedge.dataset_inputs import HEADER_KEYS, RAW_CONDITIONS
    from skyedge.model_card import read_card
    from skyedge.precisions import ort_session
    from skyedge.preprocess import cut_stamps, prepare_sequence

    log = tmp_path / "scope.jsonl"
    cfg = write_config(
        tmp_path / "scope.yaml",
        stub_sequence_package,
        {"kind": "fits-sequence", "path": str(drifting_field / "frames"), "settle_s": 0, "detect_new": False},
        {"jsonl": {"path": str(log)}},
        camera="field-a",
        batch_size=7,  # several batches per epoch
        pipeline={"field_messages": {"policy": "every_epoch"}},
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    per_object = _messages(log, "skyedge.classification")
    summaries = _messages(log, "skyedge.field")
    ids = {m["object_id"] for m in per_object}
    assert len(per_object) == 10 * len(ids) and all(m["published_because"] == "every_epoch" for m in per_object)
    card = read_card(stub_sequence_package)
    frames = sorted((drifting_field / "frames").glob("*.fits"), key=lambda p: fits.getheader(p)["MJD-OBS"])
    images = []
    for p in frames:
        image = fits.getdata(p).astype(np.float32)
        images.append(image - np.float32(np.nanmedian(image[::4, ::4])))
    raw = {k: np.array([float(fits.getheader(p)[HEADER_KEYS[k]]) for p in frames]) for k in RAW_CONDITIONS}
    session = ort_session(stub_sequence_package / "model.onnx")
    last = {m["object_id"]: m for m in per_object if m["n_epochs"] == 10}
    for oid in sorted(ids)[:12]:
        x, y = last[oid]["position"]["x"], last[oid]["position"]["y"]
        stamps = np.stack(
            [
                cut_stamps(im, np.array([x - s["alignment"]["dx"]]), np.array([y - s["alignment"]["dy"]]), 21)[0]
                for im, s in zip(images, summaries, strict=True)
            ]
        )
        xs, cs = prepare_sequence(stamps, raw, card.sequence)
        p = session.run(None, {"stamps": xs[None], "conditions": cs[None]})[0][0, -1]
        got = np.array([last[oid]["probabilities"][c] for c in card.classes])
        np.testing.assert_allclose(got, p, atol=1e-4, err_msg=oid)


def test_bench_field_writes_costs_by_objects_and_history(stub_sequence_package, drifting_field, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--model", str(stub_sequence_package), "--field", str(drifting_field / "frames"), "--objects", "5,40"]
    args += ["--histories", "1,4", "--precision", "fp32", "--batch", "16", "--trials", "1", "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "field_bench.json").read_text())
    combos = {(r["graph"], r["objects"], r["history"]) for r in result["graph"]}
    assert combos == {(g, n, h) for g in ("full", "step") for n in (5, 40) for h in (1, 4)}
    assert all(r["object_epochs_per_s"] > 0 for r in result["graph"])
    pipe = result["pipeline"]
    assert pipe["epochs"] == 10 and pipe["object_epochs"] > 0 and len(pipe["ms_per_epoch"]) == 10 - 3
    assert (out / "field_bench.png").stat().st_size > 10_000


def test_a_frame_of_another_shape_is_rejected_and_the_field_carries_on(stub_sequence_package, drifting_field, tmp_path):
    from astropy.io import fits

    frames = tmp_path / "frames"
    frames.mkdir()
    paths = sorted((drifting_field / "frames").glob("*.fits"))
    for p in paths[:6]:
        (frames / p.name).write_bytes(p.read_bytes())
    with fits.open(paths[6]) as hdul:  # a binned frame in the middle of the field
        fits.PrimaryHDU(hdul[0].data[::2, ::2], hdul[0].header).writeto(frames / paths[6].name)
    for p in paths[7:]:
        (frames / p.name).write_bytes(p.read_bytes())
    log = tmp_path / "scope.jsonl"
    cfg = write_config(
        tmp_path / "scope.yaml",
        stub_sequence_package,
        {"kind": "fits-sequence", "path": str(frames), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
        camera="field-a",
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    events = [e for e in _messages(log, "skyedge.event") if e["event"] == "input_rejected"]
    assert len(events) == 1 and paths[6].name in events[0]["message"] and "shape" in events[0]["message"]
    assert len(_messages(log, "skyedge.field")) == 9  # every other epoch summarised
