"""Labels from the stars (`skyedge star-labels`): simulated frames of the real sky through a known lens, clear,
overcast and half clouded, labelled and painted without a person; what a person labelled is kept."""

from __future__ import annotations

import numpy as np
from star_frames import LENS, NIGHT, SHAPE, SITE, star_frame

from skyedge.cli import main
from skyedge.painted_cloud import STARS_PAINTER, mask_painter, read_mask
from skyedge.sky_sectors import SECTORS
from skyedge.stars.labels import PAINT_CLEAR, PAINT_CLOUD, sector_paint, star_class, star_label
from skyedge.stars.visibility import Visibility

SITE_ARG = ",".join(map(str, SITE))


def _visibility(sectors: list[float | None], whole: float) -> Visibility:
    expected = [0 if v is None else 10 for v in sectors]
    n = 200
    return Visibility(n, int(round(whole * n)), 0.0, tuple(sectors), tuple(expected), 50, int(round(whole * 50)), 4.0)


def test_the_stars_decide_clear_moon_and_cloudy_and_leave_the_rest():
    starry = [1.0] * 25 + [None] * 8  # the horizon ring expects no stars
    assert star_class(_visibility(starry, 0.95), moon=(-20.0, 0.0, 0.9)) == "clear"
    assert star_class(_visibility(starry, 0.95), moon=(40.0, 0.0, 0.9)) == "moon"
    assert star_class(_visibility(starry, 0.95), moon=(40.0, 0.0, 0.2)) == "clear"  # a thin crescent: no moonlit sky
    assert star_class(_visibility([0.0] * 25 + [None] * 8, 0.05), moon=None) == "cloudy"
    assert star_class(_visibility([1.0] * 13 + [0.0] * 12 + [None] * 8, 0.5), moon=None) is None
    one_gap = [1.0] * 24 + [0.2] + [None] * 8  # nearly all the stars, but a sector hidden: not clear
    assert star_class(_visibility(one_gap, 0.96), moon=None) is None
    too_few = Visibility(2, 2, 0.0, (None,) * SECTORS, (0,) * SECTORS, 1, 1, None)  # no verdict anywhere
    assert star_class(too_few, moon=None) is None


def test_the_paint_follows_the_sectors_and_judges_nothing_without_stars():
    east_cloud = [None] * SECTORS
    for ring in range(3):  # rings out to 72 deg from the zenith hold stars; cloud over segments 0-3 (east)
        for seg in range(8):
            east_cloud[1 + 8 * ring + seg] = 0.0 if seg < 4 else 1.0
    east_cloud[0] = 0.8
    vis = _visibility(east_cloud, 0.5)
    paint = sector_paint(vis, LENS, SHAPE)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    alt, az = LENS.sky(xx.astype(float), yy.astype(float))
    band = (alt > 40) & (alt < 68)  # within the judged rings, off the sector edges
    assert (paint[band & (az > 10) & (az < 170)] == PAINT_CLOUD).all()
    assert (paint[band & (az > 190) & (az < 350)] == PAINT_CLEAR).all()
    assert (paint[alt > 75] == PAINT_CLEAR).all()  # the zenith disc: 0.8 seen
    low = alt < 16  # the ring without a verdict (zenith angle 72-90 deg) and below the horizon: not judged
    assert not np.isin(paint[low], (PAINT_CLEAR, PAINT_CLOUD)).any()
    cloudy = star_label(_visibility([0.0] * 24 + [0.9] + [None] * 8, 0.1), LENS, SHAPE, None)
    assert cloudy.label == "cloudy" and not (cloudy.paint == PAINT_CLEAR).any()  # a cloudy frame's starry sector: not judged
    assert star_label(None, LENS, SHAPE, None) is None and star_label(vis, None, SHAPE, None) is None


def test_star_labels_writes_a_labelled_folder_from_a_night_without_a_person(tmp_path, capsys):
    from astropy.io import fits

    frames = tmp_path / "frames" / "2018-05-07"  # a pipeline's collect folder has a folder per day
    frames.mkdir(parents=True)
    for k in range(5):
        star_frame(frames / f"c{k}.fits", NIGHT + 900.0 * k, cloudy=False, seed=50 + k)
    star_frame(frames / "overcast.fits", NIGHT + 5400.0, cloudy=True, seed=60)
    star_frame(frames / "east.fits", NIGHT + 6300.0, cloudy="east", seed=61)
    fits.PrimaryHDU(np.zeros(SHAPE, np.float32)).writeto(frames / "no-time.fits")
    (frames / "broken.fits").write_bytes(b"not a FITS file")
    out = tmp_path / "labelled"
    (out / "cloudy").mkdir(parents=True)
    day = "2018-05-07__"  # labelled copies are named as `skyedge label` names them: day folders may share names
    (out / "cloudy" / f"{day}c4.fits").write_bytes((frames / "c4.fits").read_bytes())  # a person's label, kept
    assert main(["star-labels", str(tmp_path / "frames"), "--site", SITE_ARG, "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "no capture time" in printed and "unreadable" in printed and "1 already labelled" in printed
    assert "check the clear and moon labels" in printed and f"skyedge label {tmp_path / 'frames'}" in printed
    clear = sorted(p.name for p in (out / "clear").glob("*.fits"))
    assert clear and set(clear) <= {f"{day}c2.fits", f"{day}c3.fits"}  # the first frames teach the watch its depth
    assert sorted(p.name for p in (out / "cloudy").glob("*.fits")) == [f"{day}c4.fits", f"{day}overcast.fits"]
    assert not list(out.rglob("*east.fits"))  # half clouded: left for a person
    assert not (out / "cloudy" / f"{day}c4.cloud.png").exists()
    for name in clear:
        assert mask_painter(out / "clear" / name.replace(".fits", ".cloud.png")) == STARS_PAINTER
        truth = read_mask(out / "clear" / name.replace(".fits", ".cloud.png"), SHAPE)
        assert (truth == 0).mean() > 0.3 and not (truth == 250).any()  # painted clear where it has stars
    truth = read_mask(out / "cloudy" / f"{day}overcast.cloud.png", SHAPE)
    assert (truth == 250).mean() > 0.3 and not (truth == 0).any()
    assert (out / "clear" / clear[0]).read_bytes() == (frames / clear[0].removeprefix(day)).read_bytes()  # unchanged
    # The labelling page over the same folders shows the stars' labels, painted, for a person to check.
    from skyedge.edge.labelling.label import LabelStore

    store = LabelStore(tmp_path / "frames", out)
    state = {it["file"]: it for it in store.state()["items"]}
    overcast = state["2018-05-07/overcast.fits"]
    assert overcast["label"] == "cloudy" and overcast["painted"] and overcast["painted_by"] == "stars"
    assert state["2018-05-07/east.fits"]["label"] is None
    # A person who overrules the stars' label overrules their paint: it does not follow the frame.
    store.set_label([overcast["id"]], "partly")
    assert (out / "partly" / f"{day}overcast.fits").is_file() and not list(out.rglob(f"{day}overcast.cloud.png"))
    assert not store.state()["items"][overcast["id"]]["painted"]


def test_star_labels_refuses_a_bad_site_and_a_missing_geometry(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    star_frame(frames / "c0.fits", NIGHT, cloudy=False, seed=1)
    assert main(["star-labels", str(frames), "--site", "north", "--out", str(tmp_path / "o")]) == 2
    assert "--site" in capsys.readouterr().err
    assert main(["star-labels", str(frames), "--out", str(tmp_path / "o")]) == 2  # where is the camera?
    assert "--site" in capsys.readouterr().err
    assert main(["star-labels", str(frames), "--site", SITE_ARG, "--geometry", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert main(["star-labels", str(tmp_path / "nowhere"), "--site", SITE_ARG, "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_star_labels_takes_the_camera_from_its_deployment_mask_and_saved_geometry(tmp_path, stub_frame_package):
    """With --config: the pipeline's site, its saved geometry (so the first frame is labelled: nothing to learn)
    and its site mask, under which nothing is judged."""
    from edge_helpers import write_config

    from skyedge.stars.catalogue import default_catalogue
    from skyedge.stars.detection import detect_stars
    from skyedge.stars.geometry_file import CameraGeometry, save_geometry
    from skyedge.stars.visibility import completeness_counts, limiting_magnitudes
    from skyedge.training.simulate.starfield import render_star_field

    cat, counts = default_catalogue(), []
    for k in range(3):
        t = NIGHT - 3600.0 * (k + 1)
        img = render_star_field(LENS, SHAPE, SITE, t, limiting_mag=4.5, seed=90 + k)
        counts.append(completeness_counts(detect_stars(img), cat.at(*SITE, t), LENS, SHAPE))
    geometry = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(LENS, SHAPE, limiting_magnitudes(sum(c[0] for c in counts), sum(c[1] for c in counts)), {}), geometry)
    frames = tmp_path / "frames"
    frames.mkdir()
    star_frame(frames / "c0.fits", NIGHT, cloudy=False, seed=70)
    config = write_config(
        tmp_path / "e.yaml", stub_frame_package, {"kind": "directory", "path": str(frames)}, {"jsonl": {"path": str(tmp_path / "r.jsonl")}},
        site_location={"latitude_deg": SITE[0], "longitude_deg": SITE[1], "elevation_m": SITE[2]},
        pipeline={"stars": {"geometry": str(geometry)}, "preprocess": {"mask": {"rectangles": [[0, 0, SHAPE[1], SHAPE[0] // 3]]}}},
    )
    out = tmp_path / "labelled"
    assert main(["star-labels", str(frames), "--config", str(config), "--out", str(out)]) == 0
    truth = read_mask(out / "clear" / "c0.cloud.png", SHAPE)
    assert not (truth[: SHAPE[0] // 3 - 10] != 255).any()  # the masked top third: not judged (read as NO_SKY)
    assert (truth[SHAPE[0] // 2 :] == 0).mean() > 0.3


def test_star_labels_progress_takes_two_steps_per_file_whatever_becomes_of_it(tmp_path):
    from skyedge.edge.allsky.capture_time import CaptureClock
    from skyedge.edge.config import CaptureTimeSection
    from skyedge.edge.tools.star_labels import CameraSetup, frames_to_label, label_frames

    frames, out = tmp_path / "frames", tmp_path / "out"
    frames.mkdir()
    star_frame(frames / "night.fits", NIGHT, cloudy=False, seed=1)
    star_frame(frames / "day.fits", NIGHT + 10 * 3600.0, cloudy=False, seed=2)  # 11:00 at the site
    (frames / "broken.fits").write_bytes(b"not a FITS file")
    clock = CaptureClock(CaptureTimeSection(sources=["fits"]), "test")
    steps = []
    counts, _ = label_frames(frames_to_label(frames, out), frames, out, CameraSetup(SITE, clock), progress=lambda: steps.append(1))
    assert counts["daylight"] == 1 and counts["unreadable"] == 1
    assert len(steps) == 6  # the bar ends full
