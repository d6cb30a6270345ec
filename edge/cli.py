"""`skyedge run`."""

from __future__ import annotations


def _run(args) -> int:
    import threading

    from rich.console import Console

    from skyedge.edge.config import load_edge_config
    from skyedge.edge.runtime import Runtime, install_signal_handlers

    cfg = load_edge_config(args.config)
    stop = threading.Event()
    runtime = Runtime(cfg, once=args.once, stop_event=stop)
    install_signal_handlers(stop)
    stats = runtime.run()
    snap = stats.snapshot()
    c = snap["counts"]
    Console(stderr=True).print(
        f"skyedge run: {c['processed']} classified, {c['corrupt']} rejected, {c['dropped']} dropped, "
        f"{c['failed']} failed; p50 latency {snap['latency_ms']['p50']:.1f} ms ({runtime.backend_kind}, "
        f"{runtime.package.precision})"
    )
    return 1 if c["failed"] else 0


def register(subparsers) -> None:
    """Add `run` to the CLI."""
    p = subparsers.add_parser(
        "run",
        help="run the edge runtime from a deployment YAML (until SIGINT/SIGTERM, or --once)",
        description=(
            "Read frames from the configured sources, classify them with the model package, and report\n"
            "classifications, the debounced sky state, events and metrics over MQTT and/or a JSON-lines log.\n"
            "SIGINT/SIGTERM stop cleanly (drain, flush, status offline)."
        ),
        epilog=(
            "examples:\n"
            "  skyedge run --config configs/edge/allsky.yaml\n"
            "  skyedge run --config configs/edge/telescope.yaml --once   # process what is there, then exit"
        ),
    )
    p.add_argument("--config", required=True, help="deployment YAML (see configs/edge/)")
    p.add_argument("--once", action="store_true", help="process the files present and exit")
    p.set_defaults(func=_run)
