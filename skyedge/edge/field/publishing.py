"""What a telescope field publishes: one summary per epoch, and per-object messages only where they matter.

A field of ten thousand objects classified every epoch would flood the broker
and whoever reads it, so by default (``field_messages.policy: changes``) an
object's answer is published when it is the object's first, when its class
changed, when it becomes a transient candidate (a ``candidate_classes`` class
at ``candidate_probability`` or more, once per class), and a final time when
the object is retired. ``every_epoch`` publishes every object every epoch.
Each per-object message says why it was published (``published_because``).
After an epoch's last batch, a ``field`` message summarises it: objects
followed, new, retired, classified, the residuals detected, counts per class
and the most probable candidates.

Publisher thread only: :class:`FieldPublishing` keeps each object's last
answer (bounded by the objects followed: retired ones are dropped).
"""

from __future__ import annotations

import time

import numpy as np

from skyedge.edge.runtime.messages import Message, MessageFactory


class FieldPublishing:
    """The publishing policy of one field and the last answer of each object it follows."""

    def __init__(self, section, classes: list[str]):
        self.section, self.classes = section, classes
        self.candidate = np.isin(np.array(classes), section.candidate_classes)
        self.last: dict[str, tuple] = {}  # object id -> (class index, probabilities, n_epochs, x, y)
        self.announced: dict[str, int] = {}  # candidate object id -> class it was announced as

    def answered(self, decisions, factory: MessageFactory, camera: str) -> tuple[list[Message], list]:
        """Messages for one batch of answers, and the epochs it completed (their summaries are among the messages)."""
        messages: list[Message] = []
        completed = []
        offset = 0
        for it in decisions.items:
            ctx = it.extra["epoch"]
            n = len(it.extra["rows"])
            probabilities = decisions.probabilities[offset : offset + n]
            offset += n
            if n:
                messages += self._objects(it, ctx, probabilities, factory, camera)
            if ctx.batch_answered(decisions.inference_ms / len(decisions.items)):
                completed.append(ctx)
                if not ctx.replay:
                    messages += self._finals(ctx, factory, camera)
                    messages.append(self._summary(ctx, factory, camera))
                for object_id, _ in ctx.view.retired:
                    self.last.pop(object_id, None)
                    self.announced.pop(object_id, None)
        return messages, completed

    def _objects(self, it, ctx, probabilities: np.ndarray, factory, camera) -> list[Message]:
        top = probabilities.argmax(axis=1)
        p_top = probabilities[np.arange(len(top)), top]
        candidate = self.candidate[top] & (p_top >= self.section.candidate_probability)
        if ctx.class_counts is None:
            ctx.class_counts = np.zeros(len(self.classes), dtype=np.int64)
        ctx.class_counts += np.bincount(top, minlength=len(self.classes))
        ids, xs, ys, epochs = it.extra["ids"], it.extra["x"], it.extra["y"], it.extra["n_epochs"]
        every = self.section.policy == "every_epoch"
        out = []
        for i in range(len(top)):
            oid = ids[i]
            previous = self.last.get(oid)
            self.last[oid] = (int(top[i]), probabilities[i], int(epochs[i]), float(xs[i]), float(ys[i]))
            if candidate[i]:
                ctx.candidates.append((float(p_top[i]), oid, int(top[i]), int(epochs[i]), float(xs[i]), float(ys[i])))
            if ctx.replay:
                continue  # reported before a restart: only the histories needed it
            reason = None
            if every:
                reason = "every_epoch"
            elif previous is None:
                reason = "new"
            elif previous[0] != top[i]:
                reason = "class_changed"
            elif candidate[i] and self.announced.get(oid) != top[i]:
                reason = "candidate"
            if candidate[i]:
                self.announced[oid] = int(top[i])
            if reason is not None:
                out.append(self._message(factory, camera, ctx, oid, reason))
        ctx.messages += len(out)
        return out

    def _message(self, factory: MessageFactory, camera: str, ctx, oid: str, reason: str) -> Message:
        top, probabilities, n_epochs, x, y = self.last[oid]
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
                "inference": round(ctx.inference_ms, 3),
                "queue": round(max(total_ms - ctx.preprocess_ms - ctx.inference_ms, 0.0), 3),
            },
            object_id=oid,
            n_epochs=n_epochs,
            mjd=float(ctx.view.conditions["mjd"]),
            position={"x": x, "y": y},
            published_because=reason,
        )

    def _finals(self, ctx, factory, camera) -> list[Message]:
        out = [self._message(factory, camera, ctx, oid, "retired") for oid, _ in ctx.view.retired if oid in self.last]
        ctx.messages += len(out)
        return out

    def _summary(self, ctx, factory: MessageFactory, camera: str) -> Message:
        view = ctx.view
        counts = ctx.class_counts if ctx.class_counts is not None else np.zeros(len(self.classes), dtype=np.int64)
        best = sorted(ctx.candidates, reverse=True)[: self.section.summary_candidates]
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
            },
            classes={c: int(n) for c, n in zip(self.classes, counts, strict=True)},
            candidates=[
                {
                    "object_id": oid,
                    "class": self.classes[k],
                    "probability": round(p, 4),
                    "n_epochs": n,
                    "position": {"x": x, "y": y},
                }
                for p, oid, k, n, x, y in best
            ],
            alignment={"dx": round(view.shift[0], 3), "dy": round(view.shift[1], 3)},
            difference_sigma=round(float(view.sigma), 4),
            latency_ms={
                "total": round(1e3 * (time.perf_counter() - ctx.arrived), 3),
                "preprocess": round(ctx.preprocess_ms, 3),
                "inference": round(ctx.inference_ms, 3),
            },
            messages=ctx.messages,
        )
