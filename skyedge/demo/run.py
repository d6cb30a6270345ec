"""`skyedge demo`: the whole life of both models on this machine, in a few minutes, with a real broker.

simulate -> train (tiny) -> export -> calibrate -> a camera the model never saw, a few of its frames labelled,
`skyedge adapt` (accuracy before and after) -> broker -> `skyedge run` on a simulated camera folder and telescope
field -> what `skyedge watch` shows -> `skyedge bench`. Each stage runs as the real CLI in a subprocess (its output
goes to ``<workdir>/logs/``), so the demo exercises exactly what a user runs; every figure it prints is also in
``<workdir>/summary.json``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # skyedge/demo/run.py -> the checkout's configs/


def _step(console, workdir: Path, title: str, args: list[str]) -> float:
    slug = re.sub(r"[^a-z0-9]+", "-", title.split("(")[0].lower()).strip("-")
    log = workdir / "logs" / f"{slug[:60]}.log"
    t0 = time.perf_counter()
    with console.status(f"[bold]{title}[/] …"), open(log, "w") as fh:
        result = subprocess.run([sys.executable, "-m", "skyedge", *args], stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"demo step '{title}' failed (exit {result.returncode}); log {log}:\n{tail}")
    console.print(f"[green]✓[/] {title} [dim]({seconds:.0f} s, log {log.name})[/]")
    return seconds


RECIPES = (("allsky", "allsky-demo.yaml"), ("transients", "transients-demo.yaml"))


def _recipe(name: str) -> Path:
    return REPO_CONFIGS / "demo" / name


def _localised(recipe: Path, workdir: Path, kind: str) -> tuple[Path, list[Path], list[Path]]:
    """The recipe with its run and data folders moved under ``workdir`` (one data folder per source)."""
    cfg = yaml.safe_load(recipe.read_text())
    cfg["out"] = str(workdir / "runs" / kind)
    folders = {}
    for part in ("train", "test"):
        sources = cfg["data"][part] if isinstance(cfg["data"][part], list) else [cfg["data"][part]]
        for source in sources:
            source["path"] = str(workdir / "data" / f"{kind}-{part}-{Path(source['path']).name}")
        folders[part] = [Path(src["path"]) for src in sources]
    local = workdir / "recipes" / recipe.name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return local, folders["train"], folders["test"]


NEW_CAMERA = "cropped-wide-jpeg"  # a camera profile the demo's model never saw
LABELLED_PER_CLASS = 10


def _accuracy(package: Path, images, labels, classes) -> float:
    """Top-1 accuracy of a package's FP32 graph, frames prepared as the edge prepares them."""
    import numpy as np
    import onnxruntime as ort

    from skyedge.model_card import read_card
    from skyedge.preprocess import prepare_frame

    card = read_card(package)
    session = ort.InferenceSession(str(package / card.files["fp32"]), providers=["CPUExecutionProvider"])
    x = np.stack([prepare_frame(im, card.preprocess) for im in images]).astype(np.float32)
    predicted = session.run(["probabilities"], {card.inputs[0].name: x})[0].argmax(axis=1)
    truth = np.array([card.classes.index(classes[k]) for k in labels])
    return float((predicted == truth).mean())


def _new_camera(console, workdir: Path, data: Path, models: Path) -> tuple[float, dict]:
    """The all-sky model meets a camera it never saw; a few of its frames are labelled (the simulator's truth
    stands in for a person, as `skyedge label` would) and `skyedge adapt` refits the model on the device."""
    from skyedge.shards import ShardedDataset

    folder = data / "new-camera"
    seconds = _step(
        console,
        workdir,
        f"a camera the model never saw ({NEW_CAMERA}): 150 frames",
        [
            "simulate",
            "allsky",
            "--profile",
            NEW_CAMERA,
            "--n",
            "150",
            "--files",
            "png",
            "--out",
            str(folder),
            "--seed",
            "7",
        ],
    )
    ds = ShardedDataset.open(folder)
    arrays = ds.load()
    labelled = data / "new-camera-labelled"
    held_images, held_labels, taken = [], [], {}
    for i, (label, file) in enumerate(zip(arrays["labels"], arrays["meta.file"], strict=True)):
        name = ds.classes[int(label)]
        if taken.get(name, 0) < LABELLED_PER_CLASS:
            (labelled / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / str(file), labelled / name / Path(str(file)).name)
            taken[name] = taken.get(name, 0) + 1
        else:
            held_images.append(arrays["images"][i])
            held_labels.append(int(label))
    adapted = models / "allsky-new-camera"
    seconds += _step(
        console,
        workdir,
        f"skyedge adapt: {LABELLED_PER_CLASS} labelled frames per class of the new camera, no torch",
        ["adapt", str(models / "allsky"), "--data", str(labelled), "--out", str(adapted)],
    )
    before = _accuracy(models / "allsky", held_images, held_labels, ds.classes)
    after = _accuracy(adapted, held_images, held_labels, ds.classes)
    console.print(
        f"   new camera, {len(held_images)} held-out frames: accuracy {before:.3f} before, {after:.3f} after adapt"
    )
    return seconds, {
        "profile": NEW_CAMERA,
        "labelled_per_class": LABELLED_PER_CLASS,
        "held_out_frames": len(held_images),
        "accuracy_before": before,
        "accuracy_after_adapt": after,
    }


def run_demo(workdir: Path, keep: bool = True) -> dict:
    """Run every stage under ``workdir``; return a summary."""
    from rich.console import Console

    from skyedge.brokers import MosquittoBroker, start_broker
    from skyedge.edge.reporters.jsonl import read_jsonl

    console = Console()
    workdir = workdir.resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    times = {}
    summary: dict = {"models": {}}
    data, runs, models = workdir / "data", workdir / "runs", workdir / "models"
    console.rule("skyedge demo")
    for kind, recipe in RECIPES:
        local, train_dirs, test_dirs = _localised(_recipe(recipe), workdir, kind)
        args = ["train", "--config", str(local)]
        times[f"train {kind}"] = _step(
            console, workdir, f"simulate + train {kind}: tiny model on freshly simulated data", args
        )
        metrics = json.loads((runs / kind / "metrics.json").read_text())["test"]
        console.print(f"   held-out accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        summary["models"][kind] = {"held_out_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
        times[f"export {kind}"] = _step(
            console,
            workdir,
            f"export {kind}: ONNX + FP16, parity and TensorRT table checks",
            ["export", str(runs / kind), "--out", str(models / kind)],
        )
        times[f"calibrate {kind}"] = _step(
            console,
            workdir,
            f"calibrate {kind}: INT8 for TensorRT and CPU, accuracy report",
            [
                "calibrate",
                str(models / kind),
                *[arg for d in train_dirs for arg in ("--data", str(d))],
                *[arg for d in test_dirs for arg in ("--eval", str(d))],
                "--target",
                "tensorrt",
                "--target",
                "cpu",
                "--allow-drop",
            ],
        )
    times["new camera + adapt"], summary["new_camera"] = _new_camera(console, workdir, data, models)
    times["camera + field"] = _step(
        console,
        workdir,
        "simulate camera folder (40 FITS frames)",
        [
            "simulate",
            "allsky",
            "--n",
            "40",
            "--size",
            "64",
            "--files",
            "fits",
            "--out",
            str(data / "camera"),
            "--seed",
            "5",
        ],
    )
    _step(
        console,
        workdir,
        "simulate telescope field (21 objects, 12 epochs)",
        [
            "simulate",
            "field",
            "--n",
            "3",
            "--size",
            "224",
            "--epochs",
            "12",
            "--out",
            str(data / "field"),
            "--seed",
            "3",
        ],
    )
    prefer = "mosquitto" if MosquittoBroker.available() else "amqtt"
    broker = start_broker(prefer)
    protocol = "5" if broker.kind == "mosquitto" else "3.1.1"
    console.print(f"[green]✓[/] broker: {broker.kind} on {broker.host}:{broker.port} (MQTT {protocol})")
    from skyedge.edge.tools.watch import Board

    board = Board()
    collected = []
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="skyedge-demo-watch", protocol=mqtt.MQTTv311)

    def on_message(c, userdata, msg):
        payload = json.loads(msg.payload)
        board.update(msg.topic, payload)
        collected.append(msg.topic)

    client.on_connect = lambda c, *a: c.subscribe("skyedge/#", qos=1)
    client.on_message = on_message
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        deployments = {
            "allsky": {
                "device": "allsky-01",
                "model": models / "allsky",
                "precision": "int8",
                "camera": "allsky",
                "source": {"kind": "directory", "path": str(data / "camera" / "frames"), "settle_s": 0},
            },
            "telescope": {
                "device": "scope-01",
                "model": models / "transients",
                "precision": "fp32",
                "camera": "field-a",
                "source": {
                    "kind": "fits-sequence",
                    "path": str(data / "field" / "frames"),
                    "catalog": str(data / "field" / "catalog.csv"),
                },
            },
        }
        for name, d in deployments.items():
            cfg = {
                "site": "demo-observatory",
                "device": d["device"],
                "model": {"package": str(d["model"]), "precision": d["precision"]},
                "backend": {"kind": "auto", "batch_size": 8},
                "pipelines": [{"camera": d["camera"], "source": d["source"]}],
                "reporters": {
                    "mqtt": {
                        "host": broker.host,
                        "port": broker.port,
                        "protocol": protocol,
                        "queue_path": str(workdir / f"{name}.queue"),
                    },
                    "jsonl": {"path": str(workdir / f"{name}.jsonl")},
                },
            }
            path = workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            times[f"run {name}"] = _step(
                console,
                workdir,
                f"skyedge run --once: {name} ({d['precision']})",
                ["run", "--config", str(path), "--once"],
            )
        time.sleep(1.0)
        Console(width=max(console.width, 140)).print(board.table())
        field = {
            r.split(",")[0]: r.split(",")[3] for r in (data / "field" / "catalog.csv").read_text().splitlines()[1:]
        }
        last = {}
        for m in read_jsonl(workdir / "telescope.jsonl"):
            if m["topic"].endswith("/classification"):
                last[m["payload"]["object_id"]] = m["payload"]["class"]
        correct = sum(last.get(k) == v for k, v in field.items())
        console.print(f"telescope field: {correct}/{len(field)} objects classified correctly at their last epoch")
        summary["telescope_field"] = {"objects": len(field), "correct_at_last_epoch": correct}
    finally:
        client.disconnect()
        client.loop_stop()
        broker.stop()
    times["bench"] = _step(
        console,
        workdir,
        "skyedge bench: backend-only vs end-to-end, FP32 and INT8",
        [
            "bench",
            "--model",
            str(models / "allsky"),
            "--backend",
            "onnxruntime",
            "--precision",
            "fp32,int8",
            "--batch",
            "1,8",
            "--trials",
            "3",
            "--seconds",
            "0.5",
            "--pipeline",
            str(data / "camera" / "frames"),
            "--copies",
            "3",
            "--out",
            str(workdir / "bench"),
        ],
    )
    console.print(sorted((workdir / "logs").glob("skyedge-bench*.log"))[0].read_text().split("wrote")[0])
    total = time.perf_counter() - started
    bench = (
        json.loads((workdir / "bench" / "bench.json").read_text())
        if (workdir / "bench" / "bench.json").exists()
        else {}
    )
    summary.update(seconds=round(total, 1), steps={k: round(v, 1) for k, v in times.items()}, messages=len(collected))
    summary["bench"] = bench
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.rule(f"demo finished in {total:.0f} s; everything is under {workdir} (figures: summary.json)")
    if not keep:
        shutil.rmtree(workdir / "data", ignore_errors=True)
    return summary
