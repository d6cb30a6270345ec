"""Test rig: hardware markers that skip with a reason, real MQTT brokers on loopback, and the models tests use.

Two tiers of models. Stub packages (``stub_frame_package``, ``stub_sequence_package``: written in
milliseconds, nothing learned, the same answers on every machine) serve every test of plumbing. Trained
packages (``tiny_*_run``, ``frame_package``, ``sequence_package``: real tiny trainings) serve the tests of
training, export, calibration and model quality; every test that asks for one is marked ``slow`` here, so
``-m "not slow"`` trains nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid

import pytest

from skyedge.brokers import AmqttBroker, MosquittoBroker, start_broker

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not importable here (it comes from JetPack or NVIDIA's wheels, not from this CI)"
    return _gpu_reason()


def _gpu_reason() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
            if "GPU" in out:
                return None
        except (OSError, subprocess.SubprocessError):
            pass
    if os.path.exists("/etc/nv_tegra_release"):
        return None  # Jetson: integrated GPU, no nvidia-smi listing
    return "no NVIDIA GPU visible (nvidia-smi lists none and this is not a Jetson)"


def _mosquitto_reason() -> str | None:
    if MosquittoBroker.available():
        return None
    return "needs the mosquitto binary: amqtt, the fallback broker, speaks MQTT 3.1.1 only (apt-get install mosquitto)"


TRAINED = {"tiny_frame_run", "tiny_sequence_run", "frame_package", "sequence_package"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    reasons = {"tensorrt": _tensorrt_reason(), "gpu": _gpu_reason(), "mqtt5": _mosquitto_reason()}
    if reasons["mqtt5"] and os.environ.get("SKYEDGE_REQUIRE_MOSQUITTO") == "1":
        raise pytest.UsageError("SKYEDGE_REQUIRE_MOSQUITTO=1 but mosquitto is not installed")
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)  # it trains a model (seconds to minutes): not in the fast tier
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_frame_run(tmp_path_factory):
    """A real tiny all-sky training run (seconds), shared by every test that needs a trained frame model."""
    from tiny_models import recipe

    from skyedge.training.train import run_training

    return run_training(recipe(tmp_path_factory.mktemp("frame"), "frame"))


@pytest.fixture(scope="session")
def tiny_sequence_run(tmp_path_factory):
    """A real tiny transients training run, shared likewise."""
    from tiny_models import recipe

    from skyedge.training.train import run_training

    return run_training(recipe(tmp_path_factory.mktemp("sequence"), "sequence"))


def _package(run, tmp_path_factory, name):
    from skyedge.calibration.calibrate import calibrate_package
    from skyedge.export.package import export_package

    out = tmp_path_factory.mktemp(name) / "pkg"
    export_package(run, out)
    data = run.parent / "train"
    calibrate_package(out, data, ["tensorrt", "cpu"], eval_data=run.parent / "test", size=64, allow_drop=True)
    return out


@pytest.fixture(scope="session")
def frame_package(tiny_frame_run, tmp_path_factory):
    """The tiny frame run exported and calibrated for both INT8 targets (a complete model package)."""
    return _package(tiny_frame_run, tmp_path_factory, "frame-pkg")


@pytest.fixture(scope="session")
def sequence_package(tiny_sequence_run, tmp_path_factory):
    """The tiny sequence run, likewise."""
    return _package(tiny_sequence_run, tmp_path_factory, "sequence-pkg")


@pytest.fixture(scope="session")
def stub_frame_package(tmp_path_factory):
    """A frame package without training (tests/stub_packages.py): 32 px mono, the six sky classes."""
    from stub_packages import frame_package

    return frame_package(tmp_path_factory.mktemp("stub-frame") / "pkg")


@pytest.fixture(scope="session")
def stub_sequence_package(tmp_path_factory):
    """A sequence package with its step graph, without training."""
    from stub_packages import sequence_package

    return sequence_package(tmp_path_factory.mktemp("stub-sequence") / "pkg")


@pytest.fixture(scope="session")
def camera_frames(tmp_path_factory):
    """60 simulated 64 px all-sky frames as FITS, as a camera program would drop them."""
    from skyedge.training.simulate.allsky import AllskyConfig, simulate_allsky

    out = tmp_path_factory.mktemp("camera")
    simulate_allsky(60, out, seed=5, cfg=AllskyConfig(size=64), files="fits", workers=1, progress=False)
    return sorted((out / "frames").glob("*.fits"))


@pytest.fixture(scope="session")
def mqtt_broker():
    """One real broker for the session: mosquitto when installed, else embedded amqtt."""
    broker = start_broker("mosquitto")
    yield broker
    broker.stop()


@pytest.fixture(params=["mosquitto", "amqtt"])
def any_broker(request):
    """Each broker implementation in turn, started fresh (mosquitto skipped with a reason if absent)."""
    if request.param == "mosquitto":
        reason = _mosquitto_reason()
        if reason:
            pytest.skip(reason)
        broker = MosquittoBroker()
    else:
        broker = AmqttBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def topic_root():
    """A topic root unique to the test, so tests sharing a broker never see each other's messages."""
    return f"skyedge/test-{uuid.uuid4().hex[:8]}/dev-1"


@pytest.fixture
def orin_nano(tmp_path, monkeypatch):
    """This machine read by ``skyedge.info`` as a Jetson Orin Nano on L4T 36.4 (its release and board files, written
    here); returns the release file's path, which a test may point elsewhere to leave the Jetson."""
    from skyedge import info

    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic, EABI: aarch64\n")
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\0")
    monkeypatch.setattr(info, "TEGRA_RELEASE", release)
    monkeypatch.setattr(info, "DEVICE_TREE_MODEL", model)
    return release

