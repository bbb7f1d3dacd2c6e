"""The house as the README draws it: folders by layer, imports only downward, modules and classes
of a readable size, and the README's module table naming exactly the modules there are.

Read from the code's own imports (`ast`), so a new upward import fails here, not in review."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support import ROOT

PACKAGE = ROOT / "sidecar"
# From the top floor down: a module may import from its own folder and from any folder below.
# The top-level modules are the ground floor: every folder may use them, they use no folder.
FLOORS = [
    "service",
    "engine",
    "settings",
    "remote",
    "ops",
    "local",
    "s3",
    "aws",
    "core",
    "",  # sidecar/*.py: metrics, log, heap, version, skips, loop health, back-off
]
ENTRY_POINTS = {"sidecar/__init__.py", "sidecar/__main__.py"}  # the package's doors: any floor
MODULE_LINES = 450
CLASS_LINES = 250


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _floor_of(module: str) -> int:
    """The floor of a dotted module name under `sidecar`."""
    parts = module.split(".")
    assert parts[0] == "sidecar", module
    folder = parts[1] if len(parts) > 2 and parts[1] in FLOORS else ""
    return FLOORS.index(folder)


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module of ours that `path` imports, by line, resolved to dotted names."""
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("sidecar"):
                continue
            if node.module is None:  # from . import x: x may be a module
                for alias in node.names:
                    found.append((node.lineno, f"{target}.{alias.name}"))
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sidecar")]
    return found


def test_imports_run_only_downward() -> None:
    upward = []
    for path in _modules():
        rel = str(path.relative_to(ROOT))
        if rel in ENTRY_POINTS:
            continue
        floor = _floor_of(_dotted(path) if path.name != "__init__.py" else _dotted(path) + ".x")
        for line, target in _imports(path):
            if _floor_of(target) < floor:
                upward.append(f"{rel}:{line} imports {target}")
    assert upward == []


def test_every_folder_is_a_floor() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FLOORS) - {""}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_classes_stay_readable(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MODULE_LINES
    too_long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > CLASS_LINES
    ]
    assert too_long == []


def test_the_readme_module_table_names_every_module() -> None:
    """The table's rows are a folder (`**`sidecar/x/`**`) followed by its files; every module
    there is is named once, and nothing else."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| module | job |") :]
    table = table[: table.index("\n\n")]
    named: set[str] = set()
    folder = ""
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1].strip()
        heading = re.fullmatch(r"\*\*`sidecar/(\w*)/?`\*\*", cell)
        if heading:
            folder = heading.group(1)
            continue
        for name in re.findall(r"`([\w/]+\.py)`", cell):
            named.add(f"sidecar/{folder}/{name}" if folder else f"sidecar/{name}")
    modules = {
        str(p.relative_to(ROOT)) for p in _modules() if p.name not in ("__init__.py", "__main__.py")
    }
    assert named == modules
