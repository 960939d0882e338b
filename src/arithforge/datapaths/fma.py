# Ref: IEEE Std 754-2019 §5.4.1 (fusedMultiplyAdd, multiplication, addition), §6.3 (signed zero);
#      Alexandridis et al., arXiv 2408.11997 (approximate normalization)
"""The fused multiply-add, and the multiplier and adder of its datapath.

``fma``
    ``o = round(a * b + c)``, one rounding (``arithforge.hdl.fma``). GEMM model: the chain
    ``acc = fma(x_k, w_k, acc)`` in ``acc`` for k = 0..K-1; option ``normalization``
    (``"exact"`` or a window W: the approximate normalizer of arXiv 2408.11997, emulated step by
    step). Sweeps: activations ``a``, weights ``b``, accumulator ``c`` = ``out``; block (MX)
    formats run the FMA of the element format, scored by the OCP MX dot product (``mx``), the
    shared-scale exponent adder (one per block) not costed. The default spec sweeps it twice:
    ``fma`` (exact) and ``fma_approx`` (window 4, the formats where it matters most).
``mul``, ``add``
    ``round(a * b)`` and ``round(a + b)``: components, calibrated and verified, not swept.

Their units, :class:`FMAUnit`, :class:`MulUnit` and :class:`AddUnit` (the datapath's parameters,
facts, ``reference()``, vectors, ``structure()``, ``geometry``), are the Amaranth-free half of
the generators of :mod:`arithforge.hdl.fma`, which subclass them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, Format, Rounding, get_format, ops
from ..formats import _core as core
from ..formats.rounding import Saturation, as_rounding
from . import _cases, gemm
from ._common import (
    F64,
    ROUNDINGS,
    SATURATION_HELP,
    SWEEP_ROUNDINGS,
    element,
    float_acc,
    fmt,
    int_option,
    kinds,
    saturation_mode,
)
from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
    check_stages,
    stages_param,
)
from .unit import Graph, Unit, check_bool, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["FMA", "Add", "AddUnit", "FMAUnit", "Geometry", "Mul", "MulUnit"]

#: Widest operand format the generators take (the emulator's exact products fit in int64).
MAX_BITS = 32
#: Most random bits per operation of stochastic rounding.
MAX_RANDOM_WIDTH = 32

PARAMS: dict[str, Param] = {
    "a": Param("format", "float8_e4m3fn", "format of a"),
    "b": Param("format", None, "format of b (default: a)"),
    "c": Param("format", None, "format of the addend c (default: a)"),
    "out": Param("format", None, "format of the result (default: c)"),
    "rounding": Param(f"choice:{ROUNDINGS}", "rne", "rounding mode"),
    "stages": stages_param(),
    "saturate": Param("bool", False, "overflow to the largest finite value"),
    "saturation": Param("choice:SatFinite|SatPropagate|OvfInf", None, SATURATION_HELP),
    "subnormals": Param("bool", True, "subnormal inputs and outputs (else DAZ and FTZ)"),
    "normalization": Param("str", "exact", f"'exact' or the window W (1 to {ops.MAX_WINDOW}) "
                                           "of an approximate normalizer"),
    "random_width": Param("int", 8, "random bits per operation (stochastic rounding)", 1,
                          MAX_RANDOM_WIDTH),
}

#: Parameters of ``mul`` and ``add``: the FMA's less the addend and the normalizer.
TWO_OPERAND_PARAMS: dict[str, Param] = {
    k: v for k, v in PARAMS.items() if k not in ("c", "normalization")
} | {"out": Param("format", None, "format of the result (default: a)")}

#: Formats of the FMA and multiplier calibration: FP4, FP6, the FP8 family, 16 and 32 bits.
FLOATS = ("float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn", "float8_e3m4", "float8_e4m3fn",
          "float8_e5m2", "float16", "bfloat16", "float32")
FP8 = ("float8_e4m3fn", "float8_e5m2")
SMALL_FLOATS = ("float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn",
                "float4_e2m1fn")
ACCEPTANCE_ROUNDINGS = ("rne", "rna", "rtz", "rup", "rdn", "rto", "stochastic")


#: The overflow mode of ``saturate`` and ``saturation`` (shared with lmul, bitserial).
_saturation = saturation_mode


def _fma(fmt: str, out: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"a": fmt, "b": fmt, "c": out or fmt, "out": out or fmt, **kw}


def _short(name: str) -> str:
    return name.split("_", 1)[-1] if name.startswith(("float8_", "float6_", "float4_")) else name


def _calibration() -> tuple[dict[str, Any], ...]:
    out = [_fma(f) for f in FLOATS]
    # Narrow products into wide accumulators, as matrix engines do.
    out += [_fma("float8_e4m3fn", acc) for acc in ("float16", "bfloat16", "float32")]
    out += [_fma("float8_e5m2", "float32"), _fma("float4_e2m1fn", "float16")]
    out += [_fma("bfloat16", stages=2), _fma("float8_e4m3fn", stages=3)]
    # Approximate normalization (arXiv 2408.11997): windows of the leading-zero count.
    for f, windows in (("bfloat16", (2, 4, 8)), ("float16", (4, 8)),
                       ("float32", (4, 8, 16))):
        out += [_fma(f, normalization=str(w)) for w in windows]
    out += [_fma("float8_e4m3fn", "float32", normalization=str(w)) for w in (4, 8)]
    return tuple(out)


def _acceptance() -> tuple[AcceptanceCheck, ...]:
    out = [AcceptanceCheck(f"fma {_short(f)}", _fma(f), "exhaustive") for f in FP8]
    out.append(AcceptanceCheck("fma e4m3fn, 3 stages", _fma(FP8[0], stages=3), "exhaustive"))
    sampled = [
        ("fma e4m3fn x e4m3fn + float32 -> float32", _fma(FP8[0], "float32"), 10**7),
        ("fma bfloat16", _fma("bfloat16"), 10**7),
        ("fma float16", _fma("float16"), 10**7),
        ("fma float32", _fma("float32"), 10**6),
        ("fma bfloat16, approximate normalization W=8", _fma("bfloat16", normalization="8"),
         10**7),
        ("fma bfloat16, approximate normalization W=4", _fma("bfloat16", normalization="4"),
         10**7),
    ]
    for label, params, n in sampled:
        for kind in ("random", "corner"):
            out.append(AcceptanceCheck(label, params, kind, n))
    # The bounded FMA sample: 10^6 random e4m3fn -> float32 vectors, as `make test` runs them.
    out.append(AcceptanceCheck("fma e4m3fn x e4m3fn + float32 -> float32",
                               _fma(FP8[0], "float32"), "random", 10**6, bounded=True))
    return tuple(out)


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    if options["normalization"] != "exact":
        options["normalization"] = int_option(options, "normalization", 1, ops.MAX_WINDOW)
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "fma")
    window = config.options["normalization"]
    if window == "exact":
        return gemm.fma_chain(qx.values, qw.values, acc, config.rounding), "chain"
    fx, fw = element(qx, "fma"), element(qw, "fma")
    fast = gemm.fma_chain_window(qx.values, qw.values, fx, fw, acc, config.rounding, int(window))
    if fast is not None:
        return fast, "chain, window"
    codes = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], fx, fw, fmt_out=acc,
                    model="fma_chain", fmt_acc=acc, rounding=config.rounding,
                    normalization=window)
    return acc.decode(codes), "emulator"


# -- the units ----------------------------------------------------------------------------------
# The FMA datapath at one parameter set, every face but its hardware (arithforge.hdl.fma adds
# elaborate()): the widths argument of its window is the docstring of arithforge.hdl.fma.

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


@dataclass(frozen=True)
class Geometry:
    """Widths of the datapath (the docstring of :mod:`arithforge.hdl.fma` gives the
    argument)."""

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


class FMAUnit(Unit):
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
    saturation : str, optional
        The overflow mode by its IEEE P3109 name (:class:`~arithforge.formats.Saturation`):
        ``SatFinite`` (``saturate=True``), ``OvfInf`` (``saturate=False``) or ``SatPropagate``
        (finite overflow saturates, infinities stay infinite).
    subnormals : bool
        False: subnormal inputs read as zero and results below the smallest normal flush to
        zero (the emulator's ``daz=True, ftz=True``).
    normalization : "exact" or int
        An integer ``W`` makes the normalizer approximate: its leading-zero count covers ``W``
        positions below the adder's top bit (``ops.fma`` documents the result).
    random_width : int
        Random bits per operation for stochastic rounding.
    """

    name: ClassVar[str] = "fma"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    #: Pipeline cut points by priority.
    _CUTS: ClassVar[tuple[str, ...]] = ("product", "normalize", "add", "unpack", "round")
    #: Operand roles: the product's factors and the addend (None: absent).
    _FACTORS: ClassVar[tuple[str, ...]] = ("a", "b")
    _ADDEND: ClassVar[str | None] = "c"

    def __init__(self, fmt_a: FloatFormat | str, fmt_b: FloatFormat | str,
                 fmt_c: FloatFormat | str, fmt_out: FloatFormat | str, *,
                 rounding: Rounding | str = Rounding.RNE, stages: int = 0,
                 saturate: bool = False, subnormals: bool = True,
                 normalization: str | int = "exact", random_width: int = 8,
                 saturation: str | None = None) -> None:
        self._setup({"a": _float_format(fmt_a, "fmt_a"), "b": _float_format(fmt_b, "fmt_b"),
                     "c": _float_format(fmt_c, "fmt_c")}, _float_format(fmt_out, "fmt_out"),
                    rounding, stages, saturate, subnormals, normalization, random_width,
                    saturation)

    def _setup(self, fmts: dict[str, FloatFormat], fmt_out: FloatFormat, rounding: Any,
               stages: Any, saturate: Any, subnormals: Any, normalization: Any,
               random_width: Any, saturation: Any = None) -> None:
        self._fmts = fmts
        self._fo = fmt_out
        self._rounding = as_rounding(rounding)
        self._stages = check_stages(stages)
        self._saturate = _saturation(check_bool(saturate, "saturate"), saturation)
        self._daz = not check_bool(subnormals, "subnormals")
        self._window = _normalization(normalization)
        rw = _random_width(random_width)
        self._rw = rw if self._rounding is Rounding.STOCHASTIC else 0
        self._random_width = rw
        self._ready()

    @classmethod
    def from_params(cls, **p: Any) -> Self:
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
                   saturate=self._saturate is not Saturation.OVF_INF,
                   subnormals=not self._daz,
                   latency=self.latency, window_bits=g.N,
                   formats={k: f.name for k, f in self.formats.items()})
        if self._ADDEND is not None and self.name != "add":
            out["normalization"] = "exact" if self._window is None else self._window
        if self._rw:
            out["random_width"] = self._rw
        if self._saturate is Saturation.SAT_PROPAGATE:
            out["saturation"] = str(self._saturate)
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
            # The exponent of the product's LSB: the top's less a constant.
            lsb = gr.node("lsb_exp", "adder", exp_w, *term, inputs=1)
            after = gr.cut("product", g.px + exp_w + 3 + self._rw, *term, lsb)
        else:
            diff = gr.node("exp_diff", "adder", exp_w, *after)
            amt = gr.node("align_amount", "comparator", exp_w, diff)
            # The addend's pc bits enter at the top of the N - 2 bit window, the rest is 0.
            align = gr.node("align", "shifter", g.N - 2, amt, *after, sticky=True,
                            shift_bits=max(1, (g.N - 2).bit_length()), data_bits=g.pc)
            specials = gr.node("specials", "logic", 12, *after, gates=24, depth=3)
            # The exponent of the sum's LSB: the product's or (an addend far above it) the
            # addend's, each less a constant, and a select.
            lsb = gr.node("lsb_exp", "adder", exp_w, *term, count=2, inputs=1)
            lsb = gr.node("lsb_select", "mux", exp_w, lsb, amt)
            live = [align, specials, lsb, *term]
            if self._window is not None:
                # The window's floor: max(top of the product, addend's exponent) + 1 - W.
                top = gr.node("approx_top", "comparator", exp_w, *after)
                top = gr.node("approx_top_select", "mux", exp_w, top)
                live.append(gr.node("approx_floor", "adder", exp_w, top, inputs=1))
            window_w = 0 if self._window is None else exp_w
            after = gr.cut("product", 2 * (g.N - 1) + exp_w + 6 + self._rw + window_w, *live)
            # The product term is px bits at a fixed place of the window: the other positions
            # only carry through the aligned addend.
            add = gr.node("add", "adder", g.N + 1, *after, data_bits=g.px)
            # Both p + c and p - c are built and selected by the signs, as the magnitude is
            # by the sum's sign.
            add = gr.node("add_select", "mux", g.N + 1, add)
            absval = gr.node("abs", "adder", g.N, add, inputs=1)
            absval = gr.node("abs_select", "mux", g.N, absval)
            after = gr.cut("add", g.N + exp_w + 5 + self._rw + window_w, absval)
        lzc = gr.node("lzc", "lzc", g.N - g.lo, *after)
        sel = gr.node("exp_select", "adder", exp_w, lzc)
        cmp = gr.node("exp_compare", "comparator", exp_w, sel)
        # The leading one's exponent raised to emin (a compare and a select).
        cmp = gr.node("exp_min_select", "mux", exp_w, cmp)
        if self._window is not None:
            # Round at the window's floor when the leading one lies below it: a compare and a
            # select of the rounding exponent.
            cmp = gr.node("approx_use", "comparator", exp_w, cmp, *after)
            cmp = gr.node("approx_exp_select", "mux", exp_w, cmp)
        # The normalizing shift from the rounding exponent and the LSB's, clamped to the
        # shifter's range (a compare with constants and a select of the amount's bits).
        shift = gr.node("norm_amount", "adder", exp_w, cmp, *after)
        sb = max(1, g.smax.bit_length())
        shift = gr.node("norm_clamp", "logic", exp_w, shift, gates=exp_w + 2 * sb,
                        depth=max(1, exp_w.bit_length()) + 1)
        norm = gr.node("normalize", "shifter", g.N + g.K, shift, *after, shift_bits=sb,
                       data_bits=g.N)
        sticky = gr.node("sticky", "logic", g.N, norm, gates=g.N, depth=max(1, g.N.bit_length()))
        after = gr.cut("normalize", mo + 1 + g.f + 1 + exp_w + 6 + self._rw, norm, sticky)
        rnd = gr.node("round", "rounder", mo + 2, *after)
        last = rnd
        if self._window is not None:
            # Post-normalization of the rounded significand: its leading zeros capped by the
            # room above emin (unless results flush), a left shift, and the selects of the
            # significand and the exponent (less the shift) by whether the window was used.
            plz = gr.node("post_lzc", "lzc", mo + 1, rnd)
            sb = max(1, (mo + 1).bit_length())
            if not (self._daz or not fo.subnormals):
                room = gr.node("post_room", "adder", exp_w, rnd, inputs=1)
                cap = gr.node("post_cap", "comparator", sb, plz, room)
                plz = gr.node("post_shift", "mux", sb, cap)
            last = gr.node("post_normalize", "shifter", mo + 2, plz, shift_bits=sb)
            last = gr.node("post_select", "mux", mo + 2, last, rnd)
            pexp = gr.node("post_exp", "adder", exp_w, plz)
            last = gr.node("post_exp_select", "mux", exp_w, pexp, last)
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


class _TwoOperandUnit(FMAUnit):
    """The FMA's datapath with two operands ``a``, ``b`` and ``reference = _OP(a, b)``.

    :class:`MulUnit` and :class:`AddUnit` differ only in where ``b`` enters (a factor or the
    addend, ``_FACTORS``/``_ADDEND``) and in the emulator operation they match.
    """

    cli_params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    _OP: ClassVar[Callable[..., np.ndarray]]

    def __init__(self, fmt_a: FloatFormat | str, fmt_b: FloatFormat | str,
                 fmt_out: FloatFormat | str, *, rounding: Rounding | str = Rounding.RNE,
                 stages: int = 0, saturate: bool = False, subnormals: bool = True,
                 random_width: int = 8, saturation: str | None = None) -> None:
        self._setup({"a": _float_format(fmt_a, "fmt_a"), "b": _float_format(fmt_b, "fmt_b")},
                    _float_format(fmt_out, "fmt_out"), rounding, stages, saturate, subnormals,
                    "exact", random_width, saturation)

    @classmethod
    def from_params(cls, **p: Any) -> Self:
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


class MulUnit(_TwoOperandUnit):
    """Multiplier ``o = round(a * b)``: the FMA's datapath without the addend.

    Bit for bit :func:`arithforge.formats.ops.mul` (which differs from ``fma(a, b, ±0)`` in the
    sign of zero and NaN results: they carry the product's sign). Parameters as
    :class:`FMAUnit`, less ``fmt_c`` and ``normalization``.
    """

    name: ClassVar[str] = "mul"
    _ADDEND: ClassVar[str | None] = None
    _OP = staticmethod(ops.mul)


class AddUnit(_TwoOperandUnit):
    """Adder ``o = round(a + b)``: the FMA's datapath with ``a`` as the product term.

    Bit for bit :func:`arithforge.formats.ops.add`. Parameters as :class:`FMAUnit`,
    less ``fmt_c`` and ``normalization`` (``b`` takes the addend's place).
    """

    name: ClassVar[str] = "add"
    _FACTORS: ClassVar[tuple[str, ...]] = ("a",)
    _ADDEND: ClassVar[str | None] = "b"
    _OP = staticmethod(ops.add)

    def _term_facts(self) -> tuple[int, int]:
        fa = self._fmts["a"]
        return fa.precision, fa.precision - self._min_sig(fa).bit_length()

    def _structure_term(self, gr: Graph, after: tuple[str, ...]) -> tuple[str, ...]:
        return after


class FMA(Descriptor):
    """The fused multiply-add (module docstring)."""

    name: ClassVar[str] = "fma"
    summary: ClassVar[str] = "fused multiply-add, one rounding; optional normalization window"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:FusedMultiplyAdd"
    unit: ClassVar[type] = FMAUnit
    accuracy: Accuracy | None = Accuracy(
        _run, "sequential FMA in acc, optional normalization window",
        {"normalization": "exact"}, fast=False, check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "rounding": Param(f"choice:{SWEEP_ROUNDINGS}", "rne", "rounding mode"),
        "stages": stages_param(),
        "normalization": Param("int", "exact", "'exact' or the window W of an approximate "
                                               "normalizer (arXiv 2408.11997)", 1,
                               ops.MAX_WINDOW, also=("exact",)),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {
        "fma": {},
        # Its accuracy model runs the emulator step by step: the formats where the window
        # matters most.
        "fma_approx": {"formats": ["bfloat16", "float16", "float8_e5m2", "float8_e4m3fn",
                                   "float8_e3m4"], "normalization": 4},
    }
    marker: ClassVar[str | None] = "o"
    calibration = _calibration()
    acceptance = _acceptance()
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("fma:a=float8_e4m3fn,c=float32", {"os": (3, 4), "ws": (3, 4)},
                     ("os", 2, 3)),
    )
    array_pe: ClassVar[bool] = True

    def normalize_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "c" in params and "out" not in params:
            return {**params, "out": params["c"]}
        return params

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if "posit" in (kw, ka):
            return "posit operands need a posit datapath; arithforge.hdl has none yet"
        if kw in ("int", "uint") or ka in ("int", "uint"):
            return "integer operands go to an integer datapath, not the fma datapath"
        if kacc != "float":
            return "the fma datapath accumulates in a float format"
        if kw == "block" and kinds(fmt(weights).element.name)[0] != "float":
            return "integer-element block formats (mxint8) go to no float datapath"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        fw, fa = fmt(weights), fmt(acts)
        kw, ka = kinds(weights, acts)
        window = params["normalization"]
        block = kw == "block"
        if window != "exact" and "block" in (kw, ka):
            return Skip(label, weights, acts, acc, "block (MX) formats are scored through the "
                        "OCP MX dot product, which has no approximate-normalization model")
        if (kw == "block") != (ka == "block"):
            return Skip(label, weights, acts, acc,
                        "block (MX) and plain formats are not mixed in one FMA")
        ew = fw.element.name if block else weights
        ea = fa.element.name if block else acts
        hdl: dict[str, Any] = {"a": ea, "b": ew, "c": acc, "out": acc,
                               "rounding": params["rounding"], "stages": params["stages"]}
        notes: tuple[str, ...] = ()
        if window != "exact":
            hdl["normalization"] = str(window)
            model = ctx.model(weights, acts, acc, self.name, rounding=params["rounding"],
                              options={"normalization": int(window)})
        elif block:
            model = ctx.model(weights, acts, acc, "mx", rounding=params["rounding"])
            notes = (("MX: FMA of the element format; accuracy by the OCP MX dot product; the "
                      "per-block scale adder is not costed"),)
        else:
            model = ctx.model(weights, acts, acc, self.name, rounding=params["rounding"],
                              options={"normalization": "exact"})
        return self.make_design(label, weights, acts, acc, params, (self.name, hdl), model,
                                notes=notes)


def _stages(params: Any) -> int:
    try:
        return int(str(dict(params).get("stages", "0")), 0)
    except ValueError:
        raise ArithforgeError(f"PE parameter stages must be an integer, not "
                              f"{dict(params)['stages']!r}") from None


class Mul(Descriptor):
    """The multiplier ``round(a * b)``: the FMA's datapath without the addend."""

    name: ClassVar[str] = "mul"
    summary: ClassVar[str] = "float multiplier round(a * b)"
    params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:Multiplier"
    unit: ClassVar[type] = MulUnit
    calibration = tuple({"a": f, "b": f, "out": f, "rounding": "rne"} for f in FLOATS)
    acceptance = tuple(
        AcceptanceCheck(f"mul {_short(f)} {r}", {"a": f, "b": f, "out": f, "rounding": r},
                        "exhaustive", bounded=f in FP8 and r in ("rne", "stochastic"))
        for f in SMALL_FLOATS for r in ACCEPTANCE_ROUNDINGS)


class Add(Descriptor):
    """The adder ``round(a + b)``: the FMA's datapath with ``a`` as the product term."""

    name: ClassVar[str] = "add"
    summary: ClassVar[str] = "float adder round(a + b)"
    params: ClassVar[dict[str, Param]] = TWO_OPERAND_PARAMS
    generator: ClassVar[str] = "arithforge.hdl.fma:Adder"
    unit: ClassVar[type] = AddUnit
