# Ref: Kung, "Why systolic architectures?" (IEEE Computer 15(1), 1982) for the array; Samajdar et
#      al., "SCALE-Sim: Systolic CNN Accelerator Simulator", arXiv 1811.02883, §III (the
#      output- and weight-stationary mappings and their fold timing, which this array follows
#      cycle for cycle when the PE has latency 0).
"""A rows x cols systolic GEMM array of any generated accumulating PE, with its controller.

The array computes ``C[M, N] = A[M, K] @ B[K, N]`` with every output an accumulation chain of the
PE in ``k`` order: ``acc = pe(A[m, k], B[k, n], acc)`` from ``acc = +0`` for ``k = 0 .. K-1``, so
the result is bit for bit what the PE's ``reference()`` gives for that chain (the Python model,
:mod:`arithforge.sim.accelerator`, computes exactly that). ``M``, ``N`` and ``K`` are run-time
inputs; the operands live in SRAMs outside the array, read and written through address lanes
(one per array row for A, one per column for B, the results and the partial sums), so one
compiled design runs any shape.

PE contract (:func:`check_pe`): a :class:`~arithforge.hdl.base.Datapath` with operands ``(A
side, B side..., c)`` whose ``c`` and result have the same width and format: ``fma`` with ``c ==
out``, ``lmac``, ``imac`` (``a``, ``b``, ``c``); the dot-product PEs ``bitserial`` (``a``; ``w``,
``sel``, ``scale``; ``c``) and ``lut`` (``a``; ``w``; ``c``), for which an array element is a
whole PE transaction (an array of LUT cores is the LUT tensor core's tile engine). The B-side
operands travel packed into one element, LSB first. Latency ``L = pe.latency``, initiation
interval ``II = pe.initiation_interval``. :class:`Timing` derives ``P`` (outputs interleaved per
PE in os: ``max(L, 1)`` for a pipelined PE, 1 for a sequential one), ``Q`` (cycles between a PE's
operations in os: 1, or ``max(II, L)``) and ``S`` (row skew in ws: ``max(L, 1)``).

Output stationary (``dataflow="os"``)
    PE ``(i, j)`` holds outputs. ``A`` enters from the left (row ``i`` skewed by ``i`` cycles),
    ``B`` from the top (column ``j`` skewed by ``j``); both move one PE per cycle. The accumulator
    loop (result back into ``c``) of a pipelined PE is ``P`` cycles long (``L = 0`` puts a
    register after the PE), so each PE interleaves ``P`` independent outputs: a fold covers
    ``R*P`` rows of ``M`` (PE row ``i``, slot ``l`` holds row ``m0 + l*R + i``) and ``C`` columns
    of ``N``; operation ``(k, l)`` is fed at ``(k*P + l)*Q``, B held for the ``P`` slots of a
    ``k``. A sequential PE takes one operation every ``Q`` cycles and gets its previous result
    straight back. A ``first`` flag (``k == 0``) makes the PE add to ``+0``; a ``last`` flag
    (``k == K-1``), delayed by ``L``, captures the final result into a ``P``-deep result chain
    per PE. After the last capture the result chains of a column drain out of the bottom, one
    value per cycle (``R*P`` cycles). Fold length ``(K*P - 1)*Q + R + C + L - 1 + R*P``;
    ``L = 0``: ``2R + C + K - 2``, SCALE-Sim's.
Weight stationary (``dataflow="ws"``)
    A fold preloads ``B[k0 .. k0+R-1, n0 .. n0+C-1]`` into the PEs (``R`` cycles, shifted down the
    columns), then streams all ``M`` rows of ``A`` from the left, one every ``II`` cycles, row
    ``i`` skewed by ``i*S`` cycles, so that the partial sum from PE ``(i-1, j)`` (ready ``L``
    cycles after its operation, one with ``L = 0``) meets ``A[m, k0+i]`` at PE ``(i, j)``:
    pipelined PEs run at full rate. Partial sums enter at the top (``+0`` in the first ``K``
    fold, else the previous fold's result read back from the output SRAM: the chain stays one
    sequential chain in ``k`` order) and leave at the bottom into the output SRAM. Rows past
    ``K`` in the last ``K`` fold get ``a = -0, b = +0`` (``a = +0`` for round-down or formats
    without ``-0``): ``x + (-0) = x`` exactly, so they pass the partial sum through unchanged.
    Dot-product PEs get all-zero codes, which add a zero (a ``-0`` partial sum may become
    ``+0``). Fold length ``R + (M-1)*II + (R-1)*S + C + L``;
    ``L = 0``: ``2R + C + M - 2``, SCALE-Sim's.

Folds run one after another (no overlap); output stationary walks ``M`` folds outside ``N`` folds,
weight stationary ``N`` folds outside ``K`` folds.

Ports (flat names, as Verilog sees them): ``clk``, ``rst``; ``start``, ``m``, ``n``, ``k``
(``dim_bits`` each, at least 1) in; ``busy`` out, high from the cycle after ``start`` until the
last cycle of the last fold (the cycle count is the number of ``busy`` cycles). SRAM lanes, all
combinational reads in the cycle the enable is high:

- ``a_en_<i>``, ``a_row_<i>``, ``a_col_<i>`` out, ``a_data_<i>`` in: ``A[a_row, a_col]``;
- ``b_en_<j>``, ``b_row_<j>``, ``b_col_<j>`` out, ``b_data_<j>`` in: ``B[b_row, b_col]``;
- ``c_we_<j>``, ``c_row_<j>``, ``c_col_<j>``, ``c_data_<j>`` out: write ``C[c_row, c_col]``;
- weight stationary only: ``p_en_<j>``, ``p_row_<j>``, ``p_col_<j>`` out, ``p_data_<j>`` in: read
  ``C[p_row, p_col]`` (the partial sum written by the previous ``K`` fold).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from amaranth import Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..datapaths import with_face
from ..formats import FloatFormat, Rounding
from .base import Datapath

__all__ = ["DATAFLOWS", "SystolicArray", "Timing", "check_pe", "pad_codes", "pe_roles"]

#: Dataflows the array implements.
DATAFLOWS = ("os", "ws")
#: Width of address ports and of the fold counters.
ADDR_BITS = 32


def pe_roles(pe: Datapath) -> tuple[str, tuple[str, ...]]:
    """The PE's A-side operand (the first: activations, moving along the rows) and its B-side
    operands (those between it and ``c``: weights and their metadata, packed LSB first into one
    B element)."""
    ops = tuple(pe.operands)
    return ops[0], ops[1:-1]


def check_pe(pe: Datapath) -> None:
    """Check that ``pe`` can accumulate in an array: operands ``(A side, B side..., c)`` with
    ``c`` as wide as the result and in its format, and no random-bits operand.

    Raises
    ------
    ValueError
        Naming what is wrong.
    """
    ops = tuple(pe.operands)
    if len(ops) < 3 or ops[-1] != "c" or "rand" in ops:
        raise ValueError(f"an array PE must have operands a, b, c (a multiply-accumulate, or a "
                         f"dot product with c last), not {', '.join(ops)}; use a PE "
                         f"datapath ({', '.join(with_face('array_pe'))}) without stochastic "
                         f"rounding")
    fmts = pe.formats
    if pe.operand_widths["c"] != pe.result_width or (
            fmts and fmts.get("c") != fmts.get("result")):
        c, r = fmts.get("c"), fmts.get("result")
        raise ValueError(f"an array PE accumulates its result into c, so c must have the result's "
                         f"format, not {getattr(c, 'name', c)} and {getattr(r, 'name', r)} "
                         f"(give c and out the same format)")
    c = fmts.get("c")
    if isinstance(c, FloatFormat) and not c.zero:
        raise ValueError(f"the accumulator format must have a zero to start from, not {c.name}")


class Timing:
    """The schedule constants of an array of PEs with latency ``latency`` and initiation interval
    ``ii`` (module docstring).

    Members
    -------
    slots : int
        ``P``: outputs interleaved per PE in os (``max(L, 1)`` for a pipelined PE, 1 for a
        sequential one).
    interval : int
        ``Q``: cycles between operations of a PE in os (1 pipelined; ``max(II, L)`` sequential).
    skew : int
        ``S``: cycles between neighbouring rows in ws (``max(L, 1)``).
    """

    def __init__(self, latency: int, ii: int = 1) -> None:
        self.latency = int(latency)
        self.ii = int(ii)
        if self.ii < 1 or self.latency < 0:
            raise ValueError(f"a PE needs latency >= 0 and initiation interval >= 1, not "
                             f"{latency} and {ii}")
        if self.ii == 1:
            self.slots, self.interval = max(self.latency, 1), 1
        else:
            self.slots, self.interval = 1, max(self.ii, self.latency)
        self.skew = max(self.latency, 1)

    def fold_cycles(self, dataflow: str, rows: int, cols: int, m: int, k: int) -> int:
        """Cycles of one fold: depends on ``K`` (os) or ``M`` (ws)."""
        L, P, Q, S = self.latency, self.slots, self.interval, self.skew
        if dataflow == "os":
            return (k * P - 1) * Q + rows + cols + L - 1 + rows * P
        return rows + (m - 1) * self.ii + (rows - 1) * S + cols + L


def _rounding(pe: Datapath) -> str:
    return str(pe.describe().get("rounding", "rne"))


def pad_codes(pe: Datapath) -> tuple[int, int]:
    """Codes ``(a, b)`` fed to the rows past ``K`` of a weight-stationary fold.

    Their product is a zero that leaves any partial sum unchanged: ``-0`` (``x + -0 = x`` in
    every rounding but round-down, including ``x = +0``), or ``+0`` under round-down or where the
    format has no ``-0``.
    """
    if tuple(pe.operands) != ("a", "b", "c"):
        return 0, 0  # dot-product PEs: all-zero operands
    fa = pe.formats.get("a")
    a = 0
    if (isinstance(fa, FloatFormat) and fa.signed and fa.specials.value not in ("fnuz", "ext")
            and _rounding(pe) != str(Rounding.RDN)):
        a = fa.sign_mask
    return a, 0


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if v < 1:
        raise ValueError(f"{what} must be at least 1, not {v!r}")
    return v


def _delay(m: Module, value: Value, n: int, name: str) -> Value:
    """``value`` delayed by ``n`` registers."""
    for s in range(n):
        reg = Signal(value.shape(), name=f"{name}_d{s}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


class SystolicArray(wiring.Component):
    """A ``rows x cols`` systolic GEMM array of PEs made by ``make_pe``, with its controller.

    Parameters
    ----------
    make_pe : callable
        Returns a fresh PE datapath (one per array position; see :func:`check_pe`).
    rows, cols : int
    dataflow : "os" or "ws"
    dim_bits : int
        Width of the ``m``, ``n``, ``k`` inputs.

    Members
    -------
    start, m, n, k : In
    busy : Out(1)
    a_*, b_*, c_*, p_* : SRAM lanes (module docstring)
    """

    _MustUse__silence = True

    def __init__(self, make_pe: Callable[[], Datapath], rows: int, cols: int, *,
                 dataflow: str = "os", dim_bits: int = 16) -> None:
        self._rows = _positive(rows, "rows")
        self._cols = _positive(cols, "cols")
        if dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be 'os' or 'ws', not {dataflow!r}")
        self._dataflow = dataflow
        self._dim_bits = _positive(dim_bits, "dim_bits")
        self._make_pe = make_pe
        self._proto = make_pe()
        check_pe(self._proto)
        pe = self._proto
        a_op, b_ops = pe_roles(pe)
        self._timing = Timing(int(pe.latency), pe.initiation_interval)
        wa = int(pe.operand_widths[a_op])
        wb = sum(int(pe.operand_widths[o]) for o in b_ops)
        wc = int(pe.result_width)
        members: dict[str, Any] = {
            "start": In(1), "m": In(self._dim_bits), "n": In(self._dim_bits),
            "k": In(self._dim_bits), "busy": Out(1),
        }
        for i in range(self._rows):
            members |= {f"a_en_{i}": Out(1), f"a_row_{i}": Out(ADDR_BITS),
                        f"a_col_{i}": Out(ADDR_BITS), f"a_data_{i}": In(wa)}
        for j in range(self._cols):
            members |= {f"b_en_{j}": Out(1), f"b_row_{j}": Out(ADDR_BITS),
                        f"b_col_{j}": Out(ADDR_BITS), f"b_data_{j}": In(wb)}
            members |= {f"c_we_{j}": Out(1), f"c_row_{j}": Out(ADDR_BITS),
                        f"c_col_{j}": Out(ADDR_BITS), f"c_data_{j}": Out(wc)}
            if dataflow == "ws":
                members |= {f"p_en_{j}": Out(1), f"p_row_{j}": Out(ADDR_BITS),
                            f"p_col_{j}": Out(ADDR_BITS), f"p_data_{j}": In(wc)}
        super().__init__(members)

    # -- facts ----------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Rows of PEs."""
        return self._rows

    @property
    def cols(self) -> int:
        """Columns of PEs."""
        return self._cols

    @property
    def dataflow(self) -> str:
        """``"os"`` or ``"ws"``."""
        return self._dataflow

    @property
    def pe(self) -> Datapath:
        """A PE like those in the array (for its formats, latency and reference)."""
        return self._proto

    @property
    def latency(self) -> int:
        """Latency ``L`` of one PE."""
        return int(self._proto.latency)

    @property
    def timing(self) -> Timing:
        """The schedule constants (slots, interval, skew)."""
        return self._timing

    @property
    def dim_bits(self) -> int:
        """Width of ``m``, ``n``, ``k``."""
        return self._dim_bits

    def port(self, name: str) -> Any:
        """The member called ``name`` (``a_data_0``, ...)."""
        return getattr(self, name)

    # -- hardware -------------------------------------------------------------------------------
    def elaborate(self, platform: Any) -> Module:
        m = Module()
        if self._dataflow == "os":
            self._elaborate_os(m)
        else:
            self._elaborate_ws(m)
        return m

    def _pes(self, m: Module) -> list[list[Any]]:
        grid = []
        for i in range(self._rows):
            row = []
            for j in range(self._cols):
                pe = self._make_pe()
                m.submodules[f"pe_{i}_{j}"] = pe
                row.append(pe)
            grid.append(row)
        return grid

    def _connect(self, m: Module, pe: Datapath, a: Value, b: Value, c: Value, valid: Value) -> None:
        """Drive a PE: the A element, the B element split into the B-side ports, ``c``."""
        a_op, b_ops = pe_roles(pe)
        stmts = [pe.i.valid.eq(valid), getattr(pe.i, a_op).eq(a), pe.i.c.eq(c)]
        lo = 0
        for op in b_ops:
            w = int(pe.operand_widths[op])
            stmts.append(getattr(pe.i, op).eq(b[lo:lo + w]))
            lo += w
        m.d.comb += stmts

    def _elaborate_os(self, m: Module) -> None:
        R, C, L = self._rows, self._cols, self.latency
        P, Q = self._timing.slots, self._timing.interval
        wc = int(self._proto.result_width)
        M, N, K = self.m, self.n, self.k
        busy = Signal(name="busy_r")
        t = Signal(ADDR_BITS, name="t")
        kk = Signal(ADDR_BITS, name="kk")
        slot = Signal(range(P + 1), name="slot")
        phase = Signal(range(Q + 1), name="phase")
        mf = Signal(ADDR_BITS, name="mf")
        nf = Signal(ADDR_BITS, name="nf")
        d_i = Signal(range(R + 1), name="drain_i")
        d_l = Signal(range(P + 1), name="drain_l")
        kp = Signal(ADDR_BITS, name="kp")
        m.d.comb += [kp.eq(K * P), self.busy.eq(busy)]
        # The last operation is issued at (K*P - 1)*Q; the last PE captures its result L cycles
        # after taking it, R + C - 2 cycles later; the drain starts the cycle after.
        d0 = Signal(ADDR_BITS, name="d0")
        last_t = Signal(ADDR_BITS, name="last_t")
        m.d.comb += [d0.eq(kp * Q + (R + C + L - 1 - Q)), last_t.eq(d0 + (R * P - 1))]
        feeding = Signal(name="feeding")
        feed = Signal(name="feed")
        drain = Signal(name="drain")
        m.d.comb += [feeding.eq(busy & (kk < K)), feed.eq(feeding & ~phase.any()),
                     drain.eq(busy & (t >= d0))]

        with m.If(~busy):
            with m.If(self.start):
                m.d.sync += [busy.eq(1), t.eq(0), kk.eq(0), slot.eq(0), phase.eq(0), mf.eq(0),
                             nf.eq(0), d_i.eq(R - 1), d_l.eq(0)]
        with m.Else():
            m.d.sync += t.eq(t + 1)
            with m.If(feeding):
                with m.If(phase == Q - 1):
                    m.d.sync += phase.eq(0)
                    with m.If(slot == P - 1):
                        m.d.sync += [slot.eq(0), kk.eq(kk + 1)]
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                with m.Else():
                    m.d.sync += phase.eq(phase + 1)
            with m.If(drain):
                with m.If(d_l == P - 1):
                    m.d.sync += [d_l.eq(0), d_i.eq(d_i - 1)]
                with m.Else():
                    m.d.sync += d_l.eq(d_l + 1)
            with m.If(t == last_t):
                m.d.sync += [t.eq(0), kk.eq(0), slot.eq(0), phase.eq(0), d_i.eq(R - 1),
                             d_l.eq(0)]
                with m.If(nf + C >= N):
                    m.d.sync += nf.eq(0)
                    with m.If(mf + R * P >= M):
                        m.d.sync += busy.eq(0)
                    with m.Else():
                        m.d.sync += mf.eq(mf + R * P)
                with m.Else():
                    m.d.sync += nf.eq(nf + C)

        # SRAM reads and the array's edges.
        first = Signal(name="first")
        last = Signal(name="last")
        # `x == 0` would come out of Yosys's backend as `!x` on a vector (a lint warning).
        m.d.comb += [first.eq(~kk.any()), last.eq(kk == K - 1)]
        a_edge = []
        for i in range(R):
            row = Signal(ADDR_BITS, name=f"arow_{i}")
            m.d.comb += row.eq(mf + slot * R + i)
            m.d.comb += [self.port(f"a_row_{i}").eq(row), self.port(f"a_col_{i}").eq(kk),
                         self.port(f"a_en_{i}").eq(feed & (row < M))]
            a_edge.append((self.port(f"a_data_{i}"), feed, first, last))
        b_edge = []
        for j in range(C):
            hold = Signal.like(self.port(f"b_data_{j}"), name=f"bhold_{j}", reset_less=True)
            fresh = ~slot.any()
            value = Signal.like(hold, name=f"bfeed_{j}")
            m.d.comb += value.eq(Mux(fresh, self.port(f"b_data_{j}"), hold))
            with m.If(feed & fresh):
                m.d.sync += hold.eq(self.port(f"b_data_{j}"))
            m.d.comb += [self.port(f"b_row_{j}").eq(kk), self.port(f"b_col_{j}").eq(nf + j),
                         self.port(f"b_en_{j}").eq(feed & fresh & (nf + j < N))]
            b_edge.append(value)

        # Skew: row i by i registers, column j by j registers.
        a_in = []
        for i, (data, valid, fst, lst) in enumerate(a_edge):
            a_in.append((_delay(m, data, i, f"askew{i}"), _delay(m, valid, i, f"vskew{i}"),
                         _delay(m, fst, i, f"fskew{i}"), _delay(m, lst, i, f"lskew{i}")))
        b_in = [_delay(m, b, j, f"bskew{j}") for j, b in enumerate(b_edge)]

        grid = self._pes(m)
        # B moves down one PE per cycle: a register per PE below the top row.
        b_grid = [[b_in[j]] * 1 for j in range(C)]
        for j in range(C):
            for i in range(1, R):
                b_grid[j].append(_delay(m, b_grid[j][-1], 1, f"bv_{i}_{j}"))
        res: list[list[tuple[list[Signal], Value, Any]]] = []
        for i in range(R):
            a, valid, fst, lst = a_in[i]
            row_res = []
            for j in range(C):
                if j > 0:  # A and its flags move right one PE per cycle
                    a, valid, fst, lst = (_delay(m, a, 1, f"ah_{i}_{j}"),
                                          _delay(m, valid, 1, f"vh_{i}_{j}"),
                                          _delay(m, fst, 1, f"fh_{i}_{j}"),
                                          _delay(m, lst, 1, f"lh_{i}_{j}"))
                pe = grid[i][j]
                if L == 0 or (Q > 1 and Q > L):
                    # A register closes the loop: after a combinational PE, or after a
                    # sequential one whose result comes before its next operation.
                    acc = Signal(wc, name=f"acc_{i}_{j}", reset_less=True)
                    with m.If(pe.o.valid):
                        m.d.sync += acc.eq(pe.o.result)
                    fb: Value = acc
                else:
                    fb = pe.o.result
                self._connect(m, pe, a, b_grid[j][i], Mux(fst, Const(0, wc), fb), valid)
                cap = _delay(m, valid & lst, L, f"cap_{i}_{j}")
                chain = [Signal(wc, name=f"res_{i}_{j}_{p}", reset_less=True) for p in range(P)]
                row_res.append((chain, cap, pe))
            res.append(row_res)
        for i in range(R):
            for j in range(C):
                chain, cap, pe = res[i][j]
                above = res[i - 1][j][0][P - 1] if i > 0 else Const(0, wc)
                with m.If(drain):
                    m.d.sync += chain[0].eq(above)
                    m.d.sync += [chain[p].eq(chain[p - 1]) for p in range(1, P)]
                with m.Elif(cap):
                    m.d.sync += chain[0].eq(pe.o.result)
                    m.d.sync += [chain[p].eq(chain[p - 1]) for p in range(1, P)]

        # Drain: bottom of each column's result chain, one value per cycle.
        out_row = Signal(ADDR_BITS, name="out_row")
        m.d.comb += out_row.eq(mf + d_l * R + d_i)
        for j in range(C):
            m.d.comb += [self.port(f"c_data_{j}").eq(res[R - 1][j][0][P - 1]),
                         self.port(f"c_row_{j}").eq(out_row),
                         self.port(f"c_col_{j}").eq(nf + j),
                         self.port(f"c_we_{j}").eq(drain & (out_row < M) & (nf + j < N))]

    def _elaborate_ws(self, m: Module) -> None:
        R, C, L = self._rows, self._cols, self.latency
        II, S = self._timing.ii, self._timing.skew
        wb = len(self.port("b_data_0"))
        wc = int(self._proto.result_width)
        pad_a, pad_b = pad_codes(self._proto)
        a_op, b_ops = pe_roles(self._proto)
        M, N, K = self.m, self.n, self.k
        busy = Signal(name="busy_r")
        t = Signal(ADDR_BITS, name="t")
        kf = Signal(ADDR_BITS, name="kf")
        nf = Signal(ADDR_BITS, name="nf")
        m.d.comb += self.busy.eq(busy)
        # Row m enters at R + m*II; the bottom row's result for column j leaves at
        # R + m*II + (R-1)*S + L + j; the fold ends after the last column's last row.
        base = (R - 1) * S + L
        last_t = Signal(ADDR_BITS, name="last_t")
        m.d.comb += last_t.eq(M * II + (R + base + C - 1 - II))
        load = Signal(name="load")
        s = Signal(ADDR_BITS, name="s")        # row of A entering the array
        phase = Signal(range(II + 1), name="phase")
        feed = Signal(name="feed")
        m.d.comb += [load.eq(busy & (t < R)),
                     feed.eq(busy & (t >= R) & (s < M) & ~phase.any())]

        with m.If(~busy):
            with m.If(self.start):
                m.d.sync += [busy.eq(1), t.eq(0), kf.eq(0), nf.eq(0), s.eq(0), phase.eq(0)]
        with m.Else():
            m.d.sync += t.eq(t + 1)
            with m.If(t >= R):
                with m.If(phase == II - 1):
                    m.d.sync += [phase.eq(0), s.eq(s + 1)]
                with m.Else():
                    m.d.sync += phase.eq(phase + 1)
            with m.If(t == last_t):
                m.d.sync += [t.eq(0), s.eq(0), phase.eq(0)]
                with m.If(kf + R >= K):
                    m.d.sync += kf.eq(0)
                    with m.If(nf + C >= N):
                        m.d.sync += busy.eq(0)
                    with m.Else():
                        m.d.sync += nf.eq(nf + C)
                with m.Else():
                    m.d.sync += kf.eq(kf + R)

        # Weight preload: at load cycle t, read row k0 + R-1-t; it shifts down R-1-t more times.
        w = [[Signal(wb, name=f"w_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        wrow = Signal(ADDR_BITS, name="wrow")
        m.d.comb += wrow.eq(kf + (R - 1) - t)
        for j in range(C):
            en = Signal(name=f"wen_{j}")
            m.d.comb += en.eq(load & (wrow < K) & (nf + j < N))
            m.d.comb += [self.port(f"b_en_{j}").eq(en), self.port(f"b_row_{j}").eq(wrow),
                         self.port(f"b_col_{j}").eq(nf + j)]
            with m.If(load):
                m.d.sync += w[0][j].eq(Mux(en, self.port(f"b_data_{j}"), pad_b))
                m.d.sync += [w[i][j].eq(w[i - 1][j]) for i in range(1, R)]

        # A from the left, row i skewed by i*S; pad rows past K get the pad code.
        a_in = []
        for i in range(R):
            en = Signal(name=f"aen_{i}")
            m.d.comb += en.eq(feed & (kf + i < K))
            m.d.comb += [self.port(f"a_en_{i}").eq(en), self.port(f"a_row_{i}").eq(s),
                         self.port(f"a_col_{i}").eq(kf + i)]
            live = Signal(name=f"alive_{i}")
            m.d.comb += live.eq(kf + i < K)
            value = Signal.like(self.port(f"a_data_{i}"), name=f"afeed_{i}")
            m.d.comb += value.eq(Mux(live, self.port(f"a_data_{i}"), pad_a))
            a_in.append((_delay(m, value, i * S, f"askew{i}"),
                         _delay(m, feed, i * S, f"vskew{i}")))
        # Partial sums from the top: +0 in the first K fold, else the previous fold's result.
        p_in = []
        for j in range(C):
            m.d.comb += [self.port(f"p_en_{j}").eq(feed & kf.any() & (nf + j < N)),
                         self.port(f"p_row_{j}").eq(s), self.port(f"p_col_{j}").eq(nf + j)]
            value = Signal(wc, name=f"pfeed_{j}")
            m.d.comb += value.eq(Mux(~kf.any(), Const(0, wc), self.port(f"p_data_{j}")))
            p_in.append(_delay(m, value, j, f"pskew{j}"))

        grid = self._pes(m)
        psum: list[Value] = list(p_in)
        for i in range(R):
            a, valid = a_in[i]
            for j in range(C):
                if j > 0:
                    a, valid = _delay(m, a, 1, f"ah_{i}_{j}"), _delay(m, valid, 1, f"vh_{i}_{j}")
                pe = grid[i][j]
                self._connect(m, pe, a, w[i][j], psum[j], valid)
                if i == R - 1:
                    psum[j] = pe.o.result
                elif L == 0:
                    reg = Signal(wc, name=f"psum_{i}_{j}", reset_less=True)
                    m.d.sync += reg.eq(pe.o.result)
                    psum[j] = reg
                else:
                    psum[j] = pe.o.result

        # Results leave the bottom row L cycles after its operation on row m, in row order; a
        # counter per column numbers them.
        for j in range(C):
            out_m = Signal(ADDR_BITS, name=f"crow_{j}")
            out_phase = Signal(range(II + 1), name=f"cphase_{j}")
            started = Signal(name=f"cstart_{j}")
            we = Signal(name=f"cwe_{j}")
            m.d.comb += started.eq(busy & (t >= R + base + j))
            m.d.comb += we.eq(started & ~out_phase.any() & (out_m < M))
            with m.If(~busy | (t == last_t)):
                m.d.sync += [out_m.eq(0), out_phase.eq(0)]
            with m.Elif(started):
                with m.If(out_phase == II - 1):
                    m.d.sync += [out_phase.eq(0), out_m.eq(out_m + 1)]
                with m.Else():
                    m.d.sync += out_phase.eq(out_phase + 1)
            m.d.comb += [self.port(f"c_data_{j}").eq(psum[j]), self.port(f"c_row_{j}").eq(out_m),
                         self.port(f"c_col_{j}").eq(nf + j),
                         self.port(f"c_we_{j}").eq(we & (nf + j < N))]
        del a_op, b_ops
