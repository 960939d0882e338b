"""Data-dependent energy: toggle counts of a datapath's Verilator model on an operand stream.

The analytical model's energy (:func:`~.model.estimate`) is for uniformly random operand codes.
Real operands are not uniform: Gaussian activations encoded in a float format keep their exponent
bits near the bias and flip few of them; integers near zero keep their sign-extension bits.
:func:`arithforge.sim.activity.data_energy` runs the datapath in the Verilator harness of
``arithforge.sim`` with VCD tracing, on a uniformly random stream and on the stream of interest,
counts bit toggles of every net inside the datapath (:func:`count_toggles`), and scales the
analytical energy by the ratio:

    energy(stream) = energy(uniform) * toggles(stream) / toggles(uniform)

so one average energy per toggle, calibrated on the uniform stream, carries the activity of the
data. Streams (:func:`operand_stream`): ``uniform`` codes; ``gaussian``, ``laplace``,
``student-t3`` values (:func:`arithforge.workloads.synthetic.sample`) encoded in each operand's
format; ``trace:DIR``: activations and weights of the first GEMM of a workload trace.

This module holds what needs no simulator (the streams, the VCD toggle count, the report); the
Verilator run lives in :mod:`arithforge.sim.activity`, since the cost model imports nothing of
``arithforge.sim`` (the layers of ``pyproject.toml``'s ``[tool.importlinter]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._errors import ArithforgeError

__all__ = ["DEFAULT_STREAM_VECTORS", "MAX_STREAM_VECTORS", "STREAMS", "Toggles",
           "ActivityReport", "check_stream", "count_toggles", "operand_stream"]

#: Named operand distributions besides ``trace:DIR``.
STREAMS = ("uniform", "gaussian", "laplace", "student-t3")
#: Operations simulated per stream by default, and at most (the VCD grows with them: 10^4 take
#: seconds, 10^6 gigabytes).
DEFAULT_STREAM_VECTORS = 10_000
MAX_STREAM_VECTORS = 1_000_000

#: Signals that toggle whatever the data: not part of a datapath's switching activity.
_CLOCKING = ("clk", "rst")


@dataclass(frozen=True)
class Toggles:
    """Bit toggles counted in a VCD file.

    Members
    -------
    total : int
        Toggles of every counted net, each net once however many scopes show it.
    per_signal : dict of str to int
        Toggles by net (its first hierarchical name).
    bits : int
        Bits of the counted nets.
    """

    total: int
    per_signal: Mapping[str, int]
    bits: int


def _value(text: str) -> int:
    # Two-state view: x and z read as 0 (the harness builds with --x-assign fast anyway).
    return int(text.translate(str.maketrans("xXzZ", "0000")) or "0", 2)


def count_toggles(vcd: IO[str], scope: str | None = None) -> Toggles:
    """Count bit toggles per net in a VCD stream.

    Parameters
    ----------
    vcd : text stream
    scope : str, optional
        Count only nets declared under this dotted scope (``harness_top.u0`` matches
        ``TOP.harness_top.u0`` and everything below it); default all.

    The first value a net takes (``$dumpvars``) is not a toggle; a vector net toggles by the
    Hamming distance between successive values. Clock and reset nets are left out.

    Read by hand on purpose (issue 15 looked for a library): pyvcd 0.4, the release amaranth 0.5
    allows, rejects the ``$45`` names Amaranth gives internal nets; pyvcd 0.5.1 reads them and
    gives the same counts 4 to 7 times slower; vcdvcd splits lines as this does, with the bit
    range glued to the name; Verilator's ``--coverage-toggle`` needs a coverage build of the
    harness and a reader of ``coverage.dat`` (not tried). A recorded trace pins the numbers
    (``tests/costmodel/test_activity.py``).
    """
    names: dict[str, str] = {}
    widths: dict[str, int] = {}
    stack: list[str] = []
    for line in vcd:
        words = line.split()
        if not words:
            continue
        if words[0] == "$scope":
            stack.append(words[2])
        elif words[0] == "$upscope":
            stack.pop()
        elif words[0] == "$var":
            width, code, name = int(words[2]), words[3], words[4]
            path = ".".join(stack)
            inside = scope is None or f".{scope}." in f".{path}."
            if inside and name not in _CLOCKING and code not in names:
                names[code] = f"{path}.{name}"
                widths[code] = width
        elif words[0] == "$enddefinitions":
            break
    last: dict[str, int] = {}
    counts = dict.fromkeys(names, 0)
    for line in vcd:
        head = line[:1]
        if head in ("#", "$", "") or line.isspace():
            continue
        if head in ("b", "B", "r", "R"):
            if head in ("r", "R"):
                continue
            value_text, _, code = line[1:].strip().partition(" ")
            value = _value(value_text)
        else:
            code = line[1:].strip()
            value = _value(head)
        if code not in counts:
            continue
        old = last.get(code)
        if old is not None:
            counts[code] += (old ^ value).bit_count()
        last[code] = value
    per_signal = {names[c]: n for c, n in sorted(counts.items(), key=lambda kv: -kv[1])}
    return Toggles(sum(counts.values()), per_signal, sum(widths.values()))


# -- operand streams ----------------------------------------------------------------------------

def _formats(dp: Any) -> dict[str, Any]:
    """Format of each operand, where the datapath says (its ``formats`` property)."""
    from ..formats import get_format

    found = getattr(dp, "formats", None) or {}
    return {op: get_format(f) if isinstance(f, str) else f for op, f in found.items()
            if op in dp.operands}


def _element_formats(dp: Any, widths: dict[str, int]) -> dict[str, tuple[Any, int]]:
    """Packed ports: ``op -> (element format, elements)`` from ``describe()["element_formats"]``
    (a tile's ``a`` holds ``M*K`` activation codes, element 0 in the low bits), for ports whose
    width is a whole number of two or more elements."""
    from ..formats import get_format

    describe = getattr(dp, "describe", None)
    found = (describe() if callable(describe) else {}).get("element_formats") or {}
    out = {}
    for op, f in found.items():
        if op not in widths:
            continue
        fmt = get_format(f) if isinstance(f, str) else f
        count, rest = divmod(widths[op], int(fmt.bits))
        if count >= 2 and rest == 0:
            out[op] = (fmt, count)
    return out


def _pack(fields: np.ndarray, bits: int, width: int) -> np.ndarray:
    """``(n, count)`` codes of ``bits`` each into a port of ``width`` bits, element 0 in the low
    bits: 1-D ``uint64`` codes up to 64 bits, else ``(n, words)`` little-endian ``uint64`` words
    (the harness's wide-port layout)."""
    f = fields.astype(np.uint64)
    n, count = f.shape
    words = np.zeros((n, (width + 63) // 64), dtype=np.uint64)
    for k in range(count):
        word, shift = divmod(k * bits, 64)
        words[:, word] |= f[:, k] << np.uint64(shift)
        if shift + bits > 64:
            words[:, word + 1] |= f[:, k] >> np.uint64(64 - shift)
    return words[:, 0] if width <= 64 else words


def _encode(fmt: Any, values: np.ndarray, width: int, *, scale: bool = True) -> np.ndarray:
    """Codes of ``values`` in ``fmt``, saturating. Floats take the values as they are (unit
    variance suits every float format down to FP4); fixed-point and integer formats get
    per-tensor absmax scaling onto their largest value when ``scale``, as quantization does."""
    from ..formats import FloatFormat

    if scale and not isinstance(fmt, FloatFormat):
        peak = float(np.max(np.abs(values))) or 1.0
        values = values * (float(fmt.max_finite) / peak)
    codes = np.asarray(fmt.encode(values, saturate=True)).astype(np.uint64)
    return codes & np.uint64((1 << width) - 1)


#: Products per partial sum in the accumulator operand of a multiply-add stream.
BLOCK = 64


def _partial_sums(products: np.ndarray) -> np.ndarray:
    """The accumulator each product is added to: the sum of the products before it in its block
    of :data:`BLOCK` (zero at the start of a block), as in a dot product of length BLOCK."""
    out = np.empty_like(products)
    for start in range(0, len(products), BLOCK):
        block = products[start:start + BLOCK]
        out[start:start + BLOCK] = np.concatenate([[0.0], np.cumsum(block)[:-1]])
    return out


def _trace_values(path: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from ..workloads import load_trace

    with load_trace(path) as trace:
        if not trace.gemms:
            raise ArithforgeError(f"trace {path!r} has no GEMM")
        x, w, *_ = trace.operands(trace.gemms[0].name)
        x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    rows = rng.integers(0, x.shape[0], n)
    cols = rng.integers(0, w.shape[0], n)
    ks = rng.integers(0, x.shape[1], n)
    return x[rows, ks], w[cols, ks]


def check_stream(stream: str) -> str:
    """Check an operand stream's name before any work; return it.

    Raises
    ------
    ArithforgeError
        For an unknown stream, or ``trace:DIR`` whose DIR is not a folder.
    """
    from ..workloads.synthetic import DISTRIBUTIONS

    if stream in STREAMS or stream in DISTRIBUTIONS:
        return stream
    if stream.startswith("trace:"):
        folder = stream.partition(":")[2]
        if not folder or not Path(folder).is_dir():
            raise ArithforgeError(f"operand stream {stream!r} must name a trace folder (make "
                                  f"one with `arithforge trace`)")
        return stream
    raise ArithforgeError(f"operand stream must be one of {', '.join(STREAMS)} or trace:DIR, "
                          f"not {stream!r}")


def operand_stream(dp: Any, stream: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` operand vectors for ``dp`` drawn from ``stream``.

    ``uniform``: uniformly random codes of every operand. ``gaussian``/``laplace``/
    ``student-t3``: the first two operands are values of unit variance encoded into their formats
    (integers absmax-scaled); ``trace:DIR``: they are activations and weights of the first GEMM
    of the trace. A third operand with a format is the accumulator of a dot product: the partial
    sum of the products of the decoded first two operands, in blocks of :data:`BLOCK`. Operands
    without a format (``rand`` of stochastic rounding) get uniform codes.

    Packed ports (a tile's vector of activation codes, whose element format the datapath gives
    as ``describe()["element_formats"]``) get one value of the stream per element, encoded and
    packed (from the third operand on, accumulators: unscaled values, Gaussian for a trace);
    packed ports without an element format (weight codes, selectors) get uniform codes.

    Raises
    ------
    ArithforgeError
        For an unknown stream, or when no operand has a format to encode the stream into (every
        operand would be uniform codes, and the "data-dependent" energy would be the uniform
        one).
    """
    from ..workloads.synthetic import DISTRIBUTIONS, sample

    rng = np.random.default_rng(seed)
    widths = {op: int(dp.operand_widths[op]) for op in dp.operands}

    def uniform(op: str) -> np.ndarray:
        width = widths[op]
        if width <= 64:
            return rng.integers(0, 1 << width, n, dtype=np.uint64)
        # Wider ports: (n, words) little-endian uint64 words, the top word masked.
        words = rng.integers(0, 1 << 64, (n, (width + 63) // 64), dtype=np.uint64)
        words[:, -1] &= np.uint64((1 << (width - 64 * (words.shape[1] - 1))) - 1)
        return words

    if stream == "uniform":
        return {op: uniform(op) for op in dp.operands}
    formats = _formats(dp)
    if stream.startswith("trace:"):
        x, w = _trace_values(stream.partition(":")[2], n, rng)
        values = [x, w]
    elif stream in DISTRIBUTIONS:
        values = []
    else:
        raise ArithforgeError(f"operand stream must be one of {', '.join(STREAMS)} or "
                              f"trace:DIR, not {stream!r}")
    packed = {op: fc for op, fc in _element_formats(dp, widths).items() if op not in formats}
    out = {}
    encoded = []  # operands that carry the stream
    ops = list(dp.operands)
    for i, op in enumerate(ops):
        if op in packed:
            fmt, count = packed[op]
            if values and i < 2:
                v = np.resize(values[i], n * count)
            else:
                v = sample("gaussian" if values else stream, rng, (n * count,))
            codes = _encode(fmt, np.asarray(v, dtype=np.float64), int(fmt.bits),
                            scale=i < 2).reshape(n, count)
            out[op] = _pack(codes, int(fmt.bits), widths[op])
        elif op not in formats:
            out[op] = uniform(op)
            continue
        elif i < 2:
            v = values[i] if values else sample(stream, rng, (n,)).astype(np.float64)
            out[op] = _encode(formats[op], v, widths[op])
        elif i == 2 and all(o in formats for o in ops[:2]):
            a, b = (np.asarray(formats[o].decode(out[o]), dtype=np.float64) for o in ops[:2])
            out[op] = _encode(formats[op], _partial_sums(a * b), widths[op], scale=False)
        else:
            out[op] = uniform(op)
            continue
        encoded.append(op)
    if not encoded:
        raise ArithforgeError(
            f"{type(dp).__name__}: no operand has a format to encode a {stream} stream into "
            f"(neither its formats property nor describe()['element_formats'] names one), so "
            f"every operand would be uniform codes; use the uniform stream")
    return out


# -- energy -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivityReport:
    """Analytical (uniform-activity) energy next to the data-dependent one.

    Members
    -------
    stream : str
    vectors : int
    energy_pj : float
        Analytical estimate: uniformly random operands.
    data_energy_pj : float
        Scaled by the toggles of ``stream`` relative to the uniform stream.
    toggles_per_op : float
        Of ``stream``.
    uniform_toggles_per_op : float
    top_signals : list of (str, float)
        The nets that toggle most per operation on ``stream``.
    """

    stream: str
    vectors: int
    energy_pj: float
    data_energy_pj: float
    toggles_per_op: float
    uniform_toggles_per_op: float
    top_signals: list[tuple[str, float]]

    @property
    def activity(self) -> float:
        """Toggles of the stream over toggles of the uniform stream."""
        return self.toggles_per_op / self.uniform_toggles_per_op

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {"stream": self.stream, "vectors": self.vectors,
                "energy_pj": round(self.energy_pj, 5),
                "data_energy_pj": round(self.data_energy_pj, 5),
                "activity": round(self.activity, 4),
                "toggles_per_op": round(self.toggles_per_op, 2),
                "uniform_toggles_per_op": round(self.uniform_toggles_per_op, 2),
                "top_signals": [[s, round(t, 3)] for s, t in self.top_signals]}
