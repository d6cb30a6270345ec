"""Calibration: the stratified subset, both INT8 forms, the report, and a gate that can fail."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from skyedge.calibration.calibrate import calibrate_package
from skyedge.calibration.report import GateError
from skyedge.calibration.subset import stratified_subset
from skyedge.model_card import read_card
from skyedge.shards import ShardedDataset, write_manifest, write_shard


def test_subset_covers_every_stratum_in_proportion():
    strata = np.repeat(np.arange(6), [300, 100, 50, 20, 5, 1])
    idx = stratified_subset(strata, 60, seed=0)
    assert len(idx) == 60 and len(set(idx)) == 60
    counts = np.bincount(strata[idx], minlength=6)
    assert (counts >= 1).all()
    assert counts[0] > counts[1] > counts[2] >= counts[3]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["frame_package", "sequence_package"])
def test_int8_forms_and_report(which, request):
    package = request.getfixturevalue(which)
    report = json.loads((package / "report.json").read_text())
    card = read_card(package)
    assert card.files["int8"] == "model.int8.onnx" and card.files["int8-cpu"] == "model.int8-cpu.onnx"
    trt, cpu = onnx.load(str(package / "model.int8.onnx")), onnx.load(str(package / "model.int8-cpu.onnx"))

    def zero_points(model, op):
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
        return [inits[n.input[2]] for n in model.graph.node if n.op_type == op and len(n.input) > 2]

    q_trt = zero_points(trt, "QuantizeLinear")
    assert q_trt and all(zp.dtype == np.int8 and not zp.any() for zp in q_trt)  # symmetric INT8
    q_cpu = zero_points(cpu, "QuantizeLinear")
    assert q_cpu and all(zp.dtype == np.uint8 for zp in q_cpu)  # U8S8

    def quantized_convs(model):
        """Per Conv in graph order: whether it reads dequantized data and weights."""
        dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        return [n.input[0] in dq and n.input[1] in dq for n in model.graph.node if n.op_type == "Conv"]

    # Both forms keep their first convolution in float (real night frames lost 2.3 points to it in the TensorRT
    # form, 5.1 in the CPU form); every later convolution is quantized in both.
    convs_trt, convs_cpu = quantized_convs(trt), quantized_convs(cpu)
    assert not convs_trt[0] and not convs_cpu[0]
    assert len(convs_trt) > 1 and all(convs_trt[1:]) and all(convs_cpu[1:])
    for info in report["quantization"]:
        assert any(k.startswith("first convolution") for k in info["kept_float"]), info
    # Recurrent layers stay in float: nothing quantized feeds from an LSTM.
    assert {n.op_type for n in trt.graph.node} >= ({"LSTM"} if card.task == "sequence" else set())
    results = report["results"]
    forms = {"fp32", "fp16", "int8", "int8-cpu"}
    if card.task == "sequence":  # the step graph the edge runs is calibrated and judged in every form too
        forms |= {f"step:{k}" for k in forms}
        assert set(card.step.files) == {"fp32", "fp16", "int8", "int8-cpu"}
        step_trt = onnx.load(str(package / card.step.files["int8"]))
        assert zero_points(step_trt, "QuantizeLinear") and "LSTM" in {n.op_type for n in step_trt.graph.node}
        assert results["step:fp32"]["top1_agreement_with_fp32"] == 1.0  # chained, it is the full graph
        assert set(report["gate"]["checked"]) == {"int8", "int8-cpu", "step:int8", "step:int8-cpu"}
    assert set(results) == forms
    # A model trained for seconds has many answers near a class boundary, and how many differs between machines
    # (float rounding changes its training): 0.88-1.0 seen. Broken quantization agrees at chance (1/6-1/7).
    for precision in forms - {"fp32"}:
        assert results[precision]["top1_agreement_with_fp32"] >= 0.75, precision
    if card.task == "frame":
        assert "unknown_rate" in results["int8"]
    assert (package / "report.md").read_text().count("|") > 20


@pytest.mark.slow
def test_gate_fails_a_bad_calibration(frame_package, tiny_frame_run, tmp_path):
    """Calibrating on four blank frames (a capped lens) clips every real activation: the gate must refuse."""
    package = tmp_path / "pkg"
    shutil.copytree(frame_package, package)
    ds = ShardedDataset.open(tiny_frame_run.parent / "train")
    arrays = ds.load()
    bad = tmp_path / "capped"
    bad.mkdir()
    shard = write_shard(
        bad, 0, {"images": np.zeros_like(arrays["images"][:4]), "labels": arrays["labels"][:4]}, [{}] * 4
    )
    write_manifest(bad, task="frame", classes=ds.classes, shards=[shard], arrays={"images": {}, "labels": {}})
    with pytest.raises(GateError, match=r"int8 loses [\d.]+ accuracy points"):
        calibrate_package(package, bad, ["tensorrt"], size=4, eval_data=tiny_frame_run.parent / "test")
    report = json.loads((package / "report.json").read_text())
    assert report["gate"]["failures"] and report["results"]["int8"]["accuracy_delta_points"] < -1.0
    # The failed form is not in the card, so a deployment asking for it is refused by name at start-up.
    from skyedge.edge.package import PackageError, open_package

    assert "int8" not in read_card(package).files and report["gate"]["withheld_from_card"] == ["int8"]
    assert "Left out of the card" in (package / "report.md").read_text()
    with pytest.raises(PackageError, match=r"has no int8 .*calibration gate withheld int8 .*--allow-drop"):
        open_package(package, "int8", "tensorrt")
    # The CLI says it with exit status 3, and --allow-drop ships anyway.
    from skyedge.cli import main

    args = ["calibrate", str(package), "--data", str(bad), "--eval", str(tiny_frame_run.parent / "test"), "--size", "4"]
    assert main(args) == 3
    assert "int8" not in read_card(package).files
    assert main([*args, "--allow-drop"]) == 0
    assert read_card(package).files["int8"] == "model.int8.onnx"


def test_a_sites_labelled_folder_calibrates_and_judges_int8(frame_package, tiny_frame_run, tmp_path):
    """A site's labelled folder (DIR/<class>/<frame>, what `skyedge label` writes) is read as the shards are: the same
    frames give the same model inputs and labels, and it can be calibrated on and held out; a class the model does not
    know is refused, naming the folder."""
    import cv2

    from skyedge.dataset_inputs import load_labelled_inputs
    from skyedge.shards import DatasetError

    card = read_card(frame_package)
    ds = ShardedDataset.open(tiny_frame_run.parent / "test")
    arrays = ds.load()
    site = tmp_path / "labelled"
    for i, (image, label) in enumerate(zip(arrays["images"], arrays["labels"], strict=True)):
        (site / ds.classes[label]).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(site / ds.classes[label] / f"{i:04d}.png"), image)
    (site / ds.classes[0] / "._0000.png").write_bytes(b"Mac resource fork")  # not a frame
    from_shards = load_labelled_inputs(tiny_frame_run.parent / "test", card, package=frame_package)
    from_folder = load_labelled_inputs(site, card, package=frame_package)
    order = np.argsort([ds.classes[k] + f"/{i:04d}" for i, k in enumerate(arrays["labels"])], kind="stable")
    name = next(iter(from_folder.inputs))
    np.testing.assert_array_equal(from_folder.labels, from_shards.labels[order])
    np.testing.assert_array_equal(from_folder.inputs[name], from_shards.inputs[name][order])
    package = tmp_path / "pkg"
    shutil.copytree(frame_package, package)
    report = calibrate_package(package, [site], ["cpu"], size=16, eval_data=[site], allow_drop=True)
    assert report["calibration"]["items"] == 16 and report["held_out"]["items"] == len(arrays["labels"])
    (site / "comet").mkdir()
    assert cv2.imwrite(str(site / "comet" / "x.png"), arrays["images"][0])
    with pytest.raises(DatasetError, match=r"labelled: classes \['comet'\]"):
        load_labelled_inputs(site, card, package=frame_package)


@pytest.mark.slow
def test_several_data_folders_are_one_pool(frame_package, tiny_frame_run, tmp_path):
    """One folder per camera: calibration and its held-out set may span several (``--data A --data B``)."""
    from skyedge.dataset_inputs import load_labelled_inputs

    card = read_card(frame_package)
    test, train = tiny_frame_run.parent / "test", tiny_frame_run.parent / "train"
    a = load_labelled_inputs(test, card, package=frame_package)
    b = load_labelled_inputs(train, card, package=frame_package)
    both = load_labelled_inputs([test, train], card, package=frame_package)
    assert len(both) == len(a) + len(b) and len(both.strata) == len(both)
    np.testing.assert_array_equal(both.labels, np.concatenate([a.labels, b.labels]))
    name = next(iter(both.inputs))
    np.testing.assert_array_equal(both.inputs[name][len(a) :], b.inputs[name])
    package = tmp_path / "pkg"
    shutil.copytree(frame_package, package)
    report = calibrate_package(package, [test, train], ["cpu"], size=32, eval_data=[test], allow_drop=True)
    assert report["calibration"]["source"] == f"{test}, {train}" and report["held_out"]["items"] == len(a)


@pytest.mark.slow
def test_tensorrt_form_is_checked_in_its_own_arithmetic(frame_package):
    """ONNX Runtime must not fuse the TensorRT form's Q/DQ into x86 integer kernels: they saturate 16-bit sums
    (AVX2 without VNNI), which TensorRT does not, and cost the all-sky model 10.7 points in a check it passes."""
    import onnxruntime as ort

    from skyedge.precisions import ort_session

    path = frame_package / "model.int8.onnx"
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"])
    checked = ort_session(path)
    spec = reference.get_inputs()[0]
    shape = [d if isinstance(d, int) else 4 for d in spec.shape]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    names = [o.name for o in reference.get_outputs()]
    for got, want in zip(checked.run(names, {spec.name: x}), reference.run(names, {spec.name: x}), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_reduce_range_keeps_the_cpu_forms_weights_to_7_bits(tmp_path):
    """``--reduce-range`` (CPUs without VNNI) quantizes the CPU form's weights into 7 bits; full range otherwise;
    the TensorRT form refuses it."""
    from onnx import TensorProto, numpy_helper
    from stub_packages import frame_package as stub_package

    from skyedge.calibration.quantize import quantize

    package = stub_package(tmp_path / "pkg", size=32)
    inputs = {"image": np.random.default_rng(0).normal(size=(16, 1, 32, 32)).astype(np.float32)}
    peaks = {}
    for reduce in (False, True):
        out = tmp_path / f"cpu-{reduce}.onnx"
        info = quantize(package / "model.onnx", out, inputs, "cpu", reduce_range=reduce)
        weights = [numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer if t.data_type == TensorProto.INT8]
        assert weights, "no int8 weights in the CPU form"
        peaks[reduce] = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        assert info["weights"].endswith("(7-bit range)") == reduce
    assert peaks[True] <= 64 < peaks[False]
    with pytest.raises(ValueError, match="reduce_range"):
        quantize(package / "model.onnx", tmp_path / "trt.onnx", inputs, "tensorrt", reduce_range=True)


def test_the_cpu_form_has_7_bit_weights_unless_full_range_is_asked_for(frame_package, tiny_frame_run, tmp_path, capsys):
    """`skyedge calibrate --target cpu` writes 7-bit weights by default (as fast, and they cannot saturate on an x86
    CPU without VNNI); `--full-range` writes 8-bit ones, the record says which, and on such a CPU the command then
    notes the risk."""
    from skyedge.cli import main
    from skyedge.cpu_int8 import full_range, recorded_weights, x86_without_vnni

    package = tmp_path / "pkg"
    shutil.copytree(frame_package, package)
    test = str(tiny_frame_run.parent / "test")
    common = ["calibrate", str(package), "--data", test, "--eval", test, "--target", "cpu", "--size", "16", "--allow-drop"]
    records = {}
    for flags in ([], ["--reduce-range"], ["--full-range"]):
        assert main(common + flags) == 0
        records[" ".join(flags)] = recorded_weights(package, "model.int8-cpu.onnx")
        assert full_range(package, "model.int8-cpu.onnx") is (flags == ["--full-range"])
        noted = "can saturate" in capsys.readouterr().err
        assert noted is (flags == ["--full-range"] and x86_without_vnni())
    assert records[""] == records["--reduce-range"] == "int8 symmetric per-channel (7-bit range)"
    assert records["--full-range"] == "int8 symmetric per-channel"
    with pytest.raises(SystemExit):
        main(common + ["--full-range", "--reduce-range"])  # one or the other


@pytest.mark.parametrize("target", ["cpu", "tensorrt"], ids=["u8s8-form", "symmetric-form"])  # not a `tensorrt` id: that marks it
def test_the_arithmetic_making_the_first_convolutions_input_stays_in_float(tmp_path, target):
    """A step graph's difference channel (a stamp minus the mean of the epochs before, from a sum carried in and out)
    is made before the first convolution: rounded to 8 bits, a difference of near-equal values loses its digits and a
    carried sum its epochs (the transients recipe's step graph lost 3.6 points in the CPU form). Neither form
    quantizes it; the convolutions after the first one are quantized in both."""
    from onnx import TensorProto, helper, numpy_helper

    from skyedge.calibration.quantize import quantize

    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=(4, 4, 3, 3))
    nodes = [
        helper.make_node("Add", ["sum_in", "stamp"], ["sum_out"], name="carry"),
        helper.make_node("Div", ["sum_in", "count"], ["mean"], name="mean"),
        helper.make_node("Sub", ["stamp", "mean"], ["difference"], name="difference"),
        helper.make_node("Concat", ["stamp", "difference"], ["channels"], name="channels", axis=1),
        helper.make_node("Conv", ["channels", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["embedding"], name="flatten"),
    ]
    shape = ["N", 1, 8, 8]
    graph = helper.make_graph(
        nodes,
        "step",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("stamp", "sum_in")]
        + [helper.make_tensor_value_info("count", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("sum_out", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(w.astype(np.float32), n) for w, n in ((w1, "w1"), (w2, "w2"))],
    )
    fp32 = tmp_path / "step.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
    sky = rng.normal(100.0, 1.0, size=(16, 1, 8, 8)).astype(np.float32)  # near-equal values: what a sky gives
    inputs = {"stamp": sky, "sum_in": 5 * sky + rng.normal(size=sky.shape).astype(np.float32), "count": np.array([5.0], np.float32)}
    info = quantize(fp32, tmp_path / f"{target}.onnx", inputs, target)
    model = onnx.load(str(tmp_path / f"{target}.onnx"))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    reads = {n.name: [i in dequantized for i in n.input] for n in model.graph.node}
    for name in ("carry", "mean", "difference", "channels", "stem"):
        assert not any(reads[name]), (name, reads[name])
    assert reads["conv2"][:2] == [True, True]
    assert "first convolution (stem)" in info["kept_float"]


def test_a_cpu_form_the_gate_withheld_gives_way_to_the_tensorrt_form_saying_so(tmp_path, caplog):
    """On ONNX Runtime `precision: int8` runs the U8S8 file; when the gate left it out of the card (it lost accuracy)
    and the TensorRT form passed, that one runs instead (right, slower on a CPU) and the log says why."""
    import logging

    from stub_packages import frame_package as stub_package

    from skyedge.edge.package import PackageError, open_package
    from skyedge.model_card import write_card

    package = stub_package(tmp_path / "pkg")
    shutil.copy(package / "model.onnx", package / "model.int8.onnx")
    card = read_card(package).model_dump(mode="json")
    card["files"]["int8"] = "model.int8.onnx"
    write_card(card, package)
    verdict = "FAILED: int8-cpu loses 3.6 accuracy points against FP32 (bound 1)"
    gate = {"verdict": verdict, "withheld_from_card": ["int8-cpu"]}
    (package / "report.json").write_text(json.dumps({"gate": gate}))
    with caplog.at_level(logging.WARNING, logger="skyedge.edge.package"):
        opened = open_package(package, "int8", "onnxruntime")
    assert opened.key == "int8" and opened.onnx_file.name == "model.int8.onnx"
    assert "withheld int8-cpu" in caplog.text and "3.6 accuracy points" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skyedge.edge.package"):
        assert open_package(package, "int8", "tensorrt").key == "int8"
    assert "withheld" not in caplog.text  # TensorRT runs its own form: nothing gave way
    with pytest.raises(PackageError, match="has no fp16"):
        open_package(package, "fp16", "onnxruntime")
