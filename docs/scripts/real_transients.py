"""Real survey supernovae through a transient model package: recall at early epochs and as the assumed zero point moves.

    python docs/scripts/real_transients.py models/transients-tiny DIR_OF_CUBES --zero-points 30.5,31.5,32.5 [--file int8-cpu] [--graph step]

DIR holds real stamp sequences in one of the forms skyedge reads (``--form``: ``cubes``, FITS cubes with an
epoch table, the HiTS form; ``epoch_files``, a folder per object of per-epoch FITS, science or triplets;
``ztf_alerts``, Avro alert packets), all of one true class (``--label``, SN by default); stamps larger than the
model's are cut about the centre. Where the archive gives no zero points, each epoch's transparency is measured on
the other objects observed within minutes of it (``--no-transparency`` assumes every epoch equally clear). Prints,
per assumed zero point, the share called that class after 3, 6, 12 and all epochs (the papers' early-classification
numbers) and the answers at the last epoch; ``--json`` writes them. ``--file`` runs another of the package's
precision files (its card's key: ``fp16``, ``int8`` the TensorRT form run unfused as calibration checks it,
``int8-cpu`` the U8S8 form), FP32 by default; ``--graph step`` runs the step graph the field runtime runs, one epoch
per call with the state carried (skyedge/step_graph.py), instead of the whole sequence at once.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from skyedge.model_card import read_card
from skyedge.precisions import ort_session
from skyedge.preprocess import prepare_sequence
from skyedge.step_graph import run_chained, session_runner
from skyedge.training.data.survey_epochs import ASSUMED_ZERO_POINTS, read_survey_stamps

EARLY = (3, 6, 12)


def classify(package: Path, sequences, zero_point: float, key: str = "fp32", graph: str = "full") -> list[np.ndarray]:
    """Class probabilities (T, C) at every epoch of each sequence, ``zero_point`` assumed where none is given."""
    card = read_card(package)
    files = card.step.files if graph == "step" else card.files
    if key not in files:
        raise SystemExit(f"{package}: its card names no {key!r} {graph} graph (it has {', '.join(files)})")
    session = ort_session(package / files[key])
    step = session_runner(session) if graph == "step" else None
    roles = [t.role for t in card.inputs]
    out = []
    for seq in sequences:
        raw = dict(seq.conditions)
        if seq.sources["zero_point"].startswith(ASSUMED_ZERO_POINTS):
            # The assumed zero point, and each epoch's transparency where the other objects measured it.
            offset = seq.zero_point_offset if seq.zero_point_offset is not None else 0.0
            raw["zero_point"] = np.full(len(seq.stamps), zero_point) + offset
        x, c = prepare_sequence(seq.stamps, raw, card.sequence)
        if step is not None:
            feeds = {card.step.input("stamps").name: x[None], card.step.input("conditions").name: c[None]}
            out.append(run_chained(step, card.step, feeds)[0])
            continue
        feeds = {
            i.name: (x[None] if role == "stamps" else c[None]) for i, role in zip(session.get_inputs(), roles, strict=True)
        }
        out.append(session.run(None, feeds)[0][0])
    return out


def recall_table(package: Path, sequences, label: str, zero_points, key: str = "fp32", graph: str = "full") -> list[dict]:
    """Per zero point: recall of ``label`` after 3, 6, 12 and all epochs, and the last epoch's answers."""
    classes = np.array(read_card(package).classes)
    rows = []
    for zp in zero_points:
        preds = [classes[p.argmax(-1)] for p in classify(package, sequences, zp, key, graph)]
        row = {"zero_point": zp, "n": len(sequences)}
        for k in EARLY:  # a sequence shorter than k (blank epochs left out) counts with its last answer
            row[f"recall_{k}"] = float(np.mean([p[min(k, len(p)) - 1] == label for p in preds]))
        row["recall_last"] = float(np.mean([p[-1] == label for p in preds]))
        row["last"] = dict(Counter(str(p[-1]) for p in preds))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("cubes", type=Path)
    parser.add_argument("--label", default="SN")
    parser.add_argument("--form", default="cubes", choices=["cubes", "epoch_files", "ztf_alerts"])
    parser.add_argument("--zero-points", default="30.5,31.5,32.5", help="assumed zero points (mag for 1 electron)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--file", default="fp32", help="the card's precision file to run: fp32, fp16, int8, int8-cpu")
    parser.add_argument("--graph", default="full", choices=["full", "step"], help="the whole-sequence graph or the step graph")
    parser.add_argument(
        "--no-transparency", action="store_true",
        help="assume every epoch equally clear (do not measure it on the other objects observed at the same time)",
    )
    args = parser.parse_args()
    size = read_card(args.package).sequence.stamp_size
    sequences = read_survey_stamps([args.cubes], args.form, stamp_size=size, transparency=not args.no_transparency)
    for seq in sequences:
        if seq.zero_point_offset is not None:
            print(f"{seq.name}: zero point {seq.sources['zero_point']}; "
                  f"{seq.zero_point_offset.min():+.2f} to {seq.zero_point_offset.max():+.2f} mag")
    rows = recall_table(args.package, sequences, args.label, [float(z) for z in args.zero_points.split(",")], args.file, args.graph)
    for row in rows:
        early = " ".join(f"{k}:{row[f'recall_{k}']:.2f}" for k in EARLY)
        print(f"zp {row['zero_point']:5.2f}  recall after {early} all:{row['recall_last']:.2f}  last {row['last']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
