# Ref: docs/tensor-cores.md ("Special values and scales"); data/tensorcore/README.md;
#      IEEE Std 754-2019 §7.2 (invalid operation: inf - inf, inf * 0), §7.4 (overflow).
"""``formats.mma`` on special values and float32 scales, against the H100 recordings.

- Every output code of ``data/tensorcore/h100_special.npz`` (NaN/Inf operands, overflow of a
  step, of the accumulator and of the output conversion, NaN/Inf/-0 in ``c``; random
  products with non-power-of-two per-tensor and row-wise scales) is reproduced by the
  presets, comparing integer codes.
- The recordings decide between the alternatives: a model with the other overflow rule,
  NaN code or scale order fails on them.
- The special-value rules on small hand-made cases, and their validation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arithforge.formats import FormatError, get_format, mma

from ..conftest import load_module

ROOT = Path(__file__).resolve().parents[2]
NPZ = ROOT / "data" / "tensorcore" / "h100_special.npz"


#: ``tools/probe/special_match.py``: the path-to-preset map and the replay.
TOOL = load_module(ROOT / "tools" / "probe" / "special_match.py")
DATA = np.load(NPZ)
SETS = TOOL.sets(DATA)


@pytest.mark.parametrize(("prefix", "path"), SETS, ids=[f"{p}-{q}" for p, q in SETS])
def test_presets_reproduce_h100_special_recordings(prefix: str, path: str) -> None:
    got, want = TOOL.replay(DATA, prefix, path)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"{prefix} {path}: {len(bad)} of {want.size} codes differ; first at {tuple(bad[0])}: "
        f"model {int(got[tuple(bad[0])]):#x}, recorded {int(want[tuple(bad[0])]):#x}")


def test_recordings_cover_the_special_cases() -> None:
    """The data set holds what the rules are read from (not an empty or all-finite set)."""
    f32 = get_format("float32")
    nan_in = inf_out = nan_out = 0
    for prefix, path in SETS:
        if not prefix.startswith("special") or not path.startswith(("mma_sync", "torch_mm")):
            continue
        out = DATA[f"{prefix}/out/{path}"]
        nan_out += int((out == 0x7FFFFFFF).sum())
        inf_out += int(np.isinf(f32.decode(out)).sum())
        nan_in += int(np.isnan(get_format(TOOL.GROUPS[prefix.split("/")[1]][0]).decode(
            DATA[prefix + "/A"])).sum())
    assert nan_in > 50
    assert nan_out > 100
    assert inf_out > 50


def _mismatches(prefix: str, path: str, **changes: Any) -> int:
    group = prefix.split("/")[1]
    fa, fb = TOOL.GROUPS[group]
    m = dataclasses.replace(TOOL.preset_for(group, path), **changes)
    A, B = DATA[prefix + "/A"], DATA[prefix + "/B"]
    want = DATA[f"{prefix}/out/{path}"]
    c = DATA[prefix + "/C"] if TOOL.takes_c(path) else [None] * len(A)
    got = np.stack([mma.matmul(A[i], B[i], fa, fb, model=m, c=c[i]) for i in range(len(A))])
    return int((got.astype(np.uint32) != want.astype(np.uint32)).sum())


@pytest.mark.parametrize(("prefix", "path", "changes"), [
    ("special/bf16", "torch_mm_f32out", {"overflow": "rounding"}),   # RZ would saturate
    ("special/bf16", "mma_sync", {"overflow": "rounding"}),
    ("special/fp16", "torch_mm_f32out", {"nan_output": "quiet"}),    # 0x7fc00000
    ("special/e4m3xe4m3", "scaled_mm_bf16_fast", {"nan_output": "quiet"}),
])
def test_recordings_reject_the_alternatives(prefix: str, path: str,
                                            changes: dict[str, Any]) -> None:
    assert _mismatches(prefix, path, **changes) > 0


@pytest.mark.parametrize("mode", ["tensor", "row"])
def test_recordings_reject_the_other_scale_order(mode: str) -> None:
    """Per tensor ``r * (sa * sb)``, row-wise ``(r * sb) * sa``: each rule fails the other's
    recordings (float32 output, fast accumulation, e4m3)."""
    prefix, path = f"scale/e4m3xe4m3/{mode}", "scaled_mm_f32_fast"
    m = TOOL.preset_for("e4m3xe4m3", path)
    A, B = DATA[prefix + "/A"], DATA[prefix + "/B"]
    sa = DATA[prefix + "/scale_a"].view(np.float32)
    sb = DATA[prefix + "/scale_b"].view(np.float32)
    want = DATA[f"{prefix}/out/{path}"]
    wrong = 0
    for i in range(len(A)):
        r = mma.matmul(A[i], B[i], "float8_e4m3fn", model=m).view(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            other = r * (sa[i] * sb[i]) if mode == "row" else (r * sb[i]) * sa[i]
        wrong += int((other.view(np.uint32) != want[i]).sum())
    assert wrong > 100


# -- the rules on hand-made cases ---------------------------------------------------------------

BF16 = get_format("bfloat16")
F32 = get_format("float32")


def _bf16(*values: float) -> np.ndarray:
    return np.asarray(BF16.encode(np.array(values, dtype=np.float64)))


def _one(a: np.ndarray, b: np.ndarray, model: str | mma.MMAModel, c: int | None = None) -> int:
    cc = None if c is None else np.array([[c]], np.uint32)
    return int(mma.matmul(a[None, :], b[:, None], BF16, model=model, c=cc)[0, 0])


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("a", "b", "c", "want"), [
    ((INF, 1.0), (1.0, 1.0), None, 0x7F800000),
    ((INF, 1.0), (-2.0, 1.0), None, 0xFF800000),
    ((INF, 1.0), (0.0, 1.0), None, 0x7FFFFFFF),            # inf * 0
    ((INF, -INF), (1.0, 1.0), None, 0x7FFFFFFF),           # inf - inf in one step
    ((NAN, 1.0), (1.0, 1.0), None, 0x7FFFFFFF),            # payload and sign dropped
    ((1.0, 1.0), (1.0, 1.0), 0xFFC12345, 0x7FFFFFFF),      # NaN accumulator
    ((INF, 1.0), (1.0, 1.0), 0xFF800000, 0x7FFFFFFF),      # inf + (-inf in c)
    ((1.0, 1.0), (1.0, 1.0), 0x7F800000, 0x7F800000),
    ((3e38, 3e38), (1.0, 1.0), None, 0x7F800000),          # overflow under RZ: infinity
    ((0.0, 0.0), (-1.0, 1.0), 0x80000000, 0x00000000),     # -0 + 0 products: +0
])
def test_special_rules_h100(a: tuple[float, ...], b: tuple[float, ...], c: int | None,
                            want: int) -> None:
    assert _one(_bf16(*a), _bf16(*b), "h100-bf16", c) == want


def test_inf_minus_inf_across_steps_and_overflow_then_inf() -> None:
    k = 48  # three steps of 16
    a = np.zeros(k)
    a[0], a[40] = INF, -INF
    assert _one(_bf16(*a), _bf16(*np.ones(k)), "h100-bf16") == 0x7FFFFFFF
    # a step overflowing to +inf, then -inf in a later step: NaN (the order matters)
    a = np.zeros(k)
    a[0] = a[1] = 2.0**127
    a[40] = -INF
    assert _one(_bf16(*a), _bf16(*np.ones(k)), "h100-bf16") == 0x7FFFFFFF
    # cancelling inside one step: exact, no overflow
    a = np.zeros(k)
    a[0] = a[1] = 2.0**127
    a[2] = -(2.0**127)
    assert _one(_bf16(*a), _bf16(*np.ones(k)), "h100-bf16") == 0x7F000000


def test_overflow_rounding_saturates_under_rtz() -> None:
    m = dataclasses.replace(mma.get_model("h100-bf16"), overflow="rounding")
    got = _one(_bf16(3e38, 3e38), _bf16(1.0, 1.0), m)
    assert got == 0x7F7FFFFF


@pytest.mark.parametrize(("output", "ones", "quiet"), [
    ("float32", 0x7FFFFFFF, 0x7FC00000), ("bfloat16", 0x7FFF, 0x7FC0),
    ("float16", 0x7FFF, 0x7E00)])
def test_nan_code(output: str, ones: int, quiet: int) -> None:
    m = dataclasses.replace(mma.get_model("h100-bf16"), output=output)
    assert mma.nan_code(m) == ones
    assert _one(_bf16(NAN), _bf16(1.0), m) == ones
    q = dataclasses.replace(m, nan_output="quiet")
    assert mma.nan_code(q) == quiet
    assert _one(_bf16(NAN), _bf16(1.0), q) == quiet


def test_step_takes_specials() -> None:
    m = mma.get_model("h100-bf16")
    a = np.broadcast_to(_bf16(1.0), (2, 16)).copy()
    a[0, 3] = int(_bf16(INF)[0])
    b = np.broadcast_to(_bf16(1.0), (2, 16))
    c = np.array([0xFF800000, 0x3F800000], np.uint32)
    got = mma.step(a, b, c, BF16, model=m)
    assert np.isnan(F32.decode(got[0]))
    assert int(got[1]) == int(F32.encode(np.float64(17.0)))


def test_special_model_errors() -> None:
    with pytest.raises(FormatError, match="overflow must be one of rounding, inf, not 'wrap'"):
        mma.MMAModel(overflow="wrap")
    with pytest.raises(FormatError, match="nan_output must be one of quiet, ones, not 'x'"):
        mma.MMAModel(nan_output="x")
    blocked = mma.MMAModel(n=32, group=32, block=32, scale_format="float8_e8m0fnu")
    nan = np.full((1, 32), 0x7F, np.uint8)
    with pytest.raises(FormatError, match="a_codes must hold finite float8_e4m3fn codes"):
        mma.matmul(nan, np.zeros((32, 1), np.uint8), "float8_e4m3fn", model=blocked,
                   block_scale_a=np.full((1, 1), 127, np.uint8),
                   block_scale_b=np.full((1, 1), 127, np.uint8))
    assert "overflow=inf nan=ones" in mma.get_model("h100-fp8").label()
