"""The digits-cnn workload: numpy CNN, im2col lowering, determinism and the override hook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from arithforge.workloads import Trace, build, load_trace
from arithforge.workloads.digits import (
    LAYERS,
    _col2im,
    _im2col,
    digits_accuracy,
    digits_forward,
    run_digits_with_gemm_override,
)


def test_deterministic(digits_dir: Path, tmp_path: Path,
                       trace_bytes: Callable[[Path], dict[str, bytes]]) -> None:
    build("digits-cnn", tmp_path).close()
    assert trace_bytes(tmp_path) == trace_bytes(digits_dir)


def test_shapes(digits_trace: Trace, check_trace: Callable[[Trace], None]) -> None:
    n = len(digits_trace.tensors["input/labels"])
    assert n == 359
    assert [(g.name, g.op, g.M, g.N, g.K) for g in digits_trace.gemms] == [
        ("conv1", "conv2d", n * 64, 16, 9), ("conv2", "conv2d", n * 16, 32, 144),
        ("fc1", "linear", n, 64, 128), ("fc2", "linear", n, 10, 64)]
    check_trace(digits_trace)
    chain = ["input:images", "conv1", "conv1:relu", "conv1:maxpool", "conv2", "conv2:relu",
             "conv2:maxpool", "flatten", "fc1", "fc1:relu", "fc2", "output:logits"]
    assert list(digits_trace.graph.edges) == list(zip(chain, chain[1:], strict=False))


def test_accuracy(digits_trace: Trace) -> None:
    accuracy = digits_accuracy(digits_trace)
    assert accuracy == digits_trace.meta["accuracy_fp32"]
    assert accuracy > 0.95


def test_reference_reproduced(digits_trace: Trace) -> None:
    logits = run_digits_with_gemm_override(digits_trace)
    np.testing.assert_array_equal(logits, digits_trace.tensors["reference/logits"])


def test_override_sees_traced_operands(digits_trace: Trace) -> None:
    seen: list[str] = []

    def override(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        seen.append(name)
        x_ref, w_ref, b_ref, y_ref, _ = digits_trace.operands(name)
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(w, w_ref)
        assert b is not None
        np.testing.assert_array_equal(b, b_ref)
        return y_ref

    logits = run_digits_with_gemm_override(digits_trace, override)
    assert seen == list(LAYERS)
    np.testing.assert_array_equal(logits, digits_trace.tensors["reference/logits"])


def test_override_propagates(digits_trace: Trace) -> None:
    """Rounding operands to 3 significant bits changes the logits and costs accuracy."""
    def coarse(a: np.ndarray) -> np.ndarray:
        m, e = np.frexp(a)
        return np.ldexp(np.round(m * 8) / 8, e).astype(np.float32)

    def override(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        y = coarse(x) @ coarse(w).T
        return y if b is None else y + b

    logits = run_digits_with_gemm_override(digits_trace, override)
    assert not np.array_equal(logits, digits_trace.tensors["reference/logits"])
    assert 0.5 < digits_accuracy(digits_trace, override) <= 1


def test_override_shape_checked(digits_trace: Trace) -> None:
    def bad(name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return np.zeros((x.shape[0], 1), dtype=np.float32)

    with pytest.raises(ValueError, match=r"^override_fn output for 'conv1' must have shape "
                                         r"\(22976, 16\), not \(22976, 1\)$"):
        run_digits_with_gemm_override(digits_trace, bad)


def test_im2col_is_convolution(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)  # (out, C, kh, kw), torch layout
    y = (_im2col(x) @ w.reshape(4, -1).T).reshape(2, 5, 5, 4)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64)
    direct = np.zeros((2, 5, 5, 4))
    for i in range(5):
        for j in range(5):
            direct[:, i, j, :] = np.einsum("bhwc,ochw->bo", xp[:, i:i + 3, j:j + 3, :], w)
    np.testing.assert_allclose(y, direct, rtol=1e-5, atol=1e-5)


def test_col2im_is_adjoint(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 4, 4, 3))
    c = rng.standard_normal((2 * 16, 27))
    assert np.isclose(np.sum(_im2col(x) * c), np.sum(x * _col2im(c, x.shape)))


def test_forward_checks_images() -> None:
    with pytest.raises(ValueError, match=r"^images must have shape \(n, 8, 8\), not \(2, 64\)$"):
        digits_forward({}, np.zeros((2, 64)))


def test_override_from_path(digits_dir: Path, synthetic_dir: Path) -> None:
    with load_trace(digits_dir) as trace:
        assert digits_accuracy(digits_dir) == trace.meta["accuracy_fp32"]
    with pytest.raises(ValueError, match=r"^trace must be of workload 'digits-cnn', "
                                         r"not 'synthetic'$"):
        digits_accuracy(synthetic_dir)
