"""`skyedge watch`: what an operator opens first — every device under a broker, live, from its MQTT messages.

A rich table of devices (online/offline from the retained status and will),
per-camera sky state, the last classification, classification rate, outbox
depth and drop counts from the metrics message; ``--json`` prints each
message as one JSON line instead (for scripts and logs).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict, deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Board:
    """The latest known facts per device and camera, folded from messages."""

    def __init__(self):
        self.devices: dict[str, dict] = defaultdict(dict)
        self.cameras: dict[tuple[str, str], dict] = defaultdict(dict)
        self.rates: dict[tuple[str, str], deque] = defaultdict(lambda: deque(maxlen=1000))
        self.lock = threading.Lock()

    def update(self, topic: str, payload: dict) -> None:
        """Fold one message in."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != "skyedge":
            return
        device = f"{parts[1]}/{parts[2]}"
        kind = parts[-1]
        with self.lock:
            if kind == "status":
                self.devices[device].update(status=payload.get("state"), model=payload.get("model", {}))
            elif kind == "metrics":
                self.devices[device].update(
                    queue=payload.get("queue_depth", {}).get("outbox"),
                    dropped=payload.get("counts", {}).get("dropped"),
                    failed=payload.get("counts", {}).get("failed"),
                    throughput=payload.get("throughput"),
                )
            elif len(parts) == 5:
                cam = self.cameras[(device, parts[3])]
                if kind == "state":
                    cam.update(state=payload.get("state"), safe=payload.get("safe"))
                elif kind == "classification":
                    label = payload.get("class")
                    if payload.get("object_id"):
                        label = f"{payload['object_id']}: {label}"
                    cam.update(
                        last=label,
                        confidence=payload.get("confidence"),
                        ts=payload.get("ts"),
                        cloud=payload.get("cloud_cover"),
                    )
                    self.rates[(device, parts[3])].append(time.monotonic())
                elif kind == "event":
                    cam.update(event=payload.get("message"))
                self.devices.setdefault(device, {})

    def rate(self, key, window: float = 60.0) -> float:
        """Classifications per second over the last ``window`` seconds."""
        now = time.monotonic()
        return sum(1 for t in self.rates[key] if now - t <= window) / window

    def table(self):
        """The rich table of everything known."""
        from rich.table import Table

        t = Table(title="skyedge devices", expand=True)
        for col in (
            "device",
            "status",
            "model",
            "camera",
            "sky state",
            "last classification",
            "cloud %",
            "rate/s",
            "outbox",
            "dropped",
        ):
            t.add_column(col)
        with self.lock:
            for device, info in sorted(self.devices.items()):
                model = info.get("model") or {}
                cams = sorted(c for d, c in self.cameras if d == device) or ["–"]
                for i, cam in enumerate(cams):
                    c = self.cameras.get((device, cam), {})
                    state = c.get("state", "–")
                    state_txt = f"[green]{state}[/]" if c.get("safe") else f"[red]{state}[/]" if state != "–" else state
                    status = info.get("status", "?")
                    last = c.get("last", "–")
                    if c.get("confidence") is not None:
                        last = f"{last} ({c['confidence']:.2f})"
                    t.add_row(
                        device if i == 0 else "",
                        (f"[green]{status}[/]" if status == "online" else f"[red]{status}[/]") if i == 0 else "",
                        f"{model.get('name', '?')} {model.get('precision', '')}" if i == 0 else "",
                        cam,
                        state_txt,
                        last,
                        f"{c['cloud']:.0f}" if c.get("cloud") is not None else "–",
                        f"{self.rate((device, cam)):.2f}" if cam != "–" else "–",
                        str(info.get("queue", "–")) if i == 0 else "",
                        str(info.get("dropped", "–")) if i == 0 else "",
                    )
        return t


def watch(
    host: str, port: int, site: str | None, as_json: bool, protocol: str = "5", seconds: float | None = None, out=None
) -> Board:
    """Subscribe to ``skyedge/<site|+>/#`` and show (or print) what arrives; return the board at the end."""
    import sys

    out = out or sys.stdout
    board = Board()
    proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"skyedge-watch-{uuid.uuid4().hex[:8]}", protocol=proto)
    topic = f"skyedge/{site or '+'}/#"
    lock = threading.Lock()

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"skyedge watch: {host}:{port} refused the connection: {reason_code}", file=sys.stderr)
            return
        c.subscribe(topic, qos=1)

    def on_message(c, userdata, msg):
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = {"unparsable": msg.payload[:200].decode(errors="replace")}
        board.update(msg.topic, payload)
        if as_json:
            with lock:
                out.write(json.dumps({"topic": msg.topic, "retained": bool(msg.retain), "payload": payload}) + "\n")
                out.flush()

    client.on_connect, client.on_message = on_connect, on_message
    client.connect(host, port, 30)
    client.loop_start()
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        if as_json:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        else:
            from rich.live import Live

            with Live(board.table(), refresh_per_second=2) as live:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.5)
                    live.update(board.table())
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return board
