"""One camera or telescope, assembled from its deployment section: source, task, and what the publisher keeps.

This is where a pipeline is checked against the model at start (a source
that cannot feed the model, safe classes the model does not know) and where
the frame-or-sequence choice is made, once: the card's task picks the
:data:`TASKS` entry. A frame pipeline gets verdicts (sky state and safety), a
telescope pipeline a publishing policy; both belong to the publisher thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyedge.edge.allsky.site import DAY
from skyedge.edge.allsky.task import FrameTask
from skyedge.edge.config import StartupError
from skyedge.edge.field.publishing import FieldPublishing
from skyedge.edge.field.task import SequenceTask
from skyedge.edge.labelling.collect import CollectPolicy, FrameCollector
from skyedge.edge.observatory.verdicts import FrameVerdicts
from skyedge.edge.protocols import Source, Task
from skyedge.edge.sources import create_source
from skyedge.ephemeris import Ephemeris
from skyedge.model_card import ModelCard

TASKS: dict[str, type] = {"frame": FrameTask, "sequence": SequenceTask}


@dataclass
class Pipeline:
    """A camera's source (read by its own thread), its task (source and inference threads), and what the publisher
    thread keeps for it: a frame pipeline's ``verdicts``, a field's publishing ``policy``."""

    camera: str
    source: Source
    task: Task
    live: bool  # a live camera's frames are dropped when inference falls behind; files wait on disk
    verdicts: FrameVerdicts | None = None  # sky state and safety (frame pipelines; nobody closes a roof on a field)
    policy: FieldPublishing | None = None  # which of a field's answers are published (telescope pipelines)
    collect: CollectPolicy | None = None  # which frames to keep for labelling (publisher thread)
    collector: FrameCollector | None = None  # writes them (its own thread)


def _frame_verdicts(card: ModelCard, section) -> FrameVerdicts:
    """Sky state and safety, checked against the model's classes."""
    unknown = sorted(set(section.safety.safe_classes) - set(card.classes) - {DAY})
    if unknown:
        raise StartupError(
            f"pipelines[{section.camera}].safety.safe_classes: {unknown} not among the model's classes "
            f"{card.classes} (or '{DAY}')"
        )
    return FrameVerdicts(section)


def build_pipeline(
    section,
    card: ModelCard,
    once: bool,
    stop_event,
    ephemeris: Ephemeris | None = None,
    model_mask=None,
    batch_size: int = 8,
) -> Pipeline:
    """Check ``section`` against the model and assemble its pipeline (``ephemeris``: the site's, if located;
    ``model_mask``: the mask the model was trained with; ``batch_size``: the backend's, which a field's
    objects are grouped by)."""
    task_class = TASKS[card.task]
    where = f"pipelines[{section.camera}]"
    if section.source.kind not in task_class.sources:
        raise StartupError(
            f"{where}.source.kind: a '{section.source.kind}' source cannot feed the {card.task} model "
            f"'{card.name}' (frames need a frame model, fits-sequence a sequence model)"
        )
    verdicts = _frame_verdicts(card, section) if card.task == "frame" else None
    policy = FieldPublishing(section.field_messages, list(card.classes)) if card.task == "sequence" else None
    task = task_class(card, section, ephemeris=ephemeris, model_mask=model_mask, batch_size=batch_size)
    collect = collector = None
    if section.collect is not None:
        if section.source.kind != "directory":
            raise StartupError(
                f"{where}.collect: frames are collected from a watched folder's files; "
                f"a '{section.source.kind}' source has none to copy"
            )
        collect, collector = CollectPolicy(section.collect), FrameCollector(section.collect, section.camera)
    source = create_source(section.source, once, stop_event, history=task.history_epochs)
    live = section.source.kind == "camera"
    return Pipeline(
        section.camera,
        source,
        task,
        live=live,
        verdicts=verdicts,
        policy=policy,
        collect=collect,
        collector=collector,
    )
