"""Frame classifier: a backbone -> embedding -> class scores (Endo & Matsumoto 2022), and optionally a cloud map.

Backbones are chosen by name and adapted to the input's channel count (the
first convolution is rebuilt) and size (no max-pool for inputs under 64 px).
The torchvision ones train from scratch; ``efficientnet_lite0`` starts from the
ImageNet weights its registry package ships (``pretrained``), may keep its
first stages frozen (``frozen_stages``), and can add a cloud-map head: a
per-cell cloud probability at stride 16 from the same features, computed in
the same graph call.
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


@register_backbone("efficientnet_lite0")
def _efficientnet_lite0(in_channels: int, size: int) -> tuple[nn.Module, int]:
    from skyedge.training.models.efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0(size, in_channels)
    return net, net.out_features


SPATIAL_BACKBONES = ("efficientnet_lite0",)  # the ones with stages a cloud map or frozen stages can use
CLOUD_STAGE = 4  # the stage whose map (stride 16) the cloud head reads


CLOUD_HEADS = ("pointwise", "spatial")


class CloudHead(nn.Module):
    """Per-cell cloud probability from a stride-16 feature map, a sigmoid at the end. ``pointwise``: 1x1
    convolutions, each cell read alone; ``spatial``: two 3x3 convolutions (64 wide), so a cell also reads its
    neighbours (a cloud's edge, a haze that spans cells). With ``context``, the frame's pooled features shift every
    cell's first hidden layer, so a cell sees what the whole sky looks like."""

    def __init__(self, channels: int, context: int = 0, kind: str = "pointwise"):
        super().__init__()
        if kind not in CLOUD_HEADS:
            raise ValueError(f"unknown cloud head {kind!r}; available: {', '.join(CLOUD_HEADS)}")
        self.kind, self.channels = kind, channels
        if kind == "pointwise":
            hidden = 32
            layers = [nn.Conv2d(channels, hidden, 1), nn.ReLU6(inplace=True), nn.Conv2d(hidden, 1, 1)]
        else:
            hidden = 64
            layers = [nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU6(inplace=True)]
            layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU6(inplace=True), nn.Conv2d(hidden, 1, 1)]
        self.net = nn.Sequential(*layers)
        self.context = nn.Linear(context, hidden) if context else None

    def forward(self, features: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net[0](features)
        if self.context is not None:
            # Read, not trained through: the pooled features are the classifier's, and the map's loss reaches them
            # only through the shared backbone, as without context.
            h = h + self.context(pooled.detach())[:, :, None, None]
        return torch.sigmoid(self.net[1:](h))


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
        pretrained: bool = False,
        frozen_stages: int = 0,
        cloud_map: bool = False,
        cloud_context: bool = False,
        cloud_head: str = "pointwise",
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; available: {', '.join(sorted(BACKBONES))}")
        if (pretrained or frozen_stages or cloud_map) and backbone not in SPATIAL_BACKBONES:
            raise ValueError(
                f"frame_model.backbone {backbone!r}: pretrained weights, frozen stages and a cloud map need one of "
                f"{', '.join(SPATIAL_BACKBONES)}"
            )
        if len({int(v) for v in ((size, size) if isinstance(size, int) else size)}) != 1 and backbone in SPATIAL_BACKBONES:
            raise ValueError(f"frame_model.backbone {backbone!r} needs a square preprocess.size, got {size}")
        self.input_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.in_channels, self.embedding_dim, self.num_classes = in_channels, embedding_dim, num_classes
        self.backbone, features = BACKBONES[backbone](in_channels, min(self.input_size))
        if pretrained:
            from skyedge.training.models.efficientnet_lite import load_imagenet_weights

            load_imagenet_weights(self.backbone)
        self.frozen = self._freeze(frozen_stages)
        self.embed = nn.Linear(features, embedding_dim)
        self.normalize = normalize
        self.logits = nn.Linear(embedding_dim, num_classes)
        context = self.backbone.out_features if cloud_context else 0
        self.cloud = CloudHead(self._cloud_channels(), context=context, kind=cloud_head) if cloud_map else None

    def _freeze(self, stages: int) -> list[nn.Module]:
        """Hold the stem and the first ``stages`` stages at their (ImageNet) weights, BatchNorm statistics too."""
        if not stages:
            return []
        net = self.backbone
        frozen = [net._conv_stem, net._bn0, *net._blocks[: net.stage_ends[stages - 1] + 1]]
        for module in frozen:
            module.requires_grad_(False)
        return frozen

    def _cloud_channels(self) -> int:
        from skyedge.training.models.efficientnet_lite import STAGES

        return STAGES[CLOUD_STAGE][5]

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()  # frozen BatchNorm keeps its running statistics
        return self

    @property
    def cloud_map_size(self) -> tuple[int, int] | None:
        """(h, w) of the cloud map, or None without one."""
        if self.cloud is None:
            return None
        return tuple(-(-(-(-s // 2) // 4) // 2) for s in self.input_size)  # ceil(size / 16) through the strides

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pooled backbone features, cloud map or None)."""
        if self.cloud is None:
            return self.backbone(x), None
        cloud_map, pooled = self.cloud_inputs(x)
        return pooled, self.cloud(cloud_map, pooled)

    def cloud_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the stride-16 feature map the cloud head reads, the pooled features its context and the classifier read)."""
        stages = self.backbone.stages(x)
        return stages[CLOUD_STAGE], torch.flatten(self.backbone.pool(self.backbone.head(stages[-1])), 1)

    def embed_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """Embeddings from pooled features, L2-normalised when metric losses need it."""
        z = self.embed(pooled)
        return nn.functional.normalize(z, dim=1) if self.normalize else z

    def forward(self, x: torch.Tensor, with_cloud: bool = False):
        """Embeddings (B, D), L2-normalised when metric losses need it; ``with_cloud``: (embeddings, cloud map)."""
        pooled, cloud = self.features(x)
        z = self.embed_features(pooled)
        return (z, cloud) if with_cloud else z


class FrameClassifier(nn.Module):
    """What gets exported: image -> (probabilities, min Mahalanobis distance, embedding[, cloud map])."""

    def __init__(self, embedder: FrameEmbedder, head: nn.Module, distance: nn.Module):
        super().__init__()
        self.embedder, self.head, self.distance = embedder, head, distance

    def forward(self, image: torch.Tensor):
        pooled, cloud = self.embedder.features(image)
        z = self.embedder.embed_features(pooled)
        if cloud is None:
            return self.head(z), self.distance(z), z
        return self.head(z), self.distance(z), z, cloud

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
        if e.cloud_map_size is not None:
            outputs.append({"name": "cloud_map", "role": "cloud_map", "shape": ["batch", 1, *e.cloud_map_size]})
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
