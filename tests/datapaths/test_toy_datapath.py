"""A new datapath through the public registration call, and nothing else (issue 15).

This module defines a toy datapath, ``toymac``: a 4-bit signed integer multiply-accumulate
``o = c + a * b`` wrapping in ``acc_bits``, with every face: its descriptor (parameters, GEMM
accuracy model, sweep, array PE, calibration examples), its unit (facts, reference, vectors,
structure; no Amaranth) and its Amaranth generator (the unit's subclass adding elaborate).
Registered with :func:`arithforge.datapaths.registered` for the
tests below (and loaded by explore's worker processes through ``arithforge_datapaths()``), it is
generated, verified (Verilator harness and cocotb), costed, synthesized, swept by ``explore``
(report and plots), used as the PE of ``simulate gemm --cosim`` and listed by calibration,
without an edit anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pytest
from amaranth import Module

from arithforge.cli import main
from arithforge.datapaths import (
    Accuracy,
    Config,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
    format_kind,
    registered,
)
from arithforge.datapaths.base import check_stages, stages_param
from arithforge.datapaths.unit import Graph, Unit, check_kind, choose_cuts
from arithforge.formats import IntFormat, get_format
from arithforge.hdl.base import Datapath, Pipeline

NAME = "toymac"
BITS = 4
PARAMS: dict[str, Param] = {
    "acc_bits": Param("int", 12, "width of the accumulator c and of the result", 8, 32),
    "stages": stages_param(),
}


def _wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers to ``bits``."""
    half = 1 << (bits - 1)
    return ((values + half) % (1 << bits)) - half


class ToyUnit(Unit):
    """Toy 4-bit signed integer MAC o = c + a * b, wrapping in acc_bits: everything but the
    hardware (what the cost model and the references read, without Amaranth)."""

    name: ClassVar[str] = NAME
    cli_params: ClassVar[dict[str, Param]] = PARAMS
    _CUTS: ClassVar[tuple[str, ...]] = ("product",)

    def __init__(self, acc_bits: int = 12, stages: int = 0) -> None:
        if not 8 <= int(acc_bits) <= 32:
            raise ValueError(f"acc_bits must be between 8 and 32, not {acc_bits!r}")
        self._acc = int(acc_bits)
        self._stages = check_stages(stages)
        self._ready()  # the generator builds its ports here

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": BITS, "b": BITS, "c": self._acc}

    @property
    def result_width(self) -> int:
        return self._acc

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        acc = IntFormat(self._acc, True)
        return {"a": IntFormat(BITS, True), "b": IntFormat(BITS, True), "c": acc, "result": acc}

    def describe(self) -> dict[str, Any]:
        return {"datapath": NAME, "acc_bits": self._acc, "stages": self._stages,
                "latency": self.latency}

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        f = self.formats
        total = (f["a"].to_int(np.asarray(a)) * f["b"].to_int(np.asarray(b))
                 + f["c"].to_int(np.asarray(c)))
        return f["c"].from_int(_wrap(total, self._acc)).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        check_kind(kind, n)
        if kind == "random":
            assert n is not None
            return {op: rng.integers(0, 1 << w, size=int(n), dtype=np.uint64)
                    for op, w in self.operand_widths.items()}
        fc = self.formats["c"]
        accs = {0, 1, -1, fc.min_int, fc.max_int, fc.max_int - 63, fc.min_int + 63}
        codes = fc.from_int(np.array(sorted(accs), dtype=np.int64)).astype(np.uint64)
        grids = np.meshgrid(np.arange(16, dtype=np.uint64), np.arange(16, dtype=np.uint64),
                            codes, indexing="ij")
        return {op: g.ravel() for op, g in zip(("a", "b", "c"), grids, strict=True)}

    def structure(self) -> nx.DiGraph:
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        g.node("in_a", "input", BITS)
        g.node("in_b", "input", BITS)
        g.node("in_c", "input", self._acc)
        mul = g.node("multiplier", "multiplier", 2 * BITS, "in_a", "in_b", a_width=BITS,
                     b_width=BITS, signed=True)
        after = g.cut("product", 2 * BITS + self._acc, mul, "in_c")
        after = (g.node("adder", "adder", self._acc, *after),)
        for name in self._output_stages(extra):
            after = g.cut(name, self._acc, *after)
        g.node("out", "output", self._acc, *after)
        g.g.graph.update(name=NAME, latency=self.latency)
        return g.g


class ToyMAC(ToyUnit, Datapath):
    """The toy MAC's hardware: the unit's ports and elaborate()."""

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        s = pipe.stage("product", product=self.i.a.as_signed() * self.i.b.as_signed(),
                       c=self.i.c.as_signed())
        self._finish(m, pipe, (s.c + s.product)[:self._acc], extra)
        return m


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[np.ndarray, str]:
    """The GEMM on the codes: exact integer products and sums, wrapped to the accumulator."""
    acc = config.acc
    assert isinstance(acc, IntFormat)
    x = np.asarray(qx.values, dtype=np.int64)  # int4 values are the integers themselves
    w = np.asarray(qw.values, dtype=np.int64)
    return _wrap(x @ w.T, acc.bits).astype(np.float64), "toy"


class Toy(Descriptor):
    """The toy datapath's descriptor: every face, no Amaranth."""

    name: ClassVar[str] = NAME
    summary: ClassVar[str] = "toy 4-bit integer MAC (a plug-in)"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[type] = ToyMAC
    unit: ClassVar[type] = ToyUnit
    accuracy = Accuracy(_run, "toy 4-bit integer MAC, wrapping", acc="int32")
    sweep: ClassVar[dict[str, Param]] = {"stages": stages_param()}
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {}
    calibration = ({"acc_bits": 12}, {"acc_bits": 20, "stages": 1})
    array_pe: ClassVar[bool] = True

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return int(dict(params).get("stages", 0)), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        for name in (weights, acts):
            f = get_format(name)
            if not (isinstance(f, IntFormat) and f.signed and f.bits == BITS):
                return "the toy MAC takes int4 operands only"
        if format_kind(get_format(acc)) != "int" or get_format(acc).bits > 32:
            return "the toy MAC accumulates in an integer format of at most 32 bits"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        bits = get_format(acc).bits
        return self.make_design(label, weights, acts, acc, params,
                                (NAME, {"acc_bits": bits, "stages": params["stages"]}),
                                ctx.model(weights, acts, acc, NAME))


def arithforge_datapaths() -> list[Descriptor]:
    """The plug-in hook: explore's worker processes load this module and register these."""
    return [Toy()]


@pytest.fixture(scope="module")
def toy() -> Iterator[None]:
    with registered(*arithforge_datapaths()):
        yield


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


# -- the faces, each through its command -----------------------------------------------------------

@pytest.mark.usefixtures("toy")
def test_generate_writes_lint_clean_verilog(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "toy.v"
    code, text = run(capsys, "generate", NAME, "--acc-bits", "16", "--stages", "1", "--lint",
                     "-o", str(out))
    assert code == 0, text
    assert f"module {NAME}" in out.read_text()


@pytest.mark.usefixtures("toy")
def test_help_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert NAME in capsys.readouterr().out


@pytest.mark.usefixtures("toy")
def test_verify_exhaustive_in_verilator(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "verify", NAME, "--acc-bits", "12", "--stages", "1", "--json")
    assert code == 0, text
    result = json.loads(text)
    assert result["mismatches"] == 0
    assert result["vectors"] == 16 * 16 * 7


@pytest.mark.usefixtures("toy")
@pytest.mark.cosim("icarus")
def test_cocotb_benches() -> None:
    from arithforge.hdl.registry import build
    from arithforge.sim import cocotb_benches

    result = cocotb_benches.run_benches(build(NAME, acc_bits=12, stages=2), "icarus", n=500,
                                        seed=1)
    assert sorted(result.passed) == sorted(cocotb_benches.TESTS)


@pytest.mark.usefixtures("toy")
def test_cost_and_synth(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "cost", NAME, "--acc-bits", "16", "--json")
    assert code == 0, text
    assert json.loads(text)["area_um2"] > 0
    code, text = run(capsys, "synth", NAME, "--acc-bits", "16", "--json", "--no-cache")
    assert code == 0, text
    assert json.loads(text)["transistors"] > 0


@pytest.mark.usefixtures("toy")
def test_simulate_gemm_cosim(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "simulate", "gemm", "--pe", f"{NAME}:acc_bits=16,stages=1",
                     "--array", "2x3", "--m", "3", "--n", "4", "--k", "5", "--cosim", "--json")
    assert code == 0, text


@pytest.mark.usefixtures("toy")
def test_calibration_lists_it() -> None:
    from arithforge.costmodel.calibrate import design_set
    from arithforge.hdl import registry

    mine = [d for d in design_set(registry) if d.datapath == NAME]
    assert [d.params for d in mine] == [dict(p) for p in Toy.calibration]


@pytest.mark.usefixtures("toy")
def test_explore_sweeps_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "toy.toml"
    spec.write_text(f"""
name = "toy"
[formats]
weights = ["int4", "int8"]
accumulators = ["int32", "float32"]
[datapaths]
enabled = ["{NAME}", "imac"]
[datapaths.{NAME}]
stages = [0, 1]
[workloads]
names = ["synthetic"]
end_metric = false
[stages]
verify = "pareto"
[verify]
random = 2000
[mixed]
enabled = false
""")
    out = tmp_path / "out"
    code, text = run(capsys, "explore", "--spec", str(spec), "--output", str(out), "--jobs", "2",
                     "--json")
    assert code == 0, text
    result = json.loads(text)
    mine = [p for p in result["points"] if p["kind"] == NAME]
    assert sorted(p["label"] for p in mine) == [f"int4/{NAME}", f"int4/{NAME},stages=1"]
    assert all(p["status"] == "ok" and p["metric"] is not None and p["area_um2"] > 0
               and p["latency_s"] > 0 for p in mine), mine
    assert any(v["label"].startswith(f"int4/{NAME}") and v["mismatches"] == 0
               for v in result["verified"]), result["verified"]
    report = (out / "report.html").read_text()
    assert f"int4/{NAME},stages=1" in report
    # The plots draw every swept datapath with a marker of its own.
    from arithforge.dse.plots import markers

    drawn = markers([NAME])
    assert drawn[NAME] not in {m for n, m in drawn.items() if n != NAME}
