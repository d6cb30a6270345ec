"""Device temperature and GPU load for the metrics message, where the platform exposes them (Jetson sysfs).

Also the process's resident memory from ``/proc``. Read from the kernel's thermal zones (``/sys/class/thermal/thermal_zone*/``:
``type`` names such as ``cpu-thermal``/``CPU-therm`` and ``gpu-thermal``/``GPU-therm``
on Jetsons) and the Jetson GPU load file; absent files mean "not readable
here", never an error. jetson-stats is not required.
"""

from __future__ import annotations

from pathlib import Path

THERMAL = Path("/sys/class/thermal")
GPU_LOAD_FILES = (Path("/sys/devices/platform/gpu.0/load"), Path("/sys/devices/gpu.0/load"))


def temperatures(root: Path = THERMAL) -> dict[str, float]:
    """Zone name -> degrees C, with 'cpu' and 'gpu' keys for the first CPU and GPU zones."""
    out: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            name = (zone / "type").read_text().strip().lower()
            value = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        key = "cpu" if "cpu" in name else "gpu" if "gpu" in name else name.replace("-", "_")
        out.setdefault(key, round(value, 1))
    return out


def gpu_load(files=GPU_LOAD_FILES) -> float | None:
    """Jetson GPU load as a fraction (the sysfs value is per mille)."""
    for f in files:
        try:
            return round(int(Path(f).read_text().strip()) / 1000.0, 3)
        except (OSError, ValueError):
            continue
    return None


def host_rss_mb() -> float | None:
    """This process's resident set size in MiB (``/proc/self/status``), None where unreadable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
