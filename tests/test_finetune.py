"""Fine-tuning: `train --init-from RUN` starts from a run's weights, and sources can be weighted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded
from skyedge.training.loop import oversampled


def _source(weight: float) -> object:
    return TrainConfig.model_validate(
        {"name": "w", "task": "frame", "out": "runs/w", "data": {"train": {"path": "d", "weight": weight}}}
    ).data.train


def test_source_weights_repeat_items_of_that_source():
    data = Loaded([None] * 10, np.zeros(10, dtype=np.int64), ["a"], meta={"source": np.array([0] * 6 + [1] * 4)})
    idx = np.arange(10)
    sources = [_source(1.0), _source(3.0)]
    out = oversampled(idx, data, sources, seed=0)
    assert np.bincount(out, minlength=10).tolist() == [1] * 6 + [3] * 4
    half = oversampled(idx, data, [_source(1.0), _source(2.5)], seed=0)
    assert sum(np.bincount(half, minlength=10)[6:]) in range(8, 13)  # 2 or 3 each, drawn
    assert oversampled(idx, data, _source(1.0), seed=0) is idx  # no weights: untouched
    # An item's own weight (a loader's meta 'weight', e.g. aurora copies of real frames) multiplies its source's.
    data.meta["weight"] = np.array([1.0] * 5 + [2.0] + [1.0] * 3 + [0.5])
    mixed = np.bincount(oversampled(idx, data, sources, seed=0), minlength=10).tolist()
    assert mixed[:5] == [1] * 5 and mixed[5] == 2 and mixed[6:9] == [3] * 3 and mixed[9] in (1, 2)


@pytest.mark.slow
def test_init_from_starts_from_the_parent_weights(tiny_frame_run, tmp_path):
    from tiny_models import recipe

    from skyedge.training.checkpoint import load_run
    from skyedge.training.train import run_training

    parent = load_run(tiny_frame_run)
    # A "site" data set of another camera resolution and classes: the class layer follows by name.
    site_classes = ["clear", "cloudy", "moon", "arc", "day"]  # another order, a class the parent never knew
    config = {"size": 96, "classes": site_classes}
    train = {"path": str(tmp_path / "site"), "simulate": {"n": 40, "seed": 9, "config": config}}
    cfg = recipe(tmp_path, "frame", data={"train": train, "val_fraction": 0.2})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1, "lr": 1e-9})})
    tuned = load_run(
        run_training(cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": tiny_frame_run})}))
    )
    fresh = load_run(run_training(cfg.model_copy(update={"out": tmp_path / "fresh"})))
    key = next(k for k in parent.model.state_dict() if k.startswith("embedder.") and k.endswith("weight"))
    p, t, f = (r.model.state_dict()[key] for r in (parent, tuned, fresh))
    assert torch.allclose(p, t, atol=1e-6)  # lr 1e-9: the tuned network is still the parent's
    assert not torch.allclose(p, f, atol=1e-3)
    assert tuned.card["preprocess"] == parent.card["preprocess"]  # frames prepared as the parent's were
    known, site = parent.card["classes"], tuned.card["classes"]
    assert sorted(site) == sorted(site_classes) and "day" not in known
    for part in ("weight", "bias"):
        mine, theirs = (r.model.state_dict()[f"embedder.logits.{part}"] for r in (parent, tuned))
        for name in ("clear", "cloudy", "moon", "arc"):
            assert torch.allclose(mine[known.index(name)], theirs[site.index(name)], atol=1e-6), (part, name)
    # A different architecture is refused, naming the setting.
    wrong = cfg.model_copy(
        update={
            "out": tmp_path / "wrong",
            "frame_model": cfg.frame_model.model_copy(update={"embedding_dim": 4}),
            "train": cfg.train.model_copy(update={"init_from": tiny_frame_run}),
        }
    )
    with pytest.raises(ValueError, match="embedding_dim"):
        run_training(wrong)


def _recipe_with(**train) -> TrainConfig:
    return TrainConfig.model_validate(
        {"name": "f", "task": "frame", "out": "runs/f", "data": {"train": {"path": "d"}}, "train": train}
    )


def test_freezing_the_backbone_needs_a_parent_and_fits_in_the_epochs():
    with pytest.raises(ValueError, match="freeze_backbone_epochs needs train.init_from"):
        _recipe_with(freeze_backbone_epochs=2)
    with pytest.raises(ValueError, match=r"freeze_backbone_epochs \(5\) exceeds train.epochs \(3\)"):
        _recipe_with(freeze_backbone_epochs=5, epochs=3, init_from="runs/parent")
    assert _recipe_with(freeze_backbone_epochs=3, epochs=3, init_from="runs/parent").train.freeze_backbone_epochs == 3


def test_a_frozen_backbone_holds_its_weights_and_statistics_then_thaws():
    from skyedge.training.loop import fit

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU())
    model = torch.nn.Sequential(backbone, torch.nn.Linear(8, 3))
    x, y = torch.randn(64, 4) * 3 + 1, torch.randint(0, 3, (64,))
    cfg = _recipe_with(epochs=3, freeze_backbone_epochs=2, init_from="runs/parent", batch_size=16, patience=3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def step(net, idx):
        return torch.nn.functional.cross_entropy(net(x[idx]), y[idx])

    def validate():  # each epoch better than the last, so the last is the one kept
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return float(len(seen))

    fit(model, cfg, len(x), step, validate, torch.device("cpu"), 0, 1, backbone=backbone)
    for epoch in (0, 1):  # frozen: weights and BatchNorm running statistics untouched, the head learns
        for key in ("0.0.weight", "0.1.weight", "0.1.running_mean", "0.1.running_var"):
            assert torch.equal(seen[epoch][key], start[key]), (epoch, key)
        assert not torch.equal(seen[epoch]["1.weight"], start["1.weight"])
    assert not torch.equal(seen[2]["0.0.weight"], start["0.0.weight"])  # thawed for the last epoch
    assert not torch.equal(seen[2]["0.1.running_mean"], start["0.1.running_mean"])
    assert all(p.requires_grad for p in model.parameters())


def test_a_run_started_from_imagenet_weights_can_be_fine_tuned():
    """The recommended recipe's backbone starts from ImageNet weights; its child starts from the parent's instead,
    so it is built without them, and the architecture check must not take that for a different network."""
    from types import SimpleNamespace

    from skyedge.training.finetune import start_from
    from skyedge.training.models.frame import FrameEmbedder

    shape = {"backbone": "efficientnet_lite0", "in_channels": 3, "size": [64, 64], "embedding_dim": 8, "num_classes": 3,
             "normalize": False, "cloud_map": True}
    torch.manual_seed(0)
    network = torch.nn.Module()
    network.embedder = FrameEmbedder(**shape, frozen_stages=3)
    parent = SimpleNamespace(
        model=network, model_args={**shape, "pretrained": True, "frozen_stages": 3}, card={"classes": ["a", "b", "c"]}, path="runs/parent"
    )
    torch.manual_seed(1)
    child = FrameEmbedder(**shape, frozen_stages=1)
    start_from(child, parent, "embedder.", {**shape, "pretrained": False, "frozen_stages": 1}, ["a", "b", "c"])
    for key, value in parent.model.embedder.state_dict().items():
        assert torch.equal(child.state_dict()[key], value), key
    with pytest.raises(ValueError, match="embedding_dim"):
        start_from(FrameEmbedder(**{**shape, "embedding_dim": 4}), parent, "embedder.", {**shape, "embedding_dim": 4}, ["a", "b", "c"])
