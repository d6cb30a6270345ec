"""`skyedge calibrate`."""

from __future__ import annotations

from skyedge.commands import add_command
from skyedge.precisions import CALIBRATION_TARGETS, calibration_target

_CALIBRATE_HELP = """\
calibrate: INT8 Q/DQ models from a representative subset, accuracy report per precision, and the gate

Draw a calibration subset stratified by class and observing conditions from DIR, write
model.int8.onnx (--target tensorrt: symmetric INT8, per-channel weights) and/or
model.int8-cpu.onnx (--target cpu: U8S8 for ONNX Runtime, 7-bit weights unless --full-range),
evaluate FP32/FP16/INT8 on held-out data (--eval, or the items of DIR not used for calibration)
into report.json and report.md.
Exits 3 when INT8 loses more than --max-drop accuracy points against FP32, unless --allow-drop.

example:
  skyedge calibrate models/allsky-tiny --data data/allsky-train --eval data/allsky-test --target tensorrt --target cpu
  skyedge calibrate models/allsky-tiny --data data/allsky-train --eval data/allsky-test --target cpu --full-range   # CPUs with VNNI only
  skyedge calibrate models/allsky-tiny --data data/allsky-train-dark-site --data data/allsky-train-suburban --eval data/allsky-test-dark-site --eval data/allsky-test-suburban   # one folder per camera
  skyedge calibrate models/allsky-site --data labelled/site --data data/allsky256-dark-site --eval labelled/site-test --target tensorrt --target cpu   # a site's own labelled frames (frame models)
"""


def _calibrate(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from skyedge.calibration.calibrate import calibrate_package
    from skyedge.calibration.report import GateError

    targets = sorted(set(args.target or ["tensorrt"]))
    try:
        report = calibrate_package(
            args.package,
            args.data,
            targets,
            method=args.method,
            size=args.size,
            eval_data=args.eval,
            max_drop_points=args.max_drop,
            allow_drop=args.allow_drop,
            seed=args.seed,
            reduce_range=not args.full_range,
            bayer=args.bayer,
        )
        status = 0
    except GateError as exc:
        import json
        from pathlib import Path

        path = Path(args.package) / "report.json"
        report = json.loads(path.read_text()) if path.exists() else None
        Console(stderr=True).print(f"[red]skyedge calibrate: {exc}[/red]")
        status = 3
    if report is not None:
        table = Table(title=f"{report['model']}: held-out {report['held_out']['items']} items")
        for col in ("precision", "accuracy", "macro-F1", "agree w/ FP32", "Δ acc (pts)", "unknown"):
            table.add_column(col, justify="right")
        for precision, r in report["results"].items():
            unknown = f"{100 * r['unknown_rate']:.1f}%" if "unknown_rate" in r else "–"
            table.add_row(
                precision,
                f"{r['accuracy']:.4f}",
                f"{r['macro_f1']:.4f}",
                f"{100 * r['top1_agreement_with_fp32']:.2f}%",
                f"{r['accuracy_delta_points']:+.2f}",
                unknown,
            )
        Console().print(table)
        Console().print(f"gate: {report['gate']['verdict']}; report: {args.package}/report.md")
    if report is not None and "cpu" in targets:
        from skyedge.cpu_int8 import saturation_note

        # The gate's frames may not show the saturation that real ones do: say so where this CPU can cause it.
        note = saturation_note(args.package, calibration_target("cpu").file)
        if note:
            Console(stderr=True).print(f"[yellow]note: {note}[/yellow]")
    return status


def register(subparsers) -> None:
    """Add `calibrate` to the CLI."""
    p = add_command(subparsers, _CALIBRATE_HELP)
    p.add_argument("package", help="model package directory (written by skyedge export)")
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="skyedge-shards folder, or for a frame model a labelled folder DIR/<class>/<frame> (a site's own frames), to draw the calibration subset from (repeatable)",
    )
    p.add_argument(
        "--eval",
        default=None,
        action="append",
        help="held-out skyedge-shards or labelled folder, repeatable (default: the rest of --data)",
    )
    p.add_argument(
        "--target", action="append", choices=sorted(CALIBRATION_TARGETS), help="repeatable; default tensorrt"
    )
    p.add_argument(
        "--method",
        default="percentile",
        choices=["minmax", "entropy", "percentile"],
        help="activation range estimator (default percentile 99.999: bright stars and the moon otherwise set the range)",
    )
    p.add_argument("--size", type=int, default=300, help="calibration items (default 300; see docs/precision.md)")
    p.add_argument("--max-drop", type=float, default=1.0, help="allowed INT8 accuracy loss in points (default 1.0)")
    p.add_argument("--allow-drop", action="store_true", help="write the INT8 model even when the gate fails")
    p.add_argument("--seed", type=int, default=0)
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights in the CPU form (--target cpu), for a fleet of CPUs with VNNI (or ARM) only: on x86 CPUs "
        "without VNNI (AVX2 only) full-range U8S8 can saturate, which the gate sees only on such a machine "
        "(docs/precision.md). Default: 7-bit weights, as fast, safe on every CPU",
    )
    # The default since 2026-12-07; still accepted so that scripts written for the earlier default keep working.
    weights.add_argument("--reduce-range", action="store_true", help="7-bit weights in the CPU form (the default)")
    p.add_argument(
        "--bayer",
        default=None,
        choices=["RGGB", "BGGR", "GRBG", "GBRG"],
        help="labelled folders hold a raw colour camera's mosaics of this pattern (its pipeline's preprocess.bayer): "
        "debayered as the pipeline does; shards say their own",
    )
    p.set_defaults(func=_calibrate)
