"""Promotion, K order and output conversion of the ``dot`` unit as hardware (issue 16).

The unit's state is ``(partial, main)``: the step accumulates into ``partial``; a ``flush`` step
adds it into the float32 ``main`` (round to nearest even) and restarts it from +0; the ``last``
step puts the output code (``main``, or the step, rounded to ``output``) in the result. A chain
of steps fed as the PE face feeds them (:func:`arithforge.sim.accelerator.element_operands`: K
padded, reordered, control fields) is ``formats.mma.matmul`` of the whole preset, bit for bit.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from arithforge.datapaths import get
from arithforge.datapaths.dot import DotUnit
from arithforge.formats import get_format, mma
from arithforge.hdl import registry
from arithforge.sim import accelerator as acc
from arithforge.sim import harness
from arithforge.tools import export

from .conftest import verify_corner_and_random

F32 = get_format("float32")
FP8 = "float8_e4m3fn"

#: (PE spec, A format, B format, the formats.mma model it must reproduce, K).
CHAINS: list[tuple[str, str, str, mma.MMAModel, int]] = [
    ("dot:a=float8_e4m3fn,model=h100-fp8", FP8, FP8, mma.get_model("h100-fp8"), 300),
    ("dot:a=float8_e4m3fn,model=h100-fp8,out=bfloat16", FP8, FP8,
     dataclasses.replace(mma.get_model("h100-fp8"), output="bfloat16"), 256),
    ("dot:a=float8_e5m2,b=float8_e4m3fn,model=h100-fp8-mma-sync", "float8_e5m2", FP8,
     mma.get_model("h100-fp8-mma-sync"), 70),
    ("dot:a=float8_e4m3fn,model=h100-fp8-fastacc,promote=32", FP8, FP8,
     dataclasses.replace(mma.get_model("h100-fp8-fastacc"), promote=32), 96),
    ("dot:a=bfloat16,model=h100-bf16,out=bfloat16", "bfloat16", "bfloat16",
     dataclasses.replace(mma.get_model("h100-bf16"), output="bfloat16"), 40),
    ("dot:a=float16,model=h100-fp16-f16acc", "float16", "float16",
     mma.get_model("h100-fp16-f16acc"), 48),
    ("dot:a=float8_e4m3fn,n=4,promote=8,out=float16,stages=1", FP8, FP8,
     mma.MMAModel(n=4, frac_bits=13, acc_frac_bits=13, promote=8, output="float16"), 22),
]


def _codes(rng: np.random.Generator, fmt: str, shape: tuple[int, ...], scale: float
           ) -> np.ndarray:
    f = get_format(fmt)
    return np.asarray(f.encode(rng.standard_normal(shape) * scale)).astype(np.uint64)


@pytest.mark.parametrize(("pe", "fa", "fb", "model", "k"), CHAINS, ids=[c[0] for c in CHAINS])
@pytest.mark.parametrize("df", acc.DATAFLOWS)
def test_chain_of_steps_is_the_preset(pe: str, fa: str, fb: str, model: mma.MMAModel, k: int,
                                      df: str) -> None:
    """Element GEMMs (K not a multiple of the promotion period or of the K-order block
    included) through the array model: every output code is ``formats.mma.matmul``'s."""
    cfg = acc.ArrayConfig(2, 3, df, acc.parse_pe(pe))
    for seed in range(2):
        rng = np.random.default_rng(seed)
        scale = 0.5 if fa == "float16" else 1.0  # the fp16 accumulator stays in range
        a, b = _codes(rng, fa, (5, k), scale), _codes(rng, fb, (k, 4), scale)
        ea, eb = acc.element_operands(cfg, a, b)
        out = acc.simulate(cfg, ea, eb).output
        assert out is not None
        got = acc.element_output(cfg, out, 5, 4)
        want = mma.matmul(a, b, fa, fb, model=model)
        np.testing.assert_array_equal(got, want.astype(np.uint64), err_msg=f"seed={seed}")


def test_reference_flush_and_last_against_float32() -> None:
    """One step by hand: the step's sum into ``partial``; ``flush`` adds it into ``main`` as a
    numpy float32 addition does and restarts ``partial`` from +0; ``last`` gives the output
    code of ``main`` (bfloat16, round to nearest even)."""
    unit = get("dot").build_unit(a=FP8, n=2, promote=4, out="bfloat16", frac_bits=13,
                                 acc_frac_bits=13)
    assert isinstance(unit, DotUnit)
    e4 = get_format(FP8)
    la = np.asarray(e4.encode(np.array([[1.5, 2.0]] * 4))).astype(np.uint64)
    lb = np.asarray(e4.encode(np.array([[3.0, -0.25]] * 4))).astype(np.uint64)
    part = np.asarray(F32.encode(np.array([0.75] * 4))).astype(np.uint64)
    main = np.asarray(F32.encode(np.array([2.0**24, 1e-3, -5.25, 7.0]))).astype(np.uint64)
    ctrl = np.array([0, 1, 3, 2], dtype=np.uint64)  # none, flush, flush+last, last
    ports = unit.join(la, lb)
    a = ports["a"] | (ctrl << np.uint64(16))
    got = unit.reference(a, ports["b"], part | (main << np.uint64(32)))
    step = np.float32(1.5 * 3.0 + 2.0 * -0.25 + 0.75)  # exact: 4.75
    mains = F32.decode(main).astype(np.float32)
    added = mains + step
    assert (int(got[0]) & 0xFFFFFFFF) == int(F32.encode(np.array([step]))[0])
    assert int(got[0]) >> 32 == int(main[0])
    assert int(got[1]) == int(F32.encode(np.array([added[1]]))[0]) << 32  # partial +0
    bf16 = get_format("bfloat16")
    assert int(got[2]) == int(bf16.encode(np.array([added[2]]), "rne")[0])
    assert int(got[3]) == int(bf16.encode(np.array([mains[3]]), "rne")[0])


def test_vectors_cover_flush_last_and_cancellation(rng: np.random.Generator) -> None:
    unit = get("dot").build_unit(a=FP8, model="h100-fp8", out="bfloat16")
    assert isinstance(unit, DotUnit)
    assert unit.control_bits == 2
    v = unit.test_cases(rng, "random", 4000)
    ctrl = unit.control_field(v["a"])
    assert set(ctrl.tolist()) == {0, 1, 2, 3}
    out = unit.reference(**v)
    flushed = (ctrl == 1)
    main_after = (out >> np.uint64(32)) & np.uint64(0xFFFFFFFF)
    # Exact cancellation at the float32 addition: +0 in main after a flush.
    assert int((flushed & (main_after == 0) & (v["c"] >> np.uint64(32) != 0)).sum()) > 100
    corner = unit.test_cases(rng, "corner")
    assert set(unit.control_field(corner["a"]).tolist()) == {0, 1, 2, 3}


def test_describe_and_widths() -> None:
    unit = get("dot").build_unit(a=FP8, model="h100-fp8")
    assert isinstance(unit, DotUnit)
    assert unit.operand_widths == {"a": 258, "b": 256, "c": 64}
    assert unit.result_width == 64
    assert unit.formats == {}
    d = unit.describe()
    assert (d["promote"], d["k_order"], d["output"]) == (128, "natural", "float32")
    assert d["state"] == {"partial": [0, 32], "main": [32, 64]}
    assert d["control"] == {"flush": 256, "last": 257}
    assert unit.k_block == 128
    ctrl = unit.step_control(8)
    assert ctrl.tolist() == [0, 0, 0, 1, 0, 0, 0, 3]
    sync = get("dot").build_unit(a=FP8, model="h100-fp8-mma-sync")
    assert isinstance(sync, DotUnit)
    assert sync.k_permutation == mma.K_ORDERS["pairs2x16"]
    assert (sync.k_block, sync.operand_widths["a"]) == (32, 130)
    fast = get("dot").build_unit(a=FP8, model="h100-fp8-fastacc")
    assert isinstance(fast, DotUnit)
    assert (fast.control_bits, fast.k_permutation, fast.operand_widths["c"]) == (0, None, 32)


def test_promotion_needs_a_float32_step_accumulator() -> None:
    from arithforge.datapaths import DatapathError

    with pytest.raises(DatapathError, match="must be float32 too, not float16"):
        get("dot").build_unit(a="float16", model="h100-fp16-f16acc", promote=32)


# -- the RTL --------------------------------------------------------------------------------------

PROMOTE_CONFIGS: list[dict[str, Any]] = [
    {"a": FP8, "n": 4, "promote": 8, "out": "bfloat16", "frac_bits": 13,
     "acc_frac_bits": 13, "stages": 1},
    {"a": "float8_e5m2", "b": FP8, "n": 4, "promote": 4, "alignment": "sum_fp16",
     "frac_bits": 25},
    {"a": "bfloat16", "n": 2, "out": "float16", "stages": 2},
    {"a": "float16", "n": 2, "acc": "float16", "acc_rounding": "rne", "out": "float32"},
]


@pytest.mark.cosim
@pytest.mark.parametrize("params", PROMOTE_CONFIGS,
                         ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_harness_promotion_and_output(params: dict[str, Any], seed: int) -> None:
    verify_corner_and_random(params, seed)


@pytest.mark.cosim
@pytest.mark.parametrize("model", ["h100-fp8", "h100-fp8-mma-sync"])
def test_harness_h100_promoting_presets(model: str) -> None:
    start = time.monotonic()
    dp = registry.build("dot", a=FP8, model=model, out="bfloat16", stages=2)
    result = harness.verify(dp, "random", 20_000, seed=5)
    assert (result.vectors, result.mismatches) == (20_000, 0), result.first_failures
    assert time.monotonic() - start < 300


@pytest.mark.cosim
def test_lint_promotion() -> None:
    dp = registry.build("dot", a=FP8, n=4, promote=8, out="bfloat16", stages=2)
    waived = export.lint(export.to_verilog(dp, "dot"), "dot")
    assert {m.rule for m in waived} <= set(export.WAIVERS)
