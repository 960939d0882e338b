"""The H100 presets against the recorded shape grid (``data/tensorcore/h100_shapes.npz``).

cuBLAS picks its split-K from the call shape; the ``h100-*`` presets carry the measured table
(``MMAModel.shape_splits``), so ``mma.matmul(a, b, ..., model=preset)`` on an ``M x K`` by
``K x N`` product splits as cuBLAS did. Every recorded random product was run at its call shape
(the 16 x 16 block tiled to M x N); here it is replayed at that shape through the preset,
comparing output codes. The window probes are checked against the chunk rule of the table.
The committed ``probe-gpu`` output must equal the presets.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from arithforge.formats import _gpu_probe as gp
from arithforge.formats import mma
from arithforge.formats import mma_probe as mp

DATA = Path(__file__).resolve().parents[2] / "data" / "tensorcore"
PROBE_GPU = DATA / "probe-gpu-h100"


@pytest.fixture(scope="module")
def grid() -> dict:
    arrays, _ = gp.load(DATA / "h100_shapes.npz")
    return arrays


def preset(path: mp.ProbePath) -> mma.MMAModel:
    return dataclasses.replace(mma.get_model(path.preset), output=path.output)


def replay(grid: dict, path: mp.ProbePath, shape: tuple[int, int, int]) -> tuple[int, int]:
    """Random products of one shape through the preset at that call shape: (match, total)."""
    rows, cols, k = shape
    _, rands = gp.readings(grid, path, shape)
    m = mma.for_shape(preset(path), rows, cols, k)  # the 16x16 block ran inside an M x N call
    match = total = 0
    for a, b, out in rands:
        got = mma.matmul(a, b, path.fmt_a, path.fmt_b,
                         model=dataclasses.replace(m, shape_splits=()))
        match += int(np.sum(got == out))
        total += out.size
    return match, total


def test_grid_covers_every_path_and_shape(grid: dict) -> None:
    for key in mp.PATHS:
        shapes = set(gp.shapes_of(grid, key))
        assert shapes == {(m, n, k) for m in mp.GRID_MN for n in mp.GRID_MN
                          for k in mp.GRID_K}, key
        assert all(grid[f"ok/{key}/{m}x{n}x{k}"].all() for m, n, k in shapes)


@pytest.mark.parametrize("key", list(mp.PATHS))
def test_window_probes_follow_the_table(grid: dict, key: str) -> None:
    """Every window reading of every shape is the table's chunk rule (kept iff the two k
    positions are in different split-K parts or promotion windows)."""
    path = mp.PATHS[key]
    pm = preset(path)
    for shape in gp.shapes_of(grid, key):
        m = mma.for_shape(pm, *shape)
        k = shape[2]
        part = k if m.split == 1 else -(-k // (m.split * m.split_tile)) * m.split_tile
        reads, _ = gp.readings(grid, path, shape)
        for j, i, kept in reads:
            assert np.array_equal(mp.predicted_kept(j, i, part, m.promote), kept), (key, shape)


# A few split shapes per kind of path in the default suite; every shape under -m slow.
FAST = [("e4m3xe4m3/scaled_mm_f32_fast", (16, 16, 8192)),
        ("e4m3xe4m3/scaled_mm_bf16_fast", (64, 64, 8192)),
        ("bf16/torch_mm_f32out", (16, 16, 4096)),
        ("fp16/torch_matmul", (1024, 32, 4096))]


@pytest.mark.parametrize(("key", "shape"), FAST)
def test_presets_reproduce_split_shapes(grid: dict, key: str, shape: tuple[int, int, int]
                                        ) -> None:
    path = mp.PATHS[key]
    assert mma.for_shape(preset(path), *shape).split > 1  # these shapes do split
    match, total = replay(grid, path, shape)
    assert match == total == 512


@pytest.mark.slow
@pytest.mark.parametrize("key", list(mp.PATHS))
def test_presets_reproduce_every_shape(grid: dict, key: str) -> None:
    path = mp.PATHS[key]
    bad = []
    for shape in gp.shapes_of(grid, key):
        match, total = replay(grid, path, shape)
        if match != total:
            bad.append((shape, match, total))
    assert bad == []


def test_rule_outside_the_grid() -> None:
    """Shapes off the grid take the nearest measured shape's (split, tile) (log2 distance)."""
    m = mma.get_model("h100-fp8-fastacc")
    assert mma.for_shape(m, 16, 16, 8192).split == 3
    near = mma.for_shape(m, 24, 20, 9000)           # nearest: 16x16x8192 (or 32x...)
    assert (near.split, near.split_tile) == (3, 128)
    assert mma.for_shape(m, 4096, 4096, 4096).split == 1


def test_probe_gpu_output_equals_the_presets() -> None:
    """The committed ``arithforge probe-gpu`` run on the H100: each fitted model file has the
    built-in preset's step and, at every shape it measured, the preset's split."""
    report = json.loads((PROBE_GPU / "report.json").read_text())
    assert set(report["paths"]) == set(mp.PATHS)
    for key, rep in report["paths"].items():
        path = mp.PATHS[key]
        fitted = mma.get_model(str(PROBE_GPU / "models" / f"{path.group}_{path.name}.json"))
        pm = preset(path)
        assert gp.same_step(fitted, pm, path), key
        for out, m_, n_, k_, s, t in fitted.shape_splits:
            built = mma.for_shape(pm, m_, n_, k_)
            assert out == path.output
            assert (built.split, built.split_tile) == (s, t), (key, m_, n_, k_)
        assert all(r["random_match"] == r["random_total"] for r in rep["shapes"]), key
        assert rep["step_match"] == rep["step_total"], key
