# Ref: OCP Microscaling Formats (MX) Specification v1.0 (Sept 2023) §5 (MX-compliant formats,
#      §5.3 E8M0 scale), §6.3 (conversion from scalars), §6.2 (dot product); reference emulator
#      microsoft/microxcaling mx/mx_ops.py (shared-exponent clamping, symmetric MXINT8);
#      NVIDIA, "Introducing NVFP4 for Efficient and Accurate Low-Precision Inference" (developer
#      blog, June 2025) and the PTX ISA (``.ue4m3`` block-scale type of ``mma.block_scale``) for
#      NVFP4; NVIDIA TransformerEngine's NVFP4 recipe for the amax-based two-level scales.
"""Block-scaled formats: ``block_size`` elements share one scale (OCP MX, NVIDIA NVFP4).

A tensor is stored as :class:`BlockCodes`: one scale code per block and one element code per
value; value ``i`` of a block is ``X * P_i``. Quantization follows the spec's algorithm exactly
and rounds each element once::

    shared_exp = floor(log2(max_i |V_i|)) - emax_elem      (scale_rule="floor", the spec's)
    X = 2**shared_exp;  P_i = round_to_element(V_i / X), clamped to ±element max

Two-level formats (``tensor_scale`` set, as NVFP4) add one per-tensor scale ``T`` and store
:class:`ScaledBlockCodes`; value ``i`` of a block is ``T * X * P_i``, where ``X`` is any value
of the scale format (``scale_rule="amax"``), not only a power of two::

    T = round_T(amax_tensor / (M * S_max))          (M: element max, S_max: scale format max)
    X = round_S(amax_block / (M * T))               (RNE, saturating)
    P_i = round_to_element(V_i / (X * T)), clamped to ±M

Each of the three is one rounding of the exact quotient (TransformerEngine computes the same
quantities in float32 steps; see ``docs/formats.md`` for where that can differ).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _core, catalog
from ._errors import FormatError
from ._xp import NP
from .codec import _as_float_array, split_float
from .descriptors import FixedFormat, FloatFormat, Format, _index
from .rounding import Rounding, as_rounding

__all__ = ["BlockCodes", "BlockFormat", "ScaledBlockCodes", "mx_dot"]

#: Scale rules, each a way to derive the block scale from the block's largest magnitude: four
#: power-of-two rules (the shared exponent) and ``"amax"``, the scale rounded to nearest even.
SCALE_RULES = ("floor", "ceil", "round", "even", "amax")

#: Rules of the per-tensor scale: ``"amax"`` (``T = amax_tensor / (M * S_max)``, NVFP4's).
TENSOR_RULES = ("amax",)

#: Element formats of OCP MX v1.0 §5 (Table 1), named ``mxfp{bits}_e{E}m{M}`` in the catalog.
_OCP_ELEMENTS = ("float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn")

Element = FloatFormat | FixedFormat


class BlockCodes(NamedTuple):
    """Codes of a block-scaled array: ``scale`` has one code per block, ``element`` one per value.

    Along the blocked axis ``element`` keeps the length ``n`` of the values and ``scale`` has
    ``ceil(n / block_size)`` entries; the other axes are the same.
    """

    scale: npt.NDArray[Any]
    element: npt.NDArray[Any]


class ScaledBlockCodes(NamedTuple):
    """Codes of a two-level block-scaled array (NVFP4): :class:`BlockCodes` plus ``tensor``, the
    0-d code of the one per-tensor scale (in the format's ``tensor_scale`` format)."""

    scale: npt.NDArray[Any]
    element: npt.NDArray[Any]
    tensor: npt.NDArray[Any]


def _e8m0() -> FloatFormat:
    fmt = catalog.get_format("float8_e8m0fnu")
    assert isinstance(fmt, FloatFormat)
    return fmt


def _exact_log2(value: float) -> int:
    """Exponent of a power of two held exactly in a float."""
    mant, exp = math.frexp(value)
    assert mant == 0.5
    return exp - 1


@dataclasses.dataclass(frozen=True, init=False)
class BlockFormat(Format):
    """Block-scaled format: ``block_size`` elements sharing one scale (OCP MX, NVIDIA NVFP4).

    Parameters
    ----------
    element : FloatFormat or FixedFormat or str
        Format of the elements (a descriptor or a catalog name). Signed fixed-point elements use
        the symmetric range ``±max_int`` (MXINT8 is ``FixedFormat(1, 6)``: ``q * 2**-6`` with
        ``q`` in [-127, 127]; code 0x80 is never produced).
    scale : FloatFormat or str
        Format of the shared scale; ``float8_e8m0fnu`` (the spec's E8M0) by default; NVFP4's is
        ``float8_ue4m3``; any unsigned small float or ``float32`` works. Under the power-of-two
        rules only its powers of two are used; under ``"amax"`` every value. Its NaN marks a
        block whose values are all NaN. Scales are stored in whole bytes (UE4M3's 7 bits in an
        E4M3 byte with the sign bit 0, as NVIDIA stores it).
    block_size : int
        Elements per block, at least 1; the spec's is 32. A last, partial block along the
        blocked axis is a block of its own.
    scale_rule : {"floor", "ceil", "round", "even", "amax"}
        How the shared exponent follows from ``A = max_i |V_i|`` and ``M``, the element's largest
        value (exactly, with integers):

        - ``"floor"`` (the spec's): ``floor(log2 A) - emax_elem``; ``V_i / X`` may exceed ``M``
          and is then clamped;
        - ``"ceil"``: ``ceil(log2(A / M))``, the smallest scale with ``A / X <= M`` (no element
          is clamped; an exact form of torchao's RCEIL, which divides in float32 first);
        - ``"round"``: ``round(log2(A / M))``, the nearest in log scale (``A / X`` within
          ``M / sqrt(2)`` and ``M * sqrt(2)``; ties cannot occur);
        - ``"even"`` (torchao's EVEN, AMD aiter's and Quark's): ``floor(log2 A') - emax_elem``
          with ``A'`` the value ``A`` rounded half up to the element's mantissa width (``m``
          bits): the floor rule, one binade up when ``A``'s significand is at least
          ``2 - 2**-(m+1)``, so that ``A / X`` does not round past the element's top binade.
          ``m`` is ``man_bits`` (fixed-point elements: ``bits - 2``, MXINT8's 6).

        The result is clamped below to the scale's smallest power of two; above its largest one
        the scale is NaN (as in microsoft/microxcaling). An all-zero block takes the smallest.

        - ``"amax"`` (NVIDIA's NVFP4 recipe, TransformerEngine): ``X = A / (M * T)`` rounded to
          nearest even in the scale format, saturating at its largest value (``T`` is the tensor
          scale, 1 without one). ``X`` need not be a power of two, so ``A / X`` may exceed ``M``
          slightly and is then clamped. A block whose ``X`` rounds to 0 (all-zero blocks, or
          ``A`` below half the scale's smallest value times ``M * T``) gets scale code 0 and
          element codes 0, as TransformerEngine does; a scale format without zero (E8M0)
          clamps to its smallest value instead.
    tensor_scale : FloatFormat or str or None
        Format of one per-tensor scale ``T`` (NVFP4: ``float32``), or None for single-level
        scaling. Then :meth:`quantize` returns :class:`ScaledBlockCodes` and every value is
        ``T * X * P_i``. Needs ``scale_rule="amax"``.
    tensor_rule : {"amax"}
        How ``T`` follows from the tensor's largest magnitude: ``amax_tensor / (M * S_max)``
        rounded to nearest even in ``tensor_scale`` (``S_max`` the scale format's largest value:
        NVFP4's ``amax / (6 * 448)``), so that the largest block scale is ``S_max``. An all-zero
        (or underflowing) tensor gets ``T = 1``.
    """

    element: Element
    scale: FloatFormat
    block_size: int
    scale_rule: str
    tensor_scale: FloatFormat | None
    tensor_rule: str

    kind: ClassVar[str] = "block"

    def __init__(
        self,
        element: Element | str,
        scale: FloatFormat | str | None = None,
        block_size: int = 32,
        *,
        scale_rule: str = "floor",
        tensor_scale: FloatFormat | str | None = None,
        tensor_rule: str = "amax",
    ) -> None:
        # Written out (not generated) to take catalog names and the E8M0 default.
        el: Any = catalog.get_format(element) if isinstance(element, str) else element
        if not isinstance(el, FloatFormat | FixedFormat):
            raise TypeError(f"element must be a FloatFormat or FixedFormat, not {el!r}")
        if not el.signed:
            raise FormatError(f"element must be a signed format, not {el.name!r}")
        sc: Any = _e8m0() if scale is None else scale
        if isinstance(sc, str):
            sc = catalog.get_format(sc)
        if not isinstance(sc, FloatFormat):
            raise TypeError(f"scale must be a FloatFormat, not {sc!r}")
        size = _index(block_size, "block_size")
        if size < 1:
            raise FormatError(f"block_size must be at least 1, not {size!r}")
        if scale_rule not in SCALE_RULES:
            raise FormatError(
                f"scale_rule must be one of {', '.join(SCALE_RULES)}, not {scale_rule!r}"
            )
        ts: Any = catalog.get_format(tensor_scale) if isinstance(tensor_scale, str) \
            else tensor_scale
        if ts is not None and not isinstance(ts, FloatFormat):
            raise TypeError(f"tensor_scale must be a FloatFormat or None, not {ts!r}")
        if ts is not None and scale_rule != "amax":
            raise FormatError(
                f"a per-tensor scale needs scale_rule='amax' (block scales relative to it), "
                f"not {scale_rule!r}"
            )
        if tensor_rule not in TENSOR_RULES:
            raise FormatError(
                f"tensor_rule must be one of {', '.join(TENSOR_RULES)}, not {tensor_rule!r}"
            )
        if scale_rule == "amax":
            # Values T * X * P_i must be exact in float64 (dequantize): the three significands
            # together at most 53 bits. Then the quotients V / (X * T) of quantize also keep at
            # least 62 - (X's and T's bits) >= P's bits + 9, so their round-to-odd is exact.
            divisor = sc.precision + (ts.precision if ts is not None else 0)
            need = el.precision if isinstance(el, FloatFormat) else el.bits
            if divisor + need > 53:
                raise FormatError(
                    f"scale_rule='amax' with {divisor} bits of scale significands and "
                    f"{need}-bit {el.name} elements exceeds float64's 53 bits, so values would "
                    f"not be exact; use a narrower scale format"
                )
        object.__setattr__(self, "element", el)
        object.__setattr__(self, "scale", sc)
        object.__setattr__(self, "block_size", size)
        object.__setattr__(self, "scale_rule", scale_rule)
        object.__setattr__(self, "tensor_scale", ts)
        object.__setattr__(self, "tensor_rule", tensor_rule)

    def __repr__(self) -> str:
        args = [repr(self.element)]
        if self.scale != _e8m0():
            args.append(f"scale={self.scale!r}")
        if self.block_size != 32:
            args.append(f"block_size={self.block_size}")
        if self.scale_rule != "floor":
            args.append(f"scale_rule={self.scale_rule!r}")
        if self.tensor_scale is not None:
            args.append(f"tensor_scale={self.tensor_scale!r}")
        return f"BlockFormat({', '.join(args)})"

    # -- derived facts --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name as ``mxfp8_e4m3``, ``mxint8`` or ``nvfp4``, with ``_k{block_size}``,
        ``_{scale_rule}``, ``_s{scale name}`` and ``_t{tensor scale name}`` appended for
        non-default knobs."""
        el = self.element
        if self == _nvfp4():
            return "nvfp4"
        if isinstance(el, FloatFormat) and el.name in _OCP_ELEMENTS:
            base = f"mxfp{el.bits}_e{el.exp_bits}m{el.man_bits}"
        elif isinstance(el, FixedFormat) and el.int_bits == 1:
            base = f"mxint{el.bits}"  # the spec's (and microxcaling's) intN: 1 integer bit
        else:
            base = f"mx_{el.name}"
        if self.block_size != 32:
            base += f"_k{self.block_size}"
        if self.scale_rule != "floor":
            base += f"_{self.scale_rule}"
        if self.scale != _e8m0():
            base += f"_s{self.scale.name}"
        if self.tensor_scale is not None:
            base += f"_t{self.tensor_scale.name}"
        return base

    @property
    def bits(self) -> int:
        """Width of an element code."""
        return self.element.bits

    @property
    def scale_storage_bits(self) -> int:
        """Bits that store one block scale: the scale's code in whole bytes (8 for E8M0 and for
        UE4M3, whose 7 bits sit in an E4M3 byte with the sign bit 0; 32 for float32)."""
        return -(-self.scale.bits // 8) * 8

    @property
    def bits_per_element(self) -> float:
        """Storage per value: the element's bits plus the block scale's spread over the block
        (NVFP4 4.5, MXFP4 4.25, MXFP8 8.25). The one per-tensor scale of a two-level format
        is amortized over the whole tensor and counted as 0."""
        return self.element.bits + self.scale_storage_bits / self.block_size

    @property
    def _even_threshold(self) -> int:
        """Under ``scale_rule="even"``: the 53-bit significand (in ``[2**52, 2**53)``) from
        which the block's maximum rounds up to the next binade at the element's mantissa width,
        ``(2 - 2**-(m+1)) * 2**52``."""
        el = self.element
        m = el.man_bits if isinstance(el, FloatFormat) else el.bits - 2
        return (1 << 53) - (1 << (51 - m))

    @property
    def element_max(self) -> float:
        """Largest element magnitude (``max_int * 2**-frac_bits`` for fixed-point elements)."""
        return self.element.max_finite

    @property
    def emax_elem(self) -> int:
        """``floor(log2(element_max))``: the element's largest exponent (0 for MXINT8)."""
        return math.frexp(self.element_max)[1] - 1

    @property
    def scale_emin(self) -> int:
        """Exponent of the smallest power of two the scale holds (-127 for E8M0)."""
        return _exact_log2(self.scale.min_subnormal)

    @property
    def scale_emax(self) -> int:
        """Exponent of the largest power of two the scale holds (127 for E8M0)."""
        return self.scale.emax

    @property
    def max_finite(self) -> float:
        """Largest value: element max times the largest scale (at tensor scale 1)."""
        if self.scale_rule == "amax":
            return self.element_max * self.scale.max_finite
        return math.ldexp(self.element_max, self.scale_emax)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value: the element's smallest times the smallest scale (at tensor
        scale 1)."""
        if self.scale_rule == "amax":
            return self.element.min_subnormal * self.scale.min_subnormal
        return math.ldexp(self.element.min_subnormal, self.scale_emin)

    @property
    def epsilon(self) -> float:
        """Element spacing at 1 (the block's relative precision at its largest binade)."""
        return self.element.epsilon

    @property
    def specials(self) -> str:
        """Special values: a NaN scale makes its whole block NaN."""
        return "NaN scale"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "bits": self.bits, "kind": self.kind,
            "element": self.element.name, "scale": self.scale.name,
            "block_size": self.block_size, "scale_rule": self.scale_rule,
            "tensor_scale": None if self.tensor_scale is None else self.tensor_scale.name,
            "bits_per_element": self.bits_per_element, "emax_elem": self.emax_elem,
            "max": self.max_finite, "min_subnormal": self.min_subnormal,
            "epsilon": self.epsilon, "specials": self.specials,
        }

    # -- conversion -----------------------------------------------------------------------------
    def quantize(
        self,
        values: npt.ArrayLike,
        axis: int = -1,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool = True,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
        device: str = "cpu",
        tensor_code: npt.ArrayLike | None = None,
    ) -> BlockCodes | ScaledBlockCodes:
        """Convert real values to block codes along ``axis`` (OCP MX §6.3).

        Parameters
        ----------
        values : array_like of float
            float32 or float64 values (other real dtypes are converted to float64), at least 1-D.
        axis : int
            Axis cut into blocks of ``block_size`` consecutive values.
        rounding : Rounding or str
            Rounding of each ``V_i / X`` to the element format (the shared exponent is exact).
        saturate : bool
            Clamp elements beyond the element max to ±max (the spec's rule). With False they
            overflow as the element format says (E4M3 to NaN, E5M2 to inf); fixed-point and
            special-free elements always clamp, and fixed-point ones refuse False.
        random_bits, random_width
            Random integers of ``random_width`` bits, one per value, for stochastic rounding.
        ftz : bool
            Flush elements below the element's smallest normal to zero.
        device : str
            ``"cpu"`` (numpy) or a torch device (``"cuda"``): then ``values`` may be a tensor and
            both code arrays are integer tensors on that device, bit-identical.
        tensor_code : int, optional
            A given per-tensor scale code (a calibrated ``T``) instead of ``tensor_rule``'s,
            for formats with ``tensor_scale``; it must be a positive finite value.

        Returns
        -------
        BlockCodes or ScaledBlockCodes
            A block holding a NaN or an infinity gets the scale's NaN code and element codes 0.
            Two-level formats (``tensor_scale`` set) return :class:`ScaledBlockCodes`; their
            tensor scale ignores NaN and infinite values.
        """
        if tensor_code is not None and self.tensor_scale is None:
            raise FormatError(f"{self.name} has no per-tensor scale: drop tensor_code")
        t_given = None if tensor_code is None else self._checked_tensor_code(tensor_code)
        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            if self.scale_rule == "amax":
                mode = as_rounding(rounding)
                if mode.stochastic or random_bits is not None:
                    raise FormatError(
                        f"{self.name} rounds deterministically (scale_rule='amax'): use rne, "
                        f"rtz, rup, rdn, rna or rto"
                    )
                sc, el, tc = tb.block_quantize_amax(
                    self, values, axis, mode, saturate=saturate, ftz=ftz, tensor_code=t_given,
                    device=device)
                return BlockCodes(sc, el) if tc is None else ScaledBlockCodes(sc, el, tc)
            scales_t, elements_t = tb.block_quantize(
                self, values, axis, as_rounding(rounding), saturate=saturate,
                random_bits=random_bits, random_width=random_width, ftz=ftz, device=device)
            return BlockCodes(scales_t, elements_t)
        if not saturate and isinstance(self.element, FixedFormat):
            raise FormatError(
                f"{self.name} has no inf or NaN elements to overflow to: it always saturates"
            )
        mode = as_rounding(rounding)
        with np.errstate(invalid="ignore"):  # signalling NaNs quiet silently on widening
            x = _as_float_array(values).astype(np.float64)
        ax = _axis(axis, x.ndim)
        rand, rwidth = _core.check_random(mode, x.shape, random_bits, random_width)
        xm = np.moveaxis(x, ax, -1)
        n, k = xm.shape[-1], self.block_size
        nblocks = -(-n // k)
        pad = [(0, 0)] * (xm.ndim - 1) + [(0, nblocks * k - n)]
        xp = np.pad(xm, pad)  # zeros change no block's maximum
        if self.scale_rule == "amax":
            if rand is not None:
                raise FormatError(
                    f"{self.name} rounds deterministically (scale_rule='amax'): use rne, rtz, "
                    f"rup, rdn, rna or rto"
                )
            return self._quantize_amax(xp, n, ax, mode, saturate, ftz, t_given)
        shared, nan_block = self._shared_exponents(xp.reshape(*xp.shape[:-1], nblocks, k))
        shared_each = np.repeat(shared, k, axis=-1)
        nan_each = np.repeat(nan_block, k, axis=-1)
        cls, neg, sig, exp = split_float(xp)
        cls = np.where(nan_each, _core.ZERO, cls).astype(np.int8)
        sig = np.where(nan_each, 0, sig)
        rp = None if rand is None else np.pad(np.moveaxis(rand, ax, -1), pad)
        elements = self._round_elements(cls, neg, sig, exp - shared_each, mode, saturate, ftz, rp,
                                        rwidth)
        elements = np.where(nan_each, 0, elements).astype(self.element.code_dtype)[..., :n]
        with np.errstate(over="ignore"):
            scale_value = np.where(nan_block, np.nan, np.ldexp(1.0, shared.astype(np.int32)))
        scales = self.scale.encode(scale_value)
        return BlockCodes(np.moveaxis(scales, -1, ax), np.moveaxis(elements, -1, ax))

    def tensor_scale_code(self, values: npt.ArrayLike, *, device: str = "cpu"
                          ) -> npt.NDArray[Any]:
        """0-d code of the per-tensor scale ``T`` of ``values`` (see ``tensor_rule``); with a
        torch ``device`` the values may be a tensor there, reduced on it (the code is numpy)."""
        if self.tensor_scale is None:
            raise FormatError(f"{self.name} has no per-tensor scale (tensor_scale=None)")
        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            x_t = tb._float_input(values, device).to(tb.torch.float64)
            return self._tensor_code_of_amax(tb.finite_amax(x_t))
        with np.errstate(invalid="ignore"):
            x = _as_float_array(values).astype(np.float64)
        mag = np.abs(x[np.isfinite(x)])
        return self._tensor_code_of_amax(float(mag.max()) if mag.size else 0.0)

    def _tensor_code_of_amax(self, amax: float) -> npt.NDArray[Any]:
        """0-d code of ``T`` for a tensor whose largest finite magnitude is ``amax`` (the one
        step both backends share: the torch backend reduces on its device and calls this)."""
        assert self.tensor_scale is not None
        _, _, a_sig, a_exp = split_float(np.array(amax, dtype=np.float64))
        # M * S_max, exactly: both are values of small formats with short significands.
        _, _, m_sig, m_exp = split_float(np.array(self.element_max * self.scale.max_finite))
        q_sig, q_exp = _div_odd(a_sig, a_exp, m_sig, m_exp)
        code = _core.round_float(self.tensor_scale, np.array(False), q_sig, q_exp, Rounding.RNE,
                                 saturate=True, cls=np.array(np.int8(_core.FINITE)))
        _, _, t_sig, _ = _core.unpack_float(self.tensor_scale, code)
        if a_sig == 0 or t_sig == 0:
            code = self.tensor_scale.encode(np.array(1.0))
        return np.asarray(code, dtype=self.tensor_scale.code_dtype)

    def _checked_tensor_code(self, tensor_code: Any) -> npt.NDArray[Any]:
        """A given per-tensor scale code (numpy or a 0-d tensor) as a 0-d numpy code, checked to
        be one positive finite value of ``tensor_scale``."""
        assert self.tensor_scale is not None
        if hasattr(tensor_code, "detach"):  # a torch tensor: one code, read once
            tensor_code = tensor_code.detach().cpu().numpy()
        bad = FormatError(
            f"tensor_code must be one code of a positive finite {self.tensor_scale.name} "
            f"value, not {tensor_code!r}"
        )
        t = np.asarray(tensor_code)
        if t.shape != () or t.dtype.kind not in "iu" \
                or not 0 <= int(t) < 1 << self.tensor_scale.bits:
            raise bad
        t = t.astype(self.tensor_scale.code_dtype)
        value = self.tensor_scale.decode(t)
        if not (value > 0 and np.isfinite(value)):
            raise bad
        return t

    def _quantize_amax(
        self, xp: npt.NDArray[np.float64], n: int, ax: int, mode: Rounding, saturate: bool,
        ftz: bool, tensor_code: npt.NDArray[Any] | None = None,
    ) -> BlockCodes | ScaledBlockCodes:
        """``quantize`` under ``scale_rule="amax"`` on values padded to whole blocks (last axis)."""
        k = self.block_size
        blocks = xp.reshape(*xp.shape[:-1], xp.shape[-1] // k, k)  # explicit: empty rows too
        mag = np.abs(blocks)
        has_nan = np.isnan(mag).any(axis=-1)
        amax = np.max(np.where(np.isnan(mag), 0.0, mag), axis=-1, initial=0.0)
        nan_block = has_nan | np.isinf(amax)
        if self.tensor_scale is None:
            t_code = None
            t_sig, t_exp = np.int64(1), np.int64(0)
        else:
            t_code = self.tensor_scale_code(xp) if tensor_code is None else tensor_code
            _, _, t_sig, t_exp = _core.unpack_float(self.tensor_scale, t_code)
            t_sig, t_exp = _strip(t_sig, t_exp)
        # X = round_S(A / (M * T)), saturating; NaN for blocks with a NaN or an infinity.
        m_sig, m_exp = _strip(*split_float(np.array(self.element_max))[2:])
        _, _, a_sig, a_exp = split_float(np.where(nan_block, 0.0, amax))
        q_sig, q_exp = _div_odd(a_sig, a_exp, m_sig * t_sig, m_exp + t_exp)
        cls = np.where(nan_block, _core.NAN, np.where(a_sig == 0, _core.ZERO, _core.FINITE))
        if not self.scale.zero:
            # No zero (E8M0): an all-zero block takes the smallest scale, as under the
            # power-of-two rules.
            low = (a_sig == 0) & ~nan_block
            cls = np.where(low, _core.FINITE, cls)
            q_sig = np.where(low, 1, q_sig)
            q_exp = np.where(low, self.scale_emin, q_exp)
        scales = _core.round_float(self.scale, np.zeros(q_sig.shape, dtype=bool), q_sig, q_exp,
                                   Rounding.RNE, saturate=True, cls=cls.astype(np.int8))
        s_cls, _, s_sig, s_exp = _core.unpack_float(self.scale, scales)
        s_sig, s_exp = _strip(np.where(s_cls == _core.FINITE, s_sig, 1), s_exp)
        # P_i = round(V_i / (X * T)); a block whose X is 0 (or NaN) gets element codes 0.
        dead = np.repeat(s_cls != _core.FINITE, k, axis=-1)
        d_sig = np.repeat(s_sig, k, axis=-1) * t_sig
        d_exp = np.repeat(s_exp, k, axis=-1) + t_exp
        e_cls, neg, sig, exp = split_float(xp)
        e_cls = np.where(dead, _core.ZERO, e_cls).astype(np.int8)
        sig = np.where(dead, 0, sig)
        p_sig, p_exp = _div_odd(sig, exp, d_sig, d_exp)
        elements = self._round_elements(e_cls, neg, p_sig, p_exp, mode, saturate, ftz, None, 0)
        elements = np.where(dead, 0, elements).astype(self.element.code_dtype)[..., :n]
        scales = np.moveaxis(scales.astype(self.scale.code_dtype), -1, ax)
        elements = np.moveaxis(elements, -1, ax)
        if t_code is None:
            return BlockCodes(scales, elements)
        return ScaledBlockCodes(scales, elements, t_code)

    def _shared_exponents(
        self, blocks: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Shared exponent of each block (last axis) and whether its scale is NaN."""
        mag = np.abs(blocks)
        has_nan = np.isnan(mag).any(axis=-1)
        amax = np.max(np.where(np.isnan(mag), 0.0, mag), axis=-1, initial=0.0)
        nan_scale = has_nan | np.isinf(amax)
        _, _, sig, exp = split_float(np.where(nan_scale, 0.0, amax))
        zero = sig == 0
        bl = _core.bit_length(sig)
        top = exp + bl - 1  # floor(log2 A)
        t = top - self.emax_elem
        if self.scale_rule == "floor":
            shared = t
        else:
            # A = a * 2**(top-52) and M = m * 2**(emax_elem-52), with a, m in [2**52, 2**53):
            # log2(A / M) = t + log2(a / m), and log2(a / m) lies in (-1, 1).
            a = sig << np.maximum(53 - bl, 0)
            m_frac, _ = math.frexp(self.element_max)
            m = int(m_frac * (1 << 53))
            if self.scale_rule == "ceil":
                shared = t + (a > m)
            elif self.scale_rule == "even":
                shared = t + (a >= self._even_threshold)
            else:
                # a / m < 1/sqrt(2)  <=>  a <= floor(m / sqrt(2))  (equality is impossible), and
                # a / m > sqrt(2)    <=>  a >  floor(m * sqrt(2)).
                low = math.isqrt(m * m // 2)
                high = math.isqrt(2 * m * m)
                shared = t - (a <= low) + (a > high)
        shared = np.where(zero, self.scale_emin, np.maximum(shared, self.scale_emin))
        nan_scale = nan_scale | (shared > self.scale_emax)
        return np.where(nan_scale, 0, shared), nan_scale

    def _round_elements(
        self, cls: Any, neg: Any, sig: Any, exp: Any, mode: Rounding, saturate: bool, ftz: bool,
        rand: Any, rwidth: int,
    ) -> npt.NDArray[Any]:
        el = self.element
        if isinstance(el, FloatFormat):
            return _core.round_float(el, neg, sig, exp, mode, saturate=saturate, ftz=ftz,
                                     rand=rand, rwidth=rwidth, cls=cls)
        q = _core.shift_right_round(sig, el.scale_exp - exp, neg, mode, rand, rwidth)
        q = np.minimum(q, el.max_int)  # symmetric: -max_int..max_int
        return el.from_int(np.where(neg, -q, q))

    def dequantize(
        self, scale_codes: npt.ArrayLike, element_codes: npt.ArrayLike, axis: int = -1, *,
        tensor_code: npt.ArrayLike | None = None, daz: bool = False, device: str = "cpu",
    ) -> npt.NDArray[np.float64]:
        """Compute the exact float64 value ``X * P_i`` (``T * X * P_i`` with the per-tensor scale
        code ``tensor_code`` of a two-level format) of each element (NaN throughout a block
        whose scale is NaN); ``daz`` reads subnormal elements as zero. With a torch ``device``
        the codes may be tensors and the values are a float64 tensor on that device.

        The product is exact in float64: element, scale and tensor-scale significands together
        stay within 53 bits, which construction checks for ``scale_rule="amax"`` (NVFP4: 2 + 4 +
        24 bits); the power-of-two rules multiply by powers of two only."""
        if (self.tensor_scale is None) != (tensor_code is None):
            raise FormatError(
                f"{self.name} needs tensor_code (its per-tensor scale code)"
                if tensor_code is None else f"{self.name} has no per-tensor scale: drop tensor_code"
            )
        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            t_dev = None
            if tensor_code is not None:
                t_dev = np.asarray(tensor_code.detach().cpu().numpy()
                                   if hasattr(tensor_code, "detach") else tensor_code)
                if t_dev.shape != ():
                    raise FormatError(
                        f"tensor_code must be one code (0-d), not shape {t_dev.shape}")
            return tb.block_dequantize(self, scale_codes, element_codes, axis, daz=daz,
                                       device=device, tensor_code=t_dev)
        s = np.asarray(scale_codes)
        e = np.asarray(element_codes)
        ax = _axis(axis, e.ndim)
        n, k = e.shape[ax], self.block_size
        want = list(e.shape)
        want[ax] = -(-n // k)
        if s.shape != tuple(want):
            raise FormatError(
                f"scale codes must have shape {tuple(want)} (one per block of {k} along axis "
                f"{axis}), not {s.shape}"
            )
        x = np.repeat(self.scale.decode(s), k, axis=ax)
        x = np.moveaxis(np.moveaxis(x, ax, -1)[..., :n], -1, ax)
        if self.tensor_scale is not None:
            t = np.asarray(tensor_code)
            if t.shape != ():
                raise FormatError(f"tensor_code must be one code (0-d), not shape {t.shape}")
            x = x * self.tensor_scale.decode(t)
        return self.element.decode(e, daz=daz) * x

    def encode(  # type: ignore[override]  # a block format's codes are a (scale, element) pair
        self,
        values: npt.ArrayLike,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool = True,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
        device: str = "cpu",
    ) -> BlockCodes | ScaledBlockCodes:
        """Quantize along the last axis: ``quantize(values, -1, ...)`` (see :meth:`quantize`)."""
        return self.quantize(values, -1, rounding, saturate=saturate, random_bits=random_bits,
                             random_width=random_width, ftz=ftz, device=device)

    def decode(self, codes: npt.ArrayLike, *, daz: bool = False,
               device: str = "cpu") -> npt.NDArray[np.float64]:
        """Compute the exact values of :class:`BlockCodes` blocked along the last axis.

        ``decode(encode(x))`` is thus ``dequantize(*quantize(x))``. A plain array of element codes
        decodes at unit scale (``X = 1``), which is what ``arithforge formats NAME --values``
        lists. ``daz`` reads subnormal elements as zero.
        """
        if isinstance(codes, ScaledBlockCodes):
            return self.dequantize(codes.scale, codes.element, -1, tensor_code=codes.tensor,
                                   daz=daz, device=device)
        if isinstance(codes, tuple):
            scale_codes, element_codes = codes
            return self.dequantize(scale_codes, element_codes, -1, daz=daz, device=device)
        return self.element.decode(codes, daz=daz, device=device)


def _div_odd(sig_a: Any, exp_a: Any, sig_b: Any, exp_b: Any, xp: Any = NP) -> tuple[Any, Any]:
    """``sig_a * 2**exp_a / (sig_b * 2**exp_b)`` as ``(sig, exp)`` rounded to odd at its last bit.

    ``sig_a`` (below 2**62) is first shifted to 62 bits, so the quotient keeps at least
    ``62 - bit_length(sig_b)`` bits and its last bit is sticky: any later rounding to a
    precision two or more bits shorter is the rounding of the exact quotient. ``sig_b > 0``.
    Integer arithmetic only, on numpy arrays or (``xp``) torch tensors of any device.
    """
    if xp is NP:
        sig_a, exp_a = np.asarray(sig_a, dtype=np.int64), np.asarray(exp_a)
    up = xp.where(sig_a == 0, 0, 62 - _core.bit_length(sig_a, xp))
    a = sig_a << up
    b, exp_b = _strip(sig_b, exp_b, xp)
    q, r = a // b, a % b
    return q | xp.astype(r != 0, xp.int64), exp_a - up - exp_b


def _strip(sig: Any, exp: Any, xp: Any = NP) -> tuple[Any, Any]:
    """The same positive value ``sig * 2**exp`` with ``sig`` odd (split_float's significands
    carry up to 52 trailing zeros; products of stripped ones stay short)."""
    if xp is NP:
        sig, exp = np.asarray(sig, dtype=np.int64), np.asarray(exp)
    tz = xp.clip(_core.bit_length(sig & -sig, xp) - 1, 0)
    return sig >> tz, exp + tz


def _axis(axis: int, ndim: int) -> int:
    axis = _index(axis, "axis")
    if ndim == 0:
        raise FormatError("values must have an axis to cut into blocks, not be a scalar")
    if not -ndim <= axis < ndim:
        raise FormatError(f"axis must lie in [-{ndim}, {ndim}) for {ndim}-d values, not {axis!r}")
    return axis % ndim


# -- dot product ---------------------------------------------------------------------------------

def _unpack(fmt: BlockFormat, scale_codes: Any, element_codes: Any) -> tuple[Any, Any, Any, Any]:
    """Per value ``(cls, neg, sig, exp)`` of ``X * P_i``, exact, scales expanded over blocks."""
    el = fmt.element
    if isinstance(el, FloatFormat):
        cls, neg, sig, exp = _core.unpack_float(el, element_codes)
    else:
        q = el.to_int(element_codes)
        neg, sig = q < 0, np.abs(q)
        cls = np.where(sig == 0, _core.ZERO, _core.FINITE).astype(np.int8)
        exp = np.full(q.shape, el.scale_exp, dtype=np.int64)
    s_cls, _, s_sig, s_exp = _core.unpack_float(fmt.scale, scale_codes)
    n, k = sig.shape[-1], fmt.block_size

    def expand(a: Any) -> Any:
        return np.repeat(a, k, axis=-1)[..., :n]

    cls = np.where(expand(s_cls) == _core.NAN, _core.NAN, cls)
    return cls, neg, sig * expand(s_sig), exp + expand(s_exp)


def mx_dot(
    scale_a: npt.ArrayLike,
    element_a: npt.ArrayLike,
    scale_b: npt.ArrayLike,
    element_b: npt.ArrayLike,
    fmt_a: BlockFormat | str,
    fmt_b: BlockFormat | str | None = None,
    *,
    fmt_out: Format | str = "float32",
    rounding: Rounding | str = Rounding.RNE,
) -> npt.NDArray[Any]:
    """Dot products of block-scaled vectors along the last axis, ``sum_i X_A P_i^A X_B P_i^B``.

    The internal precision is unbounded: every product and the whole sum are exact (Python
    integers), and the result is rounded once to ``fmt_out`` (float32 RNE by default). This is
    the most accurate of the spec's implementation-defined choices (OCP MX §6.2).

    Parameters
    ----------
    scale_a, element_a, scale_b, element_b : array_like of int
        :class:`BlockCodes` of the two operands, blocked along the last axis; the elements have
        the same length ``n``, the scales ``ceil(n / block_size)`` entries of their own format.
    fmt_a, fmt_b : BlockFormat or str
        Block formats of the operands (``fmt_b`` defaults to ``fmt_a``; block sizes may differ).
    fmt_out : FloatFormat or str
    rounding : Rounding or str
        Any deterministic mode.

    Returns
    -------
    numpy.ndarray
        Codes of ``fmt_out``, one per vector (the leading axes). NaN when a scale or element is
        NaN or an infinity meets a zero or the opposite infinity; otherwise an infinite element
        gives an infinite result. An exact zero is +0 (-0 under ``rdn``, or when every product
        is -0).
    """
    fa = fmt_a if isinstance(fmt_a, BlockFormat) else catalog.get_format(fmt_a)
    fb_: Any = fa if fmt_b is None else fmt_b
    fb = fb_ if isinstance(fb_, BlockFormat) else catalog.get_format(fb_)
    fo = catalog.get_format(fmt_out)
    for f, what in ((fa, "fmt_a"), (fb, "fmt_b")):
        if not isinstance(f, BlockFormat):
            raise FormatError(f"{what} must be a block format, not {getattr(f, 'name', f)!r}")
        if f.tensor_scale is not None:
            raise FormatError(
                f"{what} {f.name} has a per-tensor scale that mx_dot does not take: dot its "
                f"block codes with a format without tensor_scale and multiply by both T"
            )
    if not isinstance(fo, FloatFormat):
        raise FormatError(f"fmt_out must be a float format, not {getattr(fo, 'name', fo)!r}")
    assert isinstance(fa, BlockFormat)
    assert isinstance(fb, BlockFormat)
    mode = as_rounding(rounding)
    if mode.stochastic:
        raise FormatError("mx_dot rounds deterministically: use rne, rtz, rup, rdn, rna or rto")
    ea, eb = np.asarray(element_a), np.asarray(element_b)
    if ea.ndim == 0 or ea.shape != eb.shape:
        raise FormatError(
            f"element codes must be arrays of one shape with a last axis to reduce, not {ea.shape} "
            f"and {eb.shape}"
        )
    for f, s, what in ((fa, scale_a, "scale_a"), (fb, scale_b, "scale_b")):
        want = ea.shape[:-1] + (-(-ea.shape[-1] // f.block_size),)
        if np.shape(s) != want:
            raise FormatError(f"{what} must have shape {want} for {f.name}, not {np.shape(s)}")
    ca, na, sa, xa = _unpack(fa, scale_a, ea)
    cb, nb, sb, xb = _unpack(fb, scale_b, eb)
    cls = np.select(
        [(ca == _core.NAN) | (cb == _core.NAN)
         | ((ca == _core.INF) & (cb == _core.ZERO)) | ((ca == _core.ZERO) & (cb == _core.INF)),
         (ca == _core.INF) | (cb == _core.INF),
         (ca == _core.ZERO) | (cb == _core.ZERO)],
        [_core.NAN, _core.INF, _core.ZERO], _core.FINITE,
    )
    neg = na ^ nb
    out_shape = ea.shape[:-1]
    rows = int(np.prod(out_shape, dtype=np.int64))
    cls2, neg2 = cls.reshape(rows, -1), neg.reshape(rows, -1)
    sig2, exp2 = sa.reshape(rows, -1), xa.reshape(rows, -1)
    sigb2, expb2 = sb.reshape(rows, -1), xb.reshape(rows, -1)
    r_cls = np.zeros(rows, dtype=np.int8)
    r_neg = np.zeros(rows, dtype=bool)
    r_sig = np.zeros(rows, dtype=np.int64)
    r_exp = np.zeros(rows, dtype=np.int64)
    for i in range(rows):
        r_cls[i], r_neg[i], r_sig[i], r_exp[i] = _exact_sum(
            cls2[i], neg2[i], sig2[i], exp2[i], sigb2[i], expb2[i], mode
        )
    codes = _core.round_float(fo, r_neg, r_sig, r_exp, mode, cls=r_cls)
    return codes.reshape(out_shape)


def _exact_sum(
    cls: Any, neg: Any, sig_a: Any, exp_a: Any, sig_b: Any, exp_b: Any, mode: Rounding
) -> tuple[int, bool, int, int]:
    """Class, sign, significand below 2**60 (rounded to odd) and exponent of one exact sum."""
    if (cls == _core.NAN).any():
        return _core.NAN, False, 0, 0
    inf = cls == _core.INF
    if inf.any():
        signs = set(neg[inf].tolist())
        return (_core.NAN, False, 0, 0) if len(signs) == 2 else (_core.INF, signs.pop(), 0, 0)
    finite = cls == _core.FINITE
    if not finite.any():
        # Sum of zeros (IEEE 754 §6.3): -0 only when every product is -0, or under rdn when
        # the signs differ.
        negative = neg.size > 0 and bool(neg.all() or (mode is Rounding.RDN and neg.any()))
        return _core.ZERO, negative, 0, 0
    terms = [(int(a) * int(b), int(ea) + int(eb), bool(n)) for a, b, ea, eb, n in zip(
        sig_a[finite], sig_b[finite], exp_a[finite], exp_b[finite], neg[finite], strict=True)]
    e0 = min(e for _, e, _ in terms)
    total = sum((-s if n else s) << (e - e0) for s, e, n in terms)
    if total == 0:
        return _core.ZERO, mode is Rounding.RDN, 0, 0
    mag = abs(total)
    extra = max(mag.bit_length() - 60, 0)
    if extra:
        mag = (mag >> extra) | int(mag & ((1 << extra) - 1) != 0)
    return _core.FINITE, total < 0, mag, e0 + extra


def _nvfp4() -> BlockFormat:
    """NVFP4 (NVIDIA Blackwell): E2M1 elements, a UE4M3 scale per 16 and a float32 per tensor,
    both scales from amax (NVIDIA's NVFP4 description; TransformerEngine's recipe)."""
    return BlockFormat("float4_e2m1fn", "float8_ue4m3", 16, scale_rule="amax",
                       tensor_scale="float32")



catalog.register("mxfp8_e4m3", lambda: BlockFormat("float8_e4m3fn"))
catalog.register("mxfp8_e5m2", lambda: BlockFormat("float8_e5m2"))
catalog.register("mxfp6_e3m2", lambda: BlockFormat("float6_e3m2fn"))
catalog.register("mxfp6_e2m3", lambda: BlockFormat("float6_e2m3fn"))
catalog.register("mxfp4_e2m1", lambda: BlockFormat("float4_e2m1fn"))
catalog.register("nvfp4", _nvfp4)
catalog.register("mxint8", lambda: BlockFormat(FixedFormat(1, 6)))

