"""A separate subscriber process, as observatory control would run it: persistent session, QoS 1, every message logged.

usage: python mqtt_subscriber.py HOST PORT TOPIC OUT_FILE CLIENT_ID
Writes 'READY' to OUT_FILE.ready once subscribed, then one JSON payload per line to OUT_FILE.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, topic, out, client_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5]
    fh = open(out, "a", buffering=1, encoding="utf-8")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False)

    def on_connect(c, userdata, flags, reason_code, properties):
        c.subscribe(topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        Path(str(out) + ".ready").write_text("READY")

    def on_message(c, userdata, msg):
        fh.write(msg.payload.decode() + "\n")

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.reconnect_delay_set(0.2, 1)
    client.connect_async(host, port, 10)
    client.loop_start()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
