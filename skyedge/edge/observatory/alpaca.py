"""The ASCOM Alpaca server of the edge process, with Alpaca UDP discovery, and a cloud query for schedulers.

What N.I.N.A., SGP, TheSkyX and ACP poll: a SafetyMonitor (whether the roof may stay open) and, for models with a
cloud map, an ObservingConditions device with the cloud cover (:mod:`skyedge.edge.observatory.alpaca_devices`).
Implements the Alpaca device API (the members every device shares, ASCOM Platform 7 ``connect``/``disconnect``/
``connecting``/``devicestate`` included), the management API, Client/ServerTransactionID handling, Alpaca error
numbers in the JSON body, and HTTP 400 with a plain-text reason for malformed requests, per the ASCOM Alpaca API
reference.

Schedulers ask ``GET /skyedge/v1/clear?alt=..&az=..&radius=..`` (or ``ra=..&dec=..`` with the site located) whether
the sky around a target is clear, answered from the last cloud map in JSON: a plain HTTP GET because every
scheduler can poll one synchronously, on the server already running for Alpaca (docs/observatory-control.md).
Built on the standard library's HTTP server; nothing here ever answers with a traceback.
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
from skyedge.edge.observatory.alpaca_devices import (
    AlpacaDevice,
    AlpacaError,
    BadRequest,
    ObservingConditions,
    SafetyMonitor,
    driver_version,
)

__all__ = ["AlpacaServer", "BadRequest", "Params", "driver_version", "server_for"]

log = logging.getLogger(__name__)

DISCOVERY_QUERY = b"alpacadiscovery1"
UINT32_MAX = 2**32 - 1


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


class _Handler(BaseHTTPRequestHandler):
    server_version = f"skyedge/{__version__}"
    devices: dict[tuple[str, int], AlpacaDevice]
    location: str
    clear_query = None  # a callable(params) -> dict for /skyedge/v1/clear, or None without a cloud map
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
            elif parts == ["skyedge", "v1", "clear"] and method == "GET":
                self._clear(params)
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
        if rest == []:
            links = "".join(
                f"<p>{html.escape(d.name)}: <a href='/setup/v1/{d.path}/{d.device_number}/setup'>"
                f"{d.device_type} {d.device_number}</a></p>"
                for d in self.devices.values()
            )
            return self._send(200, _page("skyedge Alpaca server", links), "text/html; charset=utf-8")
        if len(rest) == 4 and rest[0] == "v1" and rest[3] == "setup" and rest[2].isdigit():
            dev = self.devices.get((rest[1], int(rest[2])))
            if dev is not None:
                body = _page(f"{dev.name}: {dev.device_type} {dev.device_number}", dev.setup_html())
                return self._send(200, body, "text/html; charset=utf-8")
        self._send(404, f"no such setup page: /setup/{'/'.join(rest)}".encode(), "text/plain")

    def _management(self, method: str, rest: list[str], params: Params) -> None:
        if method != "GET":
            raise BadRequest("management endpoints are GET only")
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
            return self._reply(params, [d.configured() for d in self.devices.values()])
        self._send(404, f"no such management endpoint: /management/{'/'.join(rest)}".encode(), "text/plain")

    def _device(self, method: str, kind: str, number: str, member: str, params: Params) -> None:
        if kind not in {k for k, _ in self.devices}:
            raise BadRequest(f"this server has no device type '{kind}' ({', '.join(sorted({k for k, _ in self.devices}))})")
        dev = self.devices.get((kind, int(number))) if number.isdigit() else None
        if dev is None:
            raise BadRequest(f"no {kind} number {number}")
        try:
            value = dev.get(member, params) if method == "GET" else dev.put(member, params)
        except AlpacaError as exc:
            return self._reply(params, "" if member == "action" else None, exc.number, str(exc))
        self._reply(params, value)

    def _clear(self, params: Params) -> None:
        if self.clear_query is None:
            return self._send(404, b"no cloud map: the model has none", "text/plain")
        try:
            answer = self.clear_query(params)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self._send(200, json.dumps(answer).encode(), "application/json")


def _page(title: str, body: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


class AlpacaServer:
    """The HTTP server and (optionally) the UDP discovery responder, each on its own thread."""

    def __init__(self, devices: list[AlpacaDevice], cfg, clear_query=None):
        self.devices = {(d.path, d.device_number): d for d in devices}
        attrs = {"devices": self.devices, "location": cfg.location, "clear_query": staticmethod(clear_query) if clear_query else None}
        handler = type("Handler", (_Handler,), attrs)
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

    @property
    def device(self) -> AlpacaDevice:
        """The SafetyMonitor."""
        return next(d for d in self.devices.values() if isinstance(d, SafetyMonitor))

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
        for d in self.devices.values():
            log.info("Alpaca %s on http://%s:%d/api/v1/%s/%d", d.device_type, self.bind, self.port, d.path, d.device_number)
        return self

    def stop(self) -> None:
        """Shut both down."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._udp is not None:
            self._udp.close()


def server_for(cfg, pipelines: list, model_name: str, cloud_map: bool = False, ephemeris=None) -> AlpacaServer:
    """The Alpaca devices for the deployment's ``alpaca`` section, reporting one frame pipeline: its SafetyMonitor,
    and with a cloud map its ObservingConditions and the cloud query."""
    from skyedge.edge.config import StartupError
    from skyedge.edge.observatory.target_query import clear_query

    frames = [p for p in pipelines if p.verdicts is not None]
    if not frames:
        raise StartupError("alpaca.enabled: the SafetyMonitor needs a frame (all-sky) pipeline")
    wanted = cfg.alpaca.camera
    pipeline = next((p for p in frames if p.camera == wanted), frames[0]) if wanted else frames[0]
    number = cfg.alpaca.device_number
    where = f"{cfg.site}/{cfg.device}/{pipeline.camera}"

    name = f"skyedge {cfg.device} {pipeline.camera}"

    def unique(kind: str) -> str:  # the SafetyMonitor keeps the identity clients already saved
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"skyedge:{name}:{number}" + ("" if kind == "safety" else f":{kind}")))

    devices: list[AlpacaDevice] = [
        SafetyMonitor(
            pipeline.verdicts.safety, name, number, f"All-sky safety from {model_name} on {where}", unique("safety")
        )
    ]
    query = None
    if cloud_map and cfg.alpaca.observing_conditions:
        conditions = pipeline.verdicts.conditions
        description = f"Cloud cover from {model_name}'s cloud map on {where}"
        devices.append(ObservingConditions(conditions, name, number, description, unique("conditions")))
        query = clear_query(conditions, ephemeris, pipeline.verdicts.safety.stale_after_s)
    try:
        return AlpacaServer(devices, cfg.alpaca, query)
    except OSError as exc:
        raise StartupError(
            f"alpaca: cannot listen on {cfg.alpaca.bind}:{cfg.alpaca.port} or UDP {cfg.alpaca.discovery_port}: {exc}"
        ) from None
