"""Layers: no package imports the command line, nor a layer above its own (issue 15).

``arithforge.cli`` is the top layer; every other module of ``arithforge`` (the packages, their
subpackages, and the top-level ``__init__`` and ``_errors``) must not import it, whether
absolutely or relatively, at module level, inside a function or under ``TYPE_CHECKING``, nor by
name through ``importlib.import_module``/``import_package``. Read from the source, not by
importing it, so a lazy import is caught too. The same walk holds every package to the layer order
of pyproject.toml's import-linter contract, which cannot see an import by name (the page writer of
``costmodel.reproduction`` once found ``arithforge.sim.activity`` that way).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import arithforge

ROOT = Path(arithforge.__file__).parent
CLI = "arithforge.cli"
# Functions that import a module named by their first argument.
IMPORTERS = {"import_module", "import_package", "__import__"}


def module_name(path: Path) -> str:
    """The dotted name of the module at ``path`` under :data:`ROOT`."""
    parts = ("arithforge", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, source: str | None = None) -> Iterator[str]:
    """Yield the absolute name of every module the source at ``path`` (or ``source``, as if it
    were there) imports, anywhere in it.

    ``from X import y`` yields ``X`` and ``X.y`` (``y`` may be a module).
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if source is None:
        source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in IMPORTERS):
            yield node.args[0].value


def is_cli(module: str) -> bool:
    return module == CLI or module.startswith(CLI + ".")


BELOW_CLI = sorted(p for p in ROOT.rglob("*.py")
                   if not is_cli(module_name(p)) and module_name(p) != "arithforge.__main__")


def test_the_walk_sees_every_package_and_resolves_relative_imports() -> None:
    packages = {module_name(p).split(".")[1] for p in BELOW_CLI if p.parent != ROOT}
    assert {"formats", "hdl", "sim", "costmodel", "workloads", "dse"} <= packages
    assert {"arithforge", "arithforge._errors"} <= {module_name(p) for p in BELOW_CLI}
    # Controls: the command line's own modules import it, relatively, and are found doing so.
    assert "arithforge.cli.hdl" in set(imported(ROOT / "cli" / "cost.py"))
    assert is_cli(next(m for m in imported(ROOT / "__main__.py") if m.startswith(CLI)))


@pytest.mark.parametrize("path", BELOW_CLI, ids=module_name)
def test_no_package_imports_the_cli(path: Path) -> None:
    assert [m for m in imported(path) if is_cli(m)] == []


def _layers() -> list[list[str]]:
    """The packages of each layer of pyproject.toml's import-linter layers contract, top first."""
    config = tomllib.loads((ROOT.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["type"] == "layers")
    return [[p.strip() for p in layer.split("|")] for layer in contract["layers"]]


LAYERS = _layers()


def layer_of(module: str) -> tuple[int, str] | None:
    """Index (0 at the top) and package of the layer ``module`` belongs to, if any."""
    for i, layer in enumerate(LAYERS):
        for package in layer:
            if module == package or module.startswith(package + "."):
                return i, package
    return None


def breaks_layers(importer: str, module: str) -> bool:
    """Whether ``importer`` importing ``module`` goes up the layers or across to an independent
    package of its own layer."""
    here, there = layer_of(importer), layer_of(module)
    if here is None or there is None:
        return False
    return there[0] < here[0] or (there[0] == here[0] and there[1] != here[1])


LAYERED = sorted(p for p in ROOT.rglob("*.py") if layer_of(module_name(p)) is not None)
#: Known breaks, each to be fixed in its module (strict: the entry goes when the fix lands).
KNOWN_BREAKS: dict[str, str] = {}


def test_the_layer_walk_reads_the_contract_and_sees_imports_by_name() -> None:
    assert LAYERS[0] == [CLI]
    assert {"arithforge.sim", "arithforge.costmodel", "arithforge.hdl"} <= {
        p for layer in LAYERS for p in layer}
    costmodel = ROOT / "costmodel" / "reproduction.py"
    # Controls: what the page writer did before issue 15 is caught, by name or not.
    by_name = 'import importlib\nimportlib.import_module("arithforge.sim.activity")\n'
    assert [m for m in imported(costmodel, by_name)
            if breaks_layers("arithforge.costmodel.reproduction", m)] == [
        "arithforge.sim.activity"]
    assert breaks_layers("arithforge.costmodel.reproduction", "arithforge.hdl.registry")
    assert not breaks_layers("arithforge.sim.activity", "arithforge.costmodel.activity")
    assert not breaks_layers("arithforge.costmodel.synth", "arithforge.tools.yosys")


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREAKS[module_name(p)]))
    if module_name(p) in KNOWN_BREAKS else p for p in LAYERED], ids=module_name)
def test_imports_point_down_the_layers(path: Path) -> None:
    name = module_name(path)
    assert [m for m in imported(path) if breaks_layers(name, m)] == []


def test_layer_contracts_hold() -> None:
    """The import-linter contracts of pyproject.toml (layers, formats and tools below everything,
    Amaranth only in hdl, sim and tools.export), as `make lint` runs them."""
    import subprocess
    import sys

    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.is_file():
        pytest.skip("import-linter is not installed (the test extra)")
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT.parents[1],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
