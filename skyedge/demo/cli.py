"""`skyedge demo`."""

from __future__ import annotations


def _demo(args) -> int:
    from pathlib import Path

    from skyedge.demo.run import run_demo

    run_demo(Path(args.workdir))
    return 0


def register(subparsers) -> None:
    """Add `demo` to the CLI."""
    p = subparsers.add_parser(
        "demo",
        help="simulate, train, export, calibrate, run against a broker and benchmark, in a few minutes",
        description=(
            "The whole workstation-to-edge path on this machine: tiny all-sky and transients models on\n"
            "simulated data, exported and calibrated, run by the edge runtime on a simulated camera folder\n"
            "and telescope field, reporting to a local broker (mosquitto if installed, else embedded amqtt),\n"
            "then benchmarked. Needs the train extra (torch)."
        ),
        epilog="example:\n  skyedge demo --workdir demo",
    )
    p.add_argument("--workdir", default="demo", help="where data, runs, models, logs and results go (default ./demo)")
    p.set_defaults(func=_demo)
