# Ref: J. Shah et al., "FlashAttention-3: Fast and Accurate Attention with Asynchrony and
#      Low-precision", arXiv 2407.08608: §3.3 (FP8: block quantization, incoherent processing
#      with a random-sign Hadamard matrix on Q and K) and §4.3 (numerical error, Table 3).
"""FlashAttention-3's FP8 error experiment (arXiv 2407.08608 §4.3, Table 3), emulated bit-exactly.

The paper draws Q, K, V with entries ``N(0, 1) + N(0, 100) * Bernoulli(0.001)`` (0.1% of the
entries get an extra term of standard deviation 10), runs attention in several ways and reports
the RMSE of the output against an FP64 reference:

=========================== ======== ======
kernel                      FP16     FP8
=========================== ======== ======
standard attention          3.2e-4   2.4e-2
FlashAttention-3            1.9e-4   9.1e-3
FA3, no block quantization           9.3e-3
FA3, no incoherent process.          2.4e-2
=========================== ======== ======

Its FP8 baseline uses per-tensor scales, float32 matmul accumulation and softmax results kept
in FP16; FA3 keeps the softmax in float32, scales Q, K and V per block, and multiplies Q and K
by the same random orthogonal ``M = D H / sqrt(d)`` (random signs, Sylvester Hadamard), which
leaves ``Q K^T`` unchanged in exact arithmetic. The paper does not give the tensor shapes.

What is emulated here (every GEMM bit-exact, on the codes):

``standard`` (the paper's baseline)
    Q, K, V rounded to the input format (FP8: per-tensor amax scale to 448). ``S = Q K^T`` on
    the tensor-core model (``h100-fp8``: cuBLAS, promotion into float32 every 128; FP16:
    ``h100-fp16``) with the float32 epilogue scales, rounded to float16, times the softmax
    scale (float32, rounded to float16); softmax in float32 from those float16 scores, rounded
    to float16 (PyTorch's half softmax). FP8: ``P`` quantized per tensor (amax to 448) to e4m3;
    ``O = P V`` on the same model, float32 out (FP16: rounded to float16).
``flash`` (FlashAttention-3's forward)
    Q and K (optionally rotated) and V scaled per block of ``BLOCK`` rows (``block_quant``) or
    per tensor, rounded to the format. For each block of ``BLOCK`` keys: ``S`` on
    ``h100-fp8-fastacc`` (wgmma: steps of 32 products, 13 fraction bits, no promotion;
    FP16: ``h100-fp16``) with the float32 descales per row of Q and column of K; the online
    softmax in float32 (running row max ``m``, ``P = 2**(S c - m c + 8)`` with ``c = scale *
    log2 e``, row sums ``l``, ``O`` rescaled by ``2**((m_old - m_new) c)``); FP8: ``P`` cast to
    e4m3 unscaled, 0 <= P <= 256 (the ``+ 8`` is FA3's ``Max_offset``, hopper/softmax.h of
    Dao-AILab/flash-attention: it keeps small probabilities out of e4m3's subnormals; it
    cancels in ``O / l``); FP16: ``P`` (offset 0) rounded to float16. ``O += s_v * (P V_j)``
    with ``P V_j`` on the tensor-core model; ``O / l`` at the end, float32 out (FP16: rounded
    to float16).

Not bit-exact: the float32 softmax uses numpy's ``exp2`` and summation order, not the GPU's
``ex2.approx`` and its shuffles (errors near 1e-7, five orders below FP8's), and FA3 adds each
block's ``P V_j`` into its register accumulator where this adds the scaled partial in float32
(one more float32 rounding per block). The rotation is float64 (FA3 fuses it with rotary
embedding in 16-bit arithmetic).

Usage (from the repository root)::

    python tools/fa3_attention.py [--heads 4] [--seqlen 512] [--headdim 128] [--seed 0]
    python tools/fa3_attention.py --minilm build/accuracy-traces/minilm
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arithforge.formats import get_format, hadamard, mma

E4M3 = get_format("float8_e4m3fn")
F16 = get_format("float16")
F32 = get_format("float32")
#: Rows per Q block and keys per K/V block (FA3's tile for head dim 128, kBlockM = 128; our
#: choice for the key blocks, which only decide where the softmax rescales).
BLOCK = 128
#: Table 3 of arXiv 2407.08608 (RMSE against FP64).
PAPER = {"standard-fp16": 3.2e-4, "fa3-fp16": 1.9e-4, "standard-fp8": 2.4e-2,
         "fa3-fp8": 9.1e-3, "fa3-fp8-no-block": 9.3e-3, "fa3-fp8-no-incoherent": 2.4e-2}


@dataclass(frozen=True)
class Variant:
    """One attention implementation of the experiment."""

    name: str
    fp8: bool
    kernel: str  # "standard" or "flash"
    block_quant: bool = False
    incoherent: bool = False
    #: False: P and V stay float32 and ``P V`` is exact (the error of QK^T alone).
    fp8_pv: bool = True
    #: FP8 only: P = 2**(S c - m c + offset), in [0, 2**offset] before the cast to e4m3
    #: (FA3's Max_offset = 8, Dao-AILab/flash-attention hopper/softmax.h).
    p_offset: int = 8

    @property
    def label(self) -> str:
        """Row label of the table."""
        what = {"standard": "standard attention", "flash": "FA3"}[self.kernel]
        if self.kernel == "flash" and self.fp8:
            off = [n for n, on in (("block quantization", self.block_quant),
                                   ("incoherent processing", self.incoherent)) if not on]
            what += f", no {' nor '.join(off)}" if off else ""
            what += "" if self.fp8_pv else ", P V in float32"
            what += "" if self.p_offset == 8 else f", P in [0, {2 ** self.p_offset}]"
        return f"{what} ({'FP8 e4m3' if self.fp8 else 'FP16'})"


VARIANTS = (
    Variant("standard-fp16", False, "standard"),
    Variant("fa3-fp16", False, "flash"),
    Variant("standard-fp8", True, "standard"),
    Variant("fa3-fp8", True, "flash", block_quant=True, incoherent=True),
    Variant("fa3-fp8-no-block", True, "flash", block_quant=False, incoherent=True),
    Variant("fa3-fp8-no-incoherent", True, "flash", block_quant=True, incoherent=False),
    Variant("fa3-fp8-neither", True, "flash", block_quant=False, incoherent=False),
    Variant("fa3-fp8-p-unscaled", True, "flash", block_quant=True, incoherent=True, p_offset=0),
    Variant("fa3-fp8-qk-only", True, "flash", block_quant=True, incoherent=True, fp8_pv=False),
    Variant("fa3-fp8-qk-only-no-incoherent", True, "flash", block_quant=True, incoherent=False,
            fp8_pv=False),
)
_BY_NAME = {v.name: v for v in VARIANTS}


def outlier_inputs(heads: int, seqlen: int, headdim: int, seed: int = 0,
                   outlier_std: float = 10.0) -> np.ndarray:
    """Q, K, V as ``(3, heads, seqlen, headdim)``: ``N(0,1) + N(0,100) Bernoulli(0.001)``
    (arXiv 2407.08608 §4.3), rounded to float16 (the inputs the kernels and the FP64
    reference share)."""
    rng = np.random.default_rng(seed)
    shape = (3, heads, seqlen, headdim)
    x = rng.standard_normal(shape) + outlier_std * rng.standard_normal(shape) * (rng.random(shape)
                                                                            < 0.001)
    return F16.decode(F16.encode(x))


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """float64 ``softmax(Q K^T scale) V`` of one head."""
    s = (q @ k.T) * scale
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _round16(x: Any) -> np.ndarray:
    return F16.decode(F16.encode(np.asarray(x, dtype=np.float64))).astype(np.float32)


def _amax_scale(x: np.ndarray) -> np.float32:
    """float32 scale mapping amax to e4m3's largest value (1 for an all-zero tensor)."""
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    return np.float32(amax / E4M3.max_finite) if amax > 0 else np.float32(1.0)


def _quantize(x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """e4m3 codes of ``x / scale`` (saturating, RNE); ``scales`` broadcast against ``x``."""
    return E4M3.encode(x / scales.astype(np.float64), saturate=True)


def _block_scales(x: np.ndarray) -> np.ndarray:
    """Per-row scales of one head, one per block of ``BLOCK`` rows."""
    out = np.empty((x.shape[0], 1), dtype=np.float32)
    for r in range(0, x.shape[0], BLOCK):
        out[r:r + BLOCK] = _amax_scale(x[r:r + BLOCK])
    return out


def _matmul(a_codes: np.ndarray, b_codes: np.ndarray, fmt: Any, model: str,
            scale_a: Any = None, scale_b: Any = None) -> np.ndarray:
    """``A @ B`` on a tensor-core model, its float32 result as float32 values."""
    codes = mma.matmul(a_codes, b_codes, fmt, model=model, scale_a=scale_a, scale_b=scale_b)
    return F32.decode(codes).astype(np.float32)


def _standard(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, fp8: bool,
              tensor_scales: dict[str, np.float32]) -> np.ndarray:
    if fp8:
        sq, sk, sv = (tensor_scales[n] for n in "qkv")
        s = _matmul(_quantize(q, sq), _quantize(k, sk).T, E4M3, "h100-fp8", sq, sk)
    else:
        s = _matmul(F16.encode(q), F16.encode(k).T, F16, "h100-fp16")
    s16 = _round16(_round16(s) * np.float32(scale))
    e = np.exp(s16 - s16.max(axis=1, keepdims=True))
    p = _round16(e / e.sum(axis=1, keepdims=True, dtype=np.float32))
    if fp8:
        sp = tensor_scales["p"]
        return _matmul(_quantize(p, sp), _quantize(v, sv), E4M3, "h100-fp8", sp, sv)
    return _round16(_matmul(F16.encode(p), F16.encode(v), F16, "h100-fp16"))


def _flash(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, variant: Variant,
           tensor_scales: dict[str, np.float32]) -> np.ndarray:
    n, d = q.shape[0], v.shape[1]
    c = np.float32(scale * math.log2(math.e))
    offset = float(variant.p_offset) if variant.fp8 else 0.0
    if variant.fp8:
        fmt, model = E4M3, "h100-fp8-fastacc"
        if variant.block_quant:
            sq, sk, sv = _block_scales(q), _block_scales(k), _block_scales(v)
        else:
            sq, sk, sv = (np.full((x.shape[0], 1), tensor_scales[name], dtype=np.float32)
                          for x, name in ((q, "q"), (k, "k"), (v, "v")))
        qc, kc, vc = _quantize(q, sq), _quantize(k, sk), _quantize(v, sv)
    else:
        fmt, model = F16, "h100-fp16"
        qc, kc, vc = F16.encode(q), F16.encode(k), F16.encode(v)
        sq = sk = sv = None
    m = np.full((n, 1), -np.inf, dtype=np.float32)
    l_sum = np.zeros((n, 1), dtype=np.float32)
    o = np.zeros((n, d), dtype=np.float32)
    for j in range(0, k.shape[0], BLOCK):
        kb = slice(j, j + BLOCK)
        s = _matmul(qc, kc[kb].T, fmt, model, sq, None if sk is None else sk[kb].T)
        m_new = np.maximum(m, s.max(axis=1, keepdims=True))
        # One FFMA each: the float64 product of float32 values is exact, one rounding to float32.
        mc = (m_new.astype(np.float64) * c - offset).astype(np.float32)
        p = np.exp2((s.astype(np.float64) * c - mc).astype(np.float32))
        corr = np.exp2(((m - m_new).astype(np.float64) * c).astype(np.float32))
        l_sum = l_sum * corr + p.sum(axis=1, keepdims=True, dtype=np.float32)
        if not variant.fp8_pv:
            pv = (p.astype(np.float64) @ v[kb]).astype(np.float32)
        elif variant.fp8:
            pv = _matmul(E4M3.encode(p, saturate=True), vc[kb], fmt, model)
        else:
            pv = _matmul(F16.encode(p), vc[kb], fmt, model)
        if sv is not None and variant.fp8_pv:
            # One descale per block of V: taken out of the GEMM, applied in float32.
            pv = pv * sv[j]
        o = o * corr + pv
        m = m_new
    o = o / l_sum
    return o if variant.fp8 else _round16(o)


def attention(qkv: np.ndarray, variant: Variant | str, scale: float | None = None,
              seed: int = 0) -> np.ndarray:
    """Run ``variant`` on ``qkv`` of shape ``(3, heads, seqlen, headdim)`` (or a list of three
    lists of per-head arrays, lengths may differ); return the per-head outputs.

    Per-tensor scales are over all heads (the whole tensor); block scales per head and block of
    ``BLOCK`` rows; the incoherent-processing signs come from ``seed``.
    """
    var = _BY_NAME[variant] if isinstance(variant, str) else variant
    q_all, k_all, v_all = (list(x) for x in qkv)
    d = q_all[0].shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if var.incoherent:
        signs = hadamard.random_signs(d, seed)
        q_all = [hadamard.rotate(x, d, signs) for x in q_all]
        k_all = [hadamard.rotate(x, d, signs) for x in k_all]
    tensor_scales = {name: _amax_scale(np.concatenate([x.ravel() for x in xs]))
                     for name, xs in (("q", q_all), ("k", k_all), ("v", v_all))}
    # The standard kernel's P: softmax outputs reach 1 in every row, so amax(P) = 1.
    tensor_scales["p"] = _amax_scale(np.ones(1))
    out = []
    for q, k, v in zip(q_all, k_all, v_all, strict=True):
        if var.kernel == "standard":
            out.append(_standard(q, k, v, scale, var.fp8, tensor_scales))
        else:
            out.append(_flash(q, k, v, scale, var, tensor_scales))
    return out


def operand_error(q: np.ndarray, seed: int = 0) -> dict[str, float]:
    """e4m3 quantization of ``q`` (``(heads, seqlen, headdim)``, one per-tensor amax scale) with
    and without the random-sign Hadamard rotation: RMS error of the dequantized values and the
    share of elements that land on zero or a subnormal; for contrast the RMS error of int8 with
    the same per-tensor amax scale (``int8_*``)."""
    d = q.shape[-1]
    out: dict[str, float] = {}
    for name, x in (("raw", q), ("rotated", hadamard.rotate(q, d, hadamard.random_signs(d,
                                                                                        seed)))):
        s = float(_amax_scale(x))
        v = E4M3.decode(E4M3.encode(x / s, saturate=True))
        out[f"{name}_rmse"] = float(np.sqrt(np.mean((v * s - x) ** 2)))
        out[f"{name}_subnormal"] = float(np.mean(np.abs(v) < E4M3.min_normal))
        step = float(np.max(np.abs(x))) / 127
        out[f"int8_{name}_rmse"] = float(np.sqrt(np.mean((np.round(x / step) * step - x) ** 2)))
    return out


def rmse(outputs: list[np.ndarray], refs: list[np.ndarray]) -> float:
    """Root mean square error over every output element of every head."""
    err = np.concatenate([(np.asarray(o, np.float64) - r).ravel()
                          for o, r in zip(outputs, refs, strict=True)])
    return float(np.sqrt(np.mean(err ** 2)))


def run_synthetic(heads: int = 4, seqlen: int = 512, headdim: int = 128, seed: int = 0,
                  variants: tuple[Variant, ...] = VARIANTS, outlier_std: float = 10.0
                  ) -> dict[str, Any]:
    """The paper's experiment on ``outlier_inputs``: RMSE per variant against float64."""
    qkv = outlier_inputs(heads, seqlen, headdim, seed, outlier_std)
    scale = 1.0 / math.sqrt(headdim)
    refs = [reference(q, k, v, scale) for q, k, v in zip(*qkv, strict=True)]
    rms = float(np.sqrt(np.mean(np.concatenate([r.ravel() for r in refs]) ** 2)))
    rows = {var.name: rmse(attention(qkv, var, scale, seed), refs) for var in variants}
    return {"shape": {"heads": heads, "seqlen": seqlen, "headdim": headdim, "seed": seed,
                      "outlier_std": outlier_std},
            "output_rms": rms, "rmse": rows}


def minilm_heads(trace_dir: str | Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(layer, Q, K, V)`` of every head a MiniLM trace stores (real tokens only)."""
    from arithforge.workloads.trace import load_trace

    trace = load_trace(trace_dir)
    by_layer: dict[str, dict[str, Any]] = {}
    for g in trace.attn_gemms:
        by_layer.setdefault(g.layer, {})[g.role] = g
    heads = []
    for layer, roles in by_layer.items():
        qk, pv = roles["attn_qk"], roles["attn_pv"]
        pairs = trace.tensors[qk.tensors["slices"]], trace.tensors[pv.tensors["slices"]]
        if not np.array_equal(*pairs):
            raise ValueError(f"{layer}: QK^T and PV store different (sentence, head) slices")
        for i in range(qk.slices):
            q, k, _ = qk.operands(trace, i)
            _, vt, _ = pv.operands(trace, i)
            heads.append((layer, np.asarray(q, np.float64), np.asarray(k, np.float64),
                          np.asarray(vt, np.float64).T))
    trace.close()
    return heads


def run_minilm(trace_dir: str | Path, seed: int = 0,
               variants: tuple[Variant, ...] = VARIANTS) -> dict[str, Any]:
    """The same variants on MiniLM's traced Q, K, V (per-tensor scales over each layer's stored
    heads, block scales per head); RMSE over all layers against float64 on the fp32 operands."""
    heads = minilm_heads(trace_dir)
    layers = list(dict.fromkeys(h[0] for h in heads))
    d = heads[0][1].shape[1]
    scale = 1.0 / math.sqrt(d)
    outs: dict[str, list[np.ndarray]] = {v.name: [] for v in variants}
    refs = []
    for layer in layers:
        mine = [h for h in heads if h[0] == layer]
        qkv = [[h[1] for h in mine], [h[2] for h in mine], [h[3] for h in mine]]
        refs += [reference(q, k, v, scale) for q, k, v in zip(*qkv, strict=True)]
        for var in variants:
            outs[var.name] += attention(qkv, var, scale, seed)
    rms = float(np.sqrt(np.mean(np.concatenate([r.ravel() for r in refs]) ** 2)))
    lengths = [h[1].shape[0] for h in heads]
    return {"heads": len(heads), "layers": len(layers), "headdim": d,
            "tokens": [min(lengths), max(lengths)], "output_rms": rms,
            "rmse": {name: rmse(o, refs) for name, o in outs.items()}}


def table(synthetic: dict[str, Any], minilm: dict[str, Any] | None = None) -> str:
    """Markdown table of the RMSEs (paper, ours, ours relative to FA3's FP8 row)."""
    head = ["kernel", "paper RMSE", "ours: outliers RMSE", "ours / FA3 FP8"]
    if minilm:
        head += ["MiniLM RMSE", "MiniLM / FA3 FP8"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    base = synthetic["rmse"]["fa3-fp8"]
    for var in VARIANTS:
        if var.name not in synthetic["rmse"]:
            continue
        ours = synthetic["rmse"][var.name]
        paper = PAPER.get(var.name)
        row = [var.label, f"{paper:.1e}" if paper else "-", f"{ours:.2e}", f"{ours / base:.2f}"]
        if minilm:
            mb = minilm["rmse"]["fa3-fp8"]
            row += [f"{minilm['rmse'][var.name]:.2e}", f"{minilm['rmse'][var.name] / mb:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--headdim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outlier-std", type=float, default=10.0,
                        help="standard deviation of the outlier term (the paper's 10)")
    parser.add_argument("--minilm", type=Path, help="a MiniLM trace directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("heads", "seqlen", "headdim"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.headdim & (args.headdim - 1) or args.headdim < 2:
        parser.error("--headdim must be a power of two (the Hadamard matrix)")
    syn = run_synthetic(args.heads, args.seqlen, args.headdim, args.seed,
                        outlier_std=args.outlier_std)
    mini = run_minilm(args.minilm, args.seed) if args.minilm else None
    if args.json:
        print(json.dumps({"synthetic": syn, "minilm": mini}, indent=1))
    else:
        sys.stdout.write(table(syn, mini))
    return 0


if __name__ == "__main__":
    sys.exit(main())
