"""Which files a watched folder gives the model (excluded products of all-sky programs, pruned folders,
calibration frames refused by their header) and what it remembers of them."""

from __future__ import annotations

import shutil
import threading

import cv2
import numpy as np
import pytest
from astropy.io import fits

from skyedge.edge.config_sources import ALLSKY_PRODUCTS, DirectorySourceSection, FitsSequenceSourceSection
from skyedge.edge.sources import RawFrame, Rejected, SourceFailed, create_source


def _png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (32, 32), dtype=np.uint8))


def _read(spec) -> list:
    source = create_source(spec, once=True, stop_event=threading.Event())
    try:
        observed = list(source)
        for o in observed:
            if isinstance(o, RawFrame):
                o.ack("ok")  # as the publisher does once the frame's result is reported
        return observed
    finally:
        source.close()


def _frames(spec) -> set[str]:
    return {o.source.split(str(spec.path) + "/", 1)[1] for o in _read(spec) if isinstance(o, RawFrame)}


def _allsky_tree(root):
    """Two nights laid out as AllskyTeam's allsky keeps them, plus indi-allsky's products in the root."""
    for night in ("20231201", "20231202"):
        _png(root / "images" / night / f"image-{night}223000.jpg")
        _png(root / "images" / night / "keogram" / f"keogram-{night}.jpg")
        _png(root / "images" / night / "startrails" / f"startrails-{night}.jpg")
        _png(root / "images" / night / "thumbnails" / f"image-{night}223000.jpg")
    _png(root / "allsky-keogram_ccd1_20231201.jpg")
    _png(root / "Allsky-StarTrail_ccd1_20231201.png")
    _png(root / "latest.jpg")
    _png(root / ".cache" / "image-x.jpg")


def test_a_recursive_folder_reads_the_frames_and_leaves_out_keograms_star_trails_and_thumbnails(tmp_path):
    _allsky_tree(tmp_path)
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), recursive=True, settle_s=0)
    assert _frames(spec) == {
        "images/20231201/image-20231201223000.jpg",
        "images/20231202/image-20231202223000.jpg",
        "latest.jpg",
    }


def test_without_exclusions_every_image_below_the_folder_is_read_except_hidden_folders(tmp_path):
    _allsky_tree(tmp_path)
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), recursive=True, settle_s=0, exclude=[])
    assert len(_frames(spec)) == 11


def test_an_exclude_pattern_with_a_slash_matches_the_path_below_the_folder(tmp_path):
    _allsky_tree(tmp_path)
    spec = DirectorySourceSection(
        kind="directory",
        path=str(tmp_path),
        recursive=True,
        settle_s=0,
        exclude=[*ALLSKY_PRODUCTS, "images/20231202", "LATEST.*"],  # a list replaces the default: keep its entries
    )
    assert _frames(spec) == {"images/20231201/image-20231201223000.jpg"}


def test_a_flat_folder_applies_the_same_exclusions_to_file_names(tmp_path):
    _allsky_tree(tmp_path)
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), settle_s=0)
    assert _frames(spec) == {"latest.jpg"}


def test_a_recursive_folder_that_vanishes_fails_the_source_and_is_retried(tmp_path):
    root = tmp_path / "incoming"
    _png(root / "night" / "a.png")
    spec = DirectorySourceSection(kind="directory", path=str(root), recursive=True, settle_s=0)
    source = create_source(spec, once=True, stop_event=threading.Event())
    shutil.rmtree(root)
    observed = list(source)
    source.close()
    assert [type(o) for o in observed] == [SourceFailed]
    assert str(root) in observed[0].reason


def _fits(path, imagetyp=None, seed=0):
    header = fits.Header()
    if imagetyp is not None:
        header["IMAGETYP"] = imagetyp
    data = np.random.default_rng(seed).normal(1000, 10, (32, 32)).astype(np.float32)
    fits.PrimaryHDU(data, header).writeto(path)


@pytest.mark.parametrize("kind", ["directory", "fits-sequence"])
def test_calibration_frames_are_refused_by_their_header_naming_file_and_keyword(tmp_path, kind):
    for name, imagetyp in [
        ("light.fits", "Light Frame"),
        ("object.fits", "object"),
        ("plain.fits", None),
        ("dark.fits", "Dark Frame"),
        ("bias.fits", "zero"),
        ("flat.fits", "SKYFLAT"),
    ]:
        _fits(tmp_path / name, imagetyp)
    section = DirectorySourceSection if kind == "directory" else FitsSequenceSourceSection
    observed = _read(section(kind=kind, path=str(tmp_path), settle_s=0))
    assert sorted(o.frame_id.split(".")[0] for o in observed if isinstance(o, RawFrame)) == ["light", "object", "plain"]
    rejected = {o.frame_id.split(".")[0]: o.reason for o in observed if isinstance(o, Rejected)}
    assert sorted(rejected) == ["bias", "dark", "flat"]
    assert str(tmp_path / "dark.fits") in rejected["dark"] and "IMAGETYP = 'Dark Frame'" in rejected["dark"]
    assert "calibration frame" in rejected["bias"]


def test_a_state_file_keyed_by_resolved_paths_is_honoured_when_the_folder_is_reached_through_a_symlink(tmp_path):
    """The handled files' keys are their resolved paths; a scan that spares itself the resolving must reach the
    same keys, or an upgrade (or a folder mounted through a link) would read a whole folder again."""
    from skyedge.edge.sources.state import ProcessedState, file_key

    real = tmp_path / "real"
    _png(real / "night" / "a.png", 1)
    _png(real / "night" / "b.png", 2)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    state = ProcessedState(tmp_path / "state.sqlite")
    done = real / "night" / "a.png"
    state.mark(file_key(tmp_path / "link" / "night" / "a.png", done.stat()), "ok")
    state.close()
    spec = DirectorySourceSection(
        kind="directory", path=str(tmp_path / "link"), recursive=True, settle_s=0, state_file=str(tmp_path / "state.sqlite")
    )
    assert _frames(spec) == {"night/b.png"}
    assert _frames(spec) == set()  # and what this scan handled is remembered across a restart


def test_a_frame_rewritten_in_place_is_read_once_per_version_and_remembered_as_one(tmp_path):
    """All-sky programs overwrite one live image (image.jpg) at every exposure; each version is a frame, and the
    state keeps the last one only, so months of exposures do not pile up in the state file or in memory."""
    import os
    import time

    from skyedge.edge.sources.state import ProcessedState

    live, now_ns = tmp_path / "image.png", time.time_ns() - 60 * 10**9
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), settle_s=0, state_file=str(tmp_path / "s.sqlite"))
    source = create_source(spec, once=True, stop_event=threading.Event())
    read = []
    for version in range(5):
        _png(live, seed=version)
        os.utime(live, ns=(now_ns + version * 10**9,) * 2)  # each exposure a new modification time, as written
        for o in source:
            assert isinstance(o, RawFrame)
            o.ack("ok")
            read.append(int(o.image.sum()))
        assert list(source) == []  # the version just read is not read again
    source.close()
    assert len(read) == 5 and len(set(read)) == 5
    state = ProcessedState(tmp_path / "s.sqlite")
    assert state.count() == 1
    state.close()
    assert _read(spec) == []  # after a restart, the last version is still known


def _age_folders(root, seconds=3600.0):
    """Make every folder below ``root`` look untouched for ``seconds`` (old nights' folders)."""
    import os
    import time

    old = time.time() - seconds
    for folder in [p for p in root.rglob("*") if p.is_dir()]:
        os.utime(folder, (old, old))


def _new_frames(source) -> list[str]:
    got = []
    for o in source:
        assert isinstance(o, RawFrame), o
        o.ack("ok")
        got.append(o.frame_id)
    return got


def test_old_night_folders_still_give_a_frame_that_arrives_in_them_and_are_not_forgotten(tmp_path, monkeypatch):
    """Old nights' folders whose frames were all handled are not listed at every poll (docs/benchmarks.md), but a
    frame created in one is read at the next poll, a new night's folder too, and a frame rewritten in place there
    by the next full listing; pruning keeps their files known, so a restart reads none again."""
    import os

    from skyedge.edge.sources import folder as folder_source

    monkeypatch.setattr(folder_source, "PRUNE_EVERY_S", 0.0)  # prune at every poll: quiet folders must count
    for night in ("20231201", "20231202"):
        for i in range(3):
            _png(tmp_path / "images" / night / f"image-{night}-{i}.png", i)
    _age_folders(tmp_path)
    spec = DirectorySourceSection(
        kind="directory", path=str(tmp_path), recursive=True, settle_s=0, state_file=str(tmp_path / "s.sqlite")
    )
    source = create_source(spec, once=True, stop_event=threading.Event())
    assert len(_new_frames(source)) == 6
    assert _new_frames(source) == [] and _new_frames(source) == []  # handled, then quiet
    _png(tmp_path / "images" / "20231201" / "late.png", 7)
    _png(tmp_path / "images" / "20231203" / "image-20231203-0.png", 8)
    assert sorted(_new_frames(source)) == ["image-20231203-0.png", "late.png"]
    _age_folders(tmp_path)
    assert _new_frames(source) == [] and _new_frames(source) == []
    rewritten = tmp_path / "images" / "20231202" / "image-20231202-1.png"
    before = os.stat(rewritten.parent).st_mtime_ns
    _png(rewritten, 9)  # in place: the folder's time does not change
    assert os.stat(rewritten.parent).st_mtime_ns == before
    monkeypatch.setattr(folder_source, "FULL_SCAN_EVERY_S", 0.0)
    assert _new_frames(source) == ["image-20231202-1.png"]
    source.close()
    assert _read(spec) == []  # nothing forgotten by the pruning while the folders were quiet


def test_a_flat_folder_of_old_frames_still_gives_new_replaced_and_rewritten_frames(tmp_path, monkeypatch):
    """In a flat folder of months of handled frames the old ones are not looked at one by one at every poll
    (docs/benchmarks.md): a new frame and one renamed over an old name are read at the next poll, an old frame
    rewritten in place at the next full listing and, being a file that is rewritten, at every poll after that;
    nothing is forgotten."""
    import os
    import time

    from skyedge.edge.sources import folder as folder_source

    monkeypatch.setattr(folder_source, "PRUNE_EVERY_S", 0.0)  # prune at every poll: still files must count
    old = time.time() - 3600.0
    for i in range(5):
        _png(tmp_path / f"frame-{i}.png", i)
        os.utime(tmp_path / f"frame-{i}.png", (old, old))
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), settle_s=0, state_file=str(tmp_path / "s.sqlite"))
    source = create_source(spec, once=True, stop_event=threading.Event())
    assert len(_new_frames(source)) == 5
    assert _new_frames(source) == [] and _new_frames(source) == []  # handled, then still
    _png(tmp_path / "frame-5.png", 5)
    _png(tmp_path / "staged.png", 6)
    os.replace(tmp_path / "staged.png", tmp_path / "frame-1.png")  # renamed over an old frame: another inode
    assert sorted(_new_frames(source)) == ["frame-1.png", "frame-5.png"]
    inode = os.stat(tmp_path / "frame-3.png").st_ino
    _png(tmp_path / "frame-3.png", 7)  # in place, its time set back as a copy that keeps times would
    os.utime(tmp_path / "frame-3.png", (old + 60, old + 60))
    assert os.stat(tmp_path / "frame-3.png").st_ino == inode
    assert _new_frames(source) == []  # between full listings it is not looked at ...
    monkeypatch.setattr(folder_source, "FULL_SCAN_EVERY_S", 0.0)
    assert _new_frames(source) == ["frame-3.png"]  # ... the full listing reads it
    monkeypatch.setattr(folder_source, "FULL_SCAN_EVERY_S", 3600.0)
    _png(tmp_path / "frame-3.png", 8)
    os.utime(tmp_path / "frame-3.png", (old + 120, old + 120))
    assert _new_frames(source) == ["frame-3.png"]  # now known to be rewritten: read at the next poll
    (tmp_path / "frame-0.png").unlink()
    assert _new_frames(source) == []
    source.close()
    assert _read(spec) == []  # nothing forgotten by the pruning while the files were still


def test_a_folder_where_nothing_matches_says_so_once_naming_what_it_holds(tmp_path, caplog, monkeypatch):
    """Pointed at a folder of frames it does not read (another kind, or in the nights' folders below it), the source
    says so once, with examples and the fix, instead of waiting in silence; a matching file then reads as usual."""
    import logging

    from skyedge.edge.sources import folder as folder_source

    monkeypatch.setattr(folder_source, "FULL_SCAN_EVERY_S", 0.0)  # every poll a full listing: still said once
    for i in range(4):
        (tmp_path / f"frame-{i}.bmp").write_bytes(b"BM not read")
    _png(tmp_path / "images" / "20231201" / "image-20231201223000.jpg")
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), settle_s=0, state_file=str(tmp_path / "s.sqlite"))
    with caplog.at_level(logging.WARNING, logger="skyedge.edge.sources.folder"):
        source = create_source(spec, once=True, stop_event=threading.Event())
        assert list(source) == [] and list(source) == []
        source.close()
        said = [r.getMessage() for r in caplog.records if "nothing here matches" in r.getMessage()]
        assert len(said) == 1, said
        assert "source.patterns" in said[0] and "5 entries passed over" in said[0] and "frame-0.bmp" in said[0]
        assert "the 1 folder(s) below it are read with source.recursive: true" in said[0]
        caplog.clear()
        spec = DirectorySourceSection(
            kind="directory", path=str(tmp_path), recursive=True, settle_s=0, state_file=str(tmp_path / "s.sqlite")
        )
        assert _frames(spec) == {"images/20231201/image-20231201223000.jpg"}
        assert not [r for r in caplog.records if "nothing here matches" in r.getMessage()]
