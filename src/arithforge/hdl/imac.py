# Ref: two's-complement multiply-accumulate as in integer tensor cores (e.g. NVIDIA IMMA: int8
#      products accumulated into int32, wrapping); saturation as ARM SQDMLAL-style clamping.
"""Integer multiply-accumulate ``c + a * b``, wrapping or saturating."""

from __future__ import annotations

import operator
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from amaranth import Module, Mux

from ..datapaths.imac import MAX_ACC_BITS, MAX_OPERAND_BITS, IMac
from ..formats import IntFormat, ops
from .base import (
    Datapath,
    DatapathError,
    Graph,
    Param,
    Pipeline,
    check_bool,
    check_kind,
    check_stages,
    choose_cuts,
)

__all__ = ["IntegerMAC"]

#: Operand combinations an exhaustive sweep may hold.
EXHAUSTIVE_LIMIT_BITS = 26


def _bits(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if not low <= v <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {v!r}")
    return v


class IntegerMAC(Datapath):
    """Integer multiply-accumulate ``o = c + a * b`` with an exact product.

    The sum wraps modulo ``2**acc_bits`` (two's complement), or clamps to the accumulator's range
    with ``saturate=True``; ``a``, ``b`` and ``c`` are all signed (two's complement) or all
    unsigned. Latency ``stages`` (registers after the multiplier, then after the adder, then at
    the output), throughput one per cycle.

    Parameters
    ----------
    a_bits, b_bits : int
        Operand widths (2 to 30 signed, 1 to 30 unsigned).
    acc_bits : int
        Accumulator (``c`` and result) width, up to 62.
    signed : bool
    stages : int
    saturate : bool

    Members
    -------
    i : In(Signature(valid, a, b, c))
    o : Out(Signature(valid, result))
    """

    name: ClassVar[str] = "imac"
    cli_params: ClassVar[dict[str, Param]] = IMac.params

    _CUTS: ClassVar[tuple[str, ...]] = ("product", "add")

    def __init__(self, a_bits: int, b_bits: int, acc_bits: int, *, signed: bool = True,
                 stages: int = 0, saturate: bool = False) -> None:
        self._signed = check_bool(signed, "signed")
        low = 2 if self._signed else 1
        self._a_bits = _bits(a_bits, "a_bits", low, MAX_OPERAND_BITS)
        self._b_bits = _bits(b_bits, "b_bits", low, MAX_OPERAND_BITS)
        self._acc_bits = _bits(acc_bits, "acc_bits", low, MAX_ACC_BITS)
        self._stages = check_stages(stages)
        self._saturate = check_bool(saturate, "saturate")
        super().__init__()

    # -- facts ----------------------------------------------------------------------------------
    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    @property
    def operand_widths(self) -> dict[str, int]:
        return {"a": self._a_bits, "b": self._b_bits, "c": self._acc_bits}

    @property
    def result_width(self) -> int:
        return self._acc_bits

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        fa, fb, fc = self._int_formats()
        return {"a": fa, "b": fb, "c": fc, "result": fc}

    def _int_formats(self) -> tuple[IntFormat, IntFormat, IntFormat]:
        return (IntFormat(self._a_bits, self._signed), IntFormat(self._b_bits, self._signed),
                IntFormat(self._acc_bits, self._signed))

    def describe(self) -> dict[str, Any]:
        return {"datapath": self.name, "a_bits": self._a_bits, "b_bits": self._b_bits,
                "acc_bits": self._acc_bits, "signed": self._signed, "stages": self._stages,
                "saturate": self._saturate, "latency": self.latency,
                "formats": {k: f.name for k, f in self.formats.items()}}

    # -- reference and vectors ------------------------------------------------------------------
    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        fa, fb, fc = self._int_formats()
        return ops.imac(a, b, c, fa, fb, fc, saturate=self._saturate).astype(np.uint64)

    def _accumulators(self) -> np.ndarray:
        """The fixed accumulator set of exhaustive and corner vectors: zero, ones, the range ends
        and the values a product pushes just over either end."""
        _, _, fc = self._int_formats()
        fa, fb, _ = self._int_formats()
        prods = [x * y for x in (fa.min_int, fa.max_int) for y in (fb.min_int, fb.max_int)]
        pmax, pmin = max(prods), min(prods)
        vals = {0, 1, -1, 2, fc.min_int, fc.max_int, fc.min_int + 1, fc.max_int - 1,
                fc.max_int - pmax + 1, fc.max_int - pmax, fc.min_int - pmin - 1,
                fc.min_int - pmin, fc.max_int // 2, fc.min_int // 2}
        vals = {v for v in vals if fc.min_int <= v <= fc.max_int}
        return fc.from_int(np.array(sorted(vals), dtype=np.int64)).astype(np.uint64)

    def _corner_ints(self, fmt: IntFormat) -> np.ndarray:
        vals = {0, 1, 2, 3, fmt.max_int, fmt.max_int - 1, fmt.min_int, fmt.min_int + 1,
                fmt.max_int // 2, fmt.max_int // 2 + 1}
        if fmt.signed:
            vals |= {-1, -2, fmt.min_int // 2}
        vals = {v for v in vals if fmt.min_int <= v <= fmt.max_int}
        return fmt.from_int(np.array(sorted(vals), dtype=np.int64)).astype(np.uint64)

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors.

        ``exhaustive``: every ``(a, b, c)`` when that is at most 2**26 vectors, else every
        ``(a, b)`` pair against the fixed accumulator set (zero, ones, both range ends and the
        accumulators a product pushes just over them). ``corner``: boundary values of ``a`` and
        ``b`` against that set. ``random``: uniform codes.
        """
        check_kind(kind, n)
        wa, wb, wc = self._a_bits, self._b_bits, self._acc_bits
        if kind == "random":
            assert n is not None
            return {op: rng.integers(0, 1 << w, size=int(n), dtype=np.uint64)
                    for op, w in (("a", wa), ("b", wb), ("c", wc))}
        if kind == "exhaustive":
            if wa + wb + wc <= EXHAUSTIVE_LIMIT_BITS:
                accs = np.arange(1 << wc, dtype=np.uint64)
            else:
                accs = self._accumulators()
                if (1 << (wa + wb)) * len(accs) > 1 << EXHAUSTIVE_LIMIT_BITS:
                    raise DatapathError(
                        f"exhaustive vectors must number at most 2**{EXHAUSTIVE_LIMIT_BITS}, not "
                        f"2**{wa + wb} (a, b) pairs x {len(accs)} accumulators; use random or "
                        f"corner vectors")
            grids = np.meshgrid(np.arange(1 << wa, dtype=np.uint64),
                                np.arange(1 << wb, dtype=np.uint64), accs, indexing="ij")
        else:
            fa, fb, _ = self._int_formats()
            grids = np.meshgrid(self._corner_ints(fa), self._corner_ints(fb), self._accumulators(),
                                indexing="ij")
        out = {op: g.ravel() for op, g in zip(("a", "b", "c"), grids, strict=True)}
        if kind == "corner" and n is not None and int(n) < len(out["a"]):
            pick = np.sort(rng.choice(len(out["a"]), size=int(n), replace=False))
            out = {k: v[pick] for k, v in out.items()}
        return out

    # -- hardware -------------------------------------------------------------------------------
    def elaborate(self, platform: Any) -> Module:
        m = Module()
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        pipe = Pipeline(m, cuts, self.i.valid)
        a, b, c = self.i.a, self.i.b, self.i.c
        if self._signed:
            a, b, c = a.as_signed(), b.as_signed(), c.as_signed()
        s = pipe.stage("product", product=a * b, c=c)
        s = pipe.stage("add", total=s.c + s.product)
        total = s.total
        if self._saturate:
            _, _, fc = self._int_formats()
            total = Mux(total > fc.max_int, fc.max_int, Mux(total < fc.min_int, fc.min_int, total))
        self._finish(m, pipe, total[:self._acc_bits], extra)
        return m

    def structure(self) -> nx.DiGraph:
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        g = Graph(cuts)
        wa, wb, wc = self._a_bits, self._b_bits, self._acc_bits
        wp = wa + wb
        ws = max(wp, wc) + 1
        g.node("in_a", "input", wa)
        g.node("in_b", "input", wb)
        g.node("in_c", "input", wc)
        mul = g.node("multiplier", "multiplier", wp, "in_a", "in_b", a_width=wa, b_width=wb,
                     signed=self._signed)
        after = g.cut("product", wp + wc, mul, "in_c")
        last = g.node("adder", "adder", ws, *after)
        after = g.cut("add", ws, last)
        if self._saturate:
            cmp = g.node("saturate_compare", "comparator", ws, *after)
            after = (g.node("saturate_mux", "mux", wc, cmp, *after, inputs=3),)
        for name in self._output_stages(extra):
            after = g.cut(name, wc, *after)
        g.node("out", "output", wc, *after)
        g.g.graph.update(name=self.name, latency=self.latency)
        return g.g
