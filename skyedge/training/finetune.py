"""Fine-tuning: a recipe's ``train.init_from`` names the run whose weights a new training starts from."""

from __future__ import annotations

import logging

from torch import nn

from skyedge.training.config import TrainConfig

log = logging.getLogger(__name__)

# Model settings a child may set unlike its parent: the class count (the class layer follows by name), whether its
# backbone starts from ImageNet weights (a child starts from the parent's), and how many stages stay frozen.
NOT_ARCHITECTURE = ("num_classes", "pretrained", "frozen_stages")


def parent_run(cfg: TrainConfig, model_name: str):
    """The run ``train.init_from`` names, checked to be the same kind of model (or None)."""
    if cfg.train.init_from is None:
        return None
    from skyedge.training.checkpoint import load_run

    parent = load_run(cfg.train.init_from)
    if parent.model_name != model_name:
        raise ValueError(f"train.init_from: {cfg.train.init_from} is a {parent.model_name}, not a {model_name}")
    return parent


def start_from(model: nn.Module, parent, prefix: str, model_args: dict, classes: list[str]) -> None:
    """Copy the parent's weights into ``model``: everything whose shape fits, and the class layer's rows by class
    name (a site's image folder lists classes in its own order; classes new to the network start fresh);
    architecture settings must agree, naming the one that does not (not where the first weights came from, nor
    which stages train: a parent started from ImageNet weights passes its own on)."""
    for key, value in model_args.items():
        theirs = parent.model_args.get(key)
        if key not in NOT_ARCHITECTURE and theirs is not None and theirs != value:
            raise ValueError(f"train.init_from: the parent run has {key}={theirs!r}, this recipe {value!r}")
    own = model.state_dict()
    parents = {k[len(prefix) :]: v for k, v in parent.model.state_dict().items() if k.startswith(prefix)}
    taken = {k: v for k, v in parents.items() if k in own and own[k].shape == v.shape}
    known = list(parent.card.get("classes", []))
    if known != list(classes):
        for key in [k for k in own if k.startswith(("logits.", "classifier.")) and k in parents]:
            rows = own[key].clone()
            for i, name in enumerate(classes):
                if name in known and parents[key].shape[1:] == rows.shape[1:]:
                    rows[i] = parents[key][known.index(name)]
            taken[key] = rows
        new = [c for c in classes if c not in known]
        log.info("class layer taken by class name; starting fresh: %s", ", ".join(new) or "no class")
    model.load_state_dict(taken, strict=False)
    fresh = sorted(set(own) - set(taken))
    log.info("fine-tuning from %s: %d tensors taken, fresh: %s", parent.path, len(taken), ", ".join(fresh) or "none")


