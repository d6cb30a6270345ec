"""`skyedge adapt` refits the cloud-map head too: from frame labels, in every precision file, without torch.

The package is a stub (tests/stub_packages.py) whose cloud head reads three features per block and ships reading
a rough (starry) sky as cloudy: wrong on purpose. The labelled frames are drawn here: clear skies are noise and
stars, overcast skies smooth. Nothing is trained, so these tests run in the fast tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from stub_packages import frame_package

from skyedge.cli import main
from skyedge.model_card import read_card, write_card
from skyedge.precisions import BY_KEY
from skyedge.preprocess import prepare_frame
from skyedge.shards import sha256_file

SIZE = 64


def _sky(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A 96 px 8-bit frame: 'clear' dark noise with stars, 'cloudy' a smooth bright field."""
    if kind == "clear":
        img = rng.normal(30, 6, (96, 96))
        ys, xs = rng.integers(0, 96, (2, 40))
        img[ys, xs] = 220
    else:
        img = cv2.GaussianBlur(rng.normal(0, 1, (96, 96)), (0, 0), 12)
        img = 120 + 60 * img / (np.abs(img).max() + 1e-9) + np.linspace(0, 40, 96)[None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def _labelled(folder: Path, counts: dict[str, str | int], seed: int) -> Path:
    """``folder/<class>/`` with ``counts[class]`` frames; clear and moon frames are clear skies, cloudy and others
    overcast."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            kind = "clear" if name in ("clear", "moon") else "cloudy"
            cv2.imwrite(str(folder / name / f"{name}-{i:02d}.png"), _sky(kind, rng))
    return folder


@pytest.fixture(scope="module")
def map_package(tmp_path_factory) -> Path:
    """The stub with a cloud head and head statistics, in all four precision files (FP16 and both INT8 forms
    written by skyedge's own converters)."""
    from skyedge.calibration.quantize import quantize
    from skyedge.export.fp16 import convert_fp16

    root = tmp_path_factory.mktemp("map-pkg")
    out = frame_package(root / "pkg", size=SIZE, cloud_head=True, statistics=True)
    card = read_card(out)
    rng = np.random.default_rng(1)
    calib = np.stack([prepare_frame(_sky(k, rng), card.preprocess) for k in ["clear", "cloudy"] * 8])
    convert_fp16(out / "model.onnx", out / BY_KEY["fp16"].file)
    for key in ("int8", "int8-cpu"):
        quantize(out / "model.onnx", out / BY_KEY[key].file, {"image": calib}, BY_KEY[key].calibration_target)
    files = {key: BY_KEY[key].file for key in ("fp32", "fp16", "int8", "int8-cpu")}
    card = card.model_copy(update={"files": files, "sha256": {**card.sha256, **{f: sha256_file(out / f) for f in files.values()}}})
    write_card(card, out)
    return out


def _maps(package: Path, folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per precision file, per class folder: the cloud maps' mean over each frame's sky."""
    card = read_card(package)
    out = {}
    for key, file in card.files.items():
        session = ort.InferenceSession(str(package / file), providers=["CPUExecutionProvider"])
        out[key] = {}
        for d in sorted(p for p in folder.iterdir() if p.is_dir()):
            x = np.stack([prepare_frame(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), card.preprocess) for f in sorted(d.iterdir())])
            out[key][d.name] = session.run(["cloud_map"], {"image": x})[0].mean(axis=(1, 2, 3))
    return out


def test_adapt_refits_the_cloud_head_in_every_precision_file(map_package, tmp_path, capsys):
    data = _labelled(tmp_path / "labelled", {"clear": 5, "moon": 4, "cloudy": 5}, seed=3)
    unseen = _labelled(tmp_path / "unseen", {"clear": 6, "cloudy": 6}, seed=4)
    before = _maps(map_package, unseen)
    assert before["fp32"]["clear"].mean() > before["fp32"]["cloudy"].mean()  # shipped reading stars as cloud
    out = tmp_path / "adapted"
    assert main(["adapt", str(map_package), "--data", str(data), "--out", str(out), "--refit-map-head"]) == 0
    assert "cloud map: refitted; frames on their side of the limit (balanced): shipped" in capsys.readouterr().out
    report = json.loads((out / "adapt.json").read_text())["cloud_map"]
    assert report["refitted"] and report["frames"] == {"clear_side": 9, "cloudy": 5, "painted": 0}
    assert report["before"]["on_the_right_side_of_the_limit"] <= 0.5
    after_cv = report["after_cross_validated"]
    assert after_cv["on_the_right_side_of_the_limit"] >= 0.8 and after_cv["clear_side_cover_median"] < 10 < after_cv["cloudy_cover_median"]
    assert set(report["mean_difference_from_fp32"]) == {"fp32", "fp16", "int8", "int8-cpu"}
    after = _maps(out, unseen)
    for key, maps in after.items():  # frames adapt never saw: every file now reads the overcast as cloud
        assert maps["clear"].max() < 0.2 < 0.4 < maps["cloudy"].min(), (key, maps)  # corners outside the sky too
        assert np.abs(maps["clear"] - after["fp32"]["clear"]).max() < 0.05, key
    assert "Cloud map refitted. On 9 clear or moonlit and 5 cloudy frames" in (out / "adapt.md").read_text()
    assert read_card(out).sha256 == {f: sha256_file(out / f) for f in read_card(out).sha256}
    # An adapted package adapts again: its own head is found and read (and reads these frames well as shipped).
    assert main(["adapt", str(out), "--data", str(data), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "adapt.json").read_text())["cloud_map"]
    assert not again["refitted"] and again["before"]["balanced"] >= 0.9


def test_by_default_and_with_too_few_frames_the_map_stays_as_shipped(map_package, tmp_path, capsys):
    data = _labelled(tmp_path / "labelled", {"clear": 4, "cloudy": 4}, seed=5)
    unseen = _labelled(tmp_path / "unseen", {"clear": 3, "cloudy": 3}, seed=6)
    before = _maps(map_package, unseen)
    kept = tmp_path / "kept"
    assert main(["adapt", str(map_package), "--data", str(data), "--out", str(kept)]) == 0
    assert "cloud map: not refitted (kept as shipped; --refit-map-head" in " ".join(capsys.readouterr().out.split())
    report = json.loads((kept / "adapt.json").read_text())["cloud_map"]
    # Not written, but compared: the shipped head reads these frames worse than a refit would.
    assert report["refitted"] is False and "--refit-map-head" in report["why"]
    assert report["before"]["balanced"] < report["after_cross_validated"]["balanced"]
    assert "Cloud map: not refitted (kept as shipped" in (kept / "adapt.md").read_text()
    for key, maps in _maps(kept, unseen).items():
        for name, values in maps.items():
            assert np.allclose(values, before[key][name], atol=1e-5), (key, name)
    # Clear frames only (the day class stands in for another labelled class): no cloudy side to fit.
    few = _labelled(tmp_path / "few", {"clear": 4, "day": 3}, seed=7)
    out = tmp_path / "few-out"
    assert main(["adapt", str(map_package), "--data", str(few), "--out", str(out)]) == 0
    report = json.loads((out / "adapt.json").read_text())["cloud_map"]
    assert report["refitted"] is False and "cloudy 0" in report["why"] and "at least 3" in report["why"]
    assert "not refitted" in (out / "adapt.md").read_text()


def test_a_package_without_a_cloud_map_or_head_says_so(tmp_path):
    package = frame_package(tmp_path / "pkg", size=SIZE, statistics=True)
    data = _labelled(tmp_path / "labelled", {"clear": 3, "cloudy": 3}, seed=8)
    assert main(["adapt", str(package), "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "adapt.json").read_text())["cloud_map"]
    assert report == {"refitted": False, "why": "the package has no cloud map"}
    # A map from a head adapt cannot find (no convolution reading '*cloud.net.0.weight'): said, the rest adapts.
    other = frame_package(tmp_path / "other", size=SIZE, cloud_map=True, statistics=True)
    assert main(["adapt", str(other), "--data", str(data), "--out", str(tmp_path / "other-out"), "--refit-map-head"]) == 0
    report = json.loads((tmp_path / "other-out" / "adapt.json").read_text())["cloud_map"]
    assert not report["refitted"] and "model.onnx: no cloud head in this graph" in report["why"]


def test_the_map_refit_imports_no_torch(map_package, tmp_path):
    """Run in a fresh interpreter where importing torch fails, as on a Jetson without it."""
    import subprocess
    import sys

    data = _labelled(tmp_path / "labelled", {"clear": 3, "cloudy": 3}, seed=9)
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "from skyedge.edge.labelling.adapt import adapt_package\n"
        f"r = adapt_package({str(map_package)!r}, {str(data)!r}, {str(tmp_path / 'out')!r}, refit_map_head=True)\n"
        "assert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "print('refitted', r['cloud_map']['refitted'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refitted True" in result.stdout


def test_the_refit_is_placed_for_the_pipelines_own_limit(map_package, tmp_path, capsys):
    data = _labelled(tmp_path / "labelled", {"clear": 4, "cloudy": 4}, seed=10)
    args = ["adapt", str(map_package), "--data", str(data), "--refit-map-head"]
    assert main([*args, "--out", str(tmp_path / "out"), "--cloud-map-max-cover", "40", "--cloud-map-zenith-deg", "54"]) == 0
    report = json.loads((tmp_path / "out" / "adapt.json").read_text())["cloud_map"]
    assert report["check"] == {"cloud_map_max_cover": 40.0, "cloud_map_zenith_deg": 54.0}
    after = report["after_cross_validated"]
    assert after["on_the_right_side_of_the_limit"] >= 0.8 and after["clear_side_cover_median"] < 40 < after["cloudy_cover_median"]
    # A limit the pipeline could not hold is refused, naming the field; nothing is written.
    assert main([*args, "--out", str(tmp_path / "bad"), "--cloud-map-max-cover", "150"]) == 2
    assert "cloud_map_max_cover" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def _half_cloudy(rng: np.random.Generator) -> np.ndarray:
    """Overcast on the left half, a starry clear sky on the right."""
    img = _sky("clear", rng)
    img[:, :48] = _sky("cloudy", rng)[:, :48]
    return img


def _paint(frame: Path, left: int, right: int) -> None:
    """A painted mask beside ``frame``: grey levels ``left`` and ``right`` on its halves, a not-judged strip between."""
    mask = np.full((96, 96), right, np.uint8)
    mask[:, :48] = left
    mask[:, 44:52] = 128
    cv2.imwrite(str(frame.with_name(frame.stem + ".cloud.png")), mask)


def test_painted_cloud_gives_a_map_that_reads_cloud_fraction(map_package, tmp_path, capsys):
    data = _labelled(tmp_path / "labelled", {"clear": 4, "cloudy": 4}, seed=11)
    rng = np.random.default_rng(12)
    for i in range(4):  # partly cloudy skies, filed as cloudy: only their masks say where the cloud is
        cv2.imwrite(str(data / "cloudy" / f"half-{i}.png"), _half_cloudy(rng))
    for frame in sorted((data / "clear").iterdir()):
        _paint(frame, 0, 0)
    for frame in sorted((data / "cloudy").iterdir()):
        _paint(frame, 255, 255 if frame.stem.startswith("cloudy") else 0)
    out = tmp_path / "out"
    assert main(["adapt", str(map_package), "--data", str(data), "--out", str(out), "--refit-map-head"]) == 0
    adapted = json.loads((out / "adapt.json").read_text())
    report = adapted["cloud_map"]
    assert adapted["frames"] == 12  # the masks are not frames
    assert report["refitted"] and report["frames"]["painted"] == 12 and report["bias_shift"] == 0.0
    assert report["scale"].startswith("cloud fraction")
    error = report["painted_cover_error_points"]
    assert error["after_cross_validated"] < 15 < error["before"]
    assert "On the painted frames, the map's cover against the painted cover" in (out / "adapt.md").read_text()
    assert "12 painted: cover off the painted by" in " ".join(capsys.readouterr().out.split())
    # Frames adapt never saw: the half-cloudy sky's map is cloud on its left and clear on its right.
    card = read_card(out)
    session = ort.InferenceSession(str(out / card.files["fp32"]), providers=["CPUExecutionProvider"])
    unseen = np.stack([prepare_frame(_half_cloudy(rng), card.preprocess) for _ in range(4)])
    maps = session.run(["cloud_map"], {"image": unseen})[0][:, 0]
    h, w = maps.shape[1:]
    middle = maps[:, h // 4 : h - h // 4]  # the rows whose cells are sky on both sides (corners are not)
    assert middle[:, :, : w // 2].mean() > 0.7 and middle[:, :, w // 2 :].mean() < 0.3, middle
    # A mask not of its frame's size is refused, naming it; nothing is written.
    cv2.imwrite(str(data / "clear" / "clear-00.cloud.png"), np.zeros((50, 50), np.uint8))
    assert main(["adapt", str(map_package), "--data", str(data), "--out", str(tmp_path / "bad"), "--refit-map-head"]) == 2
    assert "clear-00.cloud.png: 50x50 pixels, its frame 96x96" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "bad").exists()
