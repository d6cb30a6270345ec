"""An ASCOM Alpaca SafetyMonitor served by the edge process, with Alpaca UDP discovery.

What N.I.N.A., SGP, TheSkyX and ACP poll to decide whether the roof may stay
open. Implements the Alpaca device API for SafetyMonitor (``issafe`` plus the
common members, ASCOM Platform 7 ``connect``/``disconnect``/``connecting``/
``devicestate`` included), the management API, Client/ServerTransactionID
handling, Alpaca error numbers in the JSON body, and HTTP 400 with a plain-text
reason for malformed requests, per the ASCOM Alpaca API reference. Built on the
standard library's HTTP server; nothing here ever answers with a traceback.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from skyedge import __version__

log = logging.getLogger(__name__)

DISCOVERY_QUERY = b"alpacadiscovery1"
INTERFACE_VERSION = 3  # ISafetyMonitorV3 (ASCOM Platform 7)
NOT_IMPLEMENTED, INVALID_VALUE, ACTION_NOT_IMPLEMENTED = 0x400, 0x401, 0x40C
UINT32_MAX = 2**32 - 1


class BadRequest(Exception):
    """A malformed request: HTTP 400 with this text."""


class SafetyMonitorDevice:
    """The device state the HTTP handler reads; ``policy`` is a :class:`~skyedge.edge.observatory.safety.SafetyPolicy`."""

    def __init__(self, policy, name: str, device_number: int, description: str, unique_id: str):
        self.policy, self.name, self.device_number = policy, name, device_number
        self.description, self.unique_id = description, unique_id
        self.connected = False
        self.lock = threading.Lock()


class Params:
    """A request's parameters under the Alpaca reference's casing rules.

    GET query parameter names are case-insensitive. PUT form parameter names are case-sensitive: a member's
    parameter in the wrong case is missing (HTTP 400), and a wrongly cased ClientID or ClientTransactionID is
    ignored (ConformU's protocol checks expect exactly this).
    """

    def __init__(self, method: str, pairs: list[tuple[str, str]]):
        self.method, self.pairs = method, pairs

    def get(self, name: str) -> str | None:
        """The value of ``name`` under the method's casing rule, or None."""
        exact = self.method == "PUT"
        for key, value in self.pairs:
            if key == name or (not exact and key.lower() == name.lower()):
                return value
        return None

    def uint32(self, name: str) -> int:
        """ClientID / ClientTransactionID: absent is 0; present, it must be an unsigned 32-bit integer."""
        raw = self.get(name)
        if raw is None:
            return 0
        if not raw.strip().isdigit():
            raise BadRequest(f"{name} must be an unsigned 32-bit integer, got '{raw}'")
        value = int(raw)
        if value > UINT32_MAX:
            raise BadRequest(f"{name} must be an unsigned 32-bit integer, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        """A True/False member parameter."""
        raw = self.get(name)
        if raw is None:
            raise BadRequest(f"missing parameter {name} (PUT parameter names are case-sensitive)")
        if raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise BadRequest(f"{name} must be True or False, got '{raw}'")


def driver_version(version: str) -> str:
    """The interface's "n.n" form of a package version: ``0.1.0`` -> ``0.1``."""
    parts = [p for p in version.split(".")[:2] if p.isdigit()]
    return ".".join(parts + ["0"] * (2 - len(parts)))


class _Handler(BaseHTTPRequestHandler):
    server_version = f"skyedge/{__version__}"
    device: SafetyMonitorDevice
    location: str
    counter = itertools.count(1)

    def log_message(self, fmt, *args):  # route http.server's access log to ours, at debug level
        log.debug("alpaca %s - %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply(self, params: Params, value=None, error: int = 0, message: str = "") -> None:
        body = {
            "ClientTransactionID": params.uint32("ClientTransactionID"),
            "ServerTransactionID": next(self.counter),
            "ErrorNumber": error,
            "ErrorMessage": message,
        }
        if value is not None or error == 0:
            body["Value"] = value
        self._send(200, json.dumps(body).encode(), "application/json")

    def _params(self, method: str) -> tuple[str, Params]:
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        if method == "PUT":
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
            pairs += parse_qsl(form, keep_blank_values=True)
        path = url.path.rstrip("/") or "/"
        return path, Params(method, pairs)

    def do_GET(self):
        self._handle("GET")

    def do_PUT(self):
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        try:
            path, params = self._params(method)
            params.uint32("ClientTransactionID")
            params.uint32("ClientID")
            parts = path.strip("/").split("/")
            if path != path.lower():
                # The reference makes every path element case-sensitive and lower case; ConformU sends
                # /api/V1/..., /SAFETYMONITOR/..., /IsSafe and expects a 4xx.
                raise BadRequest(f"Alpaca paths are lower case: {path}")
            if parts[0] == "setup":
                self._setup(method, parts[1:])
            elif parts[0] == "management":
                self._management(method, parts[1:], params)
            elif parts[:2] == ["api", "v1"] and len(parts) == 5:
                self._device(method, parts[2], parts[3], parts[4], params)
            elif parts[0] == "api":
                raise BadRequest(f"not an Alpaca device path (expected /api/v1/<type>/<number>/<member>): {path}")
            else:
                self._send(404, f"no such Alpaca endpoint: {path}".encode(), "text/plain")
        except BadRequest as exc:
            self._send(400, str(exc).encode(), "text/plain")
        except Exception:
            log.exception("alpaca request %s %s failed", method, self.path)
            self._send(500, b"internal error in the skyedge Alpaca server (see its log)", "text/plain")

    def _setup(self, method: str, rest: list[str]) -> None:
        if method != "GET":
            raise BadRequest("setup pages are GET only")
        dev = self.device
        if rest == []:
            body = _page(
                "skyedge Alpaca server",
                f"<p>{html.escape(dev.name)}: <a href='/setup/v1/safetymonitor/{dev.device_number}/setup'>"
                f"SafetyMonitor {dev.device_number}</a></p>",
            )
            return self._send(200, body, "text/html; charset=utf-8")
        if rest == ["v1", "safetymonitor", str(dev.device_number), "setup"]:
            safe = dev.policy.is_safe()
            body = _page(
                f"{dev.name}: SafetyMonitor {dev.device_number}",
                f"<p>{html.escape(dev.description)}</p>"
                f"<p>Now: <b>{'safe' if safe else 'unsafe'}</b> ({html.escape(dev.policy.reason)}); "
                f"client connected: {dev.connected}.</p>"
                "<p>Nothing to configure here: the safe classes, hold time and staleness limit are the "
                "<code>safety</code> section of this camera's pipeline in the skyedge deployment YAML.</p>",
            )
            return self._send(200, body, "text/html; charset=utf-8")
        self._send(404, f"no such setup page: /setup/{'/'.join(rest)}".encode(), "text/plain")

    def _management(self, method: str, rest: list[str], params: Params) -> None:
        if method != "GET":
            raise BadRequest("management endpoints are GET only")
        dev = self.device
        if rest == ["apiversions"]:
            return self._reply(params, [1])
        if rest == ["v1", "description"]:
            return self._reply(
                params,
                {
                    "ServerName": "skyedge",
                    "Manufacturer": "skyedge",
                    "ManufacturerVersion": __version__,
                    "Location": self.location,
                },
            )
        if rest == ["v1", "configureddevices"]:
            return self._reply(
                params,
                [
                    {
                        "DeviceName": dev.name,
                        "DeviceType": "SafetyMonitor",
                        "DeviceNumber": dev.device_number,
                        "UniqueID": dev.unique_id,
                    }
                ],
            )
        self._send(404, f"no such management endpoint: /management/{'/'.join(rest)}".encode(), "text/plain")

    def _device(self, method: str, kind: str, number: str, member: str, params: Params) -> None:
        dev = self.device
        if kind != "safetymonitor":
            raise BadRequest(f"this server has no device type '{kind}' (only safetymonitor)")
        if not number.isdigit() or int(number) != dev.device_number:
            raise BadRequest(f"no safetymonitor number {number} (configured: {dev.device_number})")
        get = {
            "issafe": lambda: bool(dev.connected and dev.policy.is_safe()),
            "connected": lambda: dev.connected,
            "connecting": lambda: False,
            "description": lambda: dev.description,
            "driverinfo": lambda: f"skyedge all-sky classifier safety monitor {__version__}",
            "driverversion": lambda: driver_version(__version__),
            "interfaceversion": lambda: INTERFACE_VERSION,
            "name": lambda: dev.name,
            "supportedactions": lambda: [],
            "devicestate": lambda: [
                {"Name": "IsSafe", "Value": bool(dev.connected and dev.policy.is_safe())},
                {"Name": "TimeStamp", "Value": _timestamp()},
            ],
        }
        if method == "GET":
            if member not in get:
                raise BadRequest(f"safetymonitor has no readable member '{member}'")
            return self._reply(params, get[member]())
        if member == "connected":
            with dev.lock:
                dev.connected = params.boolean("Connected")
            return self._reply(params)
        if member in ("connect", "disconnect"):
            with dev.lock:
                dev.connected = member == "connect"
            return self._reply(params)
        if member == "action":
            return self._reply(
                params, "", ACTION_NOT_IMPLEMENTED, f"action '{params.get('Action')}' is not implemented"
            )
        if member in ("commandblind", "commandbool", "commandstring"):
            return self._reply(params, None, NOT_IMPLEMENTED, f"{member} is not implemented")
        raise BadRequest(f"safetymonitor has no writable member '{member}'")


def _page(title: str, body: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def _timestamp() -> str:
    from skyedge.edge.messages import utc_now

    return utc_now()


class AlpacaServer:
    """The HTTP server and (optionally) the UDP discovery responder, each on its own thread."""

    def __init__(self, policy, cfg, name: str, description: str):
        unique = str(uuid.uuid5(uuid.NAMESPACE_URL, f"skyedge:{name}:{cfg.device_number}"))
        self.device = SafetyMonitorDevice(policy, name, cfg.device_number, description, unique)
        handler = type("Handler", (_Handler,), {"device": self.device, "location": cfg.location})
        self.httpd = ThreadingHTTPServer((cfg.bind, cfg.port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.bind = cfg.bind
        self._threads = [threading.Thread(target=self.httpd.serve_forever, name="alpaca-http", daemon=True)]
        self._udp = None
        if cfg.discovery:
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._udp.bind(("", cfg.discovery_port))  # broadcasts arrive on the wildcard address
            self._udp.settimeout(0.5)
            self._threads.append(threading.Thread(target=self._discovery, name="alpaca-discovery", daemon=True))
        self._stop = threading.Event()

    def _discovery(self) -> None:
        loopback_only = self.bind.startswith("127.") or self.bind == "localhost"
        while not self._stop.is_set():
            try:
                data, addr = self._udp.recvfrom(1024)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data.startswith(DISCOVERY_QUERY):
                continue
            if loopback_only and not addr[0].startswith("127."):
                continue  # the HTTP server is unreachable from there; do not advertise it
            self._udp.sendto(json.dumps({"AlpacaPort": self.port}).encode(), addr)

    def start(self) -> AlpacaServer:
        """Serve in the background."""
        for t in self._threads:
            t.start()
        log.info(
            "Alpaca SafetyMonitor on http://%s:%d/api/v1/safetymonitor/%d",
            self.bind,
            self.port,
            self.device.device_number,
        )
        return self

    def stop(self) -> None:
        """Shut both down."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._udp is not None:
            self._udp.close()


def server_for(cfg, pipelines: list, model_name: str) -> AlpacaServer:
    """The SafetyMonitor for the deployment's ``alpaca`` section, reporting one frame pipeline's safety."""
    from skyedge.edge.config import StartupError

    frames = [p for p in pipelines if p.verdicts is not None]
    if not frames:
        raise StartupError("alpaca.enabled: the SafetyMonitor needs a frame (all-sky) pipeline")
    wanted = cfg.alpaca.camera
    pipeline = next((p for p in frames if p.camera == wanted), frames[0]) if wanted else frames[0]
    name = f"skyedge {cfg.device} {pipeline.camera}"
    description = f"All-sky safety from {model_name} on {cfg.site}/{cfg.device}/{pipeline.camera}"
    try:
        return AlpacaServer(pipeline.verdicts.safety, cfg.alpaca, name, description)
    except OSError as exc:
        raise StartupError(
            f"alpaca: cannot listen on {cfg.alpaca.bind}:{cfg.alpaca.port} or UDP {cfg.alpaca.discovery_port}: {exc}"
        ) from None
