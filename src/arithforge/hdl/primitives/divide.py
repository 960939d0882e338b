"""Restoring division of a zero-extended dividend: ``floor(rem0 * 2**qbits / den)``.

The integer units' normalizations (I-BERT's ``floor(2**Rb / sum)``, ShiftGELU's
``floor(E 2**P / (1 + E))``) divide a dividend whose low ``qbits`` bits are zero; with
``rem0 < den`` the quotient has ``qbits`` bits and each step is one compare-subtract row.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Value

from ..base import wire

__all__ = ["divide_shifted"]


def divide_shifted(m: Module, name: str, rem0: Value, den: Value, qbits: int) -> Value:
    """Return ``floor(rem0 * 2**qbits / den)`` (``qbits`` bits, unsigned), combinational.

    The caller guarantees ``0 <= rem0 < den`` (so the quotient fits in ``qbits`` bits).
    """
    width = max(len(Value.cast(den)), len(Value.cast(rem0))) + 1
    rem: Value = rem0
    bits = []
    for i in range(qbits):
        t = wire(m, f"{name}_t{i}", (Value.cast(rem) << 1)[:width])
        ge = wire(m, f"{name}_q{qbits - 1 - i}", t >= den)
        rem = wire(m, f"{name}_r{i}", Mux(ge, t - den, t)[:width])
        bits.append(ge)
    return Cat(*reversed(bits)) if bits else Value.cast(0)
