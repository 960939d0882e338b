# Ref: Dong et al., "HAWQ-V2: Hessian aware trace-weighted quantization", NeurIPS 2020 (layer
#      sensitivity, Pareto-frontier bit allocation); Dotzel et al., "FLIQS: one-shot
#      mixed-precision floating-point and integer quantization search", arXiv 2308.03290
"""Per-layer mixed-format assignment under an area budget.

Each GEMM of a workload gets one format from ``[mixed] formats``, all on one datapath (a label
of ``[datapaths]`` whose designs follow ``[formats] weights``). The sensitivity of a layer to a
format is measured, not estimated: the layer's output relative error
``e[l, f]`` from the sweep's accuracy stage on that format (each GEMM evaluated on its recorded
fp32 operands). For an assignment ``a``:

- estimated noise ``N(a) = mean_l e[l, a_l]**2``, reported as SQNR ``-10 log10 N`` (dB);
- energy per MAC ``E(a) = sum_l MACs_l energy[a_l] / sum_l MACs_l``;
- area ``A(a) = sum of area[f]`` over the distinct formats used: a multi-format accelerator holds
  one datapath per format it uses.

The search minimizes ``(N, E)`` subject to ``A <= budget`` (default: twice the area of the
cheapest format's datapath). Spaces of at most :data:`BRUTE_FORCE_LIMIT` assignments are also
enumerated, and the report says how much of the exact front NSGA-II (pymoo) found.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .designs import Design, plan
from .pareto import non_dominated
from .run import accuracy_config, cost_config, run_tasks
from .spec import Datapaths, Spec
from .store import Store
from .tasks import task_key

__all__ = ["BRUTE_FORCE_LIMIT", "Problem", "mixed_search"]

BRUTE_FORCE_LIMIT = 200_000


@dataclasses.dataclass
class Problem:
    """Per-layer errors and per-format costs of a mixed assignment problem."""

    layers: list[str]
    formats: list[str]
    err2: np.ndarray  # (layers, formats): squared relative output error
    macs: np.ndarray  # (layers,)
    area: np.ndarray  # (formats,)
    energy: np.ndarray  # (formats,)
    budget: float

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise, energy per MAC and area of assignments ``x`` (n, layers) of format indices."""
        x = np.asarray(x, dtype=np.intp)
        rows = np.arange(len(self.layers))
        noise = self.err2[rows, x].mean(axis=1)
        energy = (self.macs * self.energy[x]).sum(axis=1) / self.macs.sum()
        used = np.zeros((len(x), len(self.formats)), dtype=bool)
        np.put_along_axis(used, x, True, axis=1)
        area = (used * self.area).sum(axis=1)
        return noise, energy, area

    def brute_force(self) -> np.ndarray:
        """Assignments on the exact front of (noise, energy) under the budget."""
        allx = np.array(list(itertools.product(range(len(self.formats)),
                                               repeat=len(self.layers))), dtype=np.intp)
        noise, energy, area = self.evaluate(allx)
        ok = area <= self.budget
        allx, noise, energy = allx[ok], noise[ok], energy[ok]
        front = non_dominated(np.column_stack([noise, energy]), ["min", "min"])
        return np.asarray(allx[front])

    def nsga2(self, population: int, generations: int, seed: int) -> np.ndarray:
        """Assignments of the final NSGA-II front (pymoo), feasible only."""
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.optimize import minimize

        outer = self

        class _P(PymooProblem):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(n_var=len(outer.layers), n_obj=2, n_ieq_constr=1, xl=0,
                                 xu=len(outer.formats) - 1, vtype=int)

            def _evaluate(self, x: Any, out: dict[str, Any], *args: Any, **kw: Any) -> None:
                noise, energy, area = outer.evaluate(np.rint(x).astype(np.intp))
                out["F"] = np.column_stack([noise, energy])
                out["G"] = (area - outer.budget)[:, None]

        # The first generation holds every uniform assignment (the ends of the front a search
        # from random mixtures tends to miss), the rest random.
        rng = np.random.default_rng(seed)
        n_layers, n_formats = len(self.layers), len(self.formats)
        uniform = np.repeat(np.arange(n_formats)[:, None], n_layers, axis=1)
        rest = rng.integers(0, n_formats, (max(0, population - n_formats), n_layers))
        start = np.vstack([uniform, rest])[:max(population, n_formats)].astype(float)
        algorithm = NSGA2(pop_size=max(population, n_formats), sampling=start,
                          crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                          mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                          eliminate_duplicates=True)
        res = minimize(_P(), algorithm, ("n_gen", generations), seed=seed, verbose=False)
        if res.X is None:
            return np.zeros((0, len(self.layers)), dtype=np.intp)
        x = np.atleast_2d(np.rint(res.X).astype(np.intp))
        _, _, area = self.evaluate(x)
        x = x[area <= self.budget]
        return np.unique(x, axis=0)


def mixed_search(spec: Spec, store: Store, designs: list[Design], traces: dict[str, Path],
                 executor: Any, progress: Callable[[str, int, int], None] | None = None
                 ) -> dict[str, Any]:
    """Run the per-layer mixed-format search of ``spec.mixed``; return the report's data."""
    mx = spec.mixed
    label = mx.datapath
    # parse_spec fills both in when the search is enabled.
    assert label is not None
    assert mx.formats is not None
    # The section's parameters on every format of [mixed] formats (its formats filter dropped).
    sections = {**spec.datapaths.sections}
    sections[label] = dataclasses.replace(sections[label], only=None)
    sub = dataclasses.replace(
        spec, formats=dataclasses.replace(spec.formats, weights=list(mx.formats),
                                          activations="same"),
        datapaths=Datapaths([label], sections), references=[],
        # One design per format: the first nonlinear implementation and transform of the spec.
        workloads=dataclasses.replace(spec.workloads, nonlinear=spec.workloads.nonlinear[:1],
                                      transforms=spec.workloads.transforms[:1]))
    sub_designs, _ = plan(sub)
    w = mx.workload
    tasks: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for d in sub_designs:
        tasks.append(("cost", cost_config(spec, d), {}))
        tasks.append(("accuracy", accuracy_config(spec, d, w), {"trace": str(traces[w])}))
    run_tasks(store, executor, tasks, progress, "mixed")
    by_format: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for d in sub_designs:
        if d.weights in by_format:
            continue
        crow = store.get(task_key("cost", cost_config(spec, d)))
        arow = store.get(task_key("accuracy", accuracy_config(spec, d, w)))
        if crow and arow and crow["status"] == "ok" and arow["status"] == "ok":
            by_format[d.weights] = (crow["result"], arow["result"])
    formats = [f for f in mx.formats if f in by_format]
    missing = [f for f in mx.formats if f not in by_format]
    if len(formats) < 2:
        return {"workload": w, "datapath": mx.datapath, "solutions": [],
                "summary": f"needs two formats with accuracy and cost on {mx.datapath}; "
                           f"missing: {', '.join(missing)}"}
    layers = [ly["name"] for ly in by_format[formats[0]][1]["layers"]]
    err2 = np.array([[_err2(ly["rel_err"]) for ly in by_format[f][1]["layers"]]
                     for f in formats]).T
    macs = np.array([ly["M"] * ly["N"] * ly["K"] for ly in by_format[formats[0]][1]["layers"]],
                    dtype=np.float64)
    area = np.array([by_format[f][0]["area_um2"] for f in formats])
    energy = np.array([by_format[f][0]["energy_pj"] for f in formats])
    budget = float(mx.area_budget_um2 or 2 * area.min())
    prob = Problem(layers, formats, err2, macs, area, energy, budget)
    exact = prob.brute_force() if len(formats) ** len(layers) <= BRUTE_FORCE_LIMIT else None
    try:
        found = prob.nsga2(mx.population, mx.generations, mx.seed)
        method = (f"NSGA-II (pymoo, population {mx.population}, {mx.generations} "
                  "generations)")
    except ModuleNotFoundError:
        found = None
        method = "NSGA-II unavailable (pip install 'arithforge[dse]' for pymoo)"
    shown = exact if exact is not None else found
    solutions: list[dict[str, Any]] = []
    if shown is not None and len(shown):
        noise, e_pj, a_um2 = prob.evaluate(shown)
        order = np.argsort(noise)
        found_set = {tuple(r) for r in found} if found is not None else set()
        for i in order:
            x = shown[i]
            note = ""
            if exact is not None and found is not None:
                note = "found by NSGA-II" if tuple(x) in found_set else "missed by NSGA-II"
            solutions.append({"assignment": {ly: formats[k] for ly, k in zip(layers, x,
                                                                            strict=True)},
                              "sqnr_db": -10 * math.log10(noise[i]) if noise[i] > 0
                              else math.inf, "energy_pj": float(e_pj[i]),
                              "area_um2": float(a_um2[i]),
                              "note": note})
    cover = ""
    if exact is not None and found is not None:
        hits = len({tuple(r) for r in found} & {tuple(r) for r in exact})
        cover = (f" NSGA-II found {hits} of the {len(exact)} exact front assignments "
                 f"(enumerated: {len(formats) ** len(layers)} assignments).")
    uniform = ", ".join(f"{f}: {-10 * math.log10(max(err2[:, j].mean(), 1e-300)):.1f} dB"
                        for j, f in enumerate(formats))
    summary = (f"{len(layers)} layers x {len(formats)} formats on {mx.datapath}, area budget "
               f"{budget:,.0f} um2 (sum of the datapaths of the formats used); estimated SQNR "
               f"-10 log10(mean_l rel_err_l^2) from the measured per-layer errors; energy per "
               f"MAC weighted by each layer's MACs. Uniform assignments: {uniform}. {method}."
               f"{cover}" + (f" Missing formats: {', '.join(missing)}." if missing else ""))
    return {"workload": w, "datapath": mx.datapath, "budget_um2": budget,
            "solutions": solutions, "summary": summary}


def _err2(v: Any) -> float:
    return math.inf if v is None else float(v) ** 2
