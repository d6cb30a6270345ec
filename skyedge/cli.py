"""The one ``skyedge`` command: a thin argparse front whose subcommands the stages register.

Each stage contributes a module with ``register(subparsers)``; a subcommand is
listed here only once it does its job (the Foundation issue's rule). Command
modules import their heavy dependencies (torch, onnxruntime) inside the
handler, so ``skyedge --help`` stays fast on a Jetson.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from skyedge import __version__
from skyedge.logs import setup_logging

# Order is the order in `skyedge --help`. A module missing from an install
# (e.g. training without torch) is skipped; see _load_commands.
COMMAND_MODULES = (
    "skyedge.training.cli",
    "skyedge.export.cli",
    "skyedge.calibration.cli",
    "skyedge.edge.cli",
    "skyedge.info",
    "skyedge.demo.cli",
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs laid out as written."""


def _load_commands(subparsers) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only tolerate a missing optional dependency, never a bug in our own code.
            if exc.name and exc.name.split(".")[0] == "skyedge":
                raise
            logging.getLogger(__name__).debug("command module %s unavailable: %s", name, exc)
            continue
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="skyedge",
        description="Train, export, calibrate and run all-sky and transient classifiers on the edge.",
        epilog="examples:\n  skyedge info\n  skyedge --version\n\nRun 'skyedge COMMAND --help' for a command's options and an example.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"skyedge {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-json", action="store_true", help="structured JSON-lines logs on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    original = subparsers.add_parser

    def add_parser(*args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        return original(*args, **kwargs)

    subparsers.add_parser = add_parser
    _load_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen subcommand, return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level, json_lines=args.log_json)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Known user errors carry a full message; show it without a traceback.
        from skyedge.errors import SkyedgeError

        if isinstance(exc, SkyedgeError):
            print(f"skyedge {args.command}: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
