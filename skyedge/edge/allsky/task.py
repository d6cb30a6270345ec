"""The frame task: one all-sky camera's frames in, one :class:`~skyedge.edge.allsky.records.Decision` per frame out.

The task turns a source's frame into a model input (:meth:`FrameTask.items`,
source thread), stacks items for one backend call (:meth:`FrameTask.batch`),
and reads the model's answer for each item out of the batch's outputs
(:meth:`FrameTask.decode`, inference thread): the top class, its probability,
the open-set verdict from the card's distance threshold, and the cross-checks
against the sky. The telescope field's task is
:class:`skyedge.edge.field.task.SequenceTask`; the pipeline picks one from the
card (:data:`skyedge.edge.runtime.pipeline.TASKS`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from skyedge.daylight import without_class
from skyedge.edge.allsky.map_check import MOON, map_check
from skyedge.edge.allsky.pipeline_geometry import orientation_of, pipeline_orientation, saved_geometry
from skyedge.edge.allsky.records import Decision, FrameItem
from skyedge.edge.allsky.site import DAY, SiteView
from skyedge.edge.allsky.views import merge, spatial_axes, spread
from skyedge.edge.cloud_map import CloudMapper, with_stars
from skyedge.edge.config import StartupError
from skyedge.edge.config_observatory import geometry_file
from skyedge.edge.preparation import FramePreparation
from skyedge.edge.records import Batch
from skyedge.edge.sources import RawFrame
from skyedge.ephemeris import Ephemeris
from skyedge.masks import FrameMask, MaskError
from skyedge.model_card import ModelCard
from skyedge.sanity import frame_problem

log = logging.getLogger(__name__)

# The open-set verdict: the input is unlike anything the model was trained on. Not "unknown", which Home
# Assistant (and most dashboards) use for "no data yet": an automation must be able to tell the two apart.
UNRECOGNISED = "unrecognised"


class Decoder:
    """Per-item answers from output rows: top class, its probability, and 'unrecognised' beyond the distance threshold.

    ``confidence`` is the confidence in the verdict, not the top class's probability (``top_probability``):
    for a class, its probability; for 'unrecognised' from the open-set check, how far beyond the threshold
    the input lies, 1 - threshold / distance (0 at the threshold, towards 1 far away); for a verdict a
    cross-check forced, 1 (physics, not the model, decided); for a class the cloud map chose, the model's
    probability of that class.
    """

    def __init__(self, card: ModelCard):
        self.classes = list(card.classes)
        self.probabilities = card.output("probabilities").name
        distance = next((t for t in card.outputs if t.role == "min_distance"), None)
        self.distance = distance.name if distance is not None else None
        self.threshold = card.metric_head.unknown_threshold

    def __call__(
        self, items: list[FrameItem], probabilities: np.ndarray, outputs: dict, inference_ms: float, check=None
    ) -> list[Decision]:
        """``probabilities`` (N, C) already at each item's answer epoch; ``check(i, label, probs)`` (the item's index,
        its label, its probability per class) returns the failed cross-checks and the verdict after them (the label
        itself, 'unrecognised', or the class the cloud map chose)."""
        top = probabilities.argmax(axis=1)
        distances = outputs[self.distance] if self.distance is not None else None
        out = []
        for i, item in enumerate(items):
            p = probabilities[i]
            distance = float(distances[i]) if distances is not None else None
            unknown = bool(distance is not None and self.threshold is not None and distance > self.threshold)
            top_class = self.classes[top[i]]
            label = UNRECOGNISED if unknown else top_class
            confidence = 1.0 - self.threshold / distance if unknown else float(p[top[i]])
            probs = {c: float(v) for c, v in zip(self.classes, p, strict=True)}
            checks: list[str] = []
            if check is not None:
                checks, verdict = check(i, label, probs)
                if verdict != label:
                    # Physics forcing 'unrecognised' is sure; a class the cloud map chose keeps the model's own
                    # probability of it, so that a disagreement reads as low confidence (and is collected for labels).
                    confidence = 1.0 if verdict == UNRECOGNISED else float(p[self.classes.index(verdict)])
                    label = verdict
            out.append(
                Decision(
                    item=item,
                    label=label,
                    top_class=top_class,
                    confidence=float(confidence),
                    probabilities=probs,
                    unknown=unknown,
                    distance=distance,
                    inference_ms=inference_ms,
                    checks=tuple(checks),
                    top_probability=float(p[top[i]]),
                )
            )
        return out


class FrameTask:
    """One all-sky camera: each frame is placed in time and against the sun and moon (site awareness), checked for
    being a night sky at all, prepared as the card says (Bayer, dark, flat, mask, size, stretch) and classified;
    a daytime frame is answered 'day' and a frame that is no night sky 'unrecognised', both without the model,
    and the model's answers are cross-checked against the ephemeris."""

    name = "frame"
    sources = ("directory", "camera")
    history_epochs = 0  # frames are classified alone: nothing to replay after a restart

    def __init__(
        self,
        card: ModelCard,
        section,
        ephemeris: Ephemeris | None = None,
        model_mask: FrameMask | None = None,
        batch_size: int = 8,
    ):
        self.card = card
        image = card.input("image")
        self.input_name = image.name
        self.views, self.layout = section.views, image.layout or "NCHW"
        height, width = spatial_axes(self.layout)
        if self.views > 1 and image.shape[height] != image.shape[width]:
            raise StartupError(f"pipeline {section.camera}: views: {self.views} needs a square model input; this model's is {image.shape} ({self.layout})")
        self.decoder = Decoder(card)
        self.day_index = list(card.classes).index(DAY) if DAY in card.classes else None
        self.moon_index = list(card.classes).index(MOON) if MOON in card.classes else None
        cloud = next((t for t in card.outputs if t.role == "cloud_map"), None)
        self.cloud_name = cloud.name if cloud is not None else None
        self.stars_spec = section.stars
        self.checks = section.checks
        geometry = saved_geometry(section, set_aside_garbled=True)
        self.stars = _star_watch(section, ephemeris, geometry, self._geometry_solved)
        if self.stars is not None:
            log.info(
                "%s: watching the stars (%s; stars: null turns this off)", section.camera,
                f"geometry from {self.stars.save_to}" if geometry is not None
                else f"no geometry yet: solved from the first starry night frame into {self.stars.save_to}",
            )
        # A solved geometry stands in for an orientation the configuration does not give.
        orientation, self.orientation_from = pipeline_orientation(section, geometry)
        self.clouds = CloudMapper(card.preprocess, orientation, self.orientation_from) if cloud is not None else None
        self.site = SiteView(section, ephemeris)
        self.site.orientation = orientation
        try:  # the model's mask is what it was trained without; the pipeline's adds the site's
            self.prep = FramePreparation.of_pipeline(section, card.preprocess, model_mask)
            shape = getattr(section.source, "frame_shape", None)
            if shape:
                self.prep.mask(tuple(shape[:2]))  # a mask that cannot fit the configured frames fails at start
        except MaskError as exc:
            raise StartupError(str(exc)) from None

    def items(self, pipeline, raw: RawFrame) -> list[FrameItem]:
        """The frame as one model input, or as an answer that needs no model: by day, or when the frame is not a
        night sky at all (capped lens, saturated, constant, noise: :mod:`skyedge.sanity`)."""
        t0 = time.perf_counter()
        seen = self.site.observe(raw)
        inputs, problem, sky, stars = {}, None, None, None
        shape = raw.image.shape[:2]
        if not seen.day:
            mask = self.prep.mask(shape)
            problem = frame_problem(raw.image, mask)
            if problem is None:
                stars = self._stars(raw, seen, self.prep.site_array(shape))
                x, sky = self.prep.prepare(raw.image, mask)
                inputs = {self.input_name: x}
        return [
            FrameItem(
                pipeline=pipeline,
                frame_id=raw.frame_id,
                source=raw.source,
                inputs=inputs,
                arrived=t0,
                preprocess_ms=1e3 * (time.perf_counter() - t0),
                ack=raw.ack,
                captured=seen.captured,
                site=seen,
                invalid=problem,
                frame_shape=shape,
                sky=sky if self.clouds is not None else None,
                stars=stars,
            )
        ]

    def _stars(self, raw: RawFrame, seen, mask):
        """The frame's stars (None without a star watch, a capture time or an ephemeris). A failure here costs
        this frame its star report, never the frame itself."""
        if self.stars is None or seen.ephemeris is None or seen.captured is None:
            return None
        eph = seen.ephemeris
        try:
            return self.stars.observe(raw.image, seen.captured, (eph.moon_alt_deg, eph.moon_az_deg, eph.moon_illumination), mask, eph.sun_alt_deg)
        except Exception:
            log.exception("%s: star visibility failed for %s", self.stars.save_to, raw.frame_id)
            return None

    def _geometry_solved(self, geometry) -> None:
        """A new geometry from the sky (source thread): the moon's pixel and the cloud map's sectors follow it,
        unless the configuration fixes the orientation. Replacing the attribute is atomic; the cloud mapper's
        per-shape cache is dropped with it."""
        if self.orientation_from == "configured":
            return
        self.orientation_from = "stars"
        orientation = orientation_of(geometry)
        self.site.orientation = orientation
        if self.clouds is not None:
            self.clouds = CloudMapper(self.card.preprocess, orientation, "stars")

    def _star_checks(self, label: str, item: FrameItem) -> tuple[list[str], bool]:
        """The stars against the answer: 'clear' (or 'moon', to a lower share) with the zenith's stars mostly gone
        or all of the sky's dimmed by cloud, or 'cloudy' with them seen."""
        rep = getattr(item, "stars", None)
        vis = rep.visibility if rep is not None else None
        frac = vis.check_fraction if vis is not None else None
        if frac is None:
            return [], False
        c, spec = self.checks, self.stars_spec
        least = {"clear": spec.min_zenith_fraction, "moon": spec.moon_min_zenith_fraction}.get(label)
        dimmed = vis.extinction_mag is not None and spec.max_extinction_mag is not None and vis.extinction_mag > spec.max_extinction_mag
        if least is not None and c.clear_without_stars != "off" and (frac < least or dimmed):
            return ["clear_without_stars"], c.clear_without_stars == "unrecognised"
        if label == "cloudy" and c.stars_disagree != "off" and frac >= spec.clear_zenith_fraction:
            return ["stars_disagree"], False
        return [], False

    def batch(self, items: list[FrameItem]) -> Batch:
        """The model's frames stacked on the batch axis (daytime frames stay out)."""
        rows = [i for i, it in enumerate(items) if not it.gated]
        inputs = {self.input_name: spread(np.stack([items[i].inputs[self.input_name] for i in rows]), self.views, self.layout)} if rows else {}
        return Batch(items=items, inputs=inputs, rows=rows)

    def decode(self, batch: Batch, outputs: dict[str, np.ndarray], inference_ms: float) -> list[Decision]:
        """One decision per frame, in the batch's order: the gate's answer for gated frames ('day', or
        'unrecognised' for a frame that is no night sky), the checked model answer for the rest."""
        answered = {}
        if batch.rows:
            model_items = [batch.items[i] for i in batch.rows]
            outputs = merge(outputs, self.views, (self.cloud_name,) if self.cloud_name else ())
            probabilities, overruled = self._night(model_items, outputs[self.decoder.probabilities])
            probabilities, moon_set = self._moon_set(model_items, probabilities)
            clouds = [None] * len(model_items)
            if self.clouds is not None:
                clouds = [self._cloud(m, it) for m, it in zip(outputs[self.cloud_name], model_items, strict=True)]

            def check(j: int, label: str, probs: dict[str, float]) -> tuple[list[str], str]:
                # The map first (it may change the class), then physics on the class it leaves.
                item = model_items[j]
                mapped, label = map_check(label, probs, clouds[j], self.checks, self.site.moon_down(item.site))
                failed, forced = self.site.check(label, item.site)
                starred, star_forced = self._star_checks(label, item)
                failed = [*mapped, *failed, *starred]
                failed = ["moon_below_horizon", *failed] if id(item) in moon_set else failed
                failed = ["day_at_night", *failed] if id(item) in overruled else failed
                return failed, UNRECOGNISED if forced or star_forced else label

            decided = self.decoder(model_items, probabilities, outputs, inference_ms, check)
            if self.clouds is not None:
                decided = [dataclasses.replace(d, cloud=c) for d, c in zip(decided, clouds, strict=True)]
            answered = dict(zip(batch.rows, decided, strict=True))
        return [answered.get(i) or _gated(it) for i, it in enumerate(batch.items)]

    def _cloud(self, cloud_map: np.ndarray, item: FrameItem):
        """The frame's cloud report: the model's map reduced, refined by the frame's star visibility when the
        pipeline asks for it (``stars.refine_cloud_map``)."""
        report = self.clouds.report(cloud_map, item.frame_shape, item.sky)
        if self.stars_spec is not None and self.stars_spec.refine_cloud_map and item.stars is not None:
            report = with_stars(report, item.stars.visibility)
        return report

    def _night(self, items: list[FrameItem], probabilities: np.ndarray) -> tuple[np.ndarray, set[int]]:
        """The model's 'day' may agree with physics, never overrule it: where the sun (or a night-long exposure)
        says night, 'day' is taken out and the night classes share its probability; the frames whose top class
        this changed are flagged (check ``day_at_night``)."""
        if self.day_index is None:
            return probabilities, set()
        night = np.array([it.site is not None and it.site.night_known for it in items])
        return _ruled_out(items, probabilities, night, self.day_index)

    def _moon_set(self, items: list[FrameItem], probabilities: np.ndarray) -> tuple[np.ndarray, set[int]]:
        """With ``checks.moon_below_horizon: reclassify``, a model's 'moon' where the ephemeris puts the moon down is
        taken out as its 'day' is at night, and the best other class answers (then the map and the stars check it);
        the frames whose top class this changed are flagged ``moon_below_horizon``. A model so sure of 'moon' that
        every other class reads 0 names no next class: its 'moon' stands, and the site's check refuses it."""
        if self.moon_index is None or self.checks.moon_below_horizon != "reclassify":
            return probabilities, set()
        others = np.delete(probabilities, self.moon_index, axis=1)
        down = np.array([self.site.moon_down(it.site) for it in items]) & (others.max(axis=1) > 0)
        return _ruled_out(items, probabilities, down, self.moon_index)


def _ruled_out(items: list[FrameItem], probabilities: np.ndarray, rows: np.ndarray, index: int) -> tuple[np.ndarray, set[int]]:
    """``probabilities`` with class ``index`` taken out on ``rows`` (physics rules it out there), and the items
    whose top class that changed."""
    if not rows.any():
        return probabilities, set()
    changed = {id(items[i]) for i in np.flatnonzero(rows & (probabilities.argmax(axis=1) == index))}
    return without_class(probabilities, rows, index), changed


def _star_watch(section, ephemeris, geometry, on_geometry):
    """The pipeline's StarWatch (starting from ``geometry``, the saved one or None), or None without a stars section."""
    spec = section.stars
    if spec is None or ephemeris is None:
        return None
    from skyedge.stars.watch import StarWatch

    site = (ephemeris.latitude_deg, ephemeris.longitude_deg, ephemeris.elevation_m)
    return StarWatch(site, geometry, geometry_file(section), spec.solve, spec.solve_every_s, spec.star_size_px, on_geometry=on_geometry)


def _gated(item: FrameItem) -> Decision:
    """The answer for a frame the model never saw: taken while the sun is up ('day'), or not a night sky at all
    ('unrecognised', flagged unknown: the message's ``invalid`` says why). No night-sky class applies; the one
    check that can fail before the model, ``clock_vs_exposure``, is named."""
    label = UNRECOGNISED if item.invalid is not None else DAY
    return Decision(
        item=item,
        label=label,
        top_class=label,
        confidence=1.0,
        probabilities={label: 1.0},
        unknown=item.invalid is not None,
        top_probability=1.0,
        checks=item.site.checks if item.site is not None else (),
    )
