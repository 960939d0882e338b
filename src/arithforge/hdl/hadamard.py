# Ref: the fast Walsh-Hadamard transform (Sylvester order, log2(n) butterfly stages); see
#      arithforge.datapaths.hadamard for its use before 4-bit quantization (QuaRot, HALO, the
#      MXFP4/NVFP4 training recipes).
"""The fast Walsh-Hadamard transform unit: the hardware of
:class:`~arithforge.datapaths.hadamard.HadamardUnit`."""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Module, Value

from ..datapaths.hadamard import HadamardUnit, cut_order
from .base import Datapath, Pipeline, choose_cuts

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

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(cut_order(self._levels), self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        b, n = self._bits, self._n
        lanes: list[Value] = [self.i.x[j * b:(j + 1) * b].as_signed() for j in range(n)]
        h = 1
        for s in range(self._levels):
            # Stage s pairs lanes j and j + h (h = 2**s) of each block of 2h: (a + b, a - b), one
            # bit wider than its inputs, so the sums are exact.
            nxt: list[Value] = list(lanes)
            for base in range(0, n, 2 * h):
                for j in range(base, base + h):
                    nxt[j] = lanes[j] + lanes[j + h]
                    nxt[j + h] = lanes[j] - lanes[j + h]
            regs = pipe.stage(f"stage{s}", **{f"v{j}": v for j, v in enumerate(nxt)})
            lanes = [getattr(regs, f"v{j}") for j in range(n)]
            h *= 2
        if self._shift:
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
