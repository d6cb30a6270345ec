"""Home Assistant as its users see it, without Home Assistant: the discovery configs against Home Assistant's
documented MQTT discovery schema, and the device's behaviour over a real broker. (The run against a real Home
Assistant is tests/test_homeassistant_real.py, marked `homeassistant`.)

Numbers refer to the Home Assistant issue: the open-set word (1), the documented roof automation (2), retained
classifications (3), the verdict's confidence (4), entity names and ids (5), stable attributes (6), republishing
when Home Assistant comes online and the declared sensor options (7).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import paho.mqtt.client as mqtt
import pytest
import yaml
from edge_helpers import RunningDaemon, package_with_unknown_threshold, topic_root, wait_for, write_config
from mqtt_helpers import Collector, connect

from skyedge.edge.messages import MessageFactory
from skyedge.edge.observatory.homeassistant import discovery_messages

CLASSES = ["arc", "diffuse", "discrete", "cloudy", "moon", "clear"]
MODEL = {"name": "allsky-tiny", "sha256": "0" * 64, "precision": "fp32"}
DOCS = Path(__file__).parents[1] / "docs" / "observatory-control.md"


def _configs(site="la-palma", device="allsky-01", cameras=("allsky",)):
    factory = MessageFactory(site, device, MODEL)
    return {
        m.topic: m.payload for m in discovery_messages("homeassistant", factory, list(cameras), "allsky-tiny", CLASSES)
    }


def _render(template: str, value_json: dict):
    # StrictUndefined, as Home Assistant's own templates: an undefined value is an error, not an empty string.
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701 - JSON, not HTML
    return env.from_string(template).render(value_json=value_json)


def test_5_entity_names_are_short_and_ids_carry_the_site():
    configs = _configs()
    names = sorted(c["name"] for c in configs.values())
    assert names == ["Confidence", "Connectivity", "Last classification", "Sky state", "Unsafe"]
    for c in configs.values():
        assert c["has_entity_name"] is True and c["device"]["name"] == "skyedge allsky"
        assert c["object_id"].startswith("skyedge_la_palma_allsky_01_allsky_") and c["unique_id"] == c["object_id"]
        assert c["device"]["suggested_area"] == "la-palma"
    # Two sites with the same device and camera names never collide.
    other = _configs(site="paranal")
    ids = {c["unique_id"] for c in configs.values()} | {c["unique_id"] for c in other.values()}
    assert len(ids) == 10 and not set(configs) & set(other)


def test_1_7_states_are_declared_and_the_open_set_word_is_not_unknown():
    configs = {c["name"]: c for c in _configs().values()}
    sky, last = configs["Sky state"], configs["Last classification"]
    assert sky["device_class"] == "enum" and sky["options"] == [*CLASSES, "unrecognised", "day", "stale"]
    assert last["device_class"] == "enum" and last["options"] == [*CLASSES, "unrecognised", "day"]
    for c in (sky, last):
        assert "unknown" not in c["options"]  # Home Assistant's own word for "no data yet"
    connectivity = configs["Connectivity"]
    assert connectivity["device_class"] == "connectivity" and connectivity["entity_category"] == "diagnostic"
    assert "availability" not in connectivity  # it says offline itself
    assert all("availability" in c for n, c in configs.items() if n != "Connectivity")
    unsafe = configs["Unsafe"]
    assert unsafe["device_class"] == "safety"
    assert _render(unsafe["value_template"], {"safe": False}) == "ON"
    assert _render(unsafe["value_template"], {"safe": True}) == "OFF"
    assert _render(connectivity["value_template"], {"state": "offline"}) == "OFF"


def test_a_model_with_its_own_day_class_declares_day_once():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    messages = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", [*CLASSES, "day"])
    for options in (m.payload["options"] for m in messages if "options" in m.payload):
        assert len(options) == len(set(options)) and "day" in options


def test_6_attributes_change_only_with_the_state():
    configs = {c["name"]: c for c in _configs().values()}
    state_message = {
        "schema": "skyedge.state/1",
        "ts": "2026-11-23T21:00:00.000Z",
        "msg_id": "ab" * 16,
        "model": MODEL,
        "state": "cloudy",
        "previous": "clear",
        "since": "2026-11-23T20:58:00.000Z",
        "confidence": 0.91,
        "frames": 3,
        "safe": False,
    }
    attributes = json.loads(_render(configs["Sky state"]["json_attributes_template"], state_message))
    assert attributes == {"previous": "clear", "since": "2026-11-23T20:58:00.000Z", "safe": False}
    first = {k: v for k, v in state_message.items() if k != "previous"}  # the first state has none
    assert json.loads(_render(configs["Sky state"]["json_attributes_template"], first))["previous"] is None
    classification = {
        "class": "cloudy",
        "top_class": "cloudy",
        "frame_id": "f1.fits",
        "msg_id": "cd" * 16,
        "confidence": 0.9,
    }
    attributes = json.loads(_render(configs["Last classification"]["json_attributes_template"], classification))
    assert attributes == {"top_class": "cloudy"}  # no frame_id, msg_id or ts: a row per state, not per message
    assert _render(configs["Confidence"]["value_template"], {"confidence": 0.123}) == "12.3"


def _documented_automation() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    automation = [yaml.safe_load(b) for b in blocks if "input_boolean.turn_off" in b]
    assert automation, "docs/observatory-control.md shows no roof automation"
    return automation[0]


def test_2_the_documented_roof_automation_closes_on_unsafe_unknown_unavailable_and_stale():
    (rule,) = _documented_automation()
    ids = {c["object_id"]: c for c in _configs().values()}
    triggers = {t["entity_id"]: set(t["to"]) for t in rule["trigger"]}
    unsafe = "binary_sensor.skyedge_la_palma_allsky_01_allsky_unsafe"
    sky = "sensor.skyedge_la_palma_allsky_01_allsky_sky_state"
    assert unsafe.split(".", 1)[1] in ids and sky.split(".", 1)[1] in ids  # the ids discovery creates
    assert triggers[unsafe] >= {"on", "unavailable", "unknown"}
    assert triggers[sky] >= {"unrecognised", "stale", "unavailable", "unknown"}
    assert rule["action"][0]["service"] == "input_boolean.turn_off"


@pytest.mark.mqtt5
def _discovering(tmp_path, package, incoming, broker, **extra):
    """A deployment watching ``incoming`` (created), reporting over MQTT with Home Assistant discovery."""
    incoming.mkdir()
    return write_config(
        tmp_path / "e.yaml",
        package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.05},
        {"mqtt": {"host": broker.host, "port": broker.port, "queue_path": str(tmp_path / "q.sqlite")}},
        homeassistant={"enabled": True},
        **extra,
    )


def test_1_3_4_7_over_a_real_broker(stub_frame_package, camera_frames, tmp_path, mqtt_broker):
    """Unrecognised frames say so (1) with the verdict's confidence (4); the latest classification is retained (3);
    discovery is republished when Home Assistant announces itself (7)."""
    package = package_with_unknown_threshold(stub_frame_package, tmp_path / "pkg", 1e-3)  # everything is unfamiliar
    incoming = tmp_path / "in"
    cfg = _discovering(tmp_path, package, incoming, mqtt_broker)
    root = topic_root(cfg)
    node = re.sub(r"[^a-z0-9]+", "_", f"skyedge {root.split('/')[1]} dev-1 allsky")
    discovery = Collector(mqtt_broker, f"homeassistant/+/{node}/+/config", protocol=mqtt.MQTTv5)
    live = Collector(mqtt_broker, f"{root}/allsky/classification", protocol=mqtt.MQTTv5)
    with RunningDaemon(cfg):
        assert wait_for(lambda: len(discovery.messages) == 5)
        for f in camera_frames[:4]:
            (incoming / f.name).write_bytes(f.read_bytes())
        assert wait_for(lambda: len(live.messages) >= 4)
        ha = connect(mqtt_broker, protocol=mqtt.MQTTv5)
        ha.publish("homeassistant/status", "online", qos=1).wait_for_publish(10)  # Home Assistant restarted
        assert wait_for(lambda: len(discovery.messages) == 10)  # every config again
        ha.disconnect()
    first = [json.loads(m.payload) for m in live.messages]
    for c in first:
        assert c["class"] == "unrecognised" and c["unknown"] is True
        assert c["confidence"] == pytest.approx(1 - 1e-3 / c["distance"], rel=1e-6)
        assert c["top_probability"] == c["probabilities"][c["top_class"]]
    # A dashboard that starts now still sees the latest classification (retained).
    late = Collector(mqtt_broker, f"{root}/allsky/classification", protocol=mqtt.MQTTv5)
    retained = json.loads(late.wait_for(1)[0].payload)
    assert retained["msg_id"] == first[-1]["msg_id"] and late.messages[0].retain
    for col in (discovery, live, late):
        col.close()


def test_a_model_with_a_cloud_map_gets_a_cloud_cover_sensor():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    plain = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES)
    assert "Cloud cover" not in {m.payload["name"] for m in plain}
    with_map = {
        m.payload["name"]: m.payload
        for m in discovery_messages("homeassistant", factory, ["allsky"], "allsky", CLASSES, cloud_map=True)
    }
    cover = with_map["Cloud cover"]
    assert cover["unit_of_measurement"] == "%" and cover["state_class"] == "measurement"
    assert cover["object_id"].endswith("_cloud_cover") and "availability" in cover
    assert _render(cover["value_template"], {"cloud_cover": 37.5}) == "37.5"
    assert _render(cover["value_template"], {"class": "day"}) == "None"  # no map by day: unknown in Home Assistant


def test_a_camera_watching_its_stars_gets_a_stars_seen_sensor():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    plain = discovery_messages("homeassistant", factory, ["allsky", "east"], "allsky-tiny", CLASSES)
    assert "Stars seen" not in {m.payload["name"] for m in plain}
    configs = discovery_messages("homeassistant", factory, ["allsky", "east"], "allsky-tiny", CLASSES, starry=frozenset({"east"}))
    (seen,) = [m.payload for m in configs if m.payload["name"] == "Stars seen"]
    assert seen["object_id"].endswith("_east_stars_seen") and seen["unit_of_measurement"] == "%" and "availability" in seen
    night = {"class": "clear", "stars": {"expected": 40, "seen": 35, "visible_fraction": 0.8712, "zenith_visible_fraction": 0.95}}
    assert _render(seen["value_template"], night) == "87.1"
    assert json.loads(_render(seen["json_attributes_template"], night)) == {"zenith": 95.0, "expected": 40, "seen": 35}
    unsolved = {"class": "clear", "stars": {"detected": 12, "geometry": "none", "expected": None, "visible_fraction": None}}
    for message in ({"class": "day"}, unsolved):  # by day no stars object; before a geometry no fraction: unknown
        assert _render(seen["value_template"], message) == "None"
        assert json.loads(_render(seen["json_attributes_template"], message))["zenith"] is None


def test_a_camera_watching_its_stars_says_when_its_view_has_dimmed_and_keeps_it_through_the_day():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    plain = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES)
    assert "Camera dimmed" not in {m.payload["name"] for m in plain}
    configs = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES, starry=frozenset({"allsky"}))
    (dimmed,) = [m.payload for m in configs if m.payload["name"] == "Camera dimmed"]
    assert dimmed["device_class"] == "problem" and dimmed["entity_category"] == "diagnostic" and "availability" in dimmed
    assert dimmed["object_id"].endswith("_allsky_camera_dimmed")
    stars = {"detected": 150, "geometry": "saved", "expected": 60, "seen": 57, "visible_fraction": 0.95, "limiting_mag": 3.5}
    assert _render(dimmed["value_template"], {"class": "clear", "stars": {**stars, "dimmed_mag": 1.5}}) == dimmed["payload_on"]
    assert _render(dimmed["value_template"], {"class": "clear", "stars": stars}) == dimmed["payload_off"]
    # Frames that cannot say (by day no stars object; before the limits are learnt none) render empty, which Home
    # Assistant's MQTT binary sensor ignores: the night's answer stays.
    unlearnt = {**stars, "expected": None, "seen": None, "visible_fraction": None, "limiting_mag": None}
    for message in ({"class": "day"}, {"class": "cloudy", "stars": unlearnt}):
        assert _render(dimmed["value_template"], message).strip() == ""


def test_a_camera_whose_stars_say_its_clock_is_off_gets_a_problem_that_the_day_does_not_clear():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    configs = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES, starry=frozenset({"allsky"}))
    (clock,) = [m.payload for m in configs if m.payload["name"] == "Clock off"]
    assert clock["device_class"] == "problem" and clock["entity_category"] == "diagnostic" and "availability" in clock
    stars = {"detected": 150, "geometry": "saved", "expected": 60, "seen": 3, "visible_fraction": 0.05, "limiting_mag": 3.5}
    assert _render(clock["value_template"], {"class": "unrecognised", "stars": {**stars, "clock_offset_min": 60}}) == clock["payload_on"]
    assert _render(clock["value_template"], {"class": "clear", "stars": stars}) == clock["payload_off"]
    assert _render(clock["value_template"], {"class": "day"}).strip() == ""  # no stars by day: the night's answer stays
    # A daytime frame whose exposure contradicts the sun at its capture time says so without stars, and a night frame
    # with the check and stars that see no offset is on all the same.
    assert _render(clock["value_template"], {"class": "day", "checks": ["clock_vs_exposure"]}) == clock["payload_on"]
    assert _render(clock["value_template"], {"class": "clear", "checks": ["clock_vs_exposure"], "stars": stars}) == clock["payload_on"]
    assert _render(clock["value_template"], {"class": "clear", "checks": ["day_at_night"], "stars": stars}) == clock["payload_off"]
    assert _render(clock["value_template"], {"class": "day", "checks": None}).strip() == ""


def test_a_located_camera_announces_its_stars_sensor_over_a_real_broker(stub_frame_package, tmp_path, mqtt_broker):
    location = {"latitude_deg": 38.607, "longitude_deg": 93.896, "elevation_m": 4200.0}
    cfg = _discovering(tmp_path, stub_frame_package, tmp_path / "in", mqtt_broker, site_location=location)
    node = re.sub(r"[^a-z0-9]+", "_", f"skyedge {topic_root(cfg).split('/')[1]} dev-1 allsky")
    discovery = Collector(mqtt_broker, f"homeassistant/+/{node}/+/config", protocol=mqtt.MQTTv5)
    with RunningDaemon(cfg):
        assert wait_for(lambda: len(discovery.messages) == 8)
    topics = {m.topic for m in discovery.messages}
    assert {f"homeassistant/sensor/{node}/stars_seen/config", f"homeassistant/binary_sensor/{node}/camera_dimmed/config"} <= topics
    discovery.close()
    # Located, its stars not watched: the clock is still checked against the exposures, and says so.
    (tmp_path / "b").mkdir()
    cfg = _discovering(tmp_path / "b", stub_frame_package, tmp_path / "b" / "in", mqtt_broker, site_location=location,
                       pipeline={"stars": None})
    node = re.sub(r"[^a-z0-9]+", "_", f"skyedge {topic_root(cfg).split('/')[1]} dev-1 allsky")
    discovery = Collector(mqtt_broker, f"homeassistant/+/{node}/+/config", protocol=mqtt.MQTTv5)
    with RunningDaemon(cfg):
        assert wait_for(lambda: len(discovery.messages) == 6)
    kinds = {m.topic.split("/")[-2] for m in discovery.messages}
    assert "clock_off" in kinds and not kinds & {"stars_seen", "camera_dimmed"}, kinds
    discovery.close()


def test_a_camera_without_stars_says_its_clock_is_off_from_its_exposures_alone():
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    configs = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES, clocked=frozenset({"allsky"}))
    (clock,) = [m.payload for m in configs if m.payload["name"] == "Clock off"]
    assert "Stars seen" not in {m.payload["name"] for m in configs}
    assert _render(clock["value_template"], {"class": "day", "checks": ["clock_vs_exposure"], "exposure_s": 0.001}) == clock["payload_on"]
    assert _render(clock["value_template"], {"class": "clear", "exposure_s": 30.0}) == clock["payload_off"]
    assert _render(clock["value_template"], {"class": "clear", "exposure_s": None}).strip() == ""  # cannot say
    assert _render(clock["value_template"], {"class": "clear"}).strip() == ""


def test_the_documented_notification_names_the_problem_sensors_as_discovered():
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    (notify,) = [yaml.safe_load(b) for b in blocks if "notify.notify" in b]
    factory = MessageFactory("la-palma", "allsky-01", MODEL)
    configs = discovery_messages("homeassistant", factory, ["allsky"], "allsky-tiny", CLASSES, starry=frozenset({"allsky"}))
    problems = {f"binary_sensor.{m.payload['object_id']}" for m in configs if m.payload.get("device_class") == "problem"}
    (trigger,) = notify[0]["trigger"]
    assert set(trigger["entity_id"]) == problems and len(problems) == 2 and trigger["to"] == "on"
