"""The package's structure: layers, no import cycles, no private names across modules.

Run on its own with ``pytest tests/unit/test_architecture.py`` or ``lint-imports`` (the
contract is in pyproject.toml).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "matloop"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("matloop", include_external_packages=False)


def test_layers_contract_is_kept() -> None:
    """The import-linter contract of pyproject.toml (``lint-imports`` runs the same)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=SRC.parents[1], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    """No cycle of module-level or function-level imports between matloop's modules."""
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported == importer or not imported.startswith("matloop"):
                continue
            # an edge a -> b closes a cycle when b reaches a again (packages' __init__ aside)
            if graph.chain_exists(importer=imported, imported=importer) and not (
                    importer.startswith(imported + ".") or imported.startswith(importer + ".")):
                cycles.append((importer, imported))
    assert not cycles, cycles[:10]


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("matloop"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{path.relative_to(SRC)}: {node.module}.{alias.name}")
    assert not offenders, offenders
