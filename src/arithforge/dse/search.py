# Ref: Deb et al., "A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEVC 2002
"""NSGA-II over a sweep's design space, for spaces too large to run every point.

``[search] method = "nsga2"`` evaluates only the designs NSGA-II (pymoo) asks for, generation by
generation, through the same executor and results store as a grid sweep (so a re-run is cached
too). The genome is two integers: the (weight, activation) format pair and the datapath variant
(kind, accumulator, parameter values); a genome naming a combination the planner skipped is
infeasible (constraint violation 1). The first generation is drawn from the planned designs.
The objectives are the accuracy metric on ``[search] workload`` (maximized) and area per MAC
(minimized). The designs evaluated go on to
the ordinary analysis: fronts, verification, report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ArithforgeError
from .designs import Design
from .run import accuracy_config, cost_config, run_tasks
from .spec import Spec
from .store import Store
from .tasks import task_key

__all__ = ["nsga2_designs"]


def nsga2_designs(spec: Spec, designs: list[Design], traces: dict[str, Path], store: Store,
                  executor: Any, progress: Callable[[str, int, int], None] | None = None
                  ) -> tuple[list[Design], dict[str, Any]]:
    """Search the planned ``designs`` with NSGA-II; return the designs evaluated and a summary."""
    try:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
    except ModuleNotFoundError as exc:
        raise ArithforgeError("[search] method = 'nsga2' needs pymoo: pip install "
                              "'arithforge[dse]'") from exc

    workload = spec.search.workload or spec.workloads.names[0]
    def variant(d: Design) -> tuple[Any, ...]:
        return (d.kind, d.acc, tuple(sorted(d.params.items())))

    pairs = sorted({(d.weights, d.acts) for d in designs})
    variants = sorted({variant(d) for d in designs}, key=str)
    table = {((d.weights, d.acts), variant(d)): d for d in designs}
    axes: list[list[Any]] = [pairs, variants]

    def decode(x: np.ndarray) -> Design | None:
        pair, var = (axis[int(v)] for axis, v in zip(axes, x, strict=True))
        return table.get((pair, var))

    class _P(Problem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(n_var=len(axes), n_obj=2, n_ieq_constr=1, xl=0,
                             xu=np.array([len(a) - 1 for a in axes]), vtype=int)

    # The first generation: distinct planned designs (a random genome is mostly infeasible).
    population = spec.search.population
    rng = np.random.default_rng(spec.search.seed)
    genomes = np.array([[pairs.index(p), variants.index(v)] for p, v in table])
    start = genomes[rng.permutation(len(genomes))[:population]]
    if len(start) < population:
        start = np.vstack([start, genomes[rng.integers(0, len(genomes), population - len(start))]])
    problem = _P()
    algorithm = NSGA2(pop_size=population, sampling=start.astype(float),
                      crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
                      mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                      eliminate_duplicates=True)
    algorithm.setup(problem, termination=("n_gen", spec.search.generations),
                    seed=spec.search.seed, verbose=False)
    evaluated: dict[str, Design] = {}
    generation = 0
    while algorithm.has_next():
        pop = algorithm.ask()
        x = np.rint(pop.get("X")).astype(int)
        chosen = [decode(row) for row in x]
        tasks: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for d in chosen:
            if d is not None and d.hdl is not None:
                evaluated[d.ident] = d
                tasks.append(("cost", cost_config(spec, d), {}))
                tasks.append(("accuracy", accuracy_config(spec, d, workload),
                              {"trace": str(traces[workload])}))
        generation += 1
        run_tasks(store, executor, tasks, progress, f"nsga2 gen {generation}")
        f = np.zeros((len(x), 2))
        g = np.zeros((len(x), 1))
        for i, d in enumerate(chosen):
            metric, area = _objectives(store, spec, d, workload, accuracy_config, cost_config,
                                       task_key)
            if metric is None or area is None:
                f[i] = (1e300, 1e300)
                g[i] = 1.0
            else:
                f[i] = (-metric, area)
        pop.set("F", f)
        pop.set("G", g)
        algorithm.tell(infills=pop)
    summary = (f"NSGA-II (pymoo) over {len(designs)} planned designs on {workload}: "
               f"{generation} generations of {spec.search.population}, "
               f"{len(evaluated)} designs evaluated ({len(evaluated) / len(designs):.0%} of the "
               "grid); objectives: accuracy metric (max) and area per MAC (min).")
    return list(evaluated.values()), {"summary": summary, "evaluated": len(evaluated),
                                      "grid": len(designs)}


def _objectives(store: Store, spec: Spec, d: Design | None, workload: str, accuracy_config: Any,
                cost_config: Any, task_key: Any) -> tuple[float | None, float | None]:
    if d is None or d.hdl is None:
        return None, None
    c = store.get(task_key("cost", cost_config(spec, d)))
    a = store.get(task_key("accuracy", accuracy_config(spec, d, workload)))
    if not c or not a or c["status"] != "ok" or a["status"] != "ok":
        return None, None
    metric = float(a["result"]["metric"])
    metric = min(max(metric, -1e300), 1e300)
    return metric, float(c["result"]["area_um2"])
