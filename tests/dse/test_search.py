"""The searches: per-layer mixed formats against brute force, and NSGA-II over a grid."""

from __future__ import annotations

import itertools

import numpy as np

from arithforge.dse.mixed import Problem
from arithforge.dse.pareto import non_dominated

from .conftest import TINY, run_explore


def _problem(seed: int, layers: int = 4, formats: int = 3, budget: float = 25.0) -> Problem:
    rng = np.random.default_rng(seed)
    # Wider formats: less error, more area and energy, as in a real sweep.
    area = np.sort(rng.uniform(5, 15, formats))
    energy = np.sort(rng.uniform(1, 3, formats))
    err2 = np.sort(rng.uniform(1e-6, 1e-2, (layers, formats)), axis=1)[:, ::-1].copy()
    macs = rng.integers(1, 1000, layers).astype(float)
    return Problem([f"l{k}" for k in range(layers)], [f"f{k}" for k in range(formats)], err2,
                   macs, area, energy, budget)


def test_evaluate_by_hand(seed):
    p = _problem(seed)
    x = np.array([[0, 1, 1, 2]])
    noise, energy, area = p.evaluate(x)
    rows = range(4)
    assert noise[0] == np.mean([p.err2[r, k] for r, k in zip(rows, x[0], strict=True)])
    assert np.isclose(energy[0], sum(p.macs[r] * p.energy[k] for r, k in
                                     zip(rows, x[0], strict=True)) / p.macs.sum())
    assert area[0] == p.area[0] + p.area[1] + p.area[2]


def test_brute_force_front_is_exact(seed):
    p = _problem(seed)
    front = {tuple(r) for r in p.brute_force()}
    allx = np.array(list(itertools.product(range(3), repeat=4)))
    noise, energy, area = p.evaluate(allx)
    ok = area <= p.budget
    exact = non_dominated(np.column_stack([noise[ok], energy[ok]]), ["min", "min"])
    assert front == {tuple(r) for r in allx[ok][exact]}
    assert all(a <= p.budget for a in p.evaluate(np.array(sorted(front)))[2])


def test_nsga2_finds_the_exact_front_of_a_small_problem():
    p = _problem(7)
    exact = {tuple(r) for r in p.brute_force()}
    found = {tuple(r) for r in p.nsga2(population=24, generations=25, seed=1)}
    # Every assignment NSGA-II returns is feasible and on the exact front; it finds most of it.
    assert found <= exact
    assert len(found) >= 0.8 * len(exact)


def test_nsga2_grid_search_evaluates_part_of_the_grid(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(TINY + "[search]\nmethod = \"nsga2\"\npopulation = 4\ngenerations = 2\n")
    out = run_explore(spec, tmp_path / "out")
    grid = 6  # TINY's designs: fma and lmac on 2 floats, imac on 2 integers
    labels = {p["label"] for p in out["points"]}
    assert 0 < len(labels) <= grid
    assert out["failed"] == 0
    assert out["fronts"]["synthetic/area_um2"]
    assert "NSGA-II (pymoo) over 6 planned designs" in (tmp_path / "out" / "report.md").read_text()
