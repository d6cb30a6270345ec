"""Cost of one poll of a watched folder that holds many frames already handled: what a daemon pays every
``poll_s`` on a camera folder nobody rotates (flat, and one folder per night read with ``recursive: true``, the
last night's folder still being written; one frame a minute, the newest a minute old). Medians of 5 polls, one
process; the folders are built once under OUT and reused. Every FULL_SCAN_EVERY_S (60 s) a poll lists every
folder and looks at every file again: its cost is printed too.

    python docs/scripts/folder_scan_bench.py OUT [--files 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from skyedge.edge.config_sources import DirectorySourceSection
from skyedge.edge.sources import RawFrame, create_source
from skyedge.edge.sources.folder import FULL_SCAN_EVERY_S

FRAMES_PER_NIGHT = 1500  # one frame a minute for a long winter night


def build(root: Path, n: int, nested: bool) -> None:
    """``n`` tiny PNG frames, flat or one folder per night; every night's folder but the last untouched for a day
    (as old nights are), the last written a minute ago (tonight's)."""
    if not root.exists():
        image = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
        for i in range(n):
            path = root / (f"2023{i // FRAMES_PER_NIGHT:04d}" if nested else "") / f"image-{i:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image)
        files = sorted(root.rglob("image-*.png"))
        for k, path in enumerate(files):  # one a minute, the newest a minute ago (once: a new time is a new version)
            when = time.time() - 60.0 * (len(files) - k)
            os.utime(path, (when, when))
    nights = sorted(p for p in root.iterdir() if p.is_dir())
    for k, night in enumerate(nights):
        when = time.time() - (60.0 if k == len(nights) - 1 else 86400.0)
        os.utime(night, (when, when))


def poll_ms(root: Path, nested: bool) -> tuple[float, float]:
    """Median milliseconds of a poll once every frame was handled, and of a full listing."""
    from skyedge.edge.sources import folder

    spec = DirectorySourceSection(kind="directory", path=str(root), recursive=nested, settle_s=0)
    source = create_source(spec, once=True, stop_event=threading.Event())
    for observed in source:  # the first pass handles everything (tiny frames are refused: handled all the same)
        if isinstance(observed, RawFrame):
            observed.ack("ok")
    assert not list(source)  # the poll after: what was handled falls still
    times, full = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        assert not list(source)
        times.append(time.perf_counter() - t0)
    every, folder.FULL_SCAN_EVERY_S = folder.FULL_SCAN_EVERY_S, 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        assert not list(source)
        full.append(time.perf_counter() - t0)
    folder.FULL_SCAN_EVERY_S = every
    source.close()
    return 1000 * statistics.median(times), 1000 * statistics.median(full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=20000)
    args = parser.parse_args()
    for nested in (False, True):
        root = args.out / f"{'nights' if nested else 'flat'}-{args.files}"
        build(root, args.files, nested)
        ms, full = poll_ms(root, nested)
        layout = "per-night folders, recursive" if nested else "flat folder"
        print(
            f"{layout}: {args.files} handled files, {ms:.1f} ms a poll ({1000 * ms / args.files:.2f} us a file); "
            f"a full listing (every {FULL_SCAN_EVERY_S:.0f} s) {full:.0f} ms"
        )


if __name__ == "__main__":
    main()
