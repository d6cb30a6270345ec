"""The model's cloud map against its own class (``checks.cloud_map``): which side of clear-or-cloudy the map is on.

On the one real camera measured (docs/results.md, "The cloud map deciding"), the refitted map of a model trained on
that camera's other nights separated clear from cloudy skies better than the class did, so a pipeline may let it
decide. A map that never saw the camera can read the camera's overcast as clear, hence off by default.
"""

from __future__ import annotations

from collections.abc import Mapping

CLOUDY, CLEAR, MOON = "cloudy", "clear", "moon"
SAYS_CLEAR, SAYS_CLOUDY = "cloud_map_clear", "cloud_map_cloudy"


def map_check(label: str, probabilities: Mapping[str, float], cloud, checks, moon_down: bool) -> tuple[list[str], str]:
    """(the check that fired, if any; the class after it). ``cloud``: the frame's CloudReport (None: no map, no
    check). Only clear, moon and cloudy are weighed: aurora, day and unrecognised answers are left as they are."""
    if checks.cloud_map == "off" or cloud is None or label not in (CLEAR, MOON, CLOUDY):
        return [], label
    fraction = cloud.clear_within(checks.cloud_map_zenith_deg)
    if fraction is None:
        return [], label
    clear = 100.0 * fraction <= checks.cloud_map_max_cover
    if clear == (label != CLOUDY):  # the map and the class are on the same side
        return [], label
    if checks.cloud_map == "flag":
        return [SAYS_CLEAR if clear else SAYS_CLOUDY], label
    if not clear:
        return [SAYS_CLOUDY], CLOUDY
    # Clear, or moonlit where the model leans that way and the moon may be up (the moon checks would refuse a
    # 'moon' with the moon known to be down).
    sides = [c for c in (CLEAR, MOON) if c in probabilities and not (c == MOON and moon_down and CLEAR in probabilities)]
    if not sides:
        return [], label
    return [SAYS_CLEAR], max(sides, key=lambda c: probabilities[c])
