"""Home Assistant MQTT discovery: retained entity configs, so each camera's sky and safety appear without hand setup.

One Home Assistant device per camera (``skyedge <camera>``, area = the site), with short entity names
(Home Assistant prefixes the device name) and entity ids that carry site, device and camera, so two sites
with the same device names never collide:

* ``Sky state``: an enum sensor over the model's classes plus ``unrecognised``, ``day`` and ``stale``;
  attributes ``previous``, ``since``, ``safe`` (they change only when the state does, so the recorder
  writes no row per message);
* ``Unsafe``: a binary sensor with ``device_class: safety`` (on = unsafe, Home Assistant's convention);
* ``Last classification``: an enum sensor (classes, ``unrecognised``, ``day``), attribute ``top_class``;
* ``Confidence``: the verdict's confidence in %, not the top class's probability;
* ``Cloud cover``: percent of the visible sky that is cloudy (models with a cloud map; ``unknown`` for frames
  without one: daytime, not a night sky);
* ``Stars seen``: percent of the stars the camera should see that it sees, the whole sky, chance matches
  subtracted (cameras that watch their stars; attributes: the zenith's percent, stars expected and seen;
  ``unknown`` by day, before the geometry is solved, or with too few stars expected);
* ``Camera dimmed``: a diagnostic problem sensor beside it, on while the camera sees a magnitude or more less deep
  than it once did (``stars.dimmed_mag``: a dirty or dewed dome, a lens out of focus); frames that do not say
  (by day, before the limits are learnt) leave it as it was, so it does not flap with the sun;
* ``Clock off``: a diagnostic problem sensor, on while the stars say the capture time is wrong
  (``stars.clock_offset_min``: its clear skies then read starless, and unsafe, until the time is mended) or a
  frame's exposure contradicts the sun at its capture time (check ``clock_vs_exposure``, by day too); a
  daytime frame that says neither leaves it as it was. A located camera that does not watch its stars gets it
  from its exposures alone;
* ``Connectivity``: a diagnostic binary sensor from the retained status and its will.

Every entity but ``Connectivity`` is *unavailable* while the device's status is ``offline`` (or its will
fired): a roof automation must treat ``unavailable`` and ``unknown`` as unsafe (docs/observatory-control.md).
The configs are republished whenever Home Assistant announces itself on ``<prefix>/status``.
"""

from __future__ import annotations

import re
from functools import partial

from skyedge import __version__
from skyedge.edge.messages import Message

STATES_BESIDES_CLASSES = ("unrecognised", "day", "stale")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _options(classes: list[str], extra: tuple[str, ...]) -> list[str]:
    """An enum sensor's declared states, each once (a model trained with a 'day' class has it already)."""
    return list(dict.fromkeys([*classes, *extra]))


def _entity(
    prefix: str,
    node: str,
    dev: dict,
    availability: list,
    component: str,
    what: str,
    config: dict,
    available: bool = True,
) -> tuple[str, dict]:
    payload = {
        "unique_id": f"{node}_{what}",
        "object_id": f"{node}_{what}",  # the entity id: site, device and camera, so sites never collide
        "has_entity_name": True,
        "device": dev,
        **config,
    }
    if available:
        payload["availability"] = availability
    return f"{prefix}/{component}/{node}/{what}/config", payload


def discovery_messages(
    prefix: str, factory, cameras: list[str], model_name: str, classes: list[str], cloud_map: bool = False,
    starry: frozenset[str] = frozenset(), clocked: frozenset[str] = frozenset(),
) -> list[Message]:
    """Retained entity configs to publish at start (Home Assistant's payloads, not skyedge schemas);
    ``starry``: the cameras whose pipeline watches its stars; ``clocked``: those whose pipeline checks its clock
    against the exposures (``checks.clock_vs_exposure`` with a site location)."""
    site, device = factory.site, factory.device
    status = factory.topic("status")
    availability = [
        {
            "topic": status,
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    out = []
    for camera in cameras:
        node = _slug(f"skyedge {site} {device} {camera}")
        dev = {
            "identifiers": [node],
            "name": f"skyedge {camera}",
            "manufacturer": "skyedge",
            "model": model_name,
            "sw_version": __version__,
            "suggested_area": site,
        }
        state, classification = factory.topic("state", camera), factory.topic("classification", camera)
        entity = partial(_entity, prefix, node, dev, availability)
        out += [
            entity(
                "sensor",
                "sky_state",
                {
                    "name": "Sky state",
                    "state_topic": state,
                    "value_template": "{{ value_json.state }}",
                    "device_class": "enum",
                    "options": _options(classes, STATES_BESIDES_CLASSES),
                    "json_attributes_topic": state,
                    # .get: the first state has no 'previous' (absent fields are not sent), and Home Assistant's
                    # templates fail on an undefined value.
                    "json_attributes_template": (
                        "{{ {'previous': value_json.get('previous'), 'since': value_json.get('since'), "
                        "'safe': value_json.get('safe')} | tojson }}"
                    ),
                    "icon": "mdi:weather-night",
                },
            ),
            entity(
                "binary_sensor",
                "unsafe",
                {
                    "name": "Unsafe",
                    "device_class": "safety",
                    "state_topic": state,
                    "value_template": "{{ 'OFF' if value_json.safe else 'ON' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                },
            ),
            entity(
                "sensor",
                "last_class",
                {
                    "name": "Last classification",
                    "state_topic": classification,
                    "value_template": "{{ value_json['class'] }}",
                    "device_class": "enum",
                    "options": _options(classes, ("unrecognised", "day")),
                    "json_attributes_topic": classification,
                    "json_attributes_template": "{{ {'top_class': value_json.get('top_class')} | tojson }}",
                    "icon": "mdi:camera-iris",
                },
            ),
            entity(
                "sensor",
                "confidence",
                {
                    "name": "Confidence",
                    "state_topic": classification,
                    "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "icon": "mdi:gauge",
                },
            ),
            *(
                [
                    entity(
                        "sensor",
                        "cloud_cover",
                        {
                            "name": "Cloud cover",
                            "state_topic": classification,
                            "value_template": "{{ value_json.get('cloud_cover') }}",
                            "unit_of_measurement": "%",
                            "state_class": "measurement",
                            "icon": "mdi:weather-cloudy",
                        },
                    )
                ]
                if cloud_map
                else []
            ),
            *(
                [_stars_seen(entity, classification), _camera_dimmed(entity, classification), _clock_off(entity, classification)]
                if camera in starry
                else [_clock_off(entity, classification, starry=False)]
                if camera in clocked
                else []
            ),
            entity(
                "binary_sensor",
                "connectivity",
                {
                    "name": "Connectivity",
                    "device_class": "connectivity",
                    "entity_category": "diagnostic",
                    "state_topic": status,
                    "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                },
                available=False,  # it reports offline itself rather than going unavailable
            ),
        ]
    return [Message("discovery", topic, payload, qos=1, retain=True) for topic, payload in out]


def _camera_dimmed(entity, classification: str) -> tuple[str, dict]:
    """The ``Camera dimmed`` problem sensor from the message's ``stars.dimmed_mag``. A message whose stars say
    nothing of the camera's depth renders empty, which Home Assistant's MQTT binary sensor ignores: the state a
    night set stays through the day instead of turning off at sunrise and on again at dusk."""
    return _problem(
        entity, classification, "camera_dimmed", "Camera dimmed",
        "{% if s.get('dimmed_mag') is not none %}ON{% elif s.get('limiting_mag') is not none %}OFF{% endif %}",
    )


def _clock_off(entity, classification: str, starry: bool = True) -> tuple[str, dict]:
    """The ``Clock off`` problem sensor: on while the stars say the capture time is off (``stars.clock_offset_min``)
    or a frame's recorded exposure contradicts the sun at its capture time (``checks`` names ``clock_vs_exposure``:
    by day too, where a wrong clock leaves no stars to say so); other frames without a ``stars`` object (by day)
    render empty and leave it as it was. A camera that does not watch its stars (``starry`` False) has only its
    exposures to go by: a frame that records one and passes the check turns it off, one that records none says
    nothing."""
    on_if = "'clock_vs_exposure' in (value_json.get('checks') or [])"
    if not starry:
        return _problem(entity, classification, "clock_off", "Clock off", "OFF", on_if=on_if,
                        known="value_json.get('exposure_s') is not none")
    return _problem(
        entity, classification, "clock_off", "Clock off",
        "{{ 'ON' if s.get('clock_offset_min') is not none else 'OFF' }}", on_if=on_if,
    )


def _problem(entity, classification: str, what: str, name: str, on_stars: str, on_if: str | None = None,
             known: str = "s") -> tuple[str, dict]:
    """A diagnostic problem sensor read from the message's ``stars`` object as ``s`` by the template ``on_stars``;
    messages for which ``known`` (a condition; by default: a ``stars`` object) fails render empty (left as they
    were). ``on_if``: a condition on the whole message that turns the sensor on before the stars are read."""
    first = f"{{% if {on_if} %}}ON{{% elif {known} %}}" if on_if else f"{{% if {known} %}}"
    return entity(
        "binary_sensor",
        what,
        {
            "name": name,
            "device_class": "problem",
            "entity_category": "diagnostic",
            "state_topic": classification,
            "value_template": f"{{% set s = value_json.get('stars') %}}{first}{on_stars}{{% endif %}}",
            "payload_on": "ON",
            "payload_off": "OFF",
        },
    )


def _stars_seen(entity, classification: str) -> tuple[str, dict]:
    """The ``Stars seen`` sensor: the message's ``stars.visible_fraction`` in percent (None renders ``unknown``)."""
    stars = "(value_json.get('stars') or {})"
    return entity(
        "sensor",
        "stars_seen",
        {
            "name": "Stars seen",
            "state_topic": classification,
            "value_template": f"{{% set v = {stars}.get('visible_fraction') %}}{{{{ (v * 100) | round(1) if v is not none else None }}}}",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "json_attributes_topic": classification,
            "json_attributes_template": (
                f"{{% set s = {stars} %}}{{{{ {{'zenith': ((s.zenith_visible_fraction * 100) | round(1)) "
                "if s.get('zenith_visible_fraction') is not none else none, 'expected': s.get('expected'), "
                "'seen': s.get('seen')} | tojson }}"
            ),
            "icon": "mdi:star-four-points",
        },
    )
