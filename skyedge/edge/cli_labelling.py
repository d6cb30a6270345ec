"""The edge's labelling commands: ``skyedge adapt`` and ``skyedge label`` (registered by :mod:`skyedge.edge.cli`)."""

from __future__ import annotations

from skyedge.commands import add_command

_ADAPT_HELP = """\
adapt: refit a frame model's head to your camera's labelled frames (no torch: runs on the Jetson)

Embed the labelled frames in DATA (DATA/<class>/<file>) with the package's own graph, refit the
Mahalanobis head (class means from your frames, classes without frames keep theirs, new class names
are added), re-estimate the open-set threshold, and write a new package with every precision file
updated, adapt.json/adapt.md (leave-one-out accuracy before and after) and a card naming the parent.
Where the package has a cloud map, adapt.md also says how a cloud head refitted to the clear, moon and
cloudy frames would read them against the shipped one; --refit-map-head writes it. Frames with cloud
painted (a <name>.cloud.png beside the frame: black clear, white cloud; `skyedge label`'s p key)
teach it where the cloud is; with every frame painted its cover reads as cloud fraction.
The parent package is never changed; build the TensorRT engine again for the new one.

example:
  skyedge adapt models/allsky-tiny --data labelled/ --out models/allsky-tiny-site
  skyedge adapt models/allsky --data labelled/ --out models/allsky-site --refit-map-head --config edge.yaml
  skyedge engine models/allsky-tiny-site --precision int8   # on the Jetson
"""

_LABEL_HELP = """\
label: label collected frames in a local web page; writes an image-folder data set for adapt and training

Serve a page that shows every frame under DIR with the model's guess (from the JSON sidecars
collect: writes) and labels them from the keyboard: 1-9 classes, n new class, 0 clear, u undo,
a select all shown, click/shift-click select; filter by guess, confidence and label (none yet, or
one class: to check labels made by skyedge star-labels). Labels are copies in
OUT/<class>/ (default DIR/labelled); the frames under DIR are never changed. p paints a labelled
frame's cloud (c cloud, x clear sky, e not judged, f fill, [ ] brush, s save), saved beside its copy
as <name>.cloud.png for adapt --refit-map-head; it follows the frame to another class, except the
stars' paint (star-labels), which goes when a person changes their label.

example:
  skyedge label /var/lib/skyedge/collect --out labelled/site   # then open http://127.0.0.1:8765/
  skyedge adapt models/allsky-tiny --data labelled/site --out models/allsky-site
"""


def _adapt(args) -> int:
    from pydantic import ValidationError
    from rich.console import Console

    from skyedge.edge.config_checks import ChecksSection
    from skyedge.edge.labelling.adapt import AdaptError, adapt_package
    from skyedge.edge.labelling.adapt_report import map_summary
    from skyedge.edge.preparation import pipeline_in
    from skyedge.errors import SkyedgeError

    try:
        pipeline = pipeline_in(args.config, args.camera) if args.config else None
        given = {k: v for k, v in (("cloud_map_max_cover", args.cloud_map_max_cover), ("cloud_map_zenith_deg", args.cloud_map_zenith_deg)) if v is not None}
        checks = pipeline.checks.model_copy(update=given) if pipeline is not None else ChecksSection(**given)
        report = adapt_package(
            args.package, args.data, args.out, args.name, args.min_per_class, args.refit_map_head, checks, pipeline
        )
    except (AdaptError, ValidationError, SkyedgeError) as exc:
        Console(stderr=True).print(f"[red]skyedge adapt: {exc}[/red]")
        return 2
    before, after = report["before"]["accuracy"], report["after_leave_one_out"]["accuracy"]
    Console().print(
        f"{report['frames']} labelled frames: accuracy {before:.3f} before, {after:.3f} after (leave-one-out); "
        f"added classes: {', '.join(report['added_classes']) or 'none'}; {report['seconds']:.1f} s\n"
        f"{map_summary(report['cloud_map'])}\n"
        f"wrote {args.out} (report: {args.out}/adapt.md)"
    )
    return 0


def register_adapt(subparsers) -> None:
    """Add `adapt` to the CLI."""
    p = add_command(subparsers, _ADAPT_HELP)
    p.add_argument("package", help="model package directory (a frame model with a Mahalanobis head)")
    p.add_argument("--data", required=True, help="labelled frames: a folder of class folders")
    p.add_argument("--out", required=True, help="new package directory")
    p.add_argument("--name", default=None, help="the new model's name (default: the parent's + '-adapted')")
    p.add_argument("--min-per-class", type=int, default=3, help="fewest frames a labelled class may have (default 3)")
    p.add_argument(
        "--refit-map-head",
        action="store_true",
        help="also replace the cloud-map head with one refitted to these frames (adapt.md compares the two first; "
        "worth it for a package whose map does not read this camera)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="the deployment YAML the frames' camera runs under: they are prepared as its pipeline prepares frames "
        "(Bayer pattern, dark, flat, site mask) and its checks are read; without it, as the model card alone says",
    )
    p.add_argument("--camera", default=None, help="the pipeline in --config (default: the first)")
    p.add_argument(
        "--cloud-map-max-cover",
        type=float,
        default=None,
        help="the pipeline's checks.cloud_map_max_cover, which a refitted map is placed for (default: --config's, else 10)",
    )
    p.add_argument(
        "--cloud-map-zenith-deg",
        type=float,
        default=None,
        help="the pipeline's checks.cloud_map_zenith_deg (default: --config's, else 72)",
    )
    p.set_defaults(func=_adapt)


def _label(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from skyedge.edge.labelling.label import LabelError, serve

    root = Path(args.dir)
    out = Path(args.out) if args.out else root / "labelled"
    try:
        server = serve(root, out, args.bind, args.port)
    except (LabelError, OSError) as exc:
        Console(stderr=True).print(f"[red]skyedge label: {exc}[/red]")
        return 2
    host, port = server.server_address[:2]
    Console().print(
        f"{len(server.store.items)} frames under {root}; labels go to {out}\n"
        f"open http://{host}:{port}/ (Ctrl-C to stop)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register_label(subparsers) -> None:
    """Add `label` to the CLI."""
    p = add_command(subparsers, _LABEL_HELP)
    p.add_argument("dir", help="folder of frames (e.g. what collect: kept), searched recursively")
    p.add_argument("--out", default=None, help="where the labelled copies go (default DIR/labelled)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(func=_label)
