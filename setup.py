"""One distribution, ``skyedge``: the core package plus the four stage folders.

The stage folders live at the repository root (docs/architecture.md "Layout") and are
installed inside the ``skyedge`` namespace through ``package_dir`` so nothing
generic such as ``export`` or ``training`` lands in site-packages.
"""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "skyedge" / "__init__.py").read_text()).group(1)

STAGES = ("training", "export", "calibration", "edge")


def stage_packages():
    """Every package under each stage folder, named inside the skyedge namespace."""
    packages, package_dir = [], {"skyedge": "skyedge"}
    for stage in STAGES:
        root = HERE / stage
        for init in sorted(root.rglob("__init__.py")):
            rel = init.parent.relative_to(HERE)
            name = "skyedge." + ".".join(rel.parts)
            packages.append(name)
            package_dir[name] = str(rel)
    return packages, package_dir


def core_packages():
    """Every package and data folder under skyedge/ (schemas/ holds only JSON, still a package to setuptools)."""
    root = HERE / "skyedge"
    dirs = [root] + [d for d in root.rglob("*") if d.is_dir() and d.name != "__pycache__"]
    return sorted(".".join(d.relative_to(HERE).parts) for d in dirs)


stage_pkgs, stage_dirs = stage_packages()

# Kept small: the core must install on a Jetson (Python 3.10, aarch64 wheels).
CORE = [
    "pyyaml>=6",
    "pydantic>=2.5,<3",
    "jsonschema>=4.18",
    "rich>=13",
]

EXTRAS = {
    "train": [
        "torch>=2.1",
        "torchvision>=0.16",
        "onnx>=1.15",
        "onnxscript>=0.1",
        "onnxruntime>=1.17",
        "pytorch-metric-learning>=2.3",
        "matplotlib>=3.7",
        "tqdm>=4.66",
        "numpy>=1.23",
        "opencv-python-headless>=4.8",
        "astropy>=5.3",
        "scipy>=1.10",
        "onnxconverter-common>=1.14",
        "onnxslim>=0.1.30",
    ],
    # Never torch: this is what goes on the Jetson.
    "edge": [
        "numpy>=1.23",
        "opencv-python-headless>=4.8",
        "scipy>=1.8",  # KD-tree association of detections with a field's objects
        "paho-mqtt>=2.0,<3",
        "pyyaml>=6",
        "onnxruntime>=1.17",
        "onnx>=1.15",  # skyedge adapt rewrites the head of a package's graphs
        "astropy>=5.3",
        "pillow>=9",  # EXIF capture times and exposures (header only)
    ],
    # TensorRT comes from JetPack (apt), never from pip.
    "jetson": ["pycuda>=2022.2"],
    "dev": [
        "pytest>=7.4",
        "ruff>=0.4",
        "jsonschema>=4.18",
        "amqtt>=0.11",
        "alpyca>=3.0",
        "hypothesis>=6.90",
        "selenium>=4.10",  # the labelling page's test drives Debian's chromium through chromium-driver
    ],
}
EXTRAS["all"] = sorted({req for name, reqs in EXTRAS.items() if name != "jetson" for req in reqs})

setup(
    name="skyedge",
    version=VERSION,
    description="All-sky and transient classifiers from workstation training to TensorRT on a Jetson, reporting over MQTT",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=core_packages() + stage_pkgs,
    package_dir={**stage_dirs, "skyedge": "skyedge"},
    package_data={
        "skyedge.schemas": ["*.json"],
        "skyedge.schemas.mqtt": ["*.json"],
        "skyedge.export": ["data/*.json"],
    },
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["skyedge = skyedge.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Astronomy",
    ],
)
