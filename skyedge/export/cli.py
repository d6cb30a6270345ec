"""`skyedge export` and `skyedge engine`."""

from __future__ import annotations

from skyedge.commands import add_command
from skyedge.precisions import PRECISIONS

_EXPORT_HELP = """\
export: training run -> verified model package (ONNX FP32 + FP16, model card)

Export a `skyedge train` run to ONNX (dynamic batch, and time for sequence models), check it
(onnx.checker, shape inference, TensorRT 10.3 parser table), measure parity with PyTorch on
random and held-out inputs, convert to FP16, and write skyedge.json and export.json.

example:
  skyedge export runs/allsky-tiny --out models/allsky-tiny
"""

_ENGINE_HELP = """\
engine: build a TensorRT engine from a package (run this on the Jetson)

Build a strongly typed TensorRT engine from the package's ONNX for --precision, with an
optimization profile over --batch (and the card's epoch range), a persistent timing cache,
and a sidecar JSON. Needs TensorRT 10.3+ and pycuda (`pip install skyedge[jetson]`).

example:
  skyedge engine models/allsky-tiny --precision int8 --batch 1,8,32
"""


def _export(args) -> int:
    import json

    from skyedge.export.package import export_package

    result = export_package(args.run, args.out, name=args.name, data=args.data, held_out=args.held_out)
    r = result.report
    parity = r["parity"]
    held = parity.get("held_out")
    print(f"package: {result.package}")
    print(f"  ONNX opset {r['onnx']['opset']}, {sum(r['onnx']['ops'].values())} nodes; {r['tensorrt_check']}")
    print(f"  FP32 parity, random inputs: max difference {parity['random']['max_rel']:.2e}")
    if held:
        print(f"  FP32 parity, {held['items']} held-out items: max difference {held['max_rel']:.2e}")
    fp16 = r["fp16"]
    if fp16.get("measured"):
        print(f"  FP16 top-1 agreement ({fp16['data']}, {fp16['items']} items): {100 * fp16['top1_agreement']:.2f}%")
    else:
        print(f"  FP16: {fp16['reason']}")
    if args.json:
        print(json.dumps(r, indent=2))
    return 0


def _engine(args) -> int:
    from skyedge.export.engine import build_engine
    from skyedge.model_card import read_card

    batches = [int(b) for b in args.batch.split(",")]
    graphs = [args.graph] if args.graph != "all" else ["full"] + (["step"] if read_card(args.package).step else [])
    for graph in graphs:
        path = build_engine(
            args.package,
            args.precision,
            batches,
            workspace_mib=args.workspace,
            optimization_level=args.opt_level,
            dla_core=args.dla,
            graph=graph,
        )
        print(path)
    return 0


def register(subparsers) -> None:
    """Add `export` and `engine` to the CLI."""
    p = add_command(subparsers, _EXPORT_HELP)
    p.add_argument("run", help="run directory written by skyedge train")
    p.add_argument("--out", required=True, help="model package directory to write")
    p.add_argument("--name", default=None, help="model name in the card (default: the recipe's name)")
    p.add_argument("--data", default=None, help="held-out skyedge-shards folder (default: the recipe's data.test)")
    p.add_argument(
        "--held-out", type=int, default=1000, help="held-out items for parity and FP16 agreement (default 1000)"
    )
    p.add_argument("--json", action="store_true", help="also print export.json")
    p.set_defaults(func=_export)

    e = add_command(subparsers, _ENGINE_HELP)
    e.add_argument("package")
    e.add_argument("--precision", default="fp16", choices=list(PRECISIONS))
    e.add_argument("--batch", default="1,8,32", help="comma-separated: min, typical, max batch (default 1,8,32)")
    e.add_argument("--workspace", type=int, default=1024, help="workspace limit in MiB (default 1024)")
    e.add_argument("--opt-level", type=int, default=3, choices=range(0, 6), help="builder optimization level")
    e.add_argument("--dla", type=int, default=None, help="DLA core (Orin), with GPU fallback")
    e.add_argument(
        "--graph",
        default="all",
        choices=["all", "full", "step"],
        help="which graph: a sequence package's step graph is what the edge runs (default: all the package has)",
    )
    e.set_defaults(func=_engine)
