"""MQTT figures for `skyedge bench --mqtt`: sustained QoS 1 rate through the outbox, and outbox replay time.

Counted at a separate subscriber with a persistent QoS 1 session, so "sent"
means "arrived", not merely "acknowledged by the broker" (docs/mqtt.md).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from skyedge.brokers import free_port
from skyedge.edge.config import MqttSection
from skyedge.edge.messages import Message, MessageFactory
from skyedge.edge.reporters.mqtt import MqttReporter

_MODEL = {"name": "bench", "sha256": "0" * 64, "precision": "fp32"}


def sample_classification(factory: MessageFactory, i: int, camera: str = "bench") -> Message:
    """A valid classification message for frame ``i`` (benchmarks and delivery tests)."""
    return factory.message(
        "classification",
        camera,
        task="frame",
        frame_id=f"f{i:06d}",
        **{"class": "clear"},
        confidence=0.9,
        probabilities={"clear": 0.9, "cloudy": 0.1},
        unknown=False,
        latency_ms={"total": 1.0},
    )


class _Counter:
    def __init__(self, host: str, port: int, topic: str):
        self.ids: set[str] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, m: self.ids.add(json.loads(m.payload)["msg_id"])
        self.client.connect(host, port, 30)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("subscriber did not subscribe")

    def wait(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while len(self.ids) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_figures(host: str, port: int, n: int = 10_000, protocol: str = "3.1.1") -> dict:
    """Sustained QoS 1 messages/s (queue -> PUBACK -> subscriber) and the time to replay ``n`` queued messages."""
    with tempfile.TemporaryDirectory(prefix="skyedge-mqtt-bench-") as tmp:
        factory = MessageFactory("bench", f"dev-{uuid.uuid4().hex[:6]}", _MODEL)
        counter = _Counter(host, port, f"skyedge/bench/{factory.device}/bench/classification")
        messages = [sample_classification(factory, i) for i in range(n)]
        cfg = MqttSection.model_validate(
            {"host": host, "port": port, "protocol": protocol, "queue_path": str(Path(tmp) / "a.queue")}
        )
        reporter = MqttReporter(cfg, factory)
        reporter.connected.wait(10)
        t0 = time.perf_counter()
        for m in messages:
            reporter.publish(m)
        reporter.flush(300)
        acked = time.perf_counter() - t0
        received = counter.wait(n, 60)
        sustained = received / (time.perf_counter() - t0)
        reporter.close()
        # Replay: queue n messages while no broker listens, then point the same outbox at the broker.
        dead = MqttSection.model_validate(
            {"host": "127.0.0.1", "port": free_port(), "protocol": protocol, "queue_path": str(Path(tmp) / "b.queue")}
        )
        offline = MqttReporter(dead, factory)
        for i in range(n):
            offline.publish(sample_classification(factory, n + i))
        offline.close(timeout=0)
        live = cfg.model_copy(update={"queue_path": dead.queue_path})
        t1 = time.perf_counter()
        replayer = MqttReporter(live, factory)
        replayer.connected.wait(10)
        replayer.flush(300)
        replay_s = time.perf_counter() - t1
        replayed = counter.wait(2 * n, 60) - received
        replayer.close()
        counter.close()
        return {
            "messages": n,
            "protocol": protocol,
            "acked_per_s": n / acked,
            "sustained_received_per_s": sustained,
            "received": received,
            "replay_seconds": replay_s,
            "replayed_received": replayed,
        }
