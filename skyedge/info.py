"""``skyedge info``: what this machine has, for bug reports and for choosing a backend.

Every probe is optional and time-bounded: a missing library is reported as
missing, never raised, so the command works on a bare Jetson and in CI alike.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from skyedge import __version__
from skyedge.commands import add_command
from skyedge.cpu_int8 import vnni

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")

# L4T release -> JetPack release, for the releases a skyedge device may run.
L4T_TO_JETPACK = {
    "36.4": "6.1/6.2",
    "36.3": "6.0",
    "36.2": "6.0 DP",
    "35.6": "5.1.4",
    "35.5": "5.1.3",
    "35.4": "5.1.2",
    "35.3": "5.1.1",
}


_INFO_HELP = """\
info: versions, execution providers, GPUs and Jetson release of this machine

Report the software and hardware skyedge sees on this machine.

example:
  skyedge info
  skyedge info --json > device-info.json
"""


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_version(module: str) -> str | None:
    """Version of an importable module, or None; TensorRT from JetPack has no pip metadata."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken install must not break `info`
        return None
    return getattr(mod, "__version__", None) or getattr(mod, "VERSION", None) or "unknown"


def onnxruntime_info() -> dict:
    """ONNX Runtime version and the execution providers this build offers."""
    try:
        import onnxruntime as ort
    except Exception:  # noqa: BLE001
        return {"version": None, "providers": []}
    return {"version": ort.__version__, "providers": list(ort.get_available_providers())}


def cuda_devices() -> list[dict]:
    """GPUs as nvidia-smi (desktop/server) reports them; empty on Jetson and CPU-only machines."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            devices.append({"name": parts[0], "compute_capability": parts[1], "memory": parts[2], "driver": parts[3]})
    return devices


def parse_tegra_release(text: str) -> dict:
    """Parse /etc/nv_tegra_release ('# R36 (release), REVISION: 3.0, ...') into L4T and JetPack."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return {"l4t": None, "jetpack": None}
    major, revision = match.group(1), match.group(2)
    l4t = f"{major}.{revision}"
    key = ".".join(l4t.split(".")[:2])
    return {"l4t": l4t, "jetpack": L4T_TO_JETPACK.get(key)}


def jetson_info() -> dict | None:
    """Jetson model, L4T and JetPack release, power mode; None off a Jetson."""
    if not TEGRA_RELEASE.exists():
        return None
    info = parse_tegra_release(TEGRA_RELEASE.read_text(errors="replace"))
    try:
        info["model"] = DEVICE_TREE_MODEL.read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        info["model"] = None
    info["power_mode"] = None
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
            match = re.search(r"NV Power Mode:\s*(\S+)", out)
            info["power_mode"] = match.group(1) if match else out.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, falling back to platform."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect(probe_torch: bool = True) -> dict:
    """Everything `skyedge info` reports, as a JSON-ready dict."""
    torch_version = _dist_version("torch")
    torch_cuda = None
    if probe_torch and torch_version:
        try:
            import torch

            torch_cuda = {"available": bool(torch.cuda.is_available()), "cuda": torch.version.cuda}
        except Exception:  # noqa: BLE001
            torch_cuda = None
    return {
        "skyedge": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(), "cores": os.cpu_count(), "vnni": vnni()},
        "numpy": _dist_version("numpy"),
        "torch": torch_version,
        "torch_cuda": torch_cuda,
        "onnx": _dist_version("onnx"),
        "onnxruntime": onnxruntime_info(),
        "tensorrt": _module_version("tensorrt"),
        "pycuda": _dist_version("pycuda"),
        "opencv": _dist_version("opencv-python-headless") or _dist_version("opencv-python") or _module_version("cv2"),
        "paho_mqtt": _dist_version("paho-mqtt"),
        "astropy": _dist_version("astropy"),
        "cuda_devices": cuda_devices(),
        "jetson": jetson_info(),
    }


def render(info: dict) -> None:
    """Print the report as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"skyedge {info['skyedge']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")

    def missing(value):
        return "[dim]not installed[/dim]" if value is None else str(value)

    table.add_row("python", f"{info['python']}  ({info['platform']})")
    int8 = {True: ", VNNI", False: ", no VNNI (INT8 CPU form: keep its 7-bit weights; docs/precision.md)", None: ""}
    table.add_row("cpu", f"{info['cpu']['model']}, {info['cpu']['cores']} cores{int8[info['cpu'].get('vnni')]}")
    for key in ("numpy", "torch", "onnx", "tensorrt", "pycuda", "opencv", "paho_mqtt", "astropy"):
        table.add_row(key, missing(info[key]))
    if info["torch_cuda"]:
        table.add_row("torch CUDA", f"available={info['torch_cuda']['available']} cuda={info['torch_cuda']['cuda']}")
    ort = info["onnxruntime"]
    table.add_row(
        "onnxruntime",
        missing(ort["version"]) + (f"  providers: {', '.join(ort['providers'])}" if ort["providers"] else ""),
    )
    if info["cuda_devices"]:
        for i, dev in enumerate(info["cuda_devices"]):
            table.add_row(
                f"GPU {i}", f"{dev['name']} (sm {dev['compute_capability']}, {dev['memory']}, driver {dev['driver']})"
            )
    else:
        table.add_row("GPUs", "[dim]none found (nvidia-smi)[/dim]")
    jetson = info["jetson"]
    if jetson:
        table.add_row("Jetson", f"{jetson.get('model')}  L4T {jetson.get('l4t')}  JetPack {jetson.get('jetpack')}")
        table.add_row("power mode", missing(jetson.get("power_mode")))
    Console().print(table)


def main(args) -> int:
    """Entry for the `info` subcommand."""
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        render(info)
    return 0


def register(subparsers) -> None:
    """Add `skyedge info` to the CLI."""
    parser = add_command(subparsers, _INFO_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=main)
