"""The `skyedge` command: version, info, help, and errors shown without tracebacks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from skyedge import __version__, info
from skyedge.cli import COMMAND_MODULES, build_parser, main
from skyedge.logs import JsonLinesFormatter


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skyedge", *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"skyedge {__version__}"


def test_console_script_is_installed():
    result = subprocess.run(["skyedge", "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"skyedge {__version__}"


def test_info_json_reports_the_stack():
    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skyedge"] == __version__
    assert report["python"] == sys.version.split()[0]
    assert report["numpy"]
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    for key in ("torch", "tensorrt", "pycuda", "opencv", "cuda_devices", "jetson"):
        assert key in report
    assert report["cpu"]["cores"] >= 1
    from skyedge.cpu_int8 import vnni

    assert report["cpu"]["vnni"] is vnni()  # True/False on x86, None elsewhere


def test_info_table_renders():
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stdout and "CPUExecutionProvider" in result.stdout


@pytest.mark.parametrize(
    "text, l4t, jetpack",
    [
        (
            "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May  6 17:34:21 UTC 2024",
            "36.3.0",
            "6.0",
        ),
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "35.4.1", "5.1.2"),
        ("garbage", None, None),
    ],
)
def test_tegra_release_parsing(text, l4t, jetpack):
    parsed = info.parse_tegra_release(text)
    assert parsed == {"l4t": l4t, "jetpack": jetpack}


def test_jetson_detection_from_files(orin_nano, tmp_path, monkeypatch):
    jetson = info.jetson_info()
    assert jetson["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert jetson["l4t"] == "36.4.0" and jetson["jetpack"] == "6.1/6.2"
    monkeypatch.setattr(info, "TEGRA_RELEASE", tmp_path / "absent")
    assert info.jetson_info() is None


def test_every_command_has_help_with_an_example():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) >= {"info"}
    assert len(subparsers.choices) >= len(COMMAND_MODULES)
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "example" in text and f"skyedge {name}" in text, name


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_json_log_lines_carry_extra_fields():
    record = logging.LogRecord("skyedge.test", logging.WARNING, __file__, 1, "corrupt frame %s", ("a.fits",), None)
    record.camera = "allsky"
    entry = json.loads(JsonLinesFormatter().format(record))
    assert entry["message"] == "corrupt frame a.fits"
    assert entry["camera"] == "allsky" and entry["level"] == "WARNING"
    assert entry["ts"].endswith("Z")


def test_the_demo_finds_its_recipes_in_the_checkout():
    """`skyedge demo` (README's first command) reads its recipes from the checkout's configs/demo/: they must be
    there and load as training configs (the demo itself takes minutes, run by hand; a wrong path broke it once)."""
    from skyedge.demo.run import RECIPES, _recipe
    from skyedge.training.config import load_train_config

    for _, name in RECIPES:
        assert _recipe(name).is_file(), _recipe(name)
        load_train_config(_recipe(name))
