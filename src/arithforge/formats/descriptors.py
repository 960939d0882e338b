# Ref: IEEE Std 754-2019 §3.3-3.4 (binary interchange formats); OCP 8-bit Floating Point
#      Specification (OFP8) v1.0 §4; ml_dtypes README (format naming).
"""Format descriptors: frozen, validated dataclasses from which every fact is derived.

A descriptor names a set of codes (unsigned integers of ``bits`` bits) and the value of each.
``encode`` maps real values to codes with one rounding; ``decode`` maps codes to float64 exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ._errors import FormatError
from .rounding import Rounding, Saturation, as_rounding, as_saturation

__all__ = ["Format", "FloatFormat", "IntFormat", "FixedFormat", "Specials"]


class Specials(enum.StrEnum):
    """Where a float format keeps its special values.

    ``IEEE``: infinities at exponent all-ones with zero fraction, NaNs at the other fractions.
    ``FN``: finite only; NaN only at S.1…1 (OCP E4M3). ``FNUZ``: finite only, unsigned zero; the
    code of −0 is the single NaN and the default bias is one larger. ``NONE``: every code finite.
    ``EXT``: the IEEE P3109 extended domain: unsigned zero, one NaN (the −0 code; all-ones when
    unsigned) and ±inf at the largest magnitude code below it; the default bias is one larger.
    """

    IEEE = "ieee"
    FN = "fn"
    FNUZ = "fnuz"
    NONE = "none"
    EXT = "ext"

    def __str__(self) -> str:
        return self.value


def _index(value: Any, what: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None


def code_dtype(bits: int) -> np.dtype[Any]:
    """Smallest unsigned numpy dtype that holds ``bits``-bit codes."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.iinfo(dt).bits:
            return np.dtype(dt)
    raise FormatError(f"codes must be at most 64 bits wide, not {bits}")


class Format:
    """Common interface of every format descriptor."""

    kind: ClassVar[str] = "format"

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def bits(self) -> int:
        raise NotImplementedError

    @property
    def code_dtype(self) -> np.dtype[Any]:
        """Numpy dtype of this format's codes."""
        return code_dtype(self.bits)

    def all_codes(self) -> npt.NDArray[Any]:
        """Every code of the format in increasing code order (formats of at most 24 bits)."""
        if self.bits > 24:
            raise FormatError(
                f"all_codes needs a format of at most 24 bits, not {self.name} ({self.bits} bits)"
            )
        return np.arange(1 << self.bits, dtype=np.uint64).astype(self.code_dtype)

    def encode(
        self,
        values: npt.ArrayLike,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool = False,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
    ) -> npt.NDArray[Any]:
        raise NotImplementedError

    def decode(self, codes: npt.ArrayLike, *, daz: bool = False) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts for the catalog table: name, bits and whatever else the format defines."""
        return {"name": self.name, "bits": self.bits, "kind": self.kind}


@dataclasses.dataclass(frozen=True)
class FloatFormat(Format):
    """Binary floating-point format with ``exp_bits`` exponent and ``man_bits`` stored bits.

    Parameters
    ----------
    exp_bits : int
        Exponent field width, 1 to 11.
    man_bits : int
        Stored mantissa (fraction) bits, 0 to 52.
    bias : int, optional
        Exponent bias; default ``2**(exp_bits-1) - 1``, one more for ``"fnuz"`` and ``"ext"``.
    specials : Specials or str
        Special-value policy: ``"ieee"``, ``"fn"``, ``"fnuz"``, ``"none"`` or ``"ext"``.
    subnormals : bool
        Whether exponent field 0 with a non-zero fraction encodes subnormals. When False those codes
        decode as zero (of their sign) and results below the smallest normal flush to zero.
    signed : bool
        Whether the format has a sign bit (``float8_e8m0fnu`` has none).
    zero : bool
        Whether exponent field 0 encodes zero. When False (``float8_e8m0fnu``) it is an ordinary
        binade, there is no zero, and results below the smallest value clamp to it.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    specials: Specials = Specials.IEEE
    subnormals: bool = True
    signed: bool = True
    zero: bool = True

    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        exp_bits = _index(self.exp_bits, "exp_bits")
        man_bits = _index(self.man_bits, "man_bits")
        if not 1 <= exp_bits <= 11:
            raise FormatError(f"exp_bits must be between 1 and 11, not {exp_bits!r}")
        if not 0 <= man_bits <= 52:
            raise FormatError(f"man_bits must be between 0 and 52, not {man_bits!r}")
        try:
            specials = Specials(self.specials)
        except ValueError:
            raise FormatError(
                f"specials must be one of ieee, fn, fnuz, none, ext, not {self.specials!r}"
            ) from None
        set_(self, "exp_bits", exp_bits)
        set_(self, "man_bits", man_bits)
        set_(self, "specials", specials)
        for flag in ("subnormals", "signed", "zero"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, not {getattr(self, flag)!r}")
        if self.bias is None:
            default = (1 << (exp_bits - 1)) - 1 + (specials in (Specials.FNUZ, Specials.EXT))
            set_(self, "bias", default)
        else:
            set_(self, "bias", _index(self.bias, "bias"))
        if specials is Specials.IEEE and man_bits == 0:
            raise FormatError("specials='ieee' needs man_bits >= 1 to tell inf from NaN, not 0")
        if specials is Specials.IEEE and exp_bits == 1:
            raise FormatError("specials='ieee' needs exp_bits >= 2 to leave finite codes, not 1")
        if specials is Specials.EXT and exp_bits + man_bits + int(self.signed) < 2:
            raise FormatError("specials='ext' needs at least 2 bits for zero, inf and NaN")
        if specials is Specials.FNUZ and not self.signed:
            raise FormatError(
                "specials='fnuz' keeps its NaN at the -0 code, so signed must be True"
            )
        if not self.zero and self.subnormals:
            raise FormatError(
                "zero=False makes exponent field 0 a normal binade: set subnormals=False"
            )
        if self.emax < self.emin:
            raise FormatError(f"{self.name} has no finite normal numbers; widen exp_bits")
        if self.emin - self.man_bits < -1074 or self.emax > 1023:
            raise FormatError(
                "bias must keep every value of the format inside float64's range, "
                f"not {self.bias!r}"
            )

    # -- naming -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name in ml_dtypes spelling (``float8_e4m3fn``), with any non-default knob appended."""
        # ml_dtypes spells the NaN-free sub-byte formats "fn" (float4_e2m1fn): follow it there and
        # tell the rarer combinations apart with a longer suffix.
        sub_byte = self.bits <= 6
        suffix = {
            Specials.IEEE: "", Specials.FNUZ: "fnuz", Specials.EXT: "ext",
            Specials.FN: "fn_nan" if sub_byte else "fn",
            Specials.NONE: "fn" if sub_byte else "fn_nonan",
        }
        base = f"float{self.bits}_e{self.exp_bits}m{self.man_bits}"
        tail = suffix[self.specials]
        # ml_dtypes' "fnu" (float8_e8m0fnu) is unsigned, NaN at all-ones, with no zero and no
        # subnormals; every other unsigned format is prefixed "u" and a missing zero is "_nozero".
        fnu = (not self.signed and self.specials is Specials.FN and not self.zero
               and tail == "fn")
        prefix = "" if self.signed or fnu else "u"
        if fnu:
            tail += "u"
        ieee_names = {
            (5, 10): "float16", (8, 7): "bfloat16", (8, 23): "float32", (11, 52): "float64",
        }
        default_bias = (1 << (self.exp_bits - 1)) - 1 + (
            self.specials in (Specials.FNUZ, Specials.EXT))
        plain = (
            self.specials is Specials.IEEE and self.signed and self.subnormals and self.zero
            and self.bias == default_bias
        )
        if plain and (self.exp_bits, self.man_bits) in ieee_names:
            return ieee_names[self.exp_bits, self.man_bits]
        # NVIDIA's UE4M3 (PTX ISA ``.ue4m3``, CUTLASS ``float_ue4m3_t``; NVFP4's block scale):
        # E4M3 without its sign, 7 bits stored in a byte whose top bit is 0, NaN at 0x7F.
        if (not self.signed and self.specials is Specials.FN and self.subnormals and self.zero
                and (self.exp_bits, self.man_bits) == (4, 3) and self.bias == default_bias):
            return "float8_ue4m3"
        if self.bias != default_bias:
            base = f"float{self.bits}_e{self.exp_bits}m{self.man_bits}b{self.bias}"
        name = prefix + base + tail
        if not self.subnormals and self.zero:
            name += "_nosub"
        if not self.zero and not fnu:
            name += "_nozero"
        return name

    def __repr__(self) -> str:
        args = [f"{self.exp_bits}", f"{self.man_bits}"]
        default_bias = (1 << (self.exp_bits - 1)) - 1 + (
            self.specials in (Specials.FNUZ, Specials.EXT))
        if self.bias != default_bias:
            args.append(f"bias={self.bias}")
        if self.specials is not Specials.IEEE:
            args.append(f"specials={self.specials.value!r}")
        for flag in ("subnormals", "signed", "zero"):
            if not getattr(self, flag):
                args.append(f"{flag}=False")
        return f"FloatFormat({', '.join(args)})"

    # -- derived facts --------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Total code width."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def precision(self) -> int:
        """Significand precision p, including the hidden bit."""
        return self.man_bits + 1

    @property
    def _bias(self) -> int:
        assert self.bias is not None
        return self.bias

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return (1 if self.zero else 0) - self._bias

    @property
    def mag_bits(self) -> int:
        """Width of the magnitude (code without its sign bit)."""
        return self.exp_bits + self.man_bits

    @property
    def max_mag(self) -> int:
        """Magnitude code of the largest finite value."""
        allones = (1 << self.mag_bits) - 1
        if self.specials is Specials.IEEE:
            return allones - (1 << self.man_bits)
        if self.specials is Specials.FN:
            return allones - 1
        if self.specials is Specials.EXT:
            return allones - 1 - int(not self.signed)
        return allones

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return (self.max_mag >> self.man_bits) - self._bias

    @property
    def has_inf(self) -> bool:
        return self.specials in (Specials.IEEE, Specials.EXT)

    @property
    def ties_by_code(self) -> bool:
        """Whether ties to even go to the even *code*, not the even significand: the IEEE
        P3109 rule at precision 1 (every significand is 1), for the P3109 code layouts (fnuz and
        ext signed, fn and ext unsigned) without fraction bits."""
        return self.man_bits == 0 and self.zero and self.p3109_layout

    @property
    def p3109_layout(self) -> bool:
        """Whether the specials sit where IEEE P3109 puts them (fnuz and ext signed, fn and ext
        unsigned): the formats whose rounding follows the P3109 interim report where it differs
        from other formats (ties and ToOdd at precision 1, ToOdd overflow)."""
        return self.specials in (Specials.FNUZ, Specials.EXT) or (
            self.specials is Specials.FN and not self.signed)

    @property
    def has_nan(self) -> bool:
        return self.specials is not Specials.NONE

    @property
    def sign_mask(self) -> int:
        return (1 << (self.bits - 1)) if self.signed else 0

    @property
    def nan_code(self) -> int | None:
        """Canonical (positive, quiet) NaN code, or None."""
        if self.specials is Specials.IEEE:
            return ((1 << self.exp_bits) - 1) << self.man_bits | (1 << (self.man_bits - 1))
        if self.specials is Specials.FN:
            return (1 << self.mag_bits) - 1
        if self.specials is Specials.FNUZ or (self.specials is Specials.EXT and self.signed):
            return 1 << self.mag_bits
        if self.specials is Specials.EXT:
            return (1 << self.mag_bits) - 1
        return None

    @property
    def inf_code(self) -> int | None:
        """Code of +inf, or None."""
        if self.specials is Specials.IEEE:
            return ((1 << self.exp_bits) - 1) << self.man_bits
        if self.specials is Specials.EXT:
            return self.max_mag + 1
        return None

    def is_nan_code(self, codes: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each code is a NaN."""
        c = np.asarray(codes).astype(np.uint64)
        mag = c & np.uint64((1 << self.mag_bits) - 1)
        if self.specials is Specials.IEEE:
            return mag > np.uint64(self.inf_code or 0)
        if self.specials is Specials.FN:
            return mag == np.uint64((1 << self.mag_bits) - 1)
        if self.specials is Specials.FNUZ or (self.specials is Specials.EXT and self.signed):
            return c == np.uint64(1 << self.mag_bits)
        if self.specials is Specials.EXT:
            return mag == np.uint64((1 << self.mag_bits) - 1)
        return np.zeros(c.shape, dtype=bool)

    @property
    def max_finite(self) -> float:
        """Largest finite value."""
        return self._value_of_mag(self.max_mag)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value."""
        return float(np.ldexp(1.0, self.emin))

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal when there are no subnormals)."""
        if not self.subnormals:
            return self.min_normal
        return float(np.ldexp(1.0, self.emin - self.man_bits))

    @property
    def epsilon(self) -> float:
        """Distance from 1.0 to the next larger value, ``2**-man_bits``."""
        return float(np.ldexp(1.0, -self.man_bits))

    def _value_of_mag(self, mag: int) -> float:
        f, t = mag >> self.man_bits, mag & ((1 << self.man_bits) - 1)
        if f == 0 and self.zero:
            return float(np.ldexp(float(t), self.emin - self.man_bits)) if self.subnormals else 0.0
        return float(np.ldexp(float((1 << self.man_bits) | t), f - self._bias - self.man_bits))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "bits": self.bits, "kind": self.kind,
            "exp_bits": self.exp_bits, "man_bits": self.man_bits, "bias": self.bias,
            "max": self.max_finite, "min_normal": self.min_normal,
            "min_subnormal": self.min_subnormal, "epsilon": self.epsilon,
            "specials": self.specials.value + ("" if self.signed else ", unsigned")
            + ("" if self.zero else ", no zero"),
        }

    # -- codec ----------------------------------------------------------------------------------
    def encode(
        self,
        values: npt.ArrayLike,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool | Saturation | str = False,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
        device: str = "cpu",
    ) -> npt.NDArray[Any]:
        """Round real values to codes with one rounding.

        Parameters
        ----------
        values : array_like of float
            float32 or float64 values (other real dtypes are converted to float64).
        rounding : Rounding or str
        saturate : bool or Saturation
            Clamp overflow (and ±inf) to ±max finite instead of inf/NaN; NaN stays NaN. The
            IEEE P3109 names are taken too: ``"SatFinite"`` (True), ``"OvfInf"`` (False) and
            ``"SatPropagate"`` (clamp finite overflow only; infinities stay infinite).
        random_bits, random_width
            Random integers of ``random_width`` bits, one per value, for stochastic rounding.
        ftz : bool
            Flush results below the smallest normal to zero.
        device : str
            ``"cpu"`` (numpy), or a torch device (``"cuda"``): then ``values`` may be a tensor
            and the codes come back as an integer tensor on that device, bit-identical (see
            ``formats/_torch_backend.py``).
        """
        from .codec import encode_float

        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            return tb.encode_float(
                self, values, as_rounding(rounding), saturate=as_saturation(saturate),
                random_bits=random_bits, random_width=random_width, ftz=ftz, device=device)

        return encode_float(
            self, values, rounding, saturate=as_saturation(saturate), random_bits=random_bits,
            random_width=random_width, ftz=ftz,
        )

    def decode(self, codes: npt.ArrayLike, *, daz: bool = False,
               device: str = "cpu") -> npt.NDArray[np.float64]:
        """Map codes to their exact float64 values (``daz`` reads subnormals as zero).

        With a torch ``device`` (``"cuda"``) the codes may be a tensor and the values come back
        as a float64 tensor on that device.
        """
        from .codec import decode_float

        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            return tb.decode_float(self, codes, daz=daz, device=device)
        return decode_float(self, codes, daz=daz)


@dataclasses.dataclass(frozen=True)
class FixedFormat(Format):
    """Two's-complement (or unsigned) fixed-point format: code ``q`` means ``q * 2**-frac_bits``.

    Parameters
    ----------
    int_bits : int
        Integer bits, not counting the sign bit.
    frac_bits : int
        Fraction bits (may be negative for coarse steps).
    signed : bool
    """

    int_bits: int
    frac_bits: int
    signed: bool = True

    kind: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "int_bits", _index(self.int_bits, "int_bits"))
        object.__setattr__(self, "frac_bits", _index(self.frac_bits, "frac_bits"))
        if not isinstance(self.signed, bool):
            raise TypeError(f"signed must be a bool, not {self.signed!r}")
        if not 1 <= self.bits <= 62:
            raise FormatError(f"a fixed-point format must have 1 to 62 bits, not {self.bits}")
        if self.int_bits + self.frac_bits < 0:
            raise FormatError("int_bits + frac_bits must be at least 0")

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}fixed{self.bits}_i{self.int_bits}f{self.frac_bits}"

    @property
    def bits(self) -> int:
        return int(self.signed) + self.int_bits + self.frac_bits

    @property
    def scale_exp(self) -> int:
        """Exponent of the least significant bit."""
        return -self.frac_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max_finite(self) -> float:
        return float(np.ldexp(float(self.max_int), self.scale_exp))

    @property
    def min_subnormal(self) -> float:
        return float(np.ldexp(1.0, self.scale_exp))

    @property
    def epsilon(self) -> float:
        return self.min_subnormal

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "bits": self.bits, "kind": self.kind, "max": self.max_finite,
            "min_subnormal": self.min_subnormal, "epsilon": self.epsilon, "specials": "none",
        }

    def to_int(self, codes: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Signed integer meaning of each code."""
        c = np.asarray(codes).astype(np.int64) & ((1 << self.bits) - 1)
        if self.signed:
            c = np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        return c

    def from_int(self, ints: npt.ArrayLike) -> npt.NDArray[Any]:
        """Codes of in-range signed integers."""
        i = np.asarray(ints, dtype=np.int64)
        return (i & ((1 << self.bits) - 1)).astype(self.code_dtype)

    def encode(
        self,
        values: npt.ArrayLike,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool = True,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
        device: str = "cpu",
    ) -> npt.NDArray[Any]:
        """Round values to the fixed-point grid; out-of-range values always saturate.

        Fixed-point and integer formats have no overflow encoding, so ``saturate`` is accepted for
        interface symmetry and cannot be turned off. NaN has no code and is an error; ±inf clamps.
        """
        from .codec import encode_fixed

        if not saturate:
            raise FormatError(
                f"{self.name} has no inf or NaN to overflow to: fixed-point encode always saturates"
            )
        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            return tb.encode_fixed(self, values, as_rounding(rounding),
                                   random_bits=random_bits, random_width=random_width,
                                   device=device)
        return encode_fixed(self, values, rounding, random_bits=random_bits,
                            random_width=random_width)

    def decode(self, codes: npt.ArrayLike, *, daz: bool = False,
               device: str = "cpu") -> npt.NDArray[np.float64]:
        """Exact float64 value of each code (a float64 tensor on a torch ``device``)."""
        if device != "cpu":
            from ._device import torch_backend

            tb = torch_backend(device)
            return tb.decode_fixed(self, codes, device=device)
        return np.ldexp(self.to_int(codes).astype(np.float64), self.scale_exp)


@dataclasses.dataclass(frozen=True)
class IntFormat(FixedFormat):
    """Integer format of ``bits`` bits: ``IntFormat(8)`` is int8, ``IntFormat(4, False)`` uint4.

    Codes are the two's-complement bit patterns as unsigned integers.
    """

    int_bits: int = dataclasses.field(init=False, repr=False)
    frac_bits: int = dataclasses.field(init=False, repr=False)
    width: int = 8
    signed: bool = True

    kind: ClassVar[str] = "int"

    def __init__(self, bits: int, signed: bool = True) -> None:
        bits = _index(bits, "bits")
        if not 1 + int(signed) <= bits <= 62:
            raise FormatError(
                f"an integer format must have {1 + int(signed)} to 62 bits, not {bits}"
            )
        object.__setattr__(self, "width", bits)
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "int_bits", bits - int(signed))
        object.__setattr__(self, "frac_bits", 0)
        self.__post_init__()

    @property
    def name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.width}"

    def __repr__(self) -> str:
        return f"IntFormat({self.width})" if self.signed else f"IntFormat({self.width}, False)"
