# Ref: IEEE SA P3109 Working Group, "Interim Report on Binary Floating-point Formats for Machine
#      Learning" (v3, github.com/P3109/Public): formats binaryKpP with signedness (s/u) and domain
#      (e: extended, with infinities; f: finite), the projection's saturation modes (SatFinite,
#      SatPropagate, OvfInf) and rounding modes; gfloat ``format_info_p3109`` (its names
#      ``p3109_k{K}p{P}{s|u}{e|f}``), against which every code is tested.
"""IEEE P3109 binary formats as :class:`FloatFormat` descriptors.

A P3109 format has ``K`` bits and precision ``P`` (``P - 1`` stored fraction bits), one zero
(code 0), one NaN, no -0, and subnormals:

- signed (``s``): a sign bit, ``K - P`` exponent bits, bias ``2**(K-P-1)``, NaN at 0x80 (the
  code of -0);
- unsigned (``u``): no sign bit, ``K - P + 1`` exponent bits, bias ``2**(K-P)``, NaN at the
  all-ones code.

The finite domain (``f``) has no infinities: signed it is exactly ``FloatFormat(K-P, P-1,
specials="fnuz")`` (``binary8p3sf`` is ``float8_e5m2fnuz``, ``binary8p4sf`` is
``float8_e4m3fnuz``), unsigned ``FloatFormat(K-P+1, P-1, bias=2**(K-P), specials="fn",
signed=False)``. The extended domain (``e``) puts ±inf at the largest magnitude code below the
NaN (0x7F/0xFF signed, 0xFE unsigned): ``specials="ext"`` (``binary8p3se`` is
``float8_e5m2ext``, ``binary8p4se`` ``float8_e4m3ext``, ``binary8p3ue`` ``ufloat8_e6m2ext``).

``get_format`` reads the names ``binary{K}p{P}{s|u}{e|f}``; they are aliases, not catalog entries
(a descriptor's one catalog name stays its ml_dtypes-style ``name``; :func:`p3109_name` gives the
P3109 one). The report's saturation modes are :class:`~arithforge.formats.rounding.Saturation`,
which every encode and operation takes as ``saturate=``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy.typing as npt

from ._errors import FormatError
from .descriptors import FloatFormat, Specials, _index
from .rounding import Rounding, Saturation, as_rounding, as_saturation

__all__ = ["SATURATIONS", "encode", "p3109_format", "p3109_name", "parse_name"]

#: The projection's saturation modes, as the interim report names them (see
#: :class:`~arithforge.formats.rounding.Saturation` for what each does).
SATURATIONS = tuple(s.value for s in Saturation)

_NAME = re.compile(r"^binary(?P<k>\d+)p(?P<p>\d+)(?P<s>[su])(?P<d>[ef])$")


def p3109_format(k: int, p: int, *, signed: bool = True, domain: str = "finite") -> FloatFormat:
    """The P3109 format of ``k`` bits and precision ``p`` (see the module docstring)."""
    k = _index(k, "k")
    p = _index(p, "p")
    if domain not in ("finite", "extended"):
        raise FormatError(f"domain must be 'finite' or 'extended', not {domain!r}")
    if not 1 <= p <= k - int(signed) or k < 2:
        raise FormatError(
            f"a {'signed' if signed else 'unsigned'} P3109 format of {k} bits needs precision 1 "
            f"to {k - int(signed)}, not {p}"
        )
    ext = domain == "extended"
    if signed:
        return FloatFormat(k - p, p - 1, specials=Specials.EXT if ext else Specials.FNUZ)
    if ext:
        return FloatFormat(k - p + 1, p - 1, specials=Specials.EXT, signed=False)
    return FloatFormat(k - p + 1, p - 1, bias=1 << (k - p), specials=Specials.FN, signed=False)


def parse_name(name: str) -> FloatFormat | None:
    """The format a ``binary{K}p{P}{s|u}{e|f}`` name stands for, or None for another name."""
    m = _NAME.match(name)
    if m is None:
        return None
    return p3109_format(int(m["k"]), int(m["p"]), signed=m["s"] == "s",
                        domain="extended" if m["d"] == "e" else "finite")


def p3109_name(fmt: FloatFormat) -> str | None:
    """``binary{K}p{P}{s|u}{e|f}`` if ``fmt`` is a P3109 format, else None."""
    k, p = fmt.bits, fmt.precision
    domain = "extended" if fmt.specials is Specials.EXT else "finite"
    try:
        same = p3109_format(k, p, signed=fmt.signed, domain=domain) == fmt
    except FormatError:
        return None
    if not same:
        return None
    return f"binary{k}p{p}{'s' if fmt.signed else 'u'}{domain[0]}"


def encode(
    fmt: FloatFormat, values: npt.ArrayLike, rounding: Rounding | str = Rounding.RNE, *,
    saturation: Saturation | str = Saturation.OVF_INF, **kw: Any,
) -> npt.NDArray[Any]:
    """Project real values onto a P3109 format with one of the report's saturation modes.

    ``rounding`` is any of the library's modes (the report's TowardZero, TowardPositive,
    TowardNegative, NearestTiesToEven, NearestTiesToAway, ToOdd and stochastic rounding are
    ``rtz``, ``rup``, ``rdn``, ``rne``, ``rna``, ``rto``, ``stochastic``); ``saturation`` one of
    :data:`SATURATIONS`. It is ``fmt.encode(values, rounding, saturate=saturation)`` for a P3109
    ``fmt``; other keywords go to :meth:`FloatFormat.encode`.
    """
    if p3109_name(fmt) is None:
        raise FormatError(f"{fmt.name} is not a P3109 format: build one with p3109_format")
    if str(saturation) not in SATURATIONS:  # the report's names only (not True/False)
        raise FormatError(
            f"saturation must be one of {', '.join(SATURATIONS)}, not {saturation!r}"
        )
    return fmt.encode(values, as_rounding(rounding), saturate=as_saturation(saturation), **kw)
