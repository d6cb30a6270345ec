"""Is the sky clear around a target? The scheduler's question, answered from the camera's last cloud map.

``GET /skyedge/v1/clear`` on the Alpaca server with either ``alt`` and ``az`` (degrees, azimuth from north
through east) or ``ra`` and ``dec`` (degrees, J2000; needs ``site_location``), ``radius`` (degrees, default 10)
and ``max_cloud`` (the largest cloud fraction still called clear, default 0.1). The answer, JSON::

    {"alt_deg", "az_deg", "radius_deg", "cloud_fraction", "seen_fraction", "clear", "reason",
     "cloud_cover", "age_s", "stale", "geometry"}

``clear`` is false whenever it cannot be vouched for: the target below the horizon, no map yet, the camera seeing
none of the circle, or a map older than the camera's ``safety.stale_after_s``.
"""

from __future__ import annotations

import time


def _number(params, name: str, default: float | None = None) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of degrees, got '{raw}'") from None


def clear_query(conditions, ephemeris, stale_after_s: float):
    """A handler for the endpoint over one camera's :class:`~skyedge.edge.observatory.conditions.SkyConditions`."""

    def answer(params) -> dict:
        alt, az = _number(params, "alt"), _number(params, "az")
        ra, dec = _number(params, "ra"), _number(params, "dec")
        radius = _number(params, "radius", 10.0)
        limit = _number(params, "max_cloud", 0.1)
        if (alt is None) != (az is None) or (ra is None) != (dec is None) or (alt is None) == (ra is None):
            raise ValueError("give alt and az, or ra and dec (degrees)")
        if not 0 < radius <= 90 or not 0 <= limit <= 1:
            raise ValueError("radius must be in (0, 90] degrees and max_cloud in [0, 1]")
        if ra is not None:
            if ephemeris is None:
                raise ValueError("ra/dec needs site_location in the deployment (where the sky is); ask alt/az")
            alt, az = ephemeris.altaz(ra, dec, time.time())
        out = {"alt_deg": round(alt, 3), "az_deg": round(az % 360.0, 3), "radius_deg": radius}
        report, age = conditions.latest()
        if report is None:
            return {**out, "clear": False, "reason": "no cloud map yet", "cloud_fraction": None, "seen_fraction": 0.0}
        stale = age > stale_after_s
        cloud, seen = report.around(alt, az % 360.0, radius)
        out.update(
            cloud_fraction=None if cloud is None else round(cloud, 4),
            seen_fraction=round(seen, 3),
            cloud_cover=report.cloud_cover,
            age_s=round(age, 1),
            stale=stale,
            geometry=report.geometry,
        )
        if alt < 0:
            return {**out, "clear": False, "reason": "the target is below the horizon"}
        if stale:
            return {**out, "clear": False, "reason": f"the cloud map is {age:.0f} s old (stale after {stale_after_s:g} s)"}
        if cloud is None:
            return {**out, "clear": False, "reason": "the camera sees none of the sky around the target"}
        clear = cloud <= limit
        reason = f"cloud fraction {cloud:.2f} {'<=' if clear else '>'} max_cloud {limit:g}"
        return {**out, "clear": clear, "reason": reason}

    return answer
