"""The import direction (docs/architecture.md "Layout"): core <- stages, and inside the edge base <- rooms <- runtime
<- tools. Every import counts, lazy ones inside functions included; a planted wrong import must fail the check."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("training", "export", "calibration", "edge")
APPLICATIONS = ("demo",)  # apply every stage; nothing imports them
# The one public cross-stage entry point: export rebuilds a trained torch module from a run directory.
PUBLIC_ENTRY_POINTS = {("export", "skyedge.training.checkpoint")}

# Inside the edge. base: the vocabulary and I/O every room shares; rooms: one job each, blind to one another;
# runtime: assembles rooms into threads; tools and the CLI: may use anything, and nothing uses them.
EDGE_BASE = {"__init__", "config", "config_types", "config_observatory", "config_checks", "config_sources", "startup", "package", "records", "messages", "protocols", "sources", "backends", "reporters", "cloud_map", "preparation"}
EDGE_ROOMS = {"allsky", "field", "observatory", "labelling"}
EDGE_RUNTIME = {"runtime"}
EDGE_TOP = {"tools", "cli", "cli_labelling"}
MAX_MODULE_LINES = 450


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def _part(module: str, depth: int) -> str | None:
    parts = module.split(".")
    return parts[depth] if len(parts) > depth else None


def edge_room(module: str) -> str | None:
    """The room of an ``skyedge.edge.*`` module (``__init__`` for the package itself), else None."""
    if module == "skyedge.edge":
        return "__init__"
    return _part(module, 2) if module.startswith("skyedge.edge.") else None


def _edge_allowed(src: str, dst: str) -> bool:
    if src == dst or src in EDGE_TOP:
        return True
    if dst in EDGE_TOP:
        return False  # nothing imports tools/ or the CLI
    if src in EDGE_BASE:
        return dst in EDGE_BASE
    if src in EDGE_ROOMS:
        return dst in EDGE_BASE
    if src in EDGE_RUNTIME:
        return dst in EDGE_BASE | EDGE_ROOMS
    raise AssertionError(f"skyedge/edge/{src}: a module or folder the layering does not place; add it to a level")


def violations(package: Path) -> list[str]:
    """Every import that points the wrong way in the ``skyedge`` package at ``package``."""
    found: dict[tuple, str] = {}  # one finding per import statement
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        top = rel.parts[0] if len(rel.parts) > 1 else None  # stage or application folder, None for core modules
        for line, module in imported_modules(path):
            if not module.startswith("skyedge."):
                if top == "edge" and module.split(".")[0] == "torch":
                    found.setdefault((rel, line), f"skyedge/{rel}:{line} imports torch (the edge runs on a Jetson without it)")
                continue
            target = _part(module, 1)
            where = f"skyedge/{rel}:{line} imports {module}"
            if top is None:  # the core
                if target in STAGES + APPLICATIONS and rel.name != "cli.py":
                    found.setdefault((rel, line), f"{where}: the core imports no stage (only the CLI entry names them)")
            elif top in STAGES:
                if target in APPLICATIONS:
                    found.setdefault((rel, line), f"{where}: nothing imports an application")
                elif target in STAGES and target != top and not any(
                    (top, m) in PUBLIC_ENTRY_POINTS for m in (module, module.rsplit(".", 1)[0])
                ):
                    found.setdefault((rel, line), f"{where}: stages talk through artifacts on disk, not imports")
                if top == "edge":
                    src, dst = (rel.parts[1] if len(rel.parts) > 2 else rel.stem), edge_room(module)
                    if dst is not None and not _edge_allowed(src, dst):
                        found.setdefault((rel, line), f"{where}: edge/{src} may not import edge/{dst}")
    return list(found.values())


def test_imports_point_one_way():
    assert violations(REPO / "skyedge") == []


def test_a_planted_wrong_import_is_caught(tmp_path):
    """The check above can fail: a copy of the package with one wrong import in each direction is refused."""
    copy = tmp_path / "skyedge"
    shutil.copytree(REPO / "skyedge", copy, ignore=shutil.ignore_patterns("__pycache__"))
    planted = {
        "edge/observatory/safety.py": "from skyedge.edge.tools.bench import run_bench\n",
        "edge/allsky/site.py": "from skyedge.edge.runtime.publisher import Publisher\n",
        "edge/records.py": "from skyedge.edge.field.tracker import FieldTracker\n",
        "preprocess.py": "from skyedge.edge.config import load_edge_config\n",
        "calibration/quantize.py": "from skyedge.training.train import run_training\n",
        "edge/field/difference.py": "import torch\n",
    }
    for rel, line in planted.items():
        path = copy / rel
        path.write_text(path.read_text() + "\n" + line)
    found = violations(copy)
    for rel in planted:
        assert any(v.startswith(f"skyedge/{rel}:") for v in found), (rel, found)
    assert len(found) == len(planted), found


def test_no_module_is_a_hall():
    """One job per module: none grows past MAX_MODULE_LINES lines."""
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted((REPO / "skyedge").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
