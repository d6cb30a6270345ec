"""``skyedge cloudmap``: a frame with its cloud map drawn over it, as a PNG (people look at maps, not numbers).

The package's cloud map is computed for the frame exactly as ``skyedge run`` does (the core's preprocessing,
ONNX Runtime, the same geometry: the deployment pipeline's ``orientation`` when given, else the one its stars
solved and saved, else the default; its mask and the package's, so masked sky does not count),
and drawn: cloudy map points shaded red in proportion to their cloud probability, the sector rings and
segments, and each visible sector's cloud fraction; the title says the cloud cover and the geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.edge.cloud_map import RING_EDGES_DEG, SEGMENTS, CloudMapper, CloudReport, mapped_lens
from skyedge.edge.package import open_package
from skyedge.imageio import read_frame
from skyedge.masks import card_mask, combined
from skyedge.model_card import read_card
from skyedge.precisions import ort_session
from skyedge.preprocess import apply_stretch, prepare_frame_and_sky


def cloud_report(
    package: Path,
    image: np.ndarray,
    orientation=None,
    mask: np.ndarray | None = None,
    bayer: str | None = None,
    geometry: str | None = None,
) -> tuple[CloudReport, np.ndarray]:
    """(the frame's cloud report, the model's raw map) from the package's FP32 graph; ``mask``: the pipeline's
    sky pixels (True = sky), combined with the package's own mask as the edge combines them; ``geometry``: where
    ``orientation`` came from, as the report names it."""
    card = read_card(package)
    cloud = next((t for t in card.outputs if t.role == "cloud_map"), None)
    if cloud is None:
        from skyedge.errors import SkyedgeError

        raise SkyedgeError(f"--model {package}: this model has no cloud map (train one with frame_model.cloud_map)")
    pkg = open_package(package, "fp32", "onnxruntime")
    model_mask = card_mask(card, package)
    mask = combined(mask, model_mask.array(image.shape[:2]) if model_mask else None)
    x, sky = prepare_frame_and_sky(image, card.preprocess, bayer=bayer, mask=mask)
    session = ort_session(pkg.onnx_file)
    grid = session.run([cloud.name], {card.input("image").name: x[None]})[0][0]
    return CloudMapper(card.preprocess, orientation, geometry).report(grid, image.shape[:2], sky), grid


def draw(image: np.ndarray, report: CloudReport, preprocess, orientation=None) -> np.ndarray:
    """An 8-bit RGB picture of ``image`` with the cloud map over it."""
    import cv2

    grey = image if image.ndim == 2 else image.mean(axis=2)
    base = (apply_stretch(grey.astype(np.float32), preprocess.stretch) * 255).astype(np.uint8)
    out = cv2.cvtColor(base, cv2.COLOR_GRAY2RGB).astype(np.float32)
    lens = mapped_lens(preprocess, orientation, image.shape[:2])
    cx, cy, radius = lens.cx, lens.cy, lens.radius_px

    def pixel(zenith_deg: np.ndarray, azimuth_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return lens.project(90.0 - np.asarray(zenith_deg, np.float64), azimuth_deg)

    if report.points is not None:
        zen, az, cloud, weight = report.points
        xs, ys = pixel(zen, az)
        step = max(2, int(radius / 40))
        shade = np.zeros(out.shape[:2], np.float32)
        for x, y, c, wgt in zip(xs, ys, cloud, weight, strict=True):
            if wgt > 0:
                cv2.circle(shade, (int(x), int(y)), step, float(c), -1)
        shade = cv2.GaussianBlur(shade, (0, 0), step)
        out = out * (1 - 0.55 * shade[..., None]) + np.array([255, 40, 40], np.float32) * 0.55 * shade[..., None]
    out = np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))  # OpenCV draws text on 8-bit pictures
    line = max(1, int(radius / 150))
    for edge in RING_EDGES_DEG:
        cv2.circle(out, (int(cx), int(cy)), int(np.hypot(*(np.array(pixel(np.array([edge]), np.array([0.0]))) - [[cx], [cy]]).ravel())), (255, 255, 0), line)
    for k in range(SEGMENTS):
        x0, y0 = pixel(np.array([RING_EDGES_DEG[0]]), np.array([45.0 * k]))
        x1, y1 = pixel(np.array([90.0]), np.array([45.0 * k]))
        cv2.line(out, (int(x0[0]), int(y0[0])), (int(x1[0]), int(y1[0])), (255, 255, 0), line)
    nx, ny = pixel(np.array([95.0]), np.array([0.0]))
    scale = max(0.4, radius / 400)
    cv2.putText(out, "N", (int(nx[0]) - 5, int(ny[0]) + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), line)
    for i, value in enumerate(report.sectors):
        if value is None:
            continue
        ring, segment = (0, 0) if i == 0 else (1 + (i - 1) // SEGMENTS, (i - 1) % SEGMENTS)
        zen = 0.0 if i == 0 else (RING_EDGES_DEG[ring - 1] + RING_EDGES_DEG[ring]) / 2
        x, y = pixel(np.array([zen]), np.array([45.0 * segment + 22.5]))
        cv2.putText(out, f"{value:.1f}", (int(x[0]) - 12, int(y[0]) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.6, (255, 255, 255), line)
    title = f"cloud cover {report.cloud_cover:.0f}%  geometry: {report.geometry}"
    cv2.putText(out, title, (8, int(24 * scale + 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), line + 1)
    return out


def write_overlay(package: Path, frame: Path, out: Path, pipeline=None) -> CloudReport:
    """Compute the frame's cloud map with the package and write the picture to ``out`` (PNG); ``pipeline``: the
    deployment's pipeline section whose orientation (configured, or solved from the stars), mask and Bayer
    pattern apply."""
    import cv2

    from skyedge.edge.allsky.pipeline_geometry import pipeline_orientation, saved_geometry
    from skyedge.edge.preparation import site_mask

    image = read_frame(frame)[0]
    orientation, source, mask, bayer = None, None, None, None
    if pipeline is not None:
        orientation, source = pipeline_orientation(pipeline, saved_geometry(pipeline))
        mask, bayer = site_mask(pipeline).array(image.shape[:2]), pipeline.preprocess.bayer
    report, _ = cloud_report(package, image, orientation, mask, bayer, source)
    picture = draw(image, report, read_card(package).preprocess, orientation)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return report


def cloudmap_command(args) -> int:
    """``skyedge cloudmap``: the pipeline named by ``--config``/``--camera`` (the first by default), then the picture."""
    chosen = None
    if args.config:
        from skyedge.edge.preparation import pipeline_in

        chosen = pipeline_in(args.config, args.camera)
    report = write_overlay(Path(args.model), Path(args.frame), Path(args.out), chosen)
    print(f"cloud cover {report.cloud_cover:.1f}% ({report.geometry} geometry) -> {args.out}")
    return 0
