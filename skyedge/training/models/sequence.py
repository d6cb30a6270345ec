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

    def flux(self, stamps: torch.Tensor) -> torch.Tensor:
        """Aperture flux per epoch (B, T), asinh-compressed: objects span 5 magnitudes."""
        patch = stamps[:, :, 0, self.lo : self.hi, self.lo : self.hi]
        if self.asinh_input:
            patch = torch.sinh(patch)
        return torch.asinh(patch.sum(dim=(2, 3)))

    @staticmethod
    def features(flux: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The three inputs from each epoch's flux and the running sums (of flux, flux squared, epochs) up to it."""
        running_mean = total / steps
        # Scatter so far: for bright sources asinh(flux) differences are magnitude differences, so this is
        # the light curve's amplitude, the feature that separates variable stars from constant ones.
        running_sq = total_sq / steps
        scatter = torch.sqrt(torch.clamp(running_sq - running_mean * running_mean, min=0.0) + 1e-6)
        return torch.stack([flux, flux - running_mean, scatter], dim=2)

    def forward(self, stamps: torch.Tensor) -> torch.Tensor:
        flux = self.flux(stamps)
        steps = torch.cumsum(torch.ones_like(flux), dim=1)
        return self.features(flux, torch.cumsum(flux, dim=1), torch.cumsum(flux * flux, dim=1), steps)


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
        images = torch.cat([stamps, difference_from_history(stamps)], dim=2) if self.difference_channel else stamps
        photometry = self.photometry(stamps) if self.photometry is not None else None
        out, _ = self.rnn(self._features(images, conditions, photometry))
        return self.classifier(out)

    def _features(self, images: torch.Tensor, conditions: torch.Tensor, photometry: torch.Tensor | None) -> torch.Tensor:
        """The recurrence's input per epoch (B, T, F): encoded images, conditions, photometry."""
        b, t = images.shape[0], images.shape[1]
        feats = self.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
        if self.use_conditions:
            feats = torch.cat([feats, conditions], dim=2)
        if photometry is not None:
            feats = torch.cat([feats, photometry], dim=2)
        return feats

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """What the step graph carries from one epoch to the next, per object (name -> shape after the batch axis)."""
        shapes = {"state_h": (self.rnn.hidden_size,)}
        if isinstance(self.rnn, nn.LSTM):
            shapes["state_c"] = (self.rnn.hidden_size,)
        if self.difference_channel:
            shapes["state_stamp_sum"] = (1, self.stamp_size, self.stamp_size)  # sum of the stamps so far
        if self.photometry is not None:
            shapes["state_flux_sums"] = (2,)  # sum of the aperture fluxes so far and of their squares
        shapes["state_epochs"] = (1,)  # epochs seen so far
        return shapes

    def step(self, stamps: torch.Tensor, conditions: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Continue histories: the next T epochs (T = 1 on a new epoch) from the state after the earlier ones.

        Returns the probabilities at those epochs (B, T, C) and the state after them, in
        :meth:`state_shapes` order. From a zero state this is :meth:`forward` exactly; chained a chunk at a
        time it equals :meth:`forward` on the whole history, at a cost independent of the history's length.
        """
        named = dict(zip(self.state_shapes(), state, strict=True))
        epochs = named["state_epochs"]  # (B, 1)
        # Epoch numbers 1, 2, ... within the chunk from a cumulative sum (no Range/Cast: see difference_from_history).
        ones = torch.ones_like(stamps[:, :, 0, 0, 0])  # (B, T)
        seen = epochs + torch.cumsum(ones, dim=1)  # epochs up to and including each one
        images = stamps
        next_state = {}
        if self.difference_channel:
            total = named["state_stamp_sum"].unsqueeze(1) + torch.cumsum(stamps, dim=1)
            before = (seen - 1.0)[:, :, None, None, None]
            mean = (total - stamps) / torch.clamp(before, min=1.0)
            images = torch.cat([stamps, (stamps - mean) * torch.clamp(before, max=1.0)], dim=2)
            next_state["state_stamp_sum"] = total[:, -1]
        photometry = None
        if self.photometry is not None:
            flux = self.photometry.flux(stamps)
            sums = named["state_flux_sums"]
            total_flux = sums[:, :1] + torch.cumsum(flux, dim=1)
            total_sq = sums[:, 1:] + torch.cumsum(flux * flux, dim=1)
            photometry = self.photometry.features(flux, total_flux, total_sq, seen)
            next_state["state_flux_sums"] = torch.stack([total_flux[:, -1], total_sq[:, -1]], dim=1)
        feats = self._features(images, conditions, photometry)
        if isinstance(self.rnn, nn.LSTM):
            out, (h, c) = self.rnn(feats, (named["state_h"].unsqueeze(0), named["state_c"].unsqueeze(0)))
            next_state["state_c"] = c[0]
        else:
            out, h = self.rnn(feats, named["state_h"].unsqueeze(0))
        next_state["state_h"] = h[0]
        next_state["state_epochs"] = seen[:, -1:]
        probabilities = torch.softmax(self.classifier(out), dim=2)
        return (probabilities, *(next_state[name] for name in self.state_shapes()))

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

    def step_module(self) -> nn.Module:
        """The step graph as a module whose forward is :meth:`step`, for export."""
        return SequenceStep(self)

    def step_card(self) -> dict:
        """The card's ``step`` block (without files): the step graph's tensors and which output feeds which input."""
        inputs, outputs = self.card_io()
        carried = {name: "next_" + name for name in self.state_shapes()}
        for name, shape in self.state_shapes().items():
            inputs.append({"name": name, "role": "state", "dtype": "float32", "shape": ["batch", *shape]})
            outputs.append({"name": carried[name], "role": "state", "dtype": "float32", "shape": ["batch", *shape]})
        return {"inputs": inputs, "outputs": outputs, "state": carried}


class SequenceStep(nn.Module):
    """The step graph for export: :meth:`SequenceClassifier.step` as a module's forward."""

    def __init__(self, model: SequenceClassifier):
        super().__init__()
        self.model = model

    def forward(self, stamps: torch.Tensor, conditions: torch.Tensor, *state: torch.Tensor):
        return self.model.step(stamps, conditions, *state)


register_model("sequence_classifier")(SequenceClassifier)
