# Ref: IEEE Std 754-2019 §3.4 (binary interchange encoding), §7.4-7.5 (overflow, underflow);
#      OCP 8-bit Floating Point Specification (OFP8) v1.0 §4 (FN/FNUZ specials, saturation).
"""Unpacking float codes into fields and packing rounded results, for every format policy.

Both follow ``arithforge.formats._core`` (``unpack_float`` and the tail of ``round_float``) case
by case, so that the hardware agrees with the emulator on every special value.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Mux, Value

from ..formats import FloatFormat, Rounding, Saturation, Specials
from ..formats.rounding import as_saturation

__all__ = ["unpack", "pack", "signed_value"]


def signed_value(v: Value) -> Value:
    """``v`` as a signed value of the same numeric value."""
    v = Value.cast(v)
    return v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()


def unpack(fmt: FloatFormat, code: Value, *, daz: bool) -> SimpleNamespace:
    """Split a code into class flags, sign, significand and exponent.

    Returns ``nan``, ``inf``, ``zero`` (class flags), ``neg``, ``sig`` (``precision`` bits, 0 for
    zero, inf and NaN) and ``exp``: the signed exponent of the significand's leading position as
    the exponent field gives it (``emin`` for subnormals and zeros), so the value is
    ``sig * 2**(exp - man_bits)``. ``daz`` reads subnormals as zero (of their sign).
    """
    m, e = fmt.man_bits, fmt.exp_bits
    man = code[:m] if m else Const(0, 0)
    field = code[m:m + e]
    mag = code[:fmt.mag_bits]
    neg = code[fmt.bits - 1] if fmt.signed else Const(0, 1)
    ones = (1 << e) - 1
    if fmt.specials is Specials.IEEE:
        top = field == ones
        nan = top & man.any()
        inf = top & ~man.any()
    elif fmt.specials is Specials.FN:
        nan = mag == (1 << fmt.mag_bits) - 1
        inf = Const(0, 1)
    elif fmt.specials is Specials.FNUZ:
        nan = code == (1 << fmt.mag_bits)
        inf = Const(0, 1)
    elif fmt.specials is Specials.EXT:
        assert fmt.inf_code is not None
        assert fmt.nan_code is not None
        nan = (code if fmt.signed else mag) == fmt.nan_code
        inf = mag == fmt.inf_code
    else:
        nan = inf = Const(0, 1)
    if fmt.zero:
        sub = ~field.any()
        hidden = ~sub
        eff = Mux(sub, 1, field)
        if daz or not fmt.subnormals:
            man = Mux(sub, 0, man) if m else man
    else:
        hidden = Const(1, 1)
        eff = field
    special = nan | inf
    raw = Cat(man, hidden)
    sig = Mux(special, 0, raw)
    zero = ~special & ~raw.any()
    exp = eff - fmt._bias
    return SimpleNamespace(nan=nan, inf=inf, zero=zero, neg=neg, sig=sig, exp=exp)


def pack(fmt: FloatFormat, rounding: Rounding, *, saturate: bool | Saturation, nan: Value,
         inf: Value,
         zero: Value, finite_zero: Value, below: Value, neg: Value, mag: Value) -> Value:
    """Assemble the result code from the rounded magnitude and the class flags.

    ``mag`` is the signed magnitude code ``((e - emin) << man_bits) + q`` (less ``2**man_bits``
    for formats without zero) of the rounded finite value, before any overflow check; ``zero``
    is the exact-zero class, ``finite_zero`` a finite value whose significand rounded to nothing,
    ``below`` an underflow the caller detected (flushed, or rounded to zero). ``neg`` is the sign
    the emulator gives each class (the NaN code carries it where the format keeps a sign).
    ``saturate`` is a bool or a :class:`~arithforge.formats.Saturation` (IEEE P3109's
    ``SatFinite``, ``SatPropagate``, ``OvfInf``), as ``formats._core.round_float`` takes it.
    """
    sat = as_saturation(saturate)
    saturate = sat is not Saturation.OVF_INF
    keep_inf = sat is Saturation.SAT_PROPAGATE  # infinities are not clamped
    finite = ~nan & ~inf & ~zero & ~finite_zero
    max_mag = fmt.max_mag
    over = finite & (mag > max_mag)
    if saturate or fmt.specials is Specials.NONE:
        to_inf = Const(0, 1)
    elif rounding in (Rounding.RNE, Rounding.RNA) or rounding.stochastic:
        to_inf = over
    elif rounding is Rounding.RTO and fmt.p3109_layout:
        to_inf = over  # P3109 §4.9.4: ToOdd overflows like the nearest modes (as _core does)
    elif rounding is Rounding.RUP:
        to_inf = over & ~neg
    elif rounding is Rounding.RDN:
        to_inf = over & neg
    else:
        to_inf = Const(0, 1)
    out = Mux(over, max_mag, mag)
    is_zero = zero | finite_zero | ((below & finite) if fmt.zero else Const(0, 1))
    if not fmt.zero:
        out = Mux(below & finite, 0, out)
    out = Mux(is_zero, 0, out)
    inf_like = to_inf | inf
    if saturate and not keep_inf:
        out = Mux(inf, max_mag, out)
        inf_like = Const(0, 1)
    is_nan = nan
    if fmt.has_inf:
        assert fmt.inf_code is not None
        out = Mux(inf_like, fmt.inf_code, out)
    elif fmt.has_nan:
        is_nan = is_nan | inf_like
    else:
        # No inf and no NaN: the emulator refuses NaN results; the hardware gives the largest
        # magnitude for them (not part of the contract).
        out = Mux(inf_like | nan, max_mag, out)
    mag_bits = out[:fmt.mag_bits]
    if fmt.signed:
        sign = neg
        if fmt.specials in (Specials.FNUZ, Specials.EXT):
            sign = neg & mag_bits.any()  # -0 is the NaN code: zero is unsigned
        code = Cat(mag_bits, sign)
    else:
        code = mag_bits
        is_nan = is_nan | (neg & ~is_zero)  # negative values have no code
    if not fmt.zero:
        is_nan = is_nan | zero  # zero has no code
    if fmt.has_nan:
        assert fmt.nan_code is not None
        if fmt.specials in (Specials.FNUZ, Specials.EXT) or not fmt.signed:
            nan_code: Value = Const(fmt.nan_code, fmt.bits)
        else:
            nan_code = Cat(Const(fmt.nan_code, fmt.bits - 1), neg)
        code = Mux(is_nan, nan_code, code)
    return code
