"""An observing log "as observed by" a survey, from its real stamp cubes: the example log configs/obslogs/hits2015.csv.

    python docs/scripts/hits_log.py DIR_OF_HITS_CUBES configs/obslogs/hits2015.csv --zero-point 31.5

Per epoch (the cubes' epochs in time order), the median over objects of: MJD, airmass and the sky measured on the
stamps' borders (electrons; the archive's sky repeats the first epoch's). Seeing: the archive gives only the first
epoch's, so every epoch gets the objects' median. Zero point: the archive gives none, so the given one at airmass 1
plus each epoch's transparency measured on the objects observed together (the median of their offsets, which carry
the airmass's extinction and the clouds'; skyedge/training/data/ensemble_photometry.py), or, where none was
measured, less 0.15 mag per airmass (DECam g). Exposure: the table's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skyedge.training.data.survey_epochs import read_survey_stamps
from skyedge.training.simulate.obslog import write_log_csv

EXTINCTION = 0.15  # mag per airmass, g band


def survey_log(sequences, zero_point: float) -> dict[str, np.ndarray]:
    """The median epoch-by-epoch conditions of several objects' sequences (all with the same number of epochs)."""
    stack = {k: np.stack([s.conditions[k] for s in sequences]) for k in ("mjd", "airmass", "sky", "exptime", "fwhm")}
    log = {k: np.median(v, axis=0) for k, v in stack.items()}
    log["fwhm"] = np.full_like(log["mjd"], float(np.median(stack["fwhm"])))
    log["zero_point"] = zero_point - EXTINCTION * (log["airmass"] - 1.0)
    offsets = [s.zero_point_offset for s in sequences if s.zero_point_offset is not None]
    if offsets:
        # Relative to the objects' median epoch, which sits near the log's median airmass.
        measured = np.median(np.stack(offsets), axis=0)
        log["zero_point"] = zero_point - EXTINCTION * (np.median(log["airmass"]) - 1.0) + measured
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cubes", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--zero-point", type=float, default=31.5, help="mag for one electron at airmass 1")
    args = parser.parse_args()
    sequences = read_survey_stamps([args.cubes])
    # Objects with blank epochs left out (HiTS40SN) do not line up epoch by epoch with the rest.
    lengths = [len(s.stamps) for s in sequences]
    sequences = [s for s in sequences if len(s.stamps) == max(set(lengths), key=lengths.count)]
    log = survey_log(sequences, args.zero_point)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_log_csv(log, args.out)
    nights = len(np.unique(np.floor(log["mjd"] - 0.3)))
    print(
        f"{args.out}: {len(log['mjd'])} epochs over {np.ptp(log['mjd']):.1f} days ({nights} nights) from "
        f"{len(sequences)} objects; sky {log['sky'].min():.0f}-{log['sky'].max():.0f} e, airmass "
        f"{log['airmass'].min():.2f}-{log['airmass'].max():.2f}, seeing {log['fwhm'][0]:.2f} px"
    )


if __name__ == "__main__":
    main()
