# Ref: Samajdar et al., "SCALE-Sim: Systolic CNN Accelerator Simulator", arXiv 1811.02883, §III
#      (fold runtime 2R + C + T - 2 and its mappings); Horowitz, "Computing's energy problem",
#      ISSCC 2014 (DRAM access energy).
"""Cycle-level model of the systolic GEMM accelerator of :mod:`arithforge.hdl.systolic`.

Pure numpy: importing this module loads no Amaranth and no simulator. Building the PE (for its
exact ``reference()`` and its cost) imports :mod:`arithforge.hdl` inside the functions that need
it, so the cycle and traffic model (:func:`schedule`) runs anywhere.

- :func:`parse_pe` reads a PE spec, ``NAME:PARAM=VALUE,...`` (``fma:a=float8_e4m3fn,c=float32``,
  ``lmac:fmt=float8_e4m3fn,acc=float32,stages=2``, ``imac:acc_bits=24``): a registered datapath
  that can be an array PE (its descriptor's ``array_pe``) and its generator parameters, with the
  derived defaults its descriptor fills in (``normalize_params``: for ``fma``, ``out`` defaults
  to ``c``, so an accumulating PE needs only ``c``). Its latency and initiation interval come
  from the descriptor's ``pe_timing`` where the parameters say them, else from the built PE.
  :func:`default_pe` is the first array example of the registry.
- :func:`schedule`: exact cycles, PE operations, SRAM reads and writes per operand, per-cycle
  peaks, from the array's schedule evaluated fold by fold (vectorized over the events of a fold;
  folds of the same shape are evaluated once).
- :func:`simulate`: :func:`schedule` plus the output codes, computed with the PE's
  ``reference()`` in the array's accumulation order (vectorized over all outputs, one call per
  ``k`` step).
- :func:`scalesim_cycles`: SCALE-Sim's analytical runtime, for comparison.
- :func:`tile_operands` and :func:`untile_output`: a GEMM's element operands as the tiles an array
  of tile-engine PEs streams (those whose descriptor has a ``tile``: the LUT tensor core), and
  its output tiles back as elements.
- :func:`element_operands` and :func:`element_output`: the PE face of a GEMM given as element
  codes (``simulate gemm --a --b``): the codes as they are for a multiply-accumulate PE, tiles for
  a tile-engine PE (the dot unit's steps: K padded and reordered, control fields set).
- Elements wider than 64 bits (a dot unit's 32 lanes) are a last axis of 64-bit words
  (:func:`words`) everywhere; outputs stay at most 64 bits.
- :func:`gemm_objectives` and :func:`workload_objectives`: latency and energy of a list of GEMMs
  or of a traced workload, the objectives of the exploration engine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import datapaths
from .._errors import ArithforgeError

if TYPE_CHECKING:  # the accelerator model runs without Amaranth until hardware is asked for
    from ..datapaths import Descriptor
    from ..hdl.base import Datapath
    from ..hdl.systolic import SystolicArray

__all__ = ["DATAFLOWS", "DRAM_PJ_PER_BIT", "ArrayConfig", "PESpec", "Schedule", "SimResult",
           "default_pe", "element_bits", "element_operands", "element_output",
           "gemm_objectives", "k_order", "parse_array", "parse_pe", "random_operands",
           "scalesim_cycles", "schedule", "simulate", "tile_operands", "untile_output", "words",
           "workload_objectives"]

DATAFLOWS = ("os", "ws")
#: DRAM access energy per bit: Horowitz (ISSCC 2014, 45 nm) gives 1.3-2.6 nJ per 64-bit DRAM
#: access; the low end, 20 pJ per bit.
DRAM_PJ_PER_BIT = 20.0


# -- configuration ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PESpec:
    """A PE: registered datapath ``name`` and its generator parameters (strings, as the CLI gives
    them)."""

    name: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def kwargs(self) -> dict[str, str]:
        """The parameters as a dict."""
        return dict(self.params)

    @property
    def latency(self) -> int:
        """Latency ``L`` (read without building the PE where its descriptor can)."""
        return self.timing[0]

    @property
    def initiation_interval(self) -> int:
        """Cycles between operations the PE accepts (1 for the pipelined PEs)."""
        return self.timing[1]

    @property
    def descriptor(self) -> Descriptor:
        """The PE's datapath descriptor: a registered datapath that can be an array PE (one line
        naming those if it is not)."""
        try:
            return datapaths.get(self.name, "array_pe")
        except datapaths.DatapathError as exc:
            raise ArithforgeError(f"PE {self}: {exc}") from None

    @property
    def timing(self) -> tuple[int, int]:
        """``(latency, initiation_interval)``: the descriptor's ``pe_timing`` of the parameters
        where it says them (pipelined PEs: ``stages``, 1), else the built PE's (sequential PEs;
        building imports :mod:`arithforge.hdl`)."""
        timing = self.descriptor.pe_timing(self.kwargs)
        if timing is None:
            pe = self.build()
            return int(pe.latency), int(pe.initiation_interval)
        return int(timing[0]), int(timing[1])

    def __str__(self) -> str:
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in self.params)
                            if self.params else "")

    def build(self) -> Datapath:
        """The PE datapath (imports :mod:`arithforge.hdl`)."""
        return _build_pe(self)


def parse_pe(text: str) -> PESpec:
    """Parse ``NAME[:PARAM=VALUE,...]`` into a :class:`PESpec`.

    Raises
    ------
    ArithforgeError
        On a malformed spec (one line saying the expected form).
    """
    text = str(text).strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ArithforgeError(f"PE spec must be NAME[:PARAM=VALUE,...] (e.g. "
                              f"fma:a=float8_e4m3fn,c=float32), not {text!r}")
    params: list[tuple[str, str]] = []
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise ArithforgeError(f"PE parameter must be PARAM=VALUE, not {item.strip()!r} "
                                      f"in {text!r}")
            params.append((key.strip(), value.strip()))
    keys = [k for k, _ in params]
    if len(set(keys)) != len(keys):
        raise ArithforgeError(f"PE spec {text!r} gives a parameter twice")
    d = datapaths.DATAPATHS.get(name)
    if d is not None:  # an unknown name is refused when the PE is used
        params = list(d.normalize_params(dict(params)).items())
    return PESpec(name, tuple(params))


def default_pe() -> str:
    """The PE spec of the registry's first array example (``simulate``'s default PE)."""
    for d in datapaths.with_face("array_pe").values():
        for example in d.arrays:
            return example.pe
    raise ArithforgeError("no registered datapath has an array example (a PE spec)")


@functools.lru_cache(maxsize=64)
def _build_pe(spec: PESpec) -> Datapath:
    from ..hdl import registry
    from ..hdl.systolic import check_pe

    d = spec.descriptor  # refuses a datapath that cannot be an array PE
    try:
        pe = registry.build(spec.name, **spec.kwargs)
        check_pe(pe)
    except (TypeError, ValueError) as exc:
        raise ArithforgeError(f"PE {spec}: {exc}") from None
    timing = d.pe_timing(spec.kwargs)
    if timing is not None and tuple(timing) != (int(pe.latency), int(pe.initiation_interval)):
        raise ArithforgeError(f"PE {spec}: latency {pe.latency} and initiation interval "
                              f"{pe.initiation_interval} differ from its parameters' "
                              f"{timing[0]} and {timing[1]}")
    return pe


def parse_array(text: str) -> tuple[int, int]:
    """Parse ``RxC`` (``8x8``) into ``(rows, cols)``."""
    parts = str(text).lower().split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise ArithforgeError(f"array must be ROWSxCOLS (e.g. 8x8), not {text!r}") from None
    if rows < 1 or cols < 1:
        raise ArithforgeError(f"array rows and cols must be at least 1, not {text!r}")
    return rows, cols


@dataclass(frozen=True)
class ArrayConfig:
    """A systolic array: ``rows`` x ``cols`` PEs of ``pe``, ``dataflow`` ``"os"`` or ``"ws"``."""

    rows: int
    cols: int
    dataflow: str
    pe: PESpec

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise ArithforgeError(f"dataflow must be os or ws, not {self.dataflow!r}")
        if self.rows < 1 or self.cols < 1:
            raise ArithforgeError(f"array rows and cols must be at least 1, not "
                                  f"{self.rows}x{self.cols}")

    @property
    def latency(self) -> int:
        """PE latency ``L``."""
        return self.pe.latency

    @property
    def ii(self) -> int:
        """Initiation interval of the PE."""
        return self.pe.initiation_interval

    @property
    def loop(self) -> int:
        """``P``: outputs interleaved per PE in os (``max(L, 1)`` pipelined, 1 sequential)."""
        return max(self.latency, 1) if self.ii == 1 else 1

    @property
    def interval(self) -> int:
        """``Q``: cycles between a PE's operations in os (1 pipelined, ``max(II, L)``
        sequential)."""
        return 1 if self.ii == 1 else max(self.ii, self.latency)

    @property
    def skew(self) -> int:
        """``S``: cycles between neighbouring rows in ws, ``max(L, 1)``."""
        return max(self.latency, 1)

    def hardware(self, dim_bits: int = 16) -> SystolicArray:
        """The Amaranth array (imports :mod:`arithforge.hdl`)."""
        from ..hdl.systolic import SystolicArray

        self.pe.build()
        return SystolicArray(lambda: _fresh_pe(self.pe), self.rows, self.cols,
                             dataflow=self.dataflow, dim_bits=dim_bits)


def _fresh_pe(spec: PESpec) -> Datapath:
    from ..hdl import registry

    return registry.build(spec.name, **spec.kwargs)


# -- schedule -----------------------------------------------------------------------------------

@dataclass
class Schedule:
    """Cycles and traffic of one GEMM on one array.

    Members
    -------
    cycles : int
        Total cycles (folds run back to back, as the array's ``busy`` counts them).
    folds : int
    macs : int
        Useful multiply-accumulates, ``M*N*K``.
    pe_ops : int
        PE operations issued, padding and idle-lane operations included (what switches).
    reads : dict
        SRAM reads per operand, elements: ``a``, ``b``, ``psum`` (partial sums read back, ws).
    writes : int
        Output SRAM writes, partial sums included.
    peak : dict
        Most accesses of each kind in one cycle (``a``, ``b``, ``psum``, ``c``).
    utilization : float
        ``macs / (rows * cols * cycles)``.
    """

    cycles: int
    folds: int
    macs: int
    pe_ops: int
    reads: dict[str, int]
    writes: int
    peak: dict[str, int]
    utilization: float
    fold_cycles: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"cycles": self.cycles, "folds": self.folds, "macs": self.macs,
                "pe_ops": self.pe_ops, "reads": dict(self.reads), "writes": self.writes,
                "peak_per_cycle": dict(self.peak), "utilization": round(self.utilization, 6)}


def _check_shape(m: int, n: int, k: int) -> tuple[int, int, int]:
    out = []
    for name, v in (("M", m), ("N", n), ("K", k)):
        if isinstance(v, bool) or int(v) != v or int(v) < 1:
            raise ArithforgeError(f"GEMM {name} must be a positive integer, not {v!r}")
        out.append(int(v))
    return out[0], out[1], out[2]


def _peak(times: np.ndarray, weights: np.ndarray | None = None) -> int:
    if times.size == 0:
        return 0
    return int(np.bincount(times.ravel(), weights=None if weights is None
                           else weights.ravel()).max())


def _fold_os(cfg: ArrayConfig, m_used: int, n_used: int, k: int) -> dict[str, Any]:
    """Events of one output-stationary fold with ``m_used`` rows and ``n_used`` columns valid."""
    R, C, L, P, Q = cfg.rows, cfg.cols, cfg.latency, cfg.loop, cfg.interval
    kk, slot = np.divmod(np.arange(k * P), P)          # operation q -> (k, slot)
    t_feed = (kk * P + slot) * Q                       # issued every Q cycles
    i = np.arange(R)
    row_valid = (slot[:, None] * R + i[None, :]) < m_used  # (t, i)
    a_times = np.broadcast_to(t_feed[:, None], row_valid.shape)[row_valid]
    b_fresh = slot == 0
    b_times = np.repeat(t_feed[b_fresh], n_used)
    # PE (i, j) takes feed cycle t at t + i + j; its result of the last k is captured L cycles
    # after the operation and readable the cycle after.
    last_op = int(t_feed[-1]) + (R - 1) + (C - 1)
    drain0 = last_op + L + 1
    # The drain shifts R*P values out of each column, one per cycle: row m0 + l*R + i.
    d = np.arange(R * P)
    x = R * P - 1 - d
    di, p = np.divmod(x, P)
    rows_out = (P - 1 - p) * R + di
    w_valid = rows_out < m_used
    c_times = np.repeat(drain0 + d[w_valid], n_used)
    cycles = drain0 + R * P
    return {"cycles": cycles, "a": a_times, "b": b_times, "psum": np.zeros(0, np.int64),
            "c": c_times, "pe_ops": R * C * k * P}



def _fold_ws(cfg: ArrayConfig, k_used: int, n_used: int, m: int, first: bool) -> dict[str, Any]:
    """Events of one weight-stationary fold with ``k_used`` rows and ``n_used`` columns valid."""
    R, C, L, S, II = cfg.rows, cfg.cols, cfg.latency, cfg.skew, cfg.ii
    t_load = np.arange(R)
    load_valid = (R - 1 - t_load) < k_used
    b_times = np.repeat(t_load[load_valid], n_used)
    s = R + np.arange(m) * II                              # row m enters every II cycles
    a_times = np.repeat(s, k_used)
    psum_times = np.zeros(0, np.int64) if first else np.repeat(s, n_used)
    # PE (i, j) works on row m at s + i*S + j; the bottom row's result for column j leaves L
    # cycles after its operation, into the output SRAM.
    j = np.arange(C)
    out_t = s[:, None] + (R - 1) * S + L + j[None, :]      # every lane, valid or not
    c_times = out_t[:, :n_used].ravel()
    cycles = int(out_t.max()) + 1
    return {"cycles": cycles, "a": a_times, "b": b_times, "psum": psum_times, "c": c_times,
            "pe_ops": R * C * m}


def _tiles(total: int, step: int) -> list[tuple[int, int]]:
    """(used, count) of the folds along a dimension: full ones, then the remainder."""
    full, rem = divmod(total, step)
    out = [(step, full)] if full else []
    if rem:
        out.append((rem, 1))
    return out


def schedule(cfg: ArrayConfig, m: int, n: int, k: int) -> Schedule:
    """Cycles, PE operations and SRAM traffic of ``C[m, n] = A[m, k] @ B[k, n]`` on ``cfg``."""
    m, n, k = _check_shape(m, n, k)
    R, C, P = cfg.rows, cfg.cols, cfg.loop
    cycles = folds = pe_ops = writes = 0
    reads = {"a": 0, "b": 0, "psum": 0}
    peak = {"a": 0, "b": 0, "psum": 0, "c": 0}
    fold_cycles: list[int] = []
    if cfg.dataflow == "os":
        kinds = [(_fold_os(cfg, mu, nu, k), mc * nc)
                 for mu, mc in _tiles(m, R * P) for nu, nc in _tiles(n, C)]
    else:
        kinds = []
        k_tiles = _tiles(k, R)
        n_k = sum(c for _, c in k_tiles)
        for nu, nc in _tiles(n, C):
            # The first K fold of a column strip reads no partial sums.
            first_used = k_tiles[0][0]
            kinds.append((_fold_ws(cfg, first_used, nu, m, True), nc))
            rest = [(ku, kc - (1 if idx == 0 else 0)) for idx, (ku, kc) in enumerate(k_tiles)]
            kinds += [(_fold_ws(cfg, ku, nu, m, False), kc * nc) for ku, kc in rest if kc]
        assert sum(c for _, c in kinds) == n_k * math.ceil(n / C)
    for ev, count in kinds:
        cycles += ev["cycles"] * count
        folds += count
        pe_ops += ev["pe_ops"] * count
        for op in reads:
            reads[op] += ev[op].size * count
        writes += ev["c"].size * count
        for op in peak:
            peak[op] = max(peak[op], _peak(ev[op]))
        fold_cycles += [ev["cycles"]] * count if count <= 4 else [ev["cycles"]]
    macs = m * n * k
    return Schedule(cycles=cycles, folds=folds, macs=macs, pe_ops=pe_ops, reads=reads,
                    writes=writes, peak=peak, utilization=macs / (R * C * cycles),
                    fold_cycles=fold_cycles)


def scalesim_cycles(rows: int, cols: int, dataflow: str, m: int, n: int, k: int) -> int:
    """SCALE-Sim's analytical runtime of a GEMM (arXiv 1811.02883, §III).

    One fold takes ``2*S_R + S_C + T - 2`` cycles with the array's ``R``, ``C`` for ``S_R``,
    ``S_C``; there are ``ceil(S_R / R) * ceil(S_C / C)`` folds. Mapping of ``C[M, N] = A[M, K] @
    B[K, N]``: output stationary ``S_R = M`` (output pixels), ``S_C = N`` (filters), ``T = K``
    (the window); weight stationary ``S_R = K``, ``S_C = N``, ``T = M``.
    """
    m, n, k = _check_shape(m, n, k)
    if dataflow == "os":
        sr, sc, t = m, n, k
    elif dataflow == "ws":
        sr, sc, t = k, n, m
    else:
        raise ArithforgeError(f"dataflow must be os or ws, not {dataflow!r}")
    return (2 * rows + cols + t - 2) * math.ceil(sr / rows) * math.ceil(sc / cols)


# -- numerics -----------------------------------------------------------------------------------

@dataclass
class SimResult:
    """:func:`simulate`'s result: the schedule and the output codes ``(M, N)``."""

    schedule: Schedule
    output: np.ndarray | None


def words(width: int) -> int:
    """64-bit words of an element of ``width`` bits: an array of elements wider than 64 bits
    carries them as a last axis of that many little-endian uint64 words (``(M, K, words)``), as
    the units take ports wider than 64 bits."""
    return (int(width) + 63) // 64


def _gemm_codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                       tuple[int, int, int]]:
    """``A`` (M, K) and ``B`` (K, N) as uint64 codes (a third axis of words for elements wider
    than 64 bits), and ``(M, N, K)``."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ArithforgeError(f"GEMM operands must be (M, K) and (K, N) code arrays (a third "
                              f"axis of 64-bit words for elements wider than 64 bits), not "
                              f"shapes {a.shape} and {b.shape}")
    (m, k), (k2, n) = a.shape[:2], b.shape[:2]
    if k != k2:
        raise ArithforgeError(f"GEMM operands must be (M, K) and (K, N), not {a.shape} and "
                              f"{b.shape}")
    return a, b, (m, n, k)


def _elements(x: np.ndarray, width: int, what: str) -> np.ndarray:
    """``x`` checked as elements of ``width`` bits: ``(R, C)`` codes up to 64 bits, ``(R, C,
    words)`` beyond."""
    nw = words(width)
    if nw == 1 and x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if (nw == 1 and x.ndim != 2) or (nw > 1 and (x.ndim != 3 or x.shape[-1] != nw)):
        raise ArithforgeError(f"{what} elements of {width} bits are {nw} 64-bit words each, not "
                              f"an array of shape {x.shape}")
    top = x if nw == 1 else x[..., -1]
    spare = width - 64 * (nw - 1)
    if x.size and spare < 64 and int(top.max()) >> spare:
        raise ArithforgeError(f"{what} holds codes wider than the PE's {width}-bit port")
    return x


def _operand_checks(pe: Datapath, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """A and B checked against the PE's element widths (words for wide ones); the
    accumulator (C, partial sums) must fit 64 bits."""
    from ..hdl.systolic import pe_roles

    wa, wb = int(pe.operand_widths[pe_roles(pe)[0]]), b_width(pe)
    if int(pe.result_width) > 64:
        raise ArithforgeError(f"array outputs (C) must be at most 64 bits, not "
                              f"{pe.result_width}; choose a smaller PE configuration")
    if words(wb) > 1 and len(pe_roles(pe)[1]) > 1:
        raise ArithforgeError(f"B elements of several operands must be at most 64 bits, not "
                              f"{wb}; choose a smaller PE configuration")
    return _elements(a, wa, "A"), _elements(b, wb, "B")


def outputs(cfg: ArrayConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Output codes of the array: each output the PE chain over ``k`` in order from ``+0``;
    weight stationary adds the pad operations of the last ``K`` fold's rows past ``K``."""
    from ..hdl.systolic import pad_codes, pe_roles

    pe = cfg.pe.build()
    a, b, (m, n, k) = _gemm_codes(a, b)
    a, b = _operand_checks(pe, a, b)
    a_op, b_ops = pe_roles(pe)

    def step(av: np.ndarray, bv: np.ndarray, acc: np.ndarray) -> np.ndarray:
        ops = {a_op: av, **split_b(pe, bv), "c": acc}
        return np.asarray(pe.reference(**ops), dtype=np.uint64)

    acc = np.zeros(m * n, dtype=np.uint64)
    for kk in range(k):
        acc = step(np.repeat(a[:, kk], n, axis=0), np.tile(b[kk], (m,) + (1,) * (b.ndim - 2)),
                   acc)
    if cfg.dataflow == "ws" and k % cfg.rows:
        pad_a, pad_b = pad_codes(pe)
        pa = np.full((m * n,) + a.shape[2:], 0, dtype=np.uint64)
        pb = np.full((m * n,) + b.shape[2:], 0, dtype=np.uint64)
        pa[..., 0], pb[..., 0] = pad_a, pad_b
        for _ in range(cfg.rows - k % cfg.rows):
            acc = step(pa, pb, acc)
    return acc.reshape(m, n)


def split_b(pe: Datapath, b: np.ndarray) -> dict[str, np.ndarray]:
    """A B element (the PE's B-side operands packed LSB first) split into its operands."""
    from ..hdl.systolic import pe_roles

    ops = pe_roles(pe)[1]
    if len(ops) == 1:
        return {ops[0]: b}  # one operand: the element as it is (words if wide)
    out, lo = {}, 0
    for op in ops:
        w = int(pe.operand_widths[op])
        out[op] = (b >> np.uint64(lo)) & np.uint64((1 << w) - 1)
        lo += w
    return out


def b_width(pe: Datapath) -> int:
    """Bits of a B element."""
    from ..hdl.systolic import pe_roles

    return sum(int(pe.operand_widths[op]) for op in pe_roles(pe)[1])


def simulate(cfg: ArrayConfig, a: np.ndarray, b: np.ndarray, *, numerics: bool = True
             ) -> SimResult:
    """Schedule and (with ``numerics``) output codes of ``A @ B`` on the array ``cfg``: ``A``
    (M, K) and ``B`` (K, N) array elements, a third axis of :func:`words` for elements wider
    than 64 bits."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ArithforgeError("GEMM operands must be 2-D code arrays (3-D: words of wide "
                              "elements)")
    sched = schedule(cfg, a.shape[0], b.shape[1], a.shape[1])
    return SimResult(sched, outputs(cfg, a, b) if numerics else None)


def random_operands(cfg: ArrayConfig, m: int, n: int, k: int, seed: int = 0, *,
                    raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random ``A`` (m, k) and ``B`` (k, n) codes for the PE of ``cfg``.

    Floats: unit-normal values rounded into the format (``raw``: uniform codes, NaN and inf
    included); integers: uniform codes.
    """
    from ..formats import FloatFormat

    m, n, k = _check_shape(m, n, k)
    pe = cfg.pe.build()
    rng = np.random.default_rng(seed)
    from ..hdl.systolic import pe_roles

    a_op, b_ops = pe_roles(pe)
    if tuple(pe.operands) != ("a", "b", "c") or a_op not in pe.formats:
        # Dot-product PEs (more operands, or packed a and b without an element format): their
        # own random transactions (packed), A side and B side; elements wider than 64 bits
        # as words (a last axis).
        wa, wb = int(pe.operand_widths[a_op]), b_width(pe)
        va = pe.test_cases(rng, "random", m * k)
        vb = pe.test_cases(rng, "random", k * n)
        ea = np.asarray(va[a_op], dtype=np.uint64).reshape((m, k) + ((-1,) if words(wa) > 1
                                                                    else ()))
        if len(b_ops) == 1:
            eb = np.asarray(vb[b_ops[0]], dtype=np.uint64)
            return ea, eb.reshape((k, n) + ((-1,) if words(wb) > 1 else ()))
        if words(wb) > 1:
            raise ArithforgeError(f"B elements of several operands must be at most 64 bits, "
                                  f"not {wb}; choose a smaller PE configuration")
        bundle = np.zeros(k * n, dtype=np.uint64)
        lo = 0
        for op in b_ops:
            bundle |= np.asarray(vb[op], dtype=np.uint64) << np.uint64(lo)
            lo += int(pe.operand_widths[op])
        return ea, bundle.reshape(k, n)
    out = []
    for op, shape in (("a", (m, k)), ("b", (k, n))):
        fmt = pe.formats[op]
        width = int(pe.operand_widths[op])
        if isinstance(fmt, FloatFormat) and not raw:
            codes = fmt.encode(rng.standard_normal(shape))
        else:
            codes = rng.integers(0, 1 << width, size=shape, dtype=np.uint64)
        out.append(np.asarray(codes, dtype=np.uint64))
    return out[0], out[1]


# -- tile engines ------------------------------------------------------------------------------

def _tile(cfg: ArrayConfig) -> tuple[Datapath, tuple[int, int, int]]:
    """The built PE and its ``(m, n, k)`` tile (its descriptor's ``tile``)."""
    pe = cfg.pe.build()
    d = cfg.pe.descriptor
    # The parameters as the generator took them: typed, defaults filled (build checked them).
    params = {k: p.parse(cfg.pe.kwargs[k]) if k in cfg.pe.kwargs else p.default
              for k, p in d.params.items()}
    tile = d.tile(params)
    if tile is None:
        raise ArithforgeError(f"PE {cfg.pe} takes single elements, not tiles: give its "
                              f"operands to simulate() as they are")
    return pe, tile


def _pack(el: np.ndarray, bits: int) -> np.ndarray:
    """``(n, count)`` element codes packed into ``(n,)`` codes, element 0 in the low bits;
    ``(n, words)`` 64-bit words (little-endian) beyond 64 bits."""
    el = el.astype(np.uint64)
    count = el.shape[1]
    if count * bits <= 64:
        shifts = np.arange(count, dtype=np.uint64) * np.uint64(bits)
        return np.bitwise_or.reduce(el << shifts, axis=1)
    out = np.zeros((el.shape[0], words(count * bits)), dtype=np.uint64)
    for i in range(count):
        word, shift = divmod(i * bits, 64)
        out[:, word] |= el[:, i] << np.uint64(shift)
        if shift + bits > 64:
            out[:, word + 1] |= el[:, i] >> np.uint64(64 - shift)
    return out


def _unpack(codes: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`_pack`: ``(n, count)`` element codes."""
    shifts = np.arange(count, dtype=np.uint64) * np.uint64(bits)
    mask = np.uint64((1 << bits) - 1)
    return (np.asarray(codes, dtype=np.uint64).reshape(-1, 1) >> shifts) & mask


def tile_operands(cfg: ArrayConfig, a: np.ndarray, w: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Element operands of a GEMM, ``A`` (M, K) and ``W`` (K, N) codes, as the tile elements an
    array of tile-engine PEs (a descriptor with a ``tile``: the LUT tensor core) streams:
    ``(ceil(M/m), ceil(K/k))`` packed A tiles and ``(ceil(K/k), ceil(N/n))`` packed B tiles
    (``m``, ``n``, ``k`` the PE's tile; row-major, element 0 in the low bits). Padding elements
    are code 0 (a zero activation adds nothing)."""
    from ..hdl.systolic import pe_roles

    pe, (tm, tn, tk) = _tile(cfg)
    a, w, (m, n, k) = _gemm_codes(a, w)
    mt, nt, kt = -(-m // tm), -(-n // tn), -(-k // tk)
    ap = np.zeros((mt * tm, kt * tk), dtype=np.uint64)
    ap[:m, :k] = a
    wp = np.zeros((kt * tk, nt * tn), dtype=np.uint64)
    wp[:k, :n] = w
    at = ap.reshape(mt, tm, kt, tk).transpose(0, 2, 1, 3).reshape(mt * kt, tm * tk)
    wt = wp.reshape(kt, tk, nt, tn).transpose(0, 2, 1, 3).reshape(kt * nt, tk * tn)
    wa, wb = int(pe.operand_widths[pe_roles(pe)[0]]), b_width(pe)
    bits_a, bits_w, _, _ = element_bits(cfg)
    pa, pw = _fit(_pack(at, bits_a), wa), _fit(_pack(wt, bits_w), wb)
    return pa.reshape((mt, kt) + pa.shape[1:]), pw.reshape((kt, nt) + pw.shape[1:])


def _fit(el: np.ndarray, width: int) -> np.ndarray:
    """Packed elements ``(n,)`` or ``(n, words)`` as elements of a ``width``-bit port (a last
    axis of :func:`words` beyond 64 bits)."""
    nw = words(width)
    el = el.reshape(el.shape[0], -1)
    out = np.zeros((el.shape[0], nw), dtype=np.uint64)
    out[:, :el.shape[1]] = el
    return out[:, 0] if nw == 1 else out


def untile_output(cfg: ArrayConfig, c: np.ndarray, m: int, n: int) -> np.ndarray:
    """The ``(M, N)`` accumulator codes of the output tiles :func:`simulate` returns for
    :func:`tile_operands` operands."""
    pe, (tm, tn, _) = _tile(cfg)
    c = np.asarray(c, dtype=np.uint64)
    mt, nt = c.shape
    el = _unpack(c.reshape(-1), tm * tn, int(pe.result_width) // (tm * tn))
    full = el.reshape(mt, nt, tm, tn).transpose(0, 2, 1, 3).reshape(mt * tm, nt * tn)
    return full[:m, :n]


# -- element operands: GEMMs given as element codes (simulate gemm --a/--b) ---------------------

def element_bits(cfg: ArrayConfig) -> tuple[int, int, int, tuple[int, int, int] | None]:
    """Bits of an A, a B and a C element code of ``cfg``'s element GEMMs, and the PE's tile
    (None: the array's elements are the GEMM's)."""
    from ..hdl.systolic import pe_roles

    pe = cfg.pe.build()
    a_op, _ = pe_roles(pe)
    wa, wb, wc = int(pe.operand_widths[a_op]), b_width(pe), int(pe.result_width)
    tile = _tile(cfg)[1] if _has_tile(cfg) else None
    if tile is not None:
        tm, tn, tk = tile
        wa -= int(getattr(pe, "control_bits", 0))
        scales = getattr(pe, "block_scales", None)
        if scales is not None:  # the block scale codes after the lanes
            wa -= tk // scales[0] * scales[1]
            wb -= tk // scales[0] * scales[1]
        out = pe.describe().get("output")  # the dot unit's final conversion
        if out is not None:
            from ..formats import get_format

            wc = get_format(out).bits
        return wa // (tm * tk), wb // (tk * tn), wc // (tm * tn), tile
    return wa, wb, wc, None


def _has_tile(cfg: ArrayConfig) -> bool:
    try:
        _tile(cfg)
    except ArithforgeError:
        return False
    return True


def _code_matrix(x: Any, what: str, bits: int) -> np.ndarray:
    """An integer matrix of codes of ``bits`` bits, as uint64."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ArithforgeError(f"{what} must be an integer array of codes, not {arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ArithforgeError(f"{what} must be a non-empty 2-D matrix of codes, not shape "
                              f"{arr.shape}")
    if int(arr.min()) < 0 or (bits < 64 and int(arr.max()) >> bits):
        raise ArithforgeError(f"{what} must hold {bits}-bit codes of the PE's element format, "
                              f"in [0, 2**{bits}); found {int(arr.min())}..{int(arr.max())}")
    return arr.astype(np.uint64)


def k_order(cfg: ArrayConfig) -> np.ndarray | None:
    """The order in which the PE's feed streams K (``pe.k_permutation``: a permutation within
    blocks of its length, K padded to whole blocks with zero codes), or None: K in order."""
    perm = getattr(cfg.pe.build(), "k_permutation", None)
    return None if perm is None else np.asarray(perm, dtype=np.int64)


def element_operands(cfg: ArrayConfig, a: Any, b: Any, a_scale: Any = None,
                     b_scale: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The array's elements of a GEMM given as element codes, ``A`` (M, K) and ``B`` (K, N):
    for a tile-engine PE (a descriptor with a ``tile``: the LUT core, the dot unit's 1 x 1 x n
    step) the packed tiles of :func:`tile_operands`, K padded with zero codes (in the PE's
    :func:`k_order`, if it has one); for a multiply-accumulate PE the codes as they are; for
    any other PE (``bitserial``) the files hold its packed array elements themselves.

    A PE that applies block scales (the dot unit's ``block_scales``: MX, NVFP4) takes their codes
    too: ``a_scale`` (M, K / block) and ``b_scale`` (K / block, N), scale ``j`` of a row of A
    (column of B) covering elements ``j * block`` to ``(j + 1) * block - 1``; the padding of K
    gets scale 1.0.

    Raises
    ------
    ArithforgeError
        A matrix that is not integer, not 2-D, or holds codes wider than the element, or shapes
        that do not chain (one line each).
    """
    from ..hdl.systolic import pe_roles

    bits_a, bits_b, _, tile = element_bits(cfg)
    a = _code_matrix(a, "A", bits_a)
    b = _code_matrix(b, "B", bits_b)
    if a.shape[1] != b.shape[0]:
        raise ArithforgeError(f"A and B must be M x K and K x N matrices, not shapes {a.shape} "
                              f"and {b.shape}")
    pe = cfg.pe.build()
    scales = getattr(pe, "block_scales", None) if tile is not None else None
    if scales is None and (a_scale is not None or b_scale is not None):
        raise ArithforgeError(f"PE {cfg.pe} applies no block scales: drop the scale files")
    if scales is not None:
        a_scale, b_scale = _block_scale_codes(pe, scales, a, b, a_scale, b_scale)
    if tile is None:
        return a, b
    # K padded with zero codes to whole blocks of the PE's feed (promotion windows, K order).
    k = a.shape[1]
    kb = -(-k // int(getattr(pe, "k_block", 1))) * int(getattr(pe, "k_block", 1))
    a = np.pad(a, ((0, 0), (0, kb - k)))
    b = np.pad(b, ((0, kb - k), (0, 0)))
    perm = k_order(cfg)
    if perm is not None:
        idx = (perm[None, :] + np.arange(0, kb, len(perm))[:, None]).reshape(-1)
        a, b = a[:, idx], b[idx, :]
    ea, eb = tile_operands(cfg, a, b)
    if scales is not None:
        n = int(tile[2])
        ea, eb = _put_scales(pe, scales, ea, eb, a_scale, b_scale, kb,
                             (n * bits_a, n * bits_b))
    cb = int(getattr(pe, "control_bits", 0))
    if cb:
        # Each step's control field (flush, last), the same for every row: it rides with A.
        ctrl = np.asarray(pe.step_control(ea.shape[1]), dtype=np.uint64)
        pos = int(pe.operand_widths[pe_roles(pe)[0]]) - cb
        word, shift = divmod(pos, 64)
        view = ea if ea.ndim == 3 else ea[..., None]
        view[:, :, word] |= ctrl[None, :] << np.uint64(shift)
        if shift + cb > 64:
            view[:, :, word + 1] |= ctrl[None, :] >> np.uint64(64 - shift)
        if cfg.dataflow == "ws" and ea.shape[1] % cfg.rows:
            # The weight-stationary array pads the last K fold with zero operations after the
            # chain, which would follow the `last` step; zero steps before it instead keep the
            # state at +0 (no flush among them), so the array pads nothing.
            extra = cfg.rows - ea.shape[1] % cfg.rows
            ea = np.concatenate([np.zeros((ea.shape[0], extra) + ea.shape[2:], np.uint64), ea],
                                axis=1)
            eb = np.concatenate([np.zeros((extra,) + eb.shape[1:], np.uint64), eb], axis=0)
    return ea, eb


def _block_scale_codes(pe: Any, scales: tuple[int, int, int], a: np.ndarray, b: np.ndarray,
                       a_scale: Any, b_scale: Any) -> tuple[np.ndarray, np.ndarray]:
    """The block scale matrices of a block-scaled PE, checked against ``A`` and ``B``."""
    block, bits, _ = scales
    if a_scale is None or b_scale is None:
        raise ArithforgeError(f"this PE applies a scale per {block} elements of K: give the "
                              f"block scale codes of A (M x K/{block}) and of B (K/{block} x N) "
                              f"(--a-scale, --b-scale)")
    m, k = a.shape
    n = b.shape[1]
    kb = -(-k // block)
    sa = _code_matrix(a_scale, "the scales of A", bits)
    sb = _code_matrix(b_scale, "the scales of B", bits)
    if sa.shape != (m, kb) or sb.shape != (kb, n):
        raise ArithforgeError(f"block scales must be M x ceil(K/{block}) = {m} x {kb} for A and "
                              f"{kb} x {n} for B, not {sa.shape} and {sb.shape}")
    return sa, sb


def _put_scales(pe: Any, scales: tuple[int, int, int], ea: np.ndarray, eb: np.ndarray,
                sa: np.ndarray, sb: np.ndarray, kp: int, lanes_bits: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Packed A and B steps (a 1 x 1 x n tile each, ``lanes_bits`` the bits of their lanes)
    with their block scale codes after the lanes; the blocks of K's padding take scale 1.0
    (code ``scales[2]``)."""
    block, bits, one = scales
    per = kp // ea.shape[1] // block  # scales per step

    def steps(s: np.ndarray) -> np.ndarray:
        """(rows, steps, per) scale codes of rows of K blocks, padding blocks 1.0."""
        out = np.full((s.shape[0], kp // block), one, dtype=np.uint64)
        out[:, :s.shape[1]] = s
        return out.reshape(s.shape[0], -1, per)

    out = []
    for el, sc, pos0 in ((ea, steps(sa), lanes_bits[0]),
                         (eb, steps(sb.T).transpose(1, 0, 2), lanes_bits[1])):
        view = el if el.ndim == 3 else el[..., None]
        for j in range(per):
            word, shift = divmod(pos0 + j * bits, 64)
            code = sc[..., j]
            view[..., word] |= code << np.uint64(shift)
            if shift + bits > 64:
                view[..., word + 1] |= code >> np.uint64(64 - shift)
        out.append(el)
    return out[0], out[1]


def element_output(cfg: ArrayConfig, c: np.ndarray, m: int, n: int) -> np.ndarray:
    """The ``(M, N)`` output codes of an element GEMM from the array's output elements
    (:func:`untile_output` for tile-engine PEs)."""
    if _has_tile(cfg):
        return untile_output(cfg, c, m, n)
    return np.asarray(c, dtype=np.uint64)


# -- roll-up: latency and energy ----------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _pe_cost(spec: PESpec, fmax: str) -> dict[str, float]:
    from ..costmodel import estimate

    pe = spec.build()
    est = estimate(pe.structure())
    out = {"energy_pj": float(est.energy_pj), "delay_ns": float(est.delay_ns)}
    if fmax == "synth":
        from ..costmodel import synth

        res = synth.synth_datapath(pe, "ice40", fmax=True)
        if not res.fmax_mhz:
            raise ArithforgeError(f"synthesis of PE {spec} gave no Fmax")
        out["fmax_mhz"] = float(res.fmax_mhz)
    else:
        out["fmax_mhz"] = 1e3 / max(est.delay_ns, 1e-3)
    return out


def _sram_pj_per_bit() -> float:
    from ..costmodel import load_tech

    return float(load_tech().cell("sram_bit").energy_pj)


def _shapes(gemms: Iterable[Any]) -> list[tuple[int, int, int, int]]:
    out = []
    for g in gemms:
        if isinstance(g, Mapping):
            out.append((int(g["M"]), int(g["N"]), int(g["K"]), int(g.get("batch", 1))))
        elif hasattr(g, "M"):
            out.append((int(g.M), int(g.N), int(g.K), int(getattr(g, "batch", 1))))
        else:
            t = tuple(int(x) for x in g)
            if len(t) not in (3, 4):
                raise ArithforgeError(f"a GEMM is (M, N, K) or (M, N, K, batch), not {g!r}")
            out.append(t if len(t) == 4 else (*t, 1))  # type: ignore[arg-type]
    return out


def gemm_objectives(gemms: Iterable[Any], *, pe: str | PESpec | None = None,
                    array: str | tuple[int, int] = (8, 8), dataflow: str = "os",
                    fmax: str = "analytical", dram_pj_per_bit: float = DRAM_PJ_PER_BIT
                    ) -> dict[str, Any]:
    """Latency and energy of running ``gemms`` one after another on a systolic array.

    Parameters
    ----------
    gemms : iterable
        ``(M, N, K)``, ``(M, N, K, batch)``, mappings with keys ``M``, ``N``, ``K`` (``batch``),
        or objects with those attributes (``arithforge.workloads.GEMM``). ``C[M, N] = A[M, K] @
        B[K, N]``, ``batch`` independent copies.
    pe : str or PESpec, optional
        PE spec (:func:`parse_pe`); by default :func:`default_pe` (the FMA of e4m3 operands into
        float32 with the built-in datapaths).
    array : "RxC" or (rows, cols)
    dataflow : "os" or "ws"
    fmax : "analytical" or "synth"
        Clock: ``1 / delay`` of the PE's critical path from the cost model, or the post-route
        Fmax of the PE on iCE40 (``costmodel.synth``, cached on disk; needs Yosys and nextpnr).
        The array's register-to-register paths are one PE plus the accumulator multiplexer.
    dram_pj_per_bit : float
        DRAM access energy; every operand crosses DRAM once (A and B in, C out).

    Returns
    -------
    dict
        ``latency_s``, ``energy_pj`` (``pe_energy_pj + sram_energy_pj + dram_energy_pj``),
        ``cycles``, ``macs``, ``utilization`` (``macs / (rows * cols * cycles)``), ``fmax_mhz``,
        ``pe_energy_pj`` (per-op energy x PE operations issued, padding included),
        ``sram_energy_pj`` (bits read and written in SRAM x the technology's SRAM bit energy:
        A and B codes at their widths, partial sums and outputs at the accumulator's),
        ``dram_energy_pj``, ``sram_bits``, ``dram_bits``, ``per_gemm`` (a list of the same per
        shape). Narrower operand formats move fewer bits, so they cost less SRAM and DRAM energy.
    """
    if pe is None:
        pe = default_pe()
    spec = parse_pe(pe) if isinstance(pe, str) else pe
    rows, cols = parse_array(array) if isinstance(array, str) else (int(array[0]), int(array[1]))
    cfg = ArrayConfig(rows, cols, dataflow, spec)
    if fmax not in ("analytical", "synth"):
        raise ArithforgeError(f"fmax must be analytical or synth, not {fmax!r}")
    cost = _pe_cost(spec, fmax)
    from ..hdl.systolic import pe_roles

    built = spec.build()
    wa, wb, wc = (int(built.operand_widths[pe_roles(built)[0]]), b_width(built),
                  int(built.result_width))
    sram_bit = _sram_pj_per_bit()
    per: list[dict[str, Any]] = []
    totals = {"cycles": 0, "macs": 0, "pe_ops": 0, "sram_bits": 0, "dram_bits": 0}
    for m, n, k, batch in _shapes(gemms):
        s = schedule(cfg, m, n, k)
        sram_bits = s.reads["a"] * wa + s.reads["b"] * wb + (s.reads["psum"] + s.writes) * wc
        dram_bits = m * k * wa + k * n * wb + m * n * wc
        row: dict[str, Any] = {"M": m, "N": n, "K": k, "batch": batch, "cycles": s.cycles * batch,
               "utilization": s.utilization, "macs": s.macs * batch,
               "pe_ops": s.pe_ops * batch, "sram_bits": sram_bits * batch,
               "dram_bits": dram_bits * batch}
        per.append(row)
        for key in totals:
            totals[key] += row[key]
    if not per:
        raise ArithforgeError("no GEMM to simulate")
    pe_e = cost["energy_pj"] * totals["pe_ops"]
    sram_e = sram_bit * totals["sram_bits"]
    dram_e = float(dram_pj_per_bit) * totals["dram_bits"]
    return {
        "latency_s": totals["cycles"] / (cost["fmax_mhz"] * 1e6),
        "energy_pj": pe_e + sram_e + dram_e,
        "cycles": totals["cycles"], "macs": totals["macs"],
        "utilization": totals["macs"] / (rows * cols * totals["cycles"]),
        "fmax_mhz": cost["fmax_mhz"], "fmax_source": fmax,
        "pe_energy_pj": pe_e, "sram_energy_pj": sram_e, "dram_energy_pj": dram_e,
        "sram_bits": totals["sram_bits"], "dram_bits": totals["dram_bits"],
        "pe_ops": totals["pe_ops"], "per_gemm": per,
        "config": {"array": f"{rows}x{cols}", "dataflow": dataflow, "pe": str(spec)},
    }


def workload_objectives(trace: Any, **options: Any) -> dict[str, Any]:
    """:func:`gemm_objectives` of every GEMM node of a trace (a ``Trace`` or its directory):
    ``M``, ``N``, ``K`` and ``batch`` of each, traced or not; ``options`` as there."""
    from ..workloads.trace import load_trace

    own = not hasattr(trace, "graph")
    tr = load_trace(Path(trace)) if own else trace
    try:
        gemms = [dict(M=d["M"], N=d["N"], K=d["K"], batch=d.get("batch", 1))
                 for _, d in tr.graph.nodes(data=True) if d.get("kind") == "gemm"]
        out = gemm_objectives(gemms, **options)
        out["workload"] = tr.name
        return out
    finally:
        if own:
            tr.close()
