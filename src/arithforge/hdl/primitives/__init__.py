"""Building blocks shared by the datapaths, each a ``wiring.Component`` tested on its own.

- :class:`LeadingZeroCount`: leading zeros of a word, optionally of its top ``window`` bits only.
- :class:`AlignShifter`: right shift with a sticky bit (the OR of every bit shifted out).
- :class:`NormalizeShifter`: left shift into a wider word.
- :class:`Rounder`: the increment of every rounding mode of the emulator, stochastic included.
"""

from .lzc import LeadingZeroCount
from .rounder import Rounder
from .shift import AlignShifter, NormalizeShifter

__all__ = ["AlignShifter", "LeadingZeroCount", "NormalizeShifter", "Rounder"]
