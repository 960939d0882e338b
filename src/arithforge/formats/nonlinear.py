# Ref: S. Kim, A. Gholami, Z. Yao, M. W. Mahoney, K. Keutzer, "I-BERT: Integer-only BERT
#      Quantization", ICML 2021, arXiv 2101.01321, §3.3-3.5 and Algorithms 1-4 (i-poly, i-exp,
#      i-GELU, i-sqrt).
# Ref: Z. Li, Q. Gu, "I-ViT: Integer-only Quantization for Efficient Vision Transformer
#      Inference", ICCV 2023, arXiv 2207.01405, §3.3 (Shiftmax) and §3.4 (ShiftGELU).
"""Integer-only nonlinear functions of transformers, bit exact: the references of the ``gelu`` and
``softmax`` datapaths (numpy only, integer arithmetic on int64 arrays).

The papers' building blocks, with a real input ``x = q * S`` (integer code ``q``, float scale
``S``), return an integer code and a float scale:

- :func:`i_poly` (I-BERT Algorithm 1): ``a (x + b)**2 + c`` as ``q_out = (q + q_b)**2 + q_c``,
  ``S_out = a S**2``, with ``q_b = floor(b / S)`` and ``q_c = floor(c / (a S**2))``.
- :func:`i_exp` (Algorithm 2): ``exp(x)`` for ``x <= 0`` by ``x = -z ln2 + p`` with
  ``p in (-ln2, 0]``: ``z = floor(-q / q_ln2)``, ``q_ln2 = floor(ln2 / S)``, ``q_p = q + z q_ln2``,
  ``exp(p) ~ 0.3585 (p + 1.353)**2 + 0.344`` (i-poly), then ``q_out = q_L << (N - z)``,
  ``S_out = S_L / 2**N`` (a right shift by ``z - N`` when ``z > N``, rounding toward -inf).
- :func:`i_erf` / :func:`i_gelu` (Algorithm 3): ``erf(x) ~ sgn(x) [a (min(|x|, -b) + b)**2 + 1]``
  with ``a = -0.2888``, ``b = -1.769``; ``GELU(x) = x (1 + erf(x / sqrt 2)) / 2`` as
  ``q_out = q (q_erf + q_1)``, ``q_1 = floor(1 / S_erf)``, ``S_out = S S_erf / 2``. The clip bound
  is ``-q_b`` (the integer of ``-b / S``). ``S_erf = a S**2`` is negative (``a < 0``), so are
  ``q_c``, ``q_1`` and ``S_out``: the integers carry the sign, as in the paper.
- :func:`i_sqrt` (Algorithm 4): ``floor(sqrt(n))`` by integer Newton iteration from
  ``2**ceil(bits(n) / 2)``.

The units (what the hardware computes) fix the input scale to a power of two, ``S = 2**-s``
(``scale_exp = s``): every float constant above then becomes one integer known at design time
(``floor(ln2 * 2**s)``, ``floor(1.353 * 2**s)``, ...), the multiplications by ``1/S`` are
shifts, and I-ViT's Shiftmax needs no divider at all for ``exp`` (its integer part and fraction are
bit fields of ``-x log2 e``). The unit functions return integer codes and the exponent of their
power-of-two output scale:

- :func:`ibert_gelu` / :func:`shift_gelu`: ``bits``-bit two's-complement codes in, codes of the
  same width and the same scale ``2**-s`` out (GELU(x) lies in ``[-0.17, max(x, 0)]``, so the input
  format holds it). i-GELU's output scale ``S S_erf / 2`` is not a power of two: the unit
  requantizes ``q_out`` with one constant multiplier, ``round_half_up(-q_out * M / 2**K)`` where
  ``M = round(|S_out| 2**(s + K))`` has 16 bits. ShiftGELU (I-ViT eq. 17-18) is
  ``x sigmoid(1.702 x)`` with ``1.702 x ~ x + x>>1 + x>>3 + x>>4`` and the sigmoid from ShiftExp
  and one integer division: with ``E = ShiftExp(-|y|)`` (at most 1), ``sigmoid(-|y|) =
  E / (1 + E)``, computed as ``d = floor(E 2**P / (one + E))`` (``P = bits`` fraction bits), and
  ``sigmoid(|y|) = 2**P - d``; the product ``q * sigmoid`` is rounded (half up) back to scale
  ``2**-s``. (I-ViT subtracts the tensor's maximum before ShiftExp; a per-element unit subtracts
  ``max(y, 0)``, which keeps every exponent at most 0 as well.)
- :func:`ibert_softmax` / :func:`shiftmax`: rows of int8 codes (last axis, length ``n``) in,
  unsigned ``out_bits``-bit probabilities of scale ``2**-out_bits`` out. ``d = q - max(q)``;
  ``e = exp(d S)`` as integers of a common scale (i-exp with ``N = out_bits``, or I-ViT's ShiftExp:
  ``-d log2 e ~ -(d + d>>1 - d>>4)`` split into an integer part ``u >> s`` and a fraction
  ``r = u mod 2**s``, ``2**-r ~ 1 - r/2``, i.e. ``e = ((2**(s+1) - r) << N) >> (u >> s)``); the
  sum; one reciprocal ``R = floor(2**Rb / sum)`` (I-BERT's integer division, also I-ViT's) with
  ``Rb = bits(n * e_max) + out_bits``; ``out = min((e R) >> (Rb - out_bits), 2**out_bits - 1)``
  (a lone nonzero exponential would give exactly ``2**out_bits``; it saturates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ERF_COEFFS", "EXP_COEFFS", "GeluConstants", "LayerNormConstants", "SoftmaxConstants",
    "check_int", "gelu_constants", "i_erf", "i_exp", "i_gelu", "i_layernorm", "i_poly", "i_sqrt",
    "IMPLEMENTATIONS", "IntegerUnits", "ibert_gelu", "ibert_softmax", "layernorm_constants",
    "shift_gelu", "shiftmax", "softmax_constants",
]

#: I-BERT §3.4, eq. 9: ``exp(p) ~ 0.3585 (p + 1.353)**2 + 0.344`` on ``p in (-ln2, 0]``.
EXP_COEFFS = (0.3585, 1.353, 0.344)
#: I-BERT §3.5, eq. 8: ``erf(x) ~ sgn(x) [a (clip(|x|, max=-b) + b)**2 + 1]``.
ERF_COEFFS = (-0.2888, -1.769, 1.0)
#: ShiftGELU's 1.702 as shifts (I-ViT §3.4): ``1 + 2**-1 + 2**-3 + 2**-4 = 1.6875``.
GELU_SIGMOID_SHIFTS = (0, 1, 3, 4)

#: Widest GELU input, and the ranges of the input scale exponents the units take.
MAX_GELU_BITS = 16
GELU_SCALE_EXP = (0, 12)
SOFTMAX_SCALE_EXP = (1, 8)
SOFTMAX_N = (2, 16)
SOFTMAX_OUT_BITS = (2, 16)
LAYERNORM_N = (2, 16)
LAYERNORM_OUT_BITS = (4, 16)
#: Guard bits of the LayerNorm square root (``r = isqrt(n V 4**G)``).
LAYERNORM_GUARD = 4
#: Bits of the LayerNorm reciprocal beyond the square root's width.
LAYERNORM_RECIP_EXTRA = 16


def _i64(q: object) -> np.ndarray:
    return np.asarray(q, dtype=np.int64)


# -- the papers' algorithms, float scales ---------------------------------------------------------

def i_poly(q: object, scale: float, coeffs: tuple[float, float, float]
           ) -> tuple[np.ndarray, float]:
    """Compute ``a (x + b)**2 + c`` of ``x = q * scale`` in integers (I-BERT Algorithm 1).

    Returns ``(q_out, scale_out)`` with ``q_out = (q + floor(b / S))**2 + floor(c / (a S**2))``
    and ``scale_out = a S**2``.
    """
    a, b, c = coeffs
    q_b = math.floor(b / scale)
    q_c = math.floor(c / (a * scale * scale))
    x = _i64(q) + q_b
    return x * x + q_c, a * scale * scale


def i_exp(q: object, scale: float, shift: int = 0) -> tuple[np.ndarray, float]:
    """Compute ``exp(x)`` of ``x = q * scale <= 0`` in integers (I-BERT Algorithm 2, ``N = shift``).

    Returns ``(q_out, scale_out)``: ``q_out = floor(q_L * 2**(N - z))`` (clamped shifts: a right
    shift by 62 or more gives 0) and ``scale_out = S_L / 2**N``.
    """
    qv = _i64(q)
    if np.any(qv > 0):
        raise ValueError("i_exp takes codes of x <= 0 only (subtract the maximum first)")
    q_ln2 = math.floor(math.log(2) / scale)
    if q_ln2 < 1:
        raise ValueError(f"i_exp needs ln2 / scale >= 1, not scale {scale!r}")
    z = (-qv) // q_ln2
    q_l, s_l = i_poly(qv + z * q_ln2, scale, EXP_COEFFS)
    return _shift(q_l << shift, z), s_l / 2.0 ** shift


def i_erf(q: object, scale: float) -> tuple[np.ndarray, float]:
    """Compute ``erf(x)`` of ``x = q * scale`` in integers (I-BERT Algorithm 3, i-erf)."""
    a, b, _ = ERF_COEFFS
    qv = _i64(q)
    q_b = math.floor(b / scale)
    q_l, s_l = i_poly(np.minimum(np.abs(qv), -q_b), scale, ERF_COEFFS)
    return np.sign(qv) * q_l, s_l


def i_gelu(q: object, scale: float) -> tuple[np.ndarray, float]:
    """Compute ``GELU(x)`` of ``x = q * scale`` in integers (I-BERT Algorithm 3, i-GELU).

    Returns ``(q_out, scale_out)``; ``scale_out`` is negative (``a < 0``), as in the paper.
    """
    qv = _i64(q)
    q_erf, s_erf = i_erf(qv, scale / math.sqrt(2.0))
    q_1 = math.floor(1.0 / s_erf)
    return qv * (q_erf + q_1), scale * s_erf / 2.0


def i_sqrt(n: object) -> np.ndarray:
    """Compute ``floor(sqrt(n))`` of non-negative integers by Newton iteration (I-BERT
    Algorithm 4): ``x0 = 2**ceil(bits(n) / 2)``, ``x_{i+1} = floor((x_i + floor(n / x_i)) / 2)``
    until it stops decreasing."""
    nv = _i64(n)
    if np.any(nv < 0):
        raise ValueError("i_sqrt takes non-negative integers only")
    bits = np.array([int(v).bit_length() for v in nv.reshape(-1)], dtype=np.int64)
    x = (np.int64(1) << ((bits + 1) // 2)).reshape(nv.shape)
    x = np.where(nv == 0, 0, x)
    live = nv > 0
    while np.any(live):
        nxt = np.where(live, (x + nv // np.where(x == 0, 1, x)) // 2, x)
        stop = live & (nxt >= x)
        live = live & ~stop
        x = np.where(live, nxt, x)
    return x


def _shift(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``floor(x / 2**z)`` for ``z >= 0`` (a shift past the word gives 0 or -1, as hardware)."""
    return np.right_shift(x, np.minimum(z, 62))


# -- GELU unit ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeluConstants:
    """The integer constants of a GELU unit (``variant``, ``bits``-bit input of scale ``2**-s``).

    i-GELU: ``q_b`` (negative; the clip bound is ``-q_b``), ``q_c``, ``q_1`` (both negative) and
    the requantization ``M``, ``K``. ShiftGELU: ``P`` (sigmoid fraction bits) and ``one``
    (the integer of 1 in ShiftExp's output scale ``2**-(s + 1 + P)``).
    """

    variant: str
    bits: int
    scale_exp: int
    q_b: int = 0
    q_c: int = 0
    q_1: int = 0
    m: int = 0
    k: int = 0
    p: int = 0
    one: int = 0


def check_int(value: object, what: str, low: int, high: int) -> int:
    """Validate an integer parameter (``TypeError`` for a non-integer, ``ValueError`` out of
    ``low..high``); the datapaths' units share it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    v = int(value)
    if not low <= v <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {v!r}")
    return v


def gelu_constants(variant: str, bits: int, scale_exp: int) -> GeluConstants:
    """Derive the integer constants of a GELU unit (the hardware reads them from here)."""
    bits = check_int(bits, "bits", 2, MAX_GELU_BITS)
    s = check_int(scale_exp, "scale_exp", *GELU_SCALE_EXP)
    if variant == "shift":
        return GeluConstants("shift", bits, s, p=bits, one=1 << (s + 1 + bits))
    if variant != "ibert":
        raise ValueError(f"variant must be one of ibert, shift, not {variant!r}")
    a, b, c = ERF_COEFFS
    scale_erf = 2.0 ** -s / math.sqrt(2.0)
    q_b = math.floor(b / scale_erf)
    q_c = math.floor(c / (a * scale_erf * scale_erf))
    s_erf = a * scale_erf * scale_erf
    q_1 = math.floor(1.0 / s_erf)
    # |S_out| / 2**-s = |a| S**2 / 4 = |a| 2**(-2s-2): M = round(that * 2**K) in [2**15, 2**16).
    ratio = abs(2.0 ** -s * s_erf / 2.0) * 2.0 ** s
    k = 15 - math.floor(math.log2(ratio))
    m = round(ratio * 2.0 ** k)
    if m >= 1 << 16:
        k -= 1
        m = round(ratio * 2.0 ** k)
    return GeluConstants("ibert", bits, s, q_b=q_b, q_c=q_c, q_1=q_1, m=m, k=k)


def _codes(q: object, bits: int) -> np.ndarray:
    qv = _i64(q)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if np.any((qv < lo) | (qv > hi)):
        raise ValueError(f"codes must be {bits}-bit two's-complement integers ({lo}..{hi})")
    return qv


def ibert_gelu(q: object, scale_exp: int, bits: int = 8) -> tuple[np.ndarray, int]:
    """Compute I-BERT's i-GELU of ``bits``-bit codes ``q`` of scale ``2**-scale_exp``, requantized
    to the input's format.

    Returns ``(q_out, scale_exp)``: ``bits``-bit codes, same scale. ``q_out =
    clamp(floor((-v M + 2**(K-1)) / 2**K))`` with ``v = q (q_erf + q_1)`` of :func:`i_gelu` at
    ``S = 2**-scale_exp`` (module docstring).
    """
    k = gelu_constants("ibert", bits, scale_exp)
    qv = _codes(q, bits)
    q_l = np.minimum(np.abs(qv), -k.q_b) + k.q_b
    q_erf = np.sign(qv) * (q_l * q_l + k.q_c)
    v = qv * (q_erf + k.q_1)
    out = (-v * k.m + (1 << (k.k - 1))) >> k.k
    return np.clip(out, -(1 << (bits - 1)), (1 << (bits - 1)) - 1), k.scale_exp


def _shift_exp(d: np.ndarray, s: int, n: int) -> np.ndarray:
    """I-ViT's ShiftExp of ``x = d 2**-s <= 0``: integers of scale ``2**-(s + 1 + n)``."""
    i_p = d + (d >> 1) - (d >> 4)          # x log2 e, log2 e ~ 1.0111b
    u = -i_p                               # u 2**-s = -x log2 e >= 0
    r = u & ((1 << s) - 1)                 # fraction, 2**-r ~ 1 - r/2
    return _shift(((1 << (s + 1)) - r) << n, u >> s)


def shift_gelu(q: object, scale_exp: int, bits: int = 8) -> tuple[np.ndarray, int]:
    """Compute I-ViT's ShiftGELU of ``bits``-bit codes ``q`` of scale ``2**-scale_exp``.

    Returns ``(q_out, scale_exp)``: ``bits``-bit codes, same scale (module docstring).
    """
    k = gelu_constants("shift", bits, scale_exp)
    qv = _codes(q, bits)
    y = sum((qv >> sh for sh in GELU_SIGMOID_SHIFTS), start=np.zeros_like(qv))
    e = _shift_exp(-np.abs(y), k.scale_exp, k.p)
    d = (e << k.p) // (k.one + e)
    sig = np.where(y < 0, d, (1 << k.p) - d)
    return (qv * sig + (1 << (k.p - 1))) >> k.p, k.scale_exp


# -- softmax unit -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoftmaxConstants:
    """The integer constants of a softmax unit: i-exp's ``q_ln2``, ``q_b``, ``q_c`` (I-BERT) and
    the division by ``q_ln2`` as ``(u * div_m) >> div_k`` (exact for ``0 <= u <= 255``);
    ``shift`` (i-exp's ``N``), ``e_max`` (the exponential of 0), ``rb`` (the reciprocal's
    ``2**Rb``)."""

    variant: str
    n: int
    scale_exp: int
    out_bits: int
    shift: int
    e_max: int
    rb: int
    q_ln2: int = 0
    q_b: int = 0
    q_c: int = 0
    div_m: int = 0
    div_k: int = 0

    @property
    def sum_bits(self) -> int:
        """Width of the sum of ``n`` exponentials."""
        return (self.n * self.e_max).bit_length()


def _divider(d: int, top: int) -> tuple[int, int]:
    """``(M, K)`` with ``(u * M) >> K == u // d`` for every ``0 <= u <= top`` (checked)."""
    u = np.arange(top + 1, dtype=np.int64)
    for k in range(top.bit_length(), 40):
        m = -(-(1 << k) // d)
        if np.array_equal((u * m) >> k, u // d):
            return m, k
    raise AssertionError(f"no reciprocal of {d} up to {top}")  # pragma: no cover


def softmax_constants(variant: str, n: int, scale_exp: int, out_bits: int = 8
                      ) -> SoftmaxConstants:
    """Derive the integer constants of a softmax unit (the hardware reads them from here)."""
    n = check_int(n, "n", *SOFTMAX_N)
    s = check_int(scale_exp, "scale_exp", *SOFTMAX_SCALE_EXP)
    ob = check_int(out_bits, "out_bits", *SOFTMAX_OUT_BITS)
    return _softmax_constants(variant, n, s, ob)


def _softmax_constants(variant: str, n: int, s: int, ob: int) -> SoftmaxConstants:
    """:func:`softmax_constants` without the unit's row-length limit (rows of any ``n``)."""
    if variant == "shift":
        e_max = 1 << (s + 1 + ob)
        return SoftmaxConstants("shift", n, s, ob, ob, e_max, (n * e_max).bit_length() + ob)
    if variant != "ibert":
        raise ValueError(f"variant must be one of ibert, shift, not {variant!r}")
    scale = 2.0 ** -s
    a, b, c = EXP_COEFFS
    q_ln2 = math.floor(math.log(2) * 2 ** s)
    q_b = math.floor(b / scale)
    q_c = math.floor(c / (a * scale * scale))
    e_max = (q_b * q_b + q_c) << ob
    m, k = _divider(q_ln2, 255)
    return SoftmaxConstants("ibert", n, s, ob, ob, e_max, (n * e_max).bit_length() + ob,
                            q_ln2, q_b, q_c, m, k)


def _rows(q: object, n: int) -> np.ndarray:
    qv = _i64(q)
    if qv.ndim < 1 or qv.shape[-1] != n:
        raise ValueError(f"rows must have {n} codes on the last axis, not shape {qv.shape}")
    if np.any((qv < -128) | (qv > 127)):
        raise ValueError("softmax inputs must be int8 codes (-128..127)")
    return qv


def _normalize(e: np.ndarray, k: SoftmaxConstants) -> np.ndarray:
    total = e.sum(axis=-1, keepdims=True)
    recip = (1 << k.rb) // total
    return np.minimum((e * recip) >> (k.rb - k.out_bits), (1 << k.out_bits) - 1)


def ibert_softmax(q: object, scale_exp: int, out_bits: int = 8) -> tuple[np.ndarray, int]:
    """Compute I-BERT's integer softmax of rows of int8 codes ``q`` (last axis) of scale
    ``2**-scale_exp``: i-exp (``N = out_bits``) of ``q - max(q)``, sum, reciprocal, product.

    Returns ``(p, out_bits)``: unsigned codes of scale ``2**-out_bits`` (module docstring).
    """
    qv = np.asarray(q)
    k = softmax_constants("ibert", qv.shape[-1] if qv.ndim else 0, scale_exp, out_bits)
    return _ibert_softmax(_rows(q, k.n), k), k.out_bits


def _ibert_softmax(qv: np.ndarray, k: SoftmaxConstants) -> np.ndarray:
    u = qv.max(axis=-1, keepdims=True) - qv      # -(q - max) >= 0
    z = u // k.q_ln2
    p = k.q_b - (u - z * k.q_ln2)                # q_p + q_b, q_p = -(u mod q_ln2)
    e = _shift((p * p + k.q_c) << k.shift, z)
    return _normalize(e, k)


def shiftmax(q: object, scale_exp: int, out_bits: int = 8) -> tuple[np.ndarray, int]:
    """Compute I-ViT's Shiftmax of rows of int8 codes ``q`` (last axis) of scale
    ``2**-scale_exp``: ShiftExp of ``q - max(q)``, sum, reciprocal, product.

    Returns ``(p, out_bits)``: unsigned codes of scale ``2**-out_bits`` (module docstring).
    """
    qv = np.asarray(q)
    k = softmax_constants("shift", qv.shape[-1] if qv.ndim else 0, scale_exp, out_bits)
    return _shiftmax(_rows(q, k.n), k), k.out_bits


def _shiftmax(qv: np.ndarray, k: SoftmaxConstants) -> np.ndarray:
    e = _shift_exp(qv - qv.max(axis=-1, keepdims=True), k.scale_exp, k.shift)
    return _normalize(e, k)


# -- LayerNorm unit -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerNormConstants:
    """The widths of a LayerNorm unit over ``n`` int8 codes: ``guard`` (``G``), the square
    root's input and output widths, ``rb`` (the reciprocal's ``2**Rb``) and the output format."""

    n: int
    out_bits: int
    frac_bits: int
    guard: int
    sqrt_in_bits: int
    sqrt_bits: int
    rb: int

    @property
    def recip_bits(self) -> int:
        """Width of ``floor(2**Rb / r)`` (``r >= 2**G`` when not zero)."""
        return self.rb - self.guard + 1


def layernorm_constants(n: int, out_bits: int = 8, frac_bits: int = 4) -> LayerNormConstants:
    """Derive the widths of a LayerNorm unit (the hardware reads them from here)."""
    n = check_int(n, "n", *LAYERNORM_N)
    ob = check_int(out_bits, "out_bits", *LAYERNORM_OUT_BITS)
    f = check_int(frac_bits, "frac_bits", 0, ob - 2)
    return _layernorm_constants(n, ob, f)


def _layernorm_constants(n: int, ob: int, f: int) -> LayerNormConstants:
    """:func:`layernorm_constants` without the unit's row-length limit."""
    g = LAYERNORM_GUARD
    d_max = n * 255                                   # |n x_i - sum x| <= (n - 1) 255 < n 255
    v_max = n * d_max * d_max
    w_in = (n * v_max << (2 * g)).bit_length()
    w_in += w_in & 1                                  # an even number of bits: 2 per root digit
    w_sqrt = w_in // 2
    return LayerNormConstants(n, ob, f, g, w_in, w_sqrt, w_sqrt + LAYERNORM_RECIP_EXTRA)


def i_layernorm(q: object, out_bits: int = 8, frac_bits: int = 4) -> tuple[np.ndarray, int]:
    """Normalize rows of int8 codes ``q`` (last axis, length ``n``) to zero mean and unit
    variance in integers, with I-BERT's i-sqrt (§3.6, Algorithm 4) for the standard deviation.

    The input scale cancels, so the unit has none. Exact integers throughout: ``d_i = n q_i -
    sum(q)`` (``n`` times the deviation), ``V = sum(d_i**2)``, ``r = i_sqrt(n V 4**G)``
    (``= floor(sqrt(n V) 2**G)``, ``G`` guard bits), ``R = floor(2**Rb / r)``, and ``y_i =
    clamp(floor(d_i n R / 2**(Rb - F - G)))``, i.e. ``(x_i - mean) / std * 2**F`` (population
    variance, no epsilon) in ``out_bits``-bit two's complement with ``F = frac_bits``; a row of
    equal codes gives zeros. (I-BERT rounds the mean to an integer first; keeping ``n`` times the
    deviation makes the mean exact at the cost of ``bits(n)`` wider words.) No affine
    ``gamma``/``beta``: they follow as a per-channel multiply-add.

    Returns ``(y, frac_bits)``: codes of scale ``2**-frac_bits``.
    """
    qv = np.asarray(q)
    k = layernorm_constants(qv.shape[-1] if qv.ndim else 0, out_bits, frac_bits)
    return _layernorm(_rows(q, k.n), k), k.frac_bits


def _layernorm(qv: np.ndarray, k: LayerNormConstants) -> np.ndarray:
    d = k.n * qv - qv.sum(axis=-1, keepdims=True)
    v = (d * d).sum(axis=-1, keepdims=True)
    r = i_sqrt((k.n * v) << (2 * k.guard))
    recip = (1 << k.rb) // np.maximum(r, 1)
    y = (d * k.n * np.where(r == 0, 0, recip)) >> (k.rb - k.frac_bits - k.guard)
    lo, hi = -(1 << (k.out_bits - 1)), (1 << (k.out_bits - 1)) - 1
    return np.clip(y, lo, hi)


# -- the units on real values (``arithforge evaluate --nonlinear ibert|ivit``) -------------------
#
# A transformer's tensors are real (float64 here): each op quantizes its input to the unit's
# integer codes with a power-of-two scale chosen per tensor (the largest ``s`` in the unit's range
# with ``max |x| 2**s`` inside the code range), runs the unit's integer arithmetic on every row,
# whatever its length (the generated units take rows of at most 16; the arithmetic is the same),
# and returns the real output (codes times the output scale).

#: Input codes of the evaluate adapters: GELU in int16, softmax and LayerNorm in int8 (the
#: units' widths); softmax outputs of 8 bits, LayerNorm outputs of 16 bits with 8 fraction bits.
ADAPTER_GELU_BITS = 16
ADAPTER_SOFTMAX_OUT_BITS = 8
ADAPTER_LAYERNORM = (16, 8)


def _pow2_exp(x: np.ndarray, bits: int, lo: int, hi: int) -> int:
    """The largest ``s`` in ``[lo, hi]`` with ``max |x| 2**s <= 2**(bits - 1) - 1``."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(m) or m == 0.0:
        return hi
    return min(max(math.floor(math.log2(((1 << (bits - 1)) - 1) / m)), lo), hi)


def _quantize(x: np.ndarray, s: int, bits: int) -> np.ndarray:
    """``round_half_even(x 2**s)`` clipped to ``bits``-bit two's complement, int64."""
    lim = (1 << (bits - 1)) - 1
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** s), -lim - 1,
                   lim).astype(np.int64)


@dataclass(frozen=True)
class IntegerUnits:
    """The integer units on real values: ``variant`` ``ibert`` (i-GELU, I-BERT's softmax) or
    ``shift`` (I-ViT's ShiftGELU and Shiftmax); LayerNorm is the integer LayerNorm with i-sqrt in
    both. ``softmax``, ``gelu`` and ``layer_norm`` take and return float64 real values."""

    variant: str

    @property
    def name(self) -> str:
        return "ibert" if self.variant == "ibert" else "ivit"

    @property
    def description(self) -> str:
        gelu = "i-GELU" if self.variant == "ibert" else "ShiftGELU"
        sm = "I-BERT softmax (i-exp)" if self.variant == "ibert" else "Shiftmax"
        lb, lf = ADAPTER_LAYERNORM
        return (f"integer units: {gelu} on int{ADAPTER_GELU_BITS} codes, {sm} on int8 codes "
                f"into {ADAPTER_SOFTMAX_OUT_BITS}-bit probabilities, integer LayerNorm (i-sqrt) "
                f"on int8 codes into int{lb} with {lf} fraction bits; power-of-two input scales "
                f"per tensor")

    def gelu(self, x: np.ndarray, approximate: str = "none") -> np.ndarray:
        """GELU (the erf form; ``approximate`` is ignored: the unit is one approximation)."""
        bits = ADAPTER_GELU_BITS
        s = _pow2_exp(x, bits, *GELU_SCALE_EXP)
        fn = ibert_gelu if self.variant == "ibert" else shift_gelu
        y, so = fn(_quantize(x, s, bits), s, bits)
        return y.astype(np.float64) * 2.0 ** -so

    def softmax(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        xm = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
        n = xm.shape[-1] if xm.ndim else 1
        if n == 1:
            return np.ones_like(np.asarray(x, dtype=np.float64))
        # The unit subtracts the row's maximum, so only differences matter: the differences
        # (0 down to -255 codes of 2**-s) become int8 codes with the row's maximum at 127.
        d = xm - xm.max(axis=-1, keepdims=True)
        s = _pow2_exp(d, 9, *SOFTMAX_SCALE_EXP)
        q = np.clip(_quantize(d, s, 9), -255, 0) + 127
        k = _softmax_constants(self.variant, n, s, ADAPTER_SOFTMAX_OUT_BITS)
        p = _ibert_softmax(q, k) if self.variant == "ibert" else _shiftmax(q, k)
        return np.moveaxis(p.astype(np.float64) * 2.0 ** -k.out_bits, -1, axis)

    def layer_norm(self, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                   eps: float) -> np.ndarray:
        """LayerNorm over the last axis (``eps`` is not in the unit: a constant row gives 0).
        The unit's input scale cancels, so each row gets its own power-of-two scale."""
        xs = np.asarray(x, dtype=np.float64)
        m = np.max(np.abs(xs), axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(127.0 / np.where(m > 0, m, 1.0)))
        q = np.clip(np.rint(xs * 2.0 ** np.clip(e, -64, 64)), -128, 127).astype(np.int64)
        ob, f = ADAPTER_LAYERNORM
        y = _layernorm(q, _layernorm_constants(q.shape[-1], ob, f)).astype(np.float64) * 2.0 ** -f
        if weight is not None:
            y = y * np.asarray(weight, dtype=np.float64)
        if bias is not None:
            y = y + np.asarray(bias, dtype=np.float64)
        return y


#: ``arithforge evaluate --nonlinear NAME``: the integer units on real values.
IMPLEMENTATIONS = {"ibert": lambda: IntegerUnits("ibert"), "ivit": lambda: IntegerUnits("shift")}
