# Ref: the fast Walsh-Hadamard transform (Sylvester order, log2(n) butterfly stages); see
#      arithforge.datapaths.hadamard for its use before 4-bit quantization (QuaRot, HALO, the
#      MXFP4/NVFP4 training recipes).
"""The fast Walsh-Hadamard transform unit: the hardware of
:class:`~arithforge.datapaths.hadamard.HadamardUnit`."""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Module, Signal, Value

from ..datapaths.hadamard import HadamardUnit, cut_order
from .base import Datapath, Pipeline, choose_cuts
from .fma import Adder

__all__ = ["HadamardTransform"]


class HadamardTransform(HadamardUnit, Datapath):
    """``y = H_n x`` of ``n`` two's-complement codes, exact, then an optional rounded right
    shift: the hardware of :class:`~arithforge.datapaths.hadamard.HadamardUnit`.

    Members
    -------
    i : In(Signature(valid, x))
        ``x``: ``n`` codes of ``bits`` bits, lane 0 in the low bits.
    o : Out(Signature(valid, result))
        ``result``: ``n`` codes of ``bits + log2(n) - shift`` bits, lane 0 in the low bits.
    """

    def _adder(self, m: Module, name: str, a: Value, b: Value) -> Signal:
        """``round(a + b)`` in the lane format: the ``add`` datapath's adder, its ports renamed
        ``<name>__i__*`` (flattened ``i__*`` names would read as this unit's ports to the
        lint)."""
        fmt = self._fmt
        assert fmt is not None  # float lanes only
        adder = Adder(fmt, fmt, fmt)
        members = adder.signature.members.create(path=(name,))
        adder.i, adder.o = members["i"], members["o"]
        m.submodules[name] = adder
        out = Signal(fmt.bits, name=f"{name}_sum")
        m.d.comb += [adder.i.a.eq(a), adder.i.b.eq(b), out.eq(adder.o.result)]
        return out

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(cut_order(self._levels), self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        b, n = self._bits, self._n
        flt = self._fmt is not None
        lanes: list[Value] = [self.i.x[j * b:(j + 1) * b] if flt
                              else self.i.x[j * b:(j + 1) * b].as_signed() for j in range(n)]
        sign = 1 << (b - 1)
        h = 1
        for s in range(self._levels):
            # Stage s pairs lanes j and j + h (h = 2**s) of each block of 2h: (a + b, a - b).
            # Integers: one bit wider than the inputs, so the sums are exact. Floats: two
            # adders, the second with b's sign bit inverted, each rounded to the format.
            nxt: list[Value] = list(lanes)
            for base in range(0, n, 2 * h):
                for j in range(base, base + h):
                    if flt:
                        nxt[j] = self._adder(m, f"s{s}_add{j}", lanes[j], lanes[j + h])
                        nxt[j + h] = self._adder(m, f"s{s}_sub{j}", lanes[j],
                                                 lanes[j + h] ^ sign)
                    else:
                        nxt[j] = lanes[j] + lanes[j + h]
                        nxt[j + h] = lanes[j] - lanes[j + h]
            regs = pipe.stage(f"stage{s}", **{f"v{j}": v for j, v in enumerate(nxt)})
            lanes = [getattr(regs, f"v{j}") for j in range(n)]
            h *= 2
        if self._shift and not flt:
            k = self._shift
            out = []
            for v in lanes:
                q = v >> k  # arithmetic shift: floor
                if self._rounding == "rne":
                    # Round bit v[k-1]; round up when it is set and the bits below it (sticky)
                    # or the kept LSB (a tie to even) are.
                    sticky = v[:k - 1].any() if k > 1 else 0
                    q = q + (v[k - 1] & (sticky | q[0]))
                out.append(q)
            lanes = out
        w = self.out_bits
        self._finish(m, pipe, Cat(*(v[:w] for v in lanes)), extra)
        return m
