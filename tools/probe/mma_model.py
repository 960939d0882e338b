# Ref: Khattak & Mikaitis / MMA-Sim, arXiv 2511.10909 (fused dot-add model of NVIDIA tensor cores);
#      Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021;
#      DeepSeek-V3 technical report §3.3.2 (FP8 GEMM promotion to FP32 every 128 elements).
"""Bit-exact reference model of tensor-core (MMA) accumulation, numpy only.

The model of one MMA *step* over ``n`` products plus an accumulator ``c``:

1. every product ``a_i * b_i`` is exact: an integer significand ``sig_a * sig_b`` and the
   exponent ``exp_a + exp_b`` (``prod_exp="sum"``: the product is *not* normalised, its
   significand lies in [1, 4) for normal inputs; ``prod_exp="normalized"`` uses the exponent of
   the exact product instead);
2. all non-zero terms (products and ``c``) are aligned to the largest of their exponents ``E``;
3. each term is cut to ``F`` fraction bits relative to ``2**E`` (``term_round``: ``"rz"``
   truncation toward zero, ``"rd"`` toward minus infinity, i.e. two's-complement truncation,
   ``"rne"`` nearest-even); there are no guard, round or sticky bits;
4. the cut terms are summed exactly (an integer sum);
5. the sum is normalised and rounded to the accumulator format: ``out_frac_bits`` fraction bits
   (23 for fp32; 13 for the "e8m13" accumulator reported for Hopper FP8) with ``out_round``
   (``"rz"`` for fp32 on NVIDIA, ``"rne"`` for fp16 accumulation).

A dot product of length ``K`` chains ``K / n`` steps, feeding each step's result in as the next
``c``. Libraries may add *promotion*: every ``promote`` elements the partial sum of the tensor
core is added into a separate fp32 accumulator with an ordinary fp32 addition (round to nearest
even), and *split-K*: ``K`` is cut into ``split`` contiguous parts that are reduced in fp32.

Everything is exact integer arithmetic on int64 arrays; float64 is used only to hold values that
are exactly representable (results before the cast to float32). Supported inputs: the codes
(bit patterns) of ``float8_e4m3fn``, ``float8_e5m2``, ``bfloat16``, ``float16``, ``float32``;
NaN and infinity inputs are not modelled (``decode`` raises on them). Results that overflow the
output format go to the largest finite value (``rz``) or infinity (``rne``).

The arithmetic lives in the library (``arithforge.formats.mma``, where ``MMAModel`` names these
parameters); this module keeps the probe's descriptors and the fit's parameter names.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from arithforge.formats import mma as _lib

__all__ = [
    "FloatFormat",
    "FORMATS",
    "MMAParams",
    "decode",
    "encode_exact",
    "values",
    "float32_bits",
    "bits_float32",
    "mma_dot",
    "mma_matmul",
]


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """Binary floating-point format, described by its fields.

    Parameters
    ----------
    name : str
        Name as ml_dtypes spells it.
    exp_bits, man_bits : int
        Widths of the exponent and mantissa (fraction) fields.
    finite_only : bool
        ``True`` for the OCP "fn" formats (no infinity; only the all-ones code is NaN).
    """

    name: str
    exp_bits: int
    man_bits: int
    finite_only: bool = False

    @property
    def bits(self) -> int:
        """Width of a code in bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        """Exponent bias."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (and of every subnormal)."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = (1 << self.exp_bits) - 1
        return (top if self.finite_only else top - 1) - self.bias

    @property
    def code_dtype(self) -> type:
        """Unsigned numpy integer type that holds one code."""
        return {8: np.uint8, 16: np.uint16, 32: np.uint32}[self.bits]

    @property
    def max_finite(self) -> float:
        """Largest finite value."""
        man_max = (1 << self.man_bits) - (2 if self.finite_only else 1)
        return float((1 << self.man_bits) + man_max) * 2.0 ** (self.emax - self.man_bits)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float8_e4m3fn", 4, 3, finite_only=True),
        FloatFormat("float8_e5m2", 5, 2),
        FloatFormat("bfloat16", 8, 7),
        FloatFormat("float16", 5, 10),
        FloatFormat("float32", 8, 23),
    )
}
F32 = FORMATS["float32"]


def _fmt(f: FloatFormat | str) -> FloatFormat:
    return FORMATS[f] if isinstance(f, str) else f


def decode(codes, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode codes exactly into ``(sign, sig, exp)``.

    The value of each code is ``(-1)**sign * sig * 2**(exp - man_bits)``; ``sig`` includes the
    hidden bit for normal numbers, subnormals have ``exp == emin`` and zero has ``sig == 0``.
    """
    fmt = _fmt(fmt)
    c = np.asarray(codes).astype(np.int64)
    sign = (c >> (fmt.bits - 1)) & 1
    e_field = (c >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    m_field = c & ((1 << fmt.man_bits) - 1)
    top = (1 << fmt.exp_bits) - 1
    if fmt.finite_only:
        special = (e_field == top) & (m_field == (1 << fmt.man_bits) - 1)
    else:
        special = e_field == top
    if np.any(special):
        raise ValueError(f"codes must be finite {fmt.name} numbers, not NaN or infinity")
    normal = e_field != 0
    sig = np.where(normal, m_field | (1 << fmt.man_bits), m_field)
    exp = np.where(normal, e_field - fmt.bias, fmt.emin)
    return sign, sig, exp


def values(codes, fmt) -> np.ndarray:
    """Exact float64 values of finite codes."""
    fmt = _fmt(fmt)
    s, sig, e = decode(codes, fmt)
    return np.where(s == 1, -1.0, 1.0) * np.ldexp(sig.astype(np.float64), e - fmt.man_bits)


def encode_exact(x, fmt) -> np.ndarray:
    """Encode float values that are exactly representable in ``fmt``; raise otherwise."""
    fmt = _fmt(fmt)
    x = np.asarray(x, dtype=np.float64)
    sign = np.signbit(x).astype(np.int64)
    a = np.abs(x)
    e = np.frexp(a)[1].astype(np.int64) - 1
    sub = e < fmt.emin
    scale = np.where(sub, fmt.emin, e) - fmt.man_bits
    m = np.ldexp(a, -scale)
    ok = np.isfinite(a) & (m == np.floor(m)) & (a <= fmt.max_finite)
    if not np.all(ok):
        bad = x[~ok].reshape(-1)[0]
        raise ValueError(f"value must be exactly representable in {fmt.name}, not {bad!r}")
    mi = m.astype(np.int64)
    zero = a == 0
    e_field = np.where(sub | zero, 0, e + fmt.bias)
    man = np.where(sub | zero, mi, mi - (1 << fmt.man_bits))
    code = (sign << (fmt.bits - 1)) | (e_field << fmt.man_bits) | man
    return code.astype(fmt.code_dtype)


def float32_bits(x) -> np.ndarray:
    """Bit patterns (uint32) of float32 values."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32)


def bits_float32(b) -> np.ndarray:
    """Float32 values of uint32 bit patterns."""
    return np.ascontiguousarray(np.asarray(b, dtype=np.uint32)).view(np.float32)


@dataclasses.dataclass(frozen=True)
class MMAParams:
    """Parameters of the accumulation model (see the module docstring).

    Parameters
    ----------
    n : int
        Products per fused step.
    F : int
        Fraction bits kept per term relative to the largest exponent of the step.
    term_round : str
        How bits below ``F`` are cut: ``"rz"``, ``"rd"`` or ``"rne"``.
    prod_exp : str
        ``"sum"`` (align products on ``exp_a + exp_b``), ``"sum_fp16"`` (the same after widening
        the operands to fp16, which turns e4m3 subnormals into normal numbers with lower
        exponents: seen for PTX ``mma.sync`` fp8 on H100) or ``"normalized"`` (the exponent of
        the exact product).
    out_frac_bits : int
        Fraction bits of the accumulator after each step (23 fp32, 13 "e8m13", 10 fp16).
    out_round : str
        Rounding of the step result: ``"rz"`` or ``"rne"``.
    acc_format : str
        ``"float32"`` or ``"float16"``: exponent range of the step result.
    promote : int or None
        Every ``promote`` elements of K, add the tensor-core partial sum into an fp32
        accumulator with an fp32 round-to-nearest-even addition; ``None``: never.
    split : int
        Split-K factor: ``K`` is cut into ``split`` contiguous parts of
        ``ceil(K / (split * split_tile)) * split_tile`` elements (the last one shorter), each
        accumulated from zero, then added in order into the accumulator in fp32 (RNE).
    split_tile : int
        Granularity of the split-K parts (the K tile of the kernel).
    out : str
        Final conversion of the fp32 result: ``"float32"``, ``"bfloat16"`` or ``"float16"``
        (both RNE from fp32).
    k_order : str
        Order in which the products of each instruction enter the steps (a key of
        ``K_ORDERS``): ``"natural"``, or ``"pairs2x16"``, seen for PTX ``mma.sync`` m16n8k32 fp8
        on H100: of each 32 products, those at k with ``(k // 2) % 2 == 0`` form the first step
        of 16 and the others the second, as if each thread's four fp8 values were widened to two
        fp16 pairs for two fp16 m16n8k16 steps.
    """

    n: int = 16
    F: int = 25
    term_round: str = "rz"
    prod_exp: str = "sum"
    out_frac_bits: int = 23
    out_round: str = "rz"
    acc_format: str = "float32"
    promote: int | None = None
    split: int = 1
    split_tile: int = 1
    out: str = "float32"
    k_order: str = "natural"

    def label(self) -> str:
        """Short human-readable description."""
        s = (f"n={self.n} F={self.F} term={self.term_round} prod={self.prod_exp} "
             f"acc={self.acc_format}:{self.out_frac_bits}{self.out_round}")
        if self.promote:
            s += f" promote={self.promote}"
        if self.split > 1:
            s += f" split={self.split}x{self.split_tile}"
        if self.out != "float32":
            s += f" out={self.out}"
        if self.k_order != "natural":
            s += f" k_order={self.k_order}"
        return s


K_ORDERS = {name: (None if order is None else np.asarray(order))
            for name, order in _lib.K_ORDERS.items()}

_TERM = {"rz": "rtz", "rd": "rdn", "rne": "rne"}
_OUT = {"rz": "rtz", "rne": "rne"}


def to_model(prm: MMAParams) -> _lib.MMAModel:
    """The library model (``arithforge.formats.mma.MMAModel``) of a parameter set."""
    return _lib.MMAModel(
        n=prm.n, frac_bits=prm.F, term_rounding=_TERM[prm.term_round], alignment=prm.prod_exp,
        acc_format=prm.acc_format, acc_frac_bits=prm.out_frac_bits,
        acc_rounding=_OUT[prm.out_round], promote=prm.promote, split=prm.split,
        split_tile=prm.split_tile, output=prm.out, k_order=prm.k_order)


def mma_dot(a_codes, b_codes, fa, fb, c=None, prm: MMAParams = MMAParams()) -> np.ndarray:
    """Model dot products ``c + sum_k a[..., k] * b[..., k]``; returns output bit patterns.

    ``a_codes``/``b_codes`` have shape ``(B, K)``; ``c`` is a float32 array ``(B,)`` or ``None``.
    Output: uint32 bits for ``prm.out == "float32"``, uint16 bits otherwise. The model itself
    lives in ``arithforge.formats.mma``.
    """
    model = to_model(prm)
    cc = None
    if c is not None:
        cc = model.acc_format.encode(np.asarray(c, dtype=np.float32), "rne")
    return _lib.dot(np.atleast_2d(a_codes), np.atleast_2d(b_codes), _fmt(fa).name,
                    _fmt(fb).name, model=model, c=cc)


def mma_matmul(A_codes, B_codes, fa, fb, prm: MMAParams = MMAParams(), C=None) -> np.ndarray:
    """Model ``C + A @ B`` for code matrices ``A (M, K)`` and ``B (K, N)``; returns bits (M, N)."""
    model = to_model(prm)
    cc = None if C is None else model.acc_format.encode(np.asarray(C, np.float32), "rne")
    return _lib.matmul(np.asarray(A_codes), np.asarray(B_codes), _fmt(fa).name, _fmt(fb).name,
                       model=model, c=cc)


def candidate_grid(**axes) -> list[MMAParams]:
    """All ``MMAParams`` over the product of the given axes (lists of values per field)."""
    keys = list(axes)
    return [MMAParams(**dict(zip(keys, vals, strict=True)))
            for vals in itertools.product(*axes.values())]
