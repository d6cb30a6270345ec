"""Small paho-mqtt helpers for tests: a connected client and a message collector."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Collector:
    """A separate subscriber client that records every message it receives."""

    def __init__(self, broker, topic: str, qos: int = 1, protocol=mqtt.MQTTv311):
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = connect(broker, protocol=protocol, on_message=self._on_message)
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client.subscribe(topic, qos=qos)
        if not self._subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {topic}")

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        """Block until ``count`` messages arrived (or raise TimeoutError); return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(self.messages)} of {count} messages")
                self._cond.wait(left)
            return list(self.messages)

    def close(self):
        close(self.client)


def connect(broker, protocol=mqtt.MQTTv311, on_message=None, client_id: str | None = None) -> mqtt.Client:
    """A paho 2.x client connected to ``broker`` with its network loop running."""
    connected = threading.Event()
    result = {}
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
        protocol=protocol,
    )

    def on_connect(c, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        connected.set()

    client.on_connect = on_connect
    if on_message:
        client.on_message = on_message
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    if not connected.wait(10) or result["rc"].is_failure:
        close(client)
        raise ConnectionError(f"could not connect to {broker}: {result.get('rc')}")
    return client


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
