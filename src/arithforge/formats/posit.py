# Ref: Posit Standard 2022 (Posit Working Group), §2 (encoding and value of a posit), §3 (rounding:
#      to nearest on the bit string, ties to even, never to zero or NaR).
"""Posit formats ``posit<n, es>``: one zero, one NaR, tapered precision, no overflow.

A code is an ``n``-bit string. Zero is all zeros and NaR ("not a real") is ``1 << (n-1)``; a
negative posit is the two's complement of its magnitude. The magnitude's bits after the sign are
the regime (a run of ``m`` equal bits ended by the opposite bit or the end of the code: ``k = m-1``
for a run of ones, ``k = -m`` for zeros), then ``es`` exponent bits ``e`` (missing bits are zero),
then the fraction ``f``; the value is ``2**(k * 2**es + e) * (1 + f)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from . import _core, catalog
from ._errors import FormatError
from .codec import _as_float_array, split_float
from .descriptors import Format, _index
from .rounding import Rounding, as_rounding

__all__ = ["PositFormat"]

# Width of the magnitude bit string formed before the one rounding step (fits an int64).
_BODY_BITS = 62


@dataclasses.dataclass(frozen=True)
class PositFormat(Format):
    """Posit format of ``n`` bits with ``es`` exponent bits (Posit Standard 2022 fixes ``es = 2``).

    Parameters
    ----------
    n : int
        Code width, 2 to 32.
    es : int
        Exponent field width, 0 to 5.

    Notes
    -----
    Encoding rounds once, on the bit string of the exact magnitude: ``rne`` is the standard's
    rounding (to nearest, ties to the even code). The other modes act on the same bit string
    (``rtz`` truncates it, ``rup``/``rdn`` round toward ±infinity, ``rna`` breaks ties away from
    zero, ``rto`` sets the last bit when inexact, ``stochastic`` adds random bits below the last
    kept bit). Every mode obeys the standard's two rules: a nonzero value never rounds to zero (it
    becomes ±minpos) and a finite value never rounds to NaR (it becomes ±maxpos). NaN and ±inf
    encode as NaR.
    """

    n: int
    es: int

    kind: ClassVar[str] = "posit"

    def __post_init__(self) -> None:
        n = _index(self.n, "n")
        es = _index(self.es, "es")
        if not 2 <= n <= 32:
            raise FormatError(f"n must be between 2 and 32, not {n!r}")
        if not 0 <= es <= 5:
            raise FormatError(f"es must be between 0 and 5, not {es!r}")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "es", es)

    def __repr__(self) -> str:
        return f"PositFormat({self.n}, {self.es})"

    # -- derived facts --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name ``posit{n}_{es}``."""
        return f"posit{self.n}_{self.es}"

    @property
    def bits(self) -> int:
        """Code width ``n``."""
        return self.n

    @property
    def useed(self) -> int:
        """Ratio between consecutive regimes, ``2**(2**es)``."""
        return 1 << (1 << self.es)

    @property
    def _scale_limit(self) -> int:
        # log2(maxpos) = -log2(minpos) = (n - 2) * 2**es
        return (self.n - 2) << self.es

    @property
    def maxpos(self) -> float:
        """Largest posit, ``useed**(n-2)``."""
        return math.ldexp(1.0, self._scale_limit)

    @property
    def minpos(self) -> float:
        """Smallest positive posit, ``useed**-(n-2)``."""
        return math.ldexp(1.0, -self._scale_limit)

    @property
    def nar_code(self) -> int:
        """Code of NaR, ``1 << (n-1)``."""
        return 1 << (self.n - 1)

    @property
    def max_finite(self) -> float:
        """Largest value (``maxpos``), under the name the generic catalog table reads."""
        return self.maxpos

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (``minpos``), under the name the generic catalog table reads."""
        return self.minpos

    @property
    def epsilon(self) -> float:
        """Distance from 1 to the next larger posit: ``2**-(n-3-es)`` when ``n >= es + 3``.

        NaN for ``posit2``, where 1 is maxpos.
        """
        one = 1 << (self.n - 2)
        return float(self.decode(np.array([one + 1], dtype=np.uint64))[0]) - 1.0

    @property
    def specials(self) -> str:
        """Special values of every posit format: NaR."""
        return "NaR"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "bits": self.bits, "kind": self.kind, "es": self.es,
            "useed": self.useed, "max": self.maxpos, "min_subnormal": self.minpos,
            "epsilon": self.epsilon, "specials": self.specials,
        }

    # -- codec ----------------------------------------------------------------------------------
    def decode(self, codes: npt.ArrayLike, *, daz: bool = False) -> npt.NDArray[np.float64]:
        """Map codes to their exact float64 values (NaR to NaN); ``daz`` has no effect."""
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise FormatError(f"codes of {self.name} must be an integer array, not dtype {c.dtype}")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= (1 << self.n)):
            bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
            raise FormatError(f"codes of {self.name} must lie in [0, 2**{self.n}), not {bad}")
        if self.n <= 16:
            return _decode_table(self)[c.astype(np.intp)]
        return _decode(self, c.astype(np.int64))

    def encode(
        self,
        values: npt.ArrayLike,
        rounding: Rounding | str = Rounding.RNE,
        *,
        saturate: bool = True,
        random_bits: npt.ArrayLike | None = None,
        random_width: int | None = None,
        ftz: bool = False,
    ) -> npt.NDArray[Any]:
        """Round real values to posit codes with one rounding on the bit string.

        Parameters
        ----------
        values : array_like of float
            float32 or float64 values (other real dtypes are converted to float64).
        rounding : Rounding or str
            ``"rne"`` (the standard's) or any other mode, applied to the magnitude's bit string.
        saturate : bool
            Must be True: posits have no overflow encoding, out-of-range values always become
            ±maxpos or ±minpos.
        random_bits, random_width
            Random integers of ``random_width`` bits, one per value, for stochastic rounding.
        ftz : bool
            Must be False: posits never round a nonzero value to zero.
        """
        if not saturate:
            raise FormatError(
                f"{self.name} has no inf to overflow to: posit encode always saturates to maxpos"
            )
        if ftz:
            raise FormatError(
                f"{self.name} never rounds a nonzero value to zero: ftz must be False"
            )
        mode = as_rounding(rounding)
        with np.errstate(invalid="ignore"):  # signalling NaNs quiet silently on widening
            x = _as_float_array(values).astype(np.float64)
        rand, rwidth = _core.check_random(mode, x.shape, random_bits, random_width)
        return _encode(self, x, mode, rand, rwidth)


@functools.lru_cache(maxsize=32)
def _decode_table(fmt: PositFormat) -> npt.NDArray[np.float64]:
    return _decode(fmt, np.arange(1 << fmt.n, dtype=np.int64))


def _decode(fmt: PositFormat, c: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    n, es = fmt.n, fmt.es
    mask = (1 << n) - 1
    neg = ((c >> (n - 1)) & 1) == 1
    mag = np.where(neg, (-c) & mask, c)
    width = n - 1  # bits after the sign
    body = mag & ((1 << width) - 1)
    ones = ((body >> (width - 1)) & 1) == 1
    # Run length of the regime: leading zeros of the body, or of its complement for a run of ones.
    inv = np.where(ones, ~body & ((1 << width) - 1), body)
    run = width - _core.bit_length(inv)
    k = np.where(ones, run - 1, -run)
    rest_bits = np.maximum(width - run - 1, 0)  # bits after the regime's terminating bit
    rest = body & ((np.int64(1) << rest_bits) - 1)
    frac_bits = rest_bits - es
    fb = np.maximum(frac_bits, 0)
    e = np.where(frac_bits >= 0, rest >> fb, rest << np.maximum(-frac_bits, 0))
    f = rest & ((np.int64(1) << fb) - 1)
    value = np.ldexp(((np.int64(1) << fb) + f).astype(np.float64),
                     ((k << es) + e - fb).astype(np.int32))
    value = np.where(neg, -value, value)
    value = np.where(c == 0, 0.0, value)
    return np.where(c == fmt.nar_code, np.nan, value)


def _encode(
    fmt: PositFormat,
    x: npt.NDArray[np.float64],
    mode: Rounding,
    rand: npt.NDArray[np.int64] | None,
    rwidth: int,
) -> npt.NDArray[Any]:
    n, es = fmt.n, fmt.es
    cls, neg, sig, exp = split_float(x)
    finite = cls == _core.FINITE
    sig = np.where(finite, sig, 1)
    bl = _core.bit_length(sig)
    top = exp + bl - 1  # floor(log2|x|)
    frac = (sig << (53 - bl)) - (np.int64(1) << 52)  # the 52 bits below the leading one
    lim = fmt._scale_limit
    above = top >= lim  # |x| >= maxpos
    below = top < -lim  # |x| < minpos
    scale = np.clip(top, -lim, max(lim - 1, -lim))
    k = scale >> es
    e = scale & ((1 << es) - 1)
    regime_len = np.where(k >= 0, k + 2, 1 - k)  # with its terminating bit
    regime = np.where(k >= 0, ((np.int64(1) << (k + 1)) - 1) << 1, 1)
    # Magnitude string of _BODY_BITS bits: regime, exponent, then the fraction rounded to odd in
    # its last bit. The final rounding keeps n-1 <= 31 bits, far above that sticky bit, so
    # compressing the fraction leaves every rounding decision unchanged.
    frac_width = _BODY_BITS - regime_len - es
    drop = 52 - frac_width
    d = np.clip(drop, 0, 52)
    sticky = (frac & ((np.int64(1) << d) - 1)) != 0
    fr = np.where(drop > 0, (frac >> d) | sticky, frac << np.clip(-drop, 0, 62))
    body = (regime << (es + frac_width)) | (e << frac_width) | fr
    q = _core.shift_right_round(body, np.full_like(body, _BODY_BITS - (n - 1)), neg, mode, rand,
                                rwidth)
    # Never zero, never NaR: the standard's two exceptions to rounding.
    maxpos_code = (1 << (n - 1)) - 1
    q = np.clip(q, 1, maxpos_code)
    q = np.where(above, maxpos_code, np.where(below, 1, q))
    code = np.where(neg, ((1 << n) - q) & ((1 << n) - 1), q)
    code = np.where(cls == _core.ZERO, 0, code)
    code = np.where((cls == _core.INF) | (cls == _core.NAN), fmt.nar_code, code)
    return code.astype(fmt.code_dtype)


for _n, _es in ((8, 0), (8, 1), (8, 2), (16, 1), (16, 2), (32, 2)):
    catalog.register(f"posit{_n}_{_es}", functools.partial(PositFormat, _n, _es))
