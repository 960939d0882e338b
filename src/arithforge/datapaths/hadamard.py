# Ref: the fast Walsh-Hadamard transform (Sylvester order, log2(n) butterfly stages); its use
#      before 4-bit quantization: QuaRot (arXiv 2404.00456 §3-4, online Hadamard of the
#      down-projection input), HALO (arXiv 2501.02625), Tseng et al. "Training LLMs with MXFP4"
#      (arXiv 2502.20586), NVIDIA "Pretraining LLMs with NVFP4" (arXiv 2509.25149, 16x16 RHT).
"""The fast Walsh-Hadamard transform unit ``hadamard``: ``y = H_n x`` of ``n`` integer codes,
exact (``arithforge.hdl.hadamard``, ``formats.hadamard.fwht_int``).

One transaction transforms one block of ``n`` two's-complement codes of ``bits`` bits (port
``x``, lane 0 in the low bits) into ``n`` codes of ``bits + log2(n) - shift`` bits (port
``result``, same order): ``log2(n)`` butterfly stages of ``n/2`` adders and ``n/2`` subtractors,
each stage one bit wider than the one before, so nothing is rounded or saturated; with
``shift > 0`` each output is then shifted right with round-half-even (``rounding=rne``) or
floor (``rounding=floor``). With ``fmt`` (a float format of at most 16 bits with NaN) the lanes
are codes of that format and every butterfly is two adders of the ``add`` datapath, ``a + b``
and ``a + (-b)``, each rounded to nearest even in ``fmt`` (``formats.hadamard.fwht_float``).
Throughput one block per cycle, latency ``stages``.

This is the activation side of a Hadamard rotation (``arithforge evaluate --transform
hadamard``): the weights are rotated offline, for free; the activations need this unit in front
of the GEMM array, one block of K per cycle. It has no GEMM model of its own and is not a PE.

Its unit, :class:`HadamardUnit`, is everything of ``arithforge.hdl.hadamard.HadamardTransform``
but the hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..formats import FloatFormat, hadamard
from ._cases import corner_codes
from ._common import check_range
from .base import AcceptanceCheck, DatapathError, Descriptor, Param, check_stages, stages_param
from .unit import Graph, Unit, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Hadamard", "HadamardUnit", "cut_order", "pack", "unpack"]

#: Block sizes and input widths the generator takes.
MIN_N, MAX_N = 2, 128
MIN_BITS, MAX_BITS = 2, 16
#: Exhaustive vectors: every block when its input has at most this many bits.
EXHAUSTIVE_LIMIT_BITS = 20

PARAMS: dict[str, Param] = {
    "n": Param("int", 16, "block size: a power of two (16 to 128 for rotations; 2 to 8 to verify "
                          "exhaustively)", MIN_N, MAX_N),
    "bits": Param("int", 8, "width of each input code (two's complement)", MIN_BITS, MAX_BITS),
    "shift": Param("int", 0, "right shift of the outputs, at most log2(n) - 1 (log2(n)/2: "
                             "orthonormal for n = 16, 64)", 0, 6),
    "rounding": Param("choice:rne|floor", "rne",
                      "rounding of the shifted-out bits: half to even, or floor"),
    "fmt": Param("format", None, "float lanes in this format instead of integers: every "
                                 "butterfly an add/sub rounded to nearest even in it (bits and "
                                 "shift do not apply)"),
    "stages": stages_param(),
}


def cut_order(levels: int) -> tuple[str, ...]:
    """Pipeline cut points by priority: after butterfly stage ``s`` is ``stage<s>``; the first
    cut halves the stages, the next ones halve the halves (breadth first)."""
    order: list[str] = []
    spans = [(0, levels)]
    while spans:
        lo, hi = spans.pop(0)
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        order.append(f"stage{mid - 1}")
        spans += [(lo, mid), (mid, hi)]
    return tuple(order)


# -- port packing -------------------------------------------------------------------------------
# Lane j of w bits sits at bits j*w .. j*w + w - 1 of the port; ports over 64 bits travel as
# little-endian 64-bit words (the harness's layout). Lane by lane, so memory stays at the
# words themselves (a 128 x 16-bit block is 32 words, not 2048 bit planes).

def pack(lanes: np.ndarray, bits: int) -> np.ndarray:
    """``(vectors, n)`` lane codes as port codes: 1-D for ports of at most 64 bits, else
    ``(vectors, words)`` uint64."""
    el = np.asarray(lanes).astype(np.uint64) & np.uint64((1 << bits) - 1)
    count, n = el.shape
    width = n * bits
    words = (width + 63) // 64
    out = np.zeros((count, words), dtype=np.uint64)
    for j in range(n):
        word, off = divmod(j * bits, 64)
        out[:, word] |= el[:, j] << np.uint64(off)
        if off + bits > 64:
            out[:, word + 1] |= el[:, j] >> np.uint64(64 - off)
    return out if width > 64 else out[:, 0]


def unpack(codes: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(vectors, n)`` uint64 lane codes."""
    words = (n * bits + 63) // 64
    arr = np.asarray(codes).astype(np.uint64).reshape(-1, words)
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((arr.shape[0], n), dtype=np.uint64)
    for j in range(n):
        word, off = divmod(j * bits, 64)
        v = arr[:, word] >> np.uint64(off)
        if off + bits > 64:
            v |= arr[:, word + 1] << np.uint64(64 - off)
        out[:, j] = v & mask
    return out


# -- the unit -----------------------------------------------------------------------------------

class HadamardUnit(Unit):
    """Fast Walsh-Hadamard transform of ``n`` integer or float codes (module docstring).

    Parameters
    ----------
    n : int
        Block size, a power of two from 2 to 128.
    bits : int
        Input code width, 2 to 16 (two's complement).
    shift : int
        Right shift of the outputs, 0 to ``log2(n) - 1``.
    rounding : {"rne", "floor"}
        Rounding of the shift.
    fmt : FloatFormat, optional
        Float lanes (at most 16 bits): ``formats.hadamard.fwht_float``, every butterfly an
        add/sub rounded to nearest even in ``fmt`` (the ``add`` datapath's adder). ``bits`` is
        then the format's and ``shift`` must be 0.
    stages : int
        Pipeline registers (latency).
    """

    name: ClassVar[str] = "hadamard"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    def __init__(self, n: int = 16, bits: int = 8, *, shift: int = 0, rounding: str = "rne",
                 fmt: FloatFormat | None = None, stages: int = 0) -> None:
        self._n = check_range(n, "n", MIN_N, MAX_N)
        if self._n & (self._n - 1):
            raise DatapathError(f"n must be a power of two (2, 4, 8, ..., {MAX_N}), not "
                                f"{self._n!r}")
        self._levels = self._n.bit_length() - 1
        if fmt is not None:
            if not isinstance(fmt, FloatFormat) or fmt.bits > 16 or not fmt.has_nan:
                # Without a NaN code a butterfly's overflow or inf - inf has no result.
                raise DatapathError(f"fmt must be a float format of at most 16 bits with NaN "
                                    f"(float8_e4m3fn, float8_e5m2, bfloat16, float16...), not "
                                    f"{getattr(fmt, 'name', fmt)!r}")
            if shift:
                raise DatapathError(f"shift applies to integer lanes only, not to fmt "
                                    f"{fmt.name!r}: scale float results by a power of two "
                                    f"instead (exact)")
            bits = fmt.bits
        self._fmt = fmt
        self._bits = check_range(bits, "bits", MIN_BITS, MAX_BITS)
        self._shift = check_range(shift, "shift", 0, 6)
        if self._shift > self._levels - 1:
            raise DatapathError(f"shift must be at most log2(n) - 1 = {self._levels - 1} for "
                                f"n = {self._n} (a larger shift could round past the output "
                                f"range), not {self._shift!r}")
        if rounding not in hadamard.ROUNDINGS:
            raise DatapathError(f"rounding must be one of {', '.join(hadamard.ROUNDINGS)}, not "
                                f"{rounding!r}")
        self._rounding = str(rounding)
        self._stages = check_stages(stages)
        self._ready()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Block size."""
        return self._n

    @property
    def out_bits(self) -> int:
        """Width of each output code: ``bits + log2(n) - shift`` (the format's for float
        lanes)."""
        if self._fmt is not None:
            return self._bits
        return self._bits + self._levels - self._shift

    @property
    def operands(self) -> tuple[str, ...]:
        return ("x",)

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"x": self._n * self._bits}

    @property
    def result_width(self) -> int:
        return self._n * self.out_bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        # Ports pack n codes each: the lane widths are in describe().
        return {}

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "n": self._n, "bits": self._bits, "shift": self._shift,
                "rounding": self._rounding,
                "fmt": None if self._fmt is None else self._fmt.name, "stages": self._stages,
                "latency": self.latency, "out_bits": self.out_bits,
                "adders": self._n * self._levels}

    # -- packing --------------------------------------------------------------------------------
    def split(self, x: np.ndarray) -> np.ndarray:
        """Port codes of ``x`` as ``(vectors, n)`` lane codes."""
        return unpack(x, self._n, self._bits)

    def join(self, lanes: np.ndarray) -> np.ndarray:
        """``(vectors, n)`` lane codes as port codes of ``x``."""
        return pack(lanes, self._bits)

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, x: np.ndarray) -> np.ndarray:
        if self._fmt is not None:
            return pack(hadamard.fwht_float(self.split(x), self._fmt), self.out_bits)
        y = hadamard.fwht_int(self.split(x), self._bits, self._shift, self._rounding)
        return pack(y, self.out_bits)

    def _corner_lanes(self) -> np.ndarray:
        """Blocks at the edges: zeros, every lane at either end or one, one lane set, and for
        every row of ``H`` the inputs that drive it to its largest and smallest sum."""
        n, b = self._n, self._bits
        if self._fmt is not None:
            # Every pair of the format's corner codes meets in the first stage's butterflies
            # (lanes 2j, 2j + 1); later stages see their rounded sums and differences.
            cc = corner_codes(self._fmt).astype(np.int64)
            pa, pb = np.meshgrid(cc, cc, indexing="ij")
            pairs = np.stack([pa.ravel(), pb.ravel()], axis=1)
            return np.tile(pairs, (1, n // 2))
        lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
        rows: list[np.ndarray] = [np.full(n, v, dtype=np.int64) for v in (0, lo, hi, 1, -1)]
        for lane in range(n):
            for v in (lo, hi):
                one = np.zeros(n, dtype=np.int64)
                one[lane] = v
                rows.append(one)
        for h in hadamard.sylvester(n):
            rows.append(np.where(h > 0, hi, lo))
            rows.append(np.where(h > 0, lo, hi))
        return np.array(rows, dtype=np.int64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw blocks.

        ``exhaustive``: every block when ``n * bits <= 20``, else a ``DatapathError``.
        ``corner``: the blocks of :meth:`_corner_lanes` (a seeded subsample of ``n`` of them, or
        topped up with random blocks to ``n``); for float lanes every pair of the format's corner
        codes in lanes (0, 1), the pattern repeated over the block. ``random``: half uniform
        codes, half blocks of codes near the ends and near zero (wide sums, and ties of the
        rounding); uniform codes for float lanes.
        """
        check_kind(kind, n)
        width = self._n * self._bits
        b = self._bits
        if kind == "exhaustive":
            if width > EXHAUSTIVE_LIMIT_BITS:
                raise DatapathError(f"exhaustive vectors must have at most "
                                    f"{EXHAUSTIVE_LIMIT_BITS} input bits, not n * bits = "
                                    f"{width}; use random or corner vectors")
            codes = np.arange(1 << width, dtype=np.uint64)
            return {"x": codes}
        if kind == "random":
            assert n is not None
            count = int(n)
            lanes = rng.integers(0, 1 << b, size=(count, self._n), dtype=np.uint64)
            if self._fmt is not None:
                return {"x": self.join(lanes)}
            near = rng.integers(-3, 4, size=(count, self._n)) \
                + np.where(rng.integers(0, 3, size=(count, self._n)) == 0, 0,
                           np.where(rng.integers(0, 2, size=(count, self._n)) == 0,
                                    -(1 << (b - 1)) + 3, (1 << (b - 1)) - 4))
            mixed = rng.integers(0, 2, size=count).astype(bool)
            lanes[mixed] = near[mixed].astype(np.int64).astype(np.uint64)
            return {"x": self.join(lanes)}
        lanes = self._corner_lanes().astype(np.uint64)
        if n is not None and int(n) < len(lanes):
            lanes = lanes[np.sort(rng.choice(len(lanes), size=int(n), replace=False))]
        elif n is not None and int(n) > len(lanes):
            extra = rng.integers(0, 1 << b, size=(int(n) - len(lanes), self._n), dtype=np.uint64)
            lanes = np.concatenate([lanes, extra])
        return {"x": self.join(lanes)}

    def structure(self) -> nx.DiGraph:
        cuts, extra = choose_cuts(cut_order(self._levels), self._stages)
        g = Graph(cuts)
        n, b = self._n, self._bits
        after: tuple[str, ...] = (g.node("in_x", "input", n * b),)
        if self._fmt is not None:
            from .fma import AddUnit

            sub = AddUnit(self._fmt, self._fmt, self._fmt).structure()
            for s in range(self._levels):
                # n adders a stage: n/2 sums and n/2 differences (b's sign bit inverted: free).
                ends = _embed(g, sub, f"stage{s}", n, after)
                after = g.cut(f"stage{s}", n * b, *ends)
            for name in self._output_stages(extra):
                after = g.cut(name, self.result_width, *after)
            g.node("out", "output", self.result_width, *after)
            g.g.graph.update(name=self.name, latency=self.latency)
            return g.g
        for s in range(self._levels):
            w = b + s + 1
            add = g.node(f"stage{s}_add", "adder", w, *after, count=n // 2)
            sub = g.node(f"stage{s}_sub", "adder", w, *after, count=n // 2)
            after = g.cut(f"stage{s}", n * w, add, sub)
        if self._shift:
            # The increment of round-half-even (or nothing for floor, which only drops bits):
            # one half-adder chain per lane plus the tie logic.
            if self._rounding == "rne":
                inc = g.node("round_increment", "adder", self.out_bits, *after, inputs=1,
                             count=n)
                after = (g.node("round_decide", "logic", 3, inc, count=n),)
        for name in self._output_stages(extra):
            after = g.cut(name, self.result_width, *after)
        g.node("out", "output", self.result_width, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g


def _embed(g: Graph, sub: nx.DiGraph, prefix: str, count: int, after: tuple[str, ...]
           ) -> tuple[str, ...]:
    """Copy a sub-datapath's graph (``count`` instances as one node each, ``prefix_`` names)
    after the nodes ``after``; return the nodes that fed its output."""
    names = {}
    for node, attrs in sub.nodes(data=True):
        if attrs.get("kind") in ("input", "output"):
            continue
        names[node] = f"{prefix}_{node}"
        extra = {k: v for k, v in attrs.items() if k not in ("kind", "width")}
        extra["count"] = count * extra.get("count", 1)
        g.node(names[node], attrs["kind"], attrs["width"], **extra)
    ends = []
    for u, v in sub.edges():
        ku, kv = sub.nodes[u].get("kind"), sub.nodes[v].get("kind")
        if ku == "input" and kv != "output":
            for a in after:
                g.g.add_edge(a, names[v])
        elif kv == "output" and ku != "input":
            ends.append(names[u])
        elif ku != "input" and kv != "output":
            g.g.add_edge(names[u], names[v])
    return tuple(dict.fromkeys(ends))


class Hadamard(Descriptor):
    """The FWHT unit (module docstring)."""

    name: ClassVar[str] = "hadamard"
    summary: ClassVar[str] = ("fast Walsh-Hadamard transform of n codes: integers exact, floats "
                              "rounded per butterfly")
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.hadamard:HadamardTransform"
    unit: ClassVar[type] = HadamardUnit
    #: In a transformer block (``arithforge.dse.block``): the ``--transform`` kinds whose
    #: activation side this unit computes online, one block of ``n`` = the transform's block a
    #: cycle (the weights are rotated offline, for free).
    block_transforms: ClassVar[tuple[str, ...]] = ("hadamard", "rht")
    #: Cost-model calibration (``arithforge calibrate``): integer lanes at the rotation block
    #: sizes 16 to 64, with and without the rounding shift. n = 128 is left out: at n = 64 Yosys
    #: took 257 s (CMOS) and 241 s (OSU 0.18 um) on the shared machine, and n = 128, twice the
    #: butterflies, would pass the 300 s asic limit. Float lanes are left out too: their Verilog
    #: (64 ``add`` units at n = 16, 1.8 MB) is larger still, and their butterflies are the ``add``
    #: datapath that ``fma``'s calibration covers.
    calibration = ({"n": 16}, {"n": 16, "bits": 4, "shift": 2}, {"n": 32}, {"n": 64},
                   {"n": 64, "shift": 3})
    acceptance = (
        AcceptanceCheck("hadamard n=2 int8 (exhaustive, 2**16 blocks)", {"n": 2, "bits": 8},
                        "exhaustive"),
        AcceptanceCheck("hadamard n=4 int4 shift 1 rne (exhaustive)",
                        {"n": 4, "bits": 4, "shift": 1}, "exhaustive"),
        AcceptanceCheck("hadamard n=16 int8 shift 2 rne", {"n": 16, "bits": 8, "shift": 2},
                        "random", 100_000),
        AcceptanceCheck("hadamard n=32 int8 corner", {"n": 32, "bits": 8, "stages": 2},
                        "corner"),
        AcceptanceCheck("hadamard n=128 int16 shift 3 floor",
                        {"n": 128, "bits": 16, "shift": 3, "rounding": "floor"},
                        "random", 100_000),
        AcceptanceCheck("hadamard n=2 float8_e4m3fn (exhaustive)",
                        {"n": 2, "fmt": "float8_e4m3fn"}, "exhaustive"),
        AcceptanceCheck("hadamard n=4 bfloat16", {"n": 4, "fmt": "bfloat16", "stages": 1},
                        "random", 100_000),
    )
