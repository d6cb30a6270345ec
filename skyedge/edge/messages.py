"""The MQTT contract's messages (docs/architecture.md "MQTT contract"): envelope, topic, QoS, retain, schema check.

Every skyedge payload is validated against its JSON Schema before it leaves
the process, so a bug shows up as a clear error at the source, not as a
message observatory control cannot parse. A :class:`Message` carries its kind
explicitly, so no reporter ever guesses what a message is from its topic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from skyedge.payloads import validate_payload


def utc_now() -> str:
    """UTC ISO-8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_from_timestamp(ts: float) -> str:
    """A POSIX time as the contract's timestamp."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Classifications are retained too, so a dashboard that (re)starts sees the latest at once; their MQTT 5
# message expiry (an hour) removes a retained one that is out of date.
RETAINED = {"status": True, "state": True, "metrics": True, "classification": True, "event": False, "field": True}
QOS = {"status": 1, "state": 1, "classification": 1, "event": 1, "metrics": 0, "field": 1}


@dataclass(frozen=True)
class Message:
    """One outgoing message. ``schema`` names the skyedge payload schema, or is None for foreign payloads (discovery)."""

    kind: str
    topic: str
    payload: dict
    qos: int = 1
    retain: bool = False
    schema: str | None = None

    @classmethod
    def contract(cls, kind: str, topic: str, payload: dict) -> Message:
        """A message of one of the contract's kinds, with that kind's QoS and retain flag."""
        return cls(kind, topic, payload, QOS[kind], RETAINED[kind], f"skyedge.{kind}/1")


class MessageFactory:
    """Stamps the envelope (schema, ts, site, device, model, msg_id) and knows the topics."""

    def __init__(self, site: str, device: str, model: dict | None, validate: bool = True):
        self.site, self.device, self.model, self.validate = site, device, model, validate
        self.root = f"skyedge/{site}/{device}"

    def topic(self, kind: str, camera: str | None = None) -> str:
        """``skyedge/<site>/<device>[/<camera>]/<kind>``."""
        return f"{self.root}/{camera}/{kind}" if camera else f"{self.root}/{kind}"

    def make(self, kind: str, **fields) -> dict:
        """A complete, validated payload of ``kind``."""
        payload = {
            "schema": f"skyedge.{kind}/1",
            "ts": utc_now(),
            "site": self.site,
            "device": self.device,
            "msg_id": uuid.uuid4().hex,
        }
        if self.model is not None:
            payload["model"] = self.model
        payload.update({k: v for k, v in fields.items() if v is not None})
        if self.validate:
            validate_payload(kind, payload)
        return payload

    def message(self, kind: str, camera: str | None = None, **fields) -> Message:
        """A validated message of ``kind``; camera-level kinds carry ``camera`` in the payload and topic."""
        if camera is not None:
            fields["camera"] = camera
        return Message.contract(kind, self.topic(kind, camera), self.make(kind, **fields))
