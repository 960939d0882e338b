"""The work of one sweep point, stage by stage, as plain functions a worker process runs.

Each task is ``(stage, config)``: a JSON-ready configuration, hashed with the code version of the
stage into the task's key (:func:`task_key`), and ``runtime`` arguments that do not change the
result (where the trace lives). :func:`run_task` returns a JSON-ready result or raises.

Stages
------
``accuracy``
    :func:`arithforge.workloads.evaluate.evaluate` of a design's numeric model on a workload.
``cost``
    The analytical estimate (:func:`arithforge.costmodel.estimate`) of the ``structure()`` of
    the design's unit (``Descriptor.build_unit``, no Amaranth), normalized per MAC for
    multi-MAC datapaths.
``synth``
    Yosys (:func:`arithforge.costmodel.synth.synth_datapath`), cached by the cost model too.
``verify``
    The Verilog (:func:`arithforge.tools.export.to_verilog`) and the Verilator batch harness on
    corner and random vectors against ``reference()`` (:func:`arithforge.sim.harness.verify`).
``accel``
    Latency and energy per inference of a workload's GEMMs on a systolic array of the design's
    PEs: :func:`arithforge.sim.accelerator.gemm_objectives` in its cycles-only mode (the
    schedule, no output codes; numpy, plus the PE's ``structure()`` for its cost).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..hdl.base import Datapath

__all__ = ["STAGES", "canonical", "code_version", "run_task", "task_key"]

STAGES = ("accuracy", "cost", "synth", "verify", "accel")

#: Packages whose source decides each stage's results (``datapaths``: the GEMM models, the
#: parameter schemas the generators check, the units' facts and structure graphs, the array
#: tiling).
_STAGE_PACKAGES = {
    "accuracy": ("formats", "datapaths", "workloads", "dse/tasks.py"),
    "cost": ("formats", "datapaths", "costmodel", "dse/tasks.py"),
    "synth": ("formats", "datapaths", "hdl", "costmodel", "tools", "dse/tasks.py"),
    "verify": ("formats", "datapaths", "hdl", "sim", "tools", "dse/tasks.py"),
    "accel": ("formats", "datapaths", "hdl", "costmodel", "tools", "sim/accelerator.py",
              "dse/tasks.py"),
}


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces; the hashed form of a configuration."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@cache
def code_version(stage: str) -> str:
    """Version of the code a stage runs: the package version and a hash of its sources."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(__version__.encode())
    for entry in _STAGE_PACKAGES[stage]:
        path = root / entry
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in files:
            if f.is_file() and f.suffix in (".py", ".toml", ".json", ".txt", ".tsv", ".v"):
                digest.update(str(f.relative_to(root)).encode())
                digest.update(f.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def task_key(stage: str, config: dict[str, Any]) -> str:
    """Content hash of a task: its stage, configuration and the stage's code version, with the
    code of the plug-in datapaths registered (their modules' files) when there are any."""
    from ..datapaths.registry import plugin_sources

    key: dict[str, Any] = {"stage": stage, "config": config, "code": code_version(stage)}
    plugins = plugin_sources()
    if plugins:
        key["plugins"] = [_file_digest(p) for p in plugins]
    return hashlib.sha256(canonical(key).encode()).hexdigest()


@cache
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_task(stage: str, config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    """Run one task; return its JSON-ready result (raises on failure). ``runtime["plugins"]``:
    modules of plug-in datapaths to load first (a worker process starts without them)."""
    if runtime.get("plugins"):
        from ..datapaths.registry import load_plugins

        load_plugins(runtime["plugins"])
    start = time.perf_counter()
    out = _RUNNERS[stage](config, runtime)
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def _accuracy(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    from ..workloads.evaluate import evaluate

    model = dict(config["model"])
    r = evaluate(runtime["trace"], model.pop("weights"), model.pop("acts"),
                 model.pop("datapath"), model.pop("acc"),
                 end_metric=bool(config["end_metric"]), max_rows=config["max_rows"],
                 max_cols=config["max_cols"], seed=int(config["seed"]), **model)
    summary = r["summary"]
    end = r["end_metric"]
    pooled = summary["sqnr_db_pooled"]
    if pooled is None and summary["nonfinite"] == 0:
        pooled = math.inf  # every output exact
    if end is not None:
        metric, name = end["value"], end["name"]
    else:
        metric, name = pooled, "sqnr_db"
    if metric is None:
        metric = -math.inf if name == "sqnr_db" else 0.0
    return {
        "metric": metric, "metric_name": name, "sqnr_db_pooled": pooled,
        "sqnr_db_mean": summary["sqnr_db_mean"], "nonfinite": summary["nonfinite"],
        "end_metric": end,
        "layers": [{"name": ly["name"], "M": ly["M"], "N": ly["N"], "K": ly["K"],
                    "sqnr_db": ly["sqnr_db"], "rel_err": ly["rel_err"]} for ly in r["layers"]],
        "notes": r["notes"],
        # Where the error comes from, per op type (the error-source plot): pooled SQNR of the
        # Linear and attention GEMMs, mean SQNR of each nonlinear op against its fp32 output.
        "by_kind": summary.get("by_kind", {}),
        "nonlinear_by_op": summary.get("nonlinear_by_op", {}),
    }


def _build(config: dict[str, Any]) -> Datapath:
    from ..hdl.registry import build

    return build(config["hdl"], **config["params"])


def _cost(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    from ..costmodel import estimate, load_tech
    from ..datapaths.registry import generator_descriptor

    # The unit's structure(): no Amaranth (a plug-in without a unit builds its generator).
    dp = generator_descriptor(config["hdl"]).build_unit(**config["params"])
    tech = load_tech(config["tech"], calibration=bool(config["calibrated"]),
                     node_nm=config["node"])
    est = estimate(dp.structure(), tech)
    ii = dp.initiation_interval
    macs = int(config["macs"])
    per = ii / macs  # cycles per MAC
    luts = est.ice40_luts
    return {
        "area_um2": est.area_um2 * per, "energy_pj": est.energy_pj / macs,
        "delay_ns": est.delay_ns, "transistors": est.transistors * per,
        "ice40_luts": None if luts is None else luts * per,
        "area_um2_total": est.area_um2, "energy_pj_op": est.energy_pj,
        "latency": int(dp.latency), "ii": ii, "macs": macs, "tech": est.tech,
    }


def _synth(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    from ..costmodel.synth import synth_datapath

    dp = _build(config)
    result: dict[str, Any] = synth_datapath(dp, config["target"]).as_dict()
    return result


def _verify(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    from ..sim import harness
    from ..tools import export

    dp = _build(config)
    module = export.module_name(config["name"])
    verilog = export.to_verilog(dp, module)
    runs = []
    if config["corner"]:
        runs.append(harness.verify(dp, "corner", int(config["corner_n"]), seed=int(config["seed"]),
                                   lanes=int(config["lanes"])))
    if config["random"]:
        runs.append(harness.verify(dp, "random", int(config["random"]),
                                   seed=int(config["seed"]), lanes=int(config["lanes"])))
    failures = [f for r in runs for f in r.as_dict()["first_failures"]]
    return {
        "module": module, "verilog": verilog,
        "vectors": sum(r.vectors for r in runs), "mismatches": sum(r.mismatches for r in runs),
        "kinds": {r.kind: r.vectors for r in runs}, "first_failures": failures[:10],
        "compile_s": round(sum(r.compile_s for r in runs), 3),
    }


def array_shapes(hdl: str, params: dict[str, Any], gemms: list[dict[str, int]]
                 ) -> list[dict[str, int]]:
    """A workload's GEMMs ``(M, N, K, batch)`` in the array's units, as the datapath ``hdl``
    (the generator's name, the datapath's) tiles them (``Descriptor.array_shape``): one PE
    operation of a dot-product PE is a whole transaction (bit-serial PE: ``group * groups``
    products along K; LUT core: an ``m x n x k`` tile), so its ``K`` (and ``M``, ``N``) count
    transactions (``docs/accelerator.md``); the other PEs take the GEMM as it is."""
    from ..datapaths import get

    d = get(hdl)
    out = []
    for g in gemms:
        m, n, k = d.array_shape(params, int(g["M"]), int(g["N"]), int(g["K"]))
        out.append({"M": m, "N": n, "K": k, "batch": int(g.get("batch", 1))})
    return out


def inferences(meta: dict[str, Any]) -> int:
    """Inferences one pass of a trace stands for: digits-cnn's test images, minilm's sentences,
    else 1 (synthetic: the whole set of GEMMs)."""
    inputs = meta.get("inputs") or {}
    if isinstance(inputs, dict) and inputs.get("test_samples"):
        return int(inputs["test_samples"])
    if isinstance(meta.get("sentences"), list) and meta["sentences"]:
        return len(meta["sentences"])
    return 1


def _trace_gemms(path: Path) -> tuple[list[dict[str, int]], int]:
    """A trace's GEMMs ``(M, N, K, batch)`` and the inferences one pass stands for."""
    from ..workloads.trace import load_trace

    tr = load_trace(path)
    try:
        gemms = [{"M": d["M"], "N": d["N"], "K": d["K"], "batch": d.get("batch", 1)}
                 for _, d in tr.graph.nodes(data=True) if d.get("kind") == "gemm"]
        per = inferences(dict(tr.meta))
    finally:
        tr.close()
    return gemms, per


def workload_gemms(path: Path) -> list[dict[str, int]]:
    """A trace's GEMMs ``(M, N, K, batch)``, each with ``inferences`` (:func:`inferences`)."""
    gemms, per = _trace_gemms(Path(path))
    return [dict(g, inferences=per) for g in gemms]


def _accel(config: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    from ..sim.accelerator import PESpec, gemm_objectives

    gemms, per = _trace_gemms(Path(runtime["trace"]))
    params = config["params"]
    pe = PESpec(config["hdl"], tuple((k, str(v)) for k, v in sorted(params.items())))
    r = gemm_objectives(array_shapes(config["hdl"], params, gemms), pe=pe,
                        array=config["array"], dataflow=config["dataflow"], fmax="analytical")
    return {
        "latency_s": r["latency_s"] / per, "energy_uj": r["energy_pj"] * 1e-6 / per,
        "inferences": per, "cycles": r["cycles"], "utilization": r["utilization"],
        "fmax_mhz": r["fmax_mhz"], "pe_energy_pj": r["pe_energy_pj"],
        "sram_energy_pj": r["sram_energy_pj"], "dram_energy_pj": r["dram_energy_pj"],
        "pe": r["config"]["pe"],
    }


_RUNNERS = {"accuracy": _accuracy, "cost": _cost, "synth": _synth, "verify": _verify,
            "accel": _accel}
