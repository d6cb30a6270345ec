"""A real tiny training for each task: it must beat chance and leave a complete run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import recipe

from skyedge.config import ConfigError
from skyedge.model_card import ModelCard
from skyedge.training.config import TrainConfig, load_train_config
from skyedge.training.loop import stratified_split

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    assert isinstance(load_train_config(path), TrainConfig)


def test_recipe_errors_name_the_key(tmp_path):
    text = (
        (REPO / "configs" / "train" / "allsky-tiny.yaml")
        .read_text()
        .replace("backbone: resnet18", "backbone: resnet19")
    )
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"frame_model.backbone \(line \d+\)"):
        load_train_config(tmp_path / "r.yaml")


def test_stratified_split_keeps_class_balance():
    labels = np.repeat(np.arange(4), 50)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 200
    assert np.bincount(labels[val]).tolist() == [10, 10, 10, 10]


@pytest.mark.slow
def test_tiny_frame_training_beats_chance(tiny_frame_run):
    out = tiny_frame_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.4  # chance is 1/6
    assert set(metrics["heads"]) == {"mahalanobis", "ridge", "softmax"}
    for name in ("checkpoint.pt", "confusion.png", "curves.png", "card.json", "config.json"):
        assert (out / name).stat().st_size > 0, name
    card = json.loads((out / "card.json").read_text())
    assert card["metric_head"]["unknown_threshold"] > 0
    # The card fragment plus file names is a valid model card (what export will write).
    ModelCard.model_validate({**card, "files": {"fp32": "model.onnx"}})


@pytest.mark.slow
def test_tiny_sequence_training_beats_chance(tiny_sequence_run):
    out = tiny_sequence_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] > 0.3  # chance is 1/7
    curve = metrics["test"]["accuracy_vs_epochs"]
    # Early classification: more epochs seen, better answers (the second half beats the first two epochs).
    assert len(curve) == 8 and np.mean(curve[4:]) > np.mean(curve[:2])
    assert (out / "accuracy_vs_epochs.png").stat().st_size > 0
    ModelCard.model_validate({**json.loads((out / "card.json").read_text()), "files": {"fp32": "model.onnx"}})


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    """DistributedDataParallel on CPU (gloo): two ranks train, rank 0 writes the run."""
    import subprocess
    import sys

    # `python -m torch.distributed.run` is torchrun itself, shipped with torch: nothing to skip for.
    cfg = recipe(tmp_path, "frame")
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(cfg.model_dump_json())  # JSON is YAML
    # Simulate once up front so the two ranks do not race to create the data set.
    from skyedge.brokers import free_port
    from skyedge.training.data.loaders import load_source

    load_source(cfg.data.train, "frame")
    load_source(cfg.data.test, "frame")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            "-m",
            "skyedge",
            "train",
            "--config",
            str(recipe_file),
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 2" in result.stderr
    metrics = json.loads((Path(cfg.out) / "metrics.json").read_text())
    assert metrics["test"]["count"] == 120


def test_archive_seeing_repeats_the_first_epochs_seeing_only_where_marked():
    from skyedge.model_card import SequenceSpec
    from skyedge.training.data.loaders import Loaded
    from skyedge.training.sequence_training import prepare_sequences

    rng = np.random.default_rng(0)
    n, t, size = 4, 6, 9
    conditions = np.zeros((n, t, 6))
    conditions[..., 0] = 60000 + np.arange(t)  # mjd
    conditions[..., 1] = rng.uniform(2.5, 6.0, (n, t))  # fwhm, different every epoch
    conditions[..., 2], conditions[..., 3], conditions[..., 4], conditions[..., 5] = 500.0, 28.0, 60.0, 1.2
    data = Loaded(rng.normal(500, 20, (n, t, size, size)), np.zeros(n, int), ["SN"], conditions)
    spec = SequenceSpec(
        stamp_size=size, max_epochs=t, conditions=["fwhm", "log_sky"], conditions_mean=[0, 0], conditions_std=[1, 1]
    )
    marked = np.array([True, False, True, False])
    _, plain = prepare_sequences(data, spec, "test")
    _, archived = prepare_sequences(data, spec, "test", marked)
    fwhm = archived[..., 0].numpy()
    assert np.allclose(fwhm[marked], fwhm[marked][:, :1])  # one seeing for every epoch
    assert np.allclose(archived[~marked].numpy(), plain[~marked].numpy())
    assert not np.allclose(plain[marked].numpy(), archived[marked].numpy())
    assert np.allclose(archived[..., 1].numpy(), plain[..., 1].numpy())  # the other conditions untouched


def test_the_open_set_threshold_never_rejects_what_the_training_frames_themselves_reach():
    """Unseen cameras set the threshold where they sit further out than the training frames; where they sit closer
    (varied real frames widened the covariance), the training frames' own quantile is the floor."""
    from skyedge.training.frame_training import open_set_threshold

    rng = np.random.default_rng(0)
    train = rng.chisquare(8, 5000) ** 0.5
    far, near = train * 1.5, train * 0.6
    t_far, src_far = open_set_threshold(train, far, 0.99)
    t_near, src_near = open_set_threshold(train, near, 0.99)
    t_train, _ = open_set_threshold(train, None, 0.99)
    assert t_far == pytest.approx(np.quantile(far, 0.99)) and src_far.startswith("held-out")
    assert t_near == pytest.approx(t_train) == pytest.approx(np.quantile(train, 0.99))
    assert "above the unseen cameras'" in src_near
    assert (train > t_near).mean() <= 0.011
