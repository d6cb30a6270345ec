"""The sequence task: a telescope field, followed epoch by epoch with the step graph.

Source thread (:meth:`SequenceTask.items`): the tracker places the epoch
against the reference (:mod:`skyedge.edge.field.tracker`); stamps are cut and prepared
for every followed object at once (:mod:`skyedge.edge.field.sequences`), one epoch
each for objects already followed, the recent frames plus this one for objects
found now; the objects go out in items of up to ``batch_size``, all keyed to the
epoch so that no batch mixes epochs.

Inference thread (:meth:`batch`, :meth:`decode`): each object's recurrent
state is read from the :class:`~skyedge.edge.field.sequences.StateStore` (zero for a
new object), the step graph runs, the state after it is stored. A new epoch
therefore costs one encoder step and one recurrence step per object, whatever
the history's length. Answers go to the publisher as
:class:`~skyedge.edge.field.records.FieldDecisions`; what is published is the
pipeline's policy's business (:mod:`skyedge.edge.field.publishing`, publisher
thread), not the task's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from skyedge.edge.config import StartupError
from skyedge.edge.field.conditions import header_conditions, star_fwhm
from skyedge.edge.field.difference import Reference, background, stars
from skyedge.edge.field.epoch_prep import DEFAULT_FWHM_PX
from skyedge.edge.field.records import FieldDecisions, FieldEpoch, FieldItem, ObjectRows
from skyedge.edge.field.sequences import StateStore, epoch_inputs, history_inputs
from skyedge.edge.field.tracker import EpochView, FieldTracker
from skyedge.edge.records import Batch
from skyedge.edge.sources import RawFrame
from skyedge.edge.sources.fits_sequence import CatalogError, read_catalog
from skyedge.edge.sources.state import STATE_FILE
from skyedge.imageio import read_frame
from skyedge.model_card import ModelCard


def load_reference(path, key: str, zero_point: float) -> Reference:
    """A configured template frame: seeing and zero point from its header, else measured and ``zero_point``."""
    try:
        image, header = read_frame(Path(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a start-up error naming the key
        raise StartupError(f"{key}: cannot read {path}: {exc}") from None
    if image.ndim != 2:
        raise StartupError(f"{key}: {path} is not a 2-D frame (shape {image.shape})")
    image = image.astype(np.float32)
    image = image - background(image)
    conditions, _ = header_conditions(header, str(path))
    fwhm = conditions.get("fwhm") or star_fwhm(image, stars(image, DEFAULT_FWHM_PX), np.inf) or DEFAULT_FWHM_PX
    # Its noise is left unknown: the tracker takes the first epoch's (a template is quieter than a frame).
    return Reference(image, float(fwhm), float(conditions.get("zero_point", zero_point)), 1)


class SequenceTask:
    """One telescope field: find what is there and what is new each epoch, and classify every object followed."""

    name = "sequence"
    sources = ("fits-sequence",)

    def __init__(self, card: ModelCard, section, ephemeris=None, model_mask=None, batch_size: int = 256):
        self.card, self.spec = card, card.sequence
        if section.views != 1:
            raise StartupError(f"pipelines[{section.camera}].views: {section.views} turns all-sky frames; a telescope field takes 1")
        src = section.source
        where = f"pipelines[{section.camera}].source"
        try:
            catalog = read_catalog(Path(src.catalog)) if src.catalog else None
        except CatalogError as exc:
            raise StartupError(f"{where}.catalog: {exc}") from None
        reference = load_reference(src.reference, f"{where}.reference", src.zero_point) if src.reference else None
        state = Path(src.state_file) if src.state_file else Path(src.path) / STATE_FILE
        memory = state.with_name(f"{state.name}.reference.json")
        self.tracker = FieldTracker(
            src, card.sequence.max_epochs, catalog, reference, memory, stamp_size=card.sequence.stamp_size
        )
        self.states = StateStore(card.step)
        self.batch_size = batch_size
        self.history_epochs = card.sequence.max_epochs
        self.stamps_name = card.step.input("stamps").name
        self.conditions_name = next((t.name for t in card.step.inputs if t.role == "conditions"), None)
        self.probabilities = next(t.name for t in card.step.outputs if t.role == "probabilities")

    # ------------------------------------------------------------ source thread

    def items(self, pipeline, raw: RawFrame) -> list[FieldItem]:
        """The model inputs of every epoch this frame completes (none while the reference is built)."""
        t0 = time.perf_counter()
        out = []
        for view in self.tracker.observe(raw):
            out += self._epoch_items(pipeline, view, t0)
        return out

    def _flux_reference(self) -> tuple[float, float]:
        """The field's flux unit for a noise-scaled model: one reference frame's pixel noise at its zero point."""
        ref = self.tracker.reference
        return ref.zero_point, ref.noise

    def _epoch_items(self, pipeline, view: EpochView, t0: float) -> list[FieldItem]:
        o, spec, raw = self.tracker.objects, self.spec, view.frame
        rows = view.followed
        is_new = np.isin(rows, view.new)
        groups = []  # (rows, fresh, stamps, conditions)
        ongoing = rows[~is_new]
        if len(ongoing):
            stamps, conditions = epoch_inputs(
                view.image,
                view.conditions,
                view.alignment,
                o.x[ongoing],
                o.y[ongoing],
                o.last_mjd[ongoing],
                spec,
                self._flux_reference(),
            )
            groups.append((ongoing, o.n_epochs[ongoing] == 0, stamps, conditions))
        if len(view.new):
            frames = [*view.history, (view.image, view.conditions, view.alignment)]
            stamps, conditions = history_inputs(frames, o.x[view.new], o.y[view.new], spec, self._flux_reference())
            groups.append((view.new, np.ones(len(view.new), dtype=bool), stamps, conditions))
            o.n_epochs[view.new] = len(frames) - 1  # the increment below adds this epoch
        o.n_epochs[rows] += 1
        o.last_mjd[rows] = view.conditions["mjd"]
        parts = []  # (objects, inputs, time axis length) of each batch
        for group_rows, fresh, stamps, conditions in groups:
            for i in range(0, len(group_rows), self.batch_size):
                part = slice(i, i + self.batch_size)
                inputs = {self.stamps_name: stamps[part]}
                if self.conditions_name:
                    inputs[self.conditions_name] = conditions[part]
                r = group_rows[part]
                # Copied now: by the time the publisher reports them, a retired object's row may already belong
                # to an object found in a later epoch.
                objects = ObjectRows(
                    rows=r,
                    fresh=fresh[part],
                    ids=o.ids[r].copy(),
                    x=o.x[r].copy(),
                    y=o.y[r].copy(),
                    n_epochs=o.n_epochs[r].copy(),
                    detections=o.detected_epochs[r].copy(),
                    static=o.static[r].copy(),
                )
                parts.append((objects, inputs, stamps.shape[1]))
        if not parts:  # nothing to follow: the epoch still gets its summary (and its file its ack)
            parts.append((ObjectRows.empty(), {}, 0))
        epoch = FieldEpoch(
            view=view,
            frame_id=raw.frame_id,
            source=raw.source,
            arrived=t0,
            preprocess_ms=1e3 * (time.perf_counter() - t0),
            replay=raw.replay,
            ack=raw.ack,
            batches=len(parts),
        )
        return [
            FieldItem(
                pipeline=pipeline,
                frame_id=raw.frame_id,
                source=raw.source,
                inputs=inputs,
                arrived=t0,
                preprocess_ms=epoch.preprocess_ms,
                batch_key=(pipeline.camera, view.epoch, steps),
                epoch=epoch,
                objects=objects,
            )
            for objects, inputs, steps in parts
        ]

    # ------------------------------------------------------------ inference thread

    def batch(self, items: list[FieldItem]) -> Batch:
        """The items' objects stacked, with the state each carries from its previous epoch."""
        rows = np.concatenate([it.objects.rows for it in items])
        if not len(rows):
            return Batch(items=items, inputs={})
        fresh = np.concatenate([it.objects.fresh for it in items])
        inputs = {name: np.concatenate([it.inputs[name] for it in items]) for name in items[0].inputs}
        return Batch(items=items, inputs=inputs | self.states.gather(rows, fresh))

    def decode(self, batch: Batch, outputs: dict[str, np.ndarray], inference_ms: float) -> list[FieldDecisions]:
        """Store each object's new state; its answer is the probabilities at its latest epoch."""
        rows = np.concatenate([it.objects.rows for it in batch.items])
        if len(rows):
            self.states.scatter(rows, outputs)
            probabilities = outputs[self.probabilities][:, -1]
        else:
            probabilities = np.zeros((0, len(self.card.classes)), np.float32)
        return [FieldDecisions(items=batch.items, probabilities=probabilities, inference_ms=inference_ms)]
