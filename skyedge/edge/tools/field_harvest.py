"""Training data for the learnt real/bogus stage: every new residual a field run meets, as a labelled triplet.

``skyedge field-harvest FRAMES OUT.npz [--truth truth.json]`` runs the field's tracker over the frames as the edge
would (physics vetting on, the learnt stage off) and keeps each new residual's triplet
(:func:`skyedge.edge.field.real_bogus.triplets`). Labels come from the truth:

* a simulated field's ``truth.json`` (``skyedge simulate field``): real within ``radius`` px of a source that
  varies (SN, RR Lyrae, Cepheid, EB; an asteroid only at its epoch); everything else is bogus (the simulator's
  artefacts, a constant star's subtraction residue, noise);
* an injection's ``truth.json`` (``skyedge field-inject`` into real frames): real within ``radius`` px of a planted
  source where it is at that epoch; everything else is bogus (a real field with no known transient);
* no truth: every residual is bogus (real frames of a field where nothing is known to vary).

``OUT.npz`` holds ``stamps`` (N, 3, S, S), ``label`` (1 real), ``epoch``, ``x``, ``y``, ``snr``, ``physics_real``
(what the physics said), ``origin`` (the frames folder) and ``softening_sigma``, which ``skyedge train-real-bogus`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skyedge.edge.field.real_bogus import SOFTENING

VARYING = ("SN", "RRLyrae", "Cepheid", "EB", "asteroid")


def _positions(truth: dict, epoch: int) -> np.ndarray:
    """(M, 2) reference-grid positions of the truth's varying sources at frame index ``epoch``."""
    out = []
    for o in truth.get("objects", []):
        if o.get("class") not in VARYING:
            continue
        if "track" in o:  # an injection: where it is at this epoch, if it is there at all
            if o["flux"][epoch] > 0:
                out.append(o["track"][epoch])
        elif o.get("epoch") is None or int(o["epoch"]) == epoch:  # the simulator: asteroids exist at one epoch
            out.append([o["x"], o["y"]])
    return np.array(out, float).reshape(-1, 2)


def harvest(frames_dir: Path, out: Path, truth_path: Path | None = None, radius: float = 3.0, progress: bool = True) -> dict:
    """Run the tracker over ``frames_dir`` and write every new residual's labelled triplet to ``out``; counts."""
    from tqdm import tqdm

    from skyedge.edge.config_sources import FitsSequenceSourceSection
    from skyedge.edge.field.tracker import FieldTracker
    from skyedge.edge.sources import Rejected
    from skyedge.edge.sources.fits_sequence import read_epoch
    from skyedge.edge.tools.field_inject import frames_in_time_order

    truth = json.loads(Path(truth_path).read_text()) if truth_path else {}
    paths = frames_in_time_order(Path(frames_dir))
    index = {str(p): e for e, p in enumerate(paths)}
    spec = FitsSequenceSourceSection(kind="fits-sequence", path=str(frames_dir), real_bogus_model=None)
    tracker = FieldTracker(spec, max_epochs=len(paths))
    rows: dict[str, list] = {k: [] for k in ("stamps", "label", "epoch", "x", "y", "snr", "physics_real")}

    def keep(frame, x, y, snr, stamps, physics_real):
        epoch = index[str(frame.source)]
        label = np.zeros(len(x), np.int8)
        known = _positions(truth, epoch)
        if len(known) and len(x):
            d = np.hypot(x[:, None] - known[None, :, 0], y[:, None] - known[None, :, 1])
            label = (d.min(axis=1) <= radius).astype(np.int8)
        for key, value in (("stamps", stamps), ("label", label), ("epoch", np.full(len(x), epoch)), ("x", x),
                           ("y", y), ("snr", snr), ("physics_real", physics_real)):
            rows[key].append(np.asarray(value))

    tracker.harvest = keep
    for path in tqdm(paths, desc="harvesting residuals", disable=not progress):
        frame = read_epoch(path)
        if isinstance(frame, Rejected):
            continue  # reported by the edge too; a harvest goes on without it
        tracker.observe(frame)
    data = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in rows.items()}
    if not rows["stamps"]:
        data["stamps"] = np.zeros((0, 3, 1, 1), np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, origin=str(frames_dir), softening_sigma=SOFTENING, **data)
    return {"residuals": int(len(data["label"])), "real": int(data["label"].sum()), "frames": len(paths)}


_HELP = """\
field-harvest: every new residual of a field run as a labelled triplet, to train the learnt real/bogus stage

Runs the field's tracker over FRAMES (physics vetting on, the learnt stage off) and writes each new residual's
triplet (frame, template, difference) with its label to OUT (.npz): real near a varying source of --truth (a
simulated field's or skyedge field-inject's truth.json), bogus everywhere else; without --truth every residual is
bogus (real frames of a field where nothing is known to vary).

example:
  skyedge simulate field --n 20 --out data/field-1 --seed 1
  skyedge field-harvest data/field-1/frames runs/rb/sim-1.npz --truth data/field-1/truth.json
  skyedge field-inject data/hatp32 runs/inject --per-kind 10 --snr 5,30
  skyedge field-harvest runs/inject/frames runs/rb/hatp32.npz --truth runs/inject/truth.json
  skyedge train-real-bogus runs/rb/*.npz --out runs/real-bogus
"""


def add_harvest_command(subparsers) -> None:
    """``skyedge field-harvest``."""
    from skyedge.commands import add_command

    h = add_command(subparsers, _HELP)
    h.add_argument("frames", help="folder of FITS frames of one field")
    h.add_argument("out", help=".npz to write")
    h.add_argument("--truth", default=None, help="truth.json of a simulated field or of skyedge field-inject")
    h.add_argument("--radius", type=float, default=3.0, help="px from a varying source that counts as it")
    h.set_defaults(func=_harvest_command)


def _harvest_command(args) -> int:
    counts = harvest(Path(args.frames), Path(args.out), Path(args.truth) if args.truth else None, args.radius)
    print(f"wrote {args.out}: {counts['residuals']} residuals ({counts['real']} real) from {counts['frames']} frames")
    return 0
