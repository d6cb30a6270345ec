"""Deployment files and offline references for the edge tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def write_config(path: Path, package: Path, source: dict, reporters: dict, **extra) -> Path:
    """A deployment YAML for one pipeline, under a site name of its own (retained messages on a shared
    broker never leak between tests); :func:`topic_root` gives its topic root. ``script``: answers for the
    scripted backend instead of running the model."""
    import uuid

    script = extra.pop("script", None)
    backend = {"kind": "onnxruntime", "batch_size": extra.pop("batch_size", 8), "max_wait_ms": 20}
    if script is not None:
        backend.update(kind="scripted", script=list(script))
    cfg = {
        "site": extra.pop("site", f"test-{uuid.uuid4().hex[:8]}"),
        "device": "dev-1",
        "model": {"package": str(package), "precision": extra.pop("precision", "fp32")},
        "backend": backend,
        "pipelines": [{"camera": extra.pop("camera", "allsky"), "source": source, **extra.pop("pipeline", {})}],
        "reporters": reporters,
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def deliver(src: Path, dst: Path) -> Path:
    """Put a frame into a watched folder the way camera software should: written under a hidden name,
    then renamed, so a source with ``settle_s: 0`` never reads it half-written."""
    import shutil

    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copy(src, tmp)
    tmp.replace(dst)
    return dst


def topic_root(config: Path) -> str:
    """``skyedge/<site>/<device>`` of a deployment file."""
    data = yaml.safe_load(config.read_text())
    return f"skyedge/{data['site']}/{data['device']}"


def offline_frame_probabilities(package: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """What ONNX Runtime says for each file, preprocessed by the core exactly once, outside the runtime."""
    import onnxruntime as ort

    from skyedge.imageio import read_frame
    from skyedge.model_card import read_card
    from skyedge.preprocess import prepare_frame

    card = read_card(package)
    sess = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    out = {}
    for f in files:
        x = prepare_frame(read_frame(f)[0], card.preprocess)[None]
        out[f.name] = sess.run(["probabilities"], {"image": x})[0][0]
    return out


def package_with_unknown_threshold(package: Path, out: Path, threshold: float) -> Path:
    """A copy of ``package`` whose card puts the open-set threshold at ``threshold`` (model files unchanged)."""
    import shutil

    from skyedge.model_card import read_card, write_card

    shutil.copytree(package, out)
    card = read_card(out)
    write_card(
        card.model_copy(update={"metric_head": card.metric_head.model_copy(update={"unknown_threshold": threshold})}),
        out,
    )
    return out


def messages(log: Path, kind: str) -> list[dict]:
    """Payloads of one kind from a JSON-lines audit log (empty while the log does not exist)."""
    from skyedge.edge.reporters.jsonl import read_jsonl

    if not log.exists():
        return []
    return [m["payload"] for m in read_jsonl(log) if m["topic"].endswith("/" + kind)]


def wait_for(predicate, timeout: float = 20.0, every: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


class RunningDaemon:
    """``skyedge run`` in a background thread of this process (a context manager); stops cleanly on exit."""

    def __init__(self, config: Path, backend=None):
        import threading

        from skyedge.edge.config import load_edge_config
        from skyedge.edge.runtime.lifecycle import Runtime

        self.stop = threading.Event()
        self.runtime = Runtime(load_edge_config(config, check_paths=True), stop_event=self.stop, backend=backend)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.stats = self.runtime.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test
            self.error = exc

    def alive(self) -> bool:
        return self.thread.is_alive()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error


def catalogue_field_config(path: Path, package: Path, field: Path, log: Path, **source) -> Path:
    """A deployment following a simulated field's catalogue objects (no new ones), every object every epoch."""
    spec = {"kind": "fits-sequence", "path": str(field / "frames"), "catalog": str(field / "catalog.csv")}
    return write_config(
        path,
        package,
        {**spec, "detect_new": False, **source},
        {"jsonl": {"path": str(log)}},
        camera="field-a",
        batch_size=16,
        pipeline={"field_messages": {"policy": "every_epoch"}},
    )


def assert_last_epochs_match_offline(package: Path, field: Path, frames: list[Path], last: dict[str, dict]) -> None:
    """Each catalogue object's answer at its last epoch (``last``: object id -> message) equals the full graph run
    offline by ONNX Runtime on the same stamps, cut and scaled independently of the edge. The edge cuts its stamps
    from frames whose single-pixel spikes are repaired and whose background is a map, not a level: answers agree
    to 2e-3 (a state or stamp mix-up moves them by tenths)."""
    import onnxruntime as ort
    from astropy.io import fits

    from skyedge.dataset_inputs import HEADER_KEYS, RAW_CONDITIONS
    from skyedge.edge.sources.fits_sequence import read_catalog
    from skyedge.model_card import read_card
    from skyedge.preprocess import cut_stamp, prepare_sequence

    card = read_card(package)
    sess = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    images = [fits.getdata(p).astype(np.float32) for p in frames]
    raw = {k: np.array([float(fits.getheader(p)[HEADER_KEYS[k]]) for p in frames]) for k in RAW_CONDITIONS}
    for entry in read_catalog(field / "catalog.csv"):
        stamps = np.stack([cut_stamp(im, entry.x, entry.y, card.sequence.stamp_size) for im in images])
        x, c = prepare_sequence(stamps, raw, card.sequence)
        p = sess.run(["probabilities"], {"stamps": x[None], "conditions": c[None]})[0][0, -1]
        got = np.array([last[entry.id]["probabilities"][k] for k in card.classes])
        np.testing.assert_allclose(got, p, atol=2e-3, err_msg=entry.id)


def classify_folder(tmp_path: Path, package: Path, incoming: Path, log: Path, **extra) -> dict[str, dict]:
    """`skyedge run --once` over a folder with a fresh deployment; the classification message per frame name."""
    from skyedge.cli import main

    cfg = write_config(
        tmp_path / f"{log.stem}.yaml",
        package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
        **extra,
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    return {m["frame_id"]: m for m in messages(log, "classification")}


def small_field(root: Path, seed: int, size: int, per_class: int, epochs: int = 6) -> Path:
    """A small simulated field with a catalogue (seconds), at ``root``."""
    from skyedge.training.simulate.field import FieldConfig, simulate_field
    from skyedge.training.simulate.obslog import CadenceConfig
    from skyedge.training.simulate.transients import TransientConfig

    transients = TransientConfig(cadence=CadenceConfig(epochs=epochs))
    cfg = FieldConfig(size=size, objects_per_class=per_class, transients=transients)
    return simulate_field(root, seed=seed, cfg=cfg, progress=False)
