"""Accuracy of a number format and datapath on a trace: per-GEMM error and the model's end metric.

:func:`evaluate` quantizes every traced GEMM's activations and weights (:mod:`.quantize`), runs
the chosen datapath's GEMM accuracy model bit-exactly on the codes, scales the accumulator output
back, adds the bias in float64, and compares with the trace's fp32 output:

``sqnr_db``
    ``10 log10(sum Y**2 / sum (Y - Yq)**2)`` over the outputs compared (``None`` when they agree
    exactly, when an output is not finite, or when the reference is all zeros and the emulated
    outputs are not).
``rel_err``
    ``||Y - Yq|| / ||Y||`` (Frobenius).

The models are the ``accuracy`` faces of the datapath descriptors: every datapath
``arithforge.datapaths.with_face("accuracy")`` lists, under its one name (``exact``, ``fma``,
``lmac``, ``imac``, ``mx``, ``tensorcore``, ``bitserial``, ``lut``). Each descriptor module of
:mod:`arithforge.datapaths` says what its model computes and which options it takes;
:mod:`arithforge.datapaths.gemm` holds the fast kernels.

Each GEMM is evaluated in isolation, on the fp32 operands the trace recorded. The end metric
instead replaces every GEMM of the model by the emulated one and runs it, so errors propagate:
MiniLM gives the Spearman correlation on its graded sentence pairs and the cosine similarity of
each sentence embedding to the fp32 one; the digits CNN gives its test accuracy and its agreement
with the fp32 predictions. Synthetic traces (and traces of other modules) have per-GEMM metrics
only. Outputs of the emulated GEMMs enter the model as float32.

Attention and nonlinear ops: a trace that recorded them (``arithforge trace minilm``) has
attention GEMMs (QK^T, PV per head; :class:`~.trace.AttnGEMM`) and softmax, GELU and LayerNorm
inputs and outputs (:class:`~.trace.NonlinearOp`). With ``attention`` (the default) both operands
of each head's GEMM are quantized in the activation format and run on the datapath, per op and
in MiniLM's end metric (``scaled_dot_product_attention`` split per sentence and head over the
real tokens); ``nonlinear`` picks the implementation of softmax, GELU and LayerNorm from
:mod:`.nonlinear` (``float``, a float format, or the integer units ``ibert``/``ivit``). Their
errors are reported per op type (``summary.by_kind``, ``summary.nonlinear_by_op``).

Which outputs a metric saw is part of the result. A trace may store a sample of each GEMM's rows
(MiniLM stores 64 tokens of 439). Slow datapaths (:attr:`Accuracy.fast` false: ``fma``,
``tensorcore``, ``lut``) are evaluated per layer on at most ``max_rows`` rows (64 unless given),
and on at most ``max_cols`` output columns if given; each layer's ``sample`` says what was used.
The end metric always runs every row and column of every GEMM. Per-tensor activation scales come
from the rows the GEMM sees: the stored rows per layer, the whole batch in the end metric.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..datapaths import Accuracy, Config
from ..datapaths import get as get_datapath
from ..formats import Format, Rounding, get_format
from ..formats.rounding import as_rounding
from .limits import check_block_size, check_sample_limit, check_seed
from .nonlinear import FloatReference, Nonlinear, get_nonlinear
from .quantize import (
    SCALINGS,
    Quantized,
    quantize,
    quantize_groups,
    quantize_zero_point,
    zero_point_correction,
)
from .trace import (
    AttnGEMM,
    AttnGEMMOverride,
    GEMMOverride,
    NonlinearOp,
    Trace,
    load_trace,
    sample_rows,
)
from .transform import Transform, parse_transform, smooth_scales

__all__ = ["DEFAULT_SLOW_ROWS", "accuracy_model", "check_options", "evaluate", "rel_err",
           "sqnr_db"]

#: Rows per layer for the per-layer metrics of slow datapaths, unless ``max_rows`` says otherwise.
DEFAULT_SLOW_ROWS = 64

F64 = npt.NDArray[np.float64]


def sqnr_db(reference: npt.ArrayLike, estimate: npt.ArrayLike) -> float | None:
    """Signal-to-quantization-noise ratio ``10 log10(sum ref**2 / sum (ref - est)**2)`` in dB.

    ``None`` when the two agree exactly (infinite SQNR) or an estimate is not finite.
    """
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if not np.isfinite(est).all():
        return None
    noise = float(np.sum((ref - est) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return None
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def rel_err(reference: npt.ArrayLike, estimate: npt.ArrayLike) -> float | None:
    """Relative error ``||ref - est|| / ||ref||`` (Frobenius); ``None`` if not finite."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    norm = float(np.linalg.norm(ref))
    err = float(np.linalg.norm(ref - est))
    if not math.isfinite(err) or norm == 0:
        return None
    return err / norm


def accuracy_model(name: str) -> Accuracy:
    """The GEMM accuracy model of datapath ``name`` (its descriptor's ``accuracy`` face).

    Raises
    ------
    arithforge.datapaths.DatapathError
        (an ``ArithforgeError``) One line for an unknown name or a datapath without a GEMM
        model, listing those there are.
    """
    model = get_datapath(name, "accuracy").accuracy
    assert model is not None  # get(..., "accuracy") returns only datapaths that have one
    return model


def check_options(model: Accuracy, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill in a GEMM model's option defaults; refuse options it does not have or values it does
    not take (:attr:`Accuracy.check`)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(model.options))
    if unknown:
        have = ", ".join(model.options) or "none"
        raise ArithforgeError(f"datapath {model.name!r} has no option {unknown[0]!r} "
                              f"(its options: {have})")
    full = {**model.options, **given}
    if model.check is None:
        return full
    try:
        return model.check(full)
    except (TypeError, ValueError) as exc:
        raise ArithforgeError(f"datapath {model.name!r}: {exc}") from None


class _Setup:
    """Resolved formats, datapath and options of one evaluation; quantizes and runs GEMMs."""

    def __init__(self, weights: str | Format, acts: str | Format, datapath: str,
                 acc: str | Format | None, scaling: str, weight_scaling: str | None,
                 act_scaling: str | None, pow2_scales: bool, block_size: int,
                 rounding: str | None, options: Mapping[str, Any] | None,
                 transform: str | Transform | None = None) -> None:
        self.transform = parse_transform(transform)
        self.datapath: Accuracy = accuracy_model(datapath)
        self.options = check_options(self.datapath, options)
        self.fmt_w = get_format(weights)
        self.fmt_x = get_format(acts)
        self.acc = get_format(acc if acc is not None else self.datapath.acc)
        self.rounding: Rounding = as_rounding(rounding or self.datapath.rounding)
        self.scaling_w = scaling if weight_scaling is None else weight_scaling
        self.scaling_x = scaling if act_scaling is None else act_scaling
        for what, s in (("scaling", scaling), ("weight scaling", weight_scaling),
                        ("activation scaling", act_scaling)):
            if s is not None and s not in SCALINGS:
                raise ArithforgeError(f"{what} must be one of {', '.join(SCALINGS)}, not {s!r}")
        self.pow2 = bool(pow2_scales)
        self.block_size = check_block_size(block_size)
        self.config = Config(self.acc, self.rounding, self.options)
        self._weights: dict[str, tuple[tuple[int, ...], Quantized]] = {}
        self._smooth: dict[str, F64] = {}
        self._check_quantizer()

    def _is_int(self, fmt: Format) -> bool:
        return fmt.kind == "int"

    def _check_quantizer(self) -> None:
        """Refuse a transform quantizer the formats or scalings cannot take, before any work."""
        t = self.transform
        if t.quantizer in ("afpq", "group") and self.fmt_w.kind not in ("float", "int"):
            raise ArithforgeError(f"transform {t.quantizer} needs a float or integer element "
                                  f"format for the weights, not {self.fmt_w.name!r}")
        if t.quantizer == "zeropoint" and t.group is not None and not self._is_int(self.fmt_w):
            raise ArithforgeError(f"transform zeropoint:{t.group} needs integer weights "
                                  f"(int8, int4...), not {self.fmt_w.name!r}")
        if t.quantizer == "zeropoint" and t.group is None:
            ints = [(f, s, what) for f, s, what in ((self.fmt_w, self.scaling_w, "weight"),
                                                      (self.fmt_x, self.scaling_x, "activation"))
                    if self._is_int(f)]
            if not ints:
                raise ArithforgeError(f"transform zeropoint needs integer weights or "
                                      f"activations (int8, int4...), not {self.fmt_w.name!r} "
                                      f"and {self.fmt_x.name!r}")
            for _, s, what in ints:
                if s not in ("per-tensor", "per-channel"):
                    raise ArithforgeError(f"transform zeropoint needs per-tensor or per-channel "
                                          f"{what} scaling, not {s!r}")

    def calibrate(self, trace: Trace) -> None:
        """SmoothQuant's per-channel scales of every weight GEMM from the trace's stored rows."""
        alpha = self.transform.alpha
        if alpha is None:
            return
        for g in trace.gemms:
            x, w, _, _, _ = trace.operands(g.name)
            amax = np.max(np.abs(np.asarray(x, dtype=np.float64)), axis=0)
            self._smooth[g.name] = smooth_scales(amax, w, alpha)

    def _scales(self, name: str, k: int) -> F64:
        s = self._smooth.get(name)
        if s is None or s.shape != (k,):
            raise ArithforgeError(f"smoothquant has no calibration for GEMM {name!r} with K = "
                                  f"{k} (the trace has not recorded it)")
        return s

    def quantize_w(self, name: str, w: np.ndarray) -> Quantized:
        """The weights, transformed (offline: once per GEMM) and quantized."""
        hit = self._weights.get(name)
        if hit is None or hit[0] != w.shape:
            t = self.transform
            v = np.asarray(w, dtype=np.float64) * self._scales(name, w.shape[1]) \
                if t.smooths else w
            v = t.apply(v)
            if t.quantizer in ("afpq", "group") or (t.quantizer == "zeropoint"
                                                    and t.group is not None):
                assert t.group is not None
                q = quantize_groups(v, self.fmt_w, t.quantizer, t.group)
            elif t.quantizer == "zeropoint" and self._is_int(self.fmt_w):
                q = quantize_zero_point(v, self.fmt_w, self.scaling_w)
            else:
                q = quantize(v, self.fmt_w, self.scaling_w, pow2=self.pow2,
                             block_size=self.block_size)
            hit = (w.shape, q)
            self._weights[name] = hit
        return hit[1]

    def quantize_x(self, x: np.ndarray, name: str | None = None) -> Quantized:
        """The activations, transformed and quantized; ``name``: the weight GEMM they feed
        (SmoothQuant divides them by its scales; attention GEMMs give none)."""
        t = self.transform
        v = x
        if t.smooths and name is not None:
            v = np.asarray(x, dtype=np.float64) / self._scales(name, x.shape[1])
        # Online: the FWHT unit in its lane format (float64 when the transform names none).
        v = t.apply_online(v)
        if t.quantizer == "zeropoint" and t.group is None and self._is_int(self.fmt_x):
            return quantize_zero_point(v, self.fmt_x, self.scaling_x)
        return quantize(v, self.fmt_x, self.scaling_x, pow2=self.pow2,
                        block_size=self.block_size)

    def gemm(self, qx: Quantized, qw: Quantized, b: np.ndarray | None) -> tuple[F64, str]:
        """Emulated ``X @ W.T + b`` in float64 (zero-point correction, scales and bias applied
        in float64)."""
        acc, path = self.datapath.run(qx, qw, self.config)
        acc = zero_point_correction(acc, qx, qw)
        with np.errstate(invalid="ignore", over="ignore"):
            y = acc * qx.scale * qw.scale.T
            if b is not None:
                y = y + np.asarray(b, dtype=np.float64)
        return y, path

    def override(self) -> GEMMOverride:
        """A GEMM override for the models' forward passes (float32 out)."""

        def run(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
            y, _ = self.gemm(self.quantize_x(x, name), self.quantize_w(name, w), b)
            with np.errstate(over="ignore"):
                return y.astype(np.float32)

        return run

    def attn_override(self) -> AttnGEMMOverride:
        """An attention-GEMM override: both operands are activations (float32 out)."""

        def run(role: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
            y, _ = self.gemm(self.quantize_x(x), self.quantize_x(w), None)
            with np.errstate(over="ignore"):
                return y.astype(np.float32)

        return run

    def describe(self) -> dict[str, Any]:
        def scaling(fmt: Format, asked: str) -> str:
            return "per-block" if fmt.kind == "block" else asked

        t = self.transform
        w_scaling = scaling(self.fmt_w, self.scaling_w)
        x_scaling = scaling(self.fmt_x, self.scaling_x)
        if t.quantizer == "zeropoint" and t.group is None:
            # The asymmetric quantizer replaces the integer operands' symmetric scaling.
            w_scaling += " zero-point" if self._is_int(self.fmt_w) else ""
            x_scaling += " zero-point" if self._is_int(self.fmt_x) else ""
        elif t.quantizer != "none":
            w_scaling = f"{t.quantizer}:{t.group}"
        return {
            "weights": self.fmt_w.name, "acts": self.fmt_x.name,
            "datapath": self.datapath.name, "acc": self.acc.name,
            "rounding": self.rounding.value,
            "scaling": {"weights": w_scaling, "acts": x_scaling},
            "pow2_scales": self.pow2, "block_size": self.block_size,
            "options": dict(self.options), "transform": self.transform.name,
        }

    def describe_extra(self, attention: bool, nl: Nonlinear) -> dict[str, Any]:
        return {"attention": "emulated" if attention else "float32",
                "nonlinear": nl.name, "nonlinear_rounding": nl.description}


def _sample(total: int, limit: int | None, seed: int) -> npt.NDArray[np.intp] | None:
    rows = sample_rows(total, limit, seed)
    return None if rows is None else rows.astype(np.intp)


def _layer(setup: _Setup, trace: Trace, name: str, max_rows: int | None,
           max_cols: int | None, seed: int) -> tuple[dict[str, Any], float, float]:
    """Metrics of one GEMM, and the sums of squares of its reference and its error."""
    g = trace.gemm(name)
    start = time.perf_counter()
    x, w, b, y, _ = trace.operands(name)
    qx = setup.quantize_x(x, name)
    qw = setup.quantize_w(name, w)
    rows = _sample(x.shape[0], max_rows, seed)
    cols = _sample(w.shape[0], max_cols, seed + 1)
    y_ref = y if rows is None else y[rows]
    y_ref = y_ref if cols is None else y_ref[:, cols]
    bias = None if b is None else (b if cols is None else b[cols])
    y_hat, path = setup.gemm(qx.take(rows), qw.take(cols), bias)
    n_rows = x.shape[0] if rows is None else len(rows)
    n_cols = w.shape[0] if cols is None else len(cols)
    notes = []
    if g.sampled:
        notes.append(f"{g.rows} of {g.M} rows stored in the trace")
    if rows is not None:
        notes.append(f"{n_rows} of {x.shape[0]} stored rows")
    if cols is not None:
        notes.append(f"{n_cols} of {g.N} columns")
    with np.errstate(invalid="ignore", over="ignore"):
        signal = float(np.sum(y_ref.astype(np.float64) ** 2))
        noise = float(np.sum((y_ref - y_hat) ** 2))
    return {
        "name": name, "op": g.op, "M": g.M, "N": g.N, "K": g.K, "rows": n_rows, "cols": n_cols,
        "sample": "; ".join(notes) or None,
        # -inf (a reference of zeros, emulated outputs that are not) is None too: JSON has no
        # infinities, and the result promises to be JSON.
        "sqnr_db": _finite_or_none(sqnr_db(y_ref, y_hat)), "rel_err": rel_err(y_ref, y_hat),
        "max_abs_err": _finite_or_none(float(np.max(np.abs(y_ref - y_hat), initial=0.0))),
        "nonfinite": int((~np.isfinite(y_hat)).sum()),
        "path": path, "seconds": round(time.perf_counter() - start, 4),
    }, signal, noise


def _errors(y_ref: np.ndarray, y_hat: np.ndarray) -> dict[str, Any]:
    return {
        "sqnr_db": _finite_or_none(sqnr_db(y_ref, y_hat)), "rel_err": rel_err(y_ref, y_hat),
        "max_abs_err": _finite_or_none(float(np.max(np.abs(y_ref - y_hat), initial=0.0))),
        "nonfinite": int((~np.isfinite(y_hat)).sum()),
    }


def _sums(y_ref: np.ndarray, y_hat: np.ndarray) -> tuple[float, float]:
    with np.errstate(invalid="ignore", over="ignore"):
        return (float(np.sum(np.asarray(y_ref, np.float64) ** 2)),
                float(np.sum((y_ref - y_hat) ** 2)))


def _attn_layer(setup: _Setup, trace: Trace, g: AttnGEMM,
                emulate: bool) -> tuple[dict[str, Any], float, float]:
    """Metrics of one attention GEMM over its stored heads (each head quantized on its own)."""
    start = time.perf_counter()
    refs, hats = [], []
    path = "float32 (not emulated)"
    rows = 0
    for i in range(g.slices):
        x, w, y = g.operands(trace, i)
        if emulate:
            y_hat, path = setup.gemm(setup.quantize_x(x), setup.quantize_x(w), None)
        else:
            y_hat = (x @ w.T).astype(np.float64)
        refs.append(y.astype(np.float64).ravel())
        hats.append(np.asarray(y_hat, np.float64).ravel())
        rows += x.shape[0]
    y_ref, y_hat_all = np.concatenate(refs), np.concatenate(hats)
    n_tok = x.shape[0] if g.role == "attn_qk" else x.shape[1]
    signal, noise = _sums(y_ref, y_hat_all)
    return {
        "name": g.name, "op": g.role, "M": rows, "N": y.shape[1], "K": x.shape[1],
        "rows": rows, "cols": int(y.shape[1]),
        "sample": f"{g.slices} heads x sentences stored in the trace ({rows} query rows, "
                  f"last slice {n_tok} tokens)",
        **_errors(y_ref, y_hat_all), "path": path,
        "seconds": round(time.perf_counter() - start, 4),
    }, signal, noise


def _nonlinear_op(impl: Nonlinear, trace: Trace, op: NonlinearOp) -> dict[str, Any]:
    """Error of ``impl`` on one traced nonlinear op against its fp32 output."""
    start = time.perf_counter()
    x = trace.tensors[op.tensors["x"]].astype(np.float64)
    y = trace.tensors[op.tensors["y"]].astype(np.float64)
    if op.in_attention:
        lengths = trace.tensors[op.tensors["lengths"]]
        valid = (trace.tensors[op.tensors["valid"]] if "valid" in op.tensors else None)
        refs, hats = [], []
        for i, n in enumerate(lengths.tolist()):
            s = x[i, :n, :n]
            if valid is not None:
                s = np.where(valid[i, :n, :n], s, -np.inf)
            hats.append(impl.softmax(s, -1).ravel())
            refs.append(y[i, :n, :n].ravel())
        y_ref, y_hat = np.concatenate(refs), np.concatenate(hats)
    elif op.op == "softmax":
        y_ref, y_hat = y, impl.softmax(x, -1)
    elif op.op == "gelu":
        y_ref, y_hat = y, impl.gelu(x, str(op.params.get("approximate", "none")))
    elif op.op == "layer_norm":
        w = op.tensors.get("weight")
        b = op.tensors.get("bias")
        y_ref, y_hat = y, impl.layer_norm(
            x, None if w is None else trace.tensors[w].astype(np.float64),
            None if b is None else trace.tensors[b].astype(np.float64),
            float(op.params.get("eps", 1e-5)))
    else:
        raise ArithforgeError(f"trace {str(trace.path)!r}: nonlinear op {op.name!r} is "
                              f"{op.op!r}, which evaluate does not compute")
    return {"name": op.name, "op": op.op, "layer": op.layer, "rows": op.rows,
            "implementation": impl.name, **_errors(y_ref, y_hat),
            "seconds": round(time.perf_counter() - start, 4)}


def _by_kind(records: list[dict[str, Any]], pooled: Mapping[str, tuple[float, float]]
             ) -> dict[str, dict[str, Any]]:
    """Per op kind: count, mean and min SQNR, pooled SQNR (when sums are given), mean rel err."""
    out: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r["op"] for r in records):
        rs = [r for r in records if r["op"] == kind]
        sq = [r["sqnr_db"] for r in rs if r["sqnr_db"] is not None]
        re = [r["rel_err"] for r in rs if r["rel_err"] is not None]
        entry: dict[str, Any] = {
            "count": len(rs), "sqnr_db_mean": float(np.mean(sq)) if sq else None,
            "sqnr_db_min": float(np.min(sq)) if sq else None,
            "rel_err_mean": float(np.mean(re)) if re else None}
        if kind in pooled:
            signal, noise = pooled[kind]
            entry["sqnr_db_pooled"] = (10 * math.log10(signal / noise) if noise > 0 < signal
                                       and math.isfinite(noise) else None)
        out[kind] = entry
    return out


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _summary(layers: list[dict[str, Any]], pooled: tuple[float, float]) -> dict[str, Any]:
    sq = [r["sqnr_db"] for r in layers if r["sqnr_db"] is not None]
    re = [r["rel_err"] for r in layers if r["rel_err"] is not None]
    signal, noise = pooled
    pooled_db = (10 * math.log10(signal / noise)
                 if noise > 0 and signal > 0 and math.isfinite(noise) else None)
    return {
        "layers": len(layers),
        "sampled_layers": sum(r["sample"] is not None for r in layers),
        "sqnr_db_mean": float(np.mean(sq)) if sq else None,
        "sqnr_db_min": float(np.min(sq)) if sq else None,
        "sqnr_db_median": float(np.median(sq)) if sq else None,
        "sqnr_db_pooled": pooled_db,
        "rel_err_mean": float(np.mean(re)) if re else None,
        "rel_err_max": float(np.max(re)) if re else None,
        "nonfinite": sum(r["nonfinite"] for r in layers),
    }


def _minilm_metric(setup: _Setup, trace: Trace, attention: bool,
                   nonlinear: Nonlinear) -> dict[str, Any]:
    from .metrics import spearman
    from .minilm import run_minilm_with_linear_override

    emb = run_minilm_with_linear_override(
        setup.override(), attn_fn=setup.attn_override() if attention else None,
        nonlinear=None if isinstance(nonlinear, FloatReference) else nonlinear
    ).astype(np.float64)
    ref = trace.tensors["reference/sts_embeddings"].astype(np.float64)
    pairs = trace.tensors["input/sts_pairs"]
    scores = trace.tensors["input/sts_scores"]
    cos_ref = np.einsum("ij,ij->i", emb, ref)
    finite = bool(np.isfinite(emb).all())
    cos_pairs = np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]])
    return {
        "name": "spearman",
        "value": spearman(cos_pairs, scores) if finite else None,
        "fp32": float(trace.meta["sts"]["spearman_fp32"]),
        "cosine_to_fp32_mean": float(np.mean(cos_ref)) if finite else None,
        "cosine_to_fp32_min": float(np.min(cos_ref)) if finite else None,
        "sentences": int(emb.shape[0]), "pairs": int(len(scores)),
    }


def _digits_metric(setup: _Setup, trace: Trace, attention: bool,
                   nonlinear: Nonlinear) -> dict[str, Any]:
    # The digits CNN has no attention, softmax, GELU or LayerNorm (ReLU and max-pool only).
    from .digits import run_digits_with_gemm_override

    logits = run_digits_with_gemm_override(trace, setup.override())
    labels = trace.tensors["input/labels"]
    ref = trace.tensors["reference/logits"]
    pred = logits.argmax(axis=1)
    return {
        "name": "accuracy",
        "value": float((pred == labels).mean()),
        "fp32": float(trace.meta["accuracy_fp32"]),
        "agreement_with_fp32": float((pred == ref.argmax(axis=1)).mean()),
        "samples": int(len(labels)),
    }


_END_METRICS = {"minilm": _minilm_metric, "digits-cnn": _digits_metric}

#: What each end metric reads besides the GEMMs' operands: arrays of tensors.npz, keys of
#: meta.json (a path into nested objects).
_END_METRIC_NEEDS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "minilm": (("reference/sts_embeddings", "input/sts_pairs", "input/sts_scores"),
               (("sts", "spearman_fp32"),)),
    "digits-cnn": (("input/images", "input/labels", "reference/logits"),
                   (("accuracy_fp32",),)),
}


def _check_end_metric(trace: Trace) -> None:
    """Refuse, before any work, a trace that lacks what its workload's end metric reads."""
    from .trace import remake_hint

    arrays, meta_keys = _END_METRIC_NEEDS[trace.name]
    if trace.name == "digits-cnn":
        from .digits import LAYERS

        arrays = (*arrays, *(f"{layer}/{o}" for layer in LAYERS for o in ("w", "b")))
    missing = [a for a in arrays if a not in trace.tensors]
    for path in meta_keys:
        node: Any = trace.meta
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, int | float) or isinstance(node, bool):
            missing.append(f"meta.json {'.'.join(path)}")
    if missing:
        raise ArithforgeError(
            f"trace {str(trace.path)!r} of workload {trace.name!r} lacks {', '.join(missing)}, "
            f"which its end metric reads; {remake_hint(trace.path, trace.name)} "
            "(or pass --no-end-metric)")
    if trace.name == "minilm":
        from .minilm import _model

        # The end metric runs the model: load it (and find torch) now, not after every layer.
        _model()


@contextlib.contextmanager
def _open(trace: Trace | str | Path) -> Iterator[Trace]:
    with contextlib.ExitStack() as stack:
        yield trace if isinstance(trace, Trace) else stack.enter_context(load_trace(trace))


def evaluate(trace: Trace | str | Path, weights: str | Format = "float8_e4m3fn",
             acts: str | Format = "float8_e4m3fn", datapath: str = "exact",
             acc: str | Format | None = None, scaling: str = "per-tensor", *,
             weight_scaling: str | None = None, act_scaling: str | None = None,
             pow2_scales: bool = False, block_size: int = 32, rounding: str | None = None,
             options: Mapping[str, Any] | None = None, end_metric: bool = True,
             max_rows: int | None = None, max_cols: int | None = None,
             seed: int = 0, attention: bool = True,
             nonlinear: str | Nonlinear | None = "float",
             transform: str | Transform | None = None) -> dict[str, Any]:
    """Emulate weights in ``weights``, activations in ``acts`` and ``datapath`` on a trace.

    Parameters
    ----------
    trace : Trace or path-like
        A trace directory (``arithforge trace``) or an open trace.
    weights, acts : str or Format
        Formats of the weights and activations: any catalog name or ``eXmY`` spelling, integer
        formats, posits, or block formats (``mxfp8_e4m3``, ``mxfp4_e2m1``, ``mxint8``...).
    datapath : str
        A datapath with a GEMM accuracy model: one of
        ``arithforge.datapaths.with_face("accuracy")`` (``exact``, ``fma``, ``lmac``, ``imac``,
        ``mx``, ``tensorcore``, ``bitserial``, ``lut``, and registered plug-ins).
    acc : str or Format, optional
        Accumulator format; default the datapath's (float32, int32 for ``imac``).
    scaling : str
        ``none``, ``per-tensor``, ``per-channel`` or ``per-block``, for both operands unless
        ``weight_scaling`` or ``act_scaling`` say otherwise (block formats always scale
        per block). See :mod:`arithforge.workloads.quantize`.
    pow2_scales : bool
        Round per-tensor and per-channel scales up to powers of two.
    block_size : int
        Block size when ``per-block`` scaling wraps an element format.
    rounding : str, optional
        Accumulator rounding; default the datapath's (``rne``; ``rtz`` for ``tensorcore``).
    options : mapping, optional
        The datapath's options (``normalization``, ``n``, ``frac_bits``, ``form``...): see its
        descriptor module in :mod:`arithforge.datapaths`.
    end_metric : bool
        Run the whole model with every GEMM emulated (MiniLM, digits CNN).
    max_rows, max_cols : int, optional
        Evaluate each GEMM on at most this many rows (columns), sampled deterministically.
        Slow datapaths default to :data:`DEFAULT_SLOW_ROWS` rows.
    seed : int
        Seed of those samples.
    attention : bool
        Emulate the attention GEMMs (QK^T and PV per head, both operands in ``acts``) in the
        per-op metrics and the end metric; false keeps them fp32.
    nonlinear : str or Nonlinear
        Implementation of softmax, GELU and LayerNorm (:func:`.nonlinear.get_nonlinear`):
        ``float`` (default; the float64 reference per op, the model's own fp32 ops in the end
        metric except the attention softmax when attention is emulated), a float format name
        (inputs and outputs rounded to it), ``ibert`` or ``ivit``.
    transform : str or Transform, optional
        ``none`` (default) or a ``+``-joined list of ``smoothquant[:ALPHA]`` (per-channel
        scales from the trace's stored rows), ``hadamard[:BLOCK]`` or ``rht[:BLOCK[:SEED]]``
        (rotation along K; ``@LANES``: the activations rotated in the FWHT unit's lane
        format, bit for bit), and ``afpq[:GROUP]``, ``group[:GROUP]`` or ``zeropoint[:GROUP]``
        (asymmetric or group quantizers in place of the weights' or integer operands'
        scaling): see :mod:`arithforge.workloads.transform`.

    Returns
    -------
    dict
        ``trace``, ``workload``, ``config``, ``layers`` (one dict per GEMM: shape, rows and
        columns used, ``sample``, ``sqnr_db``, ``rel_err``, ``max_abs_err``, ``nonfinite``,
        ``path``, ``seconds``), ``attention`` (the same per traced attention GEMM, pooled
        over its stored heads, ``op`` ``attn_qk`` or ``attn_pv``; kept out of ``layers`` so
        that per-layer consumers, such as mixed precision, see the weight GEMMs only),
        ``nonlinear`` (one dict per traced softmax, GELU and LayerNorm: ``sqnr_db``,
        ``rel_err``, ``max_abs_err`` of the implementation against the fp32 output),
        ``summary`` (with ``by_kind`` and ``nonlinear_by_op``), ``end_metric`` (``None`` for
        workloads without one) and ``seconds``. JSON-serializable; infinite SQNR is ``None``.

    Raises
    ------
    ArithforgeError, FormatError
        For unknown formats, datapaths, scalings or options, and trace directories that do not
        load.
    """
    t0 = time.perf_counter()
    setup = _Setup(weights, acts, datapath, acc, scaling, weight_scaling, act_scaling,
                   pow2_scales, block_size, rounding, options, transform)
    max_rows = check_sample_limit(max_rows, "max_rows")
    max_cols = check_sample_limit(max_cols, "max_cols")
    seed = check_seed(seed)
    nl = get_nonlinear(nonlinear)
    attention = bool(attention)
    if max_rows is None and not setup.datapath.fast:
        max_rows = DEFAULT_SLOW_ROWS
    with _open(trace) as t:
        if not t.gemms:
            raise ArithforgeError(f"trace {str(t.path)!r} has no traced GEMM to evaluate")
        setup.calibrate(t)
        metric_fn = _END_METRICS.get(t.name) if end_metric else None
        if metric_fn is not None:
            _check_end_metric(t)
        layers = []
        signal = noise = 0.0
        pooled: dict[str, tuple[float, float]] = {}
        for g in t.gemms:
            record, s, n = _layer(setup, t, g.name, max_rows, max_cols, seed)
            layers.append(record)
            signal += s
            noise += n
            ps, pn = pooled.get(g.op, (0.0, 0.0))
            pooled[g.op] = (ps + s, pn + n)
        attn = []
        for ag in t.attn_gemms:
            record, s, n = _attn_layer(setup, t, ag, attention)
            attn.append(record)
            ps, pn = pooled.get(ag.role, (0.0, 0.0))
            pooled[ag.role] = (ps + s, pn + n)
        nl_ops = [_nonlinear_op(nl, t, op) for op in t.nonlinear]
        t1 = time.perf_counter()
        metric = metric_fn(setup, t, attention, nl) if metric_fn is not None else None
        t2 = time.perf_counter()
        notes = []
        summary = _summary(layers, (signal, noise))
        summary["by_kind"] = _by_kind(layers + attn, pooled)
        summary["nonlinear_by_op"] = _by_kind(nl_ops, {})
        if summary["nonfinite"]:
            notes.append(f"{summary['nonfinite']} outputs are not finite: the accumulator "
                         "overflowed or saturated to NaN (scaling a wide format such as bfloat16 "
                         "to its largest value makes products overflow float32: try scaling "
                         "'none')")
        if any(r["sample"] for r in layers):
            notes.append("per-layer metrics of the layers with a 'sample' use only those rows "
                         "and columns")
        if metric is not None:
            emulated_attn = attention and t.name == "minilm"
            notes.append("the end metric runs every row and column of every GEMM"
                         + (", attention GEMMs per head over the real tokens" if emulated_attn
                            else ""))
        if attention and not t.attn_gemms and t.name == "minilm":
            notes.append("this trace predates traced attention GEMMs and nonlinear ops: per-op "
                         "metrics cover the Linear GEMMs only (the end metric still emulates "
                         "attention); re-run `arithforge trace minilm` for the rest")
        if metric is None and end_metric:
            notes.append(f"workload {t.name!r} has no end metric; per-GEMM metrics only")
        return {
            "trace": str(t.path), "workload": t.name,
            "config": {**setup.describe(), **setup.describe_extra(attention, nl)},
            "layers": layers, "attention": attn, "nonlinear": nl_ops, "summary": summary,
            "end_metric": metric, "notes": notes,
            "seconds": {"layers": round(t1 - t0, 3), "end_metric": round(t2 - t1, 3),
                        "total": round(t2 - t0, 3)},
        }
