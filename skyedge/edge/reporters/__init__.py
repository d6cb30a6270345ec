"""Reporters: where messages go. Each has ``publish(message)``, ``listen(topic, callback)``, ``depth()``,
``dropped()``, ``stores()`` and ``close()``.

Only the publisher thread calls them (:mod:`skyedge.edge.runtime.publisher`).
``publish`` never blocks for long: the MQTT reporter only appends to its
durable outbox; the JSON-lines reporter appends a line.
"""

from __future__ import annotations


def create_reporters(cfg, factory) -> list:
    """The reporters the deployment configures (at least one; the schema enforces it)."""
    reporters = []
    if cfg.reporters.jsonl is not None:
        from skyedge.edge.reporters.jsonl import JsonlReporter

        reporters.append(JsonlReporter(cfg.reporters.jsonl.path))
    if cfg.reporters.mqtt is not None:
        from skyedge.edge.reporters.mqtt import MqttReporter

        reporters.append(MqttReporter(cfg.reporters.mqtt, factory))
    return reporters
