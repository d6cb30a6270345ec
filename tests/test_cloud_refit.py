"""The cloud head fitted afresh on a trained backbone (frame_model.cloud_refit), and the spatial head."""

import numpy as np
import pytest
import torch

from skyedge.training.cloud_refit import frame_weights, refit_cloud_head
from skyedge.training.models.frame import FrameEmbedder

ARGS = {"backbone": "efficientnet_lite0", "in_channels": 1, "size": 64, "embedding_dim": 4, "num_classes": 3, "pretrained": True}


def _half_clouded(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of noise with a bright band (cloud) over a random one of the four halves, and their model-grid truth
    (N, 2, 64, 64: cloud x known, known)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, (n, 1, 64, 64)).astype(np.float32)
    cloud = np.zeros((n, 64, 64), np.float32)
    for i in range(n):
        side = rng.integers(4)
        region = [np.s_[:32, :], np.s_[32:, :], np.s_[:, :32], np.s_[:, 32:]][side]
        cloud[i][region] = 1.0
    x[:, 0] += 2.0 * cloud
    truth = np.stack([cloud, np.ones_like(cloud)], axis=1)
    return torch.from_numpy(x), torch.from_numpy(truth)


def _cells_right(net: FrameEmbedder, x: torch.Tensor, truth: torch.Tensor) -> float:
    with torch.no_grad():
        _, cloud = net.eval()(x, with_cloud=True)
    target = torch.nn.functional.adaptive_avg_pool2d(truth[:, :1], cloud.shape[-2:])
    return float(((cloud >= 0.5) == (target >= 0.5)).float().mean())


def test_every_source_and_every_frame_in_it_weighs_alike():
    """A source of three fully known frames and one of a single frame with half its sky known carry the same total
    weight; within a source, a frame's known cells share its weight."""
    known = torch.ones(4, 1, 4, 4)
    known[3, :, :, :2] = 0.0
    w = frame_weights(known, np.array([0, 0, 0, 1]))
    per_source = [float((w[:3] * known[:3].flatten(1).sum(1)).sum()), float(w[3] * known[3].sum())]
    assert per_source[0] == pytest.approx(per_source[1])
    assert float(w[0]) == pytest.approx(float(w[2]))


@pytest.mark.parametrize("head", ["pointwise", "spatial"])
def test_a_refitted_head_learns_the_map_and_leaves_the_classifier_alone(head):
    """A head left at random (trained with the classifier as pointwise, refitted as ``head``) learns where the cloud
    is from the backbone's features alone; the embedding (what the classifier reads) is the same before and after."""
    torch.manual_seed(0)
    net = FrameEmbedder(**ARGS, cloud_map=True)
    x, truth = _half_clouded(48)
    before = _cells_right(net, x, truth)
    with torch.no_grad():
        z_before = net.eval()(x[:4])
    stats = refit_cloud_head(net, x, truth, np.repeat([0, 1], 24), epochs=60, seed=0, kind=head)
    assert net.cloud.kind == head
    test_x, test_truth = _half_clouded(24, seed=1)
    assert stats["frames"] == 48 and stats["sources"] == 2 and stats["loss_after"] < stats["loss_before"]
    assert _cells_right(net, test_x, test_truth) >= 0.9 > before
    with torch.no_grad():
        assert torch.equal(net.eval()(x[:4]), z_before)


def test_frames_without_truth_are_left_out_and_none_at_all_is_refused():
    torch.manual_seed(0)
    net = FrameEmbedder(**ARGS, cloud_map=True)
    x, truth = _half_clouded(8)
    truth[4:] = 0.0  # no truth: a frame that only teaches the classifier
    assert refit_cloud_head(net, x, truth, np.zeros(8), epochs=1, seed=0)["frames"] == 4
    with pytest.raises(ValueError, match="cloud_refit: no training frame has cloud truth"):
        refit_cloud_head(net, x, torch.zeros_like(truth), np.zeros(8), epochs=1, seed=0)


def test_the_spatial_head_exports_and_passes_the_tensorrt_table(tmp_path):
    """The spatial head in the exported graph: ONNX Runtime reads the same map as torch, and the graph passes the
    TensorRT support table like the rest."""
    import onnxruntime as ort

    from skyedge.export.onnx_export import export_onnx
    from skyedge.export.trt_compat import check_tensorrt
    from skyedge.training.models.frame import frame_classifier

    torch.manual_seed(0)
    model = frame_classifier(**ARGS, cloud_map=True, cloud_head="spatial").eval()
    inputs, outputs = model.card_io()
    path = tmp_path / "model.onnx"
    export_onnx(model, {"task": "frame", "inputs": inputs, "outputs": outputs}, path)
    check_tensorrt(path)
    x, _ = _half_clouded(2)
    with torch.no_grad():
        want = model(x)[-1].numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["cloud_map"], {"image": x.numpy()})[0]
    assert got.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_spatial_head_or_a_refit_needs_a_cloud_map():
    """A head kind or a refit without a cloud map is refused, naming the key."""
    from skyedge.training.config import FrameModel

    with pytest.raises(ValueError, match="need frame_model.cloud_map"):
        FrameModel(cloud_head="spatial")
    with pytest.raises(ValueError, match="need frame_model.cloud_map"):
        FrameModel(cloud_refit={"epochs": 10})
    model = FrameModel(cloud_map=True, cloud_refit={"epochs": 10})
    assert model.cloud_refit.epochs == 10 and model.cloud_refit.head == "spatial" and model.cloud_head == "pointwise"


def test_a_recipe_with_a_refit_trains_records_it_and_rebuilds_the_refitted_head(tmp_path):
    """A recipe trained with a pointwise head and ``cloud_refit`` (a spatial head) keeps the spatial head in its
    checkpoint, records the refit in its metrics, and loads again as a run."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import recipe

    from skyedge.training.checkpoint import load_run
    from skyedge.training.config import TrainConfig
    from skyedge.training.train import run_training

    cfg = recipe(
        tmp_path,
        "frame",
        frame_model={
            "backbone": "efficientnet_lite0",
            "cloud_map": True,
            "cloud_refit": {"epochs": 2},
            "loss": "cross_entropy",
            "embedding_dim": 8,
        },
        train={"epochs": 1, "batch_size": 32, "lr": 0.003, "threads": 2},
    )
    spec = cfg.model_dump()
    spec["data"]["train"]["simulate"]["n"], spec["data"]["test"]["simulate"]["n"] = 60, 30
    run = run_training(TrainConfig.model_validate(spec))
    refit = json.loads((run / "metrics.json").read_text())["cloud_refit"]
    assert refit["frames"] == 48 and refit["epochs"] == 2 and refit["sources"] == 1
    loaded = load_run(run)
    assert loaded.model.embedder.cloud.kind == "spatial" and loaded.model_args["cloud_head"] == "spatial"
