"""The deployment schema's cross-checks of an all-sky model's answer (a pipeline's ``checks``): against the
ephemeris, the stars and the model's own cloud map (the rest is :mod:`skyedge.edge.config`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from skyedge.config import Schema


class ChecksSection(Schema):
    """Cross-checks of the model's answer against the ephemeris, the stars and its own cloud map: off, flag in the
    message, or act (unrecognised; the map's 'decide')."""

    moon_below_horizon: Literal["off", "flag", "unrecognised", "reclassify"] = Field(
        default="reclassify",
        description="'moon' while the moon is more than 2 deg below the horizon: lit cloud, light pollution or a "
        "bright clear sky, never a moonlit one. 'reclassify' (default): 'moon' is taken out, as 'day' is at night, "
        "and the model's next class answers, which the cloud map and the stars then check (flagged; on a real "
        "camera a simulator-only model never saw, 38 of its 109 such answers were clear skies and 71 cloudy or "
        "partly cloudy; its next class called 20 of the clear ones clear and 68 of the others cloudy: "
        "docs/results.md); 'unrecognised': the answer is unsafe",
    )
    bright_moon_unseen: Literal["off", "flag", "unrecognised"] = Field(
        default="flag", description="'clear' with a bright moon high and no glare where it is (needs orientation)"
    )
    bright_moon_min_illumination: Annotated[float, Field(ge=0, le=1)] = 0.5
    bright_moon_min_alt_deg: Annotated[float, Field(ge=0, le=90)] = 20.0
    clear_without_stars: Literal["off", "flag", "unrecognised"] = Field(
        default="unrecognised",
        description="'clear' while under stars.min_zenith_fraction of the stars expected within 36 deg of the zenith "
        "are seen, 'moon' under stars.moon_min_zenith_fraction (needs the stars section: on with site_location)",
    )
    stars_disagree: Literal["off", "flag"] = Field(
        default="flag",
        description="'cloudy' while at least stars.clear_zenith_fraction of the expected zenith stars are seen: "
        "flagged, and the frame collected for labelling when collect is on (needs the stars section: on with site_location)",
    )
    clock_vs_exposure: Literal["off", "flag"] = Field(
        default="flag",
        description="the frame's recorded exposure against the sun at its capture time (needs site_location): a "
        "daylight exposure (under day_max_exposure_s) while the sun is 18 deg or more below the horizon, or a "
        "night-long one (night_min_exposure_s or longer, the frame not saturated) while the sun is 5 deg or more "
        "above it. The camera's clock or capture_time.camera_timezone is likely wrong (or a lamp shines into the "
        "lens): flagged, counted and logged at most hourly; the frame's answer is not changed",
    )
    cloud_map: Literal["off", "flag", "decide"] = Field(
        default="off",
        description="the model's cloud map against its class (models with a cloud map): 'cloudy' while the map reads "
        "at most cloud_map_max_cover percent within cloud_map_zenith_deg of the zenith (check cloud_map_clear), or "
        "'clear'/'moon' while it reads more (cloud_map_cloudy); 'decide' makes the map's side the class ('clear', or "
        "'moon' where the model prefers it and the moon is not known to be down). For a model trained on this "
        "camera's labelled frames: a map that never saw the camera can read its overcast as clear",
    )
    cloud_map_max_cover: Annotated[float, Field(ge=0, le=100)] = Field(
        default=10.0, description="percent of cloud within cloud_map_zenith_deg up to which the map calls the sky clear"
    )
    cloud_map_zenith_deg: Annotated[float, Field(gt=0, le=90)] = Field(
        default=72.0, description="the zenith rings the cloud_map check reads (18, 36, 54, 72 or 90 deg)"
    )

    @model_validator(mode="before")
    @classmethod
    def _off_unquoted(cls, data):
        # YAML 1.1 reads a bare `off` as false; a check written that way means "off", not a type error.
        if isinstance(data, dict):
            return {k: "off" if v is False else v for k, v in data.items()}
        return data
