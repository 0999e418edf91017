"""The shape of the source tree: public APIs between packages, small modules.

Each subpackage of ``ioplan`` keeps its implementation in private ``_module.py`` files and
re-exports what others may use from its ``__init__`` (STYLE.md, anchor 9). A package that
reaches into another's private module couples the two silently; this test names each such
import so that the name is exported instead.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ioplan"
MAX_LINES = 900  # the project's limit for one source file (issue 15)


def _modules():
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py") if len(rel) > 1 else ""


def _private_cross_imports(path: Path) -> list[str]:
    """``ioplan.X._y`` or a ``_name`` of ``ioplan.X`` imported from outside package X."""
    own = _package_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[tuple[str, list[str]]] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            targets += [(a.name, []) for a in node.names]
        for module, names in targets:
            parts = module.split(".")
            if parts[0] != "ioplan" or len(parts) < 2 or parts[1] == own:
                continue
            private_module = any(p.startswith("_") for p in parts[2:])
            private_names = [n for n in names if n.startswith("_") and n != "__version__"]
            if private_module or private_names:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {module} {private_names}")
    return found


def test_the_check_finds_a_private_import(tmp_path, monkeypatch):
    """The checker itself: a planted private import is found, a public one is not."""
    pkg = tmp_path / "planning"
    pkg.mkdir()
    bad = pkg / "_x.py"
    bad.write_text(
        "from ioplan.physics._zone import axial_zone\n"
        "from ioplan.physics import zone_metrics\n"
        "from ioplan.planning._plan import Plan\n"
        "from ioplan.imaging import _private\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    found = _private_cross_imports(bad)
    assert len(found) == 2, found
    assert "physics._zone" in found[0] and "_private" in found[1]


def test_no_package_imports_another_packages_private_modules():
    found = [hit for p in _modules() for hit in _private_cross_imports(p)]
    assert not found, "export these from the package's __init__ instead:\n" + "\n".join(found)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_source_files_are_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(SRC)} has {n} lines; split it by responsibility"
