"""MQTT payload schemas: the documented examples validate; each kind of defect is caught and located."""

from __future__ import annotations

import copy
import json

import pytest

from skyedge.payloads import (
    KINDS,
    PayloadError,
    kind_of_topic,
    new_msg_id,
    payload_errors,
    schema_for,
    utc_now,
    validate_message,
    validate_payload,
)


def example(kind: str, index: int = 0) -> dict:
    return copy.deepcopy(schema_for(kind)["examples"][index])


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_has_valid_examples(kind):
    examples = schema_for(kind)["examples"]
    assert examples
    for payload in examples:
        validate_payload(kind, payload)


def test_helpers_produce_contract_values():
    payload = example("status")
    payload.update(ts=utc_now(), msg_id=new_msg_id())
    validate_payload("status", payload)
    assert new_msg_id() != new_msg_id()


@pytest.mark.parametrize(
    "kind, mutate, where",
    [
        ("classification", lambda p: p["probabilities"].update(cloudy=1.2), "probabilities.cloudy"),
        ("classification", lambda p: p.pop("class"), "'class' is a required property"),
        ("classification", lambda p: p.update(colour="red"), "'colour' was unexpected"),
        ("classification", lambda p: p.update(ts="2026-11-23T03:14:15+01:00"), "ts:"),
        ("classification", lambda p: p.update(ts="yesterday"), "ts:"),
        ("classification", lambda p: p.update(task="sequence"), "'object_id' is a required property"),
        ("classification", lambda p: p["model"].update(precision="int4"), "model.precision"),
        ("classification", lambda p: p.update(device="allsky/01"), "device:"),
        ("classification", lambda p: p.update(msg_id="1"), "msg_id:"),
        ("status", lambda p: p.update(state="sleeping"), "state:"),
        ("state", lambda p: p.pop("safe"), "'safe' is a required property"),
        ("event", lambda p: p.update(event="weather"), "event:"),
        ("metrics", lambda p: p["counts"].update(dropped=-1), "counts.dropped"),
        ("metrics", lambda p: p.update(schema="skyedge.state/1"), "schema:"),
    ],
)
def test_invalid_payloads_fail_with_location(kind, mutate, where):
    payload = example(kind)
    mutate(payload)
    problems = payload_errors(kind, payload)
    assert problems, "the defect was not caught"
    assert any(where in p for p in problems), problems
    with pytest.raises(PayloadError, match=kind):
        validate_payload(kind, payload)


def test_validate_message_reads_kind_from_topic():
    payload = example("state")
    assert validate_message("skyedge/la-palma/allsky-01/allsky/state", json.dumps(payload).encode()) == payload
    with pytest.raises(PayloadError, match="not a skyedge topic"):
        validate_message("skyedge/la-palma/allsky-01/allsky/weather", json.dumps(payload))
    with pytest.raises(PayloadError, match="not UTF-8 JSON"):
        validate_message("skyedge/la-palma/allsky-01/allsky/state", b"\xff{")
    # A state payload on a classification topic is wrong, whatever it looks like.
    with pytest.raises(PayloadError):
        validate_message("skyedge/la-palma/allsky-01/allsky/classification", json.dumps(payload))


def test_kind_of_topic():
    assert kind_of_topic("skyedge/s/d/metrics") == "metrics"
    assert kind_of_topic("skyedge/s/d/cam/classification") == "classification"
    with pytest.raises(PayloadError):
        kind_of_topic("skyedge/s/d/cam")
    with pytest.raises(KeyError, match="unknown message kind"):
        schema_for("weather")


def _mutations(payload: dict):
    """Every payload one defect away from a valid one: a key dropped, a value of the wrong type, a stray key;
    nested objects alike."""
    for key, value in payload.items():
        dropped = copy.deepcopy(payload)
        dropped.pop(key)
        yield dropped
        for wrong in ("x", -1, 1.5, None, [], {}, True):
            if type(wrong) is not type(value):
                changed = copy.deepcopy(payload)
                changed[key] = wrong
                yield changed
        if isinstance(value, dict) and value:
            for inner in _mutations(value):
                nested = copy.deepcopy(payload)
                nested[key] = inner
                yield nested
    stray = copy.deepcopy(payload)
    stray["stray_key"] = 1
    yield stray


@pytest.mark.parametrize("kind", KINDS)
def test_validation_refuses_exactly_what_the_schema_refuses(kind):
    """The fast validator (jsonschema-rs, where installed) accepts nothing jsonschema would refuse."""
    checked = 0
    for example_payload in schema_for(kind)["examples"]:
        for payload in _mutations(example_payload):
            refused = bool(payload_errors(kind, payload))
            try:
                validate_payload(kind, payload)
                raised = False
            except PayloadError:
                raised = True
            assert raised == refused, (kind, json.dumps(payload)[:300])
            checked += 1
    assert checked > 20


def test_metrics_taken_back_to_back_still_meet_the_contract(monkeypatch):
    """A stop right after a periodic snapshot takes the final one within the millisecond: its interval rounded to
    0.0, which the contract refuses, and the publisher's shutdown stopped there, before its offline status."""
    from skyedge.edge.runtime import stats as stats_module

    monkeypatch.setattr(stats_module.time, "monotonic", lambda: 1000.0)  # both snapshots in one clock tick
    stats = stats_module.Stats()
    stats.snapshot()
    snap = stats.snapshot()
    assert snap["interval_s"] > 0
    validate_payload("metrics", {**example("metrics"), **snap})
