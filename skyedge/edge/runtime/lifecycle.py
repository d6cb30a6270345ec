"""`skyedge run`: threads and lifecycle around the stages (docs/architecture.md "Edge runtime").

    source -> task.items -> Batcher -> backend.infer -> task.decode -> publisher (verdicts, messages, acks)

One thread per pipeline reads its source and prepares model inputs; the
inference thread (the caller of :meth:`Runtime.run`) forms micro-batches
across pipelines, runs the shared backend and decodes the answers; the
publisher thread turns every record into messages. The item queue between
sources and inference is bounded: file sources wait (their input stays on
disk), a live camera's frames are dropped when inference falls behind, and
every drop is counted. SIGINT/SIGTERM drain the queues, flush the reporters
and publish status 'offline'.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time

from skyedge.edge.backends import Backend, create_backend, resolve_kind
from skyedge.edge.messages import MessageFactory
from skyedge.edge.package import open_package
from skyedge.edge.records import BatchFailed, Observed
from skyedge.edge.reporters import create_reporters
from skyedge.edge.runtime.batcher import DONE, Batcher, joined, split
from skyedge.edge.runtime.pipeline import Pipeline, build_pipeline
from skyedge.edge.runtime.publisher import DeviceFacts, Publisher
from skyedge.edge.runtime.stats import Stats
from skyedge.edge.sources import RawFrame, Rejected, SourceFailed
from skyedge.ephemeris import Ephemeris
from skyedge.errors import InputError
from skyedge.masks import card_mask

log = logging.getLogger(__name__)
# A daemon asked to stop waits this long for its answers to be published (systemd's default stop timeout is 90 s);
# what is left is published after a restart, its files never having been acknowledged.
STOP_DRAIN_S = 60.0


class Runtime:
    """A configured device, ready to :meth:`run`; a ``backend`` object replaces the one the config would build."""

    def __init__(
        self, cfg, once: bool = False, stop_event: threading.Event | None = None, backend: Backend | None = None
    ):
        self.cfg, self.once = cfg, once
        self.stop = stop_event or threading.Event()
        self.backend_kind = resolve_kind(cfg.backend.kind)
        self.package = open_package(cfg.model.package, cfg.model.precision, self.backend_kind, cfg.model.expect_classes)
        self.card = self.package.card
        b = cfg.backend
        self.backend = backend or create_backend(
            self.backend_kind,
            self.package,
            providers=b.providers,
            threads=b.threads,
            batch_size=b.batch_size * max((p.views for p in cfg.pipelines), default=1),  # a frame's views share its batch
            engine_dir=b.engine_dir,
            dla_core=b.dla_core,
            script=b.script,
        )
        ephemeris = None
        if cfg.site_location is not None:
            loc = cfg.site_location
            ephemeris = Ephemeris(loc.latitude_deg, loc.longitude_deg, loc.elevation_m)
            ephemeris.at(time.time())  # tabulate the hours ahead now, not on the first frame
        else:
            log.info("no site_location: frames get no ephemeris, no day gating by the sun (only by exposure) and no cross-checks")
        model_mask = card_mask(self.card, self.package.path)
        self.pipelines: list[Pipeline] = [
            build_pipeline(p, self.card, once, self.stop, ephemeris, model_mask, b.batch_size) for p in cfg.pipelines
        ]
        self.stats = Stats()
        self.items: queue.Queue = queue.Queue(maxsize=max(4 * b.batch_size, 16))
        factory = MessageFactory(cfg.site, cfg.device, {**self.package.model_info, "backend": self.backend_kind})
        mqtt = cfg.reporters.mqtt
        facts = DeviceFacts(
            backend=self.backend_kind,
            precision=self.package.precision,
            model_name=self.card.name,
            classes=list(self.card.classes),
            item_queue_depth=self.items.qsize,
            metrics_interval_s=mqtt.metrics_interval_s if mqtt else 30.0,
            homeassistant_prefix=cfg.homeassistant.prefix if cfg.homeassistant.enabled else None,
            cloud_map=any(t.role == "cloud_map" for t in self.card.outputs),
        )
        self.publisher = Publisher(factory, create_reporters(cfg, factory), self.pipelines, self.stats, facts)
        self.alpaca = None
        if cfg.alpaca.enabled:
            from skyedge.edge.observatory.alpaca import server_for

            cloud_map = any(t.role == "cloud_map" for t in self.card.outputs)
            self.alpaca = server_for(cfg, self.pipelines, self.card.name, cloud_map, ephemeris)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ source threads

    def _read(self, pipeline: Pipeline) -> None:
        try:
            for observed in pipeline.source:
                if not isinstance(observed, RawFrame):
                    self.publisher.put(Observed(pipeline=pipeline, what=observed))
                    continue
                try:
                    items = pipeline.task.items(pipeline, observed)
                except InputError as exc:  # this frame cannot be used: reported naming the file, the rest go on
                    reason = f"{observed.source}: {exc}"
                    rejected = Rejected(observed.frame_id, observed.source, reason, observed.ack)
                    self.publisher.put(Observed(pipeline=pipeline, what=rejected))
                    continue
                except Exception:  # a bug, not a bad frame: loud, counted, and the file stays unhandled
                    log.exception("%s: internal error on %s (a bug; the file is left for a restart)", pipeline.camera, observed.source)
                    self.stats.add("failed")
                    continue
                for item in items:
                    self._enqueue(pipeline, item)
        except Exception as exc:
            log.exception("%s: source failed", pipeline.camera)
            self.stats.add("failed")
            failed = SourceFailed(pipeline.camera, f"source stopped: {exc}")
            self.publisher.put(Observed(pipeline=pipeline, what=failed))
        finally:
            self.items.put(DONE)

    def _enqueue(self, pipeline: Pipeline, item) -> None:
        if not pipeline.live:
            self.items.put(item)  # back-pressure: the file waits on disk meanwhile
            return
        try:
            self.items.put_nowait(item)
        except queue.Full:
            self.stats.add("dropped")
            log.warning("%s: inference is behind; dropped live frame %s", pipeline.camera, item.frame_id)

    # ------------------------------------------------------------ inference thread

    def _infer(self) -> None:
        batcher = Batcher(self.items, self.cfg.backend.batch_size, self.cfg.backend.max_wait_ms / 1e3, len(self.pipelines))
        for items in batcher:
            self._infer_batch(items)

    def _infer_batch(self, items: list) -> None:
        """One backend call for a batch, whichever cameras its frames came from, and their decisions to the
        publisher: cameras share the model's batches, but each frame is decided by its own pipeline's task (its
        checks, cloud geometry, star watch)."""
        groups: dict[object, list] = {}
        for item in items:
            groups.setdefault(item.pipeline.task, []).append(item)
        batches = [(task, task.batch(group)) for task, group in groups.items()]
        t0 = time.perf_counter()
        try:
            inputs, counts = joined([batch.inputs for _, batch in batches])
            outputs = self.backend.infer(inputs) if inputs else {}
        except Exception as exc:
            log.exception("backend failed on a batch of %d", len(items))
            self.publisher.put(BatchFailed(items=items, reason=str(exc)))
            return
        seconds = time.perf_counter() - t0
        if inputs:
            self.stats.backend_call(seconds)
        for (task, batch), part in zip(batches, split(outputs, counts), strict=True):
            for decision in task.decode(batch, part, 1e3 * seconds):
                self.publisher.put(decision)

    # ------------------------------------------------------------ lifecycle

    def run(self) -> Stats:
        """Process until the sources end (``once``) or a stop is requested; then drain and flush."""
        self.publisher.start()
        if self.alpaca is not None:
            self.alpaca.start()
        for pipeline in self.pipelines:
            t = threading.Thread(target=self._read, args=(pipeline,), name=f"source-{pipeline.camera}", daemon=True)
            t.start()
            self._threads.append(t)
        try:
            self._infer()
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        """Stop the sources and the Alpaca server; the publisher drains (acks reach the sources' state), says
        'offline' and flushes; then the sources and the backend are closed."""
        self.stop.set()
        if self.alpaca is not None:
            self.alpaca.stop()
        for t in self._threads:
            t.join(timeout=5)
        self.publisher.close(timeout=None if self.once else STOP_DRAIN_S)
        for pipeline in self.pipelines:
            pipeline.source.close()
            if pipeline.collector is not None:
                pipeline.collector.close()  # after the publisher: it wrote the last picks to the queue
        self.backend.close()


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM request a clean stop (drain, flush, status offline)."""

    def handler(signum, _frame):
        log.info("signal %s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
