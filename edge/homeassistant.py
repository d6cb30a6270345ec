"""Home Assistant MQTT discovery: retained entity configs so a device's sky state appears without hand setup.

Per frame camera: the sky state (sensor), "safe to observe" (binary_sensor with
device_class ``safety``: on = unsafe, as Home Assistant defines it), the last
classification with its confidence (sensor + attributes), and per device its
status. Availability follows the retained status topic and its will, so a
vanished device shows as unavailable.
"""

from __future__ import annotations

from skyedge import __version__
from skyedge.edge.messages import Message


def discovery_messages(prefix: str, factory, cameras: list[str], model_name: str) -> list[Message]:
    """Retained entity configs to publish at start (Home Assistant's payloads, not skyedge schemas)."""
    site, device = factory.site, factory.device
    node = f"skyedge_{site}_{device}".replace("-", "_").replace(".", "_")
    status = factory.topic("status")
    dev = {
        "identifiers": [node],
        "name": f"skyedge {device}",
        "manufacturer": "skyedge",
        "model": model_name,
        "sw_version": __version__,
        "suggested_area": site,
    }
    availability = [
        {
            "topic": status,
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    out = [
        (
            f"{prefix}/sensor/{node}/status/config",
            {
                "name": "Status",
                "unique_id": f"{node}_status",
                "state_topic": status,
                "value_template": "{{ value_json.state }}",
                "icon": "mdi:lan-connect",
                "device": dev,
            },
        )
    ]
    for camera in cameras:
        cam = camera.replace("-", "_").replace(".", "_")
        state, classification = factory.topic("state", camera), factory.topic("classification", camera)
        out += [
            (
                f"{prefix}/sensor/{node}/{cam}_sky_state/config",
                {
                    "name": f"{camera} sky state",
                    "unique_id": f"{node}_{cam}_sky_state",
                    "state_topic": state,
                    "value_template": "{{ value_json.state }}",
                    "json_attributes_topic": state,
                    "icon": "mdi:weather-night",
                    "availability": availability,
                    "device": dev,
                },
            ),
            (
                f"{prefix}/binary_sensor/{node}/{cam}_unsafe/config",
                {
                    "name": f"{camera} unsafe to observe",
                    "unique_id": f"{node}_{cam}_unsafe",
                    "device_class": "safety",
                    "state_topic": state,
                    "value_template": "{{ 'OFF' if value_json.safe else 'ON' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "availability": availability,
                    "device": dev,
                },
            ),
            (
                f"{prefix}/sensor/{node}/{cam}_last_class/config",
                {
                    "name": f"{camera} last classification",
                    "unique_id": f"{node}_{cam}_last_class",
                    "state_topic": classification,
                    "value_template": "{{ value_json['class'] }}",
                    "json_attributes_topic": classification,
                    "json_attributes_template": "{{ {'confidence': value_json.confidence, 'top_class': value_json.top_class, 'frame_id': value_json.frame_id} | tojson }}",
                    "icon": "mdi:camera-iris",
                    "availability": availability,
                    "device": dev,
                },
            ),
            (
                f"{prefix}/sensor/{node}/{cam}_confidence/config",
                {
                    "name": f"{camera} confidence",
                    "unique_id": f"{node}_{cam}_confidence",
                    "state_topic": classification,
                    "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "availability": availability,
                    "device": dev,
                },
            ),
        ]
    return [Message("discovery", topic, payload, qos=1, retain=True) for topic, payload in out]
