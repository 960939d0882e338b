# Ref: IEEE Std 754-2019 §5.4.1 (fusedMultiplyAdd, multiplication, addition), §6.3 (signed zero);
#      OCP 8-bit Floating Point Specification (OFP8) v1.0 §4; Lang & Bruguera, "Floating-point
#      fused multiply-add with reduced latency" (IEEE TC 53(8), 2004) for the datapath shape;
#      Alexandridis et al., arXiv 2408.11997 (approximate normalization).
"""Fused multiply-add with one rounding, and the multiplier and adder configurations of it.

The datapath: unpack -> exact product (all ``pa + pb`` bits) and, in parallel, alignment of the
addend against it with a sticky bit -> one signed addition -> leading-zero count and
normalizing shift (windowed for approximate normalization) -> one rounding -> overflow,
underflow and special values -> pack.

Widths (``f`` = random_width for stochastic rounding, else 1; ``po``, ``mo`` the output's
precision and stored bits). The sum lives in an ``N``-bit window: the product sits at positions
``L .. L + px - 1``, the addend's top may sit up to ``H`` positions above the product's top,
position 0 is the sticky bit. They are chosen so that the single rounding is exact, by the
argument of the emulator's ``_sum2``:

- ``H = max(mc, mo + f + 1) + 1`` (more for a subnormal addend, whose value may lie far below
  its exponent field): an addend more than ``H`` above the product is placed at ``H``; the
  addend's lowest bit and every rounding boundary of the result then lie above both the true
  and the placed product, so only the product's sign and non-zeroness count, and those are
  kept.
- ``L`` puts the product's lowest possible leading bit at ``max(pc, po + f + 1)``: an addend
  whose bits fall below position 1 (into the sticky) then lies at least two positions below
  the product's leading bit, and the result's rounding boundaries stay above the sticky.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Cat, Const, Module, Mux, Value

from ..datapaths.fma import FMA, MAX_BITS, MAX_RANDOM_WIDTH, TWO_OPERAND_PARAMS
from ..formats import FloatFormat, Format, Rounding, get_format, ops
from ..formats import _core as core
from ..formats.rounding import as_rounding
from . import _cases
from ._float import pack, unpack
from .base import (
    Datapath,
    Graph,
    Param,
    Pipeline,
    check_bool,
    check_kind,
    check_stages,
    choose_cuts,
    wire,
)
from .primitives import AlignShifter, LeadingZeroCount, NormalizeShifter, Rounder

__all__ = ["FusedMultiplyAdd", "Multiplier", "Adder"]



def _float_format(value: Any, what: str) -> FloatFormat:
    if isinstance(value, str):
        value = get_format(value)
    if not isinstance(value, Format):
        raise TypeError(f"{what} must be a FloatFormat or a format name, not {value!r}")
    if not isinstance(value, FloatFormat):
        raise ValueError(f"{what} must be a float format, not {value.name!r}")
    if value.bits > MAX_BITS:
        raise ValueError(f"{what} must be at most {MAX_BITS} bits wide, not {value.name} "
                         f"({value.bits} bits)")
    return value


def _normalization(value: Any) -> int | None:
    if isinstance(value, str):
        if value == "exact":
            return None
        if value.strip().isdigit():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"normalization must be 'exact' or a window width (int >= 1), "
                         f"not {value!r}")
    if value < 1:
        raise ValueError(f"normalization window must be at least 1, not {value!r}")
    if value > ops.MAX_WINDOW:
        raise ValueError(f"normalization window must be at most {ops.MAX_WINDOW} (wider than any "
                         f"adder of the generator: the exact normalizer), not {value!r}")
    return int(value)


def _random_width(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"random_width must be an integer, not {value!r}")
    if not 1 <= value <= MAX_RANDOM_WIDTH:
        raise ValueError(f"random_width must be between 1 and {MAX_RANDOM_WIDTH}, not {value!r}")
    return int(value)


def _smax(a: Value, b: Value) -> Value:
    return Mux(a > b, a, b)


@dataclass(frozen=True)
class Geometry:
    """Widths of the datapath (see the module docstring)."""

    px: int        #: product term width
    zx: int        #: most leading zeros the product term can have
    pc: int        #: addend precision (0: no addend)
    f: int         #: fraction bits the rounder sees
    K: int         #: extra bits below the window in the normalizer's output
    H: int         #: addend positions above the product
    L: int         #: positions below the product (position 0: sticky)
    N: int         #: window (sum) width
    lo: int        #: lowest position the leading-zero count looks at
    smax: int      #: largest normalizing shift


class FusedMultiplyAdd(Datapath):
    """Fused multiply-add ``o = round(a * b + c)`` with a single rounding.

    Bit for bit :func:`arithforge.formats.ops.fma`: the product is exact, the sum is rounded once
    to ``fmt_out`` in the given mode; special values follow each format's policy (NaN and inf
    propagate, ``inf - inf`` and ``0 * inf`` give NaN, a format without inf overflows to NaN or
    to its largest value); a NaN result carries the sign the emulator gives it (the sign of the
    finite part of the sum, + when there is none) where the format has signed NaNs. Latency
    ``stages``, throughput one per cycle.

    Parameters
    ----------
    fmt_a, fmt_b, fmt_c, fmt_out : FloatFormat or str
        Formats of the operands and of the result, each at most 32 bits wide.
    rounding : Rounding or str
        ``rne``, ``rna``, ``rtz``, ``rup``, ``rdn``, ``rto`` or ``stochastic`` (which adds an
        operand ``rand`` of ``random_width`` bits).
    stages : int
        Pipeline registers, placed in order of priority after the multiplier (with the
        addend's alignment), after the normalizer, after the adder, after unpacking, after the
        rounder; more go to the output.
    saturate : bool
        Overflow and infinities give the largest finite value instead of inf/NaN.
    subnormals : bool
        False: subnormal inputs read as zero and results below the smallest normal flush to
        zero (the emulator's ``daz=True, ftz=True``).
    normalization : "exact" or int
        An integer ``W`` makes the normalizer approximate: its leading-zero count covers ``W``
        positions below the adder's top bit (``ops.fma`` documents the result).
    random_width : int
        Random bits per operation for stochastic rounding.

    Members
    -------
    i : In(Signature(valid, a, b, c[, rand]))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "fma"
    cli_params: ClassVar[dict[str, Param]] = FMA.params

    #: Pipeline cut points by priority.
    _CUTS: ClassVar[tuple[str, ...]] = ("product", "normalize", "add", "unpack", "round")
    #: Operand roles: the product's factors and the addend (None: absent).
    _FACTORS: ClassVar[tuple[str, ...]] = ("a", "b")
    _ADDEND: ClassVar[str | None] = "c"

    def __init__(self, fmt_a: FloatFormat | str, fmt_b: FloatFormat | str,
                 fmt_c: FloatFormat | str, fmt_out: FloatFormat | str, *,
                 rounding: Rounding | str = Rounding.RNE, stages: int = 0,
                 saturate: bool = False, subnormals: bool = True,
                 normalization: str | int = "exact", random_width: int = 8) -> None:
        self._setup({"a": _float_format(fmt_a, "fmt_a"), "b": _float_format(fmt_b, "fmt_b"),
                     "c": _float_format(fmt_c, "fmt_c")}, _float_format(fmt_out, "fmt_out"),
                    rounding, stages, saturate, subnormals, normalization, random_width)

    def _setup(self, fmts: dict[str, FloatFormat], fmt_out: FloatFormat, rounding: Any,
               stages: Any, saturate: Any, subnormals: Any, normalization: Any,
               random_width: Any) -> None:
        self._fmts = fmts
        self._fo = fmt_out
        self._rounding = as_rounding(rounding)
        self._stages = check_stages(stages)
        self._saturate = check_bool(saturate, "saturate")
        self._daz = not check_bool(subnormals, "subnormals")
        self._window = _normalization(normalization)
        rw = _random_width(random_width)
        self._rw = rw if self._rounding is Rounding.STOCHASTIC else 0
        self._random_width = rw
        Datapath.__init__(self)

    @classmethod
    def from_params(cls, **p: Any) -> Datapath:
        a = p.pop("a")
        b = p.pop("b", None) or a
        c = p.pop("c", None) or a
        out = p.pop("out", None) or c
        return cls(a, b, c, out, **p)

    # -- facts ----------------------------------------------------------------------------------
    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(self._fmts) + (("rand",) if self._rw else ())

    @property
    def operand_widths(self) -> dict[str, int]:
        widths = {op: f.bits for op, f in self._fmts.items()}
        if self._rw:
            widths["rand"] = self._rw
        return widths

    @property
    def result_width(self) -> int:
        return self._fo.bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        return {**self._fmts, "result": self._fo}

    @property
    def random_width(self) -> int:
        """Width of the ``rand`` operand (0 unless rounding is stochastic)."""
        return self._rw

    def describe(self) -> dict[str, Any]:
        g = self.geometry
        out: dict[str, Any] = {"datapath": self.name}
        out.update({f"fmt_{op}": f.name for op, f in self._fmts.items()})
        out.update(fmt_out=self._fo.name, rounding=str(self._rounding), stages=self._stages,
                   saturate=self._saturate, subnormals=not self._daz,
                   latency=self.latency, window_bits=g.N,
                   formats={k: f.name for k, f in self.formats.items()})
        if self._ADDEND is not None and self.name != "add":
            out["normalization"] = "exact" if self._window is None else self._window
        if self._rw:
            out["random_width"] = self._rw
        return out

    # -- reference ------------------------------------------------------------------------------
    def _rounding_kw(self, rand: np.ndarray | None) -> dict[str, Any]:
        kw: dict[str, Any] = {"saturate": self._saturate, "ftz": self._daz, "daz": self._daz}
        if self._rw:
            kw.update(random_bits=np.asarray(rand).astype(np.int64), random_width=self._rw)
        return kw

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                  rand: np.ndarray | None = None) -> np.ndarray:
        f = self._fmts
        return ops.fma(a, b, c, f["a"], f["b"], f["c"], self._fo, self._rounding,
                       normalization="exact" if self._window is None else self._window,
                       **self._rounding_kw(rand)).astype(np.uint64)

    # -- geometry -------------------------------------------------------------------------------
    def _operand_daz(self, op: str) -> bool:
        """Whether operand ``op`` reads subnormals as zero."""
        return self._daz

    def _min_sig(self, fmt: FloatFormat) -> int:
        """Smallest non-zero significand of an operand (1 for a possible subnormal)."""
        sub = fmt.zero and fmt.subnormals and not self._daz
        return 1 if sub else 1 << fmt.man_bits

    def _term_facts(self) -> tuple[int, int]:
        """Width of the product term and its most leading zeros."""
        fa, fb = (self._fmts[op] for op in self._FACTORS)
        px = fa.precision + fb.precision
        return px, px - (self._min_sig(fa) * self._min_sig(fb)).bit_length()

    @functools.cached_property
    def geometry(self) -> Geometry:
        """Widths of the alignment window, normalizer and rounder."""
        px, zx = self._term_facts()
        fo = self._fo
        mo, po = fo.man_bits, fo.precision
        f = self._rw if self._rw else 1
        K = mo + f + 1
        if self._ADDEND is None:
            N = px
            return Geometry(px, zx, 0, f, K, 0, 0, N, 0, N - 1 + K)
        fc = self._fmts[self._ADDEND]
        pc, mc = fc.precision, fc.man_bits
        c_sub = fc.zero and fc.subnormals and not self._operand_daz(self._ADDEND)
        # An addend far above the product: the placed product must stay below the addend's
        # lowest bit and below the result's finest rounding boundary, which lies mo + f + 1
        # below the addend's top (for a subnormal addend, as far as the output's emin allows).
        reach = max(1, min(mc + 1, fc.emin - fo.emin + 1)) if c_sub else 1
        H = max(mc, mo + f + reach) + 1
        L = max(1, max(pc, po + f + 1) - (px - 1 - zx))
        N = L + px + H + 1
        lo = 0 if self._window is None else max(0, L + px - self._window - 1)
        return Geometry(px, zx, pc, f, K, H, L, N, lo, N - 1 + K - lo)

    # -- hardware -------------------------------------------------------------------------------
    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        """The product term: class flags, sign, significand, exponent of its top position."""
        x, y = (u[op] for op in self._FACTORS)
        nan = x.nan | y.nan | (x.inf & y.zero) | (x.zero & y.inf)
        inf = ~nan & (x.inf | y.inf)
        return SimpleNamespace(nan=nan, inf=inf, neg=x.neg ^ y.neg, sig=x.sig * y.sig,
                               top=x.exp + y.exp + 1)

    def _top_bit(self, u: dict[str, SimpleNamespace], term: SimpleNamespace) -> Value:
        """Exponent of the adder's top bit, ``max(Ea + Eb + 1, Ec) + 1`` (approximate
        normalization)."""
        assert self._ADDEND is not None
        return _smax(term.top, u[self._ADDEND].exp) + 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self.geometry
        fo = self._fo
        mo = fo.man_bits
        flush = self._daz or not fo.subnormals
        cuts, extra = choose_cuts(self._cut_order(), self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        rand = self.i.rand if self._rw else Const(0, 1)

        # Unpack.
        s = pipe.stage("unpack", rand=rand, **{
            f"{op}_{k}": v for op, fmt in self._fmts.items()
            for k, v in vars(unpack(fmt, getattr(self.i, op),
                                    daz=self._operand_daz(op))).items()})
        u = {op: SimpleNamespace(**{k: getattr(s, f"{op}_{k}")
                                    for k in ("nan", "inf", "zero", "neg", "sig", "exp")})
             for op in self._fmts}

        # Product term and, in parallel, the addend's alignment.
        term = SimpleNamespace(**{k: wire(m, f"term_{k}", v)
                                  for k, v in vars(self._term(u)).items()})
        live: dict[str, Any] = {"rand": s.rand}
        if self._ADDEND is None:
            live.update(mag=term.sig, neg=term.neg, nan=term.nan, inf=term.inf,
                        lsb_exp=term.top - (g.px - 1))
        else:
            c = u[self._ADDEND]
            nan = term.nan | c.nan | (term.inf & c.inf & (term.neg ^ c.neg))
            inf = ~nan & (term.inf | c.inf)
            sh = wire(m, "align_distance", g.H - (c.exp - term.top))
            clamp = wire(m, "align_clamp", c.sig.any() & (~term.sig.any() | (sh <= 0)))
            m.submodules.align = align = AlignShifter(g.N - 2, max_shift=g.N - 2)
            amount = Mux(clamp | (sh <= 0), 0, Mux(sh >= g.N - 2, g.N - 2, sh))
            m.d.comb += [align.value.eq(c.sig << (g.N - 2 - g.pc)),
                         align.amount.eq(amount[:len(align.amount)])]
            live.update(
                p=term.sig << g.L, c=Cat(align.sticky, align.result), p_neg=term.neg,
                c_neg=c.neg, nan=nan, inf=inf, inf_neg=Mux(term.inf, term.neg, c.neg),
                lsb_exp=Mux(clamp, c.exp - (g.N - 2), term.top - (g.L + g.px - 1)))
            if self._window is not None:
                live["tmin"] = self._top_bit(u, term) - self._window
        s = pipe.stage("product", **live)

        # One signed addition.
        if self._ADDEND is not None:
            total = wire(m, "sum", Mux(s.p_neg ^ s.c_neg, s.p - s.c, s.p + s.c))
            negative = total < 0
            mag = wire(m, "sum_mag", Mux(negative, -total, total)[:g.N])
            exact_zero = ~total.any()
            total_neg = ~exact_zero & (s.p_neg ^ negative)
            zero = ~s.nan & ~s.inf & exact_zero
            # IEEE 754 §6.3: zeros of one sign keep it, else +0 (-0 rounding down).
            zero_neg = Mux(s.p_neg == s.c_neg, s.p_neg,
                           1 if self._rounding is Rounding.RDN else 0)
            neg = Mux(zero, zero_neg, Mux(s.inf, s.inf_neg, total_neg))
            live = {"mag": mag, "neg": neg, "nan": s.nan, "inf": s.inf, "zero": zero,
                    "lsb_exp": s.lsb_exp, "rand": s.rand}
            if self._window is not None:
                live["tmin"] = s.tmin
            s = pipe.stage("add", **live)
        else:
            s = SimpleNamespace(**vars(s), zero=~s.nan & ~s.inf & ~s.mag.any())

        # Leading-zero count (of the top N - lo bits) and the normalizing shift.
        m.submodules.lzc = lzc = LeadingZeroCount(g.N, window=g.N - g.lo)
        m.d.comb += lzc.value.eq(s.mag)
        found = ~lzc.zero
        top = wire(m, "lead_exp", s.lsb_exp + (g.N - 1) - lzc.count)
        emin = fo.emin
        hi = wire(m, "lead_exp_min", Mux(found, _smax(top, emin), emin))
        normal = top if flush else hi
        if self._window is None:
            use = Const(0, 1)
            e_t = normal
            force_below = Const(0, 1)
        else:
            use = wire(m, "approx_use", s.tmin > hi)
            e_t = Mux(use, s.tmin, normal)
            force_below = Const(int(flush), 1) & ~found & ~use
        e_t = wire(m, "round_exp", e_t)
        shift = wire(m, "norm_shift", (g.N - 1 + g.K) - (e_t - s.lsb_exp))
        m.submodules.normalize = norm = NormalizeShifter(g.N, out_width=g.N + g.K,
                                                         max_shift=g.smax)
        amount = Mux(shift < 0, 0, Mux(shift > g.smax, g.smax, shift))
        m.d.comb += [norm.value.eq(s.mag), norm.amount.eq(amount[:len(norm.amount)])]
        x = norm.result
        s = pipe.stage("normalize", q=x[g.N + g.f:], frac=x[g.N:g.N + g.f], sticky=x[:g.N].any(),
                       neg=s.neg, nan=s.nan, inf=s.inf, zero=s.zero, e_t=e_t, use=use,
                       force_below=force_below, rand=s.rand)

        # Round once.
        m.submodules.rounder = rounder = Rounder(self._rounding, frac_bits=g.f,
                                                 random_width=self._rw)
        m.d.comb += [rounder.lsb.eq(s.q[0]), rounder.frac.eq(s.frac),
                     rounder.sticky.eq(s.sticky), rounder.neg.eq(s.neg),
                     rounder.rand.eq(s.rand)]
        q = wire(m, "rounded", s.q + rounder.inc)
        q_zero = ~q.any()
        e_t = s.e_t
        finite_zero = Const(0, 1)
        if self._window is not None:
            # Approximate normalization rounds above the leading bit: normalize the (at most
            # mo + 1 bit) rounded significand into an ordinary code.
            m.submodules.post_lzc = post = LeadingZeroCount(mo + 1)
            m.d.comb += post.value.eq(q[:mo + 1])
            room = e_t - emin
            s2 = post.count if flush else Mux(room < post.count, room, post.count)
            s2 = wire(m, "post_shift", s2[:len(post.count)])
            q = wire(m, "post_rounded", Mux(s.use, (q << s2)[:mo + 2], q))
            e_t = wire(m, "post_exp", Mux(s.use, e_t - s2, e_t))
            finite_zero = s.use & q_zero
        mag = wire(m, "mag", ((e_t - emin) << mo) + q - (0 if fo.zero else 1 << mo))
        if flush:
            below = (mag < ((1 << mo) if fo.zero else 0)) | s.force_below
        else:
            below = q_zero
        s = pipe.stage("round", mag=mag, below=below & ~finite_zero, finite_zero=finite_zero,
                       neg=s.neg, nan=s.nan, inf=s.inf, zero=s.zero)

        # Overflow, underflow, special values; pack.
        code = pack(fo, self._rounding, saturate=self._saturate, nan=s.nan, inf=s.inf,
                    zero=s.zero, finite_zero=s.finite_zero, below=s.below, neg=s.neg, mag=s.mag)
        self._finish(m, pipe, code, extra)
        return m

    def _cut_order(self) -> tuple[str, ...]:
        if self._ADDEND is None:
            return tuple(c for c in self._CUTS if c != "add")
        return self._CUTS

    # -- test vectors ---------------------------------------------------------------------------
    def _nan_free(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Mask of the vectors whose result is not NaN (for outputs that cannot encode NaN)."""
        cls = {op: core.unpack_float(f, vectors[op], daz=self._operand_daz(op))[:2]
               for op, f in self._fmts.items()}
        x, y = (cls[op] for op in self._FACTORS) if len(self._FACTORS) == 2 else \
            (cls[self._FACTORS[0]], None)
        nan = (x[0] == core.NAN)
        inf = x[0] == core.INF
        neg = x[1]
        if y is not None:
            nan = nan | (y[0] == core.NAN) | ((x[0] == core.INF) & (y[0] == core.ZERO)) \
                | ((x[0] == core.ZERO) & (y[0] == core.INF))
            inf = ~nan & ((x[0] == core.INF) | (y[0] == core.INF))
            neg = x[1] ^ y[1]
        if self._ADDEND is not None:
            c = cls[self._ADDEND]
            nan = nan | (c[0] == core.NAN) | (inf & (c[0] == core.INF) & (neg != c[1]))
        return ~nan

    def _random(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Random vectors: uniform codes, and for sums, half of them with the addend near the
        product (either sign, a random distance apart) so that alignment and cancellation are
        exercised."""
        out = {op: _cases.uniform(rng, f.bits, n) for op, f in self._fmts.items()}
        if self._ADDEND is not None:
            near = rng.random(n) < 0.5
            fc = self._fmts[self._ADDEND]
            values = np.ones(n)
            with np.errstate(all="ignore"):
                for op in self._FACTORS:
                    values = values * self._fmts[op].decode(out[op])
                span = fc.precision + self._fo.precision + 4
                k = rng.integers(-span, span + 1, size=n)
                wiggle = 1 + rng.integers(-3, 4, size=n) * np.ldexp(1.0, -rng.integers(
                    1, 60, size=n))
                sign = np.where(rng.random(n) < 0.7, -1.0, 1.0)
                target = sign * values * np.ldexp(wiggle, k)
            ok = near & np.isfinite(target)
            if not fc.signed:
                target = np.abs(target)
            target = np.where(ok, target, 0.0)
            codes = fc.encode(target, "rtz", saturate=True).astype(np.uint64)
            out[self._ADDEND] = np.where(ok, codes, out[self._ADDEND])
        if self._rw:
            out["rand"] = _cases.uniform(rng, self._rw, n)
        return out

    def _corner(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        cols = _cases.cross(*[_cases.corner_codes(f) for f in self._fmts.values()])
        out = dict(zip(self._fmts, cols, strict=True))
        if self._ADDEND is not None:
            # Pairs that cancel: the addend is minus the product (rounded into its format).
            fc = self._fmts[self._ADDEND]
            factors = _cases.cross(*[_cases.corner_codes(self._fmts[op])
                                     for op in self._FACTORS])
            values = np.ones(len(factors[0]))
            with np.errstate(all="ignore"):
                for op, col in zip(self._FACTORS, factors, strict=True):
                    values = values * self._fmts[op].decode(col)
                target = np.where(np.isfinite(values), -values, 0.0)
                if not fc.signed:
                    target = np.abs(target)
            extra = dict(zip(self._FACTORS, factors, strict=True))
            extra[self._ADDEND] = fc.encode(target, "rne", saturate=True).astype(np.uint64)
            out = {k: np.concatenate([out[k], extra[k]]) for k in out}
        if self._rw:
            size = len(next(iter(out.values())))
            top = (1 << self._rw) - 1
            cycle = np.array([0, top, 1 << (self._rw - 1), top >> 1], dtype=np.uint64)
            out["rand"] = np.where(np.arange(size) % 5 == 4,
                                   _cases.uniform(rng, self._rw, size),
                                   cycle[np.arange(size) % 4])
        return out

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors.

        ``exhaustive``: every combination of every operand (``rand`` included), at most 2**26.
        ``corner``: boundary codes of each operand's format (zeros, subnormal and normal ends,
        values around one, the largest values, inf, NaN) crossed, plus factor pairs with the
        addend cancelling their product; ``n`` subsamples them or tops them up with random
        vectors. ``random``: see :meth:`_random`. When the result format cannot encode NaN,
        vectors whose result would be NaN are left out (the emulator has no answer for them).
        """
        check_kind(kind, n)
        if kind == "exhaustive":
            out = _cases.exhaustive(self.operand_widths)
        elif kind == "random":
            assert n is not None
            out = self._random(rng, int(n))
        else:
            out = self._corner(rng)
        if not self._fo.has_nan:
            keep = self._nan_free(out)
            out = {k: v[keep] for k, v in out.items()}
            if kind == "random":
                while len(out["a"]) < int(n):  # type: ignore[arg-type]
                    more = self._random(rng, int(n))  # type: ignore[arg-type]
                    keep = self._nan_free(more)
                    out = {k: np.concatenate([v, more[k][keep]]) for k, v in out.items()}
                out = {k: v[:int(n)] for k, v in out.items()}  # type: ignore[arg-type]
        if kind == "corner" and n is not None:
            size = len(out["a"])
            extra = self.test_cases(rng, "random", int(n) - size) if int(n) > size else None
            out = _cases.resize(rng, out, int(n), extra)
        return out

    # -- structure ------------------------------------------------------------------------------
    def structure(self) -> nx.DiGraph:
        g = self.geometry
        fo = self._fo
        mo = fo.man_bits
        cuts, extra = choose_cuts(self._cut_order(), self._stages)
        gr = Graph(cuts)
        exp_w = max(f.exp_bits for f in self.formats.values()) + 3
        unpacked = []
        for op, f in self._fmts.items():
            gr.node(f"in_{op}", "input", f.bits)
            unpacked.append(gr.node(f"unpack_{op}", "logic", f.bits, f"in_{op}",
                                    gates=2 * f.bits + 2 * f.exp_bits, depth=3))
        if self._rw:
            gr.node("in_rand", "input", self._rw)
            unpacked.append("in_rand")
        width_unpack = sum(f.precision + f.exp_bits + 5 for f in self._fmts.values()) + self._rw
        after = gr.cut("unpack", width_unpack, *unpacked)
        term = self._structure_term(gr, after)
        if self._ADDEND is None:
            after = gr.cut("product", g.px + exp_w + 3 + self._rw, *term)
        else:
            diff = gr.node("exp_diff", "adder", exp_w, *after)
            amt = gr.node("align_amount", "comparator", exp_w, diff)
            align = gr.node("align", "shifter", g.N - 2, amt, *after, sticky=True,
                            shift_bits=max(1, (g.N - 2).bit_length()))
            specials = gr.node("specials", "logic", 12, *after, gates=24, depth=3)
            after = gr.cut("product", 2 * (g.N - 1) + exp_w + 6 + self._rw, align, specials,
                           *term)
            add = gr.node("add", "adder", g.N + 1, *after)
            absval = gr.node("abs", "adder", g.N, add)
            after = gr.cut("add", g.N + exp_w + 5 + self._rw, absval)
        lzc = gr.node("lzc", "lzc", g.N - g.lo, *after)
        sel = gr.node("exp_select", "adder", exp_w, lzc)
        cmp = gr.node("exp_compare", "comparator", exp_w, sel)
        norm = gr.node("normalize", "shifter", g.N + g.K, cmp, *after,
                       shift_bits=max(1, g.smax.bit_length()))
        sticky = gr.node("sticky", "logic", g.N, norm, gates=g.N, depth=max(1, g.N.bit_length()))
        after = gr.cut("normalize", mo + 1 + g.f + 1 + exp_w + 6 + self._rw, norm, sticky)
        rnd = gr.node("round", "rounder", mo + 2, *after)
        last = rnd
        if self._window is not None:
            plz = gr.node("post_lzc", "lzc", mo + 1, rnd)
            last = gr.node("post_normalize", "shifter", mo + 2, plz,
                           shift_bits=max(1, (mo + 1).bit_length()))
        exp = gr.node("exp_pack", "adder", exp_w + mo, last)
        after = gr.cut("round", exp_w + mo + 8, exp)
        over = gr.node("overflow", "comparator", exp_w + mo, *after)
        packed = gr.node("pack", "mux", fo.bits, over, *after, inputs=4)
        after = (packed,)
        for name in self._output_stages(extra):
            after = gr.cut(name, fo.bits, *after)
        gr.node("out", "output", fo.bits, *after)
        gr.g.graph.update(name=self.name, latency=self.latency)
        return gr.g

    def _structure_term(self, gr: Graph, after: tuple[str, ...]) -> tuple[str, ...]:
        fa, fb = (self._fmts[op] for op in self._FACTORS)
        mul = gr.node("multiplier", "multiplier", fa.precision + fb.precision, *after,
                      a_width=fa.precision, b_width=fb.precision)
        exp = gr.node("exp_add", "adder", max(fa.exp_bits, fb.exp_bits) + 2, *after)
        return (mul, exp)


class _TwoOperand(FusedMultiplyAdd):
    """The FMA's datapath with two operands ``a``, ``b`` and ``reference = _OP(a, b)``.

    :class:`Multiplier` and :class:`Adder` differ only in where ``b`` enters (a factor or the
    addend, ``_FACTORS``/``_ADDEND``) and in the emulator operation they match.
    """

    cli_params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    _OP: ClassVar[Callable[..., np.ndarray]]

    def __init__(self, fmt_a: FloatFormat | str, fmt_b: FloatFormat | str,
                 fmt_out: FloatFormat | str, *, rounding: Rounding | str = Rounding.RNE,
                 stages: int = 0, saturate: bool = False, subnormals: bool = True,
                 random_width: int = 8) -> None:
        self._setup({"a": _float_format(fmt_a, "fmt_a"), "b": _float_format(fmt_b, "fmt_b")},
                    _float_format(fmt_out, "fmt_out"), rounding, stages, saturate, subnormals,
                    "exact", random_width)

    @classmethod
    def from_params(cls, **p: Any) -> Datapath:
        a = p.pop("a")
        b = p.pop("b", None) or a
        out = p.pop("out", None) or a
        return cls(a, b, out, **p)

    def reference(self, a: np.ndarray, b: np.ndarray,  # type: ignore[override]
                  rand: np.ndarray | None = None) -> np.ndarray:
        f = self._fmts
        op = type(self)._OP
        return op(a, b, f["a"], f["b"], self._fo, self._rounding,
                  **self._rounding_kw(rand)).astype(np.uint64)


class Multiplier(_TwoOperand):
    """Multiplier ``o = round(a * b)``: the FMA's datapath without the addend.

    Bit for bit :func:`arithforge.formats.ops.mul` (which differs from ``fma(a, b, ±0)`` in the
    sign of zero and NaN results: they carry the product's sign). Parameters as
    :class:`FusedMultiplyAdd`, less ``fmt_c`` and ``normalization``.

    Members
    -------
    i : In(Signature(valid, a, b[, rand]))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "mul"
    _ADDEND: ClassVar[str | None] = None
    _OP = staticmethod(ops.mul)


class Adder(_TwoOperand):
    """Adder ``o = round(a + b)``: the FMA's datapath with ``a`` as the product term.

    Bit for bit :func:`arithforge.formats.ops.add`. Parameters as :class:`FusedMultiplyAdd`,
    less ``fmt_c`` and ``normalization`` (``b`` takes the addend's place).

    Members
    -------
    i : In(Signature(valid, a, b[, rand]))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "add"
    _FACTORS: ClassVar[tuple[str, ...]] = ("a",)
    _ADDEND: ClassVar[str | None] = "b"
    _OP = staticmethod(ops.add)

    def _term_facts(self) -> tuple[int, int]:
        fa = self._fmts["a"]
        return fa.precision, fa.precision - self._min_sig(fa).bit_length()

    def _term(self, u: dict[str, SimpleNamespace]) -> SimpleNamespace:
        x = u["a"]
        return SimpleNamespace(nan=x.nan, inf=x.inf, neg=x.neg, sig=x.sig, top=x.exp)

    def _structure_term(self, gr: Graph, after: tuple[str, ...]) -> tuple[str, ...]:
        return after
