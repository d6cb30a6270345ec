"""ASCOM Alpaca ObservingConditions (CloudCover) and the /skyedge/v1/clear query, from a running `skyedge run`
whose model has a cloud map (a stub: bright = cloudy), driven with alpyca and raw HTTP as clients would."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from edge_helpers import deliver, messages, wait_for, write_config

from skyedge.brokers import free_port
from skyedge.edge.config import load_edge_config
from skyedge.edge.runtime.lifecycle import Runtime


@pytest.fixture
def running(tmp_path, camera_frames):
    from stub_packages import frame_package

    package = frame_package(tmp_path / "pkg", size=64, cloud_map=True)
    incoming = tmp_path / "in"
    incoming.mkdir()
    port = free_port()
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.05},
        {"jsonl": {"path": str(log)}},
        alpaca={"enabled": True, "port": port, "discovery": False},
    )
    stop = threading.Event()
    runtime = Runtime(load_edge_config(cfg), once=False, stop_event=stop)
    worker = threading.Thread(target=runtime.run)
    worker.start()
    try:
        yield f"127.0.0.1:{port}", incoming, log, camera_frames
    finally:
        stop.set()
        worker.join(timeout=20)


def _put(base: str, member: str, **data) -> dict:
    return requests.put(f"http://{base}/api/v1/observingconditions/0/{member}", data=data, timeout=5).json()


def test_observing_conditions_with_alpyca_and_the_cloud_query(running):
    from alpaca import management
    from alpaca.exceptions import InvalidValueException, NotConnectedException, NotImplementedException
    from alpaca.observingconditions import ObservingConditions

    address, incoming, log, frames = running
    assert wait_for(lambda: _listening(address))
    devices = {d["DeviceType"]: d for d in management.configureddevices(address)}
    assert (
        set(devices) == {"SafetyMonitor", "ObservingConditions"} and devices["ObservingConditions"]["DeviceNumber"] == 0
    )
    oc = ObservingConditions(address, 0)
    # SensorDescription answers while disconnected; the readings do not.
    assert "cloud" in oc.SensorDescription("CloudCover").lower()
    with pytest.raises(NotConnectedException):
        _ = oc.CloudCover
    oc.Connected = True
    assert oc.InterfaceVersion == 2
    assert float(oc.TimeSinceLastUpdate("")) < 0  # never updated yet
    with pytest.raises(Exception, match="(?i)no cloud cover yet"):
        _ = oc.CloudCover
    for f in frames[:3]:
        deliver(f, incoming / f.name)
    assert wait_for(lambda: log.exists() and len(messages(log, "classification")) >= 3, timeout=15)
    latest = messages(log, "classification")[-1]
    cover = oc.CloudCover
    assert 0.0 <= cover <= 100.0 and cover == pytest.approx(latest["cloud_cover"])  # percent, not 0-1
    assert oc.AveragePeriod == 0.0
    age = float(oc.TimeSinceLastUpdate("CloudCover"))
    assert 0.0 <= age < 30.0 and abs(float(oc.TimeSinceLastUpdate("")) - age) < 5
    for unmeasured in ("SkyQuality", "SkyBrightness", "Temperature", "WindSpeed"):
        with pytest.raises(NotImplementedException):
            getattr(oc, unmeasured)
    with pytest.raises(NotImplementedException):
        oc.TimeSinceLastUpdate("Humidity")
    with pytest.raises(InvalidValueException):
        oc.SensorDescription("Weather")
    oc.Refresh()
    assert oc.SupportedActions == ["CloudMap"]
    cloud_map = json.loads(oc.Action("CloudMap", ""))
    assert cloud_map["layout"] == "cloudynight-33" and len(cloud_map["sectors"]) == 33
    # AveragePeriod: 0.0 accepted, anything else refused with InvalidValue (alpyca reads it only: raw PUT).
    assert _put(address, "averageperiod", AveragePeriod="0.0")["ErrorNumber"] == 0
    assert _put(address, "averageperiod", AveragePeriod="1.0")["ErrorNumber"] == 0x401
    assert (
        requests.put(
            f"http://{address}/api/v1/observingconditions/0/averageperiod", data={"averageperiod": "0"}, timeout=5
        ).status_code
        == 400
    )
    # The scheduler's question, answered from the same map.
    got = requests.get(
        f"http://{address}/skyedge/v1/clear", params={"alt": 80, "az": 10, "radius": 20}, timeout=5
    ).json()
    assert got["clear"] == (got["cloud_fraction"] <= 0.1) and got["seen_fraction"] > 0 and got["stale"] is False
    below = requests.get(f"http://{address}/skyedge/v1/clear", params={"alt": -5, "az": 0}, timeout=5).json()
    assert below["clear"] is False and "horizon" in below["reason"]
    bad = requests.get(f"http://{address}/skyedge/v1/clear", params={"ra": 10, "dec": 20}, timeout=5)
    assert bad.status_code == 400 and "site_location" in bad.text  # no site: RA/Dec cannot be placed
    oc.Connected = False


def _listening(address: str) -> bool:
    import socket

    host, port = address.split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def test_a_target_in_a_clear_part_of_a_partly_cloudy_sky_is_clear():
    """The query's geometry: cloud in the north half, a target in the south is clear, one in the north is not."""
    import numpy as np

    from skyedge.edge.cloud_map import CloudMapper
    from skyedge.edge.observatory.conditions import SkyConditions
    from skyedge.edge.observatory.target_query import clear_query
    from skyedge.model_card import Preprocess, Stretch

    spec = Preprocess(size=(160, 160), channels=1, color="mono", stretch=Stretch(kind="rank"), mean=[0.5], std=[0.3])
    grid = np.zeros((1, 10, 10), np.float32)
    grid[:, :5] = 1.0  # the upper half of the image: north with north up
    conditions = SkyConditions()
    conditions.update(CloudMapper(spec).report(grid, (480, 480)))
    ask = clear_query(conditions, None, stale_after_s=300.0)

    class Params(dict):
        def get(self, name):  # the handler's Params interface
            return super().get(name)

    south = ask(Params(alt="40", az="180", radius="15"))
    north = ask(Params(alt="40", az="0", radius="15"))
    assert south["clear"] is True and south["cloud_fraction"] < 0.1
    assert north["clear"] is False and north["cloud_fraction"] > 0.9
    time.sleep(0.01)
    stale = clear_query(conditions, None, stale_after_s=0.001)(Params(alt="40", az="180"))
    assert stale["clear"] is False and stale["stale"] is True
