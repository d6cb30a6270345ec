"""The seams of the edge runtime as protocols: what a source, a task and a reporter must offer.

A backend's protocol lives with the backends (:class:`skyedge.edge.backends.Backend`). Each seam names the
thread that calls it (docs/architecture.md "Threads"); an object that satisfies a protocol can replace the
built-in one (tests hand the runtime a scripted backend, for instance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from skyedge.edge.messages import Message
    from skyedge.edge.records import Batch, Item
    from skyedge.edge.sources import Observation, RawFrame


@runtime_checkable
class Store(Protocol):
    """A durable store whose disk can fill (state file, outbox, audit log, collection folder)."""

    path: object
    problem: str | None

    def retry(self) -> None:
        """Try again what the disk refused (publisher thread)."""


@runtime_checkable
class Source(Protocol):
    """An iterator of what one camera or folder observed; iterated by its pipeline's source thread only."""

    def __iter__(self) -> Iterator[Observation]: ...

    def stores(self) -> list[Store]:
        """Its durable stores (read by the publisher thread)."""
        ...

    def close(self) -> None:
        """Release files and devices (main thread, after the source thread ended)."""
        ...


@runtime_checkable
class Task(Protocol):
    """What a pipeline asks of its model: ``items`` on the source thread, ``batch`` and ``decode`` on the
    inference thread; the records ``decode`` returns go to the publisher."""

    name: str
    sources: tuple[str, ...]
    history_epochs: int

    def items(self, pipeline: PipelineView, raw: RawFrame) -> Sequence[Item]: ...

    def batch(self, items: Sequence[Item]) -> Batch: ...

    def decode(self, batch: Batch, outputs: Mapping[str, np.ndarray], inference_ms: float) -> list: ...


@runtime_checkable
class PipelineView(Protocol):
    """What a record needs to know of the pipeline it belongs to."""

    camera: str
    task: Task


@runtime_checkable
class Reporter(Protocol):
    """Where messages go; called by the publisher thread only. ``publish`` never blocks for long."""

    def publish(self, message: Message) -> None: ...

    def listen(self, topic: str, callback: Callable[[bytes], None]) -> None: ...

    def depth(self) -> int: ...

    def dropped(self) -> int: ...

    def stores(self) -> list[Store]: ...

    def close(self) -> None: ...
