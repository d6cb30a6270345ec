"""`skyedge demo`."""

from __future__ import annotations

from skyedge.commands import add_command

_DEMO_HELP = """\
demo: simulate, train, export, calibrate, run against a broker and benchmark, in a few minutes

The whole workstation-to-edge path on this machine: tiny all-sky and transients models on
simulated data, exported and calibrated, run by the edge runtime on a simulated camera folder
and telescope field, reporting to a local broker (mosquitto if installed, else embedded amqtt),
then benchmarked. Needs the train extra (torch).

example:
  skyedge demo --workdir demo
"""


def _demo(args) -> int:
    from pathlib import Path

    from skyedge.demo.run import run_demo

    run_demo(Path(args.workdir))
    return 0


def register(subparsers) -> None:
    """Add `demo` to the CLI."""
    p = add_command(subparsers, _DEMO_HELP)
    p.add_argument("--workdir", default="demo", help="where data, runs, models, logs and results go (default ./demo)")
    p.set_defaults(func=_demo)
