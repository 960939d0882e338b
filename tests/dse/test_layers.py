"""The modules of ``arithforge.dse`` import one another in one direction: no import cycle, counting
the imports inside functions and under ``TYPE_CHECKING`` too (issue 15)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import arithforge.dse

PACKAGE = "arithforge.dse"


def import_graph(root: Path) -> nx.DiGraph:
    """Map each module of the package in ``root`` to the modules of it that it imports."""
    names = {p: PACKAGE if p.stem == "__init__" else f"{PACKAGE}.{p.stem}"
             for p in root.glob("*.py")}
    modules = set(names.values())
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path, name in names.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # Every module here lies in PACKAGE, ``__init__`` included: ``.`` is PACKAGE.
                parts = PACKAGE.split(".")
                base = ".".join(parts[:len(parts) + 1 - node.level]) if node.level else ""
                module = ".".join(filter(None, [base, node.module]))
                # ``from . import plots`` imports the module plots; ``from .spec import Spec``
                # the module spec.
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules
                           else module for alias in node.names]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules)
    return graph


def test_dse_has_no_import_cycle() -> None:
    graph = import_graph(Path(arithforge.dse.__file__).parent)
    # The graph is read at all: the sweep runs its tasks, and so do the searches.
    assert {("arithforge.dse.engine", "arithforge.dse.run"),
            ("arithforge.dse.engine", "arithforge.dse.search"),
            ("arithforge.dse.search", "arithforge.dse.run"),
            ("arithforge.dse.mixed", "arithforge.dse.run")} <= set(graph.edges)
    assert list(nx.simple_cycles(graph)) == []
