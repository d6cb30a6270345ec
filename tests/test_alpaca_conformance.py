"""The Alpaca SafetyMonitor against the rules of the ASCOM Alpaca API reference, as ConformU's protocol checks apply them.

Raw HTTP, not a client library: paths are case-sensitive and lower case, the setup pages exist, GET parameter
names are case-insensitive while PUT parameter names are not, ClientID/ClientTransactionID must be unsigned
32-bit integers when given (strict mode), replies carry the correctly cased fields, and not-implemented members
answer with Alpaca error numbers.
"""

from __future__ import annotations

import re

import pytest
import requests

from skyedge.brokers import free_port
from skyedge.edge.config import AlpacaSection
from skyedge.edge.observatory.alpaca import AlpacaServer
from skyedge.edge.observatory.alpaca_devices import SafetyMonitor
from skyedge.edge.observatory.safety import SafetyPolicy


@pytest.fixture(scope="module")
def server():
    policy = SafetyPolicy(["clear"], hold_frames=1)
    cfg = AlpacaSection.model_validate({"enabled": True, "port": free_port(), "discovery": False})
    device = SafetyMonitor(policy, "skyedge test allsky", 0, "All-sky safety for tests", "a" * 8)
    srv = AlpacaServer([device], cfg).start()
    base = f"http://127.0.0.1:{srv.port}"
    requests.put(f"{base}/api/v1/safetymonitor/0/connected", data={"Connected": "True"}, timeout=5)
    yield base, policy
    srv.stop()


DEVICE = "/api/v1/safetymonitor/0"


def _get(base, path, **params):
    return requests.get(base + path, params=params, timeout=5)


def _put(base, path, **form):
    return requests.put(base + path, data=form, timeout=5)


@pytest.mark.parametrize(
    "path",
    [
        "/api/V1/safetymonitor/0/description",  # capital V
        "/api/v1/SAFETYMONITOR/0/description",  # capitalised device type
        "/api/v1/SafetyMonitor/0/issafe",
        "/api/v1/safetymonitor/0/IsSafe",  # member name casing
        "/api/v1/safetymonitor/0/Description",
        "/MANAGEMENT/apiversions",
        "/management/v1/ConfiguredDevices",
        "/API/v1/safetymonitor/0/name",
        "/apx/v1/safetymonitor/0/description",  # bad base element
        "/api/1/safetymonitor/0/description",  # version without v
        "/api/v/safetymonitor/0/description",  # version without number
        "/api/v2/safetymonitor/0/description",
        "/api/v1/baddevicetype/0/description",
        "/api/v1/safetymonitor/-1/description",
        "/api/v1/safetymonitor/99999/description",
        "/api/v1/safetymonitor/A/description",
        "/api/v1/safetymonitor/0/descrip",
    ],
)
def test_every_wrong_path_gets_a_4xx(server, path):
    base, _ = server
    r = _get(base, path)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert r.text and "Traceback" not in r.text


def test_the_setup_pages_exist(server):
    base, _ = server
    for path in ("/setup", "/setup/v1/safetymonitor/0/setup"):
        r = _get(base, path)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), path
        assert "<html" in r.text.lower()
    assert "safety" in _get(base, "/setup/v1/safetymonitor/0/setup").text.lower()
    assert 400 <= _get(base, "/setup/v1/safetymonitor/1/setup").status_code < 500
    assert 400 <= _get(base, "/Setup").status_code < 500


def test_replies_have_the_reference_fields_and_driver_version_is_n_n(server):
    base, _ = server
    r = _get(base, f"{DEVICE}/driverversion", ClientID="7", ClientTransactionID="123")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage", "Value"}
    assert body["ClientTransactionID"] == 123 and body["ServerTransactionID"] >= 1 and body["ErrorNumber"] == 0
    assert re.fullmatch(r"\d+\.\d+", body["Value"]), body["Value"]
    later = _get(base, f"{DEVICE}/name").json()["ServerTransactionID"]
    assert later > body["ServerTransactionID"]
    assert _get(base, f"{DEVICE}/interfaceversion").json()["Value"] == 3
    for member in ("description", "driverinfo", "name", "supportedactions", "connected", "connecting", "devicestate"):
        assert _get(base, f"{DEVICE}/{member}").json()["ErrorNumber"] == 0, member


def test_get_parameter_names_are_case_insensitive(server):
    base, _ = server
    for name in ("clienttransactionid", "CLIENTTRANSACTIONID", "ClientTransactionId"):
        body = requests.get(f"{base}{DEVICE}/issafe?{name}=42&clientid=5", timeout=5).json()
        assert body["ClientTransactionID"] == 42, name
    r = requests.get(f"{base}{DEVICE}/issafe?ClientID=1&ClientTransactionID=2&Extra=3", timeout=5)
    assert r.status_code == 200  # extra parameters are ignored


def test_put_parameter_names_are_case_sensitive(server):
    base, _ = server
    assert _put(base, f"{DEVICE}/connected", Connected="True", ClientID="1", ClientTransactionID="9").json()["ClientTransactionID"] == 9
    assert _put(base, f"{DEVICE}/connected", connected="True").status_code == 400  # the member's parameter, wrong case
    assert _put(base, f"{DEVICE}/connected", CONNECTED="True").status_code == 400
    # A wrongly cased ClientID or ClientTransactionID is ignored: 200, and nothing echoed.
    r = _put(base, f"{DEVICE}/connected", Connected="True", clienttransactionid="77", clientid="3")
    assert r.status_code == 200 and r.json()["ClientTransactionID"] == 0
    assert _put(base, f"{DEVICE}/connect", ClientID="1", ClientTransactionID="2", Extra="x").status_code == 200


@pytest.mark.parametrize("value", ["", "   ", "-1", "abc", "1.5", "4294967296"])
@pytest.mark.parametrize("name", ["ClientID", "ClientTransactionID"])
def test_bad_client_ids_are_refused_strictly(server, name, value):
    base, _ = server
    assert _get(base, f"{DEVICE}/issafe", **{name: value}).status_code == 400
    assert _put(base, f"{DEVICE}/connected", Connected="True", **{name: value}).status_code == 400
    assert _put(base, f"{DEVICE}/connect", **{name: value}).status_code == 400


@pytest.mark.parametrize("value", ["", "123456", "asdqwe"])
def test_bad_connected_values_are_refused(server, value):
    base, _ = server
    r = _put(base, f"{DEVICE}/connected", Connected=value, ClientID="1", ClientTransactionID="2")
    assert r.status_code == 400 and r.text


def test_unimplemented_members_answer_with_alpaca_error_numbers(server):
    base, _ = server
    action = _put(base, f"{DEVICE}/action", Action="OpenRoof", Parameters="").json()
    assert action["ErrorNumber"] == 0x40C and action["ErrorMessage"]
    for member in ("commandblind", "commandbool", "commandstring"):
        body = _put(base, f"{DEVICE}/{member}", Command="x", Raw="True").json()
        assert body["ErrorNumber"] == 0x400 and body["ErrorMessage"], member
    assert _put(base, f"{DEVICE}/issafe").status_code == 400  # read-only member
    assert requests.post(f"{base}{DEVICE}/connected", data={"Connected": "True"}, timeout=5).status_code >= 400
    assert requests.delete(f"{base}{DEVICE}/connected", timeout=5).status_code >= 400


def test_issafe_is_false_while_disconnected_and_follows_the_policy(server):
    base, policy = server
    policy.frame("clear")
    assert _get(base, f"{DEVICE}/issafe").json()["Value"] is True
    _put(base, f"{DEVICE}/disconnect")
    assert _get(base, f"{DEVICE}/issafe").json()["Value"] is False
    _put(base, f"{DEVICE}/connect")
    policy.frame("cloudy")
    assert _get(base, f"{DEVICE}/issafe").json()["Value"] is False


def test_management_api(server):
    base, _ = server
    assert _get(base, "/management/apiversions").json()["Value"] == [1]
    devices = _get(base, "/management/v1/configureddevices").json()["Value"]
    assert devices[0]["DeviceType"] == "SafetyMonitor" and devices[0]["DeviceNumber"] == 0 and devices[0]["UniqueID"]
    assert set(_get(base, "/management/v1/description").json()["Value"]) >= {"ServerName", "Manufacturer"}
    assert _put(base, "/management/apiversions").status_code == 400
