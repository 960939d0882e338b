# Ref: Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI ML Repository, 1998
#      (the 8x8 test set scikit-learn ships as `load_digits`)
# Ref: Chellapilla, Puri & Simard, "High Performance Convolutional Neural Networks for Document
#      Processing", IWFHR 2006, §2 (convolution as a matrix product of unfolded patches)
# Ref: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1
"""The ``digits-cnn`` workload: a small CNN trained in numpy on scikit-learn's digits.

Network (NHWC activations; every GEMM is ``Y = X @ W.T + b`` in float32)::

    8x8x1 --conv1 3x3 pad 1--> 8x8x16 --relu, maxpool 2--> 4x4x16
          --conv2 3x3 pad 1--> 4x4x32 --relu, maxpool 2--> 2x2x32 --flatten--> 128
          --fc1--> 64 --relu--> --fc2--> 10 logits

Convolutions are lowered with im2col: one row per output pixel, columns ordered ``(C, kh, kw)``
as ``torch.nn.Conv2d`` lays out its weight, so ``conv1`` is a GEMM with K = 9 and ``conv2`` one
with K = 144. Training is seeded numpy (He initialization, Adam, cross-entropy) on an 80/20
split drawn with the same seed; it is bit-identical from run to run with a given numpy and BLAS.
The trained weights are stored in the trace, so accuracy evaluation reads them from there and
needs neither scikit-learn nor a second training run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .trace import (
    GEMMOverride,
    Trace,
    gemm_node,
    library_versions,
    load_trace,
    mark_traced,
    write_trace,
)
from .tracer import require

__all__ = [
    "LAYERS",
    "build_digits",
    "digits_accuracy",
    "digits_forward",
    "load_digits_split",
    "run_digits_with_gemm_override",
    "train_digits_cnn",
]

#: GEMM layers in execution order: name → (op, N, K).
LAYERS: dict[str, tuple[str, int, int]] = {
    "conv1": ("conv2d", 16, 1 * 9),
    "conv2": ("conv2d", 32, 16 * 9),
    "fc1": ("linear", 64, 2 * 2 * 32),
    "fc2": ("linear", 10, 64),
}

#: Training hyperparameters recorded in the trace's meta.
TRAINING = {"epochs": 30, "batch_size": 64, "learning_rate": 3e-3, "beta1": 0.9, "beta2": 0.999,
            "eps": 1e-8, "test_fraction": 0.2}

Params = dict[str, np.ndarray]
_F32 = np.float32


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread: these GEMMs are small, and on a loaded machine a multi-threaded
    BLAS spins for its share of the cores (training ran 10x slower on 2 busy cores).
    threadpoolctl comes with scikit-learn; without it, BLAS keeps its own setting."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load scikit-learn's digits and split them 80/20 with a permutation seeded by ``seed``.

    Returns
    -------
    x_train, y_train, x_test, y_test : numpy.ndarray
        Images as float32 ``(n, 8, 8)`` scaled to [0, 1]; labels as int64.
    """
    datasets = require("sklearn.datasets", "the digits-cnn workload", "scikit-learn")
    digits = datasets.load_digits()
    images = (np.asarray(digits.images, dtype=np.float64) / 16.0).astype(_F32)
    labels = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    n_test = round(len(labels) * TRAINING["test_fraction"])
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def _im2col(x: np.ndarray) -> np.ndarray:
    """Unfold 3x3 patches of NHWC ``x`` (zero padding 1) into rows ``(B*H*W, C*9)``."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = sliding_window_view(xp, (3, 3), axis=(1, 2))  # (B, H, W, C, 3, 3)
    return np.ascontiguousarray(patches).reshape(b * h * w, c * 9)


def _col2im(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`_im2col`: sum patch gradients back onto the NHWC input."""
    b, h, w, c = shape
    g = cols.reshape(b, h, w, c, 3, 3)
    xp = np.zeros((b, h + 2, w + 2, c), dtype=cols.dtype)
    for di in range(3):
        for dj in range(3):
            xp[:, di:di + h, dj:dj + w, :] += g[..., di, dj]
    return xp[:, 1:-1, 1:-1, :]


def _pool_windows(x: np.ndarray) -> np.ndarray:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(
        b, h // 2, w // 2, c, 4)


def _maxpool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    win = _pool_windows(x)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], axis=-1)[..., 0], arg


def _maxpool_back(g: np.ndarray, arg: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    b, h, w, c = shape
    win = np.zeros((b, h // 2, w // 2, c, 4), dtype=g.dtype)
    np.put_along_axis(win, arg[..., None], g[..., None], axis=-1)
    return win.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(shape)


def _gemm(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    y = x @ w.T
    return y if b is None else y + b


GEMMRecord = Callable[[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def digits_forward(params: Params, images: np.ndarray, override_fn: GEMMOverride | None = None,
                   *, record: GEMMRecord | None = None,
                   cache: dict[str, Any] | None = None) -> np.ndarray:
    """Run the CNN on ``images`` ``(n, 8, 8)``; return float32 logits ``(n, 10)``.

    Parameters
    ----------
    params : dict
        ``<layer>/w`` (N × K) and ``<layer>/b`` (N) for each of :data:`LAYERS`.
    images : numpy.ndarray
    override_fn : callable, optional
        Called as ``override_fn(layer, x, w, b)`` for each GEMM instead of the float32 product
        (see :data:`arithforge.workloads.trace.GEMMOverride`); its output feeds the next layer.
    record : callable, optional
        Called as ``record(layer, x, w, b, y)`` after each GEMM.
    cache : dict, optional
        Filled with what backpropagation needs.
    """
    x = np.asarray(images, dtype=_F32)
    if x.ndim != 3 or x.shape[1:] != (8, 8):
        raise ValueError(f"images must have shape (n, 8, 8), not {x.shape!r}")
    n = x.shape[0]

    def gemm(name: str, a: np.ndarray) -> np.ndarray:
        w, b = params[f"{name}/w"], params[f"{name}/b"]
        if override_fn is None:
            y = _gemm(a, w, b)
        else:
            y = np.asarray(override_fn(name, a, w, b), dtype=_F32)
            if y.shape != (a.shape[0], w.shape[0]):
                raise ValueError(f"override_fn output for {name!r} must have shape "
                                 f"{(a.shape[0], w.shape[0])}, not {y.shape!r}")
        if record is not None:
            record(name, a, w, b, y)
        if cache is not None:
            cache[f"{name}/x"] = a
        return y

    h = x[..., None]
    for conv in ("conv1", "conv2"):
        side = h.shape[1]
        z = gemm(conv, _im2col(h)).reshape(n, side, side, -1)
        a = np.maximum(z, 0)
        h, arg = _maxpool(a)
        if cache is not None:
            cache[f"{conv}/z"], cache[f"{conv}/arg"], cache[f"{conv}/shape"] = z, arg, a.shape
    flat = h.reshape(n, -1)
    z3 = gemm("fc1", flat)
    logits = gemm("fc2", np.maximum(z3, 0))
    if cache is not None:
        cache["fc1/z"] = z3
    return logits


def _init(seed: int) -> Params:
    rng = np.random.default_rng([seed, 2])
    return {k: v for name, (_, n, k_) in LAYERS.items() for k, v in (
        (f"{name}/w", (rng.standard_normal((n, k_)) * np.sqrt(2.0 / k_)).astype(_F32)),
        (f"{name}/b", np.zeros(n, dtype=_F32)))}


def _grads(params: Params, images: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
    cache: dict[str, Any] = {}
    logits = digits_forward(params, images, cache=cache)
    n = len(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(n), labels] + 1e-12).mean())
    g = p
    g[np.arange(n), labels] -= 1
    g /= n
    grads: Params = {}

    def back(name: str, gy: np.ndarray) -> np.ndarray:
        grads[f"{name}/w"] = gy.T @ cache[f"{name}/x"]
        grads[f"{name}/b"] = gy.sum(axis=0)
        gx: np.ndarray = gy @ params[f"{name}/w"]
        return gx

    g = back("fc2", g) * (cache["fc1/z"] > 0)
    g = back("fc1", g).reshape(n, 2, 2, 32)
    for conv, prev in (("conv2", (n, 4, 4, 16)), ("conv1", None)):
        shape = cache[f"{conv}/shape"]
        g = _maxpool_back(g, cache[f"{conv}/arg"], shape) * (cache[f"{conv}/z"] > 0)
        gx = back(conv, g.reshape(-1, shape[-1]))
        if prev is not None:
            g = _col2im(gx, prev)
    return loss, grads


def train_digits_cnn(x_train: np.ndarray, y_train: np.ndarray, *, seed: int = 0) -> Params:
    """Train the CNN with Adam on ``(x_train, y_train)``; return float32 parameters."""
    with _one_blas_thread():
        return _train(x_train, y_train, seed)


def _train(x_train: np.ndarray, y_train: np.ndarray, seed: int) -> Params:
    cfg = TRAINING
    params = _init(seed)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    rng = np.random.default_rng([seed, 3])
    lr, b1, b2, eps = (np.float32(cfg[k]) for k in ("learning_rate", "beta1", "beta2", "eps"))
    step = 0
    batch = int(cfg["batch_size"])
    for _ in range(int(cfg["epochs"])):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            _, grads = _grads(params, x_train[idx], y_train[idx])
            step += 1
            c1, c2 = np.float32(1 - b1 ** step), np.float32(1 - b2 ** step)
            for k, g in grads.items():
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                params[k] = (params[k] - lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + eps)).astype(
                    _F32)
    return params


def _graph(n: int) -> Any:
    g = nx.DiGraph()
    chain: list[tuple[str, dict[str, Any]]] = [
        ("input:images", {"kind": "input", "op": "input", "layer": "", "out_shape": [n, 8, 8, 1]}),
    ]
    side = 8
    for conv in ("conv1", "conv2"):
        op, out_ch, k = LAYERS[conv]
        chain += [
            (conv, gemm_node(op, conv, n * side * side, out_ch, k,
                             out_shape=[n, side, side, out_ch], lowering="im2col 3x3 pad 1")),
            (f"{conv}:relu", {"kind": "op", "op": "relu", "layer": conv,
                              "out_shape": [n, side, side, out_ch]}),
            (f"{conv}:maxpool", {"kind": "op", "op": "max_pool2d", "layer": conv,
                                 "out_shape": [n, side // 2, side // 2, out_ch]}),
        ]
        side //= 2
    chain += [
        ("flatten", {"kind": "op", "op": "flatten", "layer": "", "out_shape": [n, 128]}),
        ("fc1", gemm_node("linear", "fc1", n, 64, 128, out_shape=[n, 64])),
        ("fc1:relu", {"kind": "op", "op": "relu", "layer": "fc1", "out_shape": [n, 64]}),
        ("fc2", gemm_node("linear", "fc2", n, 10, 64, out_shape=[n, 10])),
        ("output:logits", {"kind": "output", "op": "output", "layer": "", "out_shape": [n, 10]}),
    ]
    for name, attrs in chain:
        g.add_node(name, **attrs)
    nx.add_path(g, [name for name, _ in chain])
    return g


def build_digits(out_dir: str | Path, *, seed: int = 0) -> Trace:
    """Train the CNN and trace its GEMMs on the test set into ``out_dir``.

    Stores every GEMM's operands and float32 outputs whole (the largest, ``conv1``, is 23,040
    rows), the test images and labels (``input/images``, ``input/labels``) and the float32 logits
    (``reference/logits``); ``meta["accuracy_fp32"]`` is the test accuracy.
    """
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    params = train_digits_cnn(x_train, y_train, seed=seed)
    graph = _graph(len(y_test))
    arrays: dict[str, np.ndarray] = {}

    def record(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray) -> None:
        keys = {o: f"{name}/{o}" for o in ("x", "w", "b", "y")}
        for o, a in zip("xwby", (x, w, b, y), strict=True):
            arrays[keys[o]] = np.asarray(a, dtype=_F32)
        mark_traced(graph.nodes[name], keys, int(x.shape[0]))

    with _one_blas_thread():
        logits = digits_forward(params, x_test, record=record)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    arrays |= {"input/images": x_test, "input/labels": y_test, "reference/logits": logits}
    meta = {
        "workload": "digits-cnn",
        "description": "CNN conv3x3(16)-pool-conv3x3(32)-pool-fc(64)-fc(10), trained in numpy on "
                       "scikit-learn's 8x8 digits; GEMMs traced on the test set",
        "model": {"layers": {k: {"op": op, "N": n, "K": k_} for k, (op, n, k_) in LAYERS.items()},
                  "parameters": int(sum(p.size for p in params.values()))},
        "inputs": {"images": {"shape": list(x_test.shape), "dtype": "float32",
                              "scaling": "pixel / 16"},
                   "train_samples": len(y_train), "test_samples": len(y_test)},
        "training": {**TRAINING, "seed": seed, "split": "numpy.random.default_rng([seed, 1])"
                     ".permutation; the first 20% is the test set"},
        "sampling": {"max_rows": None, "seed": seed, "rule": "all rows stored"},
        "reference": "float32 numpy forward pass: Y = X @ W.T + b, im2col columns (C, kh, kw)",
        "accuracy_fp32": accuracy,
        "libraries": library_versions("numpy", "networkx", "scikit-learn"),
    }
    write_trace(out_dir, graph, arrays, meta)
    return load_trace(out_dir)


@contextlib.contextmanager
def _trace_of(trace: Trace | str | Path) -> Iterator[Trace]:
    """Use ``trace``, or open the trace at that path and close it afterwards."""
    with contextlib.ExitStack() as stack:
        t = trace if isinstance(trace, Trace) else stack.enter_context(load_trace(trace))
        if t.meta.get("workload") != "digits-cnn":
            raise ValueError(f"trace must be of workload 'digits-cnn', "
                             f"not {t.meta.get('workload')!r}")
        yield t


def run_digits_with_gemm_override(trace: Trace | str | Path,
                                  override_fn: GEMMOverride | None = None) -> np.ndarray:
    """Run the traced CNN on its test images, each GEMM replaced by ``override_fn``'s output.

    Parameters
    ----------
    trace : Trace or path-like
        A ``digits-cnn`` trace; the weights and images come from it.
    override_fn : callable, optional
        ``override_fn(layer, x, w, b) -> y`` (see
        :data:`arithforge.workloads.trace.GEMMOverride`); ``None`` is the float32 model, which
        reproduces ``reference/logits``.

    Returns
    -------
    numpy.ndarray
        Logits ``(n_test, 10)``.
    """
    with _trace_of(trace) as t, _one_blas_thread():
        params = {f"{name}/{o}": t.tensors[f"{name}/{o}"] for name in LAYERS for o in ("w", "b")}
        return digits_forward(params, t.tensors["input/images"], override_fn)


def digits_accuracy(trace: Trace | str | Path, override_fn: GEMMOverride | None = None) -> float:
    """Return the test accuracy of the traced CNN with its GEMMs replaced by ``override_fn``."""
    with _trace_of(trace) as t:
        logits = run_digits_with_gemm_override(t, override_fn)
        return float((logits.argmax(axis=1) == t.tensors["input/labels"]).mean())
