"""The publisher: the one thread that turns records into messages and hands them to the reporters.

Everything observatory control reads is built here and nowhere else:
classifications from :class:`~skyedge.edge.allsky.records.Decision`, events from what
sources observed, state and safety changes from the pipelines' verdicts
(which only this thread drives), periodic staleness checks and metrics, the
retained status, and Home Assistant discovery. Schema validation therefore
always runs on this thread, and a result's input is acknowledged (its file
marked processed) only after its messages went to the reporters.

Thread use: any thread may :meth:`Publisher.put`; only the publisher thread
calls reporters, verdicts and acks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from skyedge import __version__
from skyedge.edge.allsky.records import Decision
from skyedge.edge.field.records import FieldDecisions, FieldItem
from skyedge.edge.messages import Message, MessageFactory, utc_from_timestamp, utc_now
from skyedge.edge.observatory.verdicts import Change, StateChange
from skyedge.edge.records import BatchFailed, Observed
from skyedge.edge.runtime.device_stats import gpu_load, host_rss_mb, temperatures
from skyedge.edge.runtime.stats import Stats
from skyedge.edge.sources import FormatChanged, Rejected, SourceFailed, SourceRecovered, Vanished

log = logging.getLogger(__name__)

TICK_S = 0.2  # how often the clock-driven checks run while records are quiet
_STOP = object()

Record = Decision | FieldDecisions | BatchFailed | Observed


@dataclass(frozen=True)
class Announced:
    """Home Assistant said something on its status topic (``online`` after it starts)."""

    payload: bytes


@dataclass(frozen=True)
class DeviceFacts:
    """What the status and metrics messages say about this device and how to read its queue depth."""

    backend: str
    precision: str
    model_name: str
    classes: list[str]
    item_queue_depth: Callable[[], int]
    metrics_interval_s: float
    homeassistant_prefix: str | None = None  # None: no discovery
    cloud_map: bool = False  # the model has a cloud map (Home Assistant gets a cloud cover sensor)


class Publisher:
    """Owns the reporters; see the module docstring for which thread calls what."""

    def __init__(self, factory: MessageFactory, reporters: list, pipelines: list, stats: Stats, facts: DeviceFacts):
        self.factory, self.reporters, self.pipelines, self.stats, self.facts = (
            factory,
            reporters,
            pipelines,
            stats,
            facts,
        )
        self.started = utc_now()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._metrics_at = time.monotonic()
        # Every durable store whose disk can fill: state files, the outbox, the audit log.
        self._stores = [store for r in reporters for store in r.stores()]
        self._stores += [store for p in pipelines for store in p.source.stores()]
        self._stores += [p.collector for p in pipelines if p.collector is not None]
        self._stores += [p.verdicts.files for p in pipelines if p.verdicts is not None and p.verdicts.files is not None]
        self._store_problems: dict[int, str] = {}
        self._handlers = {
            Decision: self._decision,
            FieldDecisions: self._field,
            BatchFailed: self._batch_failed,
            Observed: self._observed,
            Announced: self._announced,
        }

    # ------------------------------------------------------------ any thread

    def put(self, record: Record) -> None:
        """Queue a record for publishing (never blocks)."""
        self._queue.put(record)

    def start(self) -> None:
        """Publish 'online' (and discovery), then serve records."""
        self._thread.start()

    def close(self, timeout: float | None = 60.0) -> None:
        """Publish what is queued, the final metrics and 'offline'; close the reporters (they flush first).
        ``timeout`` None: wait however long that takes (a ``--once`` run must not end with its answers unsaid)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Their files were never acknowledged: a restart reads them again, so nothing is lost, only late.
            log.warning(
                "stopping with about %d records not yet published after %.0f s; their files are read again after a "
                "restart",
                self._queue.qsize(),
                timeout,
            )

    # ------------------------------------------------------------ publisher thread

    def _send(self, message: Message) -> None:
        for reporter in self.reporters:
            reporter.publish(message)

    def _run(self) -> None:
        self._status("online")
        if self.facts.homeassistant_prefix is not None:
            self._discovery()
            for reporter in self.reporters:  # Home Assistant asks for the configs again when it (re)starts
                reporter.listen(
                    f"{self.facts.homeassistant_prefix}/status", lambda payload: self.put(Announced(payload))
                )
        try:
            while True:
                try:
                    record = self._queue.get(timeout=TICK_S)
                except queue.Empty:
                    record = None
                if record is _STOP:
                    break
                if record is not None:
                    try:
                        self._handlers[type(record)](record)
                    except Exception:
                        log.exception("publishing failed for %s", type(record).__name__)
                        self.stats.add("failed")
                self._periodic()
        finally:
            # Each step of the shutdown on its own: one that fails must not cost the others (the offline status,
            # the reporters' files and connections).
            for step in (self._metrics, lambda: self._status("offline"), *(r.close for r in self.reporters)):
                try:
                    step()
                except Exception:
                    log.exception("publisher shutdown: a step failed; carrying on with the rest")

    def _decision(self, d: Decision) -> None:
        it = d.item
        camera = it.pipeline.camera
        total_ms = 1e3 * (time.perf_counter() - it.arrived)
        message = self.factory.message(
            "classification",
            camera,
            task=it.pipeline.task.name,
            frame_id=it.frame_id,
            source=it.source,
            captured=utc_from_timestamp(it.captured) if it.captured is not None else None,
            **{"class": d.label},
            top_class=d.top_class,
            confidence=d.confidence,
            top_probability=d.top_probability,
            probabilities=d.probabilities,
            unknown=d.unknown,
            distance=d.distance,
            latency_ms={
                "total": round(total_ms, 3),
                "preprocess": round(it.preprocess_ms, 3),
                "inference": round(d.inference_ms, 3),
                "queue": round(max(total_ms - it.preprocess_ms - d.inference_ms, 0.0), 3),
            },
            checks=list(d.checks) or None,
            cloud_cover=d.cloud.cloud_cover if d.cloud is not None else None,
            cloud_map=d.cloud.message() if d.cloud is not None else None,
            **it.message_fields(),
        )
        self._send(message)
        for check in d.checks:
            self.stats.add(f"check_{check}")
        if it.invalid is not None:
            self.stats.add(f"invalid_{it.invalid.reason}")
        sun = (message.payload.get("ephemeris") or {}).get("sun_alt_deg")
        changes = it.pipeline.verdicts.decided(d.label, d.confidence, d.cloud, sun)
        self._changes(camera, changes, message.payload.get("ephemeris"), message.payload.get("cloud_cover"))
        if it.pipeline.collect is not None:
            changed = any(isinstance(c, StateChange) for c in changes)
            for pick in it.pipeline.collect.picks(it.source, message.payload, changed):
                it.pipeline.collector.offer(pick)
        if it.ack is not None:
            it.ack("ok")
        self.stats.done(total_ms, it.arrived)

    def _field(self, fd: FieldDecisions) -> None:
        """A batch of a field's answers: the policy's messages, and for each epoch it completed the summary, the
        count of objects answered and the frame's ack."""
        pipeline = fd.items[0].pipeline
        messages, completed = pipeline.policy.answered(fd, self.factory, pipeline.camera)
        for message in messages:
            self._send(message)
        for tally in completed:
            epoch = tally.epoch
            if epoch.ack is not None:
                epoch.ack("ok")
            n = int(tally.class_counts.sum()) if tally.class_counts is not None else 0
            if not epoch.replay:
                self.stats.done(1e3 * (time.perf_counter() - epoch.arrived), epoch.arrived, n)

    def _batch_failed(self, f: BatchFailed) -> None:
        log.error("backend failed on a batch of %d: %s", len(f.items), f.reason)
        self.stats.add("failed", len(f.items))
        fields = [it for it in f.items if isinstance(it, FieldItem)]
        for it in f.items:
            if it.ack is not None:
                it.ack(f"failed: {f.reason}")
        if fields:  # a field's frame is acknowledged once all the batches of its epoch are back
            for tally in fields[0].pipeline.policy.failed(fields):
                if tally.epoch.ack is not None:
                    tally.epoch.ack(f"failed: {f.reason}")

    def _observed(self, o: Observed) -> None:
        what, camera = o.what, o.pipeline.camera
        if isinstance(what, Rejected):
            self.stats.add("corrupt")
            log.warning("%s: input rejected: %s", camera, what.reason)
            self._event(camera, "input_rejected", "warning", what.reason, frame_id=what.frame_id, source=what.source)
            if what.ack is not None:
                what.ack(f"rejected: {what.reason}")
        elif isinstance(what, SourceFailed):
            log.error("%s: source failed: %s", camera, what.reason)
            self._event(camera, "source_failed", "warning", what.reason, source=what.source)
            if o.pipeline.verdicts is not None:
                self._changes(camera, o.pipeline.verdicts.failed(what.reason))
        elif isinstance(what, SourceRecovered):
            log.info("%s: source recovered: %s", camera, what.reason)
            self._event(camera, "source_recovered", "info", what.reason, source=what.source)
        elif isinstance(what, Vanished):
            self.stats.add("vanished")
            log.warning("%s: skipped: %s", camera, what.reason)
        elif isinstance(what, FormatChanged):
            log.warning("%s: %s", camera, what.reason)
            details = {"source": what.source, "previous": what.previous, "current": what.current}
            self._event(camera, "camera_mode_changed", "warning", what.reason, **details)

    def _event(self, camera: str, event: str, severity: str, message: str, **details) -> None:
        self._send(
            self.factory.message("event", camera, event=event, severity=severity, message=message, details=details)
        )

    def _changes(
        self, camera: str, changes: list[Change], ephemeris: dict | None = None, cloud_cover: float | None = None
    ) -> None:
        for change in changes:
            if isinstance(change, StateChange):
                t = change.transition
                self._send(
                    self.factory.message(
                        "state",
                        camera,
                        state=t.state,
                        previous=t.previous,
                        since=utc_now(),
                        confidence=t.confidence,
                        frames=t.frames,
                        safe=change.safe,
                        ephemeris=ephemeris,
                        cloud_cover=cloud_cover,
                    )
                )
                self._event(camera, t.event, t.severity, t.message, previous=t.previous, state=t.state)
            else:
                log.info("%s: safety -> %s (%s)", camera, "SAFE" if change.safe else "UNSAFE", change.reason)
                verdict = "safe" if change.safe else "unsafe"
                severity = "info" if change.safe else "warning"
                self._event(camera, "safety_change", severity, f"{verdict}: {change.reason}", safe=change.safe)

    def _periodic(self) -> None:
        for pipeline in self.pipelines:
            if pipeline.verdicts is not None:
                self._changes(pipeline.camera, pipeline.verdicts.check())
        self._check_stores()
        if time.monotonic() - self._metrics_at >= self.facts.metrics_interval_s:
            self._metrics()

    def _check_stores(self) -> None:
        """Retry what a full disk refused, and say when a store fails or recovers (once each)."""
        for store in self._stores:
            store.retry()
            now, before = store.problem, self._store_problems.get(id(store))
            if now and not before:
                self._store_problems[id(store)] = now
                self._device_event(
                    "storage_failed", "critical", f"cannot write {store.path}: {now}", path=str(store.path)
                )
            elif before and not now:
                del self._store_problems[id(store)]
                self._device_event("storage_recovered", "info", f"{store.path} is writable again", path=str(store.path))

    def _device_event(self, event: str, severity: str, message: str, **details) -> None:
        # Events are per camera in the contract: a device-wide one goes to every camera's event topic.
        for pipeline in self.pipelines:
            self._event(pipeline.camera, event, severity, message, **details)

    def _metrics(self) -> None:
        self._metrics_at = time.monotonic()
        snap = self.stats.snapshot()
        snap["counts"]["dropped"] += sum(r.dropped() for r in self.reporters)
        collectors = [p.collector for p in self.pipelines if p.collector is not None]
        if collectors:
            snap["counts"]["collected"] = sum(c.collected for c in collectors)
            snap["counts"]["collect_skipped"] = sum(c.dropped + c.vanished for c in collectors)
        depth = {"batch": self.facts.item_queue_depth(), "outbox": sum(r.depth() for r in self.reporters)}
        self._send(
            self.factory.message(
                "metrics",
                **snap,
                queue_depth=depth,
                backend=self.facts.backend,
                precision=self.facts.precision,
                host_rss_mb=host_rss_mb(),
                device_temperature_c=temperatures() or None,
                gpu_load=gpu_load(),
            )
        )

    def _status(self, state: str) -> None:
        self._send(
            self.factory.message(
                "status",
                state=state,
                version=__version__,
                cameras=[p.camera for p in self.pipelines],
                started=self.started,
            )
        )

    def _announced(self, a: Announced) -> None:
        if a.payload.strip() == b"online":
            log.info("Home Assistant is online: republishing discovery")
            self._discovery()

    def _discovery(self) -> None:
        from skyedge.edge.observatory.homeassistant import discovery_messages

        cameras = [p.camera for p in self.pipelines if p.verdicts is not None]
        for message in discovery_messages(
            self.facts.homeassistant_prefix,
            self.factory,
            cameras,
            self.facts.model_name,
            self.facts.classes,
            self.facts.cloud_map,
            frozenset(p.camera for p in self.pipelines if getattr(p.task, "stars", None) is not None),
            frozenset(p.camera for p in self.pipelines if getattr(getattr(p.task, "site", None), "checks_clock", False)),
        ):
            self._send(message)
