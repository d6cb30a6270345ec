"""`skyedge run`."""

from __future__ import annotations

from skyedge.commands import add_command
from skyedge.edge.cli_labelling import register_adapt, register_label

_RUN_HELP = """\
run: run the edge runtime from a deployment YAML (until SIGINT/SIGTERM, or --once)

Read frames from the configured sources, classify them with the model package, and report
classifications, the debounced sky state, events and metrics over MQTT and/or a JSON-lines log.
SIGINT/SIGTERM stop cleanly (drain, flush, status offline).

examples:
  skyedge run --config configs/edge/allsky.yaml
  skyedge run --config configs/edge/telescope.yaml --once   # process what is there, then exit
"""

_BENCH_HELP = """\
bench: throughput and latency per backend, precision and batch (and end-to-end pipeline efficiency)

Time the backend on the model package for every precision x batch (warm-up excluded, median of
--trials), beside each precision's held-out accuracy from report.json. --pipeline DIR also runs
the whole runtime on the frames in DIR and reports end-to-end / backend-only throughput, and how
many frames its backend calls held; --cameras N runs N cameras at once, sharing the model's batches.

examples:
  skyedge bench --model models/allsky-tiny --backend onnxruntime --precision fp32,int8 --batch 1,8,32 --pipeline data/camera/frames
  skyedge bench --model models/allsky-tiny --precision int8 --batch 8 --pipeline data/camera/frames --cameras 4
  skyedge bench --model models/transients-tiny --field data/field/frames --objects 100,1000,10000 --histories 1,6,12,24 --precision fp32 --batch 1024
"""

_WATCH_HELP = """\
watch: live table of every skyedge device on a broker (or --json lines)

Subscribe to skyedge/<site|+>/# and show devices, online status, sky state, last classification, rates and outbox depth.

examples:
  skyedge watch --broker localhost:1883
  skyedge watch --broker mqtt.observatory.lan --site la-palma --json
"""

_BROKER_HELP = """\
broker: an embedded MQTT 3.1.1 broker (amqtt) for demos and tests; use mosquitto in production

Run the pure-Python amqtt broker until Ctrl-C. It speaks MQTT 3.1.1 only.

example:
  skyedge broker --port 1883
"""

_CLOUDMAP_HELP = """\
cloudmap: draw a frame's cloud map (sectors, cloud cover) over the frame as a PNG

Run the package's cloud map on one frame as `skyedge run` would and draw it (docs/mqtt.md: cloud_map).

example:
  skyedge cloudmap frames/2026-12-03T22-15-00.jpg --model models/allsky --out map.png [--config configs/edge/allsky.yaml --camera allsky]
"""

_FIELD_INJECT_HELP = """\
field-inject: plant artificial sources into real telescope frames, to measure what the field pipeline finds

Measure and align every frame as the edge does, then plant point sources at fixed sky positions that follow the
field's drift: rising supernovae, moving asteroids, variable stars, with the frame's seeing, at a target S/N in the
difference image. OUT gets frames/ (run the edge on it) and truth.json (what skyedge field-report scores).

example:
  skyedge field-inject data/hatp32 runs/inject --per-kind 10 --snr 5,30 --seed 0
  skyedge run --config configs/edge/telescope.yaml --once   # source.path: runs/inject/frames
  skyedge field-report runs/inject results/scope-01.jsonl --model models/transients-tiny
"""


def _run(args) -> int:
    import threading

    from rich.console import Console

    from skyedge.edge.config import load_edge_config
    from skyedge.edge.runtime.lifecycle import Runtime, install_signal_handlers

    cfg = load_edge_config(args.config, check_paths=True)
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
    p = add_command(subparsers, _RUN_HELP)
    p.add_argument("--config", required=True, help="deployment YAML (see configs/edge/)")
    p.add_argument("--once", action="store_true", help="process the files present and exit")
    p.set_defaults(func=_run)
    register_bench(subparsers)
    register_adapt(subparsers)
    register_label(subparsers)
    register_operator(subparsers)


def _bench(args) -> int:
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from skyedge.edge.tools.bench import plot_bench, run_bench

    if args.mqtt:
        from skyedge.edge.tools.mqtt_bench import mqtt_figures

        host, port = _split_broker(args.mqtt)
        figures = mqtt_figures(host, port, args.mqtt_messages, args.mqtt_protocol)
        print(json.dumps(figures, indent=2))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "mqtt.json").write_text(json.dumps(figures, indent=2) + "\n")
        return 0 if figures["received"] == figures["messages"] == figures["replayed_received"] else 1
    if not args.model:
        raise SystemExit("skyedge bench: --model is required (or --mqtt HOST:PORT for the MQTT figures)")
    if args.field:
        return _field_bench(args)
    frames = None
    if args.cameras < 1:
        raise SystemExit(f"skyedge bench: --cameras {args.cameras}: give 1 or more")
    if args.pipeline:
        folder = Path(args.pipeline)
        frames = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".fits", ".fit", ".png", ".jpg", ".tif", ".tiff")
        )
        if not frames:
            raise SystemExit(f"skyedge bench: --pipeline {folder}: no image files there")
    result = run_bench(
        args.model,
        args.backend,
        args.precision.split(","),
        [int(b) for b in args.batch.split(",")],
        threads=args.threads,
        trials=args.trials,
        seconds=args.seconds,
        frames=frames,
        copies=args.copies,
        compare_torch=args.compare_torch,
        cameras=args.cameras,
    )
    table = Table(title=f"{result['model']} — {result['device']['cpu']}, {result['device']['cores']} cores")
    cols = ["backend", "prec", "batch", "items/s", "min–max", "p50 ms", "p99 ms", "acc", "e2e/s", "e2e ratio", "e2e per call"]
    if args.compare_torch:
        cols += ["torch/s", "vs torch"]
    for col in cols:
        table.add_column(col, justify="right", no_wrap=True)
    for r in result["rows"]:
        acc = r["accuracy"]
        pipe = r.get("pipeline")
        table.add_row(
            r["backend"][:4],
            r["precision"],
            str(r["batch"]),
            f"{r['items_per_s']:.1f}",
            f"{r['items_per_s_min']:.0f}–{r['items_per_s_max']:.0f}",
            f"{r['latency_ms']['p50']:.2f}",
            f"{r['latency_ms']['p99']:.2f}",
            f"{acc['accuracy']:.3f}" if acc else "–",
            f"{pipe['items_per_s']:.1f}" if pipe else "–",
            f"{pipe['efficiency']:.2f}" if pipe else "–",
            f"{pipe['frames_per_call']:.1f}" if pipe else "–",
            *(
                [f"{r['torch_eager']['items_per_s']:.1f}", f"{r['torch_eager']['speedup']:.2f}x"]
                if args.compare_torch and r.get("torch_eager", {}).get("items_per_s")
                else (["–", "–"] if args.compare_torch else [])
            ),
        )
    Console(width=max(Console().width, 140)).print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_bench(result, out / "bench.png")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


def _field_bench(args) -> int:
    import json
    from pathlib import Path

    from skyedge.edge.tools.field_bench import graph_costs, pipeline_costs, plot_field_bench

    precision = args.precision.split(",")[0]
    batch = int(args.batch.split(",")[-1])
    result = {
        "model": Path(args.model).name,
        "precision": precision,
        "batch": batch,
        "graph": graph_costs(
            args.model,
            precision,
            args.backend,
            [int(n) for n in args.objects.split(",")],
            [int(h) for h in args.histories.split(",")],
            batch,
            args.trials,
            args.threads,
        ),
    }
    for r in result["graph"]:
        print(f"{r['graph']:>4} graph  {r['objects']:>6} objects  history {r['history']:>3}: "
              f"{r['ms_per_epoch']:9.1f} ms/epoch  {r['object_epochs_per_s']:9.0f} object-epochs/s")
    if args.field is not True:
        catalog = Path(args.field_catalog) if args.field_catalog else None
        result["pipeline"] = pipe = pipeline_costs(args.model, precision, Path(args.field), batch, args.threads, catalog)
        print(f"pipeline: {pipe['epochs']} epochs, {pipe['object_epochs']} object-epochs in {pipe['wall_s']:.1f} s "
              f"({pipe['object_epochs_per_s_wall']:.0f}/s wall, {pipe['object_epochs_per_s_steady'] or 0:.0f}/s steady); "
              f"ms per epoch: first 6 {pipe['ms_per_epoch_first_6'] or 0:.0f}, all {pipe['ms_per_epoch_all'] or 0:.0f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "field_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_field_bench(result, out / "field_bench.png")
    print(f"wrote {out / 'field_bench.json'} and {out / 'field_bench.png'}")
    return 0


def register_bench(subparsers) -> None:
    """Add `bench` to the CLI."""
    p = add_command(subparsers, _BENCH_HELP)
    p.add_argument("--model", default=None, help="model package directory")
    p.add_argument("--backend", default="auto", choices=["onnxruntime", "tensorrt", "auto"])
    p.add_argument("--precision", default="fp32,int8", help="comma-separated: fp32,fp16,int8")
    p.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: library default)")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per trial")
    p.add_argument("--pipeline", default=None, metavar="DIR", help="frames for the end-to-end comparison")
    p.add_argument("--copies", type=int, default=4, help="--pipeline: copies of DIR's frames to process")
    p.add_argument(
        "--cameras", type=int, default=1, help="--pipeline: cameras (pipelines) each given the copies; they share the model's batches"
    )
    p.add_argument(
        "--compare-torch", default=None, metavar="RUN_DIR", help="also time the run in PyTorch eager (train extra)"
    )
    p.add_argument("--out", default="results/bench", help="where bench.json and bench.png go")
    p.add_argument(
        "--field",
        nargs="?",
        const=True,
        default=None,
        metavar="FRAMES",
        help="instead: a sequence model's cost per field epoch, full graph vs step graph, by --objects and "
        "--histories (first --precision, last --batch); with a folder of field frames, also the whole runtime on them",
    )
    p.add_argument("--objects", default="100,1000,10000", help="--field: objects per epoch")
    p.add_argument("--histories", default="1,6,12,24", help="--field: history lengths (epochs)")
    p.add_argument("--field-catalog", default=None, metavar="CSV", help="--field FRAMES: follow a catalogue too")
    p.add_argument("--mqtt", default=None, metavar="HOST:PORT", help="instead: MQTT QoS 1 rate and outbox replay time")
    p.add_argument("--mqtt-messages", type=int, default=10_000)
    p.add_argument("--mqtt-protocol", default="5", choices=["5", "3.1.1"])
    p.set_defaults(func=_bench)


def _split_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    return host, int(port)


def _watch(args) -> int:
    from skyedge.edge.tools.watch import watch

    host, port = _split_broker(args.broker)
    watch(host, port, args.site, args.json, args.protocol, args.seconds)
    return 0


def _broker(args) -> int:
    import time

    from skyedge.brokers import AmqttBroker

    broker = AmqttBroker(args.host, args.port)
    broker.start()
    print(
        f'embedded amqtt broker on {broker.host}:{broker.port} (MQTT 3.1.1 only; set reporters.mqtt.protocol: "3.1.1"). '
        "For production run mosquitto with configs/mosquitto/mosquitto.conf. Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def register_operator(subparsers) -> None:
    """Add `watch`, `broker`, `cloudmap`, `geometry`, `field-harvest` and `field-inject` to the CLI."""
    w = add_command(subparsers, _WATCH_HELP)
    w.add_argument("--broker", default="localhost:1883", help="HOST[:PORT] (default localhost:1883)")
    w.add_argument("--site", default=None, help="only this site")
    w.add_argument("--json", action="store_true", help="print each message as a JSON line")
    w.add_argument("--protocol", default="5", choices=["5", "3.1.1"])
    w.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    w.set_defaults(func=_watch)
    b = add_command(subparsers, _BROKER_HELP)
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=1883)
    b.set_defaults(func=_broker)
    c = add_command(subparsers, _CLOUDMAP_HELP)
    c.add_argument("frame", help="an all-sky frame (FITS, PNG, JPEG, TIFF)")
    c.add_argument("--model", required=True, help="a frame package with a cloud map")
    c.add_argument("--out", required=True, help="PNG to write")
    c.add_argument("--config", default=None, help="deployment YAML whose pipeline orientation, mask and Bayer pattern to use")
    c.add_argument("--camera", default=None, help="the pipeline in --config (default: the first)")
    c.set_defaults(func=_cloudmap)
    from skyedge.edge.tools.field_harvest import add_harvest_command  # numpy and the stars load with these
    from skyedge.edge.tools.geometry import add_geometry_command
    from skyedge.edge.tools.star_labels import add_star_labels_command

    add_geometry_command(subparsers)
    add_star_labels_command(subparsers)
    add_harvest_command(subparsers)
    f = add_command(subparsers, _FIELD_INJECT_HELP)
    f.add_argument("frames", help="folder of FITS frames of one field")
    f.add_argument("out", help="folder to write the injected frames and truth.json to")
    f.add_argument("--per-kind", type=int, default=10, help="sources of each kind (default 10)")
    f.add_argument("--snr", default="5,30", help="peak S/N range in the difference image (default 5,30)")
    f.add_argument("--reference-epochs", type=int, default=3, help="as the field's config (default 3): no SN before")
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=_field_inject)


def _field_inject(args) -> int:
    from pathlib import Path

    from skyedge.edge.tools.field_inject import inject

    low, high = (float(v) for v in args.snr.split(","))
    out = inject(Path(args.frames), Path(args.out), args.per_kind, (low, high), args.reference_epochs, args.seed)
    print(f"wrote {out / 'frames'} and {out / 'truth.json'}")
    return 0


def _cloudmap(args) -> int:
    from skyedge.edge.tools.cloud_overlay import cloudmap_command

    return cloudmap_command(args)
