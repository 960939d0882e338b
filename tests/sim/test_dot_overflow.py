# Ref: docs/tensor-cores.md ("Special values and scales": a truncating H100 step overflows to
#      infinity); IEEE Std 754-2019 §7.4.
"""The ``dot`` RTL of an H100 preset overflows a step to infinity, as ``formats.mma.step`` does
with ``overflow="inf"``; with ``overflow="rounding"`` under RZ the reference saturates.

Directed vectors (the random and corner sets of the unit hold no overflowing step): sums of
bf16 products past float32's largest value, from a zero and from a large accumulator, of both
signs, and sums that come back in range inside the step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from arithforge.datapaths import get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import get_format, mma
from arithforge.hdl import registry
from arithforge.sim import harness

BF16 = get_format("bfloat16")
F32 = get_format("float32")


def _vectors(unit: DotUnit) -> dict[str, np.ndarray]:
    n = unit.model.n
    big = 1.5 * 2.0**127
    rows = [([big, big], 0.0), ([-big, -big], 0.0), ([big, big, -big], 0.0),
            ([big], 3.0e38), ([-big], -3.0e38), ([2.0**127], 2.0**127), ([1.0], 3.4e38),
            ([big, big, -big, -big], 0.0)]
    a = np.zeros((len(rows), n))
    for i, (vals, _) in enumerate(rows):
        a[i, :len(vals)] = vals
    la = np.asarray(BF16.encode(a)).astype(np.uint64)
    lb = np.asarray(BF16.encode(np.ones((len(rows), n)))).astype(np.uint64)
    c = np.asarray(F32.encode(np.array([cv for _, cv in rows]))).astype(np.uint64)
    return {**unit.join(la, lb), "c": c}


def test_reference_overflows_to_infinity() -> None:
    unit = get("dot").build_unit(a="bfloat16", model="h100-bf16")
    assert isinstance(unit, DotUnit)
    vec = _vectors(unit)
    got = F32.decode(np.asarray(unit.reference(**vec)).astype(np.uint32))
    assert got.tolist()[:3] == [np.inf, -np.inf, 1.5 * 2.0**127]
    assert np.isinf(got[3:6]).all()
    la, lb = unit.split(vec["a"], vec["b"])
    sat = dataclasses.replace(unit.model, overflow="rounding")
    capped = F32.decode(mma.step(la, lb, vec["c"].astype(np.int64), BF16, model=sat))
    assert capped[0] == F32.max_finite


@pytest.mark.slow  # one Verilator build of the n = 16 bf16 step (about a minute)
@pytest.mark.cosim
def test_rtl_overflows_to_infinity() -> None:
    dp = registry.build("dot", a="bfloat16", model="h100-bf16")
    vec = _vectors(dp)
    expected = harness._column(dp.reference(**vec), int(dp.result_width))
    result = harness.Harness(dp).run(iter([(harness._narrow(dp, vec), expected)]))
    assert (result.vectors, result.mismatches) == (len(expected), 0), result.first_failures
