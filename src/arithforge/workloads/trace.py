# Ref: NumPy NEP 1, "A simple file format for NumPy arrays" (.npy, version 1.0 header)
# Ref: PKWARE APPNOTE.TXT 6.3.10 §4.3.7 (local file header), §4.4.6 (MS-DOS date/time fields)
"""Trace directories: an op graph, the operands of its GEMMs and how they were recorded.

A trace is a directory of three files, read back with :func:`load_trace` using only numpy,
networkx and json (no torch):

``graph.json``
    The op graph as a directed networkx node-link document (``nx.node_link_data(G,
    edges="edges")``). Nodes are in execution order. Every node has ``kind`` (``"input"``,
    ``"output"``, ``"gemm"`` or ``"op"``), ``op`` (``"linear"``, ``"conv2d"``, ``"matmul"``,
    ``"layer_norm"``, ``"gelu"``, ...) and ``layer`` (the module path that ran it, ``""`` for the
    root). GEMM nodes also have ``M``, ``N``, ``K`` (``Y[M, N] = X[M, K] @ W[N, K].T + b``),
    ``batch`` (independent GEMMs of that shape, e.g. attention heads) and ``traced``. Traced GEMMs
    carry ``rows`` (rows of X and Y stored) and ``tensors``, a map from ``"x"``, ``"w"``, ``"y"``
    and optionally ``"b"`` and ``"rows"`` to keys of ``tensors.npz``; where padding rows were
    left out of ``M`` (the pad tokens of a batch of sentences), ``M_padded`` is the M that ran.
    Edges are dataflow.

    Attention GEMMs (``scaled_dot_product_attention`` split into QK^T, softmax and PV) stay
    ``kind="gemm"`` nodes (``op="matmul"``, so MAC counts include them) with ``role``
    ``"attn_qk"`` or ``"attn_pv"`` and, when traced, ``attn_tensors`` and ``slices``: per-head
    operands of a sample of sentences (:class:`AttnGEMM`). Nonlinear ``kind="op"`` nodes
    (``softmax``, ``gelu``, ``layer_norm``) that were traced have ``params`` (``eps``,
    ``normalized_shape``, ``approximate``, ``dim``, ``scale``), ``rows``, ``M`` and ``tensors``
    (``x``, ``y``, and ``weight``, ``bias``, ``rows``; or ``attn_tensors`` for the softmax
    inside attention). Traces without them (older ones) load unchanged.
``tensors.npz``
    The operands of each traced GEMM: X (``rows × K``), W (``N × K``), bias (``N``), the reference
    fp32 output Y (``rows × N``), and, where X and Y are a sample of the ``M`` rows, the sorted
    row indices taken (``rows``). Keys are ``<gemm>/<operand>``; operands shared by several GEMMs
    (the one input of the query, key and value projections, a reused weight) are stored once
    and named by each. Workload-level arrays live under ``input/`` and ``reference/``.
``meta.json``
    The workload, its inputs, the sampling rule, how the reference was computed and the
    versions of the libraries that produced the trace.

Traces are deterministic: building one twice gives the same bytes. :func:`save_npz` writes the
archive itself with a fixed zip timestamp and fixed attributes (``np.savez`` stamps the current
time), and JSON is written with sorted keys.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import networkx as nx
import numpy as np

from .._errors import ArithforgeError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "AttnGEMMOverride",
    "GEMM",
    "AttnGEMM",
    "GEMMOperands",
    "NonlinearOp",
    "GEMMOverride",
    "TensorStore",
    "Trace",
    "load_trace",
    "sample_rows",
    "save_npz",
    "write_trace",
]

#: Value of ``meta.json``'s ``"format"`` field.
FORMAT = "arithforge-trace"
#: Version of the layout described in this module; :func:`load_trace` refuses other versions.
FORMAT_VERSION = 1

#: A replacement for one GEMM in a forward pass: ``override_fn(layer_name, x, w, b) -> y`` with
#: ``x`` of shape ``(M, K)``, ``w`` ``(N, K)``, ``b`` ``(N,)`` or ``None``, all float32, returning
#: ``y`` of shape ``(M, N)`` including the bias. Accuracy evaluation passes one that emulates a
#: number format.
GEMMOverride = Callable[[str, np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]

#: A replacement for one head's attention GEMM: ``attn_fn(role, x, w) -> y`` with ``role``
#: ``"attn_qk"`` or ``"attn_pv"``, ``y = x @ w.T`` of shape ``(rows of x, rows of w)``; all float32.
AttnGEMMOverride = Callable[[str, np.ndarray, np.ndarray], np.ndarray]

# 1980-01-01 00:00:00, the earliest MS-DOS date a zip entry can carry.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Floats barely compress past level 1; im2col operands and ReLU outputs (many zeros) do at 1 too.
_ZIP_LEVEL = 1

GRAPH_FILE = "graph.json"
TENSORS_FILE = "tensors.npz"
META_FILE = "meta.json"


@dataclass(frozen=True)
class GEMM:
    """One traced GEMM ``Y[M, N] = X[M, K] @ W[N, K].T + b``.

    Parameters
    ----------
    name : str
        Node name in the graph; for a module, its path (``encoder.layer.0.attention.self.query``).
    op : str
        ``"linear"`` or ``"conv2d"`` (lowered with im2col: ``M`` is output pixels, ``K`` is
        ``C_in * kh * kw`` in that order).
    M, N, K : int
        The GEMM's shape: rows of activations, output features, reduction length.
    layer : str
        Module path or layer name that ran it.
    rows : int
        Rows of X and Y stored in the trace: ``M``, or fewer when they are a sample.
    has_bias : bool
    """

    name: str
    op: str
    M: int
    N: int
    K: int
    layer: str
    rows: int
    has_bias: bool

    @property
    def sampled(self) -> bool:
        """Whether X and Y hold a sample of the ``M`` rows rather than all of them."""
        return self.rows < self.M

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the full GEMM, ``M * N * K``."""
        return self.M * self.N * self.K


@dataclass(frozen=True)
class AttnGEMM:
    """One traced attention GEMM, per head: ``Y[L, N] = X[L, K] @ W[N, K].T`` for each slice.

    ``role`` is ``"attn_qk"`` (X = Q, W = K, Y = QK^T unscaled: N = K-side tokens, K = head
    dim) or ``"attn_pv"`` (X = P, the softmax output; W = V^T: N = head dim, K = tokens). The
    arrays in ``tensors`` are ``(slices, Lmax, .)``, zero beyond slice ``i``'s length
    ``lengths[i]`` (real tokens); ``slices`` holds ``(sentence, head)`` of each.
    """

    name: str
    role: str
    layer: str
    slices: int
    tensors: dict[str, str]

    def operands(self, trace: Trace, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X, W and Y of slice ``i``, cut to its real tokens."""
        n = int(trace.tensors[self.tensors["lengths"]][i])
        x, w, y = (trace.tensors[self.tensors[o]][i] for o in ("x", "w", "y"))
        if self.role == "attn_qk":
            return x[:n], w[:n], y[:n, :n]
        return x[:n, :n], w[:, :n], y[:n]


@dataclass(frozen=True)
class NonlinearOp:
    """One traced nonlinear op (``softmax``, ``gelu``, ``layer_norm``): input and output rows."""

    name: str
    op: str
    layer: str
    rows: int
    params: dict[str, Any]
    tensors: dict[str, str]

    @property
    def in_attention(self) -> bool:
        """Whether this is the softmax inside attention (stored per head, with lengths)."""
        return "lengths" in self.tensors


class GEMMOperands(NamedTuple):
    """Arrays of one traced GEMM, as stored (float32; ``rows`` is int64)."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    y: np.ndarray
    rows: np.ndarray | None


class TensorStore(Mapping[str, np.ndarray]):
    """Read-only, lazy view of ``tensors.npz``: each lookup reads one array from the archive.

    Opening reads the archive's directory and every array's ``.npy`` header (shape and dtype),
    not the data.

    Parameters
    ----------
    path : path-like

    Raises
    ------
    ArithforgeError
        If the file is not a zip archive of ``.npy`` arrays (truncated, overwritten, an array
        that needs pickle); a lookup raises it too when an array's data turns out damaged.
    """

    def __init__(self, path: str | Path, *, remake: str = "") -> None:
        self._path = Path(path)
        self._remake = remake or remake_hint(self._path.parent)
        self._npz: Any = None
        self._headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
        try:
            with zipfile.ZipFile(self._path) as zf:
                for member in zf.namelist():
                    if member.endswith(".npy"):
                        self._headers[member[: -len(".npy")]] = _npy_header(zf, member)
        except _DAMAGED as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: BaseException, key: str | None = None) -> ArithforgeError:
        what = "" if key is None else f" (array {key!r})"
        return ArithforgeError(f"{str(self._path)!r} is damaged{what}: {_reason(exc)}; "
                               f"{self._remake}")

    def _archive(self) -> Any:
        if self._npz is None:
            self._npz = np.load(self._path, allow_pickle=False)
        return self._npz

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._headers:
            raise KeyError(key)
        try:
            return np.asarray(self._archive()[key])
        except _DAMAGED as exc:
            raise self._damaged(exc, key) from None

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype of the array ``key``, from its header (the data is not read)."""
        return self._headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __contains__(self, key: object) -> bool:
        return key in self._headers

    def close(self) -> None:
        """Close the archive; a later lookup opens it again."""
        if self._npz is not None:
            self._npz.close()
            self._npz = None

    def __repr__(self) -> str:
        return f"TensorStore({str(self._path)!r}, {len(self)} arrays)"


#: What reading a damaged archive raises: zipfile's and zlib's errors, a short read, a bad
#: ``.npy`` header (ValueError, also numpy's refusal of pickled object arrays).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError)

def remake_hint(root: Path, workload: object = None) -> str:
    """The advice a damaged-trace error ends with: the ``arithforge trace`` command to re-run."""
    from .registry import WORKLOADS

    name = workload if isinstance(workload, str) and workload in WORKLOADS else "WORKLOAD"
    return f"re-run `arithforge trace {name} -o {root}` to write the trace again"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _npy_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    if dtype.hasobject:
        raise ValueError(f"array {member!r} holds Python objects ({dtype}), which a trace "
                         "never stores")
    return tuple(int(d) for d in shape), dtype


@dataclass
class Trace:
    """A trace read back from its directory; arrays are read on demand.

    Parameters
    ----------
    path : Path
        The trace directory.
    graph : networkx.DiGraph
        The op graph (see the module documentation for node attributes).
    gemms : list of GEMM
        The traced GEMMs in execution order.
    meta : dict
        Contents of ``meta.json``.
    tensors : TensorStore
        Every array of ``tensors.npz`` by key.
    """

    path: Path
    graph: Any
    gemms: list[GEMM]
    meta: dict[str, Any]
    tensors: TensorStore = field(repr=False)
    attn_gemms: list[AttnGEMM] = field(default_factory=list)
    nonlinear: list[NonlinearOp] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Name of the workload the trace records."""
        return str(self.meta.get("workload", self.path.name))

    def gemm(self, name: str) -> GEMM:
        """Return the traced GEMM called ``name``."""
        for g in self.gemms:
            if g.name == name:
                return g
        raise KeyError(f"trace {self.name!r} has no traced GEMM {name!r}")

    def operands(self, name: str) -> GEMMOperands:
        """Read the operands of the traced GEMM ``name``.

        Raises
        ------
        ArithforgeError
            If an operand holds NaN or infinity (a trace records finite fp32 values) or its data
            is damaged.
        """
        self.gemm(name)
        keys = self.graph.nodes[name]["tensors"]
        arrays = {operand: self.tensors[key] for operand, key in keys.items()}
        for operand in ("x", "w", "b", "y"):
            a = arrays.get(operand)
            if a is not None and not np.isfinite(a).all():
                bad = int((~np.isfinite(a)).sum())
                raise ArithforgeError(
                    f"trace {str(self.path)!r} holds non-finite values (NaN or infinity) in "
                    f"tensor {keys[operand]!r}, the {_OPERANDS[operand]} of GEMM {name!r} "
                    f"({bad} of {a.size}): the model overflowed when it was traced, or the file "
                    f"was altered; {remake_hint(self.path, self.meta.get('workload'))}")
        return GEMMOperands(x=arrays["x"], w=arrays["w"], b=arrays.get("b"), y=arrays["y"],
                            rows=arrays.get("rows"))

    def close(self) -> None:
        """Close the tensor archive."""
        self.tensors.close()

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPERANDS = {"x": "input", "w": "weight", "b": "bias", "y": "output"}


def sample_rows(m: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Choose which of ``m`` rows a trace stores: ``None`` (all of them) or sorted indices.

    The choice depends only on ``(m, max_rows, seed)``, so GEMMs with the same number of rows (all
    the projections of a transformer, fed the same tokens) keep the same rows, and a sampled
    output of one layer lines up with the sampled input of the next.
    """
    if max_rows is None or m <= max_rows:
        return None
    rng = np.random.default_rng([seed, m])
    return np.sort(rng.choice(m, size=max_rows, replace=False)).astype(np.int64)


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` archive ``np.load`` reads, with the same bytes every time.

    Entries are deflated, in the order given, each stamped 1980-01-01 with fixed attributes.
    Arrays are written C-contiguous and without pickling, so object arrays are refused.
    """
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key, array in arrays.items():
            a = np.ascontiguousarray(array)
            if a.dtype.hasobject:
                raise TypeError(f"array {key!r} must not hold Python objects, not {a.dtype!r}")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.create_system = 3  # Unix, whatever system writes the file
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=_ZIP_LEVEL)


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n"


def _check_gemm_node(name: str, node: Mapping[str, Any],
                     shapes: Mapping[str, tuple[int, ...]]) -> None:
    keys = node["tensors"]
    M, N, K, rows = node["M"], node["N"], node["K"], node["rows"]
    expected = {"x": (rows, K), "w": (N, K), "y": (rows, N), "b": (N,), "rows": (rows,)}
    for operand, key in keys.items():
        if operand not in expected:
            raise ValueError(f"tensors of GEMM {name!r} must be among {sorted(expected)}, "
                             f"not {operand!r}")
        if key not in shapes:
            raise ValueError(f"tensor {key!r} of GEMM {name!r} must be in the arrays written")
        if shapes[key] != expected[operand]:
            raise ValueError(f"{operand} of GEMM {name!r} (M={M}, N={N}, K={K}, rows={rows}) "
                             f"must have shape {expected[operand]}, not {shapes[key]!r}")
    if rows > M or (rows < M) != ("rows" in keys):
        raise ValueError(f"GEMM {name!r} must store all M={M} rows or name the sampled rows, "
                         f"not rows={rows!r}")


def write_trace(out_dir: str | Path, graph: Any, arrays: Mapping[str, np.ndarray],
                meta: Mapping[str, Any]) -> Path:
    """Write a trace directory (created if missing; its three files are replaced).

    The shapes of every traced GEMM's arrays are checked against its node's ``M``, ``N``, ``K``
    and ``rows`` before anything is written.

    Parameters
    ----------
    out_dir : path-like
    graph : networkx.DiGraph
    arrays : mapping of str to numpy.ndarray
    meta : mapping
        Written to ``meta.json`` after ``format`` and ``version``; must be JSON-serializable.

    Returns
    -------
    Path
        ``out_dir``.
    """
    if not isinstance(graph, nx.DiGraph):
        raise TypeError(f"graph must be a networkx.DiGraph, not {type(graph).__name__!r}")
    shapes = {k: tuple(int(d) for d in np.shape(a)) for k, a in arrays.items()}
    for name, node in graph.nodes(data=True):
        if node.get("kind") == "gemm" and node.get("traced"):
            _check_gemm_node(name, node, shapes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = nx.node_link_data(graph, edges="edges")
    (out / GRAPH_FILE).write_text(_dump_json(doc), encoding="utf-8")
    save_npz(out / TENSORS_FILE, arrays)
    full_meta = {**meta, "format": FORMAT, "version": FORMAT_VERSION}
    (out / META_FILE).write_text(_dump_json(full_meta), encoding="utf-8")
    return out


def load_trace(path: str | Path) -> Trace:
    """Read the trace in directory ``path``; arrays stay on disk until asked for.

    Needs only numpy, networkx and json. Everything but the arrays' data is checked here: the
    three files parse, ``meta.json`` names this format and version, every GEMM node of the graph
    has its shape, and every traced GEMM's arrays are in ``tensors.npz`` with the node's shapes
    and a numeric dtype. The data itself is checked as it is read (:meth:`Trace.operands`).

    Raises
    ------
    ArithforgeError
        If ``path`` is not a trace directory of this version, or any of that does not hold: one
        line naming the file and what is wrong, and the ``arithforge trace`` command to re-run.
    """
    root = Path(path)
    if not root.is_dir():
        state = "is a file, not a directory" if root.exists() else "does not exist"
        raise ArithforgeError(f"trace directory {str(root)!r} {state}; make one with "
                              f"`arithforge trace WORKLOAD -o {root}`")
    missing = [f for f in (GRAPH_FILE, TENSORS_FILE, META_FILE) if not (root / f).is_file()]
    if missing:
        raise ArithforgeError(f"trace directory must contain {', '.join(missing)}: "
                              f"{str(root)!r} does not; {remake_hint(root)}")
    meta = _read_json(root, META_FILE, remake_hint(root))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise ArithforgeError(f"{str(root / META_FILE)!r}: format must be {FORMAT!r}, not "
                              f"{got!r}; is {str(root)!r} a trace directory?")
    if meta.get("version") != FORMAT_VERSION:
        raise ArithforgeError(f"trace version must be {FORMAT_VERSION}, not {meta.get('version')!r}"
                              f" ({str(root / META_FILE)!r}); rebuild it with `arithforge trace`")
    remake = remake_hint(root, meta.get("workload"))
    graph = _read_graph(root, remake)
    tensors = TensorStore(root / TENSORS_FILE, remake=remake)
    gemms = []
    for name, node in graph.nodes(data=True):
        if node.get("kind") == "gemm" and node.get("traced"):
            _check_traced(root, name, node, tensors, remake)
            gemms.append(GEMM(name=name, op=node["op"], M=node["M"], N=node["N"], K=node["K"],
                              layer=node.get("layer", ""), rows=node["rows"],
                              has_bias="b" in node["tensors"]))
    attn, nonlinear = _extras(root, graph, tensors, remake)
    return Trace(path=root, graph=graph, gemms=gemms, meta=meta, tensors=tensors,
                 attn_gemms=attn, nonlinear=nonlinear)


def _extras(root: Path, graph: Any, tensors: TensorStore,
            remake: str) -> tuple[list[AttnGEMM], list[NonlinearOp]]:
    """The traced attention GEMMs and nonlinear ops, their arrays checked to be there."""
    attn: list[AttnGEMM] = []
    nonlinear: list[NonlinearOp] = []
    for name, node in graph.nodes(data=True):
        keys = node.get("attn_tensors") or node.get("tensors")
        traced_attn = "attn_tensors" in node
        if node.get("kind") == "gemm" and not traced_attn:
            continue
        if node.get("kind") not in ("gemm", "op") or not isinstance(keys, dict):
            continue
        missing = [k for k in keys.values() if k not in tensors]
        if missing:
            raise ArithforgeError(f"{str(root / TENSORS_FILE)!r} has no array {missing[0]!r}, "
                                  f"named by node {name!r} in graph.json; {remake}")
        if node.get("kind") == "gemm":
            attn.append(AttnGEMM(name=name, role=str(node.get("role")),
                                 layer=node.get("layer", ""), slices=int(node["slices"]),
                                 tensors=dict(keys)))
        else:
            nonlinear.append(NonlinearOp(name=name, op=str(node["op"]),
                                         layer=node.get("layer", ""),
                                         rows=int(node.get("rows", node.get("slices", 0))),
                                         params=dict(node.get("params", {})),
                                         tensors=dict(keys)))
    return attn, nonlinear


def _read_json(root: Path, name: str, remake: str) -> Any:
    try:
        return json.loads((root / name).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArithforgeError(f"{str(root / name)!r} is not valid JSON ({_reason(exc)}); "
                              f"{remake}") from None


def _read_graph(root: Path, remake: str) -> Any:
    """Read ``graph.json`` as a DiGraph; check that every GEMM node has its shape."""
    where = str(root / GRAPH_FILE)
    doc = _read_json(root, GRAPH_FILE, remake)
    if not (isinstance(doc, dict) and isinstance(doc.get("nodes"), list)
            and isinstance(doc.get("edges"), list)
            and all(isinstance(n, dict) and "id" in n for n in doc["nodes"])):
        raise ArithforgeError(f"{where!r} must be a networkx node-link graph (an object with "
                              f"lists 'nodes' and 'edges'), not {_shorten(doc)}; {remake}")
    try:
        graph = nx.node_link_graph(doc, directed=True, multigraph=False, edges="edges")
    except (KeyError, TypeError, ValueError, nx.NetworkXError) as exc:
        raise ArithforgeError(f"{where!r} is not a networkx node-link graph ({_reason(exc)}); "
                              f"{remake}") from None
    count = 0
    for name, node in graph.nodes(data=True):
        if node.get("kind") != "gemm":
            continue
        count += 1
        for key in ("M", "N", "K", "batch"):
            value = node.get(key, 1 if key == "batch" else None)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ArithforgeError(f"{where!r}: {key} of GEMM {name!r} must be a "
                                      f"non-negative integer, not {value!r}; {remake}")
        if not isinstance(node.get("op"), str):
            raise ArithforgeError(f"{where!r}: op of GEMM {name!r} must be a string, not "
                                  f"{node.get('op')!r}; {remake}")
    if count == 0:
        raise ArithforgeError(f"{where!r} has no GEMM node: nothing to evaluate or simulate; "
                              f"{remake}")
    return graph


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: dtype kinds of each operand: floats, and integer row indices.
_KINDS = {"x": "f", "w": "f", "b": "f", "y": "f", "rows": "iu"}


def _check_traced(root: Path, name: str, node: Mapping[str, Any], tensors: TensorStore,
                  remake: str) -> None:
    """Check a traced GEMM node against the arrays it names."""
    where = str(root / GRAPH_FILE)
    keys = node.get("tensors")
    rows = node.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= node["M"]:
        raise ArithforgeError(f"{where!r}: rows of GEMM {name!r} must be an integer between 0 "
                              f"and M={node['M']}, not {rows!r}; {remake}")
    if not (isinstance(keys, dict) and all(isinstance(k, str) for k in keys.values())
            and {"x", "w", "y"} <= set(keys)):
        raise ArithforgeError(f"{where!r}: tensors of GEMM {name!r} must map x, w, y (and "
                              f"optionally b, rows) to array names, not {_shorten(keys)}; "
                              f"{remake}")
    for operand, key in keys.items():
        if key not in tensors:
            raise ArithforgeError(f"{str(root / TENSORS_FILE)!r} has no array {key!r}, the "
                                  f"{_OPERANDS.get(operand, operand)} of GEMM {name!r} in "
                                  f"graph.json; {remake}")
        dtype = tensors.header(key)[1] if operand in _KINDS else None
        if dtype is not None and dtype.kind not in _KINDS[operand]:
            kind = "floats" if _KINDS[operand] == "f" else "integers"
            raise ArithforgeError(f"{str(root / TENSORS_FILE)!r}: array {key!r} of GEMM "
                                  f"{name!r} must hold {kind}, not {dtype}; {remake}")
    try:
        _check_gemm_node(name, node, {k: tensors.header(k)[0] for k in keys.values()})
    except ValueError as exc:
        raise ArithforgeError(f"trace {str(root)!r}: {exc}; {remake}") from None


def gemm_node(op: str, layer: str, M: int, N: int, K: int, *, batch: int = 1,
              **attrs: Any) -> dict[str, Any]:
    """Return the attributes of an (untraced) GEMM node; tracing adds ``rows`` and ``tensors``."""
    for what, v in (("M", M), ("N", N), ("K", K), ("batch", batch)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{what} must be a non-negative int, not {v!r}")
    return {"kind": "gemm", "op": op, "layer": layer, "M": M, "N": N, "K": K, "batch": batch,
            "traced": False, **attrs}


def mark_traced(node: dict[str, Any], tensors: Mapping[str, str], rows: int) -> None:
    """Record on a GEMM node that its operands are stored under ``tensors``."""
    node["traced"] = True
    node["tensors"] = dict(tensors)
    node["rows"] = rows


def file_sizes(path: str | Path) -> dict[str, int]:
    """Sizes in bytes of a trace directory's files."""
    root = Path(path)
    return {f: (root / f).stat().st_size for f in (GRAPH_FILE, TENSORS_FILE, META_FILE)}


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the distributions ``names`` (``"absent"`` for those not installed)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out

