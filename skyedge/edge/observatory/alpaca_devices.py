"""The ASCOM Alpaca devices the edge serves: a SafetyMonitor and, for models with a cloud map, ObservingConditions.

Each device answers its own members; the members every device shares (Connected, Description, DriverInfo,
DriverVersion, InterfaceVersion, Name, SupportedActions, Action, Command*, Connect/Disconnect/Connecting,
DeviceState) live in :class:`AlpacaDevice`. The HTTP server (:mod:`skyedge.edge.observatory.alpaca`) parses
requests and hands each to its device; a device raises :class:`AlpacaError` for an Alpaca error (reported in
the JSON body with HTTP 200, as the reference wants) and :class:`BadRequest` for a malformed request (HTTP 400).

ObservingConditions follows the ASCOM reference: ``CloudCover`` in percent, 0-100 (alpyca's docstring saying
0-1 is wrong); ``SkyBrightness`` and ``SkyQuality`` are not measured (an image classifier cannot give an
honest photometric value) and, like every other weather sensor here, raise NotImplemented; ``AveragePeriod``
accepts 0.0 only (each value is one frame's); ``TimeSinceLastUpdate("")`` is the newest of any sensor,
negative when there has been none; ``SensorDescription`` answers even while disconnected; ``Refresh`` does
nothing (a frame brings each update). The 33-sector cloud map comes through ``Action("CloudMap")``.
"""

from __future__ import annotations

import json
import threading

from skyedge import __version__

NOT_IMPLEMENTED, INVALID_VALUE, VALUE_NOT_SET, NOT_CONNECTED, ACTION_NOT_IMPLEMENTED = 0x400, 0x401, 0x402, 0x407, 0x40C
CLOUD_MAP_ACTION = "CloudMap"


class BadRequest(Exception):
    """A malformed request: HTTP 400 with this text."""


class AlpacaError(Exception):
    """An Alpaca error for the JSON body: ``number`` (ErrorNumber) and the message."""

    def __init__(self, number: int, message: str):
        super().__init__(message)
        self.number = number


def driver_version(version: str) -> str:
    """The interface's "n.n" form of a package version: ``0.1.0`` -> ``0.1``."""
    parts = [p for p in version.split(".")[:2] if p.isdigit()]
    return ".".join(parts + ["0"] * (2 - len(parts)))


def _timestamp() -> str:
    from skyedge.edge.messages import utc_now

    return utc_now()


class AlpacaDevice:
    """What every Alpaca device answers; subclasses add ``device_type``, ``interface_version`` and their members."""

    device_type = ""
    interface_version = 1

    def __init__(self, name: str, device_number: int, description: str, unique_id: str):
        self.name, self.device_number, self.description, self.unique_id = name, device_number, description, unique_id
        self.connected = False
        self.lock = threading.Lock()

    @property
    def path(self) -> str:
        """The device's path segment: ``safetymonitor``, ``observingconditions``."""
        return self.device_type.lower()

    def configured(self) -> dict:
        """The management API's entry for this device."""
        return {
            "DeviceName": self.name,
            "DeviceType": self.device_type,
            "DeviceNumber": self.device_number,
            "UniqueID": self.unique_id,
        }

    # ------------------------------------------------------------------ per device type

    def readable(self) -> dict:
        """Device-specific readable members: name -> callable(params)."""
        return {}

    def state(self) -> list[dict]:
        """DeviceState's operational properties (before the TimeStamp)."""
        return []

    def supported_actions(self) -> list[str]:
        return []

    def action(self, name: str, parameters: str) -> str:
        raise AlpacaError(ACTION_NOT_IMPLEMENTED, f"action '{name}' is not implemented")

    def writable(self) -> dict:
        """Device-specific writable members: name -> callable(params) returning the value (None for none)."""
        return {}

    def setup_html(self) -> str:
        return ""

    # ------------------------------------------------------------------ shared members

    def get(self, member: str, params):
        """A GET of ``member``: its value, or AlpacaError / BadRequest."""
        common = {
            "connected": lambda p: self.connected,
            "connecting": lambda p: False,
            "description": lambda p: self.description,
            "driverinfo": lambda p: f"skyedge all-sky {self.device_type} {__version__}",
            "driverversion": lambda p: driver_version(__version__),
            "interfaceversion": lambda p: self.interface_version,
            "name": lambda p: self.name,
            "supportedactions": lambda p: self.supported_actions(),
            "devicestate": lambda p: [*self.state(), {"Name": "TimeStamp", "Value": _timestamp()}],
        }
        members = {**common, **self.readable()}
        if member not in members:
            raise BadRequest(f"{self.path} has no readable member '{member}'")
        return members[member](params)

    def put(self, member: str, params):
        """A PUT of ``member``: the value to return (None for none), or AlpacaError / BadRequest."""
        if member == "connected":
            with self.lock:
                self.connected = params.boolean("Connected")
            return None
        if member in ("connect", "disconnect"):
            with self.lock:
                self.connected = member == "connect"
            return None
        if member == "action":
            return self.action(params.get("Action") or "", params.get("Parameters") or "")
        if member in ("commandblind", "commandbool", "commandstring"):
            raise AlpacaError(NOT_IMPLEMENTED, f"{member} is not implemented")
        writable = self.writable()
        if member not in writable:
            raise BadRequest(f"{self.path} has no writable member '{member}'")
        return writable[member](params)


class SafetyMonitor(AlpacaDevice):
    """ISafetyMonitorV3: ``IsSafe`` from the camera's safety policy (unsafe while no client is connected)."""

    device_type = "SafetyMonitor"
    interface_version = 3

    def __init__(self, policy, name: str, device_number: int, description: str, unique_id: str):
        super().__init__(name, device_number, description, unique_id)
        self.policy = policy

    def is_safe(self) -> bool:
        return bool(self.connected and self.policy.is_safe())

    def readable(self) -> dict:
        return {"issafe": lambda p: self.is_safe()}

    def state(self) -> list[dict]:
        return [{"Name": "IsSafe", "Value": self.is_safe()}]

    def setup_html(self) -> str:
        import html

        safe = self.policy.is_safe()
        return (
            f"<p>{html.escape(self.description)}</p>"
            f"<p>Now: <b>{'safe' if safe else 'unsafe'}</b> ({html.escape(self.policy.reason)}); "
            f"client connected: {self.connected}.</p>"
            "<p>Nothing to configure here: the safe classes, hold time and staleness limit are the "
            "<code>safety</code> section of this camera's pipeline in the skyedge deployment YAML.</p>"
        )


# ObservingConditions' sensors: all but CloudCover are weather the camera does not measure.
SENSORS = (
    "CloudCover",
    "DewPoint",
    "Humidity",
    "Pressure",
    "RainRate",
    "SkyBrightness",
    "SkyQuality",
    "SkyTemperature",
    "StarFWHM",
    "Temperature",
    "WindDirection",
    "WindGust",
    "WindSpeed",
)
CLOUD_COVER_DESCRIPTION = (
    "Percent of the visible sky that is cloudy (0-100), from the all-sky camera's neural cloud map; horizon, "
    "obstructions and masked pixels left out. One value per frame, no averaging."
)


class ObservingConditions(AlpacaDevice):
    """IObservingConditionsV2 with ``CloudCover`` from the camera's cloud map (see the module docstring)."""

    device_type = "ObservingConditions"
    interface_version = 2

    def __init__(self, conditions, name: str, device_number: int, description: str, unique_id: str):
        super().__init__(name, device_number, description, unique_id)
        self.conditions = conditions

    def _connected(self) -> None:
        if not self.connected:
            raise AlpacaError(NOT_CONNECTED, "not connected: set Connected true first")

    def _cloud_cover(self) -> float:
        self._connected()
        report, _ = self.conditions.latest()
        if report is None:
            raise AlpacaError(VALUE_NOT_SET, "no cloud cover yet: no night frame has been classified")
        return float(report.cloud_cover)

    @staticmethod
    def _sensor(params) -> str:
        raw = params.get("SensorName")
        if raw is None:
            raise BadRequest("missing parameter SensorName")
        return raw.strip()

    def _known(self, sensor: str) -> str:
        match = next((s for s in SENSORS if s.lower() == sensor.lower()), None)
        if match is None:
            raise AlpacaError(INVALID_VALUE, f"no sensor named '{sensor}'")
        if match != "CloudCover":
            raise AlpacaError(NOT_IMPLEMENTED, f"{match} is not measured by this device")
        return match

    def _since(self, params) -> float:
        self._connected()
        sensor = self._sensor(params)
        if sensor:
            self._known(sensor)
        _, age = self.conditions.latest()
        return -1.0 if age is None else round(age, 3)  # negative: never updated

    def _description(self, params) -> str:
        sensor = self._sensor(params)
        if not sensor:
            raise AlpacaError(INVALID_VALUE, "SensorName must name a sensor")
        self._known(sensor)
        return CLOUD_COVER_DESCRIPTION

    def _not_measured(self, name: str):
        def raise_(_params):
            raise AlpacaError(NOT_IMPLEMENTED, f"{name} is not measured by this device")

        return raise_

    def readable(self) -> dict:
        members = {s.lower(): self._not_measured(s) for s in SENSORS if s != "CloudCover"}
        members.update(
            {
                "cloudcover": lambda p: self._cloud_cover(),
                "averageperiod": lambda p: 0.0,
                "timesincelastupdate": self._since,
                "sensordescription": self._description,
            }
        )
        return members

    def _average_period(self, params) -> None:
        raw = params.get("AveragePeriod")
        if raw is None:
            raise BadRequest("missing parameter AveragePeriod (PUT parameter names are case-sensitive)")
        try:
            value = float(raw)
        except ValueError:
            raise BadRequest(f"AveragePeriod must be a number, got '{raw}'") from None
        if value != 0.0:
            raise AlpacaError(INVALID_VALUE, f"AveragePeriod {value:g}: only 0.0 (each value is one frame's)")
        return None

    def writable(self) -> dict:
        return {"averageperiod": self._average_period, "refresh": lambda p: None}

    def state(self) -> list[dict]:
        report, age = self.conditions.latest()
        out = []
        if report is not None and self.connected:
            out.append({"Name": "CloudCover", "Value": float(report.cloud_cover)})
        if age is not None:
            out.append({"Name": "TimeSinceLastUpdate", "Value": round(age, 3)})
        return out

    def supported_actions(self) -> list[str]:
        return [CLOUD_MAP_ACTION]

    def action(self, name: str, parameters: str) -> str:
        if name.lower() != CLOUD_MAP_ACTION.lower():
            raise AlpacaError(ACTION_NOT_IMPLEMENTED, f"action '{name}' is not implemented (supported: {CLOUD_MAP_ACTION})")
        self._connected()
        report, age = self.conditions.latest()
        if report is None:
            raise AlpacaError(VALUE_NOT_SET, "no cloud map yet: no night frame has been classified")
        return json.dumps({**report.message(), "cloud_cover": report.cloud_cover, "age_s": round(age, 3)})

    def setup_html(self) -> str:
        report, age = self.conditions.latest()
        now = "none yet" if report is None else f"{report.cloud_cover:.0f}% ({age:.0f} s ago)"
        return (
            f"<p>{self.description}</p><p>Cloud cover now: <b>{now}</b>; client connected: {self.connected}.</p>"
            "<p>Only CloudCover is measured; the sector map is Action('CloudMap').</p>"
        )
