"""JSON Schemas of the MQTT payloads (docs/architecture.md "MQTT contract") and a validator for them.

The schemas live beside this module in ``schemas/mqtt/``; observatory control
can validate against the same files. The publisher validates every payload
before it is sent, and the tests validate every message they receive.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

__all__ = [
    "KINDS",
    "PayloadError",
    "kind_of_topic",
    "payload_errors",
    "schema_for",
    "utc_now",
    "new_msg_id",
    "validate_message",
    "validate_payload",
]

KINDS = ("status", "classification", "state", "event", "metrics", "field")
SCHEMA_VERSION = 1


class PayloadError(ValueError):
    """A payload that does not match its topic's schema."""


def _load(name: str) -> dict:
    return json.loads(
        resources.files("skyedge").joinpath("schemas").joinpath("mqtt").joinpath(name).read_text(encoding="utf-8")
    )


@cache
def _registry() -> Registry:
    common = _load("common.schema.json")
    resource = Resource.from_contents(common)
    return Registry().with_resource(common["$id"], resource)


def schema_for(kind: str) -> dict:
    """The JSON Schema (a dict) for one message kind."""
    if kind not in KINDS:
        raise KeyError(f"unknown message kind '{kind}'; expected one of {', '.join(KINDS)}")
    return _load(f"{kind}.schema.json")


def _inline_refs(node: Any, common: dict, in_common: bool = False) -> Any:
    """The schema with every reference into common.schema.json replaced by its target (no lookups at run time)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        local = in_common and isinstance(ref, str) and ref.startswith("#/")
        if isinstance(ref, str) and (ref.startswith("common.schema.json#/") or local):
            target: Any = common
            for part in ref.split("#/", 1)[1].split("/"):
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs({**target, **rest}, common, True)
        return {k: _inline_refs(v, common, in_common) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, common, in_common) for v in node]
    return node


@cache
def _inlined(kind: str) -> dict:
    # Inlined: the edge validates every message before sending, and resolving $refs through the
    # registry on each call cost more than the model's inference (about 0.5 ms per message).
    return _inline_refs(schema_for(kind), _load("common.schema.json"))


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_inlined(kind), registry=_registry(), format_checker=FormatChecker())


@cache
def _fast_validator(kind: str):
    """jsonschema-rs's validator of the same schema, when installed (the edge extra): it says only whether a payload
    is valid, about 150 times sooner than jsonschema (0.008 against 1.2 ms per field classification, 2 cores),
    which words the problems of an invalid one. A field epoch publishes hundreds of messages."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(_inlined(kind), validate_formats=True)


def _is_valid(kind: str, payload: Any) -> bool:
    """jsonschema-rs is trusted only to accept (tests check it accepts nothing jsonschema rejects); what it refuses,
    such as a numpy scalar it does not read as a number, jsonschema judges."""
    fast = _fast_validator(kind)
    try:
        if fast is not None and fast.is_valid(payload):
            return True
    except (TypeError, ValueError):
        pass
    return _validator(kind).is_valid(payload)


def _where(error) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (("." if path else "") + str(part))
    return path or "<payload>"


def payload_errors(kind: str, payload: Any) -> list[str]:
    """Every way ``payload`` violates the schema of ``kind``, as 'path: message' lines."""
    validator = _validator(kind)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_where(e)}: {e.message}" for e in errors]


def validate_payload(kind: str, payload: Any) -> None:
    """Raise PayloadError naming every bad field when ``payload`` does not match ``kind``."""
    if _is_valid(kind, payload):
        return
    problems = payload_errors(kind, payload)
    if problems:
        raise PayloadError(f"{kind} payload invalid: " + "; ".join(problems))


def kind_of_topic(topic: str) -> str:
    """The message kind from a topic: its last level (``.../allsky/state`` -> ``state``)."""
    kind = topic.rsplit("/", 1)[-1]
    if kind not in KINDS:
        raise PayloadError(f"topic '{topic}' is not a skyedge topic (last level must be one of {', '.join(KINDS)})")
    return kind


def validate_message(topic: str, raw: bytes | str) -> dict:
    """Decode a received message (UTF-8 JSON), validate it against its topic's schema, return it."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        payload = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"message on '{topic}' is not UTF-8 JSON: {exc}") from None
    validate_payload(kind_of_topic(topic), payload)
    return payload


def utc_now() -> str:
    """Current time as the contract's UTC ISO-8601 (millisecond precision, Z suffix)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_msg_id() -> str:
    """A unique message id; QoS 1 redeliveries repeat it, so consumers can drop duplicates."""
    return uuid.uuid4().hex
