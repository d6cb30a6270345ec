"""`skyedge simulate` and `skyedge train`."""

from __future__ import annotations

import json
from pathlib import Path

from skyedge.commands import add_command

_EVALUATE_HELP = """\
evaluate: score a trained frame model on camera profiles it never saw

Simulate each --profile (cached under --data-root), prepare the frames as the edge does, and report
accuracy, macro-F1, truly cloudy frames called clear and the open-set rate, beside the run's own
held-out accuracy; with --invalid, how frames that are no night sky were answered; with --site-known, also
as a device with site_location set answers (the sun decides day, the model's day is taken out at night, and its
moon where the simulator put no moon in the sky).

example:
  skyedge evaluate runs/allsky-tiny --profile cropped-wide-jpeg --profile rpi-fisheye-jpeg --out results/unseen.json
"""

_SIMULATE_HELP = """\
simulate: simulate all-sky frames, transient stamp sequences or a telescope field

Write a simulated data set (sharded .npz + manifest.json) or, for 'field', FITS frames and a catalogue.

examples:
  skyedge simulate allsky --n 2400 --out data/allsky-train --seed 11
  skyedge simulate allsky --n 60 --out data/camera --files fits --seed 5
  skyedge simulate allsky --n 600 --profile suburban-colour-jpeg --out data/suburb --seed 3
  skyedge simulate transients --n 2800 --out data/transients-train --seed 11
  skyedge simulate field --n 6 --out data/field --seed 3   # 6 objects per class
"""

_FIELD_REPORT_HELP = """\
field-report: judge a telescope field run against the simulator's truth (completeness, how early, accuracy)

Read a simulated field (simulated with --truth-snr) and the JSON-lines log of `skyedge run` on it;
report detection completeness (overall, per class, against magnitude), the epoch each class was
first reported against the epoch it became detectable, and the last published class against the
model's offline answer on the same objects. Writes field_report.json and field_report.png.

example:
  skyedge simulate field --n 20 --size 512 --epochs 16 --drift-px 3 --hostless-fraction 0.5 --truth-snr 3 --out data/field
  skyedge run --config configs/edge/telescope.yaml --once
  skyedge field-report data/field results/scope-01.jsonl --model models/transients-tiny
"""

_TRAIN_HELP = """\
train: train a frame or sequence classifier from a YAML recipe

Train, evaluate on held-out data, and write checkpoint, metrics.json, plots and card.json.

example:
  skyedge train --config configs/train/allsky-tiny.yaml
  skyedge train --config configs/train/allsky-tiny.yaml --set frame_model.loss=triplet --set seed=1 --out runs/t1
  skyedge train --config configs/train/allsky-site.yaml --init-from runs/allsky-tiny --freeze-backbone-epochs 3
  torchrun --nproc-per-node 2 -m skyedge train --config configs/train/allsky-r18-triplet.yaml
"""

_TORCH_BENCH_HELP = """\
torch-bench: PyTorch eager throughput of a training run (what `bench --compare-torch` compares against)

Time the run's model in PyTorch eager on the CPU; print or write JSON.

example:
  skyedge torch-bench runs/allsky-tiny --batch 1,8 --json results/torch.json
"""


def _simulate(args) -> int:
    from pathlib import Path

    if args.kind == "allsky":
        from skyedge.training.simulate.allsky import AllskyConfig, simulate_allsky
        from skyedge.training.simulate.profiles import profile_config

        if args.profile:
            try:
                cfg = profile_config(args.profile)
            except ValueError as exc:
                raise SystemExit(f"skyedge simulate: --profile: {exc}") from None
        else:
            cfg = AllskyConfig(size=args.size or 128, bit_depth=args.bit_depth, color=args.color, bayer=args.bayer)
        manifest = simulate_allsky(args.n, args.out, seed=args.seed, cfg=cfg, files=args.files, workers=args.workers)
    elif args.kind == "transients":
        from skyedge.training.simulate.obslog import CadenceConfig, read_log_csv
        from skyedge.training.simulate.transients import TransientConfig, simulate_transients

        cfg = TransientConfig(stamp_size=args.size or 21, psf=args.psf, cadence=CadenceConfig(epochs=args.epochs))
        log = read_log_csv(args.obslog) if args.obslog else None
        manifest = simulate_transients(args.n, args.out, seed=args.seed, cfg=cfg, log=log, workers=args.workers)
    else:
        from skyedge.training.simulate.field import FieldConfig, simulate_field
        from skyedge.training.simulate.obslog import CadenceConfig
        from skyedge.training.simulate.transients import TransientConfig

        tcfg = TransientConfig(stamp_size=21, psf=args.psf, cadence=CadenceConfig(epochs=args.epochs))
        field_cfg = FieldConfig(
            size=args.size or 256,
            objects_per_class=args.n,
            transients=tcfg,
            drift_px=args.drift_px,
            hostless_fraction=args.hostless_fraction,
            truth_snr=args.truth_snr,
        )
        simulate_field(args.out, seed=args.seed, cfg=field_cfg)
        manifest = Path(args.out) / "field.json"
    print(f"wrote {manifest}")
    return 0


def _field_report(args) -> int:
    from skyedge.training.field_evaluation import field_report, plot_completeness

    report = field_report(Path(args.field), Path(args.results), Path(args.model), args.match_radius)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "field_report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_completeness(report, out / "field_report.png")
    c = report["classification"]
    print(
        f"detectable {report['detectable']} of {report['objects']}, found {report['found']} "
        f"(completeness {report['completeness']:.3f}); hostless SN found {report['hostless_sn']['found']} of "
        f"{report['hostless_sn']['detectable']}"
    )
    for name, row in report["by_class"].items():
        print(
            f"  {name:>12}: {row['found']}/{row['detectable']} found, first reported at epoch "
            f"{row['median_first_message_epoch']}, {row['median_epochs_after_detectable']} epochs after detectable"
        )
    print(
        f"classification of {c['objects']} found objects: edge {c['edge_last_epoch_accuracy']:.3f}, "
        f"offline {c['offline_accuracy_same_objects']:.3f}, agreement {c['agreement_edge_offline']:.3f}"
    )
    print(f"wrote {out / 'field_report.json'} and {out / 'field_report.png'}")
    return 0


def _torch_bench(args) -> int:
    from skyedge.training.torch_bench import torch_throughput

    result = torch_throughput(
        args.run, [int(b) for b in args.batch.split(",")], args.trials, args.seconds, args.threads
    )
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


def _train(args) -> int:
    from skyedge.training.config import load_train_config
    from skyedge.training.train import run_training

    overrides = list(args.set)
    if args.out:
        overrides.append(f"out={args.out}")
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.init_from:
        overrides.append(f"train.init_from={args.init_from}")
    if args.freeze_backbone_epochs is not None:
        overrides.append(f"train.freeze_backbone_epochs={args.freeze_backbone_epochs}")
    cfg = load_train_config(args.config, overrides)
    out = run_training(cfg)
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    which = "test" if "test" in metrics else "val"
    if which in metrics:
        print(
            f"{cfg.name}: {which} accuracy {metrics[which]['accuracy']:.3f}, macro-F1 {metrics[which]['macro_f1']:.3f} -> {out}"
        )
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from skyedge.training.evaluate import evaluate_profiles, print_table

    result = evaluate_profiles(
        args.run, args.profile, args.n, args.seed, Path(args.data_root), args.invalid, args.site_mask, args.site_known
    )
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def register_evaluate(subparsers) -> None:
    """Add `evaluate` to the CLI."""
    p = add_command(subparsers, _EVALUATE_HELP)
    p.add_argument("run", help="a `skyedge train` run directory (frame model)")
    p.add_argument("--profile", action="append", required=True, help="camera profile (repeatable)")
    p.add_argument("--n", type=int, default=300, help="frames per profile")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--data-root", default="data/unseen")
    p.add_argument(
        "--invalid",
        type=int,
        default=0,
        metavar="N",
        help="also render N frames per kind that is no night sky (capped, saturated, ..., daylight) per profile",
    )
    p.add_argument(
        "--site-mask",
        action="store_true",
        help="also score each profile through the mask its site would draw (trees, buildings, dome, outside the lens)",
    )
    p.add_argument(
        "--site-known",
        action="store_true",
        help="also score as a device with site_location set answers: the sun decides 'day', the model's 'day' is "
        "taken out at night, and its 'moon' where no moon is in the sky",
    )
    p.add_argument("--out", default=None, help="write the scores as JSON")
    p.set_defaults(func=_evaluate)


def register(subparsers) -> None:
    """Add `simulate`, `field-report`, `train`, `torch-bench`, `evaluate` and `train-real-bogus` to the CLI."""
    sim = add_command(subparsers, _SIMULATE_HELP)
    sim.add_argument("kind", choices=["allsky", "transients", "field"])
    sim.add_argument("--n", type=int, required=True, help="items (field: objects per class)")
    sim.add_argument("--out", required=True)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--size", type=int, default=None, help="frame side (allsky 128, field 256) or stamp side (21)")
    sim.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sim.add_argument("--bit-depth", type=int, default=16, choices=[8, 16], help="allsky")
    sim.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="allsky: simulate as seen by this camera profile (skyedge/training/simulate/profiles.py: dark-site-mono, "
        "suburban-colour-jpeg, raw-bayer-fits, nan-fits-float, arctic-stereo-mono, cropped-wide-jpeg, "
        "dome-slit-mono8, rpi-fisheye-jpeg); overrides the camera options",
    )
    sim.add_argument("--color", default="mono", choices=["mono", "rgb"], help="allsky")
    sim.add_argument(
        "--bayer", default=None, choices=["RGGB", "BGGR", "GRBG", "GBRG"], help="allsky: raw mosaic output"
    )
    sim.add_argument(
        "--files",
        default=None,
        choices=["png", "jpg", "tiff", "fits"],
        help="allsky: also write image files + labels.csv",
    )
    sim.add_argument("--psf", default="moffat", choices=["moffat", "gaussian"], help="transients/field")
    sim.add_argument("--epochs", type=int, default=24, help="transients/field: epochs in the cadence model")
    sim.add_argument(
        "--obslog", default=None, help="transients: CSV observation log (mjd,fwhm,sky,zero_point,exptime,airmass)"
    )
    sim.add_argument("--drift-px", type=float, default=0.0, help="field: pointing drift per epoch, up to this (px)")
    sim.add_argument("--hostless-fraction", type=float, default=0.0, help="field: supernovae without a host galaxy")
    sim.add_argument(
        "--truth-snr",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="field: record each object's difference-image S/N against a reference of this many epochs "
        "(what skyedge field-report judges completeness by; slower)",
    )
    sim.set_defaults(func=_simulate)

    report = add_command(subparsers, _FIELD_REPORT_HELP)
    report.add_argument("field", help="simulated field folder (frames/, truth.json)")
    report.add_argument("results", help="JSON-lines log of the run (reporters.jsonl)")
    report.add_argument("--model", required=True, help="the model package the run used")
    report.add_argument("--match-radius", type=float, default=3.0, help="px between a true and a reported object")
    report.add_argument("--out", default="results/field-report")
    report.set_defaults(func=_field_report)

    train = add_command(subparsers, _TRAIN_HELP)
    train.add_argument("--config", required=True)
    train.add_argument("--out", default=None, help="override the recipe's run directory")
    train.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    train.add_argument(
        "--init-from", default=None, metavar="RUN", help="start from this run's weights (fine-tuning; train.init_from)"
    )
    train.add_argument(
        "--freeze-backbone-epochs",
        type=int,
        default=None,
        metavar="N",
        help="with --init-from: train only the layers after the backbone for the first N epochs "
        "(train.freeze_backbone_epochs)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe key, e.g. --set frame_model.loss=triplet --set seed=1",
    )
    train.set_defaults(func=_train)

    p = add_command(subparsers, _TORCH_BENCH_HELP)
    p.add_argument("run")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None, help="write the result here (default: print it)")
    p.set_defaults(func=_torch_bench)
    register_evaluate(subparsers)
    from skyedge.training import real_bogus

    real_bogus.add_command(subparsers)
