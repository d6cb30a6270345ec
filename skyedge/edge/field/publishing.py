"""What a telescope field publishes: one summary per epoch, and per-object messages only where they matter.

A field of ten thousand objects classified every epoch would flood the broker
and whoever reads it, so by default (``field_messages.policy: changes``) an
object's answer is published when it is the object's first, when its class
changed, when it becomes a transient candidate (a ``candidate_classes`` class
at ``candidate_probability`` or more, once per class, for an object that was
brighter than the reference in the difference image on
``candidate_min_detections`` epochs: a star that never changed is no transient
whatever the model says), and a final time when
the object is retired. ``every_epoch`` publishes every object every epoch.
Each per-object message says why it was published (``published_because``).
After an epoch's last batch, a ``field`` message summarises it: objects
followed, new, retired, classified, the residuals detected, counts per class
and the most probable candidates.

Publisher thread only: :class:`FieldPublishing` keeps each object's last
answer (bounded by the objects followed: retired ones are dropped) and the
tally of each epoch whose batches are still coming back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from skyedge.edge.field.records import FieldDecisions, FieldEpoch, FieldItem
from skyedge.edge.messages import Message, MessageFactory


class PublishReason(str, Enum):
    """Why a per-object message was published (its ``published_because``)."""

    NEW = "new"
    CLASS_CHANGED = "class_changed"
    CANDIDATE = "candidate"
    RETIRED = "retired"
    EVERY_EPOCH = "every_epoch"


@dataclass
class EpochTally:
    """What the publisher has seen of one epoch's batches so far."""

    epoch: FieldEpoch
    answered: int = 0
    inference_ms: float = 0.0
    class_counts: np.ndarray | None = None
    candidates: list = field(default_factory=list)
    messages: int = 0


class FieldPublishing:
    """The publishing policy of one field, the last answer of each object it follows, and the open epochs."""

    def __init__(self, section, classes: list[str]):
        self.section, self.classes = section, classes
        self.candidate = np.isin(np.array(classes), section.candidate_classes)
        self.last: dict[str, tuple] = {}  # object id -> (class index, probabilities, n_epochs, x, y, detections)
        self.announced: dict[str, int] = {}  # candidate object id -> class it was announced as
        self._open: dict[int, EpochTally] = {}  # epoch number -> tally, until its last batch is back

    def _tally(self, epoch: FieldEpoch) -> EpochTally:
        tally = self._open.get(epoch.view.epoch)
        if tally is None:
            tally = self._open[epoch.view.epoch] = EpochTally(epoch)
        return tally

    def _batch_back(self, tally: EpochTally, inference_ms: float) -> bool:
        """Count one of the epoch's batches as answered (or failed); True when it was the last."""
        tally.answered += 1
        tally.inference_ms += inference_ms
        if tally.answered < tally.epoch.batches:
            return False
        del self._open[tally.epoch.view.epoch]
        return True

    def answered(
        self, decisions: FieldDecisions, factory: MessageFactory, camera: str
    ) -> tuple[list[Message], list[EpochTally]]:
        """Messages for one batch of answers, and the epochs it completed (their summaries are among the messages)."""
        messages: list[Message] = []
        completed = []
        offset = 0
        for it in decisions.items:
            tally = self._tally(it.epoch)
            n = len(it.objects)
            probabilities = decisions.probabilities[offset : offset + n]
            offset += n
            if n:
                messages += self._objects(it, tally, probabilities, factory, camera)
            if self._batch_back(tally, decisions.inference_ms / len(decisions.items)):
                completed.append(tally)
                if not it.epoch.replay:
                    messages += self._finals(tally, factory, camera)
                    messages.append(self._summary(tally, factory, camera))
                self._forget_retired(it.epoch)
        return messages, completed

    def failed(self, items: list[FieldItem]) -> list[EpochTally]:
        """The backend failed on these items: the epochs whose last batch this was (their frames get acked)."""
        completed = []
        for it in items:
            tally = self._tally(it.epoch)
            if self._batch_back(tally, 0.0):
                completed.append(tally)
                self._forget_retired(it.epoch)
        return completed

    def _forget_retired(self, epoch: FieldEpoch) -> None:
        for object_id, _ in epoch.view.retired:
            self.last.pop(object_id, None)
            self.announced.pop(object_id, None)

    def _objects(self, it: FieldItem, tally: EpochTally, probabilities: np.ndarray, factory, camera) -> list[Message]:
        ctx = it.epoch
        top = probabilities.argmax(axis=1)
        p_top = probabilities[np.arange(len(top)), top]
        detections = it.objects.detections
        candidate = (
            self.candidate[top]
            & (p_top >= self.section.candidate_probability)
            & (detections >= self.section.candidate_min_detections)
        )
        if tally.class_counts is None:
            tally.class_counts = np.zeros(len(self.classes), dtype=np.int64)
        tally.class_counts += np.bincount(top, minlength=len(self.classes))
        ids, xs, ys, epochs = it.objects.ids, it.objects.x, it.objects.y, it.objects.n_epochs
        every = self.section.policy == "every_epoch"
        out = []
        for i in range(len(top)):
            oid = ids[i]
            previous = self.last.get(oid)
            self.last[oid] = (int(top[i]), probabilities[i], int(epochs[i]), float(xs[i]), float(ys[i]), int(detections[i]))
            if candidate[i]:
                tally.candidates.append(
                    (float(p_top[i]), oid, int(top[i]), int(epochs[i]), float(xs[i]), float(ys[i]), int(detections[i]))
                )
            if ctx.replay:
                continue  # reported before a restart: only the histories needed it
            reason = None
            if every:
                reason = PublishReason.EVERY_EPOCH
            elif previous is None:
                reason = PublishReason.NEW
            elif previous[0] != top[i]:
                reason = PublishReason.CLASS_CHANGED
            elif candidate[i] and self.announced.get(oid) != top[i]:
                reason = PublishReason.CANDIDATE
            if candidate[i]:
                self.announced[oid] = int(top[i])
            if reason is not None:
                out.append(self._message(factory, camera, tally, oid, reason))
        tally.messages += len(out)
        return out

    def _message(self, factory: MessageFactory, camera: str, tally: EpochTally, oid: str, reason: PublishReason) -> Message:
        ctx = tally.epoch
        top, probabilities, n_epochs, x, y, detections = self.last[oid]
        total_ms = 1e3 * (time.perf_counter() - ctx.arrived)
        label = self.classes[top]
        return factory.message(
            "classification",
            camera,
            task="sequence",
            frame_id=f"{ctx.frame_id}:{oid}",
            source=ctx.source,
            **{"class": label},
            top_class=label,
            confidence=float(probabilities[top]),
            top_probability=float(probabilities[top]),
            probabilities={c: float(v) for c, v in zip(self.classes, probabilities, strict=True)},
            unknown=False,
            latency_ms={
                "total": round(total_ms, 3),
                "preprocess": round(ctx.preprocess_ms, 3),
                "inference": round(tally.inference_ms, 3),
                "queue": round(max(total_ms - ctx.preprocess_ms - tally.inference_ms, 0.0), 3),
            },
            object_id=oid,
            n_epochs=n_epochs,
            detections=detections,
            mjd=float(ctx.view.conditions["mjd"]),
            position={"x": x, "y": y},
            published_because=reason.value,
        )

    def _finals(self, tally: EpochTally, factory, camera) -> list[Message]:
        retired = tally.epoch.view.retired
        out = [self._message(factory, camera, tally, oid, PublishReason.RETIRED) for oid, _ in retired if oid in self.last]
        tally.messages += len(out)
        return out

    def _summary(self, tally: EpochTally, factory: MessageFactory, camera: str) -> Message:
        ctx = tally.epoch
        view = ctx.view
        counts = tally.class_counts if tally.class_counts is not None else np.zeros(len(self.classes), dtype=np.int64)
        best = sorted(tally.candidates, reverse=True)[: self.section.summary_candidates]
        return factory.message(
            "field",
            camera,
            frame_id=ctx.frame_id,
            source=ctx.source,
            epoch=view.epoch,
            mjd=float(view.conditions["mjd"]),
            objects={
                "followed": len(view.followed),
                "new": len(view.new),
                "retired": len(view.retired),
                "classified": int(counts.sum()),
                "detections": int(view.detections),
                "refused": int(view.refused),
                "bogus": {k: int(n) for k, n in view.bogus.items()},
            },
            classes={c: int(n) for c, n in zip(self.classes, counts, strict=True)},
            candidates=[
                {
                    "object_id": oid,
                    "class": self.classes[k],
                    "probability": round(p, 4),
                    "n_epochs": n,
                    "detections": d,
                    "position": {"x": x, "y": y},
                }
                for p, oid, k, n, x, y, d in best
            ],
            alignment=view.alignment.message(),
            conditions=_conditions_message(view.conditions, view.sources),
            difference_sigma=round(float(view.sigma), 4),
            latency_ms={
                "total": round(1e3 * (time.perf_counter() - ctx.arrived), 3),
                "preprocess": round(ctx.preprocess_ms, 3),
                "inference": round(tally.inference_ms, 3),
            },
            messages=tally.messages,
        )


def _conditions_message(conditions: dict, sources: dict) -> dict:
    """The epoch's observing conditions and where each came from (header keyword, measured, assumed)."""
    out = {}
    for name in ("mjd", "exptime", "airmass", "fwhm", "sky", "zero_point"):
        value = conditions.get(name)
        if value is None or not np.isfinite(value):
            continue
        out[name] = {"value": round(float(value), 6 if name == "mjd" else 4), "source": sources.get(name, "source")}
    return out
