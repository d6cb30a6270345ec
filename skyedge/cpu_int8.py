"""Whether this CPU runs the U8S8 INT8 form (``model.int8-cpu.onnx``) as it was measured.

ONNX Runtime's x86 U8S8 kernels multiply uint8 activations by int8 weights in pairs summed into 16 bits
(``vpmaddubsw``) where the CPU has no VNNI (AVX2 only). Full-range weights can saturate those sums; 7-bit weights
(what ``skyedge calibrate --target cpu`` writes unless told ``--full-range``) cannot, and run as fast. The
calibration gate on simulated frames may not show it: on the real development camera a package whose U8S8 file
agreed with FP32 on 100% of 140 simulated held-out frames lost 2.3 points on 217 real night frames on an AVX2-only
CPU (docs/precision.md). CPUs with VNNI (``avx512_vnni``, ``avx_vnni``) accumulate in 32 bits, and so do ARM CPUs:
nothing to warn about there. Files calibrated before 7-bit weights became the default, or with ``--full-range``,
are the ones at risk.
"""

from __future__ import annotations

import platform
from pathlib import Path

from skyedge.precisions import report_section

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
SEVEN_BIT = "(7-bit range)"  # how skyedge.calibration.quantize records reduce_range in report.json's weights


def vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool | None:
    """Whether this x86 CPU's flags include VNNI; None on other CPUs and whenever the flags cannot be read.
    ``cpuinfo``/``machine``: /proc/cpuinfo's text and the machine name, read from this one when not given."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i686", "i386"):
        return None
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return any(flag in flags for flag in VNNI_FLAGS)


def x86_without_vnni(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """True on an x86 CPU whose flags lack VNNI; False elsewhere and whenever the flags cannot be read."""
    return vnni(cpuinfo, machine) is False


def _record(package, file_name: str) -> dict | None:
    """report.json's quantization record of ``file_name``, or None."""
    records = report_section(package, "quantization")
    records = records if isinstance(records, list) else []
    return next((r for r in records if isinstance(r, dict) and r.get("file") == file_name), None)


def recorded_weights(package, file_name: str) -> str | None:
    """The weights report.json records for the INT8 file ``file_name`` (e.g. ``int8 symmetric per-channel (7-bit
    range)``), or None when nothing is recorded about it."""
    record = _record(package, file_name)
    return str(record["weights"]) if record is not None and "weights" in record else None


def full_range(package, file_name: str) -> bool:
    """Whether the package's report.json records ``file_name`` as the U8S8 form (uint8 activations) with
    full-range (8-bit) weights; False for 7-bit weights, another form, or nothing recorded about the file."""
    record = _record(package, file_name)
    if record is None or "uint8" not in str(record.get("activations", "")):
        return False  # TensorRT's symmetric form: int32 accumulation on the GPU
    return SEVEN_BIT not in str(record.get("weights", ""))


def saturation_note(package, file_name: str, cpuinfo: str | None = None, machine: str | None = None) -> str:
    """A warning for running the full-range U8S8 file ``file_name`` of ``package`` on this CPU, or ''."""
    if not full_range(package, file_name) or not x86_without_vnni(cpuinfo, machine):
        return ""
    return (
        f"{Path(package) / file_name} has full-range 8-bit weights and this x86 CPU has no VNNI, where ONNX Runtime's "
        "U8S8 kernels can saturate (2.3 accuracy points lost on real night frames that the calibration gate on "
        "simulated ones did not show; docs/precision.md): calibrate it again without --full-range (`skyedge calibrate "
        "PACKAGE --target cpu` writes 7-bit weights, which cannot saturate, and run as fast), or run precision fp32"
    )
