"""The learnt real/bogus stage: triplets measured in the frame's noise, the stage refusing what its model calls bogus
(a stub ONNX model answering one way), a missing model named at start, harvest and training writing what the edge
loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from raw_field import raw_camera_field

from skyedge.edge.config_sources import FitsSequenceSourceSection
from skyedge.edge.field import real_bogus
from skyedge.edge.field.real_bogus import STAMP, triplets
from skyedge.errors import SkyedgeError


def _stub_model(folder: Path, logit: float, threshold: float = 0.5) -> Path:
    """An ONNX graph answering ``logit`` for every triplet, with its card."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["stamps"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "bias"], ["flat"]),
        helper.make_node("Unsqueeze", ["flat", "axis"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stub",
        [helper.make_tensor_value_info("stamps", TensorProto.FLOAT, ["n", 3, STAMP, STAMP])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["n", 1])],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("bias", TensorProto.FLOAT, [], [logit]),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "real_bogus.onnx"
    onnx.save(model, str(path))
    (folder / "real_bogus.json").write_text(json.dumps({"stamp": STAMP, "threshold": threshold}))
    return path


def test_triplets_are_in_noise_units_and_zero_off_the_grid():
    rng = np.random.default_rng(0)
    science, template = rng.normal(0, 2, (50, 60)), rng.normal(0, 2, (50, 60))
    difference = science - template
    a = triplets(science, template, difference, [30.0, 1.0], [20.0, 48.0], noise=2.0)
    b = triplets(5 * science, 5 * template, 5 * difference, [30.0, 1.0], [20.0, 48.0], noise=10.0)
    assert a.shape == (2, 3, STAMP, STAMP) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # a camera's gain does not change what the model sees
    half = STAMP // 2
    np.testing.assert_allclose(a[0, 2, half, half], np.arcsinh(difference[20, 30] / 6.0), rtol=1e-5)
    assert np.all(a[1, :, half + 2 :, :] == 0) and np.all(a[1, :, :, : half - 1] == 0)  # beyond the frame


def test_a_missing_model_is_named_at_start(tmp_path):
    from skyedge.edge.field.tracker import FieldTracker

    spec = FitsSequenceSourceSection(kind="fits-sequence", path=str(tmp_path), real_bogus_model=str(tmp_path / "no.onnx"))
    with pytest.raises(SkyedgeError, match="real_bogus_model"):
        FieldTracker(spec, 24)


def test_the_builtin_model_loads_with_its_card():
    model = real_bogus.load("builtin")
    assert 0.0 < model.threshold <= 0.5
    assert model.card["trained_on"] and model.card["validation"]["real_kept"] is not None
    assert model.p_real(np.zeros((4, 3, STAMP, STAMP), np.float32)).shape == (4,)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A synthetic raw field with planted supernovae, asteroids and variables (skyedge field-inject)."""
    from skyedge.cli import main

    root = tmp_path_factory.mktemp("rb")
    frames = raw_camera_field(root / "frames", seed=2)
    assert main(["field-inject", str(frames), str(root / "inject"), "--per-kind", "6", "--snr", "12,30", "--seed", "4"]) == 0
    return root / "inject"


def _new_objects(frames: Path, model_setting) -> tuple[int, int]:
    from skyedge.edge.field.tracker import FieldTracker
    from skyedge.edge.sources.fits_sequence import read_epoch
    from skyedge.edge.tools.field_inject import frames_in_time_order

    spec = FitsSequenceSourceSection(kind="fits-sequence", path=str(frames), real_bogus_model=model_setting)
    tracker = FieldTracker(spec, 24)
    new = learnt = 0
    for path in frames_in_time_order(frames):
        for view in tracker.observe(read_epoch(path)):
            new += len(view.new)
            learnt += view.bogus.get("learnt", 0)
    return new, learnt


def test_the_learnt_stage_refuses_what_its_model_calls_bogus(planted, tmp_path):
    found, learnt = _new_objects(planted / "frames", None)
    assert found >= 10 and learnt == 0
    keeps = _stub_model(tmp_path / "keeps", logit=8.0)
    assert _new_objects(planted / "frames", str(keeps)) == (found, 0)
    refuses = _stub_model(tmp_path / "refuses", logit=-8.0)
    new, learnt = _new_objects(planted / "frames", str(refuses))
    assert new == 0 and learnt >= found


@pytest.mark.slow  # reason: trains a network in torch (seconds, but the fast tier trains nothing)
def test_harvest_labels_planted_sources_and_training_writes_what_the_edge_loads(planted, tmp_path):
    from skyedge.edge.tools.field_harvest import harvest
    from skyedge.training.real_bogus import train_real_bogus

    counts = harvest(planted / "frames", tmp_path / "h.npz", planted / "truth.json", progress=False)
    assert counts["real"] >= 10 and counts["residuals"] > counts["real"]
    data = np.load(tmp_path / "h.npz")
    assert data["stamps"].shape[1:] == (3, STAMP, STAMP) and set(np.unique(data["label"])) == {0, 1}
    card = train_real_bogus([tmp_path / "h.npz"], tmp_path / "model", tests=[tmp_path / "h.npz"], epochs=2)
    model = real_bogus.load(str(tmp_path / "model" / "real_bogus.onnx"))
    assert model.threshold == card["threshold"] and card["tests"][0]["real"] == counts["real"]
    assert model.p_real(data["stamps"][:5]).shape == (5,)
