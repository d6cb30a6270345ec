"""An edge-like publisher process for crash tests: queues N classifications through the MQTT reporter.

usage: python mqtt_publisher.py HOST PORT QUEUE_FILE IDS_FILE N [RATE_PER_S]
Each msg_id is appended to IDS_FILE after the reporter has durably queued it; N=0 only replays the queue.
"""

from __future__ import annotations

import sys
import time

from skyedge.edge.config import MqttSection
from skyedge.edge.messages import MessageFactory
from skyedge.edge.reporters.mqtt import MqttReporter
from skyedge.edge.tools.mqtt_bench import sample_classification


def main() -> None:
    host, port, queue, ids, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    factory = MessageFactory("site", "edge-1", {"name": "m", "sha256": "0" * 64, "precision": "fp32"})
    cfg = MqttSection.model_validate({"host": host, "port": port, "protocol": "3.1.1", "queue_path": queue})
    reporter = MqttReporter(cfg, factory)
    with open(ids, "a", buffering=1) as fh:
        for i in range(n):
            message = sample_classification(factory, i, camera="allsky")
            reporter.publish(message)
            fh.write(message.payload["msg_id"] + "\n")
            if rate:
                time.sleep(1.0 / rate)
    reporter.flush(120)
    reporter.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
