"""docs/ARCHITECTURE.md is the map of the code: every module it lists exists, every module of the
package is listed, and the imports between packages are only the ones its table allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "seqarena"
MAP = ROOT / "docs" / "ARCHITECTURE.md"


def layer_of(module: str) -> str:
    """The layer a dotted module belongs to: `seqarena.cells.kernels.lem.triton` -> `cells.kernels`,
    `seqarena.cli` -> `cli`, the package itself (`seqarena`, `seqarena.__init__`) -> `__init__`."""
    parts = module.split(".")[1:]
    if parts[:2] == ["cells", "kernels"]:
        return "cells.kernels"
    return parts[0] if parts else "__init__"


def package_modules() -> dict[str, Path]:
    """Every module of the package, dotted (`seqarena.platform.jobs`), migrations excluded."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if "migrations" in rel.parts:
            continue
        modules[".".join(rel.parts)] = path
    return modules


def imported_layers(path: Path) -> set[str]:
    """The seqarena layers a module imports (absolute imports; relative ones stay in the layer)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "seqarena" and node.level == 0:
            names = [f"seqarena.{alias.name}" for alias in node.names]  # from seqarena import cells
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {layer_of(name) for name in names if name == "seqarena" or name.startswith("seqarena.")}
    return found


def allowed_imports() -> dict[str, set[str]]:
    """The table under "Which layer may import which" in docs/ARCHITECTURE.md."""
    section = MAP.read_text().split("## Which layer may import which", 1)[1].split("\n## ", 1)[0]
    allowed = {}
    for row in re.findall(r"^\| `([\w.]+)` \| (.*?) \|$", section, flags=re.M):
        layer, targets = row
        allowed[layer] = set(re.findall(r"`([\w.]+)`", targets))
    return allowed


def test_every_import_between_layers_is_one_the_map_allows():
    allowed = allowed_imports()
    assert {"cells", "cells.kernels", "tasks", "workers", "platform", "dashboard", "report", "cli"} <= set(allowed)
    wrong = []
    for module, path in package_modules().items():
        layer = layer_of(module)
        for target in imported_layers(path) - {layer}:
            if target not in allowed.get(layer, set()):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports docs/ARCHITECTURE.md does not allow: " + "; ".join(sorted(wrong))


def test_the_map_names_every_module_and_only_modules_that_exist():
    text = MAP.read_text()
    named = set(re.findall(r"`(seqarena/[\w/]+\.py)`", text))
    present = {str(path.relative_to(ROOT)) for path in package_modules().values()}
    assert not named - present, f"the map names modules that do not exist: {sorted(named - present)}"
    assert not present - named, f"modules the map does not name: {sorted(present - named)}"


def test_the_kernels_import_nothing_else_of_seqarena():
    for module, path in package_modules().items():
        if layer_of(module) == "cells.kernels":
            assert imported_layers(path) <= {"cells.kernels"}, module


def test_the_report_imports_no_streamlit():
    """`seqarena report` writes files from the command line: it uses the dashboard's figures, not its app."""
    tree = ast.parse((PACKAGE / "report.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "streamlit"}
    assert not imported & {"seqarena.dashboard.app", "seqarena.dashboard.data", "seqarena.dashboard.display"}
