"""The sweep: plan the points, run what the store lacks, analyse, verify the winners, report.

:func:`explore` is what ``arithforge explore`` runs. Every task is looked up in the results store
by its key first (:func:`.tasks.task_key`): a re-run computes nothing that finished, and an
interrupted run resumes with what is missing. A task that failed is not a result: the next run
tries it again (:class:`.store.Store`).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from .designs import Design, plan
from .executors import LocalExecutor, RayExecutor, process_start
from .outcome import Outcome
from .pareto import knee, non_dominated
from .run import (
    Progress,
    Tally,
    accel_config,
    accuracy_config,
    cost_config,
    hdl_config,
    run_tasks,
    verify_config,
)
from .spec import BLOCK_OBJECTIVES, Spec
from .store import Store
from .tasks import task_key

__all__ = ["STATUS_EVERY_S", "explore"]

#: Objective columns and their senses.
SENSES = {"accuracy": "max", "area_um2": "min", "energy_pj": "min", "delay_ns": "min",
          "ice40_luts": "min", "transistors": "min", "latency_s": "min", "energy_uj": "min",
          "memory": "min", "block_area_um2": "min", "block_energy_uj": "min",
          "model_energy_uj": "min"}

#: Seconds between two status lines of a stage where no progress bar is drawn (stderr is not a
#: terminal: a CI log, ``2>log``); what ``arithforge explore`` passes as ``status_every``.
STATUS_EVERY_S = 5.0


def _trace_dir(out_dir: Path, spec: Spec, workload: str) -> Path:
    return out_dir / "traces" / f"{workload}-seed{spec.workloads.seed}"


def prepare_traces(spec: Spec, out_dir: Path) -> dict[str, Path]:
    """Build each workload's trace under ``out_dir/traces/`` unless it is there already."""
    from ..workloads import build

    paths = {}
    for name in spec.workloads.names:
        path = _trace_dir(out_dir, spec, name)
        if not (path / "meta.json").is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=path.parent))
            try:
                build(name, tmp, seed=spec.workloads.seed).close()
                if path.exists():
                    shutil.rmtree(path)
                tmp.rename(path)  # atomic: a killed build leaves no half trace behind
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        paths[name] = path
    return paths


def _get(store: Store, stage: str, config: dict[str, Any]) -> dict[str, Any] | None:
    return store.get(task_key(stage, config))


def explore(spec: Spec, out_dir: str | Path, *,
            executor: LocalExecutor | RayExecutor | None = None,
            progress: Progress | None = None, log: Callable[[str], None] | None = None,
            status_every: float | None = None) -> Outcome:
    """Run the sweep of ``spec`` into ``out_dir``; return the :class:`Outcome`.

    Writes ``results.sqlite``, ``rtl/`` (the Verilog of the verified designs), the plots and
    ``report.md`` / ``report.html``. ``progress`` is called as each task finishes; ``log`` gets
    one-line messages, and with ``status_every`` (seconds; :data:`STATUS_EVERY_S` where no
    progress bar is drawn) a status line of the running stage that often.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    designs, skipped = plan(spec)
    if not designs:
        raise ArithforgeError(f"{spec.source}: the spec leaves no design to explore "
                              f"({len(skipped)} combinations skipped)")
    traces = (prepare_traces(spec, out)
              if spec.stages.accuracy or spec.stages.accel or _wants_memory(spec) else {})
    seconds["plan"] = time.perf_counter() - t0
    say(f"{len(designs)} designs x {len(spec.workloads.names)} workloads, "
        f"{len(skipped)} combinations skipped")

    with Store(out / "results.sqlite") as store, Tally(progress, say, status_every) as tally:
        run_id = _start_run(store, spec, executor.name, say)

        def phase(name: str, tasks: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
            t = time.perf_counter()
            run_tasks(store, executor, tasks, tally, name)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t

        try:
            search = None
            if spec.search.method == "nsga2":
                from .search import nsga2_designs

                refs = [d for d in designs if d.reference]
                designs, search = nsga2_designs(spec, [d for d in designs if not d.reference],
                                                traces, store, executor, tally)
                designs = designs + refs
            tasks: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            with_hw = [d for d in designs if d.hdl is not None]
            if spec.stages.cost:
                tasks += [("cost", cost_config(spec, d), {}) for d in with_hw]
            if spec.stages.synth != "none":
                tasks += [("synth", {**hdl_config(d), "target": spec.stages.synth}, {})
                          for d in with_hw]
            if spec.stages.accuracy:
                tasks += [("accuracy", accuracy_config(spec, d, w), {"trace": str(traces[w])})
                          for w in spec.workloads.names for d in designs
                          if spec.workloads.runs(w, d.kind, d.weights)]
            if spec.stages.accel:
                tasks += [("accel", accel_config(spec, d, w), {"trace": str(traces[w])})
                          for w in spec.workloads.names for d in with_hw
                          if spec.workloads.runs(w, d.kind, d.weights)]
            phase("evaluate", tasks)

            points = _points(spec, store, designs, _memory_gemms(spec, traces))
            if spec.stages.block:
                _add_block(spec, points, traces)
            fronts, knees = _fronts(spec, points)
            chosen = _to_verify(spec, points, fronts)
            verified: list[dict[str, Any]] = []
            if chosen:
                phase("verify", [("verify", verify_config(spec, d), {}) for d in chosen])
                verified = _write_rtl(spec, store, out, chosen)
            mixed = None
            if spec.mixed.enabled and spec.stages.accuracy and spec.stages.cost:
                from .mixed import mixed_search

                t = time.perf_counter()
                mixed = mixed_search(spec, store, designs, traces, executor, tally)
                seconds["mixed"] = time.perf_counter() - t
        except BaseException:
            # Ctrl-C, or an error: said now, not left for the next run to find out.
            store.end_run(run_id, "interrupted", computed=tally.computed, cached=tally.cached,
                          failed=tally.failed)
            raise
        store.end_run(run_id, "finished", computed=tally.computed, cached=tally.cached,
                      failed=tally.failed)

    outcome = Outcome(spec, out, points, skipped, fronts, knees, verified, mixed, search,
                      tally.computed, tally.cached, tally.failed, seconds,
                      executor=executor.name)
    t = time.perf_counter()
    from . import plots, report

    outcome.files.update(plots.write_plots(outcome))
    outcome.files.update(report.write_reports(outcome))
    seconds["report"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return outcome


def _start_run(store: Store, spec: Spec, executor: str, say: Callable[[str], None]) -> int:
    """Record the start of this run; say so if it resumes after interrupted runs."""
    host = socket.gethostname()
    # A run recorded as running whose process is gone was killed before it could say so. One
    # on another host may be running still: it stays as it is.
    store.mark_interrupted(r["id"] for r in store.running()
                           if r["host"] == host and process_start(r["pid"]) != r["pid_start"])
    runs, stored = store.interrupted_tail()
    if runs:
        which = f"run {runs[0]}" if len(runs) == 1 else f"runs {', '.join(map(str, runs))}"
        say(f"resuming after interrupted {which}: {stored} tasks already stored")
    return store.start_run(spec.text, executor, host=host, pid=os.getpid(),
                           pid_start=process_start(os.getpid()))


def _wants_memory(spec: Spec) -> bool:
    return "memory" in spec.pareto.objectives


def _memory_gemms(spec: Spec, traces: dict[str, Path]) -> dict[str, list[dict[str, int]]]:
    """Each workload's GEMM shapes, read from its trace when ``memory`` is an objective."""
    if not _wants_memory(spec):
        return {}
    from .tasks import workload_gemms

    return {w: workload_gemms(traces[w]) for w in spec.workloads.names}


def _memory(d: Design, gemms: list[dict[str, int]] | None) -> tuple[float, float]:
    """``(bits per MAC, MB per inference)`` of weight and activation traffic of ``d`` on a
    workload (``costmodel.memory.gemm_traffic``); NaN without GEMMs or for a weight family that
    is not one format."""
    from ..costmodel.memory import gemm_traffic
    from ..formats import FormatError

    if not gemms:
        return math.nan, math.nan
    try:
        t = gemm_traffic(gemms, d.weights, d.acts)
    except FormatError:
        return math.nan, math.nan
    per = max(int(gemms[0].get("inferences", 1)), 1)
    return t["bits_per_mac"], t["total_bits"] / 8e6 / per


def _points(spec: Spec, store: Store, designs: Sequence[Design],
            memory_gemms: dict[str, list[dict[str, int]]] | None = None
            ) -> list[dict[str, Any]]:
    points = []
    for d in designs:
        base: dict[str, Any] = {
            "design": d, "label": d.label, "kind": d.kind, "datapath": d.datapath,
            "weights": d.weights,
            "acts": d.acts, "acc": d.acc, "params": d.params, "ident": d.ident,
            "reference": d.reference,
        }
        cost: dict[str, Any] | None = None
        errors = []
        if spec.stages.cost and d.hdl is not None:
            row = _get(store, "cost", cost_config(spec, d))
            if row is None or row["status"] != "ok":
                errors.append(f"cost: {row['error'] if row else 'not run'}")
            else:
                cost = row["result"]
        synth = None
        if spec.stages.synth != "none" and d.hdl is not None:
            row = _get(store, "synth", {**hdl_config(d), "target": spec.stages.synth})
            if row is not None and row["status"] == "ok":
                synth = row["result"]
            elif row is not None:
                errors.append(f"synth: {row['error']}")
        for w in spec.workloads.names:
            if not spec.workloads.runs(w, d.kind, d.weights):
                continue
            p = dict(base, workload=w, cost=cost, synth=synth, accuracy=None)
            p["memory"], p["memory_mb"] = _memory(d, (memory_gemms or {}).get(w))
            for key in ("area_um2", "energy_pj", "delay_ns", "ice40_luts", "transistors"):
                value = None if cost is None else cost.get(key)
                p[key] = math.nan if value is None else float(value)
            errs = list(errors)
            p["accel"] = None
            p["latency_s"] = p["energy_uj"] = math.nan
            if spec.stages.accel and d.hdl is not None:
                row = _get(store, "accel", accel_config(spec, d, w))
                if row is None or row["status"] != "ok":
                    errs.append(f"accel: {row['error'] if row else 'not run'}")
                else:
                    p["accel"] = row["result"]
                    p["latency_s"] = float(row["result"]["latency_s"])
                    p["energy_uj"] = float(row["result"]["energy_uj"])
            if spec.stages.accuracy:
                row = _get(store, "accuracy", accuracy_config(spec, d, w))
                if row is None or row["status"] != "ok":
                    errs.append(f"accuracy: {row['error'] if row else 'not run'}")
                    p["metric"] = math.nan
                else:
                    p["accuracy"] = row["result"]
                    p["metric"] = float(row["result"]["metric"])
                    p["metric_name"] = row["result"]["metric_name"]
            else:
                p["metric"] = math.nan
            p["errors"] = errs
            p["status"] = "ok" if not errs else "failed"
            points.append(p)
    return points


def _add_block(spec: Spec, points: list[dict[str, Any]], traces: dict[str, Path]) -> None:
    """Each point's transformer-block area and energy per inference (:func:`.block.block_cost`)
    from its cost-stage result, its nonlinear implementation and its transform; NaN for a point
    without cost (a reference, a failed cost task)."""
    from .block import block_cost, block_ops

    tech = (spec.cost.tech, spec.cost.calibrated, spec.cost.node)
    for p in points:
        p["block"] = None
        p["block_area_um2"] = p["block_energy_uj"] = p["model_energy_uj"] = math.nan
        if p["cost"] is None:
            continue
        b = block_cost(p["cost"], block_ops(str(traces[p["workload"]])),
                       str(p["params"].get("nonlinear", "float")),
                       str(p["params"].get("transform", "none")), array=spec.accel.array,
                       fwht_format=spec.block.fwht_format, tech=tech)
        p["block"] = b
        p["block_area_um2"], p["block_energy_uj"] = b["area_um2"], b["energy_uj"]
        p["model_energy_uj"] = b["model_energy_uj"]


def _fronts(spec: Spec, points: list[dict[str, Any]]
            ) -> tuple[dict[tuple[str, str], list[int]], dict[tuple[str, str], int | None]]:
    fronts: dict[tuple[str, str], list[int]] = {}
    knees: dict[tuple[str, str], int | None] = {}
    objectives = [o for o in spec.pareto.objectives if o != "accuracy"]
    for w in spec.workloads.names:
        # Accuracy-only references (tensor cores) have no cost: never on a hardware front.
        idx = [i for i, p in enumerate(points) if p["workload"] == w and p["status"] == "ok"
               and not p["reference"]]
        if not idx:
            continue
        # The block stage's 2-D fronts are drawn whether or not [pareto] objectives holds them.
        block = [o for o in BLOCK_OBJECTIVES if o not in objectives] if spec.stages.block else []
        for cols, name in [(["metric", o], o) for o in [*objectives, *block]] + \
                          [(["metric", *objectives], "nd")]:
            senses = ["max"] + [SENSES[c] for c in cols[1:]]
            matrix = [[_finite(points[i][c]) for c in cols] for i in idx]
            front = non_dominated(matrix, senses)
            fronts[(w, name)] = [idx[j] for j in front]
            k = knee(matrix, senses)
            knees[(w, name)] = None if k is None else idx[k]
    return fronts, knees


def _finite(v: Any) -> float:
    x = float(v) if v is not None else math.nan
    if math.isinf(x):
        return math.copysign(1e300, x)
    return x


def _to_verify(spec: Spec, points: list[dict[str, Any]],
               fronts: dict[tuple[str, str], list[int]]) -> list[Design]:
    mode = spec.stages.verify
    if mode == "none":
        return []
    if mode == "all":
        idx = [i for i, p in enumerate(points) if p["design"].hdl is not None]
    else:
        idx = sorted({i for (w, o), f in fronts.items() if o in ("area_um2", "energy_pj")
                      for i in f})
    seen: dict[str, Design] = {}
    for i in idx:
        d = points[i]["design"]
        if d.hdl is not None and points[i]["cost"] is not None:
            seen.setdefault(d.ident, d)
    return list(seen.values())


def _write_rtl(spec: Spec, store: Store, out: Path, designs: Sequence[Design]
               ) -> list[dict[str, Any]]:
    rtl = out / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    rtl.mkdir(parents=True)
    rows = []
    for d in designs:
        row = _get(store, "verify", verify_config(spec, d))
        entry: dict[str, Any] = {"design": d, "label": d.label, "ident": d.ident}
        if row is None or row["status"] != "ok":
            entry.update(status="error", error=row["error"] if row else "not run", file=None,
                         vectors=0, mismatches=None)
        else:
            r = row["result"]
            path = rtl / f"{d.ident}.v"
            path.write_text(r["verilog"])
            entry.update(status="ok" if r["mismatches"] == 0 else "mismatch",
                         file=str(path.relative_to(out)), module=r["module"],
                         vectors=r["vectors"], mismatches=r["mismatches"], kinds=r["kinds"],
                         first_failures=r["first_failures"])
        rows.append(entry)
    return rows
