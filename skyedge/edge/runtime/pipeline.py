"""One camera or telescope, assembled from its deployment section: source, task, verdicts.

This is where a pipeline is checked against the model at start (a source
that cannot feed the model, safe classes the model does not know) and where
the frame-or-sequence choice is made, once: the card's task picks the
:data:`~skyedge.edge.allsky.task.TASKS` entry, and the task brings its verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyedge.edge.allsky.ephemeris import Ephemeris
from skyedge.edge.allsky.task import TASKS, FrameTask, SequenceTask
from skyedge.edge.config import StartupError
from skyedge.edge.labelling.collect import CollectPolicy, FrameCollector
from skyedge.edge.observatory.verdicts import FrameVerdicts, NoVerdicts
from skyedge.edge.sources import create_source
from skyedge.model_card import ModelCard


@dataclass
class Pipeline:
    """A camera's source (read by its own thread), its task, and its verdicts (driven by the publisher)."""

    camera: str
    source: object
    task: FrameTask | SequenceTask
    verdicts: FrameVerdicts | NoVerdicts
    live: bool  # a live camera's frames are dropped when inference falls behind; files wait on disk
    collect: CollectPolicy | None = None  # which frames to keep for labelling (publisher thread)
    collector: FrameCollector | None = None  # writes them (its own thread)


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
    verdicts = task_class.verdicts(card, section)
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
    return Pipeline(section.camera, source, task, verdicts, live=live, collect=collect, collector=collector)
