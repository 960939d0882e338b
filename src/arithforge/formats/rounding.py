# Ref: IEEE Std 754-2019 §4.3 (rounding-direction attributes); round to odd: Boldo & Melquiond,
#      "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to odd"
#      (IEEE Trans. Computers, 2008); IEEE P3109 interim report §4.9.3 RoundToPrecision (the
#      rounding modes TowardZero ... StochasticC and their RoundAway inequalities, as the
#      working group's machine-checked text gives them: github.com/imandra-ai/ieee-p3109
#      specification/specification.iml, commit 7b6f5ba).
"""Rounding modes shared by every format and operation."""

from __future__ import annotations

import difflib
import enum

import numpy as np

from ._errors import FormatError

__all__ = ["P3109_NAMES", "Rounding", "Saturation", "as_rounding", "as_saturation"]


class Rounding(enum.StrEnum):
    """Rounding direction applied when an exact result is not representable.

    The stochastic modes round away from zero with probability close to the discarded fraction
    ``eta`` (in ``[0, 1)``), using caller-supplied random bits so that hardware can reproduce the
    result bit for bit. With ``n`` random bits (``random_width``) holding ``R`` in ``[0, 2**n)``,
    they are the P3109 interim report's three variants (§4.9.3):

    - ``STOCHASTIC`` (the report's ``StochasticA``): away exactly when
      ``floor(eta * 2**n) + R >= 2**n`` (the first ``n`` bits below the rounding point; the rest
      are ignored). gfloat calls it ``StochasticFastest``.
    - ``STOCHASTIC_B`` (``StochasticB``): away when ``floor(eta * 2**(n+1)) + 2R + 1 >= 2**(n+1)``
      (half an ulp of the random number added: unbiased for inputs of ``n + 1`` fraction bits);
      gfloat ``StochasticFast``.
    - ``STOCHASTIC_C`` (``StochasticC``): away when ``RNE(eta * 2**n) + R >= 2**n`` (the
      fraction rounded to ``n`` bits, ties to even, first); gfloat ``Stochastic``.

    Every mode is also reachable by the report's name (:data:`P3109_NAMES`), e.g.
    ``as_rounding("NearestTiesToEven")`` or ``as_rounding("StochasticB")``.
    """

    RNE = "rne"  #: to nearest, ties to even
    RNA = "rna"  #: to nearest, ties away from zero
    RTZ = "rtz"  #: toward zero (truncate)
    RUP = "rup"  #: toward +infinity
    RDN = "rdn"  #: toward -infinity
    RTO = "rto"  #: to odd (truncate, then set the last bit if inexact)
    STOCHASTIC = "stochastic"  #: StochasticA (see above)
    STOCHASTIC_B = "stochastic_b"  #: StochasticB (see above)
    STOCHASTIC_C = "stochastic_c"  #: StochasticC (see above)

    def __str__(self) -> str:
        return self.value

    @property
    def stochastic(self) -> bool:
        """Whether the mode takes random bits (``random_bits``, ``random_width``)."""
        return self in (Rounding.STOCHASTIC, Rounding.STOCHASTIC_B, Rounding.STOCHASTIC_C)

    @property
    def hardware(self) -> bool:
        """Whether the hardware rounder (``hdl.primitives.Rounder``) implements the mode: every
        mode but StochasticB and StochasticC, which the emulator alone models."""
        return self not in (Rounding.STOCHASTIC_B, Rounding.STOCHASTIC_C)


#: The rounding modes by the names of the IEEE P3109 interim report (§4.9.3); :func:`as_rounding`
#: takes them (case-insensitive) wherever a mode is accepted.
P3109_NAMES: dict[str, Rounding] = {
    "TowardZero": Rounding.RTZ,
    "TowardNegative": Rounding.RDN,
    "TowardPositive": Rounding.RUP,
    "NearestTiesToEven": Rounding.RNE,
    "NearestTiesToAway": Rounding.RNA,
    "ToOdd": Rounding.RTO,
    "StochasticA": Rounding.STOCHASTIC,
    "StochasticB": Rounding.STOCHASTIC_B,
    "StochasticC": Rounding.STOCHASTIC_C,
}
_BY_REPORT_NAME = {k.lower(): v for k, v in P3109_NAMES.items()}


def as_rounding(value: Rounding | str) -> Rounding:
    """Convert a rounding name (``"rne"``, ``"stochastic"``, ... or a P3109 name such as
    ``"NearestTiesToEven"``, see :data:`P3109_NAMES`) to a :class:`Rounding`."""
    if isinstance(value, Rounding):
        return value
    if isinstance(value, str):
        try:
            return Rounding(value.lower())
        except ValueError:
            pass
        if value.lower() in _BY_REPORT_NAME:
            return _BY_REPORT_NAME[value.lower()]
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
