"""The registry, every catalog float format through the FMA generator, structure graphs,
pipelining and the Verilog ports."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from amaranth.back import verilog

from arithforge import datapaths
from arithforge.datapaths import Descriptor, Param
from arithforge.datapaths.imac import IMac
from arithforge.formats import FloatFormat, get_format, names
from arithforge.hdl import FusedMultiplyAdd, IntegerMAC, registry

FLOATS = [n for n in names() if isinstance(get_format(n), FloatFormat)]
KINDS = {"adder", "multiplier", "shifter", "lzc", "mux", "register", "comparator", "rounder",
         "logic", "lut", "input", "output"}

BUILDS = [
    ("fma", {"a": "float8_e4m3fn", "c": "float32", "out": "float32", "stages": "2"}),
    ("fma", {"a": "bfloat16", "normalization": "4", "rounding": "stochastic"}),
    ("mul", {"a": "float8_e5m2", "rounding": "rdn", "stages": 1}),
    ("add", {"a": "float16", "saturate": "true"}),
    ("lmul", {"fmt": "float8_e4m3fn", "form": "equation", "stages": 2}),
    ("lmac", {"fmt": "float8_e5m2", "acc": "bfloat16", "stages": 3}),
    ("imac", {"a_bits": "4", "b_bits": 4, "acc_bits": 12, "signed": False, "stages": 1}),
    ("dot", {"a": "float8_e4m3fn", "n": "4", "alignment": "normalized", "stages": 2}),
    ("dot", {"model": "h100-fp8-fastacc", "stages": "5"}),
    ("gelu", {"variant": "shift", "bits": "16", "scale_exp": "10", "stages": "2"}),
    ("softmax", {"variant": "ibert", "n": "5", "stages": "3"}),
    ("layernorm", {"n": "3", "out_bits": "10", "frac_bits": "6", "stages": "2"}),
]


def test_names() -> None:
    assert set(registry.DATAPATHS) == {"fma", "mul", "add", "lmul", "lmac", "imac", "bitserial",
                                       "lut", "dot", "gelu", "softmax", "layernorm",
                                       "hadamard"}
    for name, cls in registry.DATAPATHS.items():
        assert cls.name == name
        for pname, p in cls.cli_params.items():
            assert isinstance(p, Param), pname
            assert p.kind in ("format", "int", "str", "bool") or p.kind.startswith("choice:")


@pytest.mark.parametrize(("name", "params"), BUILDS, ids=[b[0] for b in BUILDS])
def test_build_and_faces(name, params, rng) -> None:
    dp = registry.build(name, **params)
    assert dp.latency == int(params.get("stages", 0))
    g = dp.structure()
    assert isinstance(g, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g)
    for node, attrs in g.nodes(data=True):
        assert attrs["kind"] in KINDS, node
        assert isinstance(attrs["width"], int), node
        assert attrs["width"] >= 0, node
    registers = [n for n, a in g.nodes(data=True) if a["kind"] == "register"]
    assert len(registers) == dp.latency
    vec = dp.test_cases(rng, "random", 50)
    assert set(vec) == set(dp.operands)
    for op in dp.operands:
        assert int(vec[op].max()) < 1 << dp.operand_widths[op]
    assert dp.reference(**vec).shape == (50,)
    assert dp.describe()["datapath"] == name
    text = verilog.convert(dp, name="top", emit_src=False)
    ports = {f"i__{op}" for op in dp.operands} | {"i__valid", "o__valid", "o__result"}
    for port in ports:
        assert f" {port}" in text
    assert (" clk;" in text) == (dp.latency > 0)


def test_build_errors() -> None:
    with pytest.raises(ValueError, match=r"^unknown datapath 'fmaa'; closest: fma, .*\(known: "
                                         r"add, bitserial, dot, fma, "):
        registry.build("fmaa")
    with pytest.raises(ValueError, match=r"^fma has no parameter 'round' \(did you mean "
                                         r"'rounding'\?\); its parameters: a, b, c, out, "):
        registry.build("fma", round="rne")
    with pytest.raises(ValueError, match=r"^fma parameter rounding must be one of rne, rna, rtz, "
                                         r"rup, rdn, rto, stochastic, not 'up'$"):
        registry.build("fma", rounding="up")
    with pytest.raises(ValueError, match=r"^imac parameter stages must be an integer, "
                                         r"not 'two'$"):
        registry.build("imac", stages="two")
    with pytest.raises(registry.DatapathError, match=r"^fma parameter a must be a format name: "
                                                     r"unknown format 'float9'"):
        registry.build("fma", a="float9")


def test_defaults_follow_the_emulator() -> None:
    dp = registry.build("fma", a="bfloat16", c="float32")
    assert {k: f.name for k, f in dp.formats.items()} == {
        "a": "bfloat16", "b": "bfloat16", "c": "float32", "result": "float32"}


@pytest.mark.parametrize("fmt", FLOATS)
def test_every_float_format_elaborates(fmt) -> None:
    f = get_format(fmt)
    if f.bits > 32:
        with pytest.raises(ValueError, match=rf"^fmt_a must be at most 32 bits wide, not "
                                             rf"{fmt} \({f.bits} bits\)$"):
            FusedMultiplyAdd(f, f, f, f)
        return
    dut = FusedMultiplyAdd(f, f, f, f, stages=2)
    text = verilog.convert(dut, name="top", emit_src=False)
    assert "module top" in text


@pytest.mark.parametrize("name", ["fma", "mul", "lmul", "imac"])
def test_combinational_has_no_clock(name) -> None:
    dp = registry.build(name)
    text = verilog.convert(dp, name="top", emit_src=False)
    assert " clk" not in text
    assert " rst" not in text


@pytest.mark.parametrize(("name", "params"), [
    ("fma", {"a": "float8_e4m3fn", "stages": 3}),
    ("fma", {"a": "float8_e5m2", "normalization": "2", "stages": 5}),
    ("mul", {"a": "float8_e4m3fn", "rounding": "stochastic", "stages": 2}),
    ("add", {"a": "bfloat16", "stages": 7}),
    ("lmul", {"fmt": "float8_e5m2", "stages": 1}),
    ("lmac", {"fmt": "float8_e4m3fn", "acc": "float16", "stages": 2}),
], ids=lambda v: v if isinstance(v, str) else str(v.get("stages")))
def test_pipelined(name, params, rng, run_pipe) -> None:
    dut = registry.build(name, **params)
    n = 60
    vec = dut.test_cases(rng, "random", n)
    gaps = rng.random(n) < 0.25
    pres, ov, res = run_pipe(dut, vec, gaps)
    lat = dut.latency
    assert lat == params["stages"]
    assert not ov[:lat].any()
    np.testing.assert_array_equal(ov[lat:lat + n], pres[:n])
    assert not ov[lat + n:].any()
    want = dut.reference(**vec)
    np.testing.assert_array_equal(res[lat:lat + n][~gaps], want[~gaps])


@pytest.mark.cosim
@pytest.mark.parametrize(("name", "params"), BUILDS, ids=[b[0] for b in BUILDS])
def test_verilator_lint(name, params) -> None:
    from arithforge.tools import export

    dp = registry.build(name, **params)
    export.lint(export.to_verilog(dp, "top"), "top")


def test_reset_drops_vectors_in_flight() -> None:
    """A reset edge clears every stage's valid bit; later vectors come out as usual."""
    from amaranth import ClockDomain, Module
    from amaranth.sim import Simulator

    dut = registry.build("mul", a="float8_e4m3fn", stages=3)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    seen: list[int] = []

    async def bench(ctx) -> None:
        ctx.set(dut.i.a, 0x38)
        ctx.set(dut.i.b, 0x38)
        for k in range(10):
            ctx.set(cd.rst, int(k == 4))
            ctx.set(dut.i.valid, int(k in (0, 1, 2, 3, 6)))
            seen.append(ctx.get(dut.o.valid))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6, domain="sync")
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 0, 1, 1, 0, 0, 0, 0, 1]


# -- plug-in datapaths: the public registration call ---------------------------------------------

class PlugMAC(IntegerMAC):
    """An integer MAC under another name: a plug-in datapath."""

    name = "plugmac"


class PlugDatapath(Descriptor):
    """Its descriptor: the integer MAC's parameters, the class as its generator."""

    name = "plugmac"
    params = IMac.params
    generator = PlugMAC


class LazyDatapath(Descriptor):
    """A plug-in whose generator is named, imported when first built."""

    name = "lazymac"
    params = IMac.params
    generator = "arithforge.hdl.imac:IntegerMAC"


def test_names_are_the_descriptors_with_a_generator() -> None:
    assert list(registry.DATAPATHS) == [n for n, d in datapaths.DATAPATHS.items()
                                        if d.generator is not None]
    for name, cls in registry.DATAPATHS.items():
        assert cls.cli_params is datapaths.DATAPATHS[name].params  # one schema, no copy
        assert registry.DATAPATHS[name] is datapaths.generator_of(datapaths.DATAPATHS[name])
    assert "exact" in datapaths.DATAPATHS
    assert "exact" not in registry.DATAPATHS
    with pytest.raises(KeyError):
        registry.DATAPATHS["exact"]
    with pytest.raises(registry.DatapathError,
                       match=r"^datapath 'exact' has no hardware generator \(datapaths with one: "
                             r"add, bitserial, dot, fma, "):
        registry.build("exact")


def test_the_view_is_read_only() -> None:
    with pytest.raises(TypeError):
        registry.DATAPATHS["x"] = PlugMAC  # type: ignore[index]
    assert not hasattr(registry.DATAPATHS, "pop")
    assert not hasattr(registry, "register")
    assert not hasattr(registry, "registered")


def test_register_plug_in() -> None:
    before = list(registry.DATAPATHS)
    with datapaths.registered(PlugDatapath(), LazyDatapath()):
        assert registry.DATAPATHS["plugmac"] is PlugMAC
        assert registry.DATAPATHS["lazymac"] is IntegerMAC
        assert list(registry.DATAPATHS) == [*before, "plugmac", "lazymac"]
        dp = registry.build("plugmac", a_bits="4", stages=1)
        assert isinstance(dp, PlugMAC)
        assert dp.latency == 1
        assert registry.build("lazymac", acc_bits="12").result_width == 12
        with pytest.raises(registry.DatapathError,
                           match=r"^plugmac parameter a_bits must be between 1 and 30, not 99$"):
            registry.build("plugmac", a_bits=99)
        with pytest.raises(ValueError, match=r"^PlugDatapath.name must be unique, not 'plugmac' "
                                             r"\(taken by PlugDatapath\)$"):
            datapaths.register(PlugDatapath())
    assert list(registry.DATAPATHS) == before
    with pytest.raises(registry.DatapathError, match=r"^unknown datapath 'plugmac'"):
        registry.build("plugmac")


def test_registered_cleans_up_after_an_error() -> None:
    with pytest.raises(RuntimeError, match="^boom$"), datapaths.registered(PlugDatapath()):
        raise RuntimeError("boom")
    assert "plugmac" not in registry.DATAPATHS


def test_generator_must_be_a_datapath() -> None:
    class NotHardware(Descriptor):
        name = "nothw"
        generator = int

    with datapaths.registered(NotHardware()):
        assert "nothw" in registry.DATAPATHS
        with pytest.raises(TypeError, match=r"^datapath 'nothw': generator int must be a "
                                            r"subclass of arithforge.hdl.base.Datapath$"):
            registry.build("nothw")


def _plug(name: str = "plug", **params: object) -> Descriptor:
    cls = type("Plug", (Descriptor,), {"name": name, "params": params, "generator": PlugMAC})
    return cls()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("desc", "error", "message"), [
    (PlugMAC, TypeError, "datapath must be a Descriptor instance, not <class "),
    (_plug(""), ValueError, "Plug.name must be an identifier, not ''"),
    (_plug(" plug"), ValueError, "Plug.name must be an identifier, not ' plug'"),
    (_plug("fma"), ValueError, "Plug.name must be unique, not 'fma' (taken by FMA)"),
    (_plug(stages=("int", 0, "x")), TypeError,
     "Plug.params['stages'] must be a Param, not ('int', 0, 'x')"),
    (_plug(**{"a-b": Param("int", 0, "x", 0, 1)}), ValueError,
     "Plug.params keys must be identifiers, not 'a-b'"),
    (_plug(x=Param("float", 0, "x")), ValueError,
     ("Plug.params['x'].kind must be one of format, int, str, bool, size or "
      "'choice:<a>|<b>|...', not 'float'")),
    (_plug(x=Param("choice:a||b", "a", "x")), ValueError,
     "Plug.params['x'].kind must list non-empty choices, not 'choice:a||b'"),
    (_plug(x=Param("int", 0, "x", 4, 1)), ValueError,
     "Plug.params['x'] low must be at most high, not 4 > 1"),
    (_plug(x=Param("int", 0, "x", 0, 1.5)), TypeError,  # type: ignore[arg-type]
     "Plug.params['x'] bounds must be integers or None, not 1.5"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_register_refuses(desc: object, error: type[Exception], message: str) -> None:
    """The one registration call checks a plug-in's descriptor before the registry holds it."""
    before = dict(datapaths.DATAPATHS)
    with pytest.raises(error) as exc:
        datapaths.register(desc)  # type: ignore[arg-type]
    assert str(exc.value).startswith(message)
    assert datapaths.DATAPATHS == before
