"""Where an all-sky pipeline's sky is in its frames: its orientation (configured, or solved from the stars and saved
beside the configuration; its site mask is :func:`skyedge.edge.preparation.site_mask`). The edge's frame task and
``skyedge cloudmap`` both read them from here, so a map drawn by hand for checking is the map the edge reports.
"""

from __future__ import annotations

import logging
import os

from skyedge.edge.config import StartupError
from skyedge.edge.config_observatory import geometry_file

log = logging.getLogger(__name__)


def saved_geometry(section, set_aside_garbled: bool = False):
    """The geometry the pipeline's ``stars`` section saved from the sky, or None (no such section, or not solved
    yet); a file that cannot be read is an error naming the key. ``set_aside_garbled`` (the running pipeline's
    own start): a file that is no document at all, as a power cut can leave one being rewritten, is renamed
    ``<file>.unreadable`` when the pipeline solves its geometry, and the sky solves it afresh: a device does not
    stay down for a file it wrote itself."""
    path = geometry_file(section)
    if path is None or not path.exists():
        return None
    from skyedge.stars.geometry_file import GeometryFileError, GeometryFileGarbled, load_geometry

    try:
        return load_geometry(path)
    except GeometryFileGarbled as exc:
        if not (set_aside_garbled and section.stars.solve):
            raise StartupError(f"pipelines[{section.camera}].stars.geometry: {exc}") from None
        aside = path.with_name(path.name + ".unreadable")
        try:
            os.replace(path, aside)
        except OSError as err:
            raise StartupError(f"pipelines[{section.camera}].stars.geometry: {exc}; cannot set it aside ({err})") from None
        log.warning("pipelines[%s].stars.geometry: %s; set aside as %s, the geometry is solved from the sky afresh", section.camera, exc, aside)
        return None
    except GeometryFileError as exc:
        raise StartupError(f"pipelines[{section.camera}].stars.geometry: {exc}") from None


def orientation_of(geometry):
    """The pipeline ``orientation`` a solved geometry stands for."""
    from skyedge.edge.config import OrientationSection

    return OrientationSection(**geometry.lens.orientation(geometry.frame_shape))


def pipeline_orientation(section, geometry) -> tuple[object | None, str | None]:
    """(orientation, where it came from: 'configured', 'stars' or None): the configuration's when it gives one, else
    the one the stars solved (``geometry``), else none (the lens circle's default)."""
    if section.orientation is not None:
        return section.orientation, "configured"
    if geometry is not None:
        return orientation_of(geometry), "stars"
    return None, None
