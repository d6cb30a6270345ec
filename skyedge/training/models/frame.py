"""Frame classifier: a torchvision backbone -> embedding -> class scores (Endo & Matsumoto 2022).

Backbones are chosen by name and adapted to the input's channel count (the
first convolution is rebuilt) and size (no max-pool for inputs under 64 px).
The embedding is trained with cross-entropy, a triplet margin loss with a
miner, or ArcFace; afterwards a Mahalanobis or ridge classifier is fitted on
the training embeddings and becomes layers of the network
(:mod:`skyedge.training.models.metric_heads`), so the exported graph gives
class probabilities and the minimum Mahalanobis distance directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torchvision
from torch import nn

from skyedge.training.models.metric_heads import MahalanobisHead, MinDistance, RidgeHead, SoftmaxHead
from skyedge.training.models.registry import register_model

BACKBONES: dict[str, Callable[[int, int], tuple[nn.Module, int]]] = {}


def register_backbone(name: str):
    """Make a backbone builder selectable by name in training YAML."""

    def wrap(fn):
        BACKBONES[name] = fn
        return fn

    return wrap


def _conv_like(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )


def _resnet(factory):
    def build(in_channels: int, size: int) -> tuple[nn.Module, int]:
        net = factory(weights=None)
        net.conv1 = _conv_like(net.conv1, in_channels)
        if size < 64:
            net.maxpool = nn.Identity()
        features = net.fc.in_features
        net.fc = nn.Identity()
        return net, features

    return build


def _features_classifier(factory):
    def build(in_channels: int, size: int) -> tuple[nn.Module, int]:
        net = factory(weights=None)
        block = net.features[0]
        block[0] = _conv_like(block[0], in_channels)
        trunk = nn.Sequential(net.features, net.avgpool, nn.Flatten())
        with torch.no_grad():
            features = trunk(torch.zeros(1, in_channels, max(size, 32), max(size, 32))).shape[1]
        return trunk, features

    return build


register_backbone("resnet18")(_resnet(torchvision.models.resnet18))
register_backbone("resnet50")(_resnet(torchvision.models.resnet50))
register_backbone("mobilenet_v3_small")(_features_classifier(torchvision.models.mobilenet_v3_small))
register_backbone("mobilenet_v3_large")(_features_classifier(torchvision.models.mobilenet_v3_large))
register_backbone("efficientnet_b0")(_features_classifier(torchvision.models.efficientnet_b0))


class FrameEmbedder(nn.Module):
    """Backbone + linear embedding head; ``logits`` exists for the cross-entropy baseline."""

    def __init__(
        self,
        *,
        backbone: str,
        in_channels: int,
        size: int | tuple[int, int],
        embedding_dim: int,
        num_classes: int,
        normalize: bool = True,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; available: {', '.join(sorted(BACKBONES))}")
        self.input_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.in_channels, self.embedding_dim, self.num_classes = in_channels, embedding_dim, num_classes
        self.backbone, features = BACKBONES[backbone](in_channels, min(self.input_size))
        self.embed = nn.Linear(features, embedding_dim)
        self.normalize = normalize
        self.logits = nn.Linear(embedding_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D), L2-normalised when metric losses need it."""
        z = self.embed(self.backbone(x))
        return nn.functional.normalize(z, dim=1) if self.normalize else z


class FrameClassifier(nn.Module):
    """What gets exported: image -> (probabilities, min Mahalanobis distance, embedding)."""

    def __init__(self, embedder: FrameEmbedder, head: nn.Module, distance: nn.Module):
        super().__init__()
        self.embedder, self.head, self.distance = embedder, head, distance

    def forward(self, image: torch.Tensor):
        z = self.embedder(image)
        return self.head(z), self.distance(z), z

    def card_io(self) -> tuple[list[dict], list[dict]]:
        """The model card's ``inputs`` and ``outputs`` for this graph."""
        e = self.embedder
        inputs = [
            {
                "name": "image",
                "role": "image",
                "dtype": "float32",
                "shape": ["batch", e.in_channels, *e.input_size],
                "layout": "NCHW",
            }
        ]
        outputs = [
            {"name": "probabilities", "role": "probabilities", "shape": ["batch", e.num_classes]},
            {"name": "min_distance", "role": "min_distance", "shape": ["batch"]},
            {"name": "embedding", "role": "embedding", "shape": ["batch", e.embedding_dim]},
        ]
        return inputs, outputs


HEADS = ("softmax", "mahalanobis", "ridge")


@register_model("frame_classifier")
def frame_classifier(*, classifier: str = "mahalanobis", **embedder_args) -> FrameClassifier:
    """The exported frame classifier's structure (``embedder_args`` as :class:`FrameEmbedder` takes them), its
    fitted heads left as placeholders for a checkpoint to fill."""
    embedder = FrameEmbedder(**embedder_args)
    num_classes, embedding_dim = embedder.num_classes, embedder.embedding_dim
    means, eye = np.zeros((num_classes, embedding_dim)), np.eye(embedding_dim)
    if classifier == "mahalanobis":
        head = MahalanobisHead(means, eye)
    elif classifier == "ridge":
        head = RidgeHead(means, np.zeros(num_classes), 1.0)
    elif classifier == "softmax":
        head = SoftmaxHead(embedder.logits)
    else:
        raise ValueError(f"unknown classifier {classifier!r}; expected one of {', '.join(HEADS)}")
    return FrameClassifier(embedder, head, MinDistance(means, eye))
