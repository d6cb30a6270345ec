"""Local MQTT brokers for tests, the demo and `skyedge broker`: real ones, started and stopped here.

* :class:`MosquittoBroker` runs the ``mosquitto`` binary (MQTT 5 and 3.1.1) with a
  generated config on a loopback port; what production sites should run.
* :class:`AmqttBroker` runs the pure-Python amqtt broker in a background thread
  (MQTT 3.1.1 only: amqtt refuses protocol level 5), for machines without mosquitto.

Both offer ``start()``, ``stop()``, ``restart()`` (same port, for outage tests)
and context-manager use.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["AmqttBroker", "MosquittoBroker", "free_port", "start_broker", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s") from None
            time.sleep(0.05)


class _Broker:
    kind = "abstract"
    supports_mqtt5 = False

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)

    def restart(self) -> None:
        """Stop and start again on the same port (a broker outage)."""
        self.stop()
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port}>"


class MosquittoBroker(_Broker):
    """The mosquitto binary on a loopback port, with a config written into a temp dir."""

    kind = "mosquitto"
    supports_mqtt5 = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_config: str = "",
        binary: str | None = None,
        workdir: str | Path | None = None,
    ):
        super().__init__(host, port)
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.extra_config = extra_config
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="skyedge-mosquitto-")
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        """Whether a mosquitto binary can be found."""
        return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        base = (
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # Started as root, mosquitto drops to the 'mosquitto' user and then cannot write its log or
            # persistence files in our (private) work dir; stay the user who started it.
            + (f"user {getpass.getuser()}\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "")
            + f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        return base + self.extra_config

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        if self._proc and self._proc.poll() is None:
            return
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.host, self.port)
        except TimeoutError:
            self.stop()
            logtext = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}: {logtext[-2000:]}") from None
        if self._proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self._proc.returncode}")

    def stop(self) -> None:
        """Terminate mosquitto (SIGTERM, then SIGKILL after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def __del__(self):
        self.kill()


class AmqttBroker(_Broker):
    """The amqtt broker (MQTT 3.1.1) on its own event loop in a daemon thread."""

    kind = "amqtt"
    supports_mqtt5 = False

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        super().__init__(host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    def config(self) -> dict:
        """amqtt's broker configuration: one TCP listener, anonymous clients."""
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    def start(self) -> None:
        """Start the broker thread and wait until it accepts connections."""
        if self._thread and self._thread.is_alive():
            return
        from amqtt.broker import Broker

        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._broker = Broker(self.config(), loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"amqtt-{self.port}", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise RuntimeError(f"amqtt broker failed to start on {self.host}:{self.port}: {failure[0]}")
        wait_for_port(self.host, self.port)

    def stop(self) -> None:
        """Shut the broker down and join its thread."""
        loop, thread, broker = self._loop, self._thread, self._broker
        self._thread = None
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout=10)
        except Exception as exc:  # noqa: BLE001 - a broker that cannot shut down cleanly is still stopped
            log.warning("amqtt shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def start_broker(prefer: str = "mosquitto", host: str = "127.0.0.1", port: int | None = None) -> _Broker:
    """Start mosquitto when installed (or asked for), else amqtt; return the running broker."""
    if prefer not in ("mosquitto", "amqtt"):
        raise ValueError(f"unknown broker '{prefer}'; expected mosquitto or amqtt")
    broker: _Broker
    if prefer == "mosquitto" and MosquittoBroker.available():
        broker = MosquittoBroker(host, port)
    else:
        broker = AmqttBroker(host, port)
    broker.start()
    log.info("started %s broker on %s:%d", broker.kind, broker.host, broker.port)
    return broker
