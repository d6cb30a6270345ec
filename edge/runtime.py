"""`skyedge run`: sources -> preprocess -> (sequence assembly) -> micro-batch -> backend -> postprocess -> reporters.

One thread per pipeline reads and preprocesses; one inference thread forms
micro-batches (up to ``batch_size`` items or ``max_wait_ms``) across all
pipelines, runs the shared backend and hands results to the reporters. The
queue between them is bounded: file sources wait (their input stays on disk),
a live camera's frames are dropped when inference falls behind, and every
drop is counted and reported. SIGINT/SIGTERM drain the queue, flush the
reporters and publish status 'offline'.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from skyedge import __version__
from skyedge.edge.backends import create_backend, resolve_kind
from skyedge.edge.device_stats import gpu_load, temperatures
from skyedge.edge.messages import MessageFactory, utc_from_timestamp, utc_now
from skyedge.edge.package import open_package
from skyedge.edge.reporters import create_reporters
from skyedge.edge.safety import SafetyPolicy
from skyedge.edge.sequences import SequenceAssembler
from skyedge.edge.sky_state import SkyState
from skyedge.edge.sources import RawFrame, Rejected, create_source
from skyedge.edge.stats import Stats
from skyedge.errors import SkyedgeError
from skyedge.imageio import read_frame
from skyedge.preprocess import PreprocessError, prepare_frame

log = logging.getLogger(__name__)

_DONE = object()


class RuntimeConfigError(SkyedgeError, ValueError):
    """A deployment that cannot start (named field, reason)."""


@dataclass
class Item:
    """One model input on its way through the pipeline."""

    pipeline: PipelineContext
    frame_id: str
    source: str
    inputs: dict[str, np.ndarray]
    arrived: float
    preprocess_ms: float
    captured: float | None = None
    extra: dict = field(default_factory=dict)
    ack: object = None


class Countdown:
    """Acks an epoch frame once every object cut from it has been reported."""

    def __init__(self, n: int, ack):
        self.n, self.ack, self._lock = n, ack, threading.Lock()

    def __call__(self, status: str = "ok") -> None:
        with self._lock:
            self.n -= 1
            if self.n == 0 and self.ack is not None:
                self.ack(status)


@dataclass
class PipelineContext:
    """Per-camera state shared by its source thread and the inference thread."""

    cfg: object
    source: object
    sky: SkyState | None
    assembler: SequenceAssembler | None
    safety: SafetyPolicy | None = None
    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    live: bool = False


def _load_calibration_frame(path, what: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return read_frame(path)[0]
    except Exception as exc:  # noqa: BLE001 - reported as a config error naming the key
        raise RuntimeConfigError(f"preprocess.{what}: cannot read {path}: {exc}") from None


class Runtime:
    """A configured device, ready to :meth:`run`."""

    def __init__(self, cfg, once: bool = False, stop_event: threading.Event | None = None):
        self.cfg, self.once = cfg, once
        self.stop = stop_event or threading.Event()
        self.backend_kind = resolve_kind(cfg.backend.kind)
        self.package = open_package(cfg.model.package, cfg.model.precision, self.backend_kind, cfg.model.expect_classes)
        self.card = self.package.card
        self.backend = create_backend(self.backend_kind, self.package, cfg.backend)
        expected = [t.name for t in self.card.inputs]
        if sorted(self.backend.input_names) != sorted(expected):
            raise RuntimeConfigError(
                f"{self.package.onnx_file}: graph inputs {self.backend.input_names} differ from the card's {expected}"
            )
        self.factory = MessageFactory(cfg.site, cfg.device, {**self.package.model_info, "backend": self.backend_kind})
        self.stats = Stats()
        self.queue: queue.Queue = queue.Queue(maxsize=max(4 * cfg.backend.batch_size, 16))
        self.results: queue.Queue = queue.Queue(maxsize=8)
        self._sky_lock = threading.Lock()
        self.pipelines = [self._pipeline(p) for p in cfg.pipelines]
        self.reporters = create_reporters(cfg, self.factory)
        self.started = utc_now()
        self._threads: list[threading.Thread] = []
        self._metrics_at = time.monotonic()
        mqtt = cfg.reporters.mqtt
        self.metrics_interval = mqtt.metrics_interval_s if mqtt else 30.0
        self.alpaca = None
        if cfg.alpaca.enabled:
            self.alpaca = self._alpaca_server()

    def _alpaca_server(self):
        from skyedge.edge.alpaca import AlpacaServer

        frames = [c for c in self.pipelines if c.safety is not None]
        if not frames:
            raise RuntimeConfigError("alpaca.enabled: the SafetyMonitor needs a frame (all-sky) pipeline")
        wanted = self.cfg.alpaca.camera
        ctx = next((c for c in frames if c.cfg.camera == wanted), frames[0]) if wanted else frames[0]
        name = f"skyedge {self.cfg.device} {ctx.cfg.camera}"
        description = f"All-sky safety from {self.card.name} on {self.cfg.site}/{self.cfg.device}/{ctx.cfg.camera}"
        try:
            return AlpacaServer(ctx.safety, self.cfg.alpaca, name, description)
        except OSError as exc:
            raise RuntimeConfigError(
                f"alpaca: cannot listen on {self.cfg.alpaca.bind}:{self.cfg.alpaca.port} or UDP {self.cfg.alpaca.discovery_port}: {exc}"
            ) from None

    def _homeassistant(self) -> None:
        from skyedge.edge.homeassistant import discovery_messages

        cameras = [c.cfg.camera for c in self.pipelines if c.safety is not None]
        for topic, payload in discovery_messages(self.cfg.homeassistant.prefix, self.factory, cameras, self.card.name):
            for reporter in self.reporters:
                if reporter.name == "mqtt":
                    reporter.publish(topic, payload, 1, True)

    def _pipeline(self, p) -> PipelineContext:
        task = self.card.task
        if (p.source.kind == "fits-sequence") != (task == "sequence"):
            raise RuntimeConfigError(
                f"pipelines[{p.camera}].source.kind: a '{p.source.kind}' source cannot feed the {task} model "
                f"'{self.card.name}' (frames need a frame model, fits-sequence a sequence model)"
            )
        unknown = sorted(set(p.safety.safe_classes) - set(self.card.classes))
        if task == "frame" and unknown:
            raise RuntimeConfigError(
                f"pipelines[{p.camera}].safety.safe_classes: {unknown} not among the model's classes {self.card.classes}"
            )
        source = create_source(p.source, self.once, self.stop)
        sky = SkyState(p.sky_state.hysteresis_frames, p.sky_state.stale_after_s) if task == "frame" else None
        safety = (
            SafetyPolicy(p.safety.safe_classes, p.safety.hold_frames, p.safety.hold_s, p.safety.stale_after_s)
            if task == "frame"
            else None
        )
        assembler = SequenceAssembler(self.card.sequence) if task == "sequence" else None
        return PipelineContext(
            p,
            source,
            sky,
            assembler,
            safety,
            _load_calibration_frame(p.preprocess.dark, "dark"),
            _load_calibration_frame(p.preprocess.flat, "flat"),
            live=p.source.kind == "camera",
        )

    # ------------------------------------------------------------ publishing

    def publish(self, kind: str, camera: str | None = None, **fields) -> dict:
        """Build, validate and hand one message to every reporter."""
        payload = self.factory.make(kind, **({"camera": camera} if camera and kind != "metrics" else {}), **fields)
        topic = self.factory.topic(kind, camera if kind != "metrics" and kind != "status" else None)
        for reporter in self.reporters:
            reporter.publish(topic, payload, MessageFactory.QOS[kind], MessageFactory.RETAINED[kind])
        return payload

    def _status(self, state: str) -> None:
        self.publish(
            "status",
            state=state,
            version=__version__,
            cameras=[p.cfg.camera for p in self.pipelines],
            started=self.started,
        )

    def _metrics(self) -> None:
        snap = self.stats.snapshot()
        snap["counts"]["dropped"] += sum(getattr(r, "dropped", lambda: 0)() for r in self.reporters)
        depth = {"batch": self.queue.qsize(), "outbox": sum(r.depth() for r in self.reporters)}
        self.publish(
            "metrics",
            **snap,
            queue_depth=depth,
            backend=self.backend_kind,
            precision=self.package.precision,
            host_rss_mb=_rss_mb(),
            device_temperature_c=temperatures() or None,
            gpu_load=gpu_load(),
        )

    # ------------------------------------------------------------ stage 1: read + preprocess

    def _reject(self, ctx: PipelineContext, rejected: Rejected) -> None:
        self.stats.add("corrupt")
        log.warning("%s: input rejected: %s", ctx.cfg.camera, rejected.reason)
        self.publish(
            "event",
            ctx.cfg.camera,
            event="source_failed" if rejected.frame_id == "camera" else "input_rejected",
            severity="warning",
            message=rejected.reason,
            details={"frame_id": rejected.frame_id, "source": rejected.source},
        )
        if rejected.frame_id == "camera" and ctx.safety is not None:
            self._safety(ctx, ctx.safety.failed(rejected.reason))
        if rejected.ack:
            rejected.ack(f"rejected: {rejected.reason}")

    def _put(self, ctx: PipelineContext, item: Item) -> None:
        if not ctx.live:
            self.queue.put(item)  # back-pressure: the file waits on disk meanwhile
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.stats.add("dropped")
            log.warning("%s: inference is behind; dropped live frame %s", ctx.cfg.camera, item.frame_id)

    def _frame_items(self, ctx: PipelineContext, raw: RawFrame) -> list[Item]:
        t0 = time.perf_counter()
        name = self.card.inputs[0].name
        x = prepare_frame(raw.image, self.card.preprocess, bayer=ctx.cfg.preprocess.bayer, dark=ctx.dark, flat=ctx.flat)
        return [
            Item(
                ctx,
                raw.frame_id,
                raw.source,
                {name: x},
                t0,
                1e3 * (time.perf_counter() - t0),
                raw.captured,
                {},
                raw.ack,
            )
        ]

    def _sequence_items(self, ctx: PipelineContext, raw: RawFrame) -> list[Item]:
        t0 = time.perf_counter()
        epochs = ctx.assembler.add_epoch(raw.image, raw.header["conditions"], ctx.source.catalog)
        ms = 1e3 * (time.perf_counter() - t0) / max(len(epochs), 1)
        done = Countdown(len(epochs), raw.ack)
        stamps_name = self.card.input("stamps").name
        cond_name = next((t.name for t in self.card.inputs if t.role == "conditions"), None)
        items = []
        for e in epochs:
            inputs = {stamps_name: e.stamps}
            if cond_name:
                inputs[cond_name] = e.conditions
            extra = {"object_id": e.object_id, "n_epochs": e.n_epochs, "mjd": e.mjd, "position": {"x": e.x, "y": e.y}}
            items.append(Item(ctx, f"{raw.frame_id}:{e.object_id}", raw.source, inputs, t0, ms, None, extra, done))
        return items

    def _source_loop(self, ctx: PipelineContext) -> None:
        try:
            for raw in ctx.source:
                if isinstance(raw, Rejected):
                    self._reject(ctx, raw)
                    continue
                try:
                    items = self._frame_items(ctx, raw) if ctx.assembler is None else self._sequence_items(ctx, raw)
                except (PreprocessError, ValueError) as exc:
                    self._reject(ctx, Rejected(raw.frame_id, raw.source, f"{raw.source}: {exc}", raw.ack))
                    continue
                for item in items:
                    self._put(ctx, item)
        except Exception:
            log.exception("%s: source failed", ctx.cfg.camera)
            self.stats.add("failed")
        finally:
            self.queue.put(_DONE)

    # ------------------------------------------------------------ stage 2: batch + infer + report

    def _gather(self, first: Item) -> list[Item]:
        batch = [first]
        deadline = time.monotonic() + self.cfg.backend.max_wait_ms / 1e3
        while len(batch) < self.cfg.backend.batch_size:
            try:
                nxt = self.queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if nxt is _DONE:
                self._done += 1
                continue
            batch.append(nxt)
        return batch

    def _stack(self, batch: list[Item]) -> tuple[dict[str, np.ndarray], list[int]]:
        names = list(batch[0].inputs)
        if self.card.task == "frame":
            return {n: np.stack([it.inputs[n] for it in batch]) for n in names}, []
        # Right-pad to the longest history: the recurrence is causal, each answer is read at its own last epoch.
        lengths = [len(it.inputs[names[0]]) for it in batch]
        t = max(lengths)
        out = {}
        for n in names:
            first = batch[0].inputs[n]
            arr = np.zeros((len(batch), t, *first.shape[1:]), dtype=np.float32)
            for i, it in enumerate(batch):
                arr[i, : lengths[i]] = it.inputs[n]
            out[n] = arr
        return out, lengths

    def _infer(self, batch: list[Item]) -> None:
        inputs, lengths = self._stack(batch)
        t0 = time.perf_counter()
        try:
            outputs = self.backend.infer(inputs)
        except Exception as exc:
            log.exception("backend failed on a batch of %d", len(batch))
            self.stats.add("failed", len(batch))
            for it in batch:
                if it.ack:
                    it.ack(f"failed: {exc}")
            return
        t1 = time.perf_counter()
        # Reporting (message building, schema checks, sky state, acks) runs on its own thread, so the
        # backend can start the next batch meanwhile.
        self.results.put((batch, outputs, lengths, t0, t1))

    def _report(self, batch, outputs, lengths, t0, t1) -> None:
        infer_ms = 1e3 * (t1 - t0)
        prob = outputs[self.card.output("probabilities").name]
        dist_spec = next((t for t in self.card.outputs if t.role == "min_distance"), None)
        dist = outputs[dist_spec.name] if dist_spec is not None else None
        threshold = self.card.metric_head.unknown_threshold
        latencies = []
        for i, it in enumerate(batch):
            p = prob[i] if not lengths else prob[i, lengths[i] - 1]
            top = int(np.argmax(p))
            distance = float(dist[i]) if dist is not None else None
            unknown = bool(distance is not None and threshold is not None and distance > threshold)
            label = "unknown" if unknown else self.card.classes[top]
            total_ms = 1e3 * (time.perf_counter() - it.arrived)
            latencies.append(total_ms)
            camera = it.pipeline.cfg.camera
            self.publish(
                "classification",
                camera,
                task=self.card.task,
                frame_id=it.frame_id,
                source=it.source,
                captured=utc_from_timestamp(it.captured) if it.captured else None,
                **{"class": label},
                top_class=self.card.classes[top],
                confidence=float(p[top]),
                probabilities={c: float(v) for c, v in zip(self.card.classes, p, strict=True)},
                unknown=unknown,
                distance=distance,
                latency_ms={
                    "total": round(total_ms, 3),
                    "preprocess": round(it.preprocess_ms, 3),
                    "inference": round(infer_ms, 3),
                    "queue": round(max(total_ms - it.preprocess_ms - infer_ms, 0.0), 3),
                },
                **it.extra,
            )
            if it.pipeline.safety is not None:
                self._safety(it.pipeline, it.pipeline.safety.frame(label))
            if it.pipeline.sky is not None:
                self._sky(it.pipeline, label, float(p[top]))
            if it.pipeline.assembler is not None:
                it.pipeline.assembler.record(it.extra["object_id"], label)
            if it.ack:
                it.ack("ok")
        self.stats.batch(t1 - t0, latencies, min(it.arrived for it in batch))

    def _safety(self, ctx: PipelineContext, change) -> None:
        if change is None:
            return
        log.info("%s: safety -> %s (%s)", ctx.cfg.camera, "SAFE" if change.safe else "UNSAFE", change.reason)
        self.publish(
            "event",
            ctx.cfg.camera,
            event="safety_change",
            severity="info" if change.safe else "warning",
            message=f"{'safe' if change.safe else 'unsafe'}: {change.reason}",
            details={"safe": change.safe},
        )

    def _sky(self, ctx: PipelineContext, label: str, confidence: float, transition=None) -> None:
        with self._sky_lock:  # updated by the report thread, checked for staleness by the inference thread
            transition = transition or ctx.sky.update(label, confidence)
        if transition is None:
            return
        camera = ctx.cfg.camera
        self.publish(
            "state",
            camera,
            state=transition.state,
            previous=transition.previous,
            since=utc_now(),
            confidence=transition.confidence,
            frames=transition.frames,
            safe=bool(ctx.safety.is_safe()) if ctx.safety is not None else False,
        )
        self.publish(
            "event",
            camera,
            event=transition.event,
            severity=transition.severity,
            message=transition.message,
            details={"previous": transition.previous, "state": transition.state},
        )

    def _report_loop(self) -> None:
        while True:
            job = self.results.get()
            if job is _DONE:
                return
            try:
                self._report(*job)
            except Exception:
                log.exception("reporting failed for a batch of %d", len(job[0]))
                self.stats.add("failed", len(job[0]))

    def _inference_loop(self) -> None:
        self._done = 0
        sources = len(self.pipelines)
        while self._done < sources:
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                first = None
            if first is _DONE:
                self._done += 1
            elif first is not None:
                self._infer(self._gather(first))
            self._periodic()

    def _periodic(self) -> None:
        for ctx in self.pipelines:
            if ctx.safety is not None:
                self._safety(ctx, ctx.safety.check())
            if ctx.sky is not None:
                with self._sky_lock:
                    stale = ctx.sky.check_stale()
                if stale is not None:
                    self._sky(ctx, "stale", 0.0, stale)
        if time.monotonic() - self._metrics_at >= self.metrics_interval:
            self._metrics_at = time.monotonic()
            self._metrics()

    # ------------------------------------------------------------ lifecycle

    def run(self) -> Stats:
        """Process until the sources end (``once``) or a stop is requested; then drain and flush."""
        self._status("online")
        if self.cfg.homeassistant.enabled:
            self._homeassistant()
        if self.alpaca is not None:
            self.alpaca.start()
        for ctx in self.pipelines:
            t = threading.Thread(target=self._source_loop, args=(ctx,), name=f"source-{ctx.cfg.camera}", daemon=True)
            t.start()
            self._threads.append(t)
        reporter = threading.Thread(target=self._report_loop, name="report", daemon=True)
        reporter.start()
        try:
            self._inference_loop()
        finally:
            self.results.put(_DONE)
            reporter.join()
            self._metrics()
            self._status("offline")
            self.close()
        return self.stats

    def close(self) -> None:
        """Close sources, backend and reporters (reporters flush first)."""
        self.stop.set()
        if self.alpaca is not None:
            self.alpaca.stop()
        for t in self._threads:
            t.join(timeout=5)
        for ctx in self.pipelines:
            ctx.source.close()
        self.backend.close()
        for reporter in self.reporters:
            reporter.close()


def _rss_mb() -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM request a clean stop (drain, flush, status offline)."""

    def handler(signum, _frame):
        log.info("signal %s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
