# Ref: IEEE Std 754-2019 §4.3 (rounding-direction attributes); round to odd: Boldo & Melquiond,
#      "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to odd"
#      (IEEE Trans. Computers, 2008).
"""Rounding modes shared by every format and operation."""

from __future__ import annotations

import difflib
import enum

import numpy as np

from ._errors import FormatError

__all__ = ["Rounding", "Saturation", "as_rounding", "as_saturation"]


class Rounding(enum.StrEnum):
    """Rounding direction applied when an exact result is not representable.

    ``STOCHASTIC`` rounds up with probability equal to the discarded fraction, using caller-supplied
    random bits so that hardware can reproduce the result bit for bit: with ``r`` random bits
    ``R`` and ``t`` the first ``r`` bits below the rounding point (the rest are ignored), the result
    is rounded up exactly when ``t + R >= 2**r``.
    """

    RNE = "rne"  #: to nearest, ties to even
    RNA = "rna"  #: to nearest, ties away from zero
    RTZ = "rtz"  #: toward zero (truncate)
    RUP = "rup"  #: toward +infinity
    RDN = "rdn"  #: toward -infinity
    RTO = "rto"  #: to odd (truncate, then set the last bit if inexact)
    STOCHASTIC = "stochastic"

    def __str__(self) -> str:
        return self.value


def as_rounding(value: Rounding | str) -> Rounding:
    """Convert a rounding name (``"rne"``, ``"stochastic"``, ...) to a :class:`Rounding`."""
    if isinstance(value, Rounding):
        return value
    if isinstance(value, str):
        try:
            return Rounding(value.lower())
        except ValueError:
            pass
    names = [r.value for r in Rounding]
    close = difflib.get_close_matches(str(value).lower(), names, n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise FormatError(f"rounding must be one of {', '.join(names)}, not {value!r}{hint}")


class Saturation(enum.StrEnum):
    """What a result beyond the largest finite value, and an infinite one, become.

    The names are those of the IEEE P3109 interim report's projection (v3, and the working
    group's ``Exemplars/Configurations.yaml``, github.com/P3109/Public); every encode and
    operation takes them as ``saturate=`` (``True`` is ``SatFinite``, ``False`` ``OvfInf``):

    - ``SatFinite``: a finite overflow and an infinity both become ±max;
    - ``SatPropagate``: a finite overflow becomes ±max, an infinity stays infinite (NaN where
      the format has no infinity);
    - ``OvfInf``: both become ±inf (NaN where the format has no infinity), except where the
      rounding direction points back to the finite range (``rtz``; ``rdn`` of a positive,
      ``rup`` of a negative overflow give ±max, IEEE Std 754-2019 §7.4).
    """

    SAT_FINITE = "SatFinite"
    SAT_PROPAGATE = "SatPropagate"
    OVF_INF = "OvfInf"

    def __str__(self) -> str:
        return self.value


def as_saturation(value: Saturation | str | bool) -> Saturation:
    """Convert ``saturate=`` (a bool or a :class:`Saturation` name) to a :class:`Saturation`."""
    if isinstance(value, Saturation):
        return value
    if isinstance(value, bool | np.bool_ | int | np.integer) and value in (0, 1):
        return Saturation.SAT_FINITE if value else Saturation.OVF_INF
    if isinstance(value, str):
        for s in Saturation:
            if value.lower() == s.value.lower():
                return s
    names = ", ".join(s.value for s in Saturation)
    raise FormatError(f"saturate must be true, false or one of {names}, not {value!r}")
