"""Sequence classifiers for image-stamp time series, with a prediction at every epoch.

* ``rcnn``: a convolutional encoder shared across epochs feeding an LSTM
  (Carrasco-Davis et al. 2019);
* ``taonet``: the same idea with a GRU, after TAO-Net (Gómez et al. 2020).

Per-epoch observing conditions can be concatenated to each epoch's image
features. Both recurrences are causal, so the output at epoch t depends only on
epochs up to t: a batch can be right-padded to its longest sequence and each
object's answer read at its own last epoch, with no mask in the graph.
"""

from __future__ import annotations

import torch
from torch import nn

from skyedge.training.models.registry import register_model

ARCHITECTURES = ("rcnn", "taonet")


class StampEncoder(nn.Module):
    """A small CNN mapping one stamp (1, S, S) to a feature vector.

    The last feature map is flattened, not averaged: where the light sits in
    the stamp (the centre versus a host galaxy or an artefact off-centre) and how
    much of it there is are exactly what separates the classes.
    """

    def __init__(
        self, channels: tuple[int, ...] = (16, 32, 64), stamp_size: int = 21, features: int = 64, in_channels: int = 1
    ):
        super().__init__()
        layers, c_in, side = [], in_channels, stamp_size
        for i, c_out in enumerate(channels):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            side = (side - 1) // stride + 1
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * side * side, features), nn.ReLU())
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Photometry(nn.Module):
    """Per-epoch aperture photometry as three RNN inputs: the flux, its departure from the mean so far, the scatter so far.

    Variability is what separates RR Lyrae, Cepheids, eclipsing binaries and
    constant stars, and a small CNN struggles to learn a seeing-independent
    flux from few examples; a fixed aperture sum on linear pixels gives the
    recurrence that evidence directly. Causal: epoch t uses epochs <= t only.
    """

    def __init__(self, stamp_size: int, radius: int, asinh_input: bool):
        super().__init__()
        c = stamp_size // 2
        self.lo, self.hi = c - radius, c + radius + 1
        self.asinh_input = asinh_input

    def forward(self, stamps: torch.Tensor) -> torch.Tensor:
        patch = stamps[:, :, 0, self.lo : self.hi, self.lo : self.hi]
        if self.asinh_input:
            patch = torch.sinh(patch)
        flux = torch.asinh(patch.sum(dim=(2, 3)))  # (B, T), compressed: objects span 5 magnitudes
        steps = torch.cumsum(torch.ones_like(flux), dim=1)
        running_mean = torch.cumsum(flux, dim=1) / steps
        # Scatter so far: for bright sources asinh(flux) differences are magnitude differences, so this is
        # the light curve's amplitude, the feature that separates variable stars from constant ones.
        running_sq = torch.cumsum(flux * flux, dim=1) / steps
        scatter = torch.sqrt(torch.clamp(running_sq - running_mean * running_mean, min=0.0) + 1e-6)
        return torch.stack([flux, flux - running_mean, scatter], dim=2)


def difference_from_history(stamps: torch.Tensor) -> torch.Tensor:
    """Each epoch's stamp minus the mean of the earlier epochs (zero at the first): a causal difference image.

    What survey pipelines feed transient classifiers (HiTS used template-subtracted stamps): whatever
    changed since before stands out, whatever is constant cancels.
    """
    previous = torch.cumsum(stamps, dim=1) - stamps
    # Epoch index 0, 1, 2, ... built from a cumulative sum, not arange + comparison: no Range/Cast nodes,
    # which the FP16 converter mistypes.
    count = torch.cumsum(torch.ones_like(stamps[:, :, :1, :1, :1]), dim=1) - 1.0
    mean = previous / torch.clamp(count, min=1.0)
    return (stamps - mean) * torch.clamp(count, max=1.0)


class SequenceClassifier(nn.Module):
    """(stamps (B, T, 1, S, S), conditions (B, T, K)) -> class probabilities (B, T, C) at every epoch."""

    def __init__(
        self,
        *,
        arch: str,
        num_classes: int,
        num_conditions: int,
        hidden: int = 64,
        encoder_channels: tuple[int, ...] = (16, 32, 64),
        use_conditions: bool = True,
        stamp_size: int = 21,
        photometry_radius: int = 0,
        asinh_input: bool = True,
        difference_channel: bool = False,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown sequence architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        self.arch = arch
        self.difference_channel = difference_channel
        self.num_classes, self.num_conditions, self.stamp_size = num_classes, num_conditions, stamp_size
        self.encoder = StampEncoder(
            tuple(encoder_channels), stamp_size, hidden, in_channels=2 if difference_channel else 1
        )
        self.use_conditions = use_conditions and num_conditions > 0
        self.photometry = Photometry(stamp_size, photometry_radius, asinh_input) if photometry_radius > 0 else None
        features = self.encoder.out_features + (num_conditions if self.use_conditions else 0)
        features += 3 if self.photometry is not None else 0
        rnn = nn.LSTM if arch == "rcnn" else nn.GRU
        self.rnn = rnn(features, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def logits(self, stamps: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """Per-epoch logits (B, T, C)."""
        b, t = stamps.shape[0], stamps.shape[1]
        images = torch.cat([stamps, difference_from_history(stamps)], dim=2) if self.difference_channel else stamps
        feats = self.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
        if self.use_conditions:
            feats = torch.cat([feats, conditions], dim=2)
        if self.photometry is not None:
            feats = torch.cat([feats, self.photometry(stamps)], dim=2)
        out, _ = self.rnn(feats)
        return self.classifier(out)

    def forward(self, stamps: torch.Tensor, conditions: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Probabilities (B, T, C); ``logits=True`` for training (through DistributedDataParallel's forward)."""
        scores = self.logits(stamps, conditions)
        return scores if logits else torch.softmax(scores, dim=2)

    def card_io(self) -> tuple[list[dict], list[dict]]:
        """The model card's ``inputs`` and ``outputs`` for this graph."""
        s = self.stamp_size
        inputs = [
            {"name": "stamps", "role": "stamps", "dtype": "float32", "shape": ["batch", "time", 1, s, s], "layout": "NTCHW"},
            {"name": "conditions", "role": "conditions", "dtype": "float32", "shape": ["batch", "time", self.num_conditions]},
        ]
        outputs = [{"name": "probabilities", "role": "probabilities", "shape": ["batch", "time", self.num_classes]}]
        return inputs, outputs


register_model("sequence_classifier")(SequenceClassifier)
