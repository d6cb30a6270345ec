"""The real-broker test rig: both broker paths work, and a published payload arrives and validates."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import Collector, close, connect
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from skyedge.brokers import AmqttBroker, MosquittoBroker, start_broker
from skyedge.payloads import schema_for, validate_message


def classification() -> dict:
    return schema_for("classification")["examples"][0]


def test_round_trip_on_session_broker(mqtt_broker, topic_root):
    """A separate client receives what the publisher sent, and it validates against its schema."""
    topic = f"{topic_root}/allsky/classification"
    collector = Collector(mqtt_broker, topic)
    publisher = connect(mqtt_broker)
    try:
        info = publisher.publish(topic, json.dumps(classification()), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        (msg,) = collector.wait_for(1)
        assert msg.topic == topic and msg.qos == 1
        assert validate_message(msg.topic, msg.payload) == classification()
    finally:
        close(publisher)
        collector.close()


@pytest.mark.parametrize("broken", ["not json", json.dumps({"class": "cloudy"})])
def test_invalid_payload_received_from_broker_fails_validation(mqtt_broker, topic_root, broken):
    topic = f"{topic_root}/allsky/classification"
    collector = Collector(mqtt_broker, topic)
    publisher = connect(mqtt_broker)
    try:
        publisher.publish(topic, broken, qos=1).wait_for_publish(10)
        (msg,) = collector.wait_for(1)
        with pytest.raises(ValueError):
            validate_message(msg.topic, msg.payload)
    finally:
        close(publisher)
        collector.close()


def test_each_broker_implementation(any_broker, topic_root):
    """mosquitto and amqtt both carry QoS 1 and retained messages, and survive a restart."""
    state_topic = f"{topic_root}/allsky/state"
    payload = json.dumps(schema_for("state")["examples"][0])
    publisher = connect(any_broker)
    publisher.publish(state_topic, payload, qos=1, retain=True).wait_for_publish(10)
    close(publisher)
    # A subscriber that arrives later still gets the retained state.
    late = Collector(any_broker, state_topic)
    (msg,) = late.wait_for(1)
    assert msg.retain and validate_message(msg.topic, msg.payload)
    late.close()
    any_broker.restart()
    again = Collector(any_broker, f"{topic_root}/#")
    publisher = connect(any_broker)
    publisher.publish(f"{topic_root}/allsky/event", json.dumps(schema_for("event")["examples"][0]), qos=1)
    msgs = again.wait_for(1)
    assert any(m.topic.endswith("/event") for m in msgs)
    close(publisher)
    again.close()


@pytest.mark.mqtt5
def test_mqtt5_properties_through_mosquitto(topic_root):
    """MQTT 5 user properties and content type reach a v5 subscriber (mosquitto only)."""
    with MosquittoBroker() as broker:
        topic = f"{topic_root}/metrics"
        collector = Collector(broker, topic, protocol=mqtt.MQTTv5)
        publisher = connect(broker, protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = [("schema", "skyedge.metrics/1")]
        publisher.publish(topic, json.dumps(schema_for("metrics")["examples"][0]), qos=1, properties=props)
        (msg,) = collector.wait_for(1)
        assert msg.properties.ContentType == "application/json"
        assert ("schema", "skyedge.metrics/1") in msg.properties.UserProperty
        validate_message(msg.topic, msg.payload)
        close(publisher)
        collector.close()


def test_amqtt_refuses_mqtt5():
    """Why MQTT 5 tests need mosquitto: amqtt answers a v5 CONNECT with a refusal or a hang-up."""
    with AmqttBroker() as broker:
        done = threading.Event()
        outcome = {}
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_connect(c, u, flags, reason_code, props):
            outcome["rc"] = reason_code
            done.set()

        def on_disconnect(c, u, flags, reason_code, props):
            outcome.setdefault("rc", reason_code)
            done.set()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.connect(broker.host, broker.port)
        client.loop_start()
        assert done.wait(15)
        client.loop_stop()
        assert outcome["rc"].is_failure


def test_start_broker_prefers_mosquitto_when_installed():
    broker = start_broker("mosquitto")
    try:
        assert broker.kind == ("mosquitto" if MosquittoBroker.available() else "amqtt")
    finally:
        broker.stop()
    with pytest.raises(ValueError, match="unknown broker"):
        start_broker("rabbitmq")
