"""The systolic array generator: its PE contract, schedule constants, errors, and one GEMM in
Amaranth's own simulator (a second simulator besides the Verilator co-simulation)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from arithforge.hdl import registry
from arithforge.hdl.systolic import SystolicArray, Timing, check_pe, pad_codes, pe_roles
from arithforge.sim import accelerator as acc


def test_roles() -> None:
    assert pe_roles(registry.build("imac")) == ("a", ("b",))
    assert pe_roles(registry.build("bitserial", acts="int8", group=2, groups=1)) == (
        "a", ("w", "sel", "scale"))
    assert pe_roles(registry.build("lut", m=1, n=2, k=2)) == ("a", ("w",))


@pytest.mark.parametrize(("name", "params", "message"), [
    ("mul", {}, ("an array PE must have operands a, b, c (a multiply-accumulate, or a dot "
                 "product with c last), not a, b")),
    ("fma", {"c": "float32", "out": "bfloat16"},
     "c must have the result's format, not float32 and bfloat16"),
    ("fma", {"c": "float32", "out": "float32", "rounding": "stochastic"},
     "an array PE must have operands a, b, c"),
])
def test_check_pe_errors(name: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_pe(registry.build(name, **params))


def test_timing() -> None:
    t = Timing(0)
    assert (t.slots, t.interval, t.skew) == (1, 1, 1)
    t = Timing(3)
    assert (t.slots, t.interval, t.skew) == (3, 1, 3)
    t = Timing(6, 4)   # the bit-serial PE: L = II + 2
    assert (t.slots, t.interval, t.skew) == (1, 6, 6)
    # Latency 0 is SCALE-Sim's fold: 2R + C + T - 2.
    assert Timing(0).fold_cycles("os", 8, 4, 100, 70) == 2 * 8 + 4 + 70 - 2
    assert Timing(0).fold_cycles("ws", 8, 4, 100, 70) == 2 * 8 + 4 + 100 - 2
    with pytest.raises(ValueError, match="initiation interval >= 1"):
        Timing(2, 0)


def test_pad_codes() -> None:
    assert pad_codes(registry.build("fma", a="float8_e4m3fn", c="float32")) == (0x80, 0)
    assert pad_codes(registry.build("fma", a="float8_e4m3fn", c="float32", rounding="rdn")) == (
        0, 0)
    assert pad_codes(registry.build("fma", a="float8_e4m3fnuz", c="float32")) == (0, 0)
    assert pad_codes(registry.build("imac")) == (0, 0)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rows": 0}, ValueError, "rows must be at least 1, not 0"),
    ({"cols": 2.5}, TypeError, "cols must be an integer, not 2.5"),
    ({"dataflow": "is"}, ValueError, "dataflow must be 'os' or 'ws', not 'is'"),
])
def test_array_errors(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args = {"rows": 2, "cols": 2, "dataflow": "os", **kwargs}
    with pytest.raises(error, match=message):
        SystolicArray(lambda: registry.build("imac"), args.pop("rows"), args.pop("cols"),
                      **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("pe", "df"), [("imac:stages=2", "os"), ("imac", "ws")])
def test_amaranth_simulator(pe: str, df: str) -> None:
    """One GEMM (sizes not multiples of the array) in Amaranth's simulator, the testbench playing
    the SRAMs as the Verilator driver does: same outputs, cycles and traffic as the model."""
    cfg = acc.ArrayConfig(2, 3, df, acc.parse_pe(pe))
    m, n, k = 3, 4, 5
    a, b = acc.random_operands(cfg, m, n, k, seed=5)
    dut = cfg.hardware()
    got = np.zeros((m, n), dtype=np.uint64)
    counts = {"cycles": 0, "a": 0, "b": 0, "psum": 0, "c": 0}

    async def bench(ctx):  # type: ignore[no-untyped-def]
        ctx.set(dut.m, m)
        ctx.set(dut.n, n)
        ctx.set(dut.k, k)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.busy):
            counts["cycles"] += 1
            for i in range(cfg.rows):
                if ctx.get(dut.port(f"a_en_{i}")):
                    r, c = ctx.get(dut.port(f"a_row_{i}")), ctx.get(dut.port(f"a_col_{i}"))
                    ctx.set(dut.port(f"a_data_{i}"), int(a[r, c]))
                    counts["a"] += 1
            for j in range(cfg.cols):
                if ctx.get(dut.port(f"b_en_{j}")):
                    r, c = ctx.get(dut.port(f"b_row_{j}")), ctx.get(dut.port(f"b_col_{j}"))
                    ctx.set(dut.port(f"b_data_{j}"), int(b[r, c]))
                    counts["b"] += 1
                if df == "ws" and ctx.get(dut.port(f"p_en_{j}")):
                    r, c = ctx.get(dut.port(f"p_row_{j}")), ctx.get(dut.port(f"p_col_{j}"))
                    ctx.set(dut.port(f"p_data_{j}"), int(got[r, c]))
                    counts["psum"] += 1
            for j in range(cfg.cols):
                if ctx.get(dut.port(f"c_we_{j}")):
                    r, c = ctx.get(dut.port(f"c_row_{j}")), ctx.get(dut.port(f"c_col_{j}"))
                    got[r, c] = ctx.get(dut.port(f"c_data_{j}"))
                    counts["c"] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = acc.simulate(cfg, a, b)
    np.testing.assert_array_equal(got, want.output)
    s = want.schedule
    assert counts == {"cycles": s.cycles, "a": s.reads["a"], "b": s.reads["b"],
                      "psum": s.reads["psum"], "c": s.writes}
