"""LUTTensorCore: its faces (ports, reference, vectors, structure), and Amaranth's simulator on
small tiles, back to back: results bit-exact against ``reference()``, one tile every ``P``
cycles, each result exactly ``P + 1`` cycles after its tile. The large sweeps run in Verilator
(tests/sim)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from arithforge.costmodel import estimate
from arithforge.formats import get_format
from arithforge.formats.lut import LUTConfig, lut_tile, lut_tile_tables
from arithforge.hdl import LUTTensorCore, registry
from arithforge.hdl.lut import pack, unpack


def _ints(col: np.ndarray) -> list[int]:
    arr = np.asarray(col)
    if arr.ndim == 1:
        return [int(v) for v in arr.tolist()]
    return [sum(int(w) << (64 * j) for j, w in enumerate(row)) for row in arr.tolist()]


def run_tiles(dut: LUTTensorCore, vectors: dict[str, np.ndarray], gap: int = 0
              ) -> tuple[list[int], list[int], list[int]]:
    """Present tile t at cycle t * (P + gap); return the presenting cycles, and the cycles and
    results of every o.valid."""
    p = dut.initiation_interval
    cols = {op: _ints(vectors[op]) for op in dut.operands}
    n = len(cols["a"])
    period = p + gap
    total = n * period + dut.latency + 3
    presented, out_cycles, results = [], [], []

    async def bench(ctx) -> None:
        for cyc in range(total):
            t, phase = divmod(cyc, period)
            valid = int(phase == 0 and t < n)
            ctx.set(dut.i.valid, valid)
            for op in dut.operands:
                ctx.set(getattr(dut.i, op), cols[op][t] if valid else 0)
            if valid:
                presented.append(cyc)
            if ctx.get(dut.o.valid):
                out_cycles.append(cyc)
                results.append(ctx.get(dut.o.result))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return presented, out_cycles, results


SMALL = [
    pytest.param(dict(m=2, n=3, k=4, weight_bits=3, entry="int8"), id="int8-w3"),
    pytest.param(dict(m=1, n=2, k=3, weight_bits=2, entry="int8", acc="int16", ternary=True,
                      symmetric=False), id="int8-tern-full-k3"),
    pytest.param(dict(m=1, n=1, k=2, weight_bits=2, entry="float16"), id="fp16-w2-k2"),
    pytest.param(dict(m=1, n=2, k=2, weight_bits=3, entry="float16", signed=True),
                 id="fp16-int3-k2"),
    pytest.param(dict(m=2, n=2, k=3, weight_bits=4, entry="int8", signed=True,
                      symmetric=False), id="int8-int4-full-k3"),
    pytest.param(dict(m=1, n=2, k=2, weight_bits=1, entry="bfloat16", acc="bfloat16",
                      symmetric=False), id="bf16-w1-full"),
]


@pytest.mark.parametrize("params", SMALL)
@pytest.mark.parametrize("gap", [0, 2], ids=["back-to-back", "gaps"])
def test_tiles_in_amaranth(params: dict, gap: int, rng: np.random.Generator) -> None:
    dut = LUTTensorCore(**params)
    vec = dut.test_cases(rng, "random", 12)
    presented, out_cycles, results = run_tiles(dut, vec, gap)
    # Each result comes exactly latency = P + 1 cycles after its tile, and only then.
    assert out_cycles == [c + dut.latency for c in presented]
    assert results == _ints(dut.reference(**vec))
    if gap == 0:
        assert out_cycles[-1] - presented[0] == dut.cycles(12)


def test_tile_presented_while_busy_is_ignored(rng: np.random.Generator) -> None:
    dut = LUTTensorCore(1, 2, 2, weight_bits=3, entry="int8")
    vec = dut.test_cases(rng, "random", 2)
    cols = {op: _ints(vec[op]) for op in dut.operands}
    seen: list[tuple[int, int]] = []

    async def bench(ctx) -> None:
        for cyc in range(12):
            t = 0 if cyc == 0 else 1
            ctx.set(dut.i.valid, int(cyc in (0, 1)))  # tile 1 one cycle too early
            for op in dut.operands:
                ctx.set(getattr(dut.i, op), cols[op][t])
            if ctx.get(dut.o.valid):
                seen.append((cyc, ctx.get(dut.o.result)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = _ints(dut.reference(**{op: v[:1] for op, v in vec.items()}))
    assert seen == [(dut.latency, want[0])]


# -- faces ----------------------------------------------------------------------------------------

def test_ports_and_timing() -> None:
    dut = LUTTensorCore(2, 64, 4, weight_bits=4, entry="float16", acc="float16")
    assert dut.operand_widths == {"a": 2 * 4 * 16, "w": 4 * 64 * 4, "c": 2 * 64 * 16}
    assert dut.result_width == 2 * 64 * 16
    assert (dut.steps, dut.latency, dut.initiation_interval) == (4, 5, 4)
    assert dut.cycles(10) == 41
    tern = LUTTensorCore(weight_bits=2, ternary=True)
    assert (tern.steps, tern.latency, tern.initiation_interval) == (3, 4, 3)
    d = tern.describe()
    assert d["weight_values"] == [-2, 0, 2, 4]
    assert (d["entries"], d["macs_per_tile"], d["acc"]) == (8, 32, "float32")
    assert LUTTensorCore(entry="int8").describe()["acc"] == "int32"


def test_registry_build() -> None:
    dut = registry.build("lut", m="1", n="8", k="3", weight_bits="2", ternary="true",
                         entry="bfloat16", acc="bfloat16", symmetric="false")
    cfg = dut.config
    assert (cfg.group, cfg.weight_bits, cfg.ternary, cfg.symmetric) == (3, 2, True, False)
    assert (cfg.entry.name, cfg.acc.name) == ("bfloat16", "bfloat16")


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(m=0), ValueError, "m must be between 1 and 64, not 0"),
    (dict(k=7), ValueError, "k must be between 1 and 6, not 7"),
    (dict(n=2.5), TypeError, "n must be an integer, not 2.5"),
    (dict(weight_bits=0), ValueError, "weight_bits must be between 1 and 4, not 0"),
    (dict(weight_bits=3, ternary=True), ValueError, "ternary weights need weight_bits=2, not 3"),
    (dict(entry="int8", acc="float32"), ValueError,
     "acc must be a signed integer format for integer entries, not 'float32'"),
    (dict(ternary="yes"), TypeError, "ternary must be a bool, not 'yes'"),
])
def test_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        LUTTensorCore(**kwargs)


@pytest.mark.parametrize("bits", [1, 3, 16, 32])
def test_pack_round_trip(bits: int, rng: np.random.Generator) -> None:
    for count in (1, 5, 40):
        el = rng.integers(0, 1 << bits, size=(7, count), dtype=np.uint64)
        packed = pack(el, bits)
        width = count * bits
        assert packed.shape == ((7,) if width <= 64 else (7, (width + 63) // 64))
        np.testing.assert_array_equal(unpack(packed, count, bits), el)
        # Element j sits at bits j * bits.
        whole = _ints(packed)
        assert whole[0] == sum(int(v) << (j * bits) for j, v in enumerate(el[0].tolist()))


@pytest.mark.parametrize("entry", ["float16", "bfloat16", "int8"])
def test_reference_is_the_emulator(entry: str, rng: np.random.Generator) -> None:
    dut = LUTTensorCore(2, 3, 4, weight_bits=3, entry=entry)
    vec = dut.test_cases(rng, "random", 50)
    a, w, c = dut.split(vec["a"], vec["w"], vec["c"])
    want = lut_tile(a, w, c, LUTConfig(3, entry, dut.config.acc))
    got = unpack(dut.reference(**vec), 6, dut.config.acc.bits).reshape(50, 2, 3)
    np.testing.assert_array_equal(got, want.astype(np.uint64))


def test_vectors(rng: np.random.Generator) -> None:
    dut = LUTTensorCore(2, 4, 4, weight_bits=2, ternary=True, entry="float16")
    ex = dut.test_cases(rng, "exhaustive")
    a, w, c = dut.split(ex["a"], ex["w"], ex["c"])
    groups = get_format("float16").decode(a.reshape(-1, 4))
    assert len(a) == 65536 // 2
    assert len(np.unique(groups, axis=0)) == 65536  # every int4 group once
    assert set(np.unique(w).tolist()) == {0, 1, 2}
    assert not c.any()
    corner = dut.test_cases(rng, "corner")
    ca, cw, _ = dut.split(corner["a"], corner["w"], corner["c"])
    assert np.isnan(get_format("float16").decode(ca)).any()
    assert (cw == 0).all(axis=(1, 2)).any()
    assert (cw == 2).all(axis=(1, 2)).any()
    assert len(dut.test_cases(rng, "corner", 10)["a"]) == 10
    assert len(dut.test_cases(rng, "corner", 1000)["a"]) == 1000
    with pytest.raises(ValueError, match="for k at most 4, not 5"):
        LUTTensorCore(k=5).test_cases(rng, "exhaustive")


def test_structure_costs() -> None:
    sym = estimate(LUTTensorCore(2, 8, 4, weight_bits=4).structure())
    full = estimate(LUTTensorCore(2, 8, 4, weight_bits=4, symmetric=False).structure())
    assert sym.area_um2 < full.area_um2  # half the stored entries
    g = LUTTensorCore(2, 8, 4, weight_bits=2, ternary=True, entry="int8").structure()
    assert (g.graph["latency"], g.graph["cycles_per_op"], g.graph["ops_per_cycle"]) == (4, 3, 64)
    kinds = {a["kind"] for _, a in g.nodes(data=True)}
    assert {"register", "mux", "adder", "rounder"} <= kinds
    est = estimate(g)
    assert est.area_um2 > 0
    assert est.energy_pj > 0
    # A wider tile costs more area; per MAC energy is comparable.
    wide = estimate(LUTTensorCore(2, 32, 4, weight_bits=2, ternary=True,
                                  entry="int8").structure())
    assert wide.area_um2 > est.area_um2


def test_structure_counts_what_synthesis_keeps() -> None:
    """Unsymmetrized float tables: the complement root adders merge in synthesis, so the graph
    counts the symmetric table's adders and only the table storage doubles; the tile registers
    and accumulators are load-enabled."""
    def graph(symmetric: bool) -> dict[str, dict]:
        g = LUTTensorCore(1, 2, 3, weight_bits=1, symmetric=symmetric).structure()
        return dict(g.nodes(data=True))

    sym, full = graph(True), graph(False)
    def adders(nodes: dict[str, dict]) -> set[str]:
        return {n for n in nodes if n.startswith("pre") and nodes[n]["kind"] != "logic"}

    assert adders(sym)
    assert adders(full) == adders(sym)
    assert all(sym[n]["count"] == full[n]["count"] for n in adders(sym))
    assert sym["pre1_add"]["count"] == 4  # K = 3: 2**(K-1) root adders per row
    assert sym["pre1_align"]["count"] == 2  # each pair shares its alignment shift
    assert full["table_reg"]["width"] == 2 * sym["table_reg"]["width"] == 8 * 16
    for n in ("table_reg", "w_reg", "c_reg", "acc_reg"):
        assert sym[n]["enable"] is True
    assert "enable" not in sym["control"]


# -- the paper's core: external tables, quantized float tables ------------------------------------

EXTERNAL = [
    pytest.param(dict(m=1, n=2, k=2, weight_bits=2, entry="float16", acc="float16",
                      precompute="external"), id="ext-fp16-fp16"),
    pytest.param(dict(m=1, n=1, k=2, weight_bits=2, entry="float16", acc="float16",
                      table="int8", precompute="external", signed=True),
                 id="ext-fp16-int8table"),
    pytest.param(dict(m=2, n=2, k=2, weight_bits=3, entry="int8", symmetric=False,
                      precompute="external"), id="ext-int8-full"),
]


@pytest.mark.parametrize("params", EXTERNAL)
def test_external_tiles_in_amaranth(params: dict, rng: np.random.Generator) -> None:
    dut = LUTTensorCore(**params)
    vec = dut.test_cases(rng, "random", 6)
    corner = dut.test_cases(rng, "corner", 4)
    vec = {op: np.concatenate([vec[op], corner[op]]) for op in dut.operands}
    presented, out_cycles, results = run_tiles(dut, vec)
    assert out_cycles == [c + dut.latency for c in presented]
    assert results == _ints(dut.reference(**vec))


def test_external_ports_and_reference(rng: np.random.Generator) -> None:
    # The paper's RTL ports: a_lut [M][2**(K-1)] float16, b_tile [K][N] 2-bit, c [M][N] float16.
    dut = LUTTensorCore(2, 64, 4, weight_bits=2, entry="float16", acc="float16",
                        precompute="external")
    assert dut.operands == ("a", "w", "c")
    assert dut.operand_widths == {"a": 2 * 8 * 16, "w": 4 * 64 * 2, "c": 2 * 64 * 16}
    q = LUTTensorCore(2, 4, 4, weight_bits=2, table="int8", precompute="external")
    assert q.operands == ("a", "s", "w", "c")
    assert q.operand_widths == {"a": 2 * 8 * 8, "s": 2 * 6, "w": 4 * 4 * 2, "c": 2 * 4 * 32}
    vec = q.test_cases(rng, "random", 20)
    tables, w, c = q.split(vec["a"], vec["w"], vec["c"])
    e = unpack(vec["s"], 2, 6).astype(np.int64)
    e = np.where(e >= 32, e - 64, e)
    want = lut_tile_tables(get_format("int8").to_int(tables.astype(np.uint8)), e, w, c,
                           q.config)
    got = unpack(q.reference(vec["a"], vec["s"], vec["w"], vec["c"]), 8, 32).reshape(20, 2, 4)
    np.testing.assert_array_equal(got, want.astype(np.uint64))
    with pytest.raises(ValueError, match="takes random or corner tiles$"):
        q.test_cases(rng, "exhaustive")


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(precompute="outside"), "precompute must be 'internal' or 'external', not 'outside'"),
    (dict(table="int8"), ("quantized tables of float activations (table) need "
                         "precompute='external': the core has no float-to-integer quantizer")),
])
def test_external_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       + "$"):
        LUTTensorCore(**kwargs)


def test_sharing_across_n_lowers_area_per_mac() -> None:
    """The paper's elongated tile: one table per row serves N columns, so the area per MAC
    falls as N grows; without the precompute (external) the core is smaller at every N, and
    int8 tables shrink the storage and lookup."""
    def per_mac(n: int, **kw: object) -> float:
        g = LUTTensorCore(2, n, 4, weight_bits=2, entry="float16", acc="float16",
                          **kw).structure()  # type: ignore[arg-type]
        return estimate(g).area_um2 / (g.graph["ops_per_cycle"] / g.graph["cycles_per_op"])

    internal = [per_mac(n) for n in (1, 4, 16, 64)]
    external = [per_mac(n, precompute="external") for n in (1, 4, 16, 64)]
    assert internal == sorted(internal, reverse=True)
    assert all(e < i for e, i in zip(external, internal, strict=True))
    # Sharing matters where the table is computed in the core: 1 column vs 64 differ more.
    assert internal[0] / internal[-1] > external[0] / external[-1]
    g = LUTTensorCore(2, 8, 4, weight_bits=2, precompute="external").structure()
    q = LUTTensorCore(2, 8, 4, weight_bits=2, precompute="external", table="int8").structure()
    assert q.nodes["table_reg"]["width"] * 2 == g.nodes["table_reg"]["width"] + 2 * 2 * 6
    assert not any(n.startswith("pre") for n in g.nodes)


def _saturating_tiles(rng: np.random.Generator) -> tuple[LUTTensorCore, dict, np.ndarray]:
    """A float16-accumulator core with SatFinite, corner tiles, and those whose result differs
    from OvfInf's (a sum overflowing float16: ±max instead of ±inf)."""
    kw = dict(m=1, n=2, k=2, weight_bits=2, entry="float16", acc="float16")
    dut = LUTTensorCore(**kw, saturation="SatFinite")
    vec = {k: np.asarray(v)[:400] for k, v in dut.test_cases(rng, "corner").items()}
    want, base = dut.reference(**vec), LUTTensorCore(**kw).reference(**vec)
    return dut, vec, np.flatnonzero(want != base)


def test_p3109_saturation_reference(rng: np.random.Generator) -> None:
    dut, _, diff = _saturating_tiles(rng)
    assert dut.describe()["saturation"] == "SatFinite"
    assert diff.size
    with pytest.raises(ValueError, match="integer accumulator wraps: saturation must be OvfInf"):
        LUTTensorCore(entry="int8", saturation="SatFinite")


@pytest.mark.slow
def test_p3109_saturation_in_amaranth(rng: np.random.Generator) -> None:
    """The hardware follows the SatFinite reference on the tiles where it matters."""
    dut, vec, diff = _saturating_tiles(rng)
    sub = {k: v[diff[:4]] for k, v in vec.items()}
    _, _, results = run_tiles(dut, sub, 0)
    assert results == _ints(dut.reference(**sub))
