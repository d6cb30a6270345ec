"""Real-data loaders on small files the test writes: image folders, OATH tables, FITS stamp sequences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from astropy.io import fits

from skyedge.imageio import FrameReadError, read_frame
from skyedge.shards import DatasetError
from skyedge.training.data.loaders import load_fits_sequences, load_image_folder, load_oath


def _png(path, value, dtype=np.uint16):
    image = np.full((16, 20), value, dtype=dtype)
    assert cv2.imwrite(str(path), image)


def test_image_folder_by_class(tmp_path):
    for k, name in enumerate(["clear", "cloudy"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            _png(tmp_path / name / f"{i}.png", 1000 * (k + 1) + i)
    fits.PrimaryHDU(np.ones((16, 20), np.float32)).writeto(tmp_path / "cloudy" / "x.fits")
    (tmp_path / "clear" / "._0.png").write_bytes(b"\x00\x05\x16\x07 Mac resource fork")  # a folder copied from a Mac
    (tmp_path / ".Trashes").mkdir()
    data = load_image_folder(tmp_path)
    assert data.classes == ["clear", "cloudy"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data.images[0].dtype == np.uint16 and data.images[0][0, 0] == 1000  # 16-bit kept
    assert len(data.data_hash) == 64


def test_image_folder_reads_a_frames_painted_cloud_as_its_truth(tmp_path):
    """What `skyedge label` writes (a frame and its <name>.cloud.png) trains the cloud map, and the painting is never
    taken for a frame of its class; a painting of the wrong size is refused, naming it."""
    from skyedge.preprocess import NO_SKY

    for name in ("clear", "cloudy"):
        (tmp_path / name).mkdir()
        _png(tmp_path / name / "a.png", 500)
    paint = np.full((16, 20), 128, np.uint8)  # not judged
    paint[:, :8], paint[:, 12:] = 255, 0  # cloud on the left, clear sky on the right
    assert cv2.imwrite(str(tmp_path / "cloudy" / "a.cloud.png"), paint)
    data = load_image_folder(tmp_path)
    assert data.labels.tolist() == [0, 1]
    assert data.cloud[0] is None
    truth = data.cloud[1]
    assert truth.shape == (16, 20) and (truth[:, :8] == 250).all() and (truth[:, 12:] == 0).all()
    assert (truth[:, 8:12] == NO_SKY).all()
    first = load_image_folder(tmp_path).data_hash
    assert cv2.imwrite(str(tmp_path / "cloudy" / "a.cloud.png"), 255 - paint)
    assert load_image_folder(tmp_path).data_hash != first  # the painting is part of the data
    assert cv2.imwrite(str(tmp_path / "cloudy" / "a.cloud.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError, match=r"a\.cloud\.png"):
        load_image_folder(tmp_path)


def test_image_folder_adds_aurora_copies_over_the_painted_sky_of_its_clear_frames(tmp_path):
    """A site's painted folder gets the labelme source's aurora copies: only painted clear/moon frames are copied
    (their sky is known), light falls only where the painting judged the sky within the frame's circle, and a folder
    whose sky is unknown is refused, saying what to give."""
    from skyedge.training.config import AuroraOverlaySpec

    rng = np.random.default_rng(2)
    for name in ("clear", "cloudy"):
        (tmp_path / name).mkdir()
        for stem in ("a", "b"):
            assert cv2.imwrite(str(tmp_path / name / f"{stem}.png"), (rng.random((48, 48, 3)) * 50).astype(np.uint8))
    paint = np.full((48, 48), 128, np.uint8)  # not judged: the ground
    paint[4:44, 4:44] = 0  # clear sky
    for name in ("clear", "cloudy"):
        assert cv2.imwrite(str(tmp_path / name / "a.cloud.png"), paint)
    plain = load_image_folder(tmp_path)
    spec = AuroraOverlaySpec(copies_per_frame=2, kinds=["arc", "diffuse"], weight=0.5)
    data = load_image_folder(tmp_path, spec)
    assert data.classes == ["arc", "clear", "cloudy", "diffuse"]
    assert [data.classes[k] for k in data.labels] == ["clear", "clear", "cloudy", "cloudy", "arc", "diffuse"]
    assert list(data.meta["file"][-2:]) == [f"{tmp_path / 'clear' / 'a.png'}#arc", f"{tmp_path / 'clear' / 'a.png'}#diffuse"]
    assert list(data.meta["weight"]) == [1.0] * 4 + [0.5, 0.5]
    yy, xx = np.mgrid[0:48, 0:48]
    corners = (paint == 0) & (np.hypot(xx - 23.5, yy - 23.5) > 24)  # painted clear, beyond the frame's circle
    for copy in (data.images[-2], data.images[-1]):
        gain = copy.astype(int) - data.images[0].astype(int)
        assert (gain[paint == 128] == 0).all() and gain[paint == 0].sum() > 0 and (gain[corners] == 0).all()
    assert np.array_equal(data.cloud[-1], data.cloud[0]) and data.data_hash != plain.data_hash
    mono = (rng.random((48, 48)) * 3000 + 800).astype(np.uint16)  # a 16-bit mono camera's frame, painted
    assert cv2.imwrite(str(tmp_path / "clear" / "m.png"), mono) and cv2.imwrite(str(tmp_path / "clear" / "m.cloud.png"), paint)
    data = load_image_folder(tmp_path, AuroraOverlaySpec(kinds=["arc"]))
    copied = [im for f, im in zip(data.meta["file"], data.images, strict=True) if f.endswith("m.png#arc")]
    assert len(copied) == 1 and copied[0].dtype == np.uint16 and copied[0].shape == (48, 48) and (copied[0] >= mono).all()
    (tmp_path / "clear" / "m.png").unlink()
    (tmp_path / "clear" / "m.cloud.png").unlink()
    (tmp_path / "clear" / "a.cloud.png").unlink()
    with pytest.raises(DatasetError, match="centre_px"):
        load_image_folder(tmp_path, spec)
    circle = AuroraOverlaySpec(centre_px=[24, 24], horizon_radius_px=20, kinds=["arc"])
    lens = load_image_folder(tmp_path, circle)
    assert [lens.classes[k] for k in lens.labels][-2:] == ["arc", "arc"]  # both clear frames, by the lens's circle
    assert cv2.imwrite(str(tmp_path / "clear" / "c.png"), np.zeros((32, 48, 3), np.uint8))  # another camera
    with pytest.raises(DatasetError, match="one camera's frames per folder"):
        load_image_folder(tmp_path, circle)


def test_image_folder_needs_classes(tmp_path):
    with pytest.raises(DatasetError, match="one sub-folder per class"):
        load_image_folder(tmp_path)


def test_oath_style_table(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["picture,class"]
    for i, label in enumerate(["arc", "clear", "arc"]):
        _png(tmp_path / "img" / f"{i}.png", 10 * i, np.uint8)
        rows.append(f"img/{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_oath(tmp_path, tmp_path / "labels.csv", file_column="picture", label_column="class")
    assert data.classes == ["arc", "clear"] and data.labels.tolist() == [0, 1, 0]
    with pytest.raises(DatasetError, match="no column 'file'"):
        load_oath(tmp_path, tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_text("file,label\nimg/missing.png,arc\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: image .*missing.png does not exist"):
        load_oath(tmp_path, tmp_path / "labels.csv")


def test_fits_stamp_sequences(tmp_path):
    for name, n_objects in (("SN", 2), ("bogus", 1)):
        for j in range(n_objects):
            folder = tmp_path / name / f"obj{j}"
            folder.mkdir(parents=True)
            for e in range(3 + j):
                hdu = fits.PrimaryHDU(np.full((21, 21), e, np.float32))
                hdu.header.update(
                    {
                        "MJD-OBS": 61000.0 + (3 - e),
                        "FWHM": 3.0,
                        "SKYLEVEL": 100.0,
                        "MAGZP": 28.0,
                        "EXPTIME": 60.0,
                        "AIRMASS": 1.1,
                    }
                )
                hdu.writeto(folder / f"e{e}.fits")
    data = load_fits_sequences(tmp_path)
    assert data.classes == ["SN", "bogus"]
    assert data.images.shape == (3, 4, 21, 21)
    assert data.meta["length"].tolist() == [3, 4, 3]
    # Epochs are sorted by MJD-OBS, whatever the file names.
    assert np.all(np.diff(data.conditions[0, :3, 0]) > 0)
    bad = tmp_path / "SN" / "obj0" / "e0.fits"
    fits.PrimaryHDU(np.zeros((21, 21), np.float32)).writeto(bad, overwrite=True)
    with pytest.raises(DatasetError, match="header lacks MJD-OBS"):
        load_fits_sequences(tmp_path)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not a decodable JPG"),
        ("noise.fits", b"random bytes, not FITS", "not a readable FITS"),
        ("empty.png", b"", "empty file"),
        ("notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_corrupt_files_name_the_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FrameReadError, match=reason) as err:
        read_frame(path)
    assert name in str(err.value)


def test_fits_without_image_data(tmp_path):
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "header-only.fits")
    with pytest.raises(FrameReadError, match="no image data"):
        read_frame(tmp_path / "header-only.fits")


def _labelme(path, image, shapes):
    """A LabelMe 5 file with the frame inside, as the annotation tool writes it."""
    import base64
    import json

    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    doc = {
        "version": "5.2.1",
        "flags": {},
        "shapes": [{"label": lab, "points": pts, "shape_type": "polygon", "flags": {}} for lab, pts in shapes],
        "imagePath": f"../{path.stem}.jpg",
        "imageData": base64.b64encode(data.tobytes()).decode(),
        "imageHeight": image.shape[0],
        "imageWidth": image.shape[1],
    }
    path.write_text(json.dumps(doc))
    return path


def test_labelme_frames_get_pixel_truth_labels_from_the_sky_and_split_by_night(tmp_path):
    from skyedge.training.config import DataSource
    from skyedge.training.data.labelme import read_labelme
    from skyedge.training.data.loaders import load_sources

    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    sky = [[8, 8], [56, 8], [56, 56], [8, 56]]
    half_cloud = [[8, 8], [56, 8], [56, 32], [8, 32]]
    mast = [[30, 40], [34, 40], [34, 56], [30, 56]]
    root = tmp_path / "camera"
    root.mkdir()
    # La Palma, local time = UTC (file names in local time). Two nights, two dark frames and one daytime frame each.
    names = {
        "2026-01-10-23-00-00": [("sky", sky)],  # moonless? the ephemeris decides; cloud fraction 0
        "2026-01-11-02-00-00": [("sky", sky), ("clode", half_cloud), ("contination", mast)],  # misspelt labels
        "2026-01-11-12-00-00": [("sky", sky), ("cloud", sky)],  # noon: day
        "2026-01-20-23-30-00": [("sky", sky), ("cloud", sky)],  # overcast
        "2026-01-21-01-00-00": [("sky", sky), ("tree", mast)],  # unknown label: ignored
    }
    for name, shapes in names.items():
        _labelme(root / f"{name}.json", image, shapes)
    frame = read_labelme(root / "2026-01-11-02-00-00.json")
    assert frame.image.shape == (64, 64, 3)
    assert frame.contamination[45, 32] and not frame.sky[45, 32] and not frame.cloud[45, 32]
    assert 0.4 < frame.cloud_fraction < 0.6
    site = {"latitude_deg": 28.76, "longitude_deg": -17.88, "elevation_m": 2396}
    source = DataSource(kind="labelme", path=root, site=site, utc_offset_hours=0.0)
    data = load_sources(source, "frame")
    truth = dict(zip([f.split("/")[-1] for f in data.meta["file"]], data.meta["truth"], strict=True))
    assert truth["2026-01-11-12-00-00.json"] == "day"
    assert truth["2026-01-11-02-00-00.json"] == "partly" and truth["2026-01-20-23-30-00.json"] == "cloudy"
    assert truth["2026-01-10-23-00-00.json"] in ("clear", "moon")
    assert "partly" not in data.classes  # partly cloudy trains as cloudy (partly_as)
    truth_map = data.cloud[list(data.meta["file"]).index(str(root / "2026-01-20-23-30-00.json"))]
    assert truth_map[32, 32] == 250 and truth_map[0, 0] == 255  # cloud inside, no sky outside the polygons
    # Split by night: the two frames of one night are never on both sides.
    parts = {
        part: set(
            load_sources(DataSource(**{**source.model_dump(), "nights": {"part": part, "seed": 1}}), "frame").meta[
                "night"
            ]
        )
        for part in ("train", "test")
    }
    assert parts["train"] and parts["test"] and not parts["train"] & parts["test"]
    # A source kept outside the repository may be absent: left out with a warning when not required.
    missing = DataSource(kind="labelme", path=tmp_path / "nowhere", site=site, required=False)
    assert len(load_sources([source, missing], "frame")) == len(data)


def test_simulated_frames_carry_per_pixel_cloud_truth():
    from skyedge.training.simulate.allsky import NO_SKY, AllskyConfig, render_allsky

    cfg = AllskyConfig(size=64, cloud_cover=(0.5, 0.5))
    image, meta = render_allsky("cloudy", np.random.default_rng(2), cfg)
    truth = meta["cloud_truth"]
    assert truth.shape == image.shape[:2] and truth.dtype == np.uint8
    assert truth[0, 0] == NO_SKY  # a corner outside the circle
    known = truth != NO_SKY
    assert abs((truth[known] >= 125).mean() - meta["cloud_fraction"]) < 0.01  # (125 is 0.5 after rounding)
    assert 0.2 < meta["cloud_fraction"] < 0.8
    _, clear = render_allsky("clear", np.random.default_rng(3), cfg)
    assert clear["cloud_fraction"] == 0.0  # a clear frame is one a dome may open under: no cloud at all


def test_a_simulated_folder_made_with_other_settings_than_the_recipe_is_refused(tmp_path):
    from skyedge.training.config import SimulateSpec
    from skyedge.training.data.loaders import load_shards

    spec = SimulateSpec(n=6, seed=4, config={"stamp_size": 9, "cadence": {"epochs": 3}})
    first = load_shards(tmp_path / "set", spec, task="sequence")  # simulated on first use
    again = load_shards(tmp_path / "set", SimulateSpec(n=6, seed=4, config={"stamp_size": 9, "cadence": {"epochs": 3}}), task="sequence")
    assert again.data_hash == first.data_hash  # the same recipe reuses the folder
    for changed, named in (
        ({"n": 8}, "n: recipe 8, on disk 6"),
        ({"seed": 5}, "seed: recipe 5, on disk 4"),
        ({"config": {"stamp_size": 9, "cadence": {"epochs": 4}}}, "config.cadence.epochs: recipe 4, on disk 3"),
    ):
        edited = spec.model_copy(update=changed)
        with pytest.raises(DatasetError, match=rf"set: simulated with other settings .*{named}.*delete the folder"):
            load_shards(tmp_path / "set", edited, task="sequence")


def test_labelme_adds_aurora_copies_of_its_clear_frames_with_their_night_and_cloud_truth(tmp_path):
    from skyedge.training.config import DataSource
    from skyedge.training.data.loaders import load_sources

    rng = np.random.default_rng(1)
    image = (rng.random((64, 64, 3)) * 60).astype(np.uint8)
    sky = [[4, 4], [60, 4], [60, 60], [4, 60]]
    root = tmp_path / "camera"
    root.mkdir()
    _labelme(root / "2026-01-10-23-00-00.json", image, [("sky", sky)])
    _labelme(root / "2026-01-20-23-30-00.json", image, [("sky", sky), ("cloud", sky)])
    site = {"latitude_deg": 28.76, "longitude_deg": -17.88, "elevation_m": 2396}
    plain = load_sources(DataSource(kind="labelme", path=root, site=site), "frame")
    source = DataSource(
        kind="labelme", path=root, site=site, aurora={"copies_per_frame": 2, "kinds": ["arc", "diffuse"], "weight": 0.5}
    )
    data = load_sources(source, "frame")
    assert len(data) == len(plain) + 2
    truth = list(data.meta["truth"])
    assert truth[-2:] == ["arc", "diffuse"] and {"arc", "diffuse"} <= set(data.classes)
    original = list(data.meta["file"]).index(str(root / "2026-01-10-23-00-00.json"))
    for copy in (-2, -1):
        assert data.meta["file"][copy].startswith(data.meta["file"][original])
        assert data.meta["night"][copy] == data.meta["night"][original]
        assert np.array_equal(data.cloud[copy], data.cloud[original])
        assert data.images[copy][..., 1].sum() > data.images[original][..., 1].sum()
    assert list(data.meta["weight"]) == [1.0] * len(plain) + [0.5, 0.5]  # drawn half as often as their frame
    assert data.data_hash != plain.data_hash


def test_source_weights_follow_the_recipe_when_an_optional_source_is_absent(tmp_path):
    from skyedge.training.config import DataSource
    from skyedge.training.data.loaders import load_sources
    from skyedge.training.loop import oversampled

    for folder, value in (("a", 100), ("b", 200)):
        for k, name in enumerate(("clear", "cloudy")):
            (tmp_path / folder / name).mkdir(parents=True)
            _png(tmp_path / folder / name / "0.png", value + k)
    first = DataSource(kind="image_folder", path=tmp_path / "a", weight=1.0)
    absent = DataSource(kind="image_folder", path=tmp_path / "nowhere", weight=5.0, required=False)
    last = DataSource(kind="image_folder", path=tmp_path / "b", weight=3.0)
    sources = [first, absent, last]
    data = load_sources(sources, "frame")
    reps = np.bincount(oversampled(np.arange(len(data)), data, sources, seed=0), minlength=len(data))
    assert reps.tolist() == [1, 1, 3, 3]  # the absent source's weight 5 goes to no one
    alone = load_sources([absent, last], "frame")
    assert np.bincount(oversampled(np.arange(2), alone, [absent, last], seed=0)).tolist() == [3, 3]


def _mosaic_folders(root, pattern: str = "RGGB"):
    """The same colour frames as a raw camera's mosaics (root/raw) and as its pipeline debayers them (root/rgb)."""
    from skyedge.preprocess import debayer

    rng = np.random.default_rng(3)
    for name in ("clear", "cloudy"):
        (root / "raw" / name).mkdir(parents=True)
        (root / "rgb" / name).mkdir(parents=True)
        for i in range(2):
            mosaic = rng.integers(0, 4000, (24, 32)).astype(np.uint16)
            assert cv2.imwrite(str(root / "raw" / name / f"{i}.png"), mosaic)
            assert cv2.imwrite(str(root / "rgb" / name / f"{i}.png"), cv2.cvtColor(debayer(mosaic, pattern), cv2.COLOR_RGB2BGR))
    return root / "raw", root / "rgb"


def test_image_folder_of_a_raw_colour_camera_is_debayered_as_its_pipeline_does(tmp_path):
    from skyedge.training.config import DataSource

    raw, rgb = _mosaic_folders(tmp_path)
    mosaics, debayered = load_image_folder(raw, bayer="RGGB"), load_image_folder(rgb)
    assert all(a.shape == (24, 32, 3) and np.array_equal(a, b) for a, b in zip(mosaics.images, debayered.images, strict=True))
    assert load_image_folder(raw).images[0].ndim == 2  # without the key: the mosaic as it lies
    with pytest.raises(DatasetError, match=r"rgb/clear/0.png: a Bayer mosaic must be 2-D"):
        load_image_folder(rgb, bayer="RGGB")
    with pytest.raises(ValueError, match="bayer applies to kind 'image_folder' only"):
        DataSource(kind="shards", path=str(tmp_path), bayer="RGGB")


def test_calibration_reads_a_raw_colour_cameras_labelled_folder_debayered(tmp_path):
    from stub_packages import frame_package

    from skyedge.dataset_inputs import load_labelled_inputs
    from skyedge.model_card import read_card

    package = frame_package(tmp_path / "pkg", classes=["clear", "cloudy"], size=32, channels=3)
    card = read_card(package)
    raw, rgb = _mosaic_folders(tmp_path)
    name = card.input("image").name
    as_pipeline = load_labelled_inputs(raw, card, package=package, bayer="RGGB").inputs[name]
    np.testing.assert_array_equal(as_pipeline, load_labelled_inputs(rgb, card, package=package).inputs[name])
    assert not np.array_equal(as_pipeline, load_labelled_inputs(raw, card, package=package).inputs[name])
    with pytest.raises(DatasetError, match="rgb/clear/0.png"):
        load_labelled_inputs(rgb, card, package=package, bayer="RGGB")
