"""MQTT reporter: paho-mqtt 2.x, QoS 1, retained state/status, a will, TLS, and store-and-forward.

``publish`` only appends to the durable :class:`~skyedge.edge.reporters.outbox.Outbox`;
a sender thread forwards the outbox in order while connected and deletes a
row on PUBACK. paho's network loop reconnects with exponential back-off; on
every connect the retained status 'online' is published, and the broker
publishes the retained will 'offline' if the device vanishes. The session is
persistent (clean start off, session expiry) so the broker keeps QoS 1 state
across reconnects. Resends after a reconnect can duplicate a message, never
lose one; consumers de-duplicate by ``msg_id``.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from skyedge import __version__
from skyedge.edge.messages import Message
from skyedge.edge.reporters.outbox import Outbox
from skyedge.errors import SkyedgeError

log = logging.getLogger(__name__)

MAX_INFLIGHT = 100
_NOT_YET = object()  # no PUBACK seen yet for a mid
CLASSIFICATION_EXPIRY_S = 3600  # a classification older than an hour is no use to roof control


class MqttConfigError(SkyedgeError, ValueError):
    """An MQTT setting that cannot work (missing file, unreadable password)."""


def _password(cfg) -> str | None:
    if cfg.password is not None:
        return cfg.password.get_secret_value()
    if cfg.password_file is not None:
        try:
            return Path(cfg.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MqttConfigError(f"reporters.mqtt.password_file: cannot read {cfg.password_file}: {exc}") from None
    return None


def default_queue_path(device: str) -> Path:
    """``$XDG_STATE_HOME/skyedge/<device>.queue`` (or ~/.local/state/...)."""
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "skyedge" / f"{device}.queue"


class MqttReporter:
    """Durable, ordered, at-least-once delivery of the contract's messages to one broker."""

    name = "mqtt"

    def __init__(self, cfg, factory):
        self.cfg, self.factory = cfg, factory
        self.v5 = cfg.protocol == "5"
        self.outbox = Outbox(cfg.queue_path or default_queue_path(factory.device), cfg.queue_max_messages)
        self.connected = threading.Event()
        self._attempted = threading.Event()  # the first connection attempt has an outcome (either way)
        self.last_error: str | None = None
        self.failed = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # mid -> outbox row id
        self._early: dict[int, object] = {}
        self._last_sent = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._listeners: dict[str, object] = {}  # topic -> callback(payload bytes), called on paho's thread
        client_id = cfg.client_id or f"skyedge-{factory.site}-{factory.device}"
        if self.v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False
            )
        password = _password(cfg)
        if cfg.username is not None or password is not None:
            self.client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(cfg.tls, key)
                if path is not None and not Path(path).exists():
                    raise MqttConfigError(f"reporters.mqtt.tls.{key}: {path} does not exist")
            self.client.tls_set(
                ca_certs=str(cfg.tls.ca_file),
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            self.client.tls_insecure_set(not cfg.tls.check_hostname)
        will = factory.make("status", state="offline", version=__version__)
        self.client.will_set(factory.topic("status"), json.dumps(will), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s
            self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s, clean_start=False, properties=props)
        else:
            self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        self.client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._attempted.set()
            self.last_error = f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {reason_code}"
            log.error("%s (check reporters.mqtt username/password/TLS)", self.last_error)
            return
        self.last_error = None
        log.info("connected to %s:%d (MQTT %s)", self.cfg.host, self.cfg.port, self.cfg.protocol)
        online = self.factory.make("status", state="online", version=__version__)
        # Directly, not through the outbox: 'online' describes this connection, not a queued past.
        client.publish(self.factory.topic("status"), json.dumps(online), qos=1, retain=True)
        with self._lock:
            self._inflight.clear()
            self._early.clear()
            self._last_sent = 0  # resend everything not acknowledged, in order
        for topic in list(self._listeners):
            client.subscribe(topic, qos=1)  # again on every connect: the session may be new
        self.connected.set()
        self._attempted.set()
        self._wake.set()

    def _on_message(self, client, userdata, msg):
        callback = self._listeners.get(msg.topic)
        if callback is not None:
            callback(msg.payload)

    def _on_connect_fail(self, client, userdata):
        self._attempted.set()
        self.last_error = f"cannot connect to {self.cfg.host}:{self.cfg.port}: {self._diagnose()}"
        log.error("%s; retrying with back-off", self.last_error)

    def _diagnose(self) -> str:
        """Why a connection attempt failed: paho only says that it did, so retry the socket/TLS step here."""
        import socket

        try:
            with socket.create_connection((self.cfg.host, self.cfg.port), timeout=5) as sock:
                if self.cfg.tls is None:
                    return "TCP connects; the broker closed the session"
                ctx = ssl.create_default_context(cafile=str(self.cfg.tls.ca_file))
                ctx.check_hostname = self.cfg.tls.check_hostname
                if self.cfg.tls.cert_file:
                    ctx.load_cert_chain(str(self.cfg.tls.cert_file), str(self.cfg.tls.key_file))
                with ctx.wrap_socket(sock, server_hostname=self.cfg.host):
                    return "TLS handshake succeeds; the broker closed the session"
        except ssl.SSLCertVerificationError as exc:
            return f"TLS certificate verification failed ({exc.verify_message}); is reporters.mqtt.tls.ca_file the broker's CA?"
        except (OSError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self._stop.is_set():
            log.warning(
                "disconnected from %s:%d (%s); queueing to %s",
                self.cfg.host,
                self.cfg.port,
                reason_code,
                self.outbox.path,
            )

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            row = self._inflight.pop(mid, None)
            if row is None:
                self._early[mid] = reason_code
                return
        self._settle(row, reason_code)

    def _settle(self, row: int, reason_code) -> None:
        if reason_code is not None and getattr(reason_code, "is_failure", False):
            self.failed += 1
            log.error("broker rejected message %d: %s", row, reason_code)
        self.outbox.ack(row)
        self._wake.set()

    # ------------------------------------------------------------ sender thread

    def _properties(self, kind: str, schema: str | None):
        if not self.v5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        if schema is not None:
            props.UserProperty = [("schema", schema)]
        if kind == "classification":
            props.MessageExpiryInterval = CLASSIFICATION_EXPIRY_S
        return props

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            if not self.connected.is_set():
                self.connected.wait(0.2)
                continue
            with self._lock:
                free = MAX_INFLIGHT - len(self._inflight)
                after = self._last_sent
            rows = self.outbox.peek(free, after) if free > 0 else []
            if not rows:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            for row in rows:
                if not self.connected.is_set():
                    break
                # Never call into paho while holding our lock: its network thread takes its own locks and then
                # ours (in on_publish), so the opposite order would deadlock.
                info = self.client.publish(
                    row.topic, row.payload, row.qos, row.retain, self._properties(row.kind, row.schema)
                )
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # connection dropped; on_connect resets and resends
                with self._lock:
                    self._last_sent = row.id
                    early = self._early.pop(info.mid, _NOT_YET)
                    if early is _NOT_YET:
                        self._inflight[info.mid] = row.id
                if early is not _NOT_YET:
                    self._settle(row.id, early)

    # ------------------------------------------------------------ reporter interface

    def publish(self, message: Message) -> None:
        """Queue durably; the sender forwards it."""
        m = message
        self.outbox.put(m.topic, json.dumps(m.payload, separators=(",", ":")).encode(), m.qos, m.retain, m.kind, m.schema)
        self._wake.set()

    def listen(self, topic: str, callback) -> None:
        """Call ``callback(payload)`` for each message on ``topic`` (from paho's network thread: keep it short)."""
        self._listeners[topic] = callback
        if self.connected.is_set():
            self.client.subscribe(topic, qos=1)

    def stores(self) -> list:
        """The outbox is a durable store whose ``problem`` the publisher watches."""
        return [self.outbox]

    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return self.outbox.depth()

    def dropped(self) -> int:
        """Messages shed by the outbox bound."""
        return sum(self.outbox.dropped().values())

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged everything queued; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.outbox.depth() == 0

    def close(self, timeout: float = 10.0) -> None:
        """Flush (while connected, up to ``timeout``), disconnect cleanly; unsent messages stay queued on disk."""
        if self.outbox.depth() and not self.connected.is_set():
            # A short run (``--once`` with nothing new) can end before its first connection completes: let that
            # attempt finish, or the replay it came for waits for the next start. A refused broker answers at once.
            self._attempted.wait(timeout)
        if self.connected.is_set():
            self.flush(timeout)
        self._stop.set()
        self._sender.join(timeout=5)
        left = self.outbox.depth()
        if left:
            log.warning("%d message(s) not yet delivered stay queued in %s for the next start", left, self.outbox.path)
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()
