# Ref: MMA-Sim, arXiv 2511.10909 §4; Khattak & Mikaitis, arXiv 2512.07004; Fasi et al., "Numerical
#      behavior of NVIDIA tensor cores" (PeerJ CS 2021).
"""Tensor-core accumulation: block-aligned, truncating multi-term addition.

One step adds ``n`` exact products and the running accumulator: every term is aligned to the
largest term's leading bit, truncated toward zero to ``frac_bits`` fraction bits below it, the
terms are summed exactly and the sum is rounded to the accumulator format. Steps chain over K.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._core import FINITE, INF, NAN, ZERO
from ._errors import FormatError
from ._xp import NP
from .descriptors import FloatFormat, _index
from .rounding import Rounding, as_rounding

__all__ = ["Kulisch", "MMAModel", "PRESETS", "block_accumulate", "dot", "get_model", "nan_code",
           "group_exact_bits", "kulisch_round", "matmul", "step"]


def _step(
    cls: Any, neg: Any, sig: Any, exp: Any, facc: FloatFormat, frac_bits: int,
    out_rounding: Rounding,
) -> npt.NDArray[Any]:
    """One block step over the last axis of unpacked terms; returns accumulator codes."""
    finite = cls == FINITE
    top = np.where(finite, exp + _core.bit_length(sig) - 1, np.iinfo(np.int64).min // 2)
    max_top = top.max(axis=-1, keepdims=True)
    cut = max_top - frac_bits
    shift = cut - exp
    kept = np.where(shift > 0, sig >> np.clip(shift, 0, 63), sig << np.clip(-shift, 0, 62))
    kept = np.where(finite, kept, 0)
    total = np.where(neg, -kept, kept).sum(axis=-1)
    nan, inf, ninf = _core.sum_specials(cls, neg)
    zero = ~nan & ~inf & (total == 0)
    rcls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    rneg = np.where(inf, ninf, total < 0) & ~zero
    return _core.round_float(facc, rneg, np.abs(total), cut[..., 0], out_rounding, cls=rcls)


def block_accumulate(
    a: npt.NDArray[Any], b: npt.NDArray[Any], fmt_a: FloatFormat, fmt_b: FloatFormat,
    fmt_acc: FloatFormat, c: npt.NDArray[Any], *, n: int, frac_bits: int,
    out_rounding: Rounding,
) -> npt.NDArray[Any]:
    """Accumulate ``c + sum_k a_k b_k`` over the last axis in steps of ``n`` products."""
    from .ops import _prepare, _product  # shared product semantics (specials, exactness)

    if n < 1 or frac_bits < 1 or frac_bits + 2 + int(n).bit_length() > _core.SIG_LIMIT_BITS:
        raise FormatError(
            f"block accumulation needs n >= 1 and 1 <= frac_bits <= {_core.SIG_LIMIT_BITS - 2} "
            f"- bits(n), not n={n}, frac_bits={frac_bits}"
        )
    acc = np.asarray(c)
    k = a.shape[-1]
    for start in range(0, max(k, 1), n):
        x, y = _prepare([a[..., start:start + n], b[..., start:start + n]], [fmt_a, fmt_b], False)
        pcls, pneg, psig, pexp = _product(x, y)
        z = _prepare([acc], [fmt_acc], False)[0]
        cls = np.concatenate([pcls, z.cls[..., None]], axis=-1)
        neg = np.concatenate([pneg, z.neg[..., None]], axis=-1)
        sig = np.concatenate([psig, z.sig[..., None]], axis=-1)
        exp = np.concatenate([pexp, z.exp[..., None]], axis=-1)
        acc = _step(cls, neg, sig, exp, fmt_acc, frac_bits, out_rounding)
    return acc


# -- the tensor-core model: MMAModel, presets, matmul ------------------------------------------

#: Alignment rules: the exponent on which a product is aligned in its step.
ALIGNMENTS = ("sum", "sum_fp16", "normalized")

#: Orders in which the products of one instruction enter its steps (see ``MMAModel.k_order``).
K_ORDERS: dict[str, tuple[int, ...] | None] = {
    "natural": None,
    "pairs2x16": tuple([k for k in range(32) if (k // 2) % 2 == 0]
                       + [k for k in range(32) if (k // 2) % 2 == 1]),
}

#: How one step combines its products and the accumulator (see ``MMAModel.step_kind``).
STEP_KINDS = ("fused", "cdna3", "cdna3_fp8")

#: What a step whose result exceeds the accumulator's range gives (see ``MMAModel.overflow``).
OVERFLOWS = ("rounding", "inf")
#: The NaN code of the output (see ``MMAModel.nan_output``).
NAN_OUTPUTS = ("quiet", "ones")

_TERM_ROUNDINGS = (Rounding.RTZ, Rounding.RDN, Rounding.RNE)
_ACC_ROUNDINGS = (Rounding.RTZ, Rounding.RNE)
_F32 = FloatFormat(8, 23)
_F16 = FloatFormat(5, 10)
_BF16 = FloatFormat(8, 7)
#: Float accumulators a step rounds into (their exponent ranges).
_ACC_FORMATS = (_F32, _F16, _BF16)
_NO_TERM = -(1 << 40)  # alignment exponent of an absent (zero) term
# CDNA3 steps (MMA-Sim mmasim/simulator/arithmetic.py, commit c785138): the product sum is
# floored to 31 fraction bits (L275, L283) and the accumulator to 24 (L277, L284) at the step's
# exponent; in fp8 steps an accumulator more than 25 binades below it is dropped (L276-279); a
# zero has exponent -126 in every format (L93-94); a product of 2**128 or more is infinite
# (L244-247).
_CDNA3_SUM_BITS = 31
_CDNA3_ACC_BITS = 24
_CDNA3_FP8_DROP = 25
_CDNA3_ZERO_EXP = -126
_CDNA3_PRODUCT_INF = 128
# Special operands enter the steps as significand 1 with these exponents (finite exponents stay
# within +-2**11): an infinity at 2**36, a NaN at 2**38. A product's exponent is the sum, so a
# product at or above _SPECIAL is special: NaN when at or above _NAN_PRODUCT (a NaN operand) or
# when its significand is 0 (infinity times zero), otherwise infinite.
_INF_EXP = 1 << 36
_NAN_EXP = 1 << 38
_SPECIAL = 1 << 35
_NAN_PRODUCT = (1 << 37) + (1 << 36)


def _float_arg(value: FloatFormat | str, what: str) -> FloatFormat:
    from .catalog import get_format

    fmt = get_format(value) if isinstance(value, str) else value
    if not isinstance(fmt, FloatFormat):
        raise FormatError(f"{what} must be a float format, not {getattr(fmt, 'name', fmt)!r}")
    return fmt


@dataclasses.dataclass(frozen=True)
class MMAModel:
    """Accumulation behaviour of a matrix-multiply unit (one tensor-core instruction path).

    One *step* adds ``n`` exact products and the running accumulator: every non-zero term is
    aligned to the largest alignment exponent ``E`` of the step, cut to ``frac_bits`` fraction
    bits relative to ``2**E`` (``term_rounding``; no guard, round or sticky bits), the cut terms
    are summed exactly, and the sum is rounded to ``acc_frac_bits`` fraction bits within the
    exponent range of ``acc_format`` (``acc_rounding``). Steps chain over K. Around the steps a
    library may *promote* (every ``promote`` elements of K, the partial sum of the steps, started
    from zero, is added into a float32 accumulator by a float32 round-to-nearest-even addition)
    and *split K* (K cut into ``split`` contiguous parts of ``ceil(K / (split * split_tile)) *
    split_tile`` elements, each accumulated from zero, added in order with round to nearest even
    in ``split_reduction``, float32 unless said otherwise). The
    float32 result is finally rounded to nearest even to ``output``.

    Parameters
    ----------
    n : int
        Products per step.
    frac_bits : int
        Fraction bits ``F`` kept per term relative to ``2**E``.
    term_rounding : Rounding or str
        How the bits below ``F`` are cut: ``"rtz"`` (the hardware's), ``"rdn"`` (two's-complement
        truncation) or ``"rne"``.
    alignment : {"sum", "sum_fp16", "normalized"}
        Exponent of a product: ``"sum"`` is ``exp(a) + exp(b)`` (subnormal operands at their
        format's ``emin``; the significand product lies in [1, 4) and is not normalised);
        ``"sum_fp16"`` the same after widening the operands to float16 (subnormal fp8 operands
        become normal with lower exponents, seen for PTX ``mma.sync`` fp8 on the H100);
        ``"normalized"`` the exponent of the exact product.
    acc_format : FloatFormat or str
        Exponent range (and overflow behaviour) of the accumulator: ``float32``, ``float16`` or
        ``bfloat16`` (float32's exponent range with at most 7 fraction bits; its values are
        exact in float32, through which a step reads the accumulator).
    acc_frac_bits : int
        Fraction bits of the accumulator after each step, at most ``acc_format.man_bits``
        (23 for float32, 13 for the H100 fp8 "e8m13" accumulator, 10 for float16, 7 for
        bfloat16).
    acc_rounding : Rounding or str
        Rounding of each step result: ``"rtz"`` or ``"rne"``. Overflow goes to the largest finite
        value under ``rtz`` and to infinity under ``rne`` (unless ``overflow="inf"``).
    promote : int or None
        Promotion period in elements of K, a multiple of ``n``; ``None``: no promotion.
    split, split_tile : int
        Split-K factor and the granularity (K tile) of its parts.
    split_reduction : FloatFormat or str
        Format of the additions that join split-K parts: ``float32`` (cuBLAS on fp32
        accumulators) or ``float16`` (cuBLAS with fp16 accumulation: ``splitKreduce`` on
        ``__half``).
    output : FloatFormat or str
        Format of the result: ``float32``, ``bfloat16`` or ``float16``.
    k_order : {"natural", "pairs2x16"}
        Order in which products enter the steps: ``"pairs2x16"`` takes, of each 32 products,
        those at k with ``(k // 2) % 2 == 0`` first (PTX ``mma.sync`` m16n8k32 fp8 on the H100).
    normalization : int or None
        ``None``: each step's sum is normalized exactly. An integer ``W`` models an approximate
        normalizer (arXiv 2408.11997) whose leading-zero count and left shift cover only the
        ``W`` positions below the top bit ``T = E + 3 + bits(n + 1)`` of the step's sum register
        (``F + 4 + bits(n + 1)`` bits, its lowest at ``2**(E - F)``): a sum whose leading bit
        lies below ``T - W`` is rounded at ``T - W - acc_frac_bits`` instead, keeping fewer
        significant bits (as ``ops.fma(..., normalization=W)`` does for one FMA). The result
        is still a code of ``acc_format``.
    kulisch : Kulisch, optional
        Accumulate in a wide fixed-point register instead (:class:`Kulisch`): every exact
        product is added into it (``frac_bits``, ``term_rounding``, ``alignment`` and the
        ``acc_*`` fields do not apply) and its value is rounded once, to nearest even, to
        float32 at the end of K, then to ``output``. No promotion or split-K.
    name, source : str
        Preset name and where its parameters come from (not compared).
    group : int
        Products per group ``g`` (a divisor of ``n``; 1: no groups). The products of each
        ``g`` consecutive lanes are summed exactly first (a two-level tree); the ``n / g``
        group sums then enter the step as its terms (below).
    block : int or None
        Elements per block scale (``None``: no block scales); a multiple of ``group`` and a
        divisor of ``n``, so that every group lies in one block.
    scale_format : FloatFormat or str or None
        Format of the block scale codes: ``float8_e8m0fnu`` (OCP MX E8M0, a power of two) or
        a small float format read unsigned (``float8_e4m3fn`` codes with sign 0 are NVFP4's
        UE4M3; arithforge has no separate UE4M3 descriptor). Set with ``block``.
    overflow : {"rounding", "inf"}
        A step whose result lies beyond the accumulator format's range: ``"rounding"`` gives
        what ``acc_rounding`` gives (the largest finite value under ``rtz``, infinity under
        ``rne``); ``"inf"`` gives infinity whatever the rounding (measured on the H100: a
        truncating step still overflows to infinity).
    nan_output : {"quiet", "ones"}
        The NaN code of the output: ``"quiet"`` the format's default quiet NaN (``0x7fc00000``
        for float32, ``0x7fc0`` bfloat16, ``0x7e00`` float16); ``"ones"`` the positive NaN
        with every fraction bit set (``0x7fffffff``, ``0x7fff``, ``0x7fff``), the canonical NaN
        every H100 path returns whatever NaN came in (no payload or sign propagates).

    Special values (plain steps; groups, block scales and Kulisch registers take finite
    operands only): a product with a NaN operand, or infinity times zero, is NaN; infinity
    times a non-zero finite value is an infinity of the product's sign; a step with a NaN term
    (the accumulator included), or with infinities of both signs, gives NaN, else one with an
    infinite term gives that infinity, else the rounded finite sum (which may overflow, see
    ``overflow``). Promotion and split-K add in IEEE float32 (``inf - inf`` is NaN).
    product : {"exact", "lmul"}
        How each lane multiplies: ``"exact"`` (the exact product) or ``"lmul"``, an L-Mul
        product (arXiv 2410.00907, the paper's integer form, as ``ops.lmul(form="int")``):
        ``(1 + xm + ym + 2**-l) 2**(xe + ye)`` with the carries out of the fraction moved into
        the exponent, for normal operands of one format; a zero or subnormal operand gives a
        zero product. The L-Mul product enters the step exactly, as an exact product would
        (alignment ``sum``; no groups, block scales or Kulisch register; finite operands).
    lmul_offset : int or None
        L-Mul's ``l`` (``None``: the paper's ``l(m)``,
        :func:`~arithforge.formats.ops.lmul_offset_bits`).
    step_kind : {"fused", "cdna3", "cdna3_fp8"}
        ``"fused"``: the step above (NVIDIA). ``"cdna3"``: AMD CDNA3 (MI300) MFMA as MMA-Sim
        models it (:func:`_cdna3_step`): the ``n`` products alone are aligned to their largest
        exponent ``E_p`` and cut toward zero to ``frac_bits`` bits (the accumulator not among
        them); the product sum and the float32 accumulator are then aligned to ``E =
        max(E_p, E_c)`` and cut toward minus infinity, the sum to 31 fraction bits and the
        accumulator to 24, and their exact sum is rounded to nearest even to float32. A zero
        operand has exponent -126 (float32's ``emin``) whatever its format, and a zero product
        takes part in ``E_p`` with the sum of its operands' exponents; a product of magnitude
        at least ``2**128`` makes the result infinite (NaN with both signs).
        ``"cdna3_fp8"``: the same with the products split by the parity of their lane (even and
        odd k): each half is aligned and cut toward zero to ``frac_bits`` at its own largest
        exponent, the two half sums are cut toward minus infinity to ``frac_bits`` at the
        larger of the two, and an accumulator more than 25 binades below ``E`` is dropped.
        Both need ``alignment="sum"``, ``term_rounding="rtz"``, a float32 accumulator rounded
        to nearest even (``acc_frac_bits=23``), no groups, scales, promotion, split-K,
        approximate normalizer or Kulisch register.
    shape_splits : tuple of (output, M, N, K, split, split_tile)
        The library's split-K per call shape, as measured (``arithforge.formats.mma_probe``):
        :func:`matmul` on an ``M x K`` by ``K x N`` product uses the ``split``, ``split_tile``
        of the entry for ``model.output`` at that shape, or of the nearest measured shape
        (:func:`arithforge.formats.mma_probe.nearest_entry` states the rule); an explicit
        ``split > 1`` takes precedence. Empty: the model's own ``split`` at every shape.

    Groups and block scales (``group > 1`` or ``block`` set; see :func:`step`): the exact sum
    ``S`` of a group's products is multiplied by the product of the two blocks' scales
    (exactly: the scale significands multiply, the scale exponents add) and is one term of the
    step. Its alignment exponent is the largest alignment exponent of its non-zero products
    plus the two scale exponents (a power-of-two scale is an exponent add before alignment),
    whatever ``S`` is (a group cancelling to zero still counts); a group without a non-zero
    product (or with a zero scale) is no term. With ``group == 1`` and no scales the step is the
    plain one, bit for bit. A NaN scale (E8M0 ``0xff``) makes the step's result the
    accumulator format's positive NaN. The per-tensor float32 scales of :func:`matmul`
    (``scale_a``, ``scale_b``) are not part of a step: they multiply the float32 result in
    the epilogue, as cuBLAS applies them. Groups and block scales need ``alignment`` ``sum``
    (or ``normalized`` with a power-of-two scale), natural ``k_order`` and no split-K. Any
    operand format takes groups: a group sum wider than int64 (e5m2-like ranges, whose products
    span 58 binades: 67 bits at g=4, :func:`group_exact_bits`; fp16, bf16) is summed in Python
    integers, exactly, as the hardware's wide group adder does.
    """

    n: int = 16
    frac_bits: int = 25
    term_rounding: Rounding = Rounding.RTZ
    alignment: str = "sum"
    acc_format: FloatFormat = _F32
    acc_frac_bits: int = 23
    acc_rounding: Rounding = Rounding.RTZ
    promote: int | None = None
    split: int = 1
    split_tile: int = 1
    split_reduction: FloatFormat = _F32
    output: FloatFormat = _F32
    k_order: str = "natural"
    normalization: int | None = None
    kulisch: Kulisch | None = None
    name: str = dataclasses.field(default="", compare=False)
    source: str = dataclasses.field(default="", compare=False)
    group: int = 1
    block: int | None = None
    scale_format: FloatFormat | None = None
    overflow: str = "rounding"
    nan_output: str = "quiet"
    shape_splits: tuple[tuple[str, int, int, int, int, int], ...] = ()
    product: str = "exact"
    lmul_offset: int | None = None
    step_kind: str = "fused"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for what in ("n", "frac_bits", "acc_frac_bits", "split", "split_tile"):
            set_(self, what, _index(getattr(self, what), what))
        if self.promote is not None:
            set_(self, "promote", _index(self.promote, "promote"))
        if self.normalization is not None:
            set_(self, "normalization", _index(self.normalization, "normalization"))
            if self.normalization < 1:
                raise FormatError(f"normalization must be a window of at least 1 bit (or None), "
                                  f"not {self.normalization!r}")
        term = as_rounding(self.term_rounding)
        acc_r = as_rounding(self.acc_rounding)
        if term not in _TERM_ROUNDINGS:
            raise FormatError(f"term_rounding must be one of rtz, rdn, rne, not {term.value!r}")
        if acc_r not in _ACC_ROUNDINGS:
            raise FormatError(f"acc_rounding must be rtz or rne, not {acc_r.value!r}")
        set_(self, "term_rounding", term)
        set_(self, "acc_rounding", acc_r)
        acc = _float_arg(self.acc_format, "acc_format")
        out = _float_arg(self.output, "output")
        if acc not in _ACC_FORMATS:
            raise FormatError(
                f"acc_format must be float32, float16 or bfloat16, not {acc.name!r}")
        if out.name not in ("float32", "bfloat16", "float16"):
            raise FormatError(f"output must be float32, bfloat16 or float16, not {out.name!r}")
        red = _float_arg(self.split_reduction, "split_reduction")
        if red not in (_F32, _F16):
            raise FormatError(f"split_reduction must be float32 or float16, not {red.name!r}")
        set_(self, "split_reduction", red)
        set_(self, "acc_format", acc)
        set_(self, "output", out)
        if self.n < 1:
            raise FormatError(f"n must be at least 1, not {self.n!r}")
        # Aligned terms stay below 2**(frac_bits + 3); n + 1 of them are summed in int64.
        limit = _core.SIG_LIMIT_BITS - 3 - (self.n + 1).bit_length()
        if not 1 <= self.frac_bits <= limit:
            raise FormatError(
                f"frac_bits must be between 1 and {limit} for n={self.n}, not {self.frac_bits!r}")
        if not 0 <= self.acc_frac_bits <= acc.man_bits:
            raise FormatError(f"acc_frac_bits must be between 0 and {acc.man_bits} for "
                              f"{acc.name}, not {self.acc_frac_bits!r}")
        if self.promote is not None and (self.promote < self.n or self.promote % self.n):
            raise FormatError(
                f"promote must be a multiple of n={self.n} (or None), not {self.promote!r}")
        if self.split < 1 or self.split_tile < 1:
            raise FormatError(f"split and split_tile must be at least 1, not "
                              f"{self.split!r} and {self.split_tile!r}")
        set_(self, "shape_splits", _check_shape_splits(self.shape_splits))
        if self.alignment not in ALIGNMENTS:
            raise FormatError(
                f"alignment must be one of {', '.join(ALIGNMENTS)}, not {self.alignment!r}")
        if self.k_order not in K_ORDERS:
            raise FormatError(
                f"k_order must be one of {', '.join(K_ORDERS)}, not {self.k_order!r}")
        if self.overflow not in OVERFLOWS:
            raise FormatError(f"overflow must be one of {', '.join(OVERFLOWS)}, not "
                              f"{self.overflow!r}")
        if self.nan_output not in NAN_OUTPUTS:
            raise FormatError(f"nan_output must be one of {', '.join(NAN_OUTPUTS)}, not "
                              f"{self.nan_output!r}")
        _check_blocks(self)
        if self.kulisch is not None:  # (the presets, built above that function, have none)
            _check_kulisch_model(self)
        _check_product(self)
        _check_step_kind(self)

    def label(self) -> str:
        """Short description of the parameters (``n=32 F=13 acc=float32:13rtz promote=128``)."""
        if self.kulisch is not None:
            return _kulisch_label(self)
        s = (f"n={self.n} F={self.frac_bits} term={self.term_rounding} align={self.alignment} "
             f"acc={self.acc_format.name}:{self.acc_frac_bits}{self.acc_rounding}")
        if self.promote:
            s += f" promote={self.promote}"
        if self.split > 1:
            s += f" split={self.split}x{self.split_tile}"
            if self.split_reduction != _F32:
                s += f" reduce={self.split_reduction.name}"
        if self.output != _F32:
            s += f" out={self.output.name}"
        if self.k_order != "natural":
            s += f" k_order={self.k_order}"
        if self.normalization is not None:
            s += f" norm={self.normalization}"
        if self.group > 1:
            s += f" group={self.group}"
        if self.scale_format is not None:
            s += f" scale={self.scale_format.name}/{self.block}"
        if self.overflow != "rounding":
            s += f" overflow={self.overflow}"
        if self.nan_output != "quiet":
            s += f" nan={self.nan_output}"
        if self.product != "exact":
            s += f" product={self.product}"
            if self.lmul_offset is not None:
                s += f":{self.lmul_offset}"
        if self.step_kind != "fused":
            s += f" step={self.step_kind}"
        return s

    @property
    def blocked(self) -> bool:
        """Whether the step has groups or block scales (:func:`step`'s two-level path)."""
        return self.group > 1 or self.scale_format is not None


#: How a lane multiplies (:class:`MMAModel`'s ``product``).
PRODUCTS = ("exact", "lmul")


def _check_product(m: MMAModel) -> None:
    """Validate ``product`` and ``lmul_offset`` of ``m``."""
    if m.product not in PRODUCTS:
        raise FormatError(f"product must be one of {', '.join(PRODUCTS)}, not {m.product!r}")
    if m.lmul_offset is not None:
        object.__setattr__(m, "lmul_offset", _index(m.lmul_offset, "lmul_offset"))
        if m.product != "lmul":
            raise FormatError("lmul_offset applies to L-Mul products only (product='lmul')")
        assert m.lmul_offset is not None
        if not 0 <= m.lmul_offset <= 40:
            raise FormatError(f"lmul_offset must be between 0 and 40, not {m.lmul_offset!r}")
    if m.product == "lmul":
        bad = [why for why, on in (("groups or block scales", m.blocked),
                                   ("a Kulisch register", m.kulisch is not None),
                                   (f"alignment {m.alignment}", m.alignment != "sum"),
                                   (f"step_kind {m.step_kind}", m.step_kind != "fused")) if on]
        if bad:
            raise FormatError(f"L-Mul products (product='lmul') enter plain steps with "
                              f"alignment 'sum', not {bad[0]}")


def lmul_bits(fmt: FloatFormat, m: MMAModel) -> int:
    """L-Mul's offset bits ``l`` of ``m`` for operands of ``fmt``: ``m.lmul_offset``, else the
    paper's ``l(m)`` (:func:`~arithforge.formats.ops.lmul_offset_bits`)."""
    from .ops import lmul_offset_bits

    return lmul_offset_bits(fmt.man_bits) if m.lmul_offset is None else m.lmul_offset


def product_frac_bits(fa: FloatFormat, fb: FloatFormat, m: MMAModel) -> int:
    """Fraction bits of a lane's product: ``ma + mb`` for exact products; for L-Mul products
    ``max(2 m, l)`` (the L-Mul fraction ``max(m, l)`` bits, placed at the exact product's
    ``2 m`` where it fits)."""
    if m.product == "lmul":
        return max(2 * fa.man_bits, lmul_bits(fa, m))
    return fa.man_bits + fb.man_bits


def _lmul_lanes(a: tuple[Any, ...], b: tuple[Any, ...], fmt: FloatFormat, m: MMAModel,
                xp: Any = NP) -> tuple[Any, Any, Any, int]:
    """L-Mul products of unpacked operands ``(neg, sig, exp)`` (broadcast against each other):
    ``(sign, sig, exp, pfrac)`` with value ``sig * 2**(exp - pfrac)``, as ``ops.lmul(form="int")``
    computes them (zero or subnormal operands give zero products)."""
    (an, ag, ae), (bn, bg, be) = a, b
    mb = fmt.man_bits
    lbits = lmul_bits(fmt, m)
    grid = max(mb, lbits)
    pfrac = product_frac_bits(fmt, fmt, m)
    normal = ((ag >> mb) != 0) & ((bg >> mb) != 0)
    one = 1 << grid
    s = (((ag - (1 << mb)) + (bg - (1 << mb))) << (grid - mb)) + (1 << (grid - lbits))
    carries = s >> grid
    sig = xp.where(normal, (one + (s & (one - 1))) << (pfrac - grid), 0)
    exp = ae + be + carries
    return (an ^ bn) & normal, sig, exp, pfrac


def _check_blocks(m: MMAModel) -> None:
    """Validate (and normalise) ``group``, ``block`` and ``scale_format`` of ``m``."""
    set_ = object.__setattr__
    set_(m, "group", _index(m.group, "group"))
    if m.group < 1 or m.n % m.group:
        raise FormatError(f"group must be a divisor of n={m.n}, not {m.group!r}")
    if (m.block is None) != (m.scale_format is None):
        raise FormatError("block and scale_format go together (both set, or neither)")
    if m.scale_format is not None:
        sf = _float_arg(m.scale_format, "scale_format")
        if sf.bits > 8 or sf.has_inf:
            raise FormatError(f"scale_format must be a float of at most 8 bits without "
                              f"infinities (float8_e8m0fnu, float8_e4m3fn), not {sf.name!r}")
        set_(m, "scale_format", sf)
        set_(m, "block", _index(m.block, "block"))
        assert m.block is not None
        if m.block < 1 or m.block % m.group or m.n % m.block:
            raise FormatError(f"block must be a multiple of group={m.group} and a divisor of "
                              f"n={m.n} (every group in one block), not {m.block!r}")
        if m.alignment == "normalized" and sf.man_bits:
            raise FormatError(f"normalized alignment takes power-of-two scales only, not "
                              f"{sf.name}")
    if not m.blocked:
        return
    if m.normalization is not None:
        raise FormatError("approximate normalization is built for plain steps: drop "
                          "normalization, or group and the block scales")
    if m.alignment == "sum_fp16":
        raise FormatError("groups and block scales take alignment sum or normalized, not "
                          "sum_fp16")
    if m.k_order != "natural" or m.split > 1:
        raise FormatError("groups and block scales need the natural k_order and no split-K")
    limit = _core.SIG_LIMIT_BITS - 1 - _group_term_bits(m)
    if m.frac_bits > limit:
        raise FormatError(f"frac_bits must be at most {limit} with group={m.group}"
                          f"{'' if m.scale_format is None else ' and ' + m.scale_format.name} "
                          f"scales, not {m.frac_bits!r}")


def _check_step_kind(m: MMAModel) -> None:
    """Refuse what the CDNA3 step kinds cannot express (``MMAModel.step_kind``)."""
    if m.step_kind not in STEP_KINDS:
        raise FormatError(f"step_kind must be one of {', '.join(STEP_KINDS)}, not "
                          f"{m.step_kind!r}")
    if m.step_kind == "fused":
        return
    if (m.alignment != "sum" or m.term_rounding is not Rounding.RTZ or m.acc_format != _F32
            or m.acc_frac_bits != 23 or m.acc_rounding is not Rounding.RNE):
        raise FormatError(f"step_kind {m.step_kind} needs alignment sum, term_rounding rtz and "
                          f"a float32 accumulator rounded to nearest even (acc_frac_bits 23)")
    given = [what for what, on in (("group", m.group > 1), ("block", m.block is not None),
                                   ("promote", m.promote is not None), ("split", m.split > 1),
                                   ("shape_splits", bool(m.shape_splits)),
                                   ("k_order", m.k_order != "natural"),
                                   ("normalization", m.normalization is not None),
                                   ("kulisch", m.kulisch is not None)) if on]
    if given:
        raise FormatError(f"step_kind {m.step_kind} is modelled without {given[0]}")
    if m.frac_bits > _CDNA3_SUM_BITS:
        raise FormatError(f"frac_bits must be at most {_CDNA3_SUM_BITS} with step_kind "
                          f"{m.step_kind}, not {m.frac_bits!r}")
    if m.step_kind == "cdna3_fp8" and m.n % 2:
        raise FormatError(f"step_kind cdna3_fp8 splits a step into even and odd lanes: n must "
                          f"be even, not {m.n!r}")


def _group_term_bits(m: MMAModel) -> int:
    """Bits of the signed sum of a step's cut terms above ``frac_bits``: a group term is below
    ``g * 4 * 2**F`` (times 4 for scales with a significand), rounded up by one unit at most;
    ``n / g + 1`` of them are summed."""
    sx = 2 if m.scale_format is not None and m.scale_format.man_bits else 0
    return 3 + sx + m.group.bit_length() + 1 + (m.n // m.group + 1).bit_length()


def group_exact_bits(fmt_a: FloatFormat, fmt_b: FloatFormat, m: MMAModel) -> int:
    """Width of a group's exact sum (magnitude bits) in ``m``'s model: the products' lowest
    bits span ``(emax - emin)`` of each operand format, the significands ``pa + pb`` (and the
    scales' significands), ``g`` of them add ``bits(g)``."""
    sp = 0 if m.scale_format is None else 2 * (m.scale_format.precision - 1)
    return ((fmt_a.emax - fmt_a.emin) + (fmt_b.emax - fmt_b.emin) + fmt_a.precision
            + fmt_b.precision + sp + m.group.bit_length())


def _check_shape_splits(entries: Any) -> tuple[tuple[str, int, int, int, int, int], ...]:
    out: list[tuple[str, int, int, int, int, int]] = []
    for e in entries:
        try:
            name, *nums = e
            vals = tuple(_index(v, "shape_splits") for v in nums)
        except (TypeError, ValueError):
            raise FormatError(f"shape_splits entries must be (output, M, N, K, split, "
                              f"split_tile), not {e!r}") from None
        if len(vals) != 5 or min(vals) < 1 or str(name) not in ("float32", "bfloat16",
                                                                 "float16"):
            raise FormatError(f"shape_splits entries must be (output, M, N, K, split, "
                              f"split_tile) with positive sizes, not {e!r}")
        out.append((str(name), vals[0], vals[1], vals[2], vals[3], vals[4]))
    return tuple(out)


def for_shape(model: MMAModel | str, rows: int, cols: int, k: int) -> MMAModel:
    """The model as it runs an ``rows x k`` by ``k x cols`` product: ``shape_splits`` resolved
    into ``split`` and ``split_tile`` (an explicit ``split > 1`` is kept)."""
    m = get_model(model)
    if not m.shape_splits or m.split > 1:
        return m
    from .mma_probe import nearest_entry

    hit = nearest_entry(m.shape_splits, m.output.name, rows, cols, k)
    if hit is None or hit == (1, 1):
        return m
    return dataclasses.replace(m, split=hit[0], split_tile=hit[1])


def _preset(name: str, source: str, **kw: Any) -> MMAModel:
    from ._h100_shapes import SHAPE_SPLITS  # measured split-K per cuBLAS call shape

    return MMAModel(name=name, source=source, shape_splits=SHAPE_SPLITS.get(name, ()), **kw)


#: How every measured H100 path treats special values (data/tensorcore/h100_special.npz).
_H100_SPECIALS: dict[str, Any] = {"overflow": "inf", "nan_output": "ones"}


_H100 = "measured on an NVIDIA H100 SXM (docs/tensor-cores.md, data/tensorcore/)"
_PUB = "published (MMA-Sim arXiv 2511.10909; Fasi et al. 2021), not measured by us"
#: Ref: P. Xie et al., "MMA-Sim: Bit-Accurate Reference Model of Tensor Cores and Matrix Cores",
#:      arXiv 2511.10909 (2025), and its code (github.com/microsoft/MMA-Sim,
#:      mmasim/simulator/nv.py TCGen05MMASim, functions.py nv_fused_dot_add and
#:      nv_fused_dot_add_with_block_scale), validated there bit for bit on a B200.
_B200 = ("published (MMA-Sim arXiv 2511.10909, Blackwell B200 sm_100a), not measured by us")
#: MMA-Sim's Blackwell special values: a NaN result is 0x7fffffff, an infinite sum infinity.
_B200_SPECIALS: dict[str, Any] = {"overflow": "inf", "nan_output": "ones"}

#: Ref: MMA-Sim (arXiv 2511.10909) code, github.com/microsoft/MMA-Sim at commit c785138
#:      (2026-01-29): mmasim/simulator/amd.py (class mfma), mmasim/simulator/arithmetic.py
#:      (fused_sum, amd_fused_dot_rd_add), mmasim/isa/common.py (amd_torch_dtype); validated
#:      there on an AMD MI300 (CDNA3). Line numbers below are of that commit.
_MI300 = "published (MMA-Sim arXiv 2511.10909, AMD CDNA3 MI300), not measured by us"
#: CDNA3 steps: a float32 accumulator, each step rounded to nearest even (a product sum
#: beyond float32's range gives infinity: torch's float64 -> float32 conversion, amd.py L97).
_MI300_ACC: dict[str, Any] = {"acc_rounding": Rounding.RNE}

#: Named models. ``h100-*`` are fitted bit for bit to our H100 recordings; the others follow
#: published measurements.
PRESETS: dict[str, MMAModel] = {m.name: m for m in (
    _preset("h100-fp8-fastacc", _H100 + ": torch._scaled_mm(use_fast_accum=True), Triton "
            "tl.dot (wgmma m64nNk32)", n=32, frac_bits=13, acc_frac_bits=13,
            **_H100_SPECIALS),
    _preset("h100-fp8", _H100 + ": torch._scaled_mm(use_fast_accum=False), promotion to "
            "float32 every 128", n=32, frac_bits=13, acc_frac_bits=13, promote=128,
            **_H100_SPECIALS),
    _preset("h100-bf16", _H100 + ": wgmma m64nNk16 and mma.sync m16n8k16, bf16 inputs; cuBLAS "
            "without split-K", n=16, frac_bits=25, **_H100_SPECIALS),
    _preset("h100-fp16", _H100 + ": wgmma m64nNk16 and mma.sync m16n8k16, fp16 inputs; cuBLAS "
            "without split-K", n=16, frac_bits=25, **_H100_SPECIALS),
    _preset("h100-fp16-f16acc", _H100 + ": mma.sync m16n8k16 with a float16 accumulator",
            n=16, frac_bits=25, acc_format=_F16, acc_frac_bits=10, acc_rounding=Rounding.RNE,
            output=_F16),
    _preset("h100-fp8-mma-sync", _H100 + ": PTX mma.sync m16n8k32 fp8 (two fp16 steps of 16, "
            "float32 RNE between instructions)", n=16, frac_bits=25, alignment="sum_fp16",
            promote=32, k_order="pairs2x16", **_H100_SPECIALS),
    _preset("b200-bf16", _B200 + ": tcgen05.mma kind::f16 (K=16), bf16 inputs, f32 "
            "accumulator. n=16 (instruction K), F=25 (arch_accum_fractional_bits['Blackwell']), "
            "terms cut toward zero at the step's largest exponent, accumulator included; step "
            "result RZ to float32; NaN 0x7fffffff; overflow to inf. Library promotion, split-K "
            "and special-value probes: not published", n=16, frac_bits=25, **_B200_SPECIALS),
    _preset("b200-fp16", _B200 + ": tcgen05.mma kind::f16 (K=16), fp16 inputs, f32 "
            "accumulator; same parameters as b200-bf16", n=16, frac_bits=25, **_B200_SPECIALS),
    _preset("b200-fp16-f16acc", _B200 + ": tcgen05.mma kind::f16 (K=16) with an f16 "
            "accumulator: the F=25 step rounded to nearest even into float16 "
            "(nv_fused_dot_add, output f16); NaN 0x7fff", n=16, frac_bits=25, acc_format=_F16,
            acc_frac_bits=10, acc_rounding=Rounding.RNE, output=_F16, nan_output="ones"),
    _preset("b200-fp8-f16acc", _B200 + ": tcgen05.mma kind::f8f6f4 (K=32), e4m3/e5m2 inputs "
            "with an f16 accumulator: the F=25 step rounded to nearest even into float16; NaN "
            "0x7fff", n=32, frac_bits=25, acc_format=_F16, acc_frac_bits=10,
            acc_rounding=Rounding.RNE, output=_F16, nan_output="ones"),
    _preset("b200-fp8", _B200 + ": tcgen05.mma kind::f8f6f4 (K=32), e4m3/e5m2 inputs, f32 "
            "accumulator. n=32, F=25 (unlike the H100's 13: no 'e8m13' accumulator on "
            "Blackwell), step RZ to float32 (23 fraction bits). e2m3/e3m2/e2m1 inputs of this "
            "kind: not published", n=32, frac_bits=25, **_B200_SPECIALS),
    _preset("b200-mxf8f6f4", _B200 + ": tcgen05.mma kind::mxf8f6f4.block_scale (K=32, "
            "ue8m0 per 32: one scale pair per step), e4m3/e5m2 elements. The scale exponents "
            "add to each product's exponent before alignment; n=32, F=25, step RZ to float32. "
            "MXFP6/MXFP4 elements through this kind: not published, assumed the same path",
            n=32, frac_bits=25, block=32, scale_format="float8_e8m0fnu", **_B200_SPECIALS),
    _preset("b200-mxf4", _B200 + ": tcgen05.mma kind::mxf4nvf4.block_scale (K=64, e2m1, "
            "ue8m0 per 32; probed as such, kind::mxf4 simulated alike): products summed "
            "exactly in groups of 16, F=35 (n_accum_fractional_bits 35 for kind mxf4*), "
            "step RZ to float32. Approximation: MMA-Sim aligns a group at its scale exponents "
            "alone, arithforge at its largest product's exponent plus them (at most 4 binades "
            "higher); identical while no bit falls below either cut, 98.7-100% of random "
            "outputs (docs/tensor-cores.md)", n=64, frac_bits=35, group=16, block=32,
            scale_format="float8_e8m0fnu", **_B200_SPECIALS),
    _preset("b200-nvfp4", _B200 + ": tcgen05.mma kind::mxf4nvf4.block_scale.scale_vec::4X "
            "(K=64, e2m1, ue4m3 per 16): as b200-mxf4 with one UE4M3 scale (float8_e4m3fn "
            "codes, sign 0) per group of 16; F=35; same group-alignment approximation",
            n=64, frac_bits=35, group=16, block=16, scale_format="float8_e4m3fn",
            **_B200_SPECIALS),
    _preset("mi300-bf16", _MI300 + ": v_mfma_f32_32x32x8_bf16 / 16x16x16_bf16 (CDNA3). "
            "n=8: steps of min(8, K) products (simulator/amd.py L39-43; the 4x4x4_16b, "
            "16x16x4_4b and 32x32x4_2b variants have K=4: n=4); products cut toward zero to "
            "F=24 bits at their own largest exponent (amd.py L94 n_fractional_bits=24, "
            "arithmetic.py L115-129 fused_sum); sum floored to 31 and float32 accumulator to 24 "
            "fraction bits at the larger exponent (arithmetic.py L281-284); result RNE to "
            "float32 (amd.py L97); a product >= 2**128 gives inf (arithmetic.py L243-259). "
            "NaN code: not published (arithmetic.py L236 TODO)", n=8, frac_bits=24,
            step_kind="cdna3", **_MI300_ACC),
    _preset("mi300-fp16", _MI300 + ": v_mfma_f32_32x32x8_f16 / 16x16x16_f16 (CDNA3); same "
            "step as mi300-bf16 (simulator/amd.py L30-34)", n=8, frac_bits=24,
            step_kind="cdna3", **_MI300_ACC),
    _preset("mi300-fp8", _MI300 + ": v_mfma_f32_16x16x32 / 32x32x16 _fp8/_bf8 (CDNA3; fp8 "
            "is float8_e4m3fnuz, bf8 float8_e5m2fnuz: isa/common.py L148-156). n=16 "
            "(simulator/amd.py L48-51); even and odd lanes each cut toward zero to F=24 at "
            "their own largest exponent, the two half sums floored to 24 bits at the larger, "
            "then as mi300-bf16 except that an accumulator more than 25 binades below is "
            "dropped (arithmetic.py L261-279; is_fp8 amd.py L95)", n=16, frac_bits=24,
            step_kind="cdna3_fp8", **_MI300_ACC),
    _preset("a100-bf16", _PUB + ": A100 mma, bf16", n=8, frac_bits=24),
    _preset("a100-fp16", _PUB + ": A100 mma, fp16", n=8, frac_bits=24),
    _preset("v100-fp16", _PUB + ": V100 HMMA, fp16", n=4, frac_bits=23),
)}


def get_model(name: str | MMAModel) -> MMAModel:
    """Return the preset called ``name`` (an :class:`MMAModel` is returned as is).

    Raises
    ------
    FormatError
        For an unknown name, with the closest preset names.
    """
    if isinstance(name, MMAModel):
        return name
    if isinstance(name, os.PathLike) or (isinstance(name, str)
                                         and name.strip().lower().endswith(".json")):
        return load_model(name)
    if not isinstance(name, str):
        raise TypeError(f"model must be a preset name or an MMAModel, not {name!r}")
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    close = difflib.get_close_matches(key, list(PRESETS), n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise FormatError(f"model must be one of {', '.join(PRESETS)}, not {name!r}{hint}")


_MODEL_FILE_VERSION = 1


def model_to_dict(m: MMAModel) -> dict[str, Any]:
    """A JSON-ready description of ``m`` (formats by name), read back by :func:`load_model`."""
    if m.kulisch is not None:
        raise FormatError("a Kulisch model has no model-file form")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        if isinstance(v, FloatFormat):
            v = v.name
        elif isinstance(v, Rounding):
            v = v.value
        elif f.name == "shape_splits":
            v = [list(e) for e in v]
        elif f.name == "kulisch":
            continue
        out[f.name] = v
    return out


def model_from_dict(d: dict[str, Any]) -> MMAModel:
    """The inverse of :func:`model_to_dict`."""
    known = {f.name for f in dataclasses.fields(MMAModel)} - {"kulisch"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise FormatError(f"unknown model fields {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(known))})")
    kw = dict(d)
    kw["shape_splits"] = tuple(tuple(e) for e in kw.get("shape_splits", ()))
    return MMAModel(**kw)


def load_model(path: str | os.PathLike[str]) -> MMAModel:
    """Read a model file: JSON ``{"arithforge_mma_model": 1, "model": {...}}`` as
    ``arithforge probe-gpu`` writes it (a bare field dict is accepted too)."""
    p = os.fspath(path).strip()
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise FormatError(f"cannot read model file {p}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"model file {p} is not JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(data, dict) and "model" in data:
        data = data["model"]
    if not isinstance(data, dict):
        raise FormatError(f"model file {p} must hold a JSON object of MMAModel fields")
    try:
        return model_from_dict(data)
    except TypeError as exc:
        raise FormatError(f"model file {p}: {exc}") from None


def save_model(m: MMAModel, path: str | os.PathLike[str]) -> None:
    """Write ``m`` as a model file (:func:`load_model`)."""
    with open(os.fspath(path), "w", encoding="utf-8") as fh:
        json.dump({"arithforge_mma_model": _MODEL_FILE_VERSION, "model": model_to_dict(m)},
                  fh, indent=1)
        fh.write("\n")


# -- the steps: one implementation for numpy and torch ------------------------------------------
#
# Exact integer arithmetic (int64), float64 only for exactly representable values. Every function
# below takes the array namespace ``xp`` (:mod:`._xp`): numpy's here, torch's in
# :mod:`._torch_backend` (``device=``), which adds only the glue (tensors in and out, the
# float16 split-K reduction through its encode, the compiled step on CUDA).

def _bits_f32(x: Any) -> Any:
    return NP.f32_bits(x)


def _unpack_finite(fmt: FloatFormat, codes: Any, what: str, xp: Any = NP
                   ) -> tuple[Any, Any, Any]:
    """``(neg, sig, exp)`` with value ``(-1)**neg * sig * 2**(exp - man_bits)``."""
    cls, neg, sig, exp = _core.unpack_float(fmt, codes, xp=xp)
    if bool(((cls == INF) | (cls == NAN)).any()):
        raise FormatError(f"{what} must hold finite {fmt.name} codes, not NaN or infinity "
                          "(the tensor-core models cover finite inputs)")
    return neg, sig, exp + fmt.man_bits


def _widen(sig: Any, exp: Any, fmt: FloatFormat, emin: int, xp: Any = NP) -> tuple[Any, Any]:
    """Re-express subnormal operands as normal numbers of a format with exponent floor ``emin``."""
    s = xp.where(sig > 0, fmt.man_bits + 1 - _core.bit_length(sig, xp), 0)
    s = xp.minimum(xp.clip(s, 0), xp.clip(exp - emin, 0))
    return sig << s, exp - s


def _align(mag: Any, shift: Any, rounding: Rounding, neg: Any, xp: Any = NP) -> Any:
    """Shift magnitudes by ``shift`` (left if positive), cutting dropped bits per ``rounding``."""
    left = xp.clip(shift, 0, 62)
    right = xp.clip(-shift, 0, 62)
    kept = (mag << left) >> right
    if rounding is Rounding.RTZ:
        return kept
    rem = mag - ((mag >> right) << right)
    if rounding is Rounding.RDN:
        return kept + xp.astype(neg & (rem != 0), xp.int64)
    half = xp.where(right > 0, xp.pow2(xp.clip(right - 1, 0)), 0)
    up = (right > 0) & ((rem > half) | ((rem == half) & ((kept & 1) == 1)))
    return kept + xp.astype(up, xp.int64)


def _round_scaled(s: Any, scale_exp: Any, *, p: int, emin: int, emax: int,
                  rounding: Rounding, xp: Any = NP, floor: Any = None,
                  overflow_inf: bool = False) -> Any:
    """Round ``s * 2**scale_exp`` (int64 ``s``) to ``p`` significant bits, exponent range
    ``[emin, emax]`` (gradual underflow); returns exactly representable float64 values.
    ``floor`` (per element, optional): the rounding position is never below ``floor - (p -
    1)``, as if ``emin`` were ``max(emin, floor)`` (an approximate normalizer's window).
    Past the largest finite value: infinity under ``rne`` or with ``overflow_inf``, else the
    largest finite value."""
    neg = s < 0
    mag = xp.abs(s)
    length = _core.bit_length(mag, xp)
    lead = scale_exp + length - 1
    low = emin if floor is None else xp.clip(floor, emin)
    p_eff = p - xp.clip(low - lead, 0)
    shift = xp.clip(length - p_eff, 0)
    sh = xp.clip(shift, None, 62)
    q = mag >> sh
    if rounding is Rounding.RNE:
        rem = mag - (q << sh)
        half = xp.where(sh > 0, xp.pow2(xp.clip(sh - 1, 0)), 0)
        up = (sh > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1))) & (shift <= 62)
        q = q + xp.astype(up, xp.int64)
    q = xp.where(shift > 62, 0, q)
    val = xp.ldexp(xp.astype(q, xp.float64), scale_exp + shift)
    max_finite = (2.0 - 2.0 ** (1 - p)) * 2.0**emax
    over = val > max_finite
    sat = rounding is Rounding.RTZ and not overflow_inf
    val = xp.where(over, max_finite if sat else float("inf"), val)
    return xp.where(neg, -val, val)


def _step_consts(m: MMAModel, pfrac: int) -> dict[str, Any]:
    """The facts of model ``m`` one step needs, as plain constants (a compiler specialises on
    them); :func:`_plain_step` takes them."""
    if m.step_kind != "fused":
        return {"pfrac": pfrac, "f": m.frac_bits, "fp8": m.step_kind == "cdna3_fp8"}
    return {
        "pfrac": pfrac, "f": m.frac_bits, "term": m.term_rounding,
        "normalized": m.alignment == "normalized", "p": m.acc_frac_bits + 1,
        "emin": m.acc_format.emin, "emax": m.acc_format.emax, "acc_rounding": m.acc_rounding,
        "overflow_inf": m.overflow == "inf",
        # An approximate normalizer (plain steps only: refused with groups and block scales).
        **({} if m.normalization is None
           else {"window": m.normalization - 3 - (m.n + 1).bit_length()}),
    }


def _mma_step(xp: Any, psign: Any, psig: Any, pexp: Any, c_in: Any, *, pfrac: int, f: int,
              term: Rounding, normalized: bool, p: int, emin: int, emax: int,
              acc_rounding: Rounding, window: int | None = None,
              overflow_inf: bool = False) -> Any:
    """One step over the last axis of products ``(B, n)`` plus accumulator values ``c_in (B,)``.

    ``c_in`` holds float32 values (or inf/NaN) in float64; the model's facts come as constants
    (:func:`_step_consts`); ``window``, with an approximate normalizer, is ``W - 3 - bits(n +
    1)``: the sum is rounded no lower than at ``E - window - (p - 1)``. Special products
    (exponent at or above ``_SPECIAL``, :func:`_unpack_operand`) and a special accumulator
    decide the result by IEEE rules (:func:`_special_result`).
    """
    c_inf = ~xp.isfinite(c_in)
    c = xp.where(c_inf, 0.0, c_in)
    _, cneg, csig, cexp = _core.unpack_float(_F32, xp.f32_bits(c), xp=xp)
    cexp = cexp + 23
    special = pexp >= _SPECIAL
    pnz = (psig != 0) & ~special
    cnz = csig != 0
    palign = pexp + _core.bit_length(psig, xp) - 1 - pfrac if normalized else pexp
    p_align = xp.where(pnz, palign, _NO_TERM)
    big = xp.maximum(xp.amax(p_align, -1), xp.where(cnz, cexp, _NO_TERM))
    tp = xp.where(pnz, _align(psig, pexp - pfrac + f - big[:, None], term, psign, xp), 0)
    tc = xp.where(cnz, _align(csig, cexp - 23 + f - big, term, cneg, xp), 0)
    total = xp.sum(xp.where(psign, -tp, tp), -1) + xp.where(cneg, -tc, tc)
    total = xp.where(big <= _NO_TERM, 0, total)
    floor = None if window is None else big - window
    res = _round_scaled(total, big - f, p=p, emin=emin, emax=emax, rounding=acc_rounding, xp=xp,
                        floor=floor, overflow_inf=overflow_inf)
    return _special_result(xp, psign, psig, pexp, c_in, res)


def _plain_step(m: MMAModel) -> Callable[..., Any]:
    """The step function of a model without groups or scales: :func:`_mma_step` or, for the
    CDNA3 kinds, :func:`_cdna3_step` (both take :func:`_step_consts`)."""
    return _mma_step if m.step_kind == "fused" else _cdna3_step


def _floor_shift(v: Any, shift: Any, xp: Any) -> Any:
    """Signed int64 ``v`` times ``2**shift``, cut toward minus infinity."""
    neg = v < 0
    mag = _align(xp.abs(v), shift, Rounding.RDN, neg, xp)
    return xp.where(neg, -mag, mag)


def _cdna3_step(xp: Any, psign: Any, psig: Any, pexp: Any, c_in: Any, *, pfrac: int, f: int,
                fp8: bool) -> Any:
    """One CDNA3 MFMA step (``MMAModel.step_kind`` ``"cdna3"``, or ``"cdna3_fp8"`` with
    ``fp8``) over the last axis of products ``(B, n)`` plus float32 accumulator values ``c_in
    (B,)``; returns the float32 result values (float64).

    Ref: MMA-Sim, mmasim/simulator/arithmetic.py ``amd_fused_dot_rd_add`` and ``fused_sum``
    (commit c785138). Products carry the exponent sum of their operands, zeros included
    (:func:`_unpack_operand` gives zero operands exponent -126)."""
    special = pexp >= _SPECIAL
    top = pexp - pfrac + _core.bit_length(psig, xp) - 1
    over = ~special & (psig != 0) & (top >= _CDNA3_PRODUCT_INF)
    live = ~special & ~over

    def fused(sign: Any, sig: Any, exp: Any, ok: Any) -> tuple[Any, Any]:
        # The terms cut toward zero to f bits at the largest exponent (zero products count).
        e = xp.amax(xp.where(ok, exp, _NO_TERM), -1)
        t = xp.where(ok, _align(sig, exp - pfrac + f - e[:, None], Rounding.RTZ, sign, xp), 0)
        return xp.sum(xp.where(sign, -t, t), -1), e

    if fp8:
        s0, e0 = fused(psign[:, 0::2], psig[:, 0::2], pexp[:, 0::2], live[:, 0::2])
        s1, e1 = fused(psign[:, 1::2], psig[:, 1::2], pexp[:, 1::2], live[:, 1::2])
        e_p = xp.maximum(e0, e1)
        total_p = _floor_shift(s0, e0 - e_p, xp) + _floor_shift(s1, e1 - e_p, xp)
    else:
        total_p, e_p = fused(psign, psig, pexp, live)
    c_inf = ~xp.isfinite(c_in)
    c = xp.where(c_inf, 0.0, c_in)
    _, cneg, csig, cexp = _core.unpack_float(_F32, xp.f32_bits(c), xp=xp)
    cexp = xp.where(csig != 0, cexp + 23, _CDNA3_ZERO_EXP)
    e = xp.maximum(e_p, cexp)
    # The product sum (a multiple of 2**(e_p - f)) and the accumulator, floored at 2**(e - 31)
    # and 2**(e - 24); their sum is exact at 2**(e - 31).
    t_p = _floor_shift(total_p, _CDNA3_SUM_BITS - f + e_p - e, xp)
    t_c = _floor_shift(xp.where(cneg, -csig, csig), _CDNA3_ACC_BITS - 23 + cexp - e, xp)
    if fp8:
        t_c = xp.where(cexp >= e - _CDNA3_FP8_DROP, t_c, 0)
    total = t_p + (t_c << (_CDNA3_SUM_BITS - _CDNA3_ACC_BITS))
    res = _round_scaled(total, e - _CDNA3_SUM_BITS, p=24, emin=_F32.emin, emax=_F32.emax,
                        rounding=Rounding.RNE, xp=xp)
    pos = xp.sum(xp.astype(over & ~psign, xp.int64), -1) > 0
    neg = xp.sum(xp.astype(over & psign, xp.int64), -1) > 0
    res = xp.where(pos, float("inf"), xp.where(neg, -float("inf"), res))
    res = xp.where(pos & neg, float("nan"), res)
    return _special_result(xp, psign, psig, pexp, c_in, res)


def _special_result(xp: Any, psign: Any, psig: Any, pexp: Any, c_in: Any, res: Any) -> Any:
    """A step's result with its special terms: NaN if a product is NaN (a NaN operand, or
    infinity times zero) or infinities of both signs meet; else a NaN accumulator as it is;
    else the infinity among the terms; else the finite result ``res``."""
    special = pexp >= _SPECIAL
    pnan = special & ((pexp >= _NAN_PRODUCT) | (psig == 0))
    pinf = special & ~pnan

    def any_(x: Any) -> Any:
        return xp.sum(xp.astype(x, xp.int64), -1) > 0

    pos = any_(pinf & ~psign) | (c_in == float("inf"))
    neg = any_(pinf & psign) | (c_in == -float("inf"))
    out = xp.where(pos, float("inf"), xp.where(neg, -float("inf"), res))
    out = xp.where(c_in != c_in, c_in, out)
    return xp.where(any_(pnan) | (pos & neg), float("nan"), out)


def _wide_group_terms(gs: Any, shift: Any, gn: Any, nz: Any, cut: Any, term: Rounding
                      ) -> tuple[Any, Any]:
    """:func:`_mma_group_step`'s group terms for groups ``(G, g)`` whose exact sum needs more
    than int64: the exact sum in Python integers, its magnitude aligned by ``cut`` (G,) and cut
    per ``term`` as :func:`_align` does; returns the int64 terms and the groups' signs."""
    terms = np.where(nz, gs.astype(object) << shift.astype(object), 0)
    exact = np.where(gn, -terms, terms).sum(-1)
    neg = np.asarray([int(x) < 0 for x in exact], dtype=bool)
    out = np.empty(len(exact), dtype=np.int64)
    for i, (x, c) in enumerate(zip(exact, cut.tolist(), strict=True)):
        mag = abs(int(x))
        if c >= 0:
            out[i] = mag << c
            continue
        kept = mag >> -c
        rem = mag - (kept << -c)
        if term is Rounding.RDN:
            kept += bool(neg[i] and rem)
        elif term is Rounding.RNE:
            half = 1 << (-c - 1)
            kept += rem > half or (rem == half and kept & 1)
        out[i] = kept
    return out, neg


def _mma_group_step(xp: Any, psign: Any, psig: Any, pexp: Any, c_in: Any, *, group: int,
                    pfrac: int, f: int, term: Rounding, normalized: bool, p: int, emin: int,
                    emax: int, acc_rounding: Rounding, overflow_inf: bool = False) -> Any:
    """:func:`_mma_step` with the products of each ``group`` consecutive lanes summed exactly
    first (:class:`MMAModel`'s groups): the group's alignment exponent is the largest of its
    non-zero products', its exact sum ``S`` (an int64 multiple of ``2**L``, ``L`` its lowest
    non-zero product's lowest bit) is aligned to the step's ``E`` and cut as one term. Block
    scales arrive folded into the products (:func:`_fold_scales`)."""
    c_inf = ~xp.isfinite(c_in)
    c = xp.where(c_inf, 0.0, c_in)
    _, cneg, csig, cexp = _core.unpack_float(_F32, xp.f32_bits(c), xp=xp)
    cexp = cexp + 23
    cnz = csig != 0
    rows, n = psig.shape
    shape = (rows, n // group, group)
    gs, ge, gn = psig.reshape(shape), pexp.reshape(shape), psign.reshape(shape)
    nz = gs != 0
    al = ge + _core.bit_length(gs, xp) - 1 - pfrac if normalized else ge
    g_align = xp.amax(xp.where(nz, al, _NO_TERM), -1)
    lsb = ge - pfrac
    low = -xp.amax(xp.where(nz, -lsb, _NO_TERM), -1)  # lowest bit of the group's products
    low = xp.where(g_align > _NO_TERM, low, 0)
    shift = xp.where(nz, lsb - low[..., None], 0)
    # Groups whose exact sum would not fit int64 (wide exponent ranges: e5m2, fp16, bf16) are
    # summed in Python integers below; the int64 sum of their rows is discarded.
    width = xp.amax(xp.where(nz, _core.bit_length(gs, xp) + shift, 0), -1)
    wide = width > _core.SIG_LIMIT_BITS - group.bit_length() - 1
    narrow_shift = xp.where(wide[..., None], 0, shift)
    exact = xp.sum(xp.where(gn, -1, 1) * xp.where(nz, gs << narrow_shift, 0), -1)
    big = xp.maximum(xp.amax(g_align, -1), xp.where(cnz, cexp, _NO_TERM))
    gneg = exact < 0
    cut = low + f - big[:, None]
    tg = xp.where(g_align > _NO_TERM, _align(xp.abs(exact), cut, term, gneg, xp), 0)
    if bool(wide.any()):
        wg, wneg = _wide_group_terms(gs[wide], shift[wide], gn[wide], nz[wide], cut[wide], term)
        tg[wide] = xp.where(g_align[wide] > _NO_TERM, wg, 0)
        gneg[wide] = wneg
    tc = xp.where(cnz, _align(csig, cexp - 23 + f - big, term, cneg, xp), 0)
    total = xp.sum(xp.where(gneg, -tg, tg), -1) + xp.where(cneg, -tc, tc)
    total = xp.where(big <= _NO_TERM, 0, total)
    res = _round_scaled(total, big - f, p=p, emin=emin, emax=emax, rounding=acc_rounding, xp=xp,
                        overflow_inf=overflow_inf)
    return xp.where(c_inf, c_in, res)


def _step_fn(m: MMAModel, pfrac: int, xp: Any = NP) -> Step:
    """The step of ``m`` with its constants bound (``pfrac``: product fraction bits, the
    scales' included)."""
    consts = _step_consts(m, pfrac)
    if m.blocked:
        return functools.partial(_mma_group_step, xp, group=m.group, **consts)
    return functools.partial(_plain_step(m), xp, **consts)


def _scale_codes(codes: Any, m: MMAModel, shape: tuple[int, ...], what: str
                 ) -> tuple[Any, Any, Any]:
    """``(sig, exp, nan)`` of block scale codes of ``m.scale_format`` of ``shape``: value
    ``sig * 2**(exp - man_bits)``; a NaN code gives ``nan`` (and a zero significand)."""
    sf = m.scale_format
    assert sf is not None
    if codes is None:
        raise FormatError(f"{what} is required: the model has {sf.name} block scales")
    arr = _check_codes(codes, sf, what)
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise FormatError(f"{what} must have shape {shape} (one code per block of "
                          f"{m.block}), not {arr.shape}") from None
    cls, neg, sig, exp = _core.unpack_float(sf, arr)
    if bool((neg & (cls != NAN)).any()):
        raise FormatError(f"{what} must hold non-negative {sf.name} codes (scales are "
                          f"unsigned: sign bit 0)")
    nan = cls == NAN
    return np.where(nan, 0, sig), exp + sf.man_bits, nan


def _fold_scales(op: tuple[Any, Any, Any], scale: tuple[Any, Any, Any], block: int
                 ) -> tuple[tuple[Any, Any, Any], Any]:
    """An unpacked operand ``(neg, sig, exp)`` ``(R, K)`` with its per-block scales
    ``(sig, exp, nan)`` ``(R, K / block)`` folded in (significands multiply, exponents add:
    exact); returns it and the rows holding a NaN scale."""
    neg, sig, exp = op
    ssig, sexp, nan = (np.repeat(x, block, axis=-1) for x in scale)
    return (neg, sig * ssig, exp + sexp), nan.any(-1)


def _f32_add(x: Any, y: Any) -> Any:
    """float32 addition, round to nearest even (what an FADD does), as float64 values."""
    return NP.f32_add(x, y)


def _reduce_add(x: Any, y: Any, fmt: FloatFormat) -> Any:
    """Addition rounded to nearest even in ``fmt`` (float32 or float16), as float64 values."""
    if fmt == _F32:
        return _f32_add(x, y)
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in hardware
        total = np.asarray(x) + np.asarray(y)  # two float16 values add exactly in float64
    return fmt.decode(fmt.encode(total, Rounding.RNE))


Step = Callable[[Any, Any, Any, Any], Any]
ReduceAdd = Callable[[Any, Any, FloatFormat], Any]


def _chain(ps: Any, pg: Any, pe: Any, c: Any, n: int, step: Step) -> Any:
    acc = c
    for k0 in range(0, pg.shape[-1], n):
        sl = slice(k0, k0 + n)
        acc = step(ps[:, sl], pg[:, sl], pe[:, sl], acc)
    return acc


def _promoted(xp: Any, ps: Any, pg: Any, pe: Any, c: Any, m: MMAModel, step: Step) -> Any:
    if not m.promote:
        return _chain(ps, pg, pe, c, m.n, step)
    acc = c
    zero = xp.zeros_like(c)
    for k0 in range(0, pg.shape[-1], m.promote):
        sl = slice(k0, k0 + m.promote)
        acc = xp.f32_add(acc, _chain(ps[:, sl], pg[:, sl], pe[:, sl], zero, m.n, step))
    return acc


def _accumulate(xp: Any, ps: Any, pg: Any, pe: Any, c: Any, m: MMAModel, step: Step,
                reduce_add: ReduceAdd) -> Any:
    """Promotion and split-K around the chained steps; products ``(B, K)``, ``c`` values (B,).

    ``step(psign, psig, pexp, c)`` is :func:`_mma_step` with the model's constants bound;
    ``reduce_add`` joins split-K parts.
    """
    k = pg.shape[-1]
    unit = int(np.lcm(m.n, m.promote)) if m.promote else m.n

    # Padding lanes are products of two zeros: exponent 0 in the fused step (no term), twice
    # a zero's exponent in the CDNA3 steps, where zero products set the step's exponent too.
    zexp = 0 if m.step_kind == "fused" else 2 * _CDNA3_ZERO_EXP

    def padded(lo: int, hi: int, c0: Any) -> Any:
        extra = -(hi - lo) % unit
        sg, gg = (xp.pad_last(x[:, lo:hi], extra) for x in (ps, pg))
        eg = xp.pad_last(pe[:, lo:hi] - zexp, extra) + zexp
        return _promoted(xp, sg, gg, eg, c0, m, step)

    if m.split == 1:
        return padded(0, k, c)
    part = -(-k // (m.split * m.split_tile)) * m.split_tile
    res = c
    zero = xp.zeros_like(c)
    for lo in range(0, k, part):
        res = reduce_add(res, padded(lo, min(lo + part, k), zero), m.split_reduction)
    return res


def _prepare_operand(codes: Any, fmt: FloatFormat, m: MMAModel, what: str, xp: Any = NP
                     ) -> tuple[Any, ...]:
    """Reorder K per ``k_order`` and unpack: ``(neg, sig, exp)`` of shape ``(rows, K')``."""
    order = K_ORDERS[m.k_order]
    if order is not None:
        blk = len(order)
        k0 = codes.shape[-1]
        kb = -(-k0 // blk) * blk
        perm = (np.asarray(order)[None, :] + np.arange(0, kb, blk)[:, None]).reshape(-1)
        codes = xp.pad_last(codes, kb - k0)[:, xp.asarray_like(perm, codes)]
    return _unpack_operand(codes, fmt, m, what, xp)


def _unpack_operand(codes: Any, fmt: FloatFormat, m: MMAModel, what: str, xp: Any = NP
                    ) -> tuple[Any, ...]:
    """``(neg, sig, exp)`` of operand codes as the steps read them (``sum_fp16`` widening
    included), in the order given. A plain step's infinities and NaNs become significand 1
    at exponent ``_INF_EXP`` or ``_NAN_EXP`` (:func:`_mma_step` tells them apart); groups,
    block scales and Kulisch registers take finite codes only."""
    if m.blocked or m.kulisch is not None or m.product != "exact":
        neg, sig, exp = _unpack_finite(fmt, codes, what, xp)
    else:
        cls, neg, sig, exp = _core.unpack_float(fmt, codes, xp=xp)
        exp = exp + fmt.man_bits
        inf, nan = cls == INF, cls == NAN
        sig = xp.where(inf | nan, 1, sig)
        exp = xp.where(inf, _INF_EXP, xp.where(nan, _NAN_EXP, exp))
    if m.alignment == "sum_fp16":
        sig, exp = _widen(sig, exp, fmt, _F16.emin, xp)
    if m.step_kind != "fused":  # MMA-Sim's exponent of a zero (every format)
        exp = xp.where(sig == 0, _CDNA3_ZERO_EXP, exp)
    return neg, sig, exp


def _lane_products(a: tuple[Any, ...], b: tuple[Any, ...], fa: FloatFormat, fb: FloatFormat,
                   m: MMAModel, xp: Any = NP) -> tuple[Any, Any, Any, int]:
    """Products of unpacked operands ``(neg, sig, exp)`` that broadcast against each other, as
    ``m.product`` forms them: ``(sign, sig, exp, pfrac)``, value ``sig * 2**(exp - pfrac)``,
    zero products positive."""
    if m.product == "lmul":
        if fa != fb:
            raise FormatError(f"L-Mul products take one operand format, not {fa.name} x "
                              f"{fb.name}")
        return _lmul_lanes(a, b, fa, m, xp)
    (an, ag, ae), (bn, bg, be) = a, b
    pg = ag * bg
    return (an ^ bn) & (pg != 0), pg, ae + be, fa.man_bits + fb.man_bits


def _products(a: tuple[Any, ...], b: tuple[Any, ...], fa: FloatFormat, fb: FloatFormat,
              m: MMAModel) -> tuple[Any, Any, Any]:
    """Products (:func:`_lane_products`) of every row of ``a`` with every row of ``b``
    (unpacked operands of shapes ``(R, K)`` and ``(C, K)``): ``(sign, sig, exp)`` of shape
    ``(R * C, K)``."""
    k = a[1].shape[-1]
    ps, pg, pe, _ = _lane_products(tuple(x[:, None, :] for x in a),
                                   tuple(x[None, :, :] for x in b), fa, fb, m)
    return ps.reshape(-1, k), pg.reshape(-1, k), pe.reshape(-1, k)


def _finish(res: Any, m: MMAModel, scale: Any) -> Any:
    """Apply the float32 scales (if any: ``(B, 2)`` factors from :func:`_scale_product`, by two
    float32 multiplications) and round the float32 result to ``m.output``."""
    r32 = res.astype(np.float32)
    if scale is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            r32 = (r32 * scale[..., 0]) * scale[..., 1]
    # inf - inf leaves the platform's NaN pattern: give every device the same one.
    nan = np.isnan(r32)
    r32 = np.where(nan, np.float32(np.nan), r32)
    codes = _bits_f32(r32) if m.output == _F32 else m.output.encode(r32, Rounding.RNE)
    if m.nan_output == "ones":
        codes = np.where(nan, nan_code(m), codes).astype(codes.dtype)
    return codes


def nan_code(m: MMAModel) -> int:
    """The output code of a NaN result under model ``m`` (:attr:`MMAModel.nan_output`)."""
    if m.nan_output == "ones":
        return (1 << (m.output.bits - 1)) - 1
    return int(np.asarray(m.output.encode(np.float32(np.nan), Rounding.RNE)).reshape(-1)[0]
               if m.output != _F32 else 0x7FC00000)


# Products held at once per chunk of output elements (bounds memory to a few hundred MB).
_CHUNK_ELEMENTS = 1 << 21


def _check_codes(x: Any, fmt: FloatFormat, what: str) -> Any:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise FormatError(f"{what} must be an integer array of {fmt.name} codes, not {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= (1 << fmt.bits)):
        raise FormatError(f"{what} must hold {fmt.name} codes in [0, 2**{fmt.bits})")
    return arr


def _scale_product(scale_a: Any, scale_b: Any, rows: int, cols: int) -> Any:
    """The two float32 factors ``(f, g)`` of the epilogue ``(r * f) * g``, shape ``(rows, cols,
    2)``, or None without scales (measured on the H100, data/tensorcore/h100_special.npz):

    - per-tensor scales (both one element): ``f = float32(scale_a * scale_b)``, ``g = 1``
      (cuBLASLt's alpha: one product of the scales, then one multiplication);
    - otherwise (per row of A and/or per column of B): ``f = scale_b[j]``, ``g = scale_a[i]``
      (the column scale first, then the row scale: torch's row-wise kernel).
    """
    if scale_a is None and scale_b is None:
        return None
    sa = np.asarray(1.0 if scale_a is None else scale_a, dtype=np.float32)
    sb = np.asarray(1.0 if scale_b is None else scale_b, dtype=np.float32)
    tensorwise = sa.size == 1 and sb.size == 1
    try:
        sa = np.broadcast_to(sa.reshape(-1, 1) if sa.ndim == 1 else sa, (rows, cols))
        sb = np.broadcast_to(sb.reshape(1, -1) if sb.ndim == 1 else sb, (rows, cols))
    except ValueError:
        raise FormatError(f"scale_a must broadcast to ({rows}, 1) and scale_b to "
                          f"(1, {cols}) (per tensor, row or column)") from None
    if tensorwise:
        with np.errstate(over="ignore", invalid="ignore"):
            alpha = sa * sb  # one float32 product, rounded to nearest even
        return np.stack([alpha, np.ones_like(alpha)], axis=-1)
    return np.stack([sb, sa], axis=-1)


def matmul(
    a_codes: npt.ArrayLike, b_codes: npt.ArrayLike, fmt_a: FloatFormat | str,
    fmt_b: FloatFormat | str | None = None, *, model: MMAModel | str,
    c: npt.ArrayLike | None = None, scale_a: npt.ArrayLike | None = None,
    scale_b: npt.ArrayLike | None = None, device: str = "cpu",
    block_scale_a: npt.ArrayLike | None = None, block_scale_b: npt.ArrayLike | None = None,
) -> Any:
    """Compute ``C + A @ B`` as a tensor core does; return codes of ``model.output``.

    Parameters
    ----------
    a_codes, b_codes : array_like of int
        Codes of ``A`` (``M x K``, format ``fmt_a``) and ``B`` (``K x N``, format ``fmt_b``,
        default ``fmt_a``). NaN and infinity inputs follow :class:`MMAModel`'s special-value
        rules (plain models; groups, block scales and Kulisch registers refuse them).
    fmt_a, fmt_b : FloatFormat or str
    model : MMAModel or str
        A preset name (:data:`PRESETS`) or a model.
    c : array_like of int, optional
        Initial accumulator, codes of ``model.acc_format`` broadcastable to ``M x N``; it enters
        the first step (or, under split-K, the first float32 addition).
    scale_a, scale_b : array_like of float, optional
        float32 scales, per tensor (scalar), per row of ``A`` (``M x 1``) or per column of ``B``
        (``1 x N``), as ``torch._scaled_mm`` takes them, applied to the float32 result before
        the final conversion to ``model.output`` in the order measured on the H100 (float32
        multiplications rounding to nearest even; docs/tensor-cores.md): per-tensor scales (one
        element each) as ``r * float32(scale_a * scale_b)``; row/column scales as
        ``(r * scale_b[j]) * scale_a[i]``.
    device : str
        ``"cpu"`` (numpy) or a torch device such as ``"cuda"``: then the codes may be torch
        tensors and the result is a torch tensor on that device (bit-identical). Models with
        groups or block scales run on ``"cpu"`` only.
    block_scale_a, block_scale_b : array_like of int, optional
        Per-block scale codes of ``model.scale_format`` (required when it is set): ``M x K /
        block`` for ``A`` (a block runs along K in a row) and ``K / block x N`` for ``B``; K a
        multiple of ``model.block``. They enter every step (:class:`MMAModel`); the float32
        ``scale_a``, ``scale_b`` above are the per-tensor scales of the epilogue.

    Returns
    -------
    ndarray
        ``M x N`` codes of ``model.output``: uint32 float32 bit patterns (uint16 for bfloat16 or
        float16 outputs); ``model.output.decode(codes)`` gives their values.
    """
    m = get_model(model)
    if m.shape_splits:
        sa_ = tuple(getattr(a_codes, "shape", None) or np.shape(a_codes))
        sb_ = tuple(getattr(b_codes, "shape", None) or np.shape(b_codes))
        if len(sa_) == 2 and len(sb_) == 2:
            m = for_shape(m, sa_[0], sb_[1], sa_[1])
    fa = _float_arg(fmt_a, "fmt_a")
    fb = _float_arg(fmt_b if fmt_b is not None else fa, "fmt_b")
    if m.blocked and device != "cpu":
        raise FormatError(f"groups and block scales run on the numpy backend only "
                          f"(device='cpu'), not device={device!r}")
    if m.kulisch is not None and device != "cpu":
        raise FormatError("the Kulisch accumulator is modelled on the CPU only (device='cpu'); "
                          "its register is wider than the torch backend's int64")
    if m.product != "exact" and device != "cpu":
        raise FormatError(f"{m.product} products are modelled on the CPU only (device='cpu')")
    if device != "cpu":
        from ._device import torch_backend

        return torch_backend(device).mma_matmul(a_codes, b_codes, fa, fb, m, c, scale_a, scale_b,
                                         device)
    a = _check_codes(a_codes, fa, "a_codes")
    b = _check_codes(b_codes, fb, "b_codes")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise FormatError(f"a_codes and b_codes must be M x K and K x N matrices, not shapes "
                          f"{a.shape} and {b.shape}")
    if fa.precision + fb.precision > _core.SIG_LIMIT_BITS - 2:
        raise FormatError(f"{fa.name} x {fb.name} products need more than "
                          f"{_core.SIG_LIMIT_BITS - 2} bits; use narrower formats")
    rows, cols = a.shape[0], b.shape[1]
    if m.kulisch is not None:
        return _kulisch_matmul(a, b, fa, fb, m, c, _scale_product(scale_a, scale_b, rows, cols))
    acc = _accumulator_values(c, m, rows, cols)
    scale = _scale_product(scale_a, scale_b, rows, cols)
    ua = _prepare_operand(a, fa, m, "a_codes")
    ub = _prepare_operand(np.ascontiguousarray(b.T), fb, m, "b_codes")
    k = ua[1].shape[-1]
    ua, ub, pfrac, nan = _blocked_operands(ua, ub, fa, fb, m, block_scale_a,
                                           None if block_scale_b is None
                                           else np.asarray(block_scale_b).T, k)
    step = _step_fn(m, pfrac)
    out = np.empty((rows, cols), dtype=m.output.code_dtype)
    chunk = max(1, _CHUNK_ELEMENTS // max(cols * max(k, 1), 1))
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        ps, pg, pe = _products(tuple(x[r0:r1] for x in ua), ub, fa, fb, m)
        res = _accumulate(NP, ps, pg, pe, acc[r0:r1].reshape(-1), m, step, _reduce_add)
        if nan is not None:  # a NaN block scale anywhere in the row of A or column of B
            res = np.where((nan[0][r0:r1, None] | nan[1][None, :]).reshape(-1), np.nan, res)
        sc = None if scale is None else scale[r0:r1].reshape(-1, 2)
        out[r0:r1] = _finish(res, m, sc).reshape(r1 - r0, cols)
    return out


def _blocked_operands(ua: tuple[Any, ...], ub: tuple[Any, ...], fa: FloatFormat,
                      fb: FloatFormat, m: MMAModel, sa: Any, sb: Any, k: int
                      ) -> tuple[tuple[Any, ...], tuple[Any, ...], int, Any]:
    """Unpacked operands (rows along K) with the block scales folded in, the products'
    fraction bits and the NaN-scale rows ``(nan_a, nan_b)`` (None without scales)."""
    pfrac = product_frac_bits(fa, fb, m)
    if m.scale_format is None:
        if sa is not None or sb is not None:
            raise FormatError("block scale codes given to a model without scale_format")
        return ua, ub, pfrac, None
    assert m.block is not None
    if k % m.block:
        raise FormatError(f"K={k} must be a multiple of the block size {m.block}")
    blocks = k // m.block
    sa_ = _scale_codes(sa, m, (ua[1].shape[0], blocks), "block_scale_a")
    sb_ = _scale_codes(sb, m, (ub[1].shape[0], blocks), "block_scale_b")
    ua, nan_a = _fold_scales(tuple(ua), sa_, m.block)
    ub, nan_b = _fold_scales(tuple(ub), sb_, m.block)
    return ua, ub, pfrac + 2 * m.scale_format.man_bits, (nan_a, nan_b)


def dot(
    a_codes: npt.ArrayLike, b_codes: npt.ArrayLike, fmt_a: FloatFormat | str,
    fmt_b: FloatFormat | str | None = None, *, model: MMAModel | str,
    c: npt.ArrayLike | None = None,
) -> npt.NDArray[Any]:
    """Compute dot products ``c + sum_k a[..., k] * b[..., k]`` as a tensor core does.

    Each dot product is one output element of a matrix product: the same steps, promotion and
    split-K as :func:`matmul`. ``a_codes`` and ``b_codes`` broadcast against each other; ``c``
    holds codes of ``model.acc_format`` of their shape without the last axis. Returns codes of
    ``model.output``.
    """
    m = get_model(model)
    fa = _float_arg(fmt_a, "fmt_a")
    fb = _float_arg(fmt_b if fmt_b is not None else fa, "fmt_b")
    a, b = np.broadcast_arrays(_check_codes(a_codes, fa, "a_codes"),
                               _check_codes(b_codes, fb, "b_codes"))
    if a.ndim == 0:
        raise FormatError("dot needs arrays with a last axis to reduce, not scalars")
    shape = a.shape[:-1]
    k = a.shape[-1]
    if m.kulisch is not None:
        return _kulisch_dot(a.reshape(-1, k), b.reshape(-1, k), fa, fb, m, c).reshape(shape)
    ua = _prepare_operand(a.reshape(-1, k), fa, m, "a_codes")
    ub = _prepare_operand(b.reshape(-1, k), fb, m, "b_codes")
    ps, pg, pe, pfrac = _lane_products(ua, ub, fa, fb, m)
    rows = int(np.prod(shape, dtype=np.int64))
    cc = None if c is None else np.broadcast_to(np.asarray(c), shape).reshape(rows, 1)
    acc = _accumulator_values(cc, m, rows, 1).reshape(-1)
    if m.scale_format is not None:
        raise FormatError("dot takes no block scales; use matmul or step")
    step = _step_fn(m, pfrac)
    res = _accumulate(NP, ps, pg, pe, acc, m, step, _reduce_add)
    return _finish(res, m, None).reshape(shape)


def step(
    a_codes: npt.ArrayLike, b_codes: npt.ArrayLike, c: npt.ArrayLike,
    fmt_a: FloatFormat | str, fmt_b: FloatFormat | str | None = None, *, model: MMAModel | str,
    block_scale_a: npt.ArrayLike | None = None, block_scale_b: npt.ArrayLike | None = None,
) -> npt.NDArray[Any]:
    """One step of the tensor core: ``c + sum_k a[..., k] * b[..., k]`` over ``model.n``
    products, as :func:`matmul` computes each of its steps, bit for bit.

    The products are aligned, cut and summed with the accumulator, and the sum is rounded to
    ``model.acc_frac_bits`` fraction bits in the range of ``model.acc_format``
    (:class:`MMAModel`). What a library does around the steps (``promote``, ``split``,
    ``k_order``, the final conversion to ``output``) is not part of a step and is ignored:
    the ``n`` products given are the step's, in any order.

    Parameters
    ----------
    a_codes, b_codes : array_like of int
        Finite codes of ``fmt_a`` and ``fmt_b`` (default ``fmt_a``), last axis ``model.n``;
        they broadcast against each other.
    c : array_like of int
        Accumulator codes of ``model.acc_format``, broadcastable to the products' shape without
        the last axis (an infinite accumulator stays as it is). With ``model.kulisch`` the
        register's codes instead (:func:`_kulisch_step`).
    model : MMAModel or str
    block_scale_a, block_scale_b : array_like of int, optional
        Block scale codes of ``model.scale_format`` (required when it is set), last axis
        ``n / block``: scale ``j`` covers lanes ``j * block`` to ``(j + 1) * block - 1``; they
        broadcast to the products' shape without the last axis. The group sums are scaled
        by their block's two scales exactly; a NaN scale makes the result the positive NaN
        of ``model.acc_format`` (:class:`MMAModel`).

    Returns
    -------
    ndarray
        The new accumulator: codes of ``model.acc_format`` (uint32 for float32, uint16 for
        float16), of the broadcast shape without the last axis.
    """
    m = get_model(model)
    fa = _float_arg(fmt_a, "fmt_a")
    fb = _float_arg(fmt_b if fmt_b is not None else fa, "fmt_b")
    a, b = np.broadcast_arrays(_check_codes(a_codes, fa, "a_codes"),
                               _check_codes(b_codes, fb, "b_codes"))
    if a.ndim == 0 or a.shape[-1] != m.n:
        raise FormatError(f"a step takes n={m.n} products along the last axis, not shape "
                          f"{a.shape}")
    if fa.precision + fb.precision > _core.SIG_LIMIT_BITS - 2:
        raise FormatError(f"{fa.name} x {fb.name} products need more than "
                          f"{_core.SIG_LIMIT_BITS - 2} bits; use narrower formats")
    shape = a.shape[:-1]
    rows = int(np.prod(shape, dtype=np.int64))
    if m.kulisch is not None:
        return _kulisch_step(a.reshape(rows, m.n), b.reshape(rows, m.n), c, shape, fa, fb, m)
    an, ag, ae = _unpack_operand(a.reshape(rows, m.n), fa, m, "a_codes")
    bn, bg, be = _unpack_operand(b.reshape(rows, m.n), fb, m, "b_codes")
    ps, pg, pe, pfrac = _lane_products((an, ag, ae), (bn, bg, be), fa, fb, m)
    cc = np.broadcast_to(np.asarray(c), shape).reshape(rows, 1)
    acc = _accumulator_values(cc, m, rows, 1).reshape(-1)
    if m.blocked:
        res = _blocked_step(an, ag, ae, bn, bg, be, acc, fa, fb, m, block_scale_a,
                            block_scale_b, shape)
    else:
        if block_scale_a is not None or block_scale_b is not None:
            raise FormatError("block scale codes given to a model without scale_format")
        res = _plain_step(m)(NP, ps, pg, pe, acc, **_step_consts(m, pfrac))
    out: npt.NDArray[Any] = m.acc_format.encode(res, Rounding.RNE)  # exact: res is on its grid
    return out.reshape(shape)


def _blocked_step(an: Any, ag: Any, ae: Any, bn: Any, bg: Any, be: Any, acc: Any,
                  fa: FloatFormat, fb: FloatFormat, m: MMAModel, sa: Any, sb: Any,
                  shape: tuple[int, ...]) -> Any:
    """:func:`step`'s values for a model with groups or block scales (rows of lanes)."""
    rows = ag.shape[0]

    def scales(x: Any) -> Any:
        if x is None or m.block is None:
            return x
        return np.broadcast_to(np.asarray(x), (*shape, m.n // m.block)).reshape(rows, -1)

    ua, ub, pfrac, nan = _blocked_operands((an, ag, ae), (bn, bg, be), fa, fb, m, scales(sa),
                                           scales(sb), m.n)
    pg = ua[1] * ub[1]
    ps = (ua[0] ^ ub[0]) & (pg != 0)
    res = _step_fn(m, pfrac)(ps, pg, ua[2] + ub[2], acc)
    if nan is not None:
        res = np.where(nan[0] | nan[1], np.nan, res)
    return res


def _accumulator_values(c: Any, m: MMAModel, rows: int, cols: int) -> Any:
    """float64 values of the initial accumulator codes, ``(rows, cols)``."""
    if c is None:
        return np.zeros((rows, cols))
    cc = _check_codes(c, m.acc_format, "c")
    try:
        cc = np.broadcast_to(cc, (rows, cols))
    except ValueError:
        raise FormatError(f"c must broadcast to ({rows}, {cols}), not shape {cc.shape}") from None
    return m.acc_format.decode(cc)


# -- the Kulisch accumulator -------------------------------------------------------------------
#
# Ref: U. Kulisch, "Computer Arithmetic and Validity" (de Gruyter 2013), ch. 8 (the exact dot
#      product in a long fixed-point register).

#: Guard bits of the default register width: a sum of up to ``2**KULISCH_GUARD_BITS`` products
#: (and so a K of up to 65536) never overflows it.
KULISCH_GUARD_BITS = 16
#: Widest register.
KULISCH_MAX_WIDTH = 1024
#: Widest register kept in int64 by the model (wider ones: Python integers).
_KULISCH_INT64 = 62


@dataclasses.dataclass(frozen=True)
class Kulisch:
    """A wide fixed-point (Kulisch) accumulator: a ``width``-bit two's-complement register whose
    least significant bit weighs ``2**lsb``.

    Every step adds the exact products into the register, each cut to the register's LSB
    (its magnitude truncated, toward zero, then negated: nothing is cut at the default LSB)
    and the sum wrapped to ``width`` bits (two's complement, as an adder of that width does:
    the register never saturates). At the end of K the register's value is rounded once, to
    nearest even, to float32 (:func:`kulisch_round`); a zero register gives +0.

    Parameters
    ----------
    width : int, optional
        Register bits, 2 to :data:`KULISCH_MAX_WIDTH`; None: the default of the operand formats
        (:func:`kulisch_default`), which no sum of up to ``2**16`` products overflows.
    lsb : int, optional
        Exponent of the least significant bit; None: the least exponent of a product of the
        operand formats (``emin - man_bits`` of A plus that of B), so that no product is cut;
        with a ``width`` below the default, that many bits higher: the register keeps the
        default's top (no overflow up to ``2**16`` products) and cuts the smallest products,
        which is what a narrower register of an accuracy study means.
    """

    width: int | None = None
    lsb: int | None = None

    def __post_init__(self) -> None:
        if self.width is not None:
            w = _index(self.width, "width")
            if not 2 <= w <= KULISCH_MAX_WIDTH:
                raise FormatError(f"the Kulisch register width must be between 2 and "
                                  f"{KULISCH_MAX_WIDTH}, not {w}")
            object.__setattr__(self, "width", w)
        if self.lsb is not None:
            object.__setattr__(self, "lsb", _index(self.lsb, "lsb"))

    def resolve(self, fa: FloatFormat, fb: FloatFormat) -> tuple[int, int]:
        """``(width, lsb)`` of the register for products of ``fa`` and ``fb``."""
        width, lsb = kulisch_default(fa, fb, self.lsb)
        if self.width is None:
            return width, lsb
        if self.lsb is None and self.width < width:
            lsb += width - self.width  # the same top, fewer bits below
        return self.width, lsb


def kulisch_default(fa: FloatFormat, fb: FloatFormat, lsb: int | None = None
                    ) -> tuple[int, int]:
    """The default register ``(width, lsb)`` for products of ``fa`` and ``fb``.

    ``lsb`` (default: the least exponent of a product, ``fa.emin - fa.man_bits + fb.emin -
    fb.man_bits``) and the width that holds any sum of up to ``2**KULISCH_GUARD_BITS``
    products: every product is below ``2**top``, ``top = fa.emax + fb.emax + 2``, so the sum is
    below ``2**(top + 16)`` and needs ``top + 16 - lsb`` magnitude bits and a sign bit. Raises
    FormatError when that exceeds :data:`KULISCH_MAX_WIDTH`.
    """
    least = fa.emin - fa.man_bits + fb.emin - fb.man_bits
    lsb = least if lsb is None else lsb
    top = fa.emax + fb.emax + 2
    width = max(2, top + KULISCH_GUARD_BITS - lsb + 1)
    if width > KULISCH_MAX_WIDTH:
        raise FormatError(f"a Kulisch register for {fa.name} x {fb.name} products with LSB "
                          f"2**{lsb} needs {width} bits, more than {KULISCH_MAX_WIDTH}")
    return width, lsb


def _check_kulisch_model(m: MMAModel) -> None:
    """Refuse what a Kulisch model cannot express (called by ``MMAModel.__post_init__``)."""
    if not isinstance(m.kulisch, Kulisch):
        raise FormatError(f"kulisch must be a Kulisch register (or None), not {m.kulisch!r}")
    if m.promote is not None or m.split != 1:
        raise FormatError("a Kulisch accumulator is exact over all of K: promote and split do "
                          "not apply")
    if m.normalization is not None:
        raise FormatError("a Kulisch accumulator is never normalized until its one rounding: "
                          "normalization does not apply")


def _kulisch_label(m: MMAModel) -> str:
    k = m.kulisch
    assert k is not None
    width = "default" if k.width is None else str(k.width)
    lsb = "default" if k.lsb is None else str(k.lsb)
    s = f"n={m.n} kulisch width={width} lsb={lsb} round=float32:rne"
    if m.output != _F32:
        s += f" out={m.output.name}"
    return s


def _kulisch_sum(neg: Any, sig: Any, exp: Any, lsb: int, width: int) -> Any:
    """Register codes of the sums over the last axis of the terms ``(-1)**neg * sig * 2**exp``
    (int64 ``sig < 2**40``), each cut to ``2**lsb`` (its magnitude toward zero), wrapped to
    ``width`` bits: uint64 codes when ``width <= 62``, else an object array of Python ints."""
    s = np.asarray(exp, dtype=np.int64) - lsb
    sig = np.asarray(sig, dtype=np.int64)
    # The bits below the LSB are cut from the magnitude; the shift that remains is >= 0.
    sig = np.where(s < 0, sig >> np.clip(-s, 0, 63), sig)
    s = np.clip(s, 0, None)
    neg = np.asarray(neg, dtype=bool)
    if width <= _KULISCH_INT64:
        mask = np.uint64((1 << width) - 1)
        # Modulo 2**64 (hence modulo 2**width): a shift past the register leaves nothing in it.
        t = np.where(s < 64, sig.astype(np.uint64) << np.clip(s, 0, 63).astype(np.uint64),
                     np.uint64(0))
        t = np.where(neg, ~t + np.uint64(1), t)
        return np.bitwise_and(t.sum(axis=-1, dtype=np.uint64), mask)
    # Exact: limbs of 16 bits, each summed in int64 (a shifted term is below 2**56), joined as
    # Python integers.
    band = s >> 4
    t = sig << (s & 15)
    t = np.where(neg, -t, t)
    rows = t.shape[:-1]
    total = np.zeros(rows, dtype=object)
    for h in np.unique(band):
        limb = np.where(band == h, t, 0).sum(axis=-1)
        total = total + limb.astype(object) * (1 << (16 * int(h)))
    mask_w = (1 << width) - 1
    return np.asarray([int(v) & mask_w for v in total.reshape(-1)], dtype=object
                      ).reshape(rows)


def _kulisch_signed(codes: Any, width: int) -> Any:
    """Signed register values of codes (int64 when ``width <= 62``, else Python ints)."""
    if width <= _KULISCH_INT64:
        u = np.asarray(codes).astype(np.int64)
        return u - ((u >> (width - 1)) << width)
    flat = [int(v) for v in np.asarray(codes, dtype=object).reshape(-1)]
    return np.asarray([v - ((v >> (width - 1)) << width) for v in flat], dtype=object
                      ).reshape(np.shape(codes))


def _kulisch_codes(codes: Any, width: int, what: str) -> Any:
    """Checked register codes: uint64 (``width <= 62``) or an object array of Python ints."""
    arr = np.asarray(codes)
    if arr.dtype == object:
        flat = [v for v in arr.reshape(-1)]
        if not all(isinstance(v, int | np.integer) and 0 <= int(v) < (1 << width) for v in flat):
            raise FormatError(f"{what} must hold {width}-bit Kulisch register codes")
        vals = np.asarray([int(v) for v in flat], dtype=object).reshape(arr.shape)
    else:
        if arr.dtype.kind not in "iu":
            raise FormatError(f"{what} must be an integer array of {width}-bit Kulisch register "
                              f"codes, not {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or (width < 64 and int(arr.max()) >> width)):
            raise FormatError(f"{what} must hold {width}-bit Kulisch register codes")
        vals = arr.astype(np.uint64)
    if width <= _KULISCH_INT64:
        return np.asarray(vals).astype(np.uint64)
    return vals.astype(object)


def kulisch_round(codes: Any, width: int, lsb: int) -> npt.NDArray[Any]:
    """float32 codes (uint32) of ``width``-bit register codes with LSB ``2**lsb``: the signed
    value rounded once to nearest even (gradual underflow; past the largest float32, infinity);
    a zero register gives +0, a non-zero one rounding to zero keeps its sign."""
    width = _index(width, "width")
    if not 2 <= width <= KULISCH_MAX_WIDTH:
        raise FormatError(f"the Kulisch register width must be between 2 and "
                          f"{KULISCH_MAX_WIDTH}, not {width}")
    v = _kulisch_signed(_kulisch_codes(codes, width, "codes"), width)
    shape = np.shape(v)
    if width <= _KULISCH_INT64:
        s, e = v.astype(np.int64), np.full(shape, lsb, dtype=np.int64)
    else:
        # Down to 60 bits with a sticky bit: the guard bit stays above it, so one rounding of
        # the short value equals that of the long one.
        ss, ee = [], []
        for x in v.reshape(-1):
            mag = abs(int(x))
            sh = max(0, mag.bit_length() - 60)
            short = (mag >> sh) | int(mag & ((1 << sh) - 1) != 0)
            ss.append(-short if x < 0 else short)
            ee.append(lsb + sh)
        s = np.asarray(ss, dtype=np.int64).reshape(shape)
        e = np.asarray(ee, dtype=np.int64).reshape(shape)
    val = _round_scaled(s, e, p=_F32.precision, emin=_F32.emin, emax=_F32.emax,
                        rounding=Rounding.RNE)
    return np.asarray(_bits_f32(np.asarray(val, dtype=np.float64))).astype(np.uint32)


def _kulisch_products(a: Any, b: Any, fa: FloatFormat, fb: FloatFormat, m: MMAModel
                      ) -> tuple[Any, Any, Any]:
    """``(neg, sig, lsb exponent)`` of the exact products of rows of codes ``a`` and ``b``."""
    an, ag, ae = _unpack_finite(fa, a, "a_codes")
    bn, bg, be = _unpack_finite(fb, b, "b_codes")
    sig = ag * bg
    return (an ^ bn) & (sig != 0), sig, ae + be - fa.man_bits - fb.man_bits


def _kulisch_step(a: Any, b: Any, c: Any, shape: tuple[int, ...], fa: FloatFormat,
                  fb: FloatFormat, m: MMAModel) -> Any:
    """One step into the register: ``c`` register codes in, register codes out (uint64 for a
    register of at most 62 bits, else Python ints in an object array)."""
    assert m.kulisch is not None
    width, lsb = m.kulisch.resolve(fa, fb)
    rows = a.shape[0]
    cc = _kulisch_codes(c, width, "c")
    try:
        cc = np.broadcast_to(cc, shape).reshape(rows)
    except ValueError:
        raise FormatError(f"c must broadcast to {shape}, not shape {np.shape(cc)}") from None
    neg, sig, exp = _kulisch_products(a, b, fa, fb, m)
    total = _kulisch_sum(neg, sig, exp, lsb, width)
    if width <= _KULISCH_INT64:
        out = (total + cc.astype(np.uint64)) & np.uint64((1 << width) - 1)
    else:
        mask = (1 << width) - 1
        out = np.asarray([(int(x) + int(y)) & mask for x, y in zip(total, cc, strict=True)],
                         dtype=object)
    return out.reshape(shape)


def _kulisch_dot(a: Any, b: Any, fa: FloatFormat, fb: FloatFormat, m: MMAModel, c: Any
                 ) -> Any:
    """Rows of ``a`` and ``b`` (``(rows, K)`` codes) into the register from zero, rounded once;
    codes of ``m.output``."""
    if c is not None:
        raise FormatError("a Kulisch accumulator starts from zero: c does not apply")
    assert m.kulisch is not None
    width, lsb = m.kulisch.resolve(fa, fb)
    neg, sig, exp = _kulisch_products(a, b, fa, fb, m)
    reg = _kulisch_sum(neg, sig, exp, lsb, width)
    f32 = kulisch_round(reg, width, lsb)
    return _finish(_F32.decode(f32), m, None)


def _kulisch_matmul(a: Any, b: Any, fa: FloatFormat, fb: FloatFormat, m: MMAModel, c: Any,
                    scale: Any) -> Any:
    """:func:`matmul` into a Kulisch register (checked codes ``a`` (M, K), ``b`` (K, N))."""
    if c is not None:
        raise FormatError("a Kulisch accumulator starts from zero: c does not apply")
    assert m.kulisch is not None
    width, lsb = m.kulisch.resolve(fa, fb)
    rows, cols = a.shape[0], b.shape[1]
    k = a.shape[1]
    out = np.empty((rows, cols), dtype=m.output.code_dtype)
    chunk = max(1, _CHUNK_ELEMENTS // max(cols * max(k, 1), 1))
    bt = np.ascontiguousarray(b.T)
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        aa = np.broadcast_to(a[r0:r1, None, :], (r1 - r0, cols, k)).reshape(-1, k)
        bb = np.broadcast_to(bt[None, :, :], (r1 - r0, cols, k)).reshape(-1, k)
        neg, sig, exp = _kulisch_products(aa, bb, fa, fb, m)
        reg = _kulisch_sum(neg, sig, exp, lsb, width)
        f32 = _F32.decode(kulisch_round(reg, width, lsb))
        sc = None if scale is None else scale[r0:r1].reshape(-1, 2)
        out[r0:r1] = _finish(f32, m, sc).reshape(r1 - r0, cols)
    return out
