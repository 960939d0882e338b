# Ref: Chen et al., arXiv 2411.11745 (BitMoD) §III group-wise datatypes; Mo et al.,
#      arXiv 2408.06003 (LUT Tensor Core) §3 table precompute
"""Accuracy models of the bit-serial PE and the LUT tensor core for whole traces.

They plug into :mod:`arithforge.workloads.datapaths` through its extension point,
:func:`~arithforge.workloads.datapaths.register_datapath`, as ``dse_bitserial`` and ``dse_lut``.
Both are cheaper than the bit-exact transaction emulators (:func:`formats.bitmod.pe_dot`,
:func:`formats.lut.lut_tile`), which would take minutes per trace, and keep the error source that
dominates:

``dse_bitserial``
    Weights quantized group-wise to the best datatype of a BitMoD family by MSE
    (:func:`formats.bitmod.quantize_groups`, float16 scales), activations in their format, the
    products summed exactly and rounded once to the accumulator. The PE's per-group partial-sum
    rounding (``align_bits`` fraction bits below the group's largest activation) is left out.
``dse_lut``
    Signed integer weights split into bit planes; for each plane and each group of ``K``
    activations the table entry (the sum of the activations the plane selects) is rounded once
    to the entry format, as the table precompute stores it; entries are then summed exactly with
    the plane weights (the top plane negated) and rounded once to the accumulator. The precompute
    tree's intermediate roundings are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["register"]

F64 = npt.NDArray[np.float64]


def _round_to(fmt: Any, values: F64) -> F64:
    return np.asarray(fmt.decode(fmt.encode(values, saturate=True)), dtype=np.float64)


def _bitserial(qx: Any, qw: Any, config: Any) -> tuple[F64, str]:
    from ..formats import bitmod

    opts = config.options
    w = np.asarray(qw.values, dtype=np.float64)
    codes, sel, scales = bitmod.quantize_groups(w, opts["family"], int(opts["group"]))
    wq = bitmod.dequantize_groups(codes, sel, scales, opts["family"], int(opts["group"]))
    y = np.asarray(qx.values, dtype=np.float64) @ wq.T
    return _round_to(config.acc, y), "bitmod groups, exact sum"


def _lut(qx: Any, qw: Any, config: Any) -> tuple[F64, str]:
    opts = config.options
    k, bits = int(opts["group"]), int(opts["weight_bits"])
    x = np.asarray(qx.values, dtype=np.float64)
    w = np.rint(np.asarray(qw.values, dtype=np.float64)).astype(np.int64)
    m, kk = x.shape
    pad = (-kk) % k
    if pad:
        x = np.pad(x, ((0, 0), (0, pad)))
        w = np.pad(w, ((0, 0), (0, pad)))
    groups = x.shape[1] // k
    xg = x.reshape(m, groups, k)
    codes = w & ((1 << bits) - 1)
    total = np.zeros((m, w.shape[0]), dtype=np.float64)
    for p in range(bits):
        plane = ((codes >> p) & 1).astype(np.float64).reshape(w.shape[0], groups, k)
        weight = -(1 << p) if p == bits - 1 else (1 << p)
        # Entries of every (row, column, group): chunks of columns bound the memory.
        for lo in range(0, w.shape[0], 64):
            entries = np.einsum("mgk,ngk->mng", xg, plane[lo:lo + 64])
            total[:, lo:lo + 64] += weight * _round_to(qx.fmt, entries).sum(axis=2)
    return _round_to(config.acc, total), f"lut planes={bits} K={k}"


def register() -> None:
    """Register ``dse_bitserial`` and ``dse_lut`` with the workloads' datapath registry."""
    from ..workloads import datapaths as wd

    if "dse_bitserial" not in wd.DATAPATHS:
        wd.register_datapath(wd.Datapath(
            "dse_bitserial", _bitserial, "BitMoD group-wise weights, exact sum (dse model)",
            {"family": "bitmod4", "group": 16}, fast=False))
    if "dse_lut" not in wd.DATAPATHS:
        wd.register_datapath(wd.Datapath(
            "dse_lut", _lut, "LUT tensor core: bit planes, entries rounded (dse model)",
            {"group": 4, "weight_bits": 4}, fast=False))
