"""The field's fast array helpers give numpy's answers, and the noise model evaluated at points gives the
frame-sized map's values (what it replaced)."""

import numpy as np
import pytest

from skyedge.edge.field.arrays import finite32, median, pixels
from skyedge.edge.field.difference import NoiseModel, detect_residuals


@pytest.mark.parametrize("shape,axis", [((101,), -1), ((100,), -1), ((7, 64), 1), ((7, 65), 1), ((40, 6), 0), ((3, 4, 50), 2)])
def test_median_is_numpys(shape, axis):
    values = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(median(values, axis=axis), np.median(values, axis=axis), rtol=1e-6)


def test_pixels_are_nonzeros_and_finite32_zeroes_nan():
    mask = np.random.default_rng(2).random((37, 53)) > 0.97
    ys, xs = pixels(mask)
    ny, nx = np.nonzero(mask)
    assert np.array_equal(ys, ny) and np.array_equal(xs, nx)
    image = np.ones((4, 4), np.float64)
    image[1, 2], image[3, 0] = np.nan, np.inf
    out = finite32(image)
    assert out.dtype == np.float32 and out[1, 2] == 0.0 and np.isfinite(out).all()
    assert np.isnan(image[1, 2])  # the input is left as it was


def test_noise_at_points_is_the_dilated_map():
    import cv2

    rng = np.random.default_rng(3)
    template = np.clip(rng.normal(0, 1, (60, 80)), 0, None).astype(np.float32)
    template[5, 3] = template[58, 77] = 500.0  # stars by the frame's edges: the disc reaches past them
    model = NoiseModel(sigma=2.0, a=0.5, f2=0.01, template=template, reach=9)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    grown = cv2.dilate(template, disc)
    expected = np.sqrt(2.0**2 + 0.5 * grown + 0.01 * grown**2)
    ys, xs = np.mgrid[0:60, 0:80]
    got = model.at(ys.ravel(), xs.ravel(), chunk=1000).reshape(60, 80)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(NoiseModel(sigma=2.0).at(ys.ravel()[:5], xs.ravel()[:5]) == 2.0)


def test_a_residual_beside_a_bright_template_star_needs_more_signal():
    """The same residual is a detection on empty sky and not on a star whose photon noise the model measured."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:200, 0:200]

    def star(x, y, flux):
        return flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2)) / (2 * np.pi * 1.3**2)

    template = sum(star(x, y, f) for x, y, f in zip(rng.uniform(120, 190, 80), rng.uniform(10, 190, 80), rng.uniform(2e3, 4e4, 80), strict=True))
    template = template + star(150, 100, 3e5)  # the stars on the right; the left half is empty sky
    # The difference's scatter grows with the template: photon noise of its stars.
    diff = rng.normal(0, 1, (200, 200)) + rng.normal(0, 1, (200, 200)) * np.sqrt(template) * 0.3
    bump = star(40, 100, 60.0) + star(150, 100, 60.0)
    found = detect_residuals((diff + bump).astype(np.float32), 3.0, 5.0, template=template.astype(np.float32))
    near = lambda x, y: np.any(np.hypot(found.x - x, found.y - y) < 2)  # noqa: E731
    assert found.noise.a > 0 or found.noise.f2 > 0
    assert near(40, 100) and not near(150, 100)


def test_nonnegative_fit_is_scipys_nnls():
    from scipy.optimize import nnls

    from skyedge.edge.field.difference import nonnegative_fit

    rng = np.random.default_rng(5)
    for _ in range(200):
        design = np.abs(rng.normal(size=(rng.integers(2, 10), 2))) * [1.0, rng.uniform(0.1, 100)]
        target = rng.normal(size=len(design)) * 3 + design @ rng.normal(size=2)
        np.testing.assert_allclose(nonnegative_fit(design, target), nnls(design, target)[0], atol=1e-7, rtol=1e-6)


def test_background_mesh_median_is_scipys():
    from scipy.ndimage import median_filter

    from skyedge.edge.field.difference import BACKGROUND_BOX, background

    rng = np.random.default_rng(6)
    image = (rng.normal(100, 5, (400, 500)) + np.linspace(0, 50, 500)).astype(np.float32)
    image[100:140, 200:260] += 3000  # a bright star filling one cell: the 3x3 median overrules it
    got = background(image)
    ny, nx = 400 // BACKGROUND_BOX, 500 // BACKGROUND_BOX
    sample = image[::2, ::2]
    ch, cw = sample.shape[0] // ny, sample.shape[1] // nx
    cells = np.median(sample[: ny * ch, : nx * cw].reshape(ny, ch, nx, cw).transpose(0, 2, 1, 3).reshape(ny, nx, -1), axis=2)
    import cv2

    expected = cv2.resize(median_filter(cells.astype(np.float32), size=3, mode="nearest"), (500, 400), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
