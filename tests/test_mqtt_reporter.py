"""The MQTT reporter against real brokers: round trip, outages, a crashed edge process, retained state, security.

"Nothing lost" is counted at a separate subscriber process with a persistent
session (what docs/mqtt.md tells observatory control to run), by msg_id.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import Collector

from skyedge.brokers import AmqttBroker, MosquittoBroker
from skyedge.edge.config import MqttSection
from skyedge.edge.messages import MessageFactory
from skyedge.edge.reporters.mqtt import MqttReporter
from skyedge.edge.reporters.outbox import Outbox
from skyedge.edge.tools.mqtt_bench import sample_classification
from skyedge.payloads import validate_payload

HERE = Path(__file__).parent
MODEL = {"name": "m", "sha256": "0" * 64, "precision": "fp32"}


def _factory(device="edge-1"):
    return MessageFactory("site", device, MODEL)


def _classification(factory, i):
    return sample_classification(factory, i, camera="allsky")


def _reporter(broker, tmp_path, protocol="5", **extra):
    cfg = MqttSection.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "protocol": protocol,
            "queue_path": str(tmp_path / "q.sqlite"),
            **extra,
        }
    )
    return MqttReporter(cfg, _factory())


def _persistent_mosquitto(tmp_path) -> MosquittoBroker:
    store = tmp_path / "broker-store"
    store.mkdir()
    # As configs/mosquitto/mosquitto.conf: persistence on, no per-client queue limit for QoS 1.
    extra = f"persistence true\npersistence_location {store}/\nautosave_interval 1\nmax_queued_messages 0\n"
    broker = MosquittoBroker(extra_config=extra, workdir=tmp_path / "broker")
    broker.start()
    return broker


def _subscriber(broker, tmp_path, name="control"):
    out = tmp_path / f"{name}.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mqtt_subscriber.py"), broker.host, str(broker.port), "skyedge/#", str(out), name]
    )
    deadline = time.monotonic() + 15
    while not Path(str(out) + ".ready").exists():
        assert time.monotonic() < deadline, "subscriber did not subscribe"
        time.sleep(0.05)
    return proc, out


def _received_ids(out: Path, kind="classification") -> list[str]:
    if not out.exists():
        return []
    msgs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [m["msg_id"] for m in msgs if m["schema"] == f"skyedge.{kind}/1"]


def _wait_for_ids(out: Path, wanted: set[str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = set(_received_ids(out))
        if wanted <= got:
            return got
        time.sleep(0.2)
    return set(_received_ids(out))


@pytest.mark.mqtt5
def test_a_run_closed_at_once_still_delivers_what_an_earlier_run_queued(mqtt_broker, tmp_path):
    """`skyedge run --once` with no new frame closes its reporter right after starting it: the queue an earlier
    (killed) run left must go out on that first connection, not wait for the next start."""
    factory = _factory("edge-once")  # its own topics: other tests' retained messages stay out
    queued = [_classification(factory, i) for i in range(10)]
    outbox = Outbox(tmp_path / "q.sqlite")
    for m in queued:
        outbox.put(m.topic, json.dumps(m.payload).encode(), m.qos, m.retain, m.kind, m.schema)
    outbox.close()
    col = Collector(mqtt_broker, "skyedge/site/edge-once/allsky/classification", protocol=mqtt.MQTTv5)
    cfg = MqttSection.model_validate({"host": mqtt_broker.host, "port": mqtt_broker.port, "queue_path": str(tmp_path / "q.sqlite")})
    MqttReporter(cfg, factory).close()  # closed before its connection has completed
    got = [json.loads(m.payload)["msg_id"] for m in col.wait_for(10)]
    assert got == [m.payload["msg_id"] for m in queued]
    assert Outbox(tmp_path / "q.sqlite").depth() == 0
    col.close()


@pytest.mark.mqtt5
def test_round_trip_mqtt5_properties_will_and_schema(mqtt_broker, tmp_path):
    col = Collector(mqtt_broker, "skyedge/site/edge-1/#", protocol=mqtt.MQTTv5)
    reporter = _reporter(mqtt_broker, tmp_path)
    factory = _factory()
    sent = [_classification(factory, i) for i in range(20)]
    for m in sent:
        reporter.publish(m)
    assert reporter.flush(20)
    msgs = col.wait_for(21)
    got = [m for m in msgs if m.topic.endswith("/classification")]
    assert [json.loads(m.payload)["msg_id"] for m in got] == [m.payload["msg_id"] for m in sent]  # in order
    for m in msgs:
        validate_payload(m.topic.rsplit("/", 1)[1], json.loads(m.payload))
    props = got[0].properties
    assert props.ContentType == "application/json" and ("schema", "skyedge.classification/1") in props.UserProperty
    status = [json.loads(m.payload) for m in msgs if m.topic.endswith("/status")]
    assert status and status[0]["state"] == "online"
    reporter.close()
    col.close()


def test_round_trip_mqtt311_against_amqtt(tmp_path):
    broker = AmqttBroker()
    broker.start()
    try:
        col = Collector(broker, "skyedge/#")
        reporter = _reporter(broker, tmp_path, protocol="3.1.1")
        factory = _factory()
        for i in range(10):
            reporter.publish(_classification(factory, i))
        assert reporter.flush(20)
        got = [m for m in col.wait_for(11) if m.topic.endswith("/classification")]
        assert len(got) == 10
        reporter.close()
        col.close()
    finally:
        broker.stop()


@pytest.mark.mqtt5
def test_three_broker_restarts_lose_nothing(tmp_path):
    broker = _persistent_mosquitto(tmp_path)
    sub, out = _subscriber(broker, tmp_path)
    reporter = _reporter(broker, tmp_path)
    factory = _factory()
    sent: list[str] = []

    def stream():
        for i in range(600):
            m = _classification(factory, i)
            reporter.publish(m)
            sent.append(m.payload["msg_id"])
            time.sleep(0.005)

    try:
        t = threading.Thread(target=stream)
        t.start()
        for _ in range(3):
            time.sleep(0.6)
            broker.stop()
            time.sleep(0.5)
            broker.start()
        t.join()
        assert reporter.flush(60), f"{reporter.depth()} still queued"
        got = _wait_for_ids(out, set(sent))
        assert set(sent) <= got, f"lost {len(set(sent) - got)} of {len(sent)}"
    finally:
        reporter.close()
        sub.kill()
        broker.stop()


@pytest.mark.mqtt5
def test_sigkilled_edge_replays_its_queue(tmp_path):
    broker = _persistent_mosquitto(tmp_path)
    sub, out = _subscriber(broker, tmp_path)
    queue, ids = tmp_path / "edge.queue", tmp_path / "ids.txt"
    publisher = [sys.executable, str(HERE / "mqtt_publisher.py"), broker.host, str(broker.port), str(queue), str(ids)]
    try:
        broker.stop()  # the broker is down, so the edge has a backlog when it dies
        proc = subprocess.Popen([*publisher, "400", "400"])
        deadline = time.monotonic() + 30
        while (not ids.exists() or len(ids.read_text().split()) < 200) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        queued = set(ids.read_text().split())
        assert 200 <= len(queued) < 400 and Outbox(queue).depth() >= len(queued)
        broker.start()
        replay = subprocess.run([*publisher, "0"], capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr[-2000:]
        got = _wait_for_ids(out, queued)
        assert queued <= got, f"lost {len(queued - got)} of {len(queued)}"
        assert Outbox(queue).depth() == 0
    finally:
        sub.kill()
        broker.stop()


@pytest.mark.mqtt5
def test_retained_state_after_outage_is_the_latest(tmp_path):
    broker = _persistent_mosquitto(tmp_path)
    reporter = _reporter(broker, tmp_path)
    factory = _factory()
    topic = factory.topic("state", "allsky")
    try:
        assert reporter.connected.wait(10)
        broker.stop()
        for state in ("clear", "cloudy", "moon"):
            m = factory.message("state", "allsky", state=state, since="2026-11-23T00:00:00Z", safe=state == "clear")
            assert m.retain and m.topic == topic
            reporter.publish(m)
        broker.start()
        assert reporter.flush(30)
        col = Collector(broker, topic)
        retained = json.loads(col.wait_for(1)[0].payload)
        assert retained["state"] == "moon"
        col.close()
    finally:
        reporter.close()
        broker.stop()


def test_outbox_bound_drops_metrics_then_classifications_never_state(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_messages=5)
    for kind in ("state", "metrics", "classification", "event", "classification", "status", "state", "classification"):
        box.put(f"t/{kind}", b"{}", 1, False, kind)
    kinds = [r.kind for r in box.peek(100)]
    assert box.depth() == 5 and kinds.count("state") == 2 and "event" in kinds and "status" in kinds
    assert box.dropped() == {"metrics": 1, "classification": 2}


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca_and_server(d: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}-ca",
        "-keyout",
        f"{name}-ca.key",
        "-out",
        f"{name}-ca.crt",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        f"{name}-server.key",
        "-out",
        f"{name}-server.csr",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}-server.csr",
        "-CA",
        f"{name}-ca.crt",
        "-CAkey",
        f"{name}-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        f"{name}-server.crt",
        cwd=d,
    )


@pytest.mark.mqtt5
@pytest.mark.parametrize("server_ca", ["ours", "other"])
def test_tls_accepts_our_ca_and_refuses_another(tmp_path, server_ca):
    for name in ("ours", "other"):
        _ca_and_server(tmp_path, name)
    tls = f"certfile {tmp_path}/{server_ca}-server.crt\nkeyfile {tmp_path}/{server_ca}-server.key\n"
    broker = MosquittoBroker(extra_config=tls, workdir=tmp_path / "b")
    broker.start()
    try:
        reporter = _reporter(broker, tmp_path, tls={"ca_file": str(tmp_path / "ours-ca.crt")})
        if server_ca == "ours":
            assert reporter.connected.wait(10), reporter.last_error
        else:
            assert not reporter.connected.wait(3)
            assert reporter.last_error and "certificate" in reporter.last_error.lower()
        reporter.close(timeout=1)
    finally:
        broker.stop()


@pytest.mark.mqtt5
def test_wrong_password_is_refused_with_a_clear_error(tmp_path):
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "edge", "right-password"], check=True, capture_output=True)
    broker = MosquittoBroker(extra_config=f"allow_anonymous false\npassword_file {pw}\n", workdir=tmp_path / "b")
    broker.start()
    try:
        bad = _reporter(broker, tmp_path / "bad", username="edge", password="wrong")
        assert not bad.connected.wait(3)
        assert "refused" in bad.last_error and (
            "not authorized" in bad.last_error.lower() or "bad user" in bad.last_error.lower()
        )
        assert "wrong" not in bad.last_error  # the password never appears in messages
        bad.close(timeout=1)
        good = _reporter(broker, tmp_path / "good", username="edge", password="right-password")
        assert good.connected.wait(10), good.last_error
        good.close()
    finally:
        broker.stop()


@pytest.mark.mqtt5
def test_watch_shows_devices_and_prints_json_lines(mqtt_broker, tmp_path):
    import io

    from skyedge.edge.tools.watch import watch

    reporter = _reporter(mqtt_broker, tmp_path)
    factory = _factory()
    reporter.publish(factory.message("state", "allsky", state="cloudy", since="2026-11-23T00:00:00Z", safe=False))
    assert reporter.flush(10)
    out = io.StringIO()
    done = {}

    def run():
        done["board"] = watch(mqtt_broker.host, mqtt_broker.port, "site", True, seconds=2.5, out=out)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.0)
    reporter.publish(_classification(factory, 1))
    t.join()
    reporter.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    topics = {line["topic"].rsplit("/", 1)[1] for line in lines}
    assert {"status", "state", "classification"} <= topics
    board = done["board"]
    assert board.devices["site/edge-1"]["status"] in ("online", "offline")
    assert board.cameras[("site/edge-1", "allsky")]["state"] == "cloudy"
    assert board.cameras[("site/edge-1", "allsky")]["last"] == "clear"
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(board.table())
    assert "cloudy" in console.file.getvalue()


@pytest.mark.mqtt5
def test_mqtt_figures_count_every_message_at_the_subscriber(mqtt_broker):
    from skyedge.edge.tools.mqtt_bench import mqtt_figures

    figures = mqtt_figures(mqtt_broker.host, mqtt_broker.port, n=300, protocol="5")
    assert figures["received"] == 300 and figures["replayed_received"] == 300
    assert figures["sustained_received_per_s"] > 0 and figures["replay_seconds"] > 0


@pytest.mark.mqtt5
@pytest.mark.slow
def test_sigkilled_skyedge_run_replays_and_retained_state_is_latest(stub_frame_package, tmp_path):
    """The real edge process, SIGKILLed mid-stream while the broker is down, then restarted: nothing lost. The
    answers are scripted (clear and cloudy spells), so sky states are published whatever the machine."""
    import sqlite3

    from edge_helpers import topic_root, write_config

    from skyedge.edge.reporters.jsonl import read_jsonl
    from skyedge.training.simulate.allsky import AllskyConfig, simulate_allsky

    cam = tmp_path / "cam"
    simulate_allsky(30, cam, seed=12, cfg=AllskyConfig(size=64), files="fits", workers=1)
    frames = sorted((cam / "frames").glob("*.fits"))
    broker = _persistent_mosquitto(tmp_path)
    sub, out = _subscriber(broker, tmp_path)
    queue = tmp_path / "edge.queue"
    mqtt_cfg = {"host": broker.host, "port": broker.port, "queue_path": str(queue)}
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(cam / "frames"), "settle_s": 0, "poll_s": 0.1},
        {"mqtt": mqtt_cfg, "jsonl": {"path": str(tmp_path / "audit.jsonl")}},
        batch_size=1,
        script=["clear"] * 4 + ["cloudy"] * 4,
    )
    run = [sys.executable, "-m", "skyedge", "run", "--config", str(cfg)]
    try:
        broker.stop()

        def queued() -> int:
            if not queue.exists():
                return 0
            try:
                with sqlite3.connect(str(queue)) as db:
                    return db.execute("SELECT COUNT(*) FROM outbox WHERE kind='classification'").fetchone()[0]
            except sqlite3.OperationalError:  # the edge has created the file but not yet its table
                return 0

        edge = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while queued() < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        edge.send_signal(signal.SIGKILL)
        edge.wait()
        assert queued() >= 10
        broker.start()
        again = subprocess.run([*run, "--once"], capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stderr[-2000:]

        def frame_ids() -> set[str]:
            if not out.exists():
                return set()
            msgs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
            return {m["frame_id"] for m in msgs if m["schema"] == "skyedge.classification/1"}

        deadline = time.monotonic() + 30
        while frame_ids() != {f.name for f in frames} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert frame_ids() == {f.name for f in frames}  # every frame arrived, across the crash
        audit = [m["payload"] for m in read_jsonl(tmp_path / "audit.jsonl") if m["topic"].endswith("/state")]
        assert audit, "no sky state was published: the check below would prove nothing"
        col = Collector(broker, f"{topic_root(cfg)}/allsky/state")
        retained = json.loads(col.wait_for(1)[0].payload)
        assert retained["msg_id"] == audit[-1]["msg_id"]  # the latest state, not an older replayed one
        col.close()
    finally:
        sub.kill()
        broker.stop()
