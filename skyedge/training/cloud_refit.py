"""The cloud head fitted afresh on a trained backbone (``frame_model.cloud_refit``).

Trained beside the classifier for a few epochs, mostly on simulated cameras, the head under-fits a real camera's
polygons even on the frames it trained on: on the real development camera its cover erred 12.3 points on the
training nights and 12.7 on the nights it never saw, while a head fitted on the same backbone's features read both
far better (docs/results.md). So after training, the head is fitted again, alone, on the backbone's features of
the training frames that carry truth, computed once (seconds to a minute on 2 cores).

Every source (camera) counts alike in the loss, and every frame alike within its source: one real camera's few
hundred frames, whose polygons cover under half of the lens circle, weigh as much as a simulated camera's 600
fully known ones. The backbone, the classifier and everything else in the graph stay as trained.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from skyedge.training.models.frame import CloudHead, FrameEmbedder

log = logging.getLogger(__name__)

BATCH = 64
LR = 1e-3
WEIGHT_DECAY = 1e-4


@torch.no_grad()
def cloud_features(model: FrameEmbedder, x: torch.Tensor, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(the stride-16 features the cloud head reads, the pooled features its context reads) for frames ``x``."""
    was_training = model.training
    model.eval()
    maps, pooled = [], []
    for i in range(0, len(x), BATCH):
        cloud_map, frame = model.cloud_inputs(x[i : i + BATCH].to(device))
        maps.append(cloud_map.cpu())
        pooled.append(frame.cpu())
    model.train(was_training)
    return torch.cat(maps), torch.cat(pooled)


def frame_weights(known: torch.Tensor, source: np.ndarray) -> torch.Tensor:
    """Per frame, the weight that makes every source count alike and every frame alike within its source, given
    each frame's known sky per map cell ``known`` (N, 1, h, w): 1 / (known cells x frames of its source)."""
    source = torch.as_tensor(np.asarray(source), dtype=torch.long)
    _, index, counts = torch.unique(source, return_inverse=True, return_counts=True)
    per_frame = known.flatten(1).sum(1).clamp(min=1e-6)
    return 1.0 / (per_frame * counts[index].float())


def _loss(head: nn.Module, feats, pooled, target, known, weight) -> torch.Tensor:
    from skyedge.training.frame_training import weighted_cloud_bce

    return weighted_cloud_bce(head(feats, pooled), target, known * weight[:, None, None, None], floor=1e-12)


def refit_cloud_head(
    model: FrameEmbedder,
    x: torch.Tensor,
    truth: torch.Tensor,
    source: np.ndarray,
    *,
    epochs: int,
    seed: int,
    kind: str | None = None,
    device="cpu",
) -> dict:
    """Replace ``model.cloud`` by a head of ``kind`` (default: the same kind), seeded, fitted for ``epochs`` on frames
    ``x`` with model-grid ``truth`` (N, 2, H, W: cloud x known, known) from sources ``source`` (N,); frames without
    truth are left out. Returns what the run records: frames, sources, the weighted loss of the head as trained
    and of the new one, seconds."""
    from skyedge.training.frame_training import pooled_truth

    start = time.perf_counter()
    has_truth = truth[:, 1].flatten(1).sum(1) > 0
    if not bool(has_truth.any()):
        raise ValueError("frame_model.cloud_refit: no training frame has cloud truth")
    keep = torch.nonzero(has_truth).flatten()
    feats, pooled = cloud_features(model, x[keep], device)
    target, known = pooled_truth(truth[keep].float(), tuple(feats.shape[-2:]))
    src = np.asarray(source)[keep.numpy()]
    weight = frame_weights(known, src)
    weight = weight / weight.mean()
    head = model.cloud
    with torch.no_grad():
        before = float(_loss(head.cpu().eval(), feats, pooled, target, known, weight))
    gen = torch.Generator().manual_seed(seed)
    context = head.context.in_features if head.context is not None else 0
    with torch.random.fork_rng(devices=[]):  # seeded here, the run's own random stream left as it was
        torch.manual_seed(seed)
        head = CloudHead(head.channels, context=context, kind=kind or head.kind)
    model.cloud = head
    head.train()
    opt = torch.optim.AdamW(head.parameters(), LR, weight_decay=WEIGHT_DECAY)
    for _ in range(epochs):
        order = torch.randperm(len(feats), generator=gen)
        for i in range(0, len(order), BATCH):
            j = order[i : i + BATCH]
            loss = _loss(head, feats[j], pooled[j], target[j], known[j], weight[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        after = float(_loss(head, feats, pooled, target, known, weight))
    head.to(device)
    seconds = time.perf_counter() - start
    sources = len(set(src.tolist()))
    log.info(
        "cloud head refitted: %d frames of %d sources, %d epochs, loss %.4f -> %.4f, %.0f s",
        len(keep), sources, epochs, before, after, seconds,
    )
    return {
        "frames": int(len(keep)),
        "sources": sources,
        "epochs": int(epochs),
        "loss_before": round(before, 5),
        "loss_after": round(after, 5),
        "seconds": round(seconds, 1),
    }
