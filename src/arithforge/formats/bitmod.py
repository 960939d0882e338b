# Ref: Chen et al., "BitMoD: Bit-serial Mixture-of-Datatype LLM Acceleration", arXiv 2411.11745
#      (HPCA 2025): §III the per-group datatypes (value sets as in the official code: the
#      redundant -0 code of FP3/FP4 repurposed for one extra value), §IV the bit-serial PE with
#      its unified representation and per-group dequantization.
"""BitMoD weight datatypes, group-wise MSE datatype selection and the exact bit-serial PE.

Weight datatypes
----------------
Every datatype is a table from ``bits``-bit codes to integer values (before the group's scale):

========================= =================================================================
``int2`` ``int3`` ``int4`` two's complement, ``-2**(b-1) .. 2**(b-1) - 1``
``fp3``                    sign bit (MSB) and a 2-bit magnitude index: ``{0, ±1, ±2, ±4}``
``fp3_er_pos/_neg``        ``fp3`` with the code of -0 (``0b100``) meaning +3 / -3
``fp3_ea_pos/_neg``        ``fp3`` with the -0 code meaning +6 / -6
``fp4``                    ``float4_e2m1fn`` times 2: ``{0, ±1, ±2, ±3, ±4, ±6, ±8, ±12}``
``fp4_er_pos/_neg``        ``fp4`` with the -0 code (``0b1000``) meaning +10 / -10
``fp4_ea_pos/_neg``        ``fp4`` with the -0 code meaning +16 / -16
========================= =================================================================

A *family* is what the 2-bit per-group selector chooses from: four datatypes of one width
(``bitmod4`` = the four FP4 variants, ``bitmod3`` the four FP3 variants; ``int4``, ``fp4`` ...
repeat one datatype). A family of fewer than four is cycled: selector ``s`` picks
``types[s % len(types)]``.

Unified representation
----------------------
Every value is a sum of at most two signed powers of two, ``v = Σ ±2**e`` with ``0 <= e <= 4``
(:func:`unified_terms`: one term for 0 and powers of two, else ``2**a + 2**b`` when ``|v|`` has
two one bits, else ``2**a - 2**b``: ``7 = 8 - 1``, ``12 = 8 + 4``). The PE processes one term per
cycle in ``"term"`` mode, ``ceil(bits / 2)`` term slots per weight; in ``"bit"`` mode it reads the
terms as a signed-digit string and processes one digit position per cycle, most significant
first (``psum = 2 * psum + Σ digit * A``), :attr:`PEConfig.digits` positions per weight.

PE arithmetic (one transaction)
-------------------------------
A transaction is a dot product of ``K = groups * group`` activations ``a`` and weight codes
``w`` with one selector and one scale per group, accumulated onto ``c``:

1. Activations (float16, bfloat16 or int8) are ``(-1)**s * M * 2**E`` with an integer
   significand ``M`` (hidden bit included; subnormals have ``E`` of exponent field 1); int8 has
   ``E = 0``. Infinities and NaNs are not accepted.
2. Per group, ``Emax`` is the largest ``E``. Each activation is aligned to it with
   ``align_bits = F`` extra fraction bits, truncating its magnitude:
   ``A = floor(M * 2**(E - Emax + F))`` (signed). int8 activations need no alignment (``F = 0``).
3. ``P = Σ A_k * v_k``, exact (the partial-sum register never overflows; the serial mode does
   not change ``P``); its value is ``P * 2**(Emax - F)``.
4. Per group, in order, ``acc = round(P * 2**(Emax - F) * scale + acc)`` with one rounding to
   the accumulator format (``acc = c`` before the first group): ``ops.fma`` with ``P`` as a code
   of :attr:`PEConfig.partial_format`, which holds every ``P`` exactly. Scales and ``c`` follow
   IEEE rules (NaN and inf propagate, overflow gives inf under RNE).
5. With ``rescale="bitserial"`` (the paper's dequantizer, §IV; ``yc2367/BitMoD``
   ``hardware/pe/dequant.v``) the scale is an unsigned integer ``s`` (the per-group scale
   quantized against a per-channel float scale, which is applied outside the PE: the paper's
   ``wiki_c4_ppl/quant_utils/quant_weight_double.py``); ``Q = P * s`` is exact (shift and add,
   most significant scale bit first) and ``acc = round(Q * 2**(Emax - F) + acc)``: ``ops.add``
   with ``Q`` a code of :attr:`PEConfig.product_format`. The value is the same as step 4 with
   ``s`` as an exact float scale: one rounding per group either way.
6. With ``accumulate="fixed:W"`` (the paper's group accumulator, ``yc2367/BitMoD``
   ``hardware/pe/grp_accum.v``; needs ``rescale="bitserial"`` and ``serial="term"``) the group
   is summed cycle by cycle in a block-floating register of a ``W``-bit signed mantissa ``m``
   and an exponent ``e`` instead of the exact partial sum, and alignment is per step, not per
   group: at each step the ``parallel`` lanes are aligned to *their* largest exponent ``Es``
   (step 2 with ``Es`` for ``Emax``), their term slot summed exactly into ``x`` (LSB exponent
   ``Es - F``), and then ``n = max(e, Es - F)``, ``s = floor(x / 2**(n - Es + F)) + floor(m /
   2**(n - e))`` (``m = 0``, ``e = Es - F`` at the group's first cycle), ``d = max(0,
   bitlen(|s|) - (W - 1))``, ``m = floor(s / 2**d)``, ``e = n + d``: every shift truncates
   toward minus infinity (arithmetic right shifts), the paper's only conversion. The
   dequantizer takes ``m`` (``Q = m * s`` exact, LSB exponent ``e``) and the adder rounds
   ``Q`` once per group into the accumulator as in step 5. The group is then a counter: the
   PE's logic sees ``parallel`` lanes per cycle whatever ``group`` is.

Cycles: ``C`` cycles per weight (``ceil(bits/2)`` in term mode, ``digits`` in bit mode) and
``T = (group / parallel) * C`` per group; a transaction takes ``II = groups * T`` cycles at full
throughput and its result appears ``II + D + 1`` cycles after it is accepted (``D`` =
:attr:`PEConfig.dequant_cycles`, 1 for the FMA); ``n`` back-to-back transactions take
``n * II + D + 1`` cycles (:meth:`PEConfig.cycles`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core, ops
from ._errors import FormatError
from .catalog import get_format
from .descriptors import FloatFormat, Format, IntFormat, Specials
from .rounding import Rounding, Saturation, as_rounding, as_saturation

__all__ = ["ACCUMULATORS", "FAMILIES", "FIXED_ACC_BITS", "RESCALES", "SERIAL_MODES",
           "WEIGHT_TYPES", "PEConfig", "WeightType", "accumulate",
           "aligned_activations", "dequantize_groups", "fixed_group_sums", "get_family",
           "partial_sum_steps",
           "partial_sums", "pe_dot", "quantize_groups", "unified_terms", "weight_values"]

I64 = npt.NDArray[np.int64]

#: Serial modes of the PE: one term per cycle, or one signed-digit position per cycle.
SERIAL_MODES = ("term", "bit")

#: Rescale units: a float FMA per group, or the paper's bit-serial dequantizer and an adder.
RESCALES = ("fma", "bitserial")

#: Largest term exponent of any datatype (16 = 2**4).
MAX_TERM_EXP = 4

#: Accumulator organisations of a group: the exact partial sum (``float``: then one float
#: conversion per group), or the paper's block-floating ``fixed:W`` register.
ACCUMULATORS = ("float", "fixed")

#: Mantissa width (sign included) of ``accumulate="fixed"``: ``ACC_MAN_WIDTH = 15`` of the
#: paper's ``hardware/pe/grp_accum.v`` (its fixed-point adder is 23 bits wide).
FIXED_ACC_BITS = 15
#: Range of ``W`` in ``accumulate="fixed:W"``.
FIXED_ACC_RANGE = (6, 32)


def _parse_accumulate(spec: Any) -> int:
    """``0`` for ``"float"``, else the ``W`` of ``"fixed"`` / ``"fixed:W"``."""
    if not isinstance(spec, str):
        raise TypeError(f"accumulate must be a string, not {spec!r}")
    kind, _, width = spec.strip().partition(":")
    if kind == "float" and not width:
        return 0
    if kind != "fixed":
        raise ValueError(f"accumulate must be 'float', 'fixed' or 'fixed:W', not {spec!r}")
    if not width:
        return FIXED_ACC_BITS
    try:
        w = int(width)
    except ValueError:
        raise ValueError(f"accumulate must be 'float', 'fixed' or 'fixed:W', not {spec!r}"
                         ) from None
    lo, hi = FIXED_ACC_RANGE
    if not lo <= w <= hi:
        raise ValueError(f"the W of accumulate='fixed:W' must be {lo} to {hi}, not {w!r}")
    return w


def unified_terms(value: int) -> tuple[tuple[bool, int], ...]:
    """Return ``value`` as at most two signed powers of two ``((neg, exp), ...)``, largest first.

    Raises
    ------
    FormatError
        When ``value`` is not such a sum or needs an exponent above 4.
    """
    v = operator.index(value)
    neg, mag = v < 0, abs(v)
    terms: tuple[tuple[bool, int], ...]
    if mag == 0:
        terms = ()
    elif mag & (mag - 1) == 0:
        terms = ((neg, mag.bit_length() - 1),)
    elif bin(mag).count("1") == 2:
        low = (mag & -mag).bit_length() - 1
        terms = ((neg, mag.bit_length() - 1), (neg, low))
    else:
        up = 1 << mag.bit_length()
        rest = up - mag
        if rest & (rest - 1):
            raise FormatError(f"value {v} is not a sum of two signed powers of two")
        terms = ((neg, up.bit_length() - 1), (not neg, rest.bit_length() - 1))
    if any(e > MAX_TERM_EXP for _, e in terms):
        raise FormatError(f"value {v} needs a power of two above 2**{MAX_TERM_EXP}")
    return terms


@dataclass(frozen=True)
class WeightType:
    """A BitMoD weight datatype: the integer value of each ``bits``-bit code.

    Parameters
    ----------
    name : str
    bits : int
    values : tuple of int
        ``values[code]``, before the per-group scale.
    """

    name: str
    bits: int
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.values) != 1 << self.bits:
            raise FormatError(f"{self.name} needs {1 << self.bits} values, not "
                              f"{len(self.values)}")
        for v in self.values:
            unified_terms(v)

    @property
    def max_abs(self) -> int:
        """Largest magnitude of a value (what the group scale maps ``max|w|`` to)."""
        return max(abs(v) for v in self.values)

    @property
    def terms(self) -> tuple[tuple[tuple[bool, int], ...], ...]:
        """Unified representation of each code (see :func:`unified_terms`)."""
        return tuple(unified_terms(v) for v in self.values)

    @property
    def digits(self) -> int:
        """Signed-digit positions the values need (largest term exponent + 1)."""
        return 1 + max((e for t in self.terms for _, e in t), default=0)

    def decode(self, codes: npt.ArrayLike) -> I64:
        """Integer values of ``codes``."""
        table = np.array(self.values, dtype=np.int64)
        return table[np.asarray(codes, dtype=np.int64) & ((1 << self.bits) - 1)]


def _int_type(bits: int) -> WeightType:
    half = 1 << (bits - 1)
    return WeightType(f"int{bits}", bits, tuple(c - 2 * half if c >= half else c
                                                for c in range(2 * half)))


def _sign_mag_type(name: str, mags: Sequence[int], extra: int | None) -> WeightType:
    """Sign bit over a magnitude table; the -0 code holds ``extra`` (0 when None)."""
    n = len(mags)
    values = [int(m) for m in mags] + [-int(m) for m in mags]
    values[n] = 0 if extra is None else extra
    return WeightType(name, n.bit_length(), tuple(values))


def _fp_mags() -> dict[int, list[int]]:
    # FP3 is E2M0 (field f > 0 means 2**(f-1), field 0 means 0); FP4 is E2M1 times two.
    e2m1 = get_format("float4_e2m1fn").decode(np.arange(8, dtype=np.uint8))
    return {3: [0] + [1 << (f - 1) for f in range(1, 4)], 4: [int(2 * x) for x in e2m1]}


def _catalog() -> dict[str, WeightType]:
    out = {t.name: t for t in (_int_type(2), _int_type(3), _int_type(4))}
    extras = {3: {"er": 3, "ea": 6}, 4: {"er": 10, "ea": 16}}
    for bits, mags in _fp_mags().items():
        out[f"fp{bits}"] = _sign_mag_type(f"fp{bits}", mags, None)
        for kind, value in extras[bits].items():
            for sign, sv in (("pos", value), ("neg", -value)):
                name = f"fp{bits}_{kind}_{sign}"
                out[name] = _sign_mag_type(name, mags, sv)
    return out


#: Every weight datatype by name.
WEIGHT_TYPES: dict[str, WeightType] = _catalog()

#: Named families: the (up to four) datatypes the 2-bit selector picks from.
FAMILIES: dict[str, tuple[str, ...]] = {
    "bitmod4": ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"),
    "bitmod3": ("fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg"),
    "int4": ("int4",), "int3": ("int3",), "int2": ("int2",),
    "fp4": ("fp4",), "fp3": ("fp3",),
}


def get_family(spec: str | Sequence[str] | Sequence[WeightType]) -> tuple[WeightType, ...]:
    """Return the four datatypes of a family: a name of :data:`FAMILIES`, or 1 to 4 datatype
    names (``"int4,fp4,fp4_er_pos"``) of one width, cycled to four.

    Raises
    ------
    FormatError
        For an unknown name, more than four datatypes or datatypes of different widths.
    """
    if isinstance(spec, str):
        names: Sequence[Any] = FAMILIES.get(spec, tuple(s.strip() for s in spec.split(",")))
    else:
        names = tuple(spec)
    types = []
    for n in names:
        if isinstance(n, WeightType):
            types.append(n)
            continue
        if n not in WEIGHT_TYPES:
            raise FormatError(f"weight datatype family must be one of {', '.join(FAMILIES)} or "
                              f"datatype names of {', '.join(WEIGHT_TYPES)}, not {n!r}")
        types.append(WEIGHT_TYPES[n])
    if not 1 <= len(types) <= 4:
        raise FormatError(f"a family has 1 to 4 datatypes (a 2-bit selector), not {len(types)}")
    if len({t.bits for t in types}) != 1:
        raise FormatError(f"the datatypes of a family must have one width, not "
                          f"{', '.join(f'{t.name} ({t.bits})' for t in types)}")
    return tuple(types[i % len(types)] for i in range(4))


def _family_name(types: tuple[WeightType, ...]) -> str:
    for name, members in FAMILIES.items():
        if tuple(WEIGHT_TYPES[m] for m in (members * 4)[:4]) == types:
            return name
    return ",".join(t.name for t in types)


def _positive(value: Any, what: str, low: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if v < low:
        raise ValueError(f"{what} must be at least {low}, not {v!r}")
    return v


_ACTS = ("float16", "bfloat16", "int8")


@dataclass(frozen=True, eq=False)
class PEConfig:
    """The arithmetic and schedule of one BitMoD bit-serial PE.

    Parameters
    ----------
    acts : Format or str
        ``float16``, ``bfloat16`` or ``int8``.
    family : str or sequence
        Weight datatypes the per-group selector chooses from (:func:`get_family`).
    group : int
        Weights per group, processed in parallel lanes.
    groups : int
        Groups per transaction (dot-product length ``group * groups``).
    align_bits : int
        Fraction bits kept below the group's largest activation when aligning (float
        activations; int8 ignores it).
    scale : FloatFormat or str
        Format of the per-group scales.
    acc : FloatFormat or str
        Accumulator (``c`` and result) format.
    rounding : Rounding or str
        Rounding of each per-group accumulation (not stochastic).
    serial : str
        ``"term"`` (one power-of-two term per cycle) or ``"bit"`` (one digit per cycle).
    rescale : str
        ``"fma"``: each group's partial sum times a float ``scale`` and plus the accumulator in
        one fused multiply-add; ``"bitserial"``: the paper's dequantizer, ``scale`` an unsigned
        integer (the second-level per-group scale; the per-channel float scale is applied
        outside the PE), ``Q = P * scale`` exactly by shift-and-add, :attr:`dequant_bits` scale
        bits per cycle, then ``Q`` rounded once into the accumulator by a float adder.
    parallel : int or None
        Weights of a group processed per cycle (``None``: ``group``); ``group`` must be a
        multiple. A group takes ``group / parallel`` steps of ``C`` cycles.
    saturation : Saturation or str
        Overflow mode of each per-group accumulation (IEEE P3109's SatFinite, SatPropagate,
        OvfInf; default OvfInf, what the PE did before it was a parameter).
    accumulate : str
        ``"float"`` (the exact partial sum of a group, converted once; the default) or
        ``"fixed[:W]"``: the paper's group accumulator (module documentation, step 6), a
        ``W``-bit signed mantissa (default :data:`FIXED_ACC_BITS`) renormalized by truncating
        right shifts every cycle, alignment per step of ``parallel`` lanes.
    """

    acts: Format | str = "float16"
    family: Any = "bitmod4"
    group: int = 8
    groups: int = 2
    align_bits: int = 8
    scale: FloatFormat | str = "float16"
    acc: FloatFormat | str = "float32"
    rounding: Rounding | str = Rounding.RNE
    serial: str = "term"
    rescale: str = "fma"
    parallel: int | None = None
    saturation: Saturation | str = Saturation.OVF_INF
    accumulate: str = "float"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        acts = get_format(self.acts) if isinstance(self.acts, str) else self.acts
        if getattr(acts, "name", None) not in _ACTS:
            raise FormatError(f"activations must be one of {', '.join(_ACTS)}, not "
                              f"{getattr(acts, 'name', acts)!r}")
        set_(self, "acts", acts)
        set_(self, "family", get_family(self.family))
        set_(self, "group", _positive(self.group, "group"))
        set_(self, "groups", _positive(self.groups, "groups"))
        align = _positive(self.align_bits, "align_bits", 0)
        if align > 16:
            raise ValueError(f"align_bits must be at most 16, not {align!r}")
        set_(self, "align_bits", 0 if isinstance(acts, IntFormat) else align)
        if self.rescale not in RESCALES:
            raise ValueError(f"rescale must be one of {', '.join(RESCALES)}, not "
                             f"{self.rescale!r}")
        for key in ("scale", "acc"):
            f = get_format(getattr(self, key)) if isinstance(getattr(self, key), str) \
                else getattr(self, key)
            if key == "scale" and self.rescale == "bitserial":
                if not (isinstance(f, IntFormat) and not f.signed):
                    raise FormatError(f"scale must be an unsigned integer format (uint4, uint8, "
                                      f"...) with rescale='bitserial', not "
                                      f"{getattr(f, 'name', f)!r}")
            elif not isinstance(f, FloatFormat):
                raise FormatError(f"{key} must be a float format, not "
                                  f"{getattr(f, 'name', f)!r}")
            set_(self, key, f)
        lanes = self.group if self.parallel is None else _positive(self.parallel, "parallel")
        if self.group % lanes:
            raise ValueError(f"parallel must divide group ({self.group}), not {lanes!r}")
        if lanes != self.group and self.serial != "term":
            raise ValueError(f"parallel below group ({lanes} < {self.group}) needs "
                             f"serial='term', "
                             f"not {self.serial!r}")
        set_(self, "parallel", lanes)
        mode = as_rounding(self.rounding)
        if mode.stochastic:
            raise ValueError("rounding must be deterministic (rne, rna, rtz, rup, rdn, rto), "
                             "not 'stochastic'")
        set_(self, "rounding", mode)
        set_(self, "saturation", as_saturation(self.saturation))
        if self.rescale == "bitserial" and self.saturation is not Saturation.OVF_INF:
            raise ValueError(f"the bit-serial dequantizer's adder takes saturation OvfInf only, "
                             f"not {str(self.saturation)!r} (use rescale='fma')")
        if self.serial not in SERIAL_MODES:
            raise ValueError(f"serial must be one of {', '.join(SERIAL_MODES)}, not "
                             f"{self.serial!r}")
        w = _parse_accumulate(self.accumulate)
        set_(self, "accumulate", f"fixed:{w}" if w else "float")
        if w and self.rescale != "bitserial":
            raise ValueError(f"accumulate={self.accumulate!r} needs rescale='bitserial' (the "
                             f"paper's group accumulator feeds its dequantizer), not "
                             f"{self.rescale!r}")
        if w and self.serial != "term":
            raise ValueError(f"accumulate={self.accumulate!r} needs serial='term', not "
                             f"{self.serial!r}")
        if w and self.cycles_per_group > 1 << (w - 3):
            raise ValueError(f"accumulate={self.accumulate!r} truncates once per cycle: a group "
                             f"of {self.cycles_per_group} cycles needs W of at least "
                             f"{3 + (self.cycles_per_group - 1).bit_length()}")
        if self.partial_bits + self.scale_precision > _core.SIG_LIMIT_BITS - 2:
            raise ValueError(f"partial sums of {self.partial_bits} bits are too wide; lower "
                             f"group or align_bits")

    # -- typed views ---------------------------------------------------------------------------
    @property
    def types(self) -> tuple[WeightType, ...]:
        """The four datatypes, by selector value."""
        types: tuple[WeightType, ...] = self.family
        return types

    @property
    def family_name(self) -> str:
        """Name of the family (a :data:`FAMILIES` key or the datatype names)."""
        return _family_name(self.types)

    @property
    def act_format(self) -> Format:
        """Format of the activations."""
        assert isinstance(self.acts, Format)
        return self.acts

    @property
    def scale_format(self) -> Format:
        """Format of the per-group scales (a float format, or unsigned integers with
        ``rescale="bitserial"``)."""
        assert isinstance(self.scale, Format)
        return self.scale

    @property
    def scale_precision(self) -> int:
        """Significant bits of a scale (its significand, or its integer width)."""
        f = self.scale_format
        return f.precision if isinstance(f, FloatFormat) else f.bits

    @property
    def acc_format(self) -> FloatFormat:
        """Accumulator format."""
        assert isinstance(self.acc, FloatFormat)
        return self.acc

    @property
    def mode(self) -> Rounding:
        """Rounding of the accumulation."""
        assert isinstance(self.rounding, Rounding)
        return self.rounding

    # -- derived facts ---------------------------------------------------------------------------
    @property
    def weight_bits(self) -> int:
        """Width of a weight code."""
        return self.types[0].bits

    @property
    def length(self) -> int:
        """Dot-product length of one transaction, ``group * groups``."""
        return self.group * self.groups

    @property
    def term_slots(self) -> int:
        """Term cycles per weight in term mode: ``ceil(bits / 2)``."""
        return (self.weight_bits + 1) // 2

    @property
    def digits(self) -> int:
        """Signed-digit positions per weight (bit mode's cycles per weight)."""
        return max(t.digits for t in self.types)

    @property
    def cycles_per_weight(self) -> int:
        """``C``: cycles the PE spends on each weight (and group)."""
        return self.term_slots if self.serial == "term" else self.digits

    @property
    def lane_count(self) -> int:
        """Weights processed per cycle, the PE's lanes (:attr:`parallel`, resolved)."""
        lanes: int = self.parallel  # type: ignore[assignment]
        return lanes

    @property
    def steps(self) -> int:
        """Steps per group, ``group / parallel``."""
        return self.group // self.lane_count

    @property
    def cycles_per_group(self) -> int:
        """``T = steps * C``: cycles the PE spends on each group."""
        return self.steps * self.cycles_per_weight

    @property
    def dequant_bits(self) -> int:
        """Scale bits the bit-serial dequantizer takes per cycle: the fewest that finish a
        group's scale within the group's ``T`` cycles (1 when ``T`` is at least the scale
        width, as in the paper); 0 with ``rescale="fma"``."""
        if self.rescale != "bitserial":
            return 0
        return -(-self.scale_format.bits // self.cycles_per_group)

    @property
    def dequant_cycles(self) -> int:
        """``D``: cycles from a group's partial sum to its sum in the accumulator: 1 for the
        FMA; the shift-and-add cycles ``ceil(scale bits / dequant_bits)`` (at most ``T``) and
        one for the adder with ``rescale="bitserial"``."""
        if self.rescale != "bitserial":
            return 1
        return -(-self.scale_format.bits // self.dequant_bits) + 1

    @property
    def initiation_interval(self) -> int:
        """Cycles between back-to-back transactions: ``groups * T``."""
        return self.groups * self.cycles_per_group

    @property
    def latency(self) -> int:
        """Cycles from accepting a transaction to its result: ``groups * T + D + 1``."""
        return self.initiation_interval + self.dequant_cycles + 1

    def cycles(self, tiles: int = 1) -> int:
        """Cycles for ``tiles`` back-to-back transactions: ``tiles * groups * T + D + 1``."""
        return _positive(tiles, "tiles") * self.initiation_interval + self.dequant_cycles + 1

    @property
    def fixed_bits(self) -> int:
        """``W`` of ``accumulate="fixed:W"`` (the group accumulator's signed mantissa); 0 for
        ``"float"``."""
        return _parse_accumulate(self.accumulate)

    @property
    def fixed_shift_max(self) -> int:
        """Largest ``e - (Emax - F)`` of the fixed group accumulator over a group (``Emax`` the
        group's largest exponent): with at most ``2**(W-3)`` truncations per group its value
        stays within twice the exact sum's bound ``2**partial_bits``; 0 for ``"float"``."""
        w = self.fixed_bits
        return max(0, self.partial_bits - w + 3) if w else 0

    @property
    def step_bits(self) -> int:
        """Magnitude bits of one cycle's sum of ``parallel`` lanes (one term slot each)."""
        amax = (1 << self.aligned_bits) - 1
        top = max((1 << e for t in self.types for ts in t.terms for _, e in ts), default=1)
        return max(1, (self.lane_count * amax * top).bit_length())

    @property
    def fixed_exp_bits(self) -> int:
        """Width of the fixed group accumulator's exponent in the hardware, which counts in
        activation exponent-field units (int8: shifts from 0); 0 for ``"float"``."""
        if not self.fixed_bits:
            return 0
        f = self.act_format
        top = (1 << f.exp_bits) - 1 if isinstance(f, FloatFormat) else 0
        return max(1, (top + self.fixed_shift_max).bit_length())

    @property
    def group_sum_bits(self) -> int:
        """Magnitude bits of what the dequantizer multiplies: ``partial_bits``, or ``W - 1``."""
        return self.fixed_bits - 1 if self.fixed_bits else self.partial_bits

    @property
    def act_fields(self) -> tuple[int, int, int]:
        """Activation significand bits and the range of ``E`` (exponent of the LSB)."""
        f = self.act_format
        if isinstance(f, FloatFormat):
            top = (1 << f.exp_bits) - 2 if f.specials is Specials.IEEE else (1 << f.exp_bits) - 1
            bias = int(f.bias or 0)
            return f.precision, 1 - bias - f.man_bits, top - bias - f.man_bits
        return 8, 0, 0  # int8 magnitudes up to 128

    @property
    def aligned_bits(self) -> int:
        """Width of an aligned activation magnitude ``A``."""
        return self.act_fields[0] + self.align_bits

    @cached_property
    def _max_weight(self) -> int:
        """Largest magnitude of any value or bit-mode prefix (the partial sum's bound)."""
        best = 0
        for t in self.types:
            for terms in t.terms:
                best = max(best, abs(sum((-1 if n else 1) << e for n, e in terms)))
                for j in range(self.digits):
                    prefix = sum((-1 if n else 1) << (e - j) for n, e in terms if e >= j)
                    best = max(best, abs(prefix))
        return best

    @property
    def partial_bits(self) -> int:
        """Magnitude bits of the partial sum ``P`` (the register holds one more, the sign)."""
        amax = (1 << self.aligned_bits) - 1
        return max(1, (self.group * amax * self._max_weight).bit_length())

    @cached_property
    def partial_format(self) -> FloatFormat:
        """A float format holding every ``P * 2**(Emax - F)`` exactly, as a normal number."""
        _, e_lo, e_hi = self.act_fields
        f = self.align_bits
        low = e_lo - f
        high = e_hi - f + self.partial_bits - 1
        exp_bits = max(2, (high - low + 2).bit_length())
        return FloatFormat(exp_bits, self.partial_bits - 1, bias=1 - low, specials=Specials.NONE)

    @cached_property
    def product_format(self) -> FloatFormat:
        """With ``rescale="bitserial"``: a float format holding every ``P * scale * 2**(Emax -
        F)`` exactly, as a normal number (the dequantizer's output into the adder)."""
        _, e_lo, e_hi = self.act_fields
        f = self.align_bits
        bits = self.group_sum_bits + self.scale_format.bits
        low = e_lo - f
        high = e_hi - f + self.fixed_shift_max + bits - 1
        exp_bits = max(2, (high - low + 2).bit_length())
        return FloatFormat(exp_bits, bits - 1, bias=1 - low, specials=Specials.NONE)

    def describe(self) -> dict[str, Any]:
        """Parameters and derived facts for reports."""
        return {"acts": self.act_format.name, "family": self.family_name,
                "types": [t.name for t in self.types], "group": self.group,
                "groups": self.groups, "length": self.length, "align_bits": self.align_bits,
                "scale": self.scale_format.name, "acc": self.acc_format.name,
                "rounding": str(self.mode), "serial": self.serial, "rescale": self.rescale,
                "parallel": self.lane_count, "cycles_per_weight": self.cycles_per_weight,
                "cycles_per_group": self.cycles_per_group,
                "dequant_bits": self.dequant_bits, "dequant_cycles": self.dequant_cycles,
                "saturation": str(self.saturation), "accumulate": self.accumulate,
                "initiation_interval": self.initiation_interval, "latency": self.latency,
                "partial_bits": self.partial_bits, "partial_format": self.partial_format.name}


# -- the PE arithmetic ----------------------------------------------------------------------------

def _act_fields(codes: npt.ArrayLike, fmt: Format) -> tuple[Any, I64, I64]:
    """Sign, integer significand and LSB exponent of activation codes."""
    c = np.asarray(codes).astype(np.int64)
    if isinstance(fmt, FloatFormat):
        m = fmt.man_bits
        c = c & ((1 << fmt.bits) - 1)
        field = (c >> m) & ((1 << fmt.exp_bits) - 1)
        if fmt.specials is Specials.IEEE and np.any(field == (1 << fmt.exp_bits) - 1):
            raise FormatError(f"activations must be finite: a {fmt.name} infinity or NaN "
                              f"reached the PE")
        frac = c & ((1 << m) - 1)
        sig = np.where(field == 0, frac, frac | (1 << m))
        exp = np.maximum(field, 1) - fmt.bias - m
        return (c >> (fmt.bits - 1)).astype(bool), sig, exp
    assert isinstance(fmt, IntFormat)
    v = fmt.to_int(c)
    return v < 0, np.abs(v), np.zeros_like(v)


def _check_codes(name: str, arr: npt.ArrayLike, bits: int, shape_tail: int) -> I64:
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise FormatError(f"{name} codes must be an integer array, not {a.dtype}")
    if a.shape[-1:] != (shape_tail,):
        raise FormatError(f"{name} must have {shape_tail} entries along the last axis, not "
                          f"shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and (int(a.min()) < 0 or int(a.max()) >> bits):
        raise FormatError(f"{name} codes must fit in {bits} bits")
    return a


def _check_operands(a: npt.ArrayLike, w: npt.ArrayLike, sel: npt.ArrayLike, cfg: PEConfig
                    ) -> tuple[I64, I64, I64]:
    """Activation, weight and selector codes checked, broadcast to one leading shape."""
    ca = _check_codes("a", a, cfg.act_format.bits, cfg.length)
    cw = _check_codes("w", w, cfg.weight_bits, cfg.length)
    cs = _check_codes("sel", sel, 2, cfg.groups)
    ca, cw = np.broadcast_arrays(ca, cw)
    return ca, cw, np.broadcast_to(cs, (*ca.shape[:-1], cfg.groups))


def aligned_activations(a: npt.ArrayLike, config: PEConfig) -> tuple[I64, I64]:
    """Align activation codes group by group: ``A`` ``(..., groups, group)`` (signed, truncated
    toward zero) and the exponent of their LSB, ``Emax - F``, ``(..., groups)``."""
    cfg = config
    a = _check_codes("a", a, cfg.act_format.bits, cfg.length)
    lead = a.shape[:-1]
    neg, sig, exp = _act_fields(a.reshape(*lead, cfg.groups, cfg.group), cfg.act_format)
    emax = exp.max(axis=-1)
    f = cfg.align_bits
    aligned = (sig << f) >> (emax[..., None] - exp)
    return np.where(neg, -aligned, aligned), emax - f


def weight_values(w: npt.ArrayLike, sel: npt.ArrayLike, config: PEConfig) -> I64:
    """Integer values ``(..., groups, group)`` of weight codes under each group's datatype."""
    cfg = config
    w = _check_codes("w", w, cfg.weight_bits, cfg.length)
    sel = _check_codes("sel", sel, 2, cfg.groups)
    lead = np.broadcast_shapes(w.shape[:-1], sel.shape[:-1])
    w = np.broadcast_to(w, (*lead, cfg.length)).reshape(*lead, cfg.groups, cfg.group)
    sel = np.broadcast_to(sel, (*lead, cfg.groups))
    table = np.array([t.values for t in cfg.types], dtype=np.int64)
    return np.asarray(table[np.repeat(sel[..., None], cfg.group, axis=-1), w], dtype=np.int64)


def partial_sums(a: npt.ArrayLike, w: npt.ArrayLike, sel: npt.ArrayLike,
                 config: PEConfig) -> tuple[I64, I64]:
    """Compute each group's exact partial sum ``P`` and the exponent of its LSB (``Emax - F``).

    ``a`` and ``w``: ``(..., length)`` codes; ``sel``: ``(..., groups)``. Returns two
    ``(..., groups)`` arrays.
    """
    aligned, lsb = aligned_activations(a, config)
    values = weight_values(w, sel, config)
    p = (aligned * values).sum(axis=-1)
    return p, np.broadcast_to(lsb, p.shape)


def accumulate(p: npt.ArrayLike, lsb: npt.ArrayLike, scale: npt.ArrayLike, c: npt.ArrayLike,
               config: PEConfig) -> npt.NDArray[Any]:
    """Rescale and accumulate partial sums group by group: ``acc = round(P * 2**lsb * scale +
    acc)`` with ``acc = c`` first; ``p``, ``lsb``, ``scale``: ``(..., groups)``; returns the
    accumulator codes ``(...)``."""
    cfg = config
    p = np.asarray(p, dtype=np.int64)
    lead = p.shape[:-1]
    lsb = np.broadcast_to(np.asarray(lsb, dtype=np.int64), p.shape)
    scale = _check_codes("scale", scale, cfg.scale_format.bits, cfg.groups)
    scale = np.broadcast_to(scale, (*lead, cfg.groups))
    acc = np.broadcast_to(np.asarray(c), lead).astype(cfg.acc_format.code_dtype)
    fp = cfg.partial_format
    for g in range(cfg.groups):
        if cfg.rescale == "bitserial":
            # The dequantizer's exact integer product, one rounding in the adder.
            q = p[..., g] * scale[..., g]
            fq = cfg.product_format
            qc = _core.round_float(fq, q < 0, np.abs(q), lsb[..., g], Rounding.RNE)
            acc = ops.add(qc, acc, fq, cfg.acc_format, cfg.acc_format, cfg.mode)
            continue
        pc = _core.round_float(fp, p[..., g] < 0, np.abs(p[..., g]), lsb[..., g], Rounding.RNE)
        acc = ops.fma(pc, scale[..., g], acc, fp, cfg.scale_format, cfg.acc_format,
                      cfg.acc_format, cfg.mode, saturate=cfg.saturation)
    return np.asarray(acc).reshape(lead)


def _term_tables(cfg: PEConfig) -> tuple[I64, I64]:
    """Per (type, code, term slot): the term's sign factor (0 when absent) and exponent."""
    factor = np.zeros((4, 1 << cfg.weight_bits, 2), dtype=np.int64)
    expo = np.zeros_like(factor)
    for ti, wt in enumerate(cfg.types):
        for code, terms in enumerate(wt.terms):
            for s, (tn, te) in enumerate(terms):
                factor[ti, code, s] = -1 if tn else 1
                expo[ti, code, s] = te
    return factor, expo


def _bit_length(x: I64) -> I64:
    """``bitlen(x)`` of non-negative integers below ``2**53`` (exact through float64)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def fixed_group_sums(a: npt.ArrayLike, w: npt.ArrayLike, sel: npt.ArrayLike,
                     config: PEConfig) -> tuple[I64, I64]:
    """Compute each group's sum in the paper's block-floating group accumulator
    (``accumulate="fixed:W"``, module documentation step 6): the mantissa ``m`` and the
    exponent of its LSB, two ``(..., groups)`` arrays, cycle by cycle in the PE's order (step
    by step of ``parallel`` lanes, term slot by term slot within a step).
    """
    # Ref: yc2367/BitMoD hardware/pe/exp_match.v (the largest exponent of the lanes of one
    # cycle), hardware/pe/grp_accum.v (max_2to1, shifter_right, the 23-bit sum, normalize).
    cfg = config
    W = cfg.fixed_bits
    if not W:
        raise ValueError("fixed_group_sums needs accumulate='fixed[:W]'")
    a, w, sel = _check_operands(a, w, sel, cfg)
    lead = a.shape[:-1]
    ng, S, L = cfg.groups, cfg.steps, cfg.lane_count
    neg, sig, exp = _act_fields(a.reshape(*lead, ng, S, L), cfg.act_format)
    es = exp.max(axis=-1)  # (..., groups, steps): each step's largest exponent
    f = cfg.align_bits
    aligned = (sig << f) >> (es[..., None] - exp)
    aligned = np.where(neg, -aligned, aligned)
    factor, expo = _term_tables(cfg)
    idx_t = np.broadcast_to(sel[..., None, None], (*lead, ng, S, L))
    idx_c = w.reshape(*lead, ng, S, L)
    fac, ex = factor[idx_t, idx_c], expo[idx_t, idx_c]  # (..., groups, steps, lanes, 2)
    m = np.zeros((*lead, ng), dtype=np.int64)
    e = np.zeros_like(m)
    for st in range(S):
        grid = es[..., st] - f
        for t in range(cfg.cycles_per_weight):
            x = np.sum(fac[..., st, :, t] * (aligned[..., st, :] << ex[..., st, :, t]), axis=-1)
            if st == 0 and t == 0:
                m, e = np.zeros_like(m), grid
            n = np.maximum(e, grid)
            s = (x >> (n - grid)) + (m >> (n - e))
            d = np.maximum(0, _bit_length(np.abs(s)) - (W - 1))
            m, e = s >> d, n + d
    return m, e


def partial_sum_steps(a: npt.ArrayLike, w: npt.ArrayLike, sel: npt.ArrayLike,
                      config: PEConfig) -> I64:
    """The partial-sum register after each cycle of the configured serial mode.

    Returns ``(..., groups, C)``: entry ``[..., g, t]`` after cycle ``t`` of group ``g``; the
    last entry of each group equals :func:`partial_sums`. Term mode adds term slot ``t`` of every
    lane (``A << e``, negated for a negative term); bit mode doubles the register and adds the
    digits at position ``digits - 1 - t``.
    """
    cfg = config
    a, w, sel = _check_operands(a, w, sel, cfg)
    lead = a.shape[:-1]
    g, n = cfg.groups, cfg.group
    neg, sig, exp = _act_fields(a.reshape(*lead, g, n), cfg.act_format)
    emax = exp.max(axis=-1, keepdims=True)
    aligned = (sig << cfg.align_bits) >> (emax - exp)
    aligned = np.where(neg, -aligned, aligned)
    slots = 2
    factor, expo = _term_tables(cfg)
    idx_t = np.repeat(sel[..., None], n, axis=-1)
    idx_c = w.reshape(*lead, g, n)
    fac, ex = factor[idx_t, idx_c], expo[idx_t, idx_c]
    steps = []
    psum = np.zeros((*lead, g), dtype=np.int64)
    for t in range(cfg.cycles_per_weight):
        if cfg.serial == "term":
            contrib = (fac[..., t] * (aligned << ex[..., t])) if t < slots else 0 * aligned
            psum = (psum if t else 0 * psum) + np.sum(contrib, axis=-1)
        else:
            pos = cfg.digits - 1 - t
            digit = np.sum(np.where(ex == pos, fac, 0), axis=-1)
            psum = 2 * psum + np.sum(digit * aligned, axis=-1)
        steps.append(psum)
    return np.stack(steps, axis=-1)


def pe_dot(a: npt.ArrayLike, w: npt.ArrayLike, sel: npt.ArrayLike, scale: npt.ArrayLike,
           c: npt.ArrayLike, config: PEConfig) -> npt.NDArray[Any]:
    """Compute one PE transaction per row: ``c`` plus the per-group rescaled partial sums, each
    group's sum rounded once into the accumulator (see the module documentation).

    Parameters
    ----------
    a, w : array_like
        ``(..., length)`` activation and weight codes.
    sel, scale : array_like
        ``(..., groups)`` selectors (0 to 3) and scale codes.
    c : array_like
        ``(...)`` accumulator codes.
    config : PEConfig

    Returns
    -------
    numpy.ndarray
        Accumulator codes ``(...)``.
    """
    if config.fixed_bits:
        p, lsb = fixed_group_sums(a, w, sel, config)
    else:
        p, lsb = partial_sums(a, w, sel, config)
    return accumulate(p, lsb, scale, c, config)


# -- group-wise datatype selection -----------------------------------------------------------------

def quantize_groups(w: npt.ArrayLike, family: Any = "bitmod4", group: int = 128,
                    scale: FloatFormat | str = "float16"
                    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[Any]]:
    """Quantize ``(rows, K)`` weights group-wise, choosing each group's datatype by MSE.

    For each group of ``group`` consecutive weights along K (the last may be shorter) and each
    datatype of the family: ``scale = max|w| / max|values|`` rounded (RNE) to the scale format
    (1 for an all-zero group), each weight mapped to the nearest value of ``w / scale`` (ties to
    the smaller value), and the squared error ``Σ (w - scale * q)**2`` measured in float64. The
    datatype of least error is kept (ties to the lower selector).

    Returns
    -------
    codes : ``(rows, K)`` uint8 weight codes
    sel : ``(rows, ceil(K / group))`` uint8 selectors
    scales : ``(rows, ceil(K / group))`` scale codes
    """
    types = get_family(family)
    sfmt = get_format(scale) if isinstance(scale, str) else scale
    if not isinstance(sfmt, FloatFormat):
        raise FormatError(f"scale must be a float format, not {getattr(sfmt, 'name', sfmt)!r}")
    g = _positive(group, "group")
    x = np.asarray(w, dtype=np.float64)
    if x.ndim != 2:
        raise FormatError(f"weights must be a matrix (rows, K), not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FormatError("weights must be finite to quantize them")
    rows, k = x.shape
    ng = math.ceil(k / g)
    pad = np.zeros((rows, ng * g))
    pad[:, :k] = x
    blocks = pad.reshape(rows, ng, g)
    amax = np.abs(blocks).max(axis=-1)
    best_err = np.full((rows, ng), np.inf)
    codes = np.zeros((rows, ng, g), dtype=np.uint8)
    sel = np.zeros((rows, ng), dtype=np.uint8)
    scales = np.zeros((rows, ng), dtype=sfmt.code_dtype)
    seen: list[WeightType] = []
    for si, t in enumerate(types):
        if t in seen:
            continue
        seen.append(t)
        s_code = sfmt.encode(np.where(amax > 0, amax / t.max_abs, 1.0), Rounding.RNE,
                             saturate=True)
        s_val = sfmt.decode(s_code).astype(np.float64)
        s_val = np.where(s_val > 0, s_val, 1.0)
        order = np.argsort(np.array(t.values), kind="stable")
        vals = np.array(t.values, dtype=np.float64)[order]
        y = blocks / s_val[..., None]
        # Nearest value, ties to the smaller: midpoints between sorted neighbours.
        mids = (vals[1:] + vals[:-1]) / 2
        pos = np.searchsorted(mids, y, side="left")
        q = vals[pos]
        err = ((blocks - s_val[..., None] * q) ** 2).sum(axis=-1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        codes = np.where(better[..., None], order[pos].astype(np.uint8), codes)
        sel = np.where(better, si, sel).astype(np.uint8)
        scales = np.where(better, s_code, scales).astype(sfmt.code_dtype)
    return codes.reshape(rows, ng * g)[:, :k], sel, scales


def dequantize_groups(codes: npt.ArrayLike, sel: npt.ArrayLike, scales: npt.ArrayLike,
                      family: Any = "bitmod4", group: int = 128,
                      scale: FloatFormat | str = "float16") -> npt.NDArray[np.float64]:
    """Values ``scale * value`` of group-quantized weights (float64, exact)."""
    types = get_family(family)
    sfmt = get_format(scale) if isinstance(scale, str) else scale
    assert isinstance(sfmt, FloatFormat)
    c = np.asarray(codes, dtype=np.int64)
    rows, k = c.shape
    gidx = np.arange(k) // _positive(group, "group")
    table = np.array([t.values for t in types], dtype=np.float64)
    s = np.asarray(sel, dtype=np.int64)[:, gidx]
    sv = sfmt.decode(np.asarray(scales)[:, gidx]).astype(np.float64)
    return np.asarray(table[s, c] * sv, dtype=np.float64)
