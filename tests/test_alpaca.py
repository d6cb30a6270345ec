"""The ASCOM Alpaca SafetyMonitor and Home Assistant discovery, driven from outside as N.I.N.A. / HA would.

The SafetyMonitor is exercised with the official Python client `alpyca`
(discovery, management API, SafetyMonitor) against the running edge on
loopback; IsSafe follows a scripted sequence of answers (the scripted backend) through the policy.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from edge_helpers import write_config

from skyedge.brokers import free_port
from skyedge.edge.config import load_edge_config
from skyedge.edge.observatory.safety import SafetyPolicy
from skyedge.edge.reporters.jsonl import read_jsonl
from skyedge.edge.runtime.lifecycle import Runtime


def test_policy_holds_then_trips_at_once_and_goes_stale():
    p = SafetyPolicy(["clear"], hold_frames=3, hold_s=10, stale_after_s=60)
    assert not p.is_safe(0)
    assert p.frame("clear", 0) is None and p.frame("clear", 5) is None
    assert p.frame("clear", 8) is None  # three frames, but only 8 s
    change = p.check(10.5)
    assert change.safe and p.is_safe(10.5)
    change = p.frame("cloudy", 11)
    assert not change.safe and "cloudy" in change.reason
    p.frame("unrecognised", 12)
    assert not p.is_safe(12)
    for t in (13, 20, 30):
        p.frame("clear", t)
    assert p.is_safe(30)
    assert not p.is_safe(30 + 61) and "stale" in p.reason
    p.frame("clear", 100)
    assert p.failed("camera unplugged", 101).safe is False and "camera unplugged" in p.reason


def test_asking_is_safe_never_swallows_a_safety_change():
    """Alpaca clients poll IsSafe from their own threads; the safety_change event must still be published."""
    p = SafetyPolicy(["clear"], hold_frames=1, hold_s=10, stale_after_s=60)
    assert p.frame("clear", 0) is None
    assert p.is_safe(11)  # hold time passed while nobody published
    change = p.check(11)
    assert change is not None and change.safe
    assert not p.is_safe(80) and p.check(80).safe is False  # stale, likewise


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_safety_monitor_with_alpyca(stub_frame_package, camera_frames, tmp_path):
    from alpaca import discovery, management
    from alpaca.exceptions import ActionNotImplementedException
    from alpaca.safetymonitor import SafetyMonitor

    # The frames are answered in the order they are dropped: three safe, one unsafe, three safe.
    safe_class = "clear"
    script = [safe_class] * 3 + ["cloudy"] + [safe_class] * 3
    safe, unsafe = camera_frames[:6], camera_frames[6:7]
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    log = tmp_path / "r.jsonl"
    port = free_port()
    cfg_path = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.05},
        {"jsonl": {"path": str(log)}},
        alpaca={"enabled": True, "port": port, "location": "test dome"},
        batch_size=1,
        script=script,
    )
    policy = f"  safety: {{safe_classes: [{safe_class}], hold_frames: 3, stale_after_s: 3.0}}\n"
    text = cfg_path.read_text().replace("camera: allsky\n", "camera: allsky\n" + policy)
    assert policy in text
    cfg_path.write_text(text)
    stop = threading.Event()
    runtime = Runtime(load_edge_config(cfg_path), once=False, stop_event=stop)
    worker = threading.Thread(target=runtime.run)
    worker.start()
    address = f"127.0.0.1:{port}"
    n = {"dropped": 0}

    def classified() -> int:
        return sum(1 for m in read_jsonl(log) if m["topic"].endswith("/classification")) if log.exists() else 0

    def drop(frame) -> None:
        n["dropped"] += 1
        (incoming / f"{n['dropped']:03d}-{frame.name}").write_bytes(frame.read_bytes())
        assert _wait(lambda: classified() >= n["dropped"]), "frame not classified"

    try:
        assert _wait(lambda: _listening(port))
        found = discovery.search_ipv4(numquery=1, timeout=1)  # a query per interface, a second each
        assert address in found, found
        devices = management.configureddevices(address)
        assert devices[0]["DeviceType"] == "SafetyMonitor" and devices[0]["DeviceNumber"] == 0
        assert management.apiversions(address) == [1]
        assert management.description(address)["Location"] == "test dome"
        sm = SafetyMonitor(address, 0)
        assert sm.Connected is False and sm.IsSafe is False  # not connected: unsafe
        sm.Connected = True
        assert sm.Connected is True and sm.InterfaceVersion == 3 and sm.Name.startswith("skyedge")
        assert sm.IsSafe is False  # nothing classified yet
        drop(safe[0])
        drop(safe[1])
        assert sm.IsSafe is False  # two safe frames: still holding
        drop(safe[2])
        assert sm.IsSafe is True  # three: safe after the hold
        drop(unsafe[0])
        assert sm.IsSafe is False  # one unsafe frame: unsafe at once
        for f in safe[3:6]:
            drop(f)
        assert sm.IsSafe is True
        time.sleep(3.5)
        assert sm.IsSafe is False  # stale: no classification for longer than stale_after_s
        with pytest.raises(ActionNotImplementedException):
            sm.Action("OpenRoof")
        assert sm.SupportedActions == []
        # Malformed requests get HTTP 400 with a reason, never a traceback.
        base = f"http://{address}/api/v1/safetymonitor"
        bad = [
            requests.get(f"{base}/0/issafe", params={"ClientTransactionID": "abc"}, timeout=5),
            requests.get(f"{base}/0/issafe", params={"ClientID": "-3"}, timeout=5),
            requests.put(f"{base}/0/connected", data={"Connected": "maybe"}, timeout=5),
            requests.put(f"{base}/0/connected", data={}, timeout=5),
            requests.get(f"{base}/7/issafe", timeout=5),
            requests.get(f"http://{address}/api/v1/telescope/0/issafe", timeout=5),
            requests.get(f"{base}/0/nosuchmember", timeout=5),
        ]
        for r in bad:
            assert r.status_code == 400 and "Traceback" not in r.text and r.text, (r.url, r.text)
        ok = requests.get(f"{base}/0/issafe", params={"clienttransactionid": "42"}, timeout=5).json()
        assert ok["ClientTransactionID"] == 42 and ok["ErrorNumber"] == 0 and ok["ServerTransactionID"] > 0
    finally:
        stop.set()
        worker.join(timeout=20)
    events = [
        m["payload"]
        for m in read_jsonl(log)
        if m["topic"].endswith("/event") and m["payload"]["event"] == "safety_change"
    ]
    assert [e["details"]["safe"] for e in events] == [True, False, True, False]


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
