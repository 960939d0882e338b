# Ref: Weste & Harris, "CMOS VLSI Design" 4th ed., ch. 11 (adders, multipliers, shifters,
#      comparators, leading-zero counters); Brent & Kung 1982 and Kogge & Stone 1973 (prefix
#      adders); Booth 1951, Wallace 1964 (multipliers).
"""Closed-form cost of each component kind: cell counts and critical-path delay.

Each primitive returns a :class:`Primitive`: how many standard cells of the technology
(:data:`~arithforge.costmodel.tech.CELLS`) it is built from, how many of them switch in one
operation, and its delay from inputs to outputs in terms of the cells' delays. :func:`cost` turns
that into area, transistors, energy and delay with a :class:`~.tech.Technology`.

The cell counts follow the textbook structures; where Yosys maps a structure differently (its
signed multiplier sign-extends the operands) the count follows what synthesis builds, since the
model predicts the synthesis truth it is calibrated against, and the comment says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .tech import KINDS, Technology

__all__ = ["ADDER_ARCHS", "MULTIPLIER_ARCHS", "LUT_STORAGE", "ComponentCost", "Primitive",
           "adder", "comparator", "cost", "logic", "lut", "lzc", "multiplier", "mux", "primitive",
           "register", "rounder", "shifter"]

ADDER_ARCHS = ("ripple", "brent-kung", "kogge-stone")
MULTIPLIER_ARCHS = ("array", "wallace", "booth")
LUT_STORAGE = ("ff", "rom", "sram")


def clog2(n: int) -> int:
    """Ceiling of log2(n), at least 0."""
    return max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Primitive:
    """A component as standard cells.

    Members
    -------
    cells : dict of str to float
        Cells built (area, transistors).
    delay : callable
        Delay in ns given the technology.
    switched : dict of str to float, optional
        Cells that switch in one operation (energy); default all of ``cells``. A table read
        switches one word, not every stored bit.
    """

    cells: Mapping[str, float]
    delay: Callable[[Technology], float]
    switched: Mapping[str, float] | None = None


@dataclass(frozen=True)
class ComponentCost:
    """Cost of one component (all ``count`` copies of it).

    Members
    -------
    area_um2, transistors, energy_pj : float
        Calibrated, for all copies.
    delay_ns : float
        Inputs to outputs of one copy; a register's is its clock-to-Q.
    cells : dict of str to float
        Uncalibrated cell counts, all copies.
    raw_transistors : float
        Uncalibrated transistors, all copies: what calibration fits its factors on.
    """

    area_um2: float
    transistors: float
    energy_pj: float
    delay_ns: float
    cells: Mapping[str, float] = field(default_factory=dict)
    raw_transistors: float = 0.0


def _csa_levels(operands: int) -> int:
    """Levels of 3:2 compressors that reduce ``operands`` rows to two."""
    levels = 0
    while operands > 2:
        operands = 2 * (operands // 3) + operands % 3
        levels += 1
    return levels


def _check(value: int, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer of at least {minimum}, not {value!r}")
    return value


# -- primitives ---------------------------------------------------------------------------------

def adder(width: int, *, arch: str = "ripple", inputs: int = 2,
          data_bits: int | None = None) -> Primitive:
    """Carry-propagate adder of ``inputs`` ``width``-bit variable operands.

    One variable operand (``inputs=1``: increment, negate, add a constant) is a half-adder
    chain: one half adder per bit, delay linear in the width. More than two operands first go
    through a carry-save tree of full adders. ``ripple``: one full
    adder per bit, delay linear in the width (what Yosys and ABC build when optimizing area).
    ``data_bits`` (two operands, ripple): only that many bits of one operand vary (an FMA's
    narrow product term inside the wide sum window, the rest constant zero); the other
    positions add a carry to one variable bit, a half adder each.
    ``brent-kung`` / ``kogge-stone``: generate/propagate half adders, a prefix tree of
    ``2w - 2 - log2 w`` / ``w log2 w - w + 1`` carry cells (three gates each) and sum XORs; delay
    logarithmic.
    """
    w = _check(width, "adder width")
    _check(inputs, "adder inputs", 1)
    if arch not in ADDER_ARCHS:
        raise ValueError(f"adder arch must be one of {', '.join(ADDER_ARCHS)}, not {arch!r}")
    if inputs == 1:
        return Primitive({"ha": float(w)}, lambda t: w * t.cell("ha").delay_ns)
    levels = _csa_levels(inputs)
    cells: dict[str, float] = {"fa": float((inputs - 2) * w)}
    lg = clog2(w)
    if arch == "ripple":
        if inputs == 2 and data_bits is not None:
            d = min(w, _check(data_bits, "adder data_bits"))
            cells.update(fa=float(d), ha=float(w - d))
            return Primitive(cells, lambda t: d * t.cell("fa").delay_ns
                             + (w - d) * t.cell("ha").delay_ns)
        cells["fa"] += w
        return Primitive(cells, lambda t: (levels + w) * t.cell("fa").delay_ns)
    prefix = 2 * w - 2 - lg if arch == "brent-kung" else w * lg - w + 1
    depth = 2 * lg - 1 if arch == "brent-kung" else lg
    cells.update(ha=float(w), gate=3.0 * max(prefix, 0), xor2=float(w))
    return Primitive(cells, lambda t: (levels * t.cell("fa").delay_ns + t.cell("ha").delay_ns
                                       + max(depth, 0) * 2 * t.cell("gate").delay_ns
                                       + t.cell("xor2").delay_ns))


def multiplier(a_width: int, b_width: int | None = None, *, arch: str = "array",
               signed: bool = False, cpa: str = "brent-kung", macc_width: int = 0) -> Primitive:
    """Multiplier of an ``a_width``-bit by a ``b_width``-bit operand, full-width product.

    ``array``: ``a*b`` partial-product ANDs and ``(a-1)(b-1)`` full adders in rows, what Yosys
    0.23 builds for ``$mul``; delay ``a + b`` full adders. ``wallace``: the same ANDs reduced by a
    3:2 tree, then a ``cpa`` adder. ``booth``: radix-4 Booth recoding (``b/2 + 1`` partial
    products, each a row of select cells of one MUX2 and one XOR2), a 3:2 tree and a ``cpa``
    adder. ``signed`` adds a quarter of the partial-product bits in full adders: Yosys maps a
    signed ``$mul`` by sign-extending the operands (8x8 signed: 3618 transistors, unsigned 2766).

    ``macc_width``: the product feeds an adder of this width directly, and Yosys (``alumacc``)
    fuses the two into one ``$macc`` whose signed partial products it sign-extends to that width;
    each extra bit costs about ``0.65 * b`` full adders (measured: signed 8x8 into a 33-bit sum
    9428 transistors, 5362 with ``-noalumacc``; 4x4 and 16x16 alike). Unsigned products are
    unaffected.
    """
    a = _check(a_width, "multiplier width")
    b = a if b_width is None else _check(b_width, "multiplier width")
    if arch not in MULTIPLIER_ARCHS:
        raise ValueError(f"multiplier arch must be one of {', '.join(MULTIPLIER_ARCHS)}, "
                         f"not {arch!r}")
    extra = a * b / 4 if signed and arch != "booth" else 0.0
    if signed:
        extra += 0.65 * b * max(0, macc_width - a - b)
    if arch == "array":
        cells = {"and2": float(a * b), "fa": (a - 1) * (b - 1) + extra, "ha": float(a - 1)}
        return Primitive(cells, lambda t: (a + b) * t.cell("fa").delay_ns)
    final = adder(a + b, arch=cpa)
    if arch == "wallace":
        rows = b
        cells = {"and2": float(a * b), "fa": max(0.0, a * b - 2.0 * (a + b)) + extra,
                 "ha": float(a)}
        gen = "and2"
    else:
        rows = b // 2 + (0 if signed else 1)
        cells = {"gate": 6.0 * rows, "mux2": float(rows * (a + 1)), "xor2": float(rows * (a + 1)),
                 "fa": float(max(rows - 2, 0) * (a + 2))}
        gen = "mux2"
    for name, n in final.cells.items():
        cells[name] = cells.get(name, 0.0) + n
    levels = _csa_levels(rows)
    return Primitive(cells, lambda t: (t.cell(gen).delay_ns + t.cell("xor2").delay_ns * (
        gen == "mux2") + levels * t.cell("fa").delay_ns + final.delay(t)))


def shifter(width: int, *, shift_bits: int | None = None, bidirectional: bool = False,
            sticky: bool = False, data_bits: int | None = None) -> Primitive:
    """Logarithmic barrel shifter of a ``width``-bit word by a ``shift_bits``-bit distance.

    One MUX2 row per distance bit up to ``log2(width)``; larger distances only force zeros (one
    gate per bit per further bit). ``bidirectional`` doubles the rows and adds a direction MUX;
    ``sticky`` adds an OR tree over the bits shifted out.

    ``data_bits``: only that many bits at the far end of the word vary (an alignment shifter
    placing a ``p``-bit significand at the top of a wide window; the rest is constant zero).
    The rows run from the shortest distance up, as :class:`arithforge.hdl.primitives.
    AlignShifter` builds them, so after the row of distance ``2**k`` the varying span is
    ``data_bits + 2**(k + 1) - 1`` bits: a row costs a MUX2 per varying output bit, not per
    word bit, since synthesis removes a multiplexer whose inputs are both constant (and a
    sticky OR gate over constant bits). Default: every bit varies.
    """
    w = _check(width, "shifter width")
    s = clog2(w) if shift_bits is None else _check(shift_bits, "shifter shift_bits", 0)
    stages = min(s, clog2(w))
    d = w if data_bits is None else min(w, _check(data_bits, "shifter data_bits"))
    if d == w:
        rows = float(w * stages)
        span = float(w)
        ors = float(w)
    else:
        # Varying bits entering row k (the word's top ``before``) and leaving it; the sticky
        # OR of row k looks at the ``2**k`` bits it drops, of which the varying ones count.
        rows = ors = 0.0
        before = d
        for k in range(stages):
            after = min(w, d + (2 << k) - 1)
            rows += after
            ors += max(0, (1 << k) - (w - before))
            before = after
        span = float(before)
    cells: dict[str, float] = {"mux2": rows, "gate": span * (s - stages)}
    if bidirectional:
        cells["mux2"] = 2 * cells["mux2"] + w
        cells["gate"] *= 2
    if sticky:
        cells["gate"] += ors
    extra = 1 if bidirectional else 0
    zero = 1 if s > stages else 0
    return Primitive(cells, lambda t: (stages + extra) * t.cell("mux2").delay_ns
                     + zero * t.cell("gate").delay_ns)


def lzc(width: int) -> Primitive:
    """Leading-zero counter of a ``width``-bit word: a binary tree of about three gates per bit,
    ``log2(width)`` levels of two gates."""
    w = _check(width, "lzc width")
    return Primitive({"gate": 3.0 * w}, lambda t: 2 * max(clog2(w), 1) * t.cell("gate").delay_ns)


def comparator(width: int, *, op: str = "lt") -> Primitive:
    """Comparator of two ``width``-bit words: ``lt`` (magnitude: an XOR and three gates per bit)
    or ``eq`` (an XNOR and one gate of the AND tree per bit); logarithmic delay."""
    w = _check(width, "comparator width")
    if op not in ("lt", "eq"):
        raise ValueError(f"comparator op must be 'lt' or 'eq', not {op!r}")
    gates = 3.0 * w if op == "lt" else float(w)
    return Primitive({"xor2": float(w), "gate": gates},
                     lambda t: t.cell("xor2").delay_ns
                     + 2 * max(clog2(w), 1) * t.cell("gate").delay_ns)


def mux(width: int, *, inputs: int = 2) -> Primitive:
    """Multiplexer of ``inputs`` ``width``-bit words: a tree of ``inputs - 1`` MUX2 per bit."""
    w = _check(width, "mux width")
    k = _check(inputs, "mux inputs", 2)
    return Primitive({"mux2": float((k - 1) * w)},
                     lambda t: clog2(k) * t.cell("mux2").delay_ns)


def register(width: int, *, enable: bool = False) -> Primitive:
    """``width`` D flip-flops; the delay is clock-to-Q (setup is charged where a path ends).

    ``enable``: a load enable (``if (en) q <= d``, a register loaded on acceptance or while
    busy), which the CMOS flow's ``dfflegalize`` turns into a plain flip-flop behind a MUX2 that
    feeds back its output: one MUX2 per bit (measured: 32 bits 898 transistors against 512
    without the enable). The MUX sits before the D input, off the clock-to-Q path; its delay is
    left out like the setup time.
    """
    w = _check(width, "register width")
    cells = {"dff": float(w), "mux2": float(w)} if enable else {"dff": float(w)}
    return Primitive(cells, lambda t: t.cell("dff").delay_ns)


def rounder(width: int) -> Primitive:
    """Rounding incrementer of a ``width``-bit significand: a half adder per bit and four gates
    of round-bit logic; delay of a prefix incrementer."""
    w = _check(width, "rounder width")
    return Primitive({"ha": float(w), "gate": 4.0},
                     lambda t: t.cell("ha").delay_ns
                     + 2 * (max(clog2(w), 1) + 1) * t.cell("gate").delay_ns)


def logic(width: int, *, gates: float | None = None, depth: int = 1) -> Primitive:
    """Random logic: ``gates`` NAND2 equivalents (default one per bit), ``depth`` levels."""
    w = _check(width, "logic width", 0)
    n = float(w) if gates is None else float(gates)
    if not n >= 0:
        raise ValueError(f"logic gates must be non-negative, not {gates!r}")
    d = _check(depth, "logic depth", 0)
    return Primitive({"gate": n}, lambda t: d * t.cell("gate").delay_ns)


def lut(width: int, *, entries: int, storage: str = "ff") -> Primitive:
    """Lookup table (register file) of ``entries`` words of ``width`` bits, one read per op.

    ``ff``: flip-flops read through a MUX tree; the storage is clock-gated, so a read switches
    half the tree. ``rom``: a constant table synthesized into about ``entries / log2(entries)``
    gates per output bit. ``sram``: an SRAM array with a decoder; a read switches one word of bit
    cells at the technology's per-bit read energy and takes ``sram_access_ns``.
    """
    w = _check(width, "lut width")
    e = _check(entries, "lut entries")
    if storage not in LUT_STORAGE:
        raise ValueError(f"lut storage must be one of {', '.join(LUT_STORAGE)}, "
                         f"not {storage!r}")
    lg = clog2(e)
    if storage == "ff":
        tree = float((e - 1) * w)
        return Primitive({"dff": float(e * w), "mux2": tree},
                         lambda t: lg * t.cell("mux2").delay_ns, {"mux2": tree / 2})
    if storage == "rom":
        return Primitive({"gate": w * e / max(lg, 1)},
                         lambda t: 2 * max(lg, 1) * t.cell("gate").delay_ns)
    return Primitive({"sram_bit": float(e * w), "gate": float(e)}, lambda t: t.sram_access_ns,
                     {"sram_bit": float(w), "gate": float(lg)})


# -- dispatch -----------------------------------------------------------------------------------

def _int_attr(attrs: Mapping[str, Any], key: str, node: str, default: int | None = None) -> int:
    value = attrs.get(key, default)
    if value is None:
        raise ValueError(f"component {node!r} ({attrs.get('kind')}) needs attribute {key!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"component {node!r} attribute {key!r} must be an integer, "
                         f"not {value!r}")
    return value


def primitive(attrs: Mapping[str, Any], node: str = "?") -> Primitive:
    """Build the primitive of one structure-graph node from its attributes.

    Attributes read (besides ``kind`` and ``width``): adder ``arch``, ``inputs``; multiplier
    ``a_width``, ``b_width`` (default ``width`` each), ``arch``, ``signed``, ``cpa``,
    ``macc_width`` (set by :func:`~.model.node_attrs`); shifter ``shift_bits``,
    ``bidirectional``, ``sticky``, ``data_bits``; comparator ``op``; mux ``inputs``; register
    ``enable``; logic
    ``gates``, ``depth``; lut ``entries``, ``storage``. Others are ignored.
    """
    kind = attrs.get("kind")
    if kind not in KINDS:
        raise ValueError(f"component {node!r} kind must be one of {', '.join(KINDS)}, "
                         f"not {kind!r}")
    width = _int_attr(attrs, "width", node, 0 if kind == "logic" else None)
    try:
        if kind == "adder":
            data = attrs.get("data_bits")
            return adder(width, arch=attrs.get("arch", "ripple"),
                         inputs=_int_attr(attrs, "inputs", node, 2),
                         data_bits=None if data is None else _int_attr(attrs, "data_bits",
                                                                       node))
        if kind == "multiplier":
            a = _int_attr(attrs, "a_width", node, width)
            b = _int_attr(attrs, "b_width", node, width if "a_width" not in attrs else a)
            return multiplier(a, b, arch=attrs.get("arch", "array"),
                              signed=bool(attrs.get("signed", False)),
                              cpa=attrs.get("cpa", "brent-kung"),
                              macc_width=_int_attr(attrs, "macc_width", node, 0))
        if kind == "shifter":
            bits = attrs.get("shift_bits")
            data = attrs.get("data_bits")
            return shifter(width, shift_bits=None if bits is None else int(bits),
                           bidirectional=bool(attrs.get("bidirectional", False)),
                           sticky=bool(attrs.get("sticky", False)),
                           data_bits=None if data is None else _int_attr(attrs, "data_bits",
                                                                         node))
        if kind == "lzc":
            return lzc(width)
        if kind == "comparator":
            return comparator(width, op=attrs.get("op", "lt"))
        if kind == "mux":
            return mux(width, inputs=_int_attr(attrs, "inputs", node, 2))
        if kind == "register":
            return register(width, enable=bool(attrs.get("enable", False)))
        if kind == "rounder":
            return rounder(width)
        if kind == "logic":
            return logic(width, gates=attrs.get("gates"),
                         depth=_int_attr(attrs, "depth", node, 1))
        return lut(width, entries=_int_attr(attrs, "entries", node),
                   storage=attrs.get("storage", "ff"))
    except ValueError as exc:
        if str(exc).startswith("component "):
            raise
        raise ValueError(f"component {node!r}: {exc}") from None


def cost(attrs: Mapping[str, Any], tech: Technology, node: str = "?") -> ComponentCost:
    """Area, transistors, energy per operation and delay of one node, ``count`` copies.

    The node's ``activity`` (default 1: uniformly random operands) scales its energy; the
    technology's calibration factor of its kind scales area and transistors. Energy keeps the
    technology's per-cell energies, which are anchored on Horowitz's measurements: synthesis
    counts cells, it measures no energy, and a factor that makes up for how a datapath
    annotates its graph says nothing about switched capacitance.
    """
    prim = primitive(attrs, node)
    count = attrs.get("count", 1)
    activity = attrs.get("activity", 1.0)
    if not (isinstance(count, int | float) and count >= 0):
        raise ValueError(f"component {node!r} count must be non-negative, not {count!r}")
    if not (isinstance(activity, int | float) and activity >= 0):
        raise ValueError(f"component {node!r} activity must be non-negative, not {activity!r}")
    factor = tech.calibration.factor(str(attrs["kind"]))
    cells = {name: n * count for name, n in prim.cells.items() if n}
    switched = prim.cells if prim.switched is None else prim.switched
    raw = sum(n * tech.cell(c).transistors for c, n in cells.items())
    return ComponentCost(
        area_um2=factor * sum(n * tech.cell(c).area_um2 for c, n in cells.items()),
        transistors=factor * raw,
        energy_pj=count * activity * sum(n * tech.cell(c).energy_pj
                                                  for c, n in switched.items()),
        delay_ns=prim.delay(tech),
        cells=cells,
        raw_transistors=raw,
    )
