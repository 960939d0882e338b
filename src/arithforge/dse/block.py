# Ref: I-BERT (arXiv 2101.01321) §3 (integer-only softmax, GELU and LayerNorm units in place of
#      float ones); QuaRot (arXiv 2404.00456) §4 (weights rotated offline, the activations by an
#      online Hadamard transform in FP16).
"""Cost of one transformer block of a traced model: GEMM PEs + nonlinear units + transform units.

:func:`block_cost` is the one model, the same for every design (nothing here names a datapath;
the units are found in the registry by the facts their descriptors declare):

Area (um^2)
    ``R * C`` PEs of the design (the ``[accel] array``; the cost stage's ``area_um2_total``, one
    PE) + one unit for each nonlinear op type the block runs (softmax, GELU, LayerNorm: the
    descriptor whose ``block_op`` it is) in the design's ``--nonlinear`` implementation + one
    FWHT unit when the design's ``--transform`` rotates activations online (the descriptor whose
    ``block_transforms`` holds the transform's kind, ``n`` = the transform's block, lanes in the
    transform's ``@LANES``, else ``[block] fwht_format``; ``explore`` writes the latter into
    every rotation of the spec, so the accuracy it scores emulates this very unit: see
    :mod:`arithforge.workloads.transform`). Weight transforms are offline and cost nothing; a
    transform kind no descriptor claims (a scale folded into the weights) costs nothing either.
Energy per inference of the block (uJ)
    the block's MACs x the PE's energy per MAC + each nonlinear op's elements x its unit's
    energy per element + the rotated activation elements x the FWHT unit's energy per element.
    Op counts are those of the trace (every GEMM of the block, the attention GEMMs' ``batch``
    of heads included, and the output elements of each nonlinear op) divided by the inferences
    one pass of the trace stands for. Compute only: SRAM and DRAM traffic are the accelerator
    stage's (``energy_uj``), not counted here.

Nonlinear units
    An integer implementation (``ibert``, ``ivit``) is the descriptor's unit at its
    ``block_impls`` parameters (the others at their defaults: ``n = 4`` elements a cycle for
    softmax and LayerNorm, one code for GELU), costed by the analytical model; its energy per
    element is its energy per operation over the elements of one operation. A float
    implementation (``float``: float32; a float format ``F``: the unit reads, computes and
    writes ``F``) is charged as ``block_float = (datapath, ops)``: ``ops`` FMA-equivalent
    operations per element on that datapath in the format (descriptor docstrings say how each
    count is made), as many FMAs as keep pace with the integer unit (``ops x`` its elements a
    cycle), so both have the same throughput. This is a model of a float unit, not a generated
    one: no float softmax/GELU/LayerNorm generator exists.

The block is the first one of the trace: the layers under the first path prefix that ends in a
number (``encoder.layer.0``); a trace without numbered layers (synthetic) is one block.
Energy per inference of the whole model (``model_energy_uj``)
    the same sum over every GEMM and nonlinear op of the trace (all blocks, and the ops outside
    them), with the same PE and units; area is the first block's (one block's hardware runs
    every block in turn).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["block_cost", "block_ops", "nonlinear_units", "transform_unit"]


def _block_of(layer: str) -> str | None:
    """``encoder.layer.0`` of ``encoder.layer.0.attention.self``; None without a number."""
    parts = layer.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return None


def _counts(nodes: list[dict[str, Any]], per: int) -> dict[str, Any]:
    """``macs``, ``macs_by_op``, ``elements`` and ``rotated`` of trace nodes, per inference."""
    macs: dict[str, float] = {}
    elements: dict[str, float] = {}
    rotated = 0.0
    for d in nodes:
        if d.get("kind") == "gemm":
            m, n, k, b = (int(d["M"]), int(d["N"]), int(d["K"]), int(d.get("batch", 1)))
            kind = str(d.get("role") or d.get("op") or "gemm")
            macs[kind] = macs.get(kind, 0.0) + m * n * k * b
            rotated += b * (m * k + (n * k if d.get("role") else 0))
        else:
            shape = [int(s) for s in d.get("out_shape", [])]
            count = int(d["M"]) * shape[-1] if "M" in d and shape else math.prod(shape)
            elements[str(d["op"])] = elements.get(str(d["op"]), 0.0) + count
    return {"macs": sum(macs.values()) / per, "macs_by_op": {k: v / per for k, v in macs.items()},
            "elements": {k: v / per for k, v in elements.items()}, "rotated": rotated / per}


@cache
def block_ops(trace: str) -> dict[str, Any]:
    """Op counts per inference of the first block of the trace in directory ``trace``:
    ``macs`` (GEMM MACs), ``macs_by_op`` (``linear``, ``attn_qk``...), ``elements`` (outputs of
    each nonlinear op type), ``rotated`` (activation elements entering the GEMMs: a Linear's
    ``M x K``, both operands of an attention GEMM), ``block`` and ``inferences``; ``model``:
    the same counts over every GEMM and nonlinear op of the trace, and ``blocks``, the number
    of numbered blocks."""
    from ..workloads.trace import load_trace
    from .tasks import inferences

    tr = load_trace(Path(trace))
    try:
        nodes = [d for _, d in tr.graph.nodes(data=True)]
        per = max(inferences(dict(tr.meta)), 1)
    finally:
        tr.close()
    ops = {"softmax", "gelu", "layer_norm"}
    wanted = [d for d in nodes if d.get("kind") == "gemm"
              or (d.get("kind") == "op" and d.get("op") in ops)]
    blocks = [b for b in (_block_of(str(d.get("layer", ""))) for d in wanted) if b is not None]
    name = blocks[0] if blocks else None
    first = wanted if name is None else \
        [d for d in wanted if _block_of(str(d.get("layer", ""))) == name]
    return {"block": name or "(whole trace)", "inferences": per, **_counts(first, per),
            "model": {**_counts(wanted, per), "blocks": max(len(set(blocks)), 1)}}


@cache
def _unit(datapath: str, params: tuple[tuple[str, Any], ...], tech: tuple[Any, ...]
          ) -> tuple[float, float, int]:
    """``(area um^2, energy pJ per operation, elements per operation)`` of a unit."""
    from ..costmodel import estimate, load_tech
    from ..datapaths.registry import generator_descriptor

    unit = generator_descriptor(datapath).build_unit(**dict(params))
    est = estimate(unit.structure(), load_tech(tech[0], calibration=tech[1], node_nm=tech[2]))
    # Elements of one operation: the FWHT's block, else one per operand (a row of n codes).
    lanes = int(getattr(unit, "n", None) or len(unit.operands))
    return float(est.area_um2), float(est.energy_pj), lanes


def _float_format(nonlinear: str) -> str | None:
    """The format a float implementation computes in (``float``: float32), else None."""
    from ..workloads.nonlinear import FloatReference, get_nonlinear

    impl = get_nonlinear(nonlinear)
    if isinstance(impl, FloatReference):
        return "float32"
    fmt = getattr(impl, "fmt", None)
    return None if fmt is None else str(fmt.name)


def nonlinear_units(nonlinear: str, tech: tuple[Any, ...] = (None, True, None)
                    ) -> dict[str, dict[str, Any]]:
    """Per traced op type (``softmax``, ``gelu``, ``layer_norm``): the unit charged for
    implementation ``nonlinear`` (module docstring): ``area_um2``, ``energy_pj`` per element,
    ``unit`` (what it is). An implementation no descriptor declares and that is not a float
    one gets NaN costs (``unit`` says why)."""
    from ..datapaths import DATAPATHS

    out: dict[str, dict[str, Any]] = {}
    for d in DATAPATHS.values():
        op = getattr(d, "block_op", None)
        if op is None:
            continue
        impls: dict[str, dict[str, Any]] = getattr(d, "block_impls", {})
        _, _, lanes = _unit(d.name, (), tech)
        if nonlinear in impls:
            params = tuple(sorted(impls[nonlinear].items()))
            area, energy, lanes = _unit(d.name, params, tech)
            desc = f"{d.name}" + "".join(f" {k}={v}" for k, v in params) + f" ({lanes}/cycle)"
            out[op] = {"area_um2": area, "energy_pj": energy / lanes, "unit": desc}
            continue
        fmt = _float_format(nonlinear)
        if fmt is None:
            out[op] = {"area_um2": math.nan, "energy_pj": math.nan,
                       "unit": f"no unit for {nonlinear!r}"}
            continue
        fdp, ops = d.block_float  # type: ignore[attr-defined]
        area, energy, _ = _unit(fdp, (("a", fmt),), tech)
        out[op] = {"area_um2": ops * lanes * area, "energy_pj": ops * energy,
                   "unit": f"{ops * lanes} x {fdp} a={fmt} ({ops} per element, {lanes}/cycle)"}
    return out


def transform_unit(transform: str, fwht_format: str = "float16",
                   tech: tuple[Any, ...] = (None, True, None)) -> dict[str, Any] | None:
    """The online unit of ``transform`` (a ``--transform`` spec): ``area_um2``, ``energy_pj``
    per activation element, ``unit``; None when it needs none (``none``, offline or folded
    transforms). Its lanes are the transform's ``@LANES``, else ``fwht_format``."""
    from ..datapaths import DATAPATHS
    from ..formats import IntFormat, get_format
    from ..workloads.transform import parse_transform

    t = parse_transform(transform)
    for d in DATAPATHS.values():
        if t.kind in getattr(d, "block_transforms", ()):
            fwht_format = t.lanes or fwht_format
            fmt = get_format(fwht_format)
            lane: tuple[tuple[str, Any], ...] = (("bits", fmt.bits),) \
                if isinstance(fmt, IntFormat) else (("fmt", fwht_format),)
            block = int(t.block)
            area, energy, lanes = _unit(d.name, (("n", block), *lane), tech)
            return {"area_um2": area, "energy_pj": energy / lanes,
                    "unit": f"{d.name} n={block} {fwht_format} ({lanes}/cycle)"}
    return None


def block_cost(pe: dict[str, Any], ops: dict[str, Any], nonlinear: str = "float",
               transform: str = "none", *, array: str = "16x16",
               fwht_format: str = "float16", tech: tuple[Any, ...] = (None, True, None)
               ) -> dict[str, Any]:
    """Area and energy per inference of one transformer block (module docstring).

    Parameters
    ----------
    pe : dict
        The design's cost-stage result (``area_um2_total``: one PE; ``energy_pj`` per MAC).
    ops : dict
        :func:`block_ops` of the workload's trace.
    nonlinear, transform : str
        The design's ``--nonlinear`` implementation and ``--transform``.
    array : str
        ``RxC`` PEs.
    fwht_format : str
        Lane format of the FWHT unit.
    tech : tuple
        ``(tech path, calibrated, node nm)`` of the cost model.

    Returns
    -------
    dict
        ``area_um2``, ``energy_uj`` (per inference), and ``parts``: per part (``gemm``, each
        nonlinear op type, ``transform``) its ``area_um2``, ``energy_uj`` and ``unit``;
        ``model_energy_uj``: the whole model's energy per inference (``ops["model"]``; the
        first block's when ``ops`` has no ``model``), ``model_parts`` its energy per part.
    """
    r, c = (int(v) for v in array.split("x"))
    units = nonlinear_units(nonlinear, tech)
    tu = transform_unit(transform, fwht_format, tech)

    def energy(counts: dict[str, Any]) -> dict[str, float]:
        """Energy per inference (uJ) per part of the op counts ``counts``."""
        out = {"gemm": counts["macs"] * float(pe["energy_pj"]) * 1e-6}
        for op, count in counts["elements"].items():
            if count > 0 and op in units:
                out[op] = count * units[op]["energy_pj"] * 1e-6
        if tu is not None:
            out["transform"] = counts["rotated"] * tu["energy_pj"] * 1e-6
        return out

    first = energy(ops)
    parts: dict[str, dict[str, Any]] = {
        "gemm": {"area_um2": r * c * float(pe["area_um2_total"]), "energy_uj": first["gemm"],
                 "unit": f"{r}x{c} PEs, {ops['macs']:.4g} MACs/inference"}}
    for op in ops["elements"]:
        if op in first:
            parts[op] = {"area_um2": units[op]["area_um2"], "energy_uj": first[op],
                         "unit": units[op]["unit"]}
    if tu is not None:
        parts["transform"] = {"area_um2": tu["area_um2"], "energy_uj": first["transform"],
                              "unit": tu["unit"]}
    model = energy(ops.get("model", ops))
    return {"area_um2": sum(p["area_um2"] for p in parts.values()),
            "energy_uj": sum(p["energy_uj"] for p in parts.values()), "parts": parts,
            "block": ops["block"], "model_energy_uj": sum(model.values()),
            "model_parts": model}
