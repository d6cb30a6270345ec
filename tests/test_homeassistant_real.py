"""skyedge in a real Home Assistant (2024.3.3, the newest release on Python 3.11), through a real mosquitto.

Marked `homeassistant` and left out of the default run (pyproject addopts): it installs Home Assistant into a
throwaway virtualenv with Home Assistant's own package_constraints.txt (about a minute from the package
registry; set SKYEDGE_HA_VENV to reuse one) and runs for a few minutes. Run it with
`python3 -m pytest -m homeassistant`.

It onboards Home Assistant, configures MQTT through a config entry, runs `skyedge run` with discovery, and
checks through Home Assistant's REST API: the entities and their names and ids, states, the documented roof
automation closing the roof when skyedge disappears (SIGKILL), `unrecognised` shown as such, the last
classification after a Home Assistant restart (retained), and rediscovery after a restart with the broker's
retained configs gone (skyedge republishes when Home Assistant says `online`). A second test runs a located camera
(the stars watched unasked) and reads its `Stars seen` sensor (unknown until the limits are learnt, then a percent)
and its `Camera dimmed` and `Clock off` problem sensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from edge_helpers import deliver, package_with_unknown_threshold, wait_for, write_config
from mqtt_helpers import connect

from skyedge.brokers import MosquittoBroker, free_port, wait_for_port
from skyedge.model_card import read_card

pytestmark = [pytest.mark.homeassistant, pytest.mark.slow, pytest.mark.mqtt5]

HA_VERSION = "2024.3.3"
DOCS = Path(__file__).parents[1] / "docs" / "observatory-control.md"
# What this configuration loads, plus frontend and backup, which Home Assistant loads at bootstrap (without the
# frontend it starts in recovery mode).
INTEGRATIONS = (
    "mqtt",
    "api",
    "config",
    "onboarding",
    "automation",
    "input_boolean",
    "http",
    "person",
    "analytics",
    "frontend",
    "backup",
)
IDS = "skyedge_la_palma_allsky_01_allsky"


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


@pytest.fixture(scope="module")
def ha_python(tmp_path_factory) -> Path:
    """A virtualenv with Home Assistant and the requirements of the integrations used here."""
    reuse = os.environ.get("SKYEDGE_HA_VENV")
    if reuse:
        return Path(reuse) / "bin" / "python"
    root = tmp_path_factory.mktemp("ha-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "download", "-q", "--no-deps", f"homeassistant=={HA_VERSION}", "-d", str(root)],
        check=True,
    )
    wheel = next(root.glob("homeassistant-*.whl"))
    constraints = root / "package_constraints.txt"
    constraints.write_bytes(zipfile.ZipFile(wheel).read("homeassistant/package_constraints.txt"))
    _pip(python, f"homeassistant=={HA_VERSION}", "josepy<2", "-c", str(constraints))
    script = (
        "import json, pathlib, homeassistant, sys\n"
        "root = pathlib.Path(homeassistant.__file__).parent / 'components'\n"
        "seen, need = set(), set()\n"
        "def walk(c):\n"
        "    if c in seen or not (root / c / 'manifest.json').exists(): return\n"
        "    seen.add(c); m = json.loads((root / c / 'manifest.json').read_text())\n"
        "    need.update(m.get('requirements', []))\n"
        "    [walk(d) for d in m.get('dependencies', []) + m.get('after_dependencies', [])]\n"
        f"[walk(c) for c in {list(INTEGRATIONS)!r}]\n"
        "print('\\n'.join(sorted(need)))\n"
    )
    needed = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True).stdout.split()
    _pip(python, *needed, "-c", str(constraints))
    return python


def _automation() -> list:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    return yaml.safe_load(next(b for b in blocks if "input_boolean.turn_off" in b))


class HomeAssistant:
    """A Home Assistant process on a config directory, and its REST API."""

    def __init__(self, python: Path, config: Path, port: int):
        self.python, self.config, self.port = python, config, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc = None
        self.token = None
        self.refresh = None

    def start(self) -> None:
        log = open(self.config / "hass-stdout.log", "a")
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "homeassistant", "-c", str(self.config), "--skip-pip"], stdout=log, stderr=log
        )
        wait_for_port("127.0.0.1", self.port, timeout=180)
        assert wait_for(lambda: self._up(), timeout=120), "Home Assistant did not come up"
        if self.refresh:
            self.token = self._token({"grant_type": "refresh_token", "refresh_token": self.refresh})["access_token"]

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.base}/api/onboarding", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _token(self, form: dict) -> dict:
        r = requests.post(f"{self.base}/auth/token", data={"client_id": f"{self.base}/", **form}, timeout=10)
        r.raise_for_status()
        return r.json()

    def onboard(self) -> None:
        r = requests.post(
            f"{self.base}/api/onboarding/users",
            json={
                "client_id": f"{self.base}/",
                "name": "Test",
                "username": "test",
                "password": "skyedge-test-1",
                "language": "en",
            },
            timeout=10,
        )
        r.raise_for_status()
        tokens = self._token({"grant_type": "authorization_code", "code": r.json()["auth_code"]})
        self.token, self.refresh = tokens["access_token"], tokens["refresh_token"]

    def api(self, method: str, path: str, **kwargs):
        r = requests.request(
            method, f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=20, **kwargs
        )
        r.raise_for_status()
        return r.json() if r.text else None

    def add_mqtt(self, host: str, port: int) -> None:
        flow = self.api(
            "POST", "/api/config/config_entries/flow", json={"handler": "mqtt", "show_advanced_options": False}
        )
        result = self.api(
            "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", json={"broker": host, "port": port}
        )
        assert result["type"] == "create_entry", result

    def state(self, entity_id: str) -> dict | None:
        try:
            return self.api("GET", f"/api/states/{entity_id}")
        except requests.HTTPError:
            return None

    def value(self, entity_id: str) -> str | None:
        s = self.state(entity_id)
        return s["state"] if s else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def log_problems(self) -> list[str]:
        log = self.config / "home-assistant.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return [
            line
            for line in lines
            if ("ERROR" in line or "WARNING" in line) and ("mqtt" in line.lower() or "skyedge" in line)
        ]


def _skyedge(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyedge", "run", "--config", str(config)])


def _home_assistant(ha_python: Path, root: Path, automations: list | None = None, **sections) -> HomeAssistant:
    """A Home Assistant (not started) on a fresh config directory under ``root``: the integrations this module
    needs, ``sections`` added or replacing them, and ``automations`` included when given."""
    config = root / "ha"
    config.mkdir()
    port = free_port()
    base = {
        "homeassistant": {"name": "Observatory", "time_zone": "UTC", "unit_system": "metric"},
        "http": {"server_host": "127.0.0.1", "server_port": port},
        "api": {},
        "config": {},
        "onboarding": {},
        "logger": {"default": "warning"},
    }
    text = yaml.safe_dump({**base, **sections})
    if automations is not None:
        text += "automation: !include automations.yaml\n"
        (config / "automations.yaml").write_text(yaml.safe_dump(automations))
    (config / "configuration.yaml").write_text(text)
    return HomeAssistant(ha_python, config, port)


@contextlib.contextmanager
def _stopped_after(ha: HomeAssistant, broker: MosquittoBroker):
    """Yields a list for the skyedge daemons a test starts; afterwards stops them, Home Assistant and the broker."""
    daemons: list[subprocess.Popen] = []
    try:
        yield daemons
    finally:
        for edge in daemons:
            if edge.poll() is None:
                edge.send_signal(signal.SIGTERM)
                edge.wait(timeout=30)
        ha.stop()
        broker.stop()


def test_skyedge_in_a_real_home_assistant(ha_python, frame_package, camera_frames, tmp_path):
    broker = MosquittoBroker()
    broker.start()
    ha = _home_assistant(
        ha_python,
        tmp_path,
        automations=_automation(),
        homeassistant={
            "name": "Observatory", "time_zone": "UTC", "latitude": 28.76, "longitude": -17.88, "elevation": 2396,
            "unit_system": "metric",
        },
        input_boolean={"roof_open": {"name": "Roof open"}},
    )
    package = package_with_unknown_threshold(frame_package, tmp_path / "pkg", 1e9)
    classes = list(read_card(package).classes)
    incoming = tmp_path / "in"
    incoming.mkdir()

    def deployment(name: str, pkg: Path) -> Path:
        cfg = write_config(
            tmp_path / f"{name}.yaml",
            pkg,
            {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.1},
            {
                "mqtt": {
                    "host": broker.host,
                    "port": broker.port,
                    "queue_path": str(tmp_path / f"{name}.q"),
                    "keepalive_s": 5,
                }
            },
            site="la-palma",
            device="allsky-01",
            homeassistant={"enabled": True},
        )
        data = yaml.safe_load(cfg.read_text())
        data["pipelines"][0]["safety"] = {"safe_classes": classes, "hold_frames": 2}
        data["pipelines"][0]["sky_state"] = {"hysteresis_frames": 1}
        cfg.write_text(yaml.safe_dump(data))
        return cfg

    timings = {}
    started = time.monotonic()
    with _stopped_after(ha, broker) as daemons:
        ha.start()
        timings["ha start"] = time.monotonic() - started
        ha.onboard()
        ha.add_mqtt(broker.host, broker.port)
        edge = _skyedge(deployment("edge", package))
        daemons.append(edge)
        for f in camera_frames[:3]:
            deliver(f, incoming / f.name)
        entities = {
            "sky": f"sensor.{IDS}_sky_state",
            "unsafe": f"binary_sensor.{IDS}_unsafe",
            "last": f"sensor.{IDS}_last_class",
            "confidence": f"sensor.{IDS}_confidence",
            "connectivity": f"binary_sensor.{IDS}_connectivity",
        }
        assert wait_for(lambda: ha.value(entities["unsafe"]) == "off", timeout=60), ha.state(entities["unsafe"])
        # (5) names: the device name once, then the entity's own.
        assert ha.state(entities["sky"])["attributes"]["friendly_name"] == "skyedge allsky Sky state"
        assert ha.value(entities["sky"]) in classes and ha.value(entities["last"]) in classes
        assert ha.value(entities["connectivity"]) == "on"
        attributes = ha.state(entities["sky"])["attributes"]
        assert {"previous", "since", "safe"} <= set(attributes) and "msg_id" not in attributes  # (6)
        assert 0 < float(ha.value(entities["confidence"])) <= 100
        # (2) the documented automation: the roof is open, skyedge vanishes, the roof closes.
        ha.api("POST", "/api/services/input_boolean/turn_on", json={"entity_id": "input_boolean.roof_open"})
        assert ha.value("input_boolean.roof_open") == "on"
        killed = time.monotonic()
        edge.send_signal(signal.SIGKILL)
        edge.wait()
        assert wait_for(lambda: ha.value(entities["unsafe"]) == "unavailable", timeout=30)
        timings["kill -> unavailable"] = time.monotonic() - killed
        assert wait_for(lambda: ha.value("input_boolean.roof_open") == "off", timeout=10)
        assert ha.value(entities["connectivity"]) == "off"
        # (1) skyedge's open-set answer reads 'unrecognised', never Home Assistant's 'unknown'.
        strict = package_with_unknown_threshold(frame_package, tmp_path / "strict", 1e-3)
        edge = _skyedge(deployment("strict", strict))
        daemons.append(edge)
        deliver(camera_frames[3], incoming / camera_frames[3].name)
        assert wait_for(lambda: ha.value(entities["sky"]) == "unrecognised", timeout=60), ha.state(entities["sky"])
        assert ha.value(entities["last"]) == "unrecognised" and ha.value(entities["unsafe"]) == "on"
        last_before = ha.value(entities["last"])
        # (3, 7) Home Assistant restarts while the broker has lost the retained discovery configs: skyedge
        # republishes them when Home Assistant says it is online, and the last classification is there at once.
        ha.stop()
        client = connect(broker)
        for component, what in (
            ("sensor", "sky_state"),
            ("binary_sensor", "unsafe"),
            ("sensor", "last_class"),
            ("sensor", "confidence"),
            ("binary_sensor", "connectivity"),
        ):
            client.publish(f"homeassistant/{component}/{IDS}/{what}/config", b"", qos=1, retain=True).wait_for_publish(
                10
            )
        client.disconnect()
        restarted = time.monotonic()
        ha.start()
        assert wait_for(lambda: ha.value(entities["last"]) == last_before, timeout=60), ha.state(entities["last"])
        timings["ha restart -> entities back"] = time.monotonic() - restarted
        assert ha.value(entities["sky"]) == "unrecognised" and ha.value(entities["connectivity"]) == "on"
        problems = ha.log_problems()
        assert not problems, problems
    print(
        json.dumps(
            {
                "home_assistant": HA_VERSION,
                "seconds": round(time.monotonic() - started, 1),
                **{k: round(v, 1) for k, v in timings.items()},
            }
        )
    )


def test_a_located_camera_shows_its_stars_in_a_real_home_assistant(ha_python, stub_frame_package, tmp_path):
    """A pipeline at a known site watches its stars unasked: Home Assistant's `Stars seen` sensor is unknown until
    the geometry is solved and the limits learnt, then reads the share of the expected stars seen."""
    from star_frames import LOCATION, NIGHT, star_frame

    broker = MosquittoBroker()
    broker.start()
    ha = _home_assistant(ha_python, tmp_path)
    incoming = tmp_path / "in"
    incoming.mkdir()
    cfg = write_config(
        tmp_path / "edge.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.1},
        {"mqtt": {"host": broker.host, "port": broker.port, "queue_path": str(tmp_path / "edge.q")}},
        site="la-palma",
        device="allsky-01",
        homeassistant={"enabled": True},
        site_location=LOCATION,
        script=["clear"],
        batch_size=1,
    )
    stars = f"sensor.{IDS}_stars_seen"
    dimmed, clock = f"binary_sensor.{IDS}_camera_dimmed", f"binary_sensor.{IDS}_clock_off"
    with _stopped_after(ha, broker) as daemons:
        ha.start()
        ha.onboard()
        ha.add_mqtt(broker.host, broker.port)
        daemons.append(_skyedge(cfg))
        frames = tmp_path / "frames"
        frames.mkdir()
        deliver(star_frame(frames / "f0.fits", NIGHT, cloudy=False, seed=10), incoming / "f0.fits")
        assert wait_for(lambda: ha.value(f"sensor.{IDS}_last_class") == "clear", timeout=60)
        assert ha.value(stars) == "unknown"  # solved from that frame, but no limits learnt yet: no fraction
        assert ha.value(clock) == "off"  # its stars were seen at their stated time
        assert ha.value(dimmed) == "unknown"  # nothing learnt to have dimmed from: the message left it unset
        for k in range(1, 4):
            deliver(star_frame(frames / f"f{k}.fits", NIGHT + 900.0 * k, cloudy=False, seed=10 + k), incoming / f"f{k}.fits")
        assert wait_for(lambda: ha.value(stars) not in (None, "unknown", "unavailable"), timeout=60), ha.state(stars)
        state = ha.state(stars)
        assert 80.0 <= float(state["state"]) <= 100.0 and state["attributes"]["unit_of_measurement"] == "%"
        assert state["attributes"]["zenith"] >= 80.0 and state["attributes"]["expected"] > 0
        assert state["attributes"]["friendly_name"] == "skyedge allsky Stars seen"
        assert ha.value(dimmed) == "off" and ha.value(clock) == "off"  # the limits known, the camera as deep as ever
        print(json.dumps({"home_assistant": HA_VERSION, "stars_seen": state["state"], **state["attributes"]}))
        problems = ha.log_problems()
        assert not problems, problems
