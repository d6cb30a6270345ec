"""The two things a model can be asked, each as one class: a whole frame (:class:`FrameTask`) or object histories
(:class:`SequenceTask`). Chosen once per pipeline from the card's task (:data:`TASKS`).

A task turns a source's frame into model inputs (:meth:`items`), stacks items
for one backend call (:meth:`batch`), and reads the model's answer for each
item out of the batch's outputs (:meth:`decode`): the top class, its
probability, and the open-set verdict from the card's distance threshold. No
other stage asks which kind of model it serves.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from skyedge.edge.config import StartupError
from skyedge.edge.records import Batch, Decision, Item
from skyedge.edge.sequences import SequenceAssembler
from skyedge.edge.sources import Ack, RawFrame
from skyedge.edge.verdicts import FrameVerdicts, NoVerdicts
from skyedge.imageio import read_frame
from skyedge.model_card import ModelCard
from skyedge.preprocess import prepare_frame

UNKNOWN = "unknown"


class Decoder:
    """Per-item answers from output rows: top class, its probability, and 'unknown' beyond the distance threshold."""

    def __init__(self, card: ModelCard):
        self.classes = list(card.classes)
        self.probabilities = card.output("probabilities").name
        distance = next((t for t in card.outputs if t.role == "min_distance"), None)
        self.distance = distance.name if distance is not None else None
        self.threshold = card.metric_head.unknown_threshold

    def __call__(
        self, items: list[Item], probabilities: np.ndarray, outputs: dict, inference_ms: float
    ) -> list[Decision]:
        """``probabilities`` (N, C) already at each item's answer epoch."""
        top = probabilities.argmax(axis=1)
        distances = outputs[self.distance] if self.distance is not None else None
        out = []
        for i, item in enumerate(items):
            p = probabilities[i]
            distance = float(distances[i]) if distances is not None else None
            unknown = bool(distance is not None and self.threshold is not None and distance > self.threshold)
            top_class = self.classes[top[i]]
            out.append(
                Decision(
                    item,
                    UNKNOWN if unknown else top_class,
                    top_class,
                    float(p[top[i]]),
                    {c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    unknown,
                    distance,
                    inference_ms,
                )
            )
        return out


def _calibration_frame(path, key: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return read_frame(path)[0]
    except Exception as exc:  # noqa: BLE001 - reported as a config error naming the key
        raise StartupError(f"preprocess.{key}: cannot read {path}: {exc}") from None


class FrameTask:
    """One all-sky camera: each frame is prepared as the card says (Bayer, dark, flat, size, stretch) and classified."""

    name = "frame"
    sources = ("directory", "camera")
    history_epochs = 0  # frames are classified alone: nothing to replay after a restart

    def __init__(self, card: ModelCard, section):
        self.card = card
        self.input_name = card.input("image").name
        self.bayer = section.preprocess.bayer
        self.dark = _calibration_frame(section.preprocess.dark, "dark")
        self.flat = _calibration_frame(section.preprocess.flat, "flat")
        self.decoder = Decoder(card)

    @staticmethod
    def verdicts(card: ModelCard, section) -> FrameVerdicts:
        """Sky state and safety, checked against the model's classes."""
        unknown = sorted(set(section.safety.safe_classes) - set(card.classes))
        if unknown:
            raise StartupError(
                f"pipelines[{section.camera}].safety.safe_classes: {unknown} not among the model's classes {card.classes}"
            )
        return FrameVerdicts(section)

    def items(self, pipeline, raw: RawFrame) -> list[Item]:
        """The frame as one model input."""
        t0 = time.perf_counter()
        x = prepare_frame(raw.image, self.card.preprocess, bayer=self.bayer, dark=self.dark, flat=self.flat)
        ms = 1e3 * (time.perf_counter() - t0)
        return [Item(pipeline, raw.frame_id, raw.source, {self.input_name: x}, t0, ms, raw.captured, {}, raw.ack)]

    def batch(self, items: list[Item]) -> Batch:
        """Frames stacked on the batch axis."""
        return Batch(items, {self.input_name: np.stack([it.inputs[self.input_name] for it in items])})

    def decode(self, batch: Batch, outputs: dict[str, np.ndarray], inference_ms: float) -> list[Decision]:
        """One decision per frame."""
        return self.decoder(batch.items, outputs[self.decoder.probabilities], outputs, inference_ms)


class Countdown:
    """Acks an epoch frame once every object cut from it has been reported (called from the publisher thread)."""

    def __init__(self, n: int, ack: Ack | None):
        self.n, self.ack, self._lock = n, ack, threading.Lock()

    def __call__(self, status: str = "ok") -> None:
        with self._lock:
            self.n -= 1
            if self.n == 0 and self.ack is not None:
                self.ack(status)


class SequenceTask:
    """One telescope field: each epoch extends every object's stamp history, and every object is classified again."""

    name = "sequence"
    sources = ("fits-sequence",)

    def __init__(self, card: ModelCard, section):
        self.card = card
        self.assembler = SequenceAssembler(card.sequence, section.source.forget_after_epochs)
        self.history_epochs = card.sequence.max_epochs
        self.stamps_name = card.input("stamps").name
        self.conditions_name = next((t.name for t in card.inputs if t.role == "conditions"), None)
        self.decoder = Decoder(card)

    @staticmethod
    def verdicts(card: ModelCard, section) -> NoVerdicts:
        """Nobody closes a roof on a telescope field."""
        return NoVerdicts()

    def items(self, pipeline, raw: RawFrame) -> list[Item]:
        """One input per object: its history up to this epoch."""
        t0 = time.perf_counter()
        epochs = self.assembler.add_epoch(raw.image, raw.header["conditions"], raw.objects)
        if raw.replay:
            return []  # reported before the restart: only the histories needed it
        if not epochs:
            if raw.ack is not None:
                raw.ack("ok")  # nothing to follow in this frame: nothing to report
            return []
        ms = 1e3 * (time.perf_counter() - t0) / len(epochs)
        done = Countdown(len(epochs), raw.ack)
        items = []
        for e in epochs:
            inputs = {self.stamps_name: e.stamps}
            if self.conditions_name:
                inputs[self.conditions_name] = e.conditions
            extra = {"object_id": e.object_id, "n_epochs": e.n_epochs, "mjd": e.mjd, "position": {"x": e.x, "y": e.y}}
            items.append(Item(pipeline, f"{raw.frame_id}:{e.object_id}", raw.source, inputs, t0, ms, None, extra, done))
        return items

    def batch(self, items: list[Item]) -> Batch:
        """Histories right-padded to the longest: the recurrence is causal, so each is read at its own last epoch."""
        lengths = np.array([len(it.inputs[self.stamps_name]) for it in items])
        t = int(lengths.max())
        inputs = {}
        for name in items[0].inputs:
            first = items[0].inputs[name]
            arr = np.zeros((len(items), t, *first.shape[1:]), dtype=np.float32)
            for i, it in enumerate(items):
                arr[i, : lengths[i]] = it.inputs[name]
            inputs[name] = arr
        return Batch(items, inputs, lengths - 1)

    def decode(self, batch: Batch, outputs: dict[str, np.ndarray], inference_ms: float) -> list[Decision]:
        """One decision per object, at its latest epoch."""
        probabilities = outputs[self.decoder.probabilities][np.arange(len(batch.items)), batch.answer_epoch]
        return self.decoder(batch.items, probabilities, outputs, inference_ms)


TASKS = {"frame": FrameTask, "sequence": SequenceTask}
