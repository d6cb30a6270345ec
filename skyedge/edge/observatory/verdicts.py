"""What observatory control acts on, per pipeline: the debounced sky state and the safety verdict.

A frame pipeline's :class:`FrameVerdicts` folds each decision into its
:class:`~skyedge.edge.observatory.sky_state.SkyState` and
:class:`~skyedge.edge.observatory.safety.SafetyPolicy` and returns what changed. Driven by the publisher thread
only (decisions, source failures, the periodic clock check); the safety policy
keeps its own lock because the Alpaca server's threads read it too. A
telescope pipeline has none (nobody closes a roof on a field).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from skyedge.edge.observatory.conditions import SkyConditions
from skyedge.edge.observatory.safety import SafetyChange, SafetyPolicy
from skyedge.edge.observatory.sky_state import SkyState, Transition
from skyedge.edge.observatory.weather_files import Reading, WeatherFiles


@dataclass(frozen=True)
class StateChange:
    """A sky-state transition and the safety verdict at that moment."""

    transition: Transition
    safe: bool


Change = StateChange | SafetyChange


class FrameVerdicts:
    """Sky state and safety of one all-sky camera."""

    def __init__(self, section):
        self.sky = SkyState(section.sky_state.hysteresis_frames, section.sky_state.stale_after_s)
        s = section.safety
        self.safety = SafetyPolicy(s.safe_classes, s.hold_frames, s.hold_s, s.stale_after_s)
        self.max_cloud_cover, self.cloud_zenith_deg = s.max_cloud_cover, s.cloud_zenith_deg
        self.files = WeatherFiles(section.weather_files, s.safe_classes) if section.weather_files else None
        self.conditions = SkyConditions()  # read by the Alpaca server's threads

    def _veto(self, cloud) -> str | None:
        """The cloud map's rule: unsafe above ``max_cloud_cover`` percent within ``cloud_zenith_deg`` of the zenith."""
        if self.max_cloud_cover is None or cloud is None:
            return None
        fraction = cloud.clear_within(self.cloud_zenith_deg)
        if fraction is None or 100.0 * fraction <= self.max_cloud_cover:
            return None
        return (
            f"cloud cover {100.0 * fraction:.0f}% within {self.cloud_zenith_deg:g} deg of the zenith "
            f"(limit {self.max_cloud_cover:g}%)"
        )

    def _state(self, transition: Transition | None) -> list[Change]:
        return [] if transition is None else [StateChange(transition, self.safety.is_safe())]

    def decided(self, label: str, confidence: float, cloud=None, sun_alt_deg: float | None = None) -> list[Change]:
        """One classification (and its cloud map, if the model has one): the safety flip (if any) first, then the
        state change (if any); the weather files follow."""
        changes: list[Change] = [c for c in (self.safety.frame(label, veto=self._veto(cloud)),) if c is not None]
        changes += self._state(self.sky.update(label, confidence))
        if cloud is not None:
            self.conditions.update(cloud)
        if self.files is not None:
            cover = cloud.cloud_cover if cloud is not None else None
            self.files.update(Reading(time.time(), label, cover, sun_alt_deg, self.safety.is_safe()))
        return changes

    def failed(self, reason: str) -> list[Change]:
        """The camera or pipeline failed: unsafe until the next good frame."""
        return [c for c in (self.safety.failed(reason),) if c is not None]

    def check(self) -> list[Change]:
        """Clock-driven changes: hold time reached, classification stale (the weather files say so too)."""
        if self.files is not None:
            self.files.check()
        changes: list[Change] = [c for c in (self.safety.check(),) if c is not None]
        return changes + self._state(self.sky.check_stale())
