# Ref: OCP Microscaling Formats (MX) Specification v1.0 §5 (one 8-bit E8M0 scale per 32
#      elements); NVIDIA, "Introducing NVFP4 for Efficient and Accurate Low-Precision Inference"
#      (one UE4M3 scale per 16 E2M1 elements, one float32 per tensor).
"""Memory traffic of a workload's GEMMs in a number format: the bandwidth term of the cost model.

A GEMM ``(M, N, K)`` (``batch`` times) reads its weights ``K x N`` and its activations ``M x K``
once each from memory, in the storage of their formats: :func:`bits_per_element` counts the
element and a block format's block scale spread over its block (NVFP4 4.5, MXFP4 4.25, MXFP8
8.25, float16 16). Outputs are not counted: a layer's output is the next layer's activations
and would be counted twice. Reuse inside the array and its SRAMs is the accelerator model's
(``arithforge.sim.accelerator``); this is the traffic a workload needs at the least, every
operand fetched once, the figure that shrinks with the format and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..formats import BlockFormat, Format, get_format

__all__ = ["bits_per_element", "gemm_traffic"]


def bits_per_element(fmt: Format | str) -> float:
    """Bits of storage per value of ``fmt``: its code width, plus the block scale over the block
    for a block format (``BlockFormat.bits_per_element``; a two-level format's one per-tensor
    scale is amortized to 0)."""
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    if isinstance(f, BlockFormat):
        return float(f.bits_per_element)
    return float(f.bits)


def gemm_traffic(gemms: Iterable[Mapping[str, Any]], weights: Format | str,
                 acts: Format | str) -> dict[str, float]:
    """Weight and activation bits the GEMMs read, each operand once.

    Parameters
    ----------
    gemms : iterable of mappings
        ``M``, ``N``, ``K`` and optionally ``batch`` (default 1) per GEMM: activations ``M x K``,
        weights ``K x N``.
    weights, acts : Format or str
        Storage formats of the weights and the activations.

    Returns
    -------
    dict
        ``weight_bits``, ``act_bits``, ``total_bits`` (their sum), ``macs`` (``M*N*K*batch``
        summed) and ``bits_per_mac`` (``total_bits / macs``; NaN without MACs).
    """
    bw, ba = bits_per_element(weights), bits_per_element(acts)
    w_bits = a_bits = 0.0
    macs = 0
    for g in gemms:
        m, n, k, b = int(g["M"]), int(g["N"]), int(g["K"]), int(g.get("batch", 1))
        w_bits += k * n * b * bw
        a_bits += m * k * b * ba
        macs += m * n * k * b
    total = w_bits + a_bits
    return {"weight_bits": w_bits, "act_bits": a_bits, "total_bits": total, "macs": float(macs),
            "bits_per_mac": total / macs if macs else float("nan")}
