"""A pipeline's ``views: 4``: the model sees each frame in its four quarter turns and its answers are averaged, so
that a camera's answer does not depend on how it is mounted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edge_helpers import messages, write_config

from skyedge.cli import main
from skyedge.edge.allsky.views import merge, spread


def test_a_map_turned_with_its_views_comes_back_on_the_frames_own_cells():
    """Identity as the 'model': each view's map is the view itself; turned back and averaged, it is the frame."""
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    views = spread(x, 4, "NCHW")
    assert views.shape == (12, 2, 8, 8) and np.array_equal(views[5], np.rot90(x[1], 1, axes=(1, 2)))
    merged = merge({"map": views, "score": views.sum(axis=(1, 2, 3))}, 4, maps=("map",))
    assert np.allclose(merged["map"], x, atol=1e-6)
    assert np.allclose(merged["score"], x.sum(axis=(1, 2, 3)), atol=1e-4)  # a sum does not care how it is turned
    assert spread(x, 1, "NCHW") is x and merge({"map": x}, 1)["map"] is x


def _run(tmp_path, package, files, views: int, script=None) -> dict[str, dict]:
    incoming, log = tmp_path / f"in-{views}-{bool(script)}", tmp_path / f"r-{views}-{bool(script)}.jsonl"
    incoming.mkdir()
    for name, data in files.items():
        from astropy.io import fits

        fits.PrimaryHDU(data).writeto(incoming / name)
    extra = {"script": script} if script else {}
    cfg = write_config(
        tmp_path / f"e-{views}.yaml", package, {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}}, pipeline={"views": views, "stars": None}, **extra,
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    return {m["frame_id"]: m for m in messages(log, "classification")}


@pytest.fixture(scope="module")
def mapped_package(tmp_path_factory):
    """The stub frame package (a fixed random projection: not at all indifferent to turns) with a cloud map."""
    from stub_packages import frame_package

    return frame_package(tmp_path_factory.mktemp("views") / "pkg", cloud_map=True)


def test_four_views_answer_a_frame_and_the_frame_turned_alike(mapped_package, camera_frames, tmp_path):
    from astropy.io import fits

    frame = fits.getdata(camera_frames[3]).astype(np.float32)
    files = {"as-mounted.fits": frame, "turned.fits": np.ascontiguousarray(np.rot90(frame))}
    one, four = _run(tmp_path, mapped_package, files, 1), _run(tmp_path, mapped_package, files, 4)
    p = {k: np.array(list(m["probabilities"].values())) for k, m in four.items()}
    assert np.allclose(p["as-mounted.fits"], p["turned.fits"], atol=1e-5)
    q = {k: np.array(list(m["probabilities"].values())) for k, m in one.items()}
    assert not np.allclose(q["as-mounted.fits"], q["turned.fits"], atol=1e-3)  # one view cares how it is turned
    # The stub's map (each block's brightness) turns with the frame, so turned back, four views read as one.
    sectors = [np.array(m["as-mounted.fits"]["cloud_map"]["sectors"], dtype=float) for m in (four, one)]  # null -> nan
    assert np.isfinite(sectors[1]).sum() >= 8 and np.allclose(*sectors, atol=1e-3, equal_nan=True)
    assert four["as-mounted.fits"]["cloud_cover"] == pytest.approx(four["turned.fits"]["cloud_cover"], abs=0.05)


def test_each_view_is_one_answer_of_the_backend_and_they_are_averaged(stub_frame_package, camera_frames, tmp_path):
    from astropy.io import fits

    got = _run(tmp_path, stub_frame_package, {"f.fits": fits.getdata(camera_frames[0])}, 4, script=["cloudy", "clear", "clear", "clear"])
    m = got["f.fits"]
    # Scripted: 0.9 for the named class, 0.1 shared by the five others; three views of four say clear.
    assert m["class"] == "clear" and m["probabilities"]["clear"] == pytest.approx((3 * 0.9 + 0.02) / 4, abs=1e-5)


def test_views_need_a_square_model_input(tmp_path, camera_frames):
    from stub_packages import frame_package

    from skyedge.edge.config import StartupError, load_edge_config
    from skyedge.edge.runtime.lifecycle import Runtime

    package = frame_package(tmp_path / "pkg")
    card = json.loads((package / "skyedge.json").read_text())
    card["inputs"][0]["shape"][-1] = 48  # a wide input, as a card might declare it
    (package / "skyedge.json").write_text(json.dumps(card))
    source = {"kind": "directory", "path": str(tmp_path), "settle_s": 0}
    cfg = write_config(tmp_path / "e.yaml", package, source, {"jsonl": {"path": str(tmp_path / "r.jsonl")}}, pipeline={"views": 4}, script=["clear"])
    with pytest.raises(StartupError, match="views: 4 needs a square model input"):
        Runtime(load_edge_config(cfg), once=True)


def test_a_telescope_field_refuses_views(stub_sequence_package, tmp_path):
    """Turning applies to all-sky frames; a field pipeline asked for views says so at start, naming the key."""
    from skyedge.edge.config import StartupError, load_edge_config
    from skyedge.edge.runtime.lifecycle import Runtime

    frames = tmp_path / "frames"
    frames.mkdir()
    source = {"kind": "fits-sequence", "path": str(frames), "settle_s": 0}
    cfg = write_config(tmp_path / "scope.yaml", stub_sequence_package, source, {"jsonl": {"path": str(tmp_path / "r.jsonl")}}, camera="field-a", pipeline={"views": 4})
    with pytest.raises(StartupError, match=r"pipelines\[field-a\]\.views"):
        Runtime(load_edge_config(cfg), once=True)
