"""Record a torch module's forward pass as an op graph and the operands of its GEMMs.

Imported only by the functions that need torch (:func:`arithforge.workloads.trace_module` and the
MiniLM workload), so the rest of :mod:`arithforge.workloads` imports without it.

Two mechanisms, each for what it sees best:

- a :class:`torch.overrides.TorchFunctionMode` sees every torch function the forward pass calls,
  and so the dataflow between them: each tensor is mapped to the node that produced it. Ops that
  only move data (views, transposes, casts, eval-mode dropout) are folded into their producer,
  ops whose inputs all come from outside the inputs (constants, position ids) are left out, and
  ``scaled_dot_product_attention`` is split into its two GEMMs and the softmax between them;
- forward hooks on every ``nn.Linear`` (and ``nn.Conv2d`` with ``groups=1``, lowered with
  im2col) copy the GEMM's input, weight, bias and output.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from .trace import gemm_node, mark_traced, sample_rows

__all__ = ["Recording", "deterministic", "record"]

# Ops that only move or relabel data: their outputs are attributed to the producer of their input.
_PASS_THROUGH = frozenset({
    "view", "view_as", "reshape", "reshape_as", "transpose", "permute", "contiguous", "expand",
    "expand_as", "flatten", "unflatten", "squeeze", "unsqueeze", "to", "type", "float", "half",
    "double", "bfloat16", "clone", "detach", "__getitem__", "narrow", "select", "split", "chunk",
    "unbind", "t", "movedim", "swapaxes", "repeat", "tile", "cpu", "identity", "requires_grad_",
    "__get__",  # tensor properties: `.T`, `.mT`, `.data`
})
#: Nonlinear ops whose inputs, outputs and parameters are stored.
_NONLINEAR = frozenset({"softmax", "gelu", "layer_norm"})
_GEMM_OPS = frozenset({"linear", "matmul", "mm", "bmm", "conv1d", "conv2d", "conv3d"})


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Run torch on one thread with deterministic algorithms and seeded RNGs, then restore.

    One thread because a multi-threaded CPU GEMM may split its reduction differently from run to
    run or machine to machine; the seed covers any randomness the model draws.
    """
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.no_grad():
                yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.set_num_threads(threads)


@dataclass
class Recording:
    """What :func:`record` saw: the graph, the arrays to store and the module's output."""

    graph: Any
    arrays: dict[str, np.ndarray]
    output: Any
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, Mapping):
        for o in obj.values():
            yield from _tensors(o)


def _named_outputs(obj: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        return [("output", obj)]
    if isinstance(obj, Mapping):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        return []
    return [(f"output:{k}", v) for k, v in items if isinstance(v, torch.Tensor)]


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or str(func)
    # Tensor dunders for arithmetic (`a + b`) are the same ops as their functions.
    return {"__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub",
            "__rsub__": "sub", "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_",
            "__truediv__": "div", "__rtruediv__": "div", "__matmul__": "matmul",
            "__and__": "logical_and", "__or__": "logical_or", "__invert__": "logical_not",
            "__neg__": "neg", "__pow__": "pow"}.get(name, name)


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str,
         default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


class _Recorder:
    def __init__(self, root: torch.nn.Module, *, row_mask: torch.Tensor | None,
                 max_rows: int | None, seed: int) -> None:
        self.graph = nx.DiGraph()
        self.arrays: dict[str, np.ndarray] = {}
        self.row_mask = row_mask
        self.max_rows = max_rows
        self.seed = seed
        self.paused = False
        self.stack: list[str] = []
        self._producer: dict[int, str] = {}
        # Every tensor seen stays alive until the recording ends, so no id() is reused.
        self._alive: list[torch.Tensor] = []
        self._counts: dict[str, int] = {}
        self._x_keys: dict[int, str] = {}
        self._w_keys: dict[int, str] = {}
        self._gemm_modules = {n for n, m in root.named_modules()
                              if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)}

    # -- graph ----------------------------------------------------------------------------------
    def _unique(self, base: str) -> str:
        n = self._counts.get(base, 0)
        self._counts[base] = n + 1
        return base if n == 0 else f"{base}#{n}"

    def _register(self, t: torch.Tensor, node: str) -> None:
        self._alive.append(t)
        self._producer[id(t)] = node

    def producer(self, t: torch.Tensor) -> str | None:
        return self._producer.get(id(t))

    def add_input(self, key: str, t: torch.Tensor) -> None:
        node = f"input:{key}"
        self.graph.add_node(node, kind="input", op="input", layer="", out_shape=list(t.shape),
                            dtype=str(t.dtype).removeprefix("torch."))
        self._register(t, node)

    def add_outputs(self, out: Any) -> None:
        for node, t in _named_outputs(out):
            src = self.producer(t)
            self.graph.add_node(node, kind="output", op="output", layer="",
                                out_shape=list(t.shape))
            if src is not None:
                self.graph.add_edge(src, node)

    def _add_op(self, base: str, attrs: dict[str, Any], sources: list[str]) -> str:
        node = self._unique(base)
        self.graph.add_node(node, **attrs)
        for s in dict.fromkeys(sources):
            self.graph.add_edge(s, node)
        return node

    def on_op(self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any],
              out: Any) -> None:
        name = _func_name(func)
        outs = list(_tensors(out))
        if not outs:
            return
        sources = [p for t in _tensors((args, kwargs)) if (p := self.producer(t)) is not None]
        if not sources:
            return
        if name in _PASS_THROUGH or (name == "dropout" and not _arg(args, kwargs, 2, "training",
                                                                    True)):
            for t in outs:
                self._register(t, sources[0])
            return
        layer = self.stack[-1] if self.stack else ""
        if name == "scaled_dot_product_attention":
            node = self._attention(layer, args, kwargs, outs[0])
        else:
            attrs: dict[str, Any] = {"kind": "op", "op": name, "layer": layer}
            if name in _GEMM_OPS:
                attrs = self._gemm_attrs(name, layer, args, kwargs, outs[0]) or attrs
            # A Linear or Conv2d module's own GEMM is named by the module's path.
            own = name in ("linear", "conv2d") and layer in self._gemm_modules
            base = layer if own else f"{layer}:{name}" if layer else name
            attrs["out_shape"] = list(outs[0].shape)
            node = self._add_op(base, attrs, sources)
            if name in _NONLINEAR and not self.paused:
                with self.pause():
                    self._capture_nonlinear(node, name, args, kwargs, outs[0])
        for t in outs:
            self._register(t, node)

    def _gemm_attrs(self, name: str, layer: str, args: tuple[Any, ...],
                    kwargs: Mapping[str, Any], out: torch.Tensor) -> dict[str, Any] | None:
        a = _arg(args, kwargs, 0, "input")
        b = _arg(args, kwargs, 1, "weight" if name in ("linear",) or name.startswith("conv")
                 else "other")
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            return None
        if name == "linear":
            if b.dim() != 2:
                return None
            return gemm_node("linear", layer, math.prod(a.shape[:-1]), b.shape[0], b.shape[1])
        if name.startswith("conv"):
            groups = int(_arg(args, kwargs, 6, "groups", 1))
            spatial = math.prod(out.shape[2:])
            return gemm_node(name, layer, out.shape[0] * spatial, b.shape[0] // groups,
                             math.prod(b.shape[1:]), batch=groups)
        if a.dim() < 2 or b.dim() < 2:
            return None
        batch = math.prod(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))  # type: ignore[no-untyped-call]
        return gemm_node("matmul", layer, a.shape[-2], b.shape[-1], a.shape[-1], batch=batch)

    def _attention(self, layer: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                   out: torch.Tensor) -> str:
        q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
        mask = _arg(args, kwargs, 3, "attn_mask")
        base = f"{layer}:attention" if layer else "attention"
        batch = math.prod(q.shape[:-2])
        lq, e, lk, ev = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]

        def src(t: Any) -> list[str]:
            p = self.producer(t) if isinstance(t, torch.Tensor) else None
            return [] if p is None else [p]

        scores = self._add_op(f"{base}.scores", gemm_node(
            "matmul", layer, lq, lk, e, batch=batch, out_shape=[*q.shape[:-1], lk]),
            src(q) + src(k))
        softmax = self._add_op(f"{base}.softmax", {
            "kind": "op", "op": "softmax", "layer": layer, "out_shape": [*q.shape[:-1], lk]},
            [scores] + src(mask))
        context = self._add_op(f"{base}.context", gemm_node(
            "matmul", layer, lq, ev, lk, batch=batch, out_shape=list(out.shape)),
            [softmax] + src(v))
        self.graph.nodes[scores]["role"] = "attn_qk"
        self.graph.nodes[context]["role"] = "attn_pv"
        scale = _arg(args, kwargs, 6, "scale")
        scale = 1 / math.sqrt(e) if scale is None else float(scale)
        self.graph.nodes[softmax]["params"] = {"dim": -1, "scale": scale}
        causal = bool(_arg(args, kwargs, 5, "is_causal", False))
        # Self-attention only (keys are the queries' tokens), one K and V head per query head.
        if (q.dim() == 4 and k.shape[:-1] == q.shape[:-1] and v.shape[:-1] == q.shape[:-1]):
            with self.pause():
                self._capture_attention(base, (scores, softmax, context), q, k, v, mask,
                                        scale, causal)
        return context

    def _keys_valid(self, mask: Any, shape: tuple[int, ...], causal: bool) -> torch.Tensor:
        """Boolean ``(B, H, Lq, Lk)``: which scores enter the softmax."""
        valid = torch.ones(shape, dtype=torch.bool)
        if causal:
            valid = valid & torch.ones(shape[-2:], dtype=torch.bool).tril()
        if isinstance(mask, torch.Tensor):
            valid = valid & (mask if mask.dtype == torch.bool else torch.isfinite(mask)
                             & (mask > torch.finfo(mask.dtype).min / 2)).expand(shape)
        return valid

    def _capture_attention(self, base: str, nodes: tuple[str, str, str], q: torch.Tensor,
                           k: torch.Tensor, v: torch.Tensor, mask: Any, scale: float,
                           causal: bool) -> None:
        """Store QK^T, the softmax and PV of a sample of sentences, all heads, real tokens.

        Sentences are taken in a seeded order while their real tokens add up to at most
        ``max_rows`` (at least one sentence): the token-row budget of a Linear, over all heads.
        Arrays are ``(slices, Lmax, .)``, zero beyond each slice's length ``lengths[i]``.
        """
        bsz, heads, lq, _ = q.shape
        q, k, v = q.float(), k.float(), v.float()
        if self.row_mask is not None and tuple(self.row_mask.shape) == (bsz, lq):
            lengths = self.row_mask.sum(dim=1).tolist()
        else:
            lengths = [lq] * bsz
        order = np.random.default_rng([self.seed, bsz, 1]).permutation(bsz)
        chosen: list[int] = []
        for b in order.tolist():
            if chosen and self.max_rows is not None and (
                    sum(lengths[c] for c in chosen) + lengths[b] > self.max_rows):
                continue
            chosen.append(b)
        chosen.sort()
        lmax = max(lengths[b] for b in chosen)
        slices = [(b, h) for b in chosen for h in range(heads)]
        n = len(slices)
        d, dv = q.shape[-1], v.shape[-1]
        Q = torch.zeros(n, lmax, d)
        K = torch.zeros(n, lmax, d)
        Vt = torch.zeros(n, dv, lmax)
        S = torch.zeros(n, lmax, lmax)
        P = torch.zeros(n, lmax, lmax)
        C = torch.zeros(n, lmax, dv)
        QK = torch.zeros(n, lmax, lmax)
        valid = self._keys_valid(mask, (bsz, heads, lq, k.shape[-2]), causal)
        for i, (b, h) in enumerate(slices):
            n_tok = lengths[b]
            qi, ki, vi = q[b, h, :n_tok], k[b, h, :n_tok], v[b, h, :n_tok]
            qk = qi @ ki.T
            s = qk * scale
            ok = valid[b, h, :n_tok, :n_tok]
            p = torch.softmax(s.masked_fill(~ok, -math.inf), dim=-1)
            Q[i, :n_tok], K[i, :n_tok], Vt[i, :, :n_tok] = qi, ki, vi.T
            QK[i, :n_tok, :n_tok], S[i, :n_tok, :n_tok], P[i, :n_tok, :n_tok] = qk, s, p
            C[i, :n_tok] = p @ vi
        scores, softmax, context = nodes
        shared = {"lengths": f"{base}/lengths", "slices": f"{base}/slices"}
        self.arrays[shared["lengths"]] = np.array([lengths[b] for b, _ in slices], np.int64)
        self.arrays[shared["slices"]] = np.array(slices, dtype=np.int64).reshape(n, 2)
        keys = {
            scores: {"x": f"{scores}/x", "w": f"{scores}/w", "y": f"{scores}/y"},
            softmax: {"x": f"{softmax}/x", "y": f"{softmax}/y"},
            context: {"x": f"{softmax}/y", "w": f"{context}/w", "y": f"{context}/y"},
        }
        for key, t in ((keys[scores]["x"], Q), (keys[scores]["w"], K), (keys[scores]["y"], QK),
                       (keys[softmax]["x"], S), (keys[softmax]["y"], P),
                       (keys[context]["w"], Vt), (keys[context]["y"], C)):
            self.arrays[key] = _numpy(t)
        if causal or isinstance(mask, torch.Tensor) and mask.dim() == 4 and mask.shape[-2] > 1:
            self.arrays[f"{base}/valid"] = np.stack([
                np.pad(valid[b, h, :lengths[b], :lengths[b]].numpy(),
                       ((0, lmax - lengths[b]),) * 2) for b, h in slices])
            shared["valid"] = f"{base}/valid"
        for node in nodes:
            self.graph.nodes[node]["attn_tensors"] = {**keys[node], **shared}
            self.graph.nodes[node]["slices"] = n

    def _capture_nonlinear(self, node: str, name: str, args: tuple[Any, ...],
                           kwargs: Mapping[str, Any], out: torch.Tensor) -> None:
        """Store a sample of the rows of a softmax, GELU or LayerNorm and its parameters."""
        x = _arg(args, kwargs, 0, "input")
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape != out.shape:
            return
        params: dict[str, Any] = {}
        extra: dict[str, torch.Tensor] = {}
        if name == "softmax":
            dim = _arg(args, kwargs, 1, "dim")
            if dim is None or int(dim) % x.dim() != x.dim() - 1:
                return
            params["dim"] = -1
        elif name == "gelu":
            params["approximate"] = str(_arg(args, kwargs, 1, "approximate", "none"))
        else:
            shape = tuple(_arg(args, kwargs, 1, "normalized_shape"))
            if len(shape) != 1:
                return
            params["normalized_shape"] = list(shape)
            params["eps"] = float(_arg(args, kwargs, 4, "eps", 1e-5))
            for i, what in ((2, "weight"), (3, "bias")):
                t = _arg(args, kwargs, i, what)
                if isinstance(t, torch.Tensor):
                    extra[what] = t
        xr, yr = self._rows(x), self._rows(out)
        m = int(xr.shape[0])
        keys = {"x": f"{node}/x", "y": f"{node}/y"}
        keep = sample_rows(m, self.max_rows, self.seed)
        if keep is not None:
            keys["rows"] = f"rows/{m}"
            self.arrays.setdefault(keys["rows"], keep)
            idx = torch.from_numpy(keep)
            xr, yr = xr[idx], yr[idx]
        self.arrays[keys["x"]], self.arrays[keys["y"]] = _numpy(xr), _numpy(yr)
        for what, t in extra.items():
            keys[what] = f"{node}/{what}"
            self.arrays[keys[what]] = _numpy(t)
        attrs = self.graph.nodes[node]
        attrs.update(params=params, tensors=keys, rows=int(xr.shape[0]), M=m)

    # -- tensors --------------------------------------------------------------------------------
    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        """Flatten to (rows, features), keeping only the rows the mask selects."""
        if self.row_mask is not None and tuple(t.shape[:-1]) == tuple(self.row_mask.shape):
            return t[self.row_mask]
        return t.reshape(-1, t.shape[-1])

    def capture(self, node: str, x_obj: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor | None, y: torch.Tensor, weight_obj: torch.Tensor) -> None:
        attrs = self.graph.nodes[node]
        m = x.shape[0]
        if attrs["M"] != m:
            attrs["M_padded"] = attrs["M"]
            attrs["M"] = m
        keep = sample_rows(m, self.max_rows, self.seed)
        keys = {"x": f"{node}/x", "w": f"{node}/w", "y": f"{node}/y"}
        if keep is not None:
            keys["rows"] = f"rows/{m}"
            self.arrays.setdefault(keys["rows"], keep)
            idx = torch.from_numpy(keep)
            x, y = x[idx], y[idx]
        # The query, key and value projections read one tensor: store it once.
        if id(x_obj) in self._x_keys:
            keys["x"] = self._x_keys[id(x_obj)]
        else:
            self._x_keys[id(x_obj)] = keys["x"]
            self.arrays[keys["x"]] = _numpy(x)
        if id(weight_obj) in self._w_keys:
            keys["w"] = self._w_keys[id(weight_obj)]
        else:
            self._w_keys[id(weight_obj)] = keys["w"]
            self.arrays[keys["w"]] = _numpy(w)
        if b is not None:
            keys["b"] = f"{node}/b"
            self.arrays[keys["b"]] = _numpy(b)
        self.arrays[keys["y"]] = _numpy(y)
        mark_traced(attrs, keys, int(x.shape[0]))

    def linear_hook(self, module: torch.nn.Module, inputs: tuple[Any, ...],
                    output: torch.Tensor) -> None:
        node = self.producer(output)
        if node is None or self.graph.nodes[node].get("op") != "linear":
            return
        with self.pause():
            x = inputs[0]
            assert isinstance(module, torch.nn.Linear)
            w, b = module.weight, module.bias
            self.capture(node, x, self._rows(x), w, b, self._rows(output), w)

    def conv_hook(self, module: torch.nn.Module, inputs: tuple[Any, ...],
                  output: torch.Tensor) -> None:
        node = self.producer(output)
        assert isinstance(module, torch.nn.Conv2d)
        if (node is None or self.graph.nodes[node].get("op") != "conv2d" or module.groups != 1
                or module.padding_mode != "zeros" or isinstance(module.padding, str)):
            return
        with self.pause():
            x = inputs[0]
            cols = torch.nn.functional.unfold(
                x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                stride=module.stride)
            cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])
            y = output.permute(0, 2, 3, 1).reshape(-1, output.shape[1])
            w = module.weight.reshape(module.weight.shape[0], -1)
            self.capture(node, x, cols, w, module.bias, y, module.weight)

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        was, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = was


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.array(t.detach().to(torch.float32).cpu().numpy(), dtype=np.float32, copy=True)


class _GraphMode(TorchFunctionMode):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.recorder.paused:
            self.recorder.on_op(func, args, kwargs, out)
        return out


def _named_inputs(example_inputs: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(example_inputs, torch.Tensor):
        return [("0", example_inputs)]
    if isinstance(example_inputs, Mapping):
        return [(str(k), v) for k, v in example_inputs.items() if isinstance(v, torch.Tensor)]
    return [(str(i), v) for i, v in enumerate(example_inputs) if isinstance(v, torch.Tensor)]


def call(module: Callable[..., Any], example_inputs: Any) -> Any:
    """Call ``module`` with a tensor, a tuple of positional arguments or a dict of keywords."""
    if isinstance(example_inputs, torch.Tensor):
        return module(example_inputs)
    if isinstance(example_inputs, Mapping):
        return module(**example_inputs)
    return module(*example_inputs)


def record(module: torch.nn.Module, example_inputs: Any, *, max_rows: int | None = None,
           seed: int = 0, row_mask: Any = None) -> Recording:
    """Run ``module`` once on ``example_inputs`` under :func:`deterministic` and record it.

    Parameters
    ----------
    module : torch.nn.Module
    example_inputs : Tensor, tuple or dict
        One tensor, positional arguments, or keyword arguments.
    max_rows : int, optional
        Store at most this many rows of each GEMM's X and Y (see
        :func:`arithforge.workloads.trace.sample_rows`); default all.
    seed : int
    row_mask : bool array, optional
        For activations whose leading dimensions have this shape, keep only the rows it selects
        (the real tokens of a padded batch); ``M`` then counts those rows.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, not {type(module).__name__!r}")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive int or None, not {max_rows!r}")
    mask = None if row_mask is None else torch.as_tensor(np.asarray(row_mask, dtype=bool))
    rec = _Recorder(module, row_mask=mask, max_rows=max_rows, seed=seed)

    def enter(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _args: Any) -> None:
            rec.stack.append(name)
        return hook

    def leave(_module: torch.nn.Module, _args: Any, _out: Any) -> None:
        rec.stack.pop()

    handles = []
    for name, m in module.named_modules():
        handles.append(m.register_forward_pre_hook(enter(name)))
        if isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(rec.linear_hook))
        elif isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(rec.conv_hook))
        handles.append(m.register_forward_hook(leave))
    inputs: dict[str, dict[str, Any]] = {}
    try:
        with deterministic(seed):
            for key, t in _named_inputs(example_inputs):
                rec.add_input(key, t)
                inputs[key] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
            with _GraphMode(rec):
                out = call(module, example_inputs)
            rec.add_outputs(out)
    finally:
        for h in handles:
            h.remove()
    return Recording(graph=rec.graph, arrays=rec.arrays, output=out, inputs=inputs)
