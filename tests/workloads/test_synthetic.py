"""The synthetic workload: determinism, distributions and outlier channels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from arithforge.workloads import Trace, build
from arithforge.workloads.synthetic import DISTRIBUTIONS, build_synthetic, sample

NAMES = [f"{d}{s}" for d in DISTRIBUTIONS for s in ("", "-outliers")]


def test_deterministic(synthetic_dir: Path, tmp_path: Path,
                       trace_bytes: Callable[[Path], dict[str, bytes]]) -> None:
    build("synthetic", tmp_path).close()
    assert trace_bytes(tmp_path) == trace_bytes(synthetic_dir)


def test_seed_changes_data(synthetic_dir: Path, tmp_path: Path,
                           trace_bytes: Callable[[Path], dict[str, bytes]]) -> None:
    build("synthetic", tmp_path, seed=1).close()
    assert trace_bytes(tmp_path)["tensors.npz"] != trace_bytes(synthetic_dir)["tensors.npz"]


def test_shapes(synthetic_trace: Trace, check_trace: Callable[[Trace], None]) -> None:
    assert [g.name for g in synthetic_trace.gemms] == NAMES
    assert {(g.M, g.N, g.K, g.op) for g in synthetic_trace.gemms} == {(256, 256, 256, "linear")}
    check_trace(synthetic_trace)


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_unit_variance(dist: str) -> None:
    x = sample(dist, np.random.default_rng(0), (400_000,))
    assert x.dtype == np.float32
    assert abs(float(np.var(x)) - 1) < 0.05  # Student-t(3) has no fourth moment: loose


def test_tails_order(synthetic_trace: Trace) -> None:
    """Excess kurtosis grows from Gaussian (0) to Laplace (3) to Student-t(3) (infinite)."""
    def kurtosis(name: str) -> float:
        x = synthetic_trace.operands(name).x.astype(np.float64).ravel()
        return float(np.mean(x ** 4) / np.mean(x ** 2) ** 2 - 3)

    k = [kurtosis(d) for d in DISTRIBUTIONS]
    assert abs(k[0]) < 0.2
    assert 2 < k[1] < 4
    assert k[2] > k[1]


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_outlier_channels(synthetic_trace: Trace, dist: str) -> None:
    node = synthetic_trace.graph.nodes[f"{dist}-outliers"]
    channels, factors = node["outlier_channels"], node["outlier_factors"]
    assert len(channels) == 4
    assert all(50 <= f <= 100 for f in factors)
    x = synthetic_trace.operands(f"{dist}-outliers").x
    clean = synthetic_trace.operands(dist).x
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=0))
    others = np.delete(rms, channels)
    assert rms[channels].min() > 40
    assert others.max() < 5
    assert "outlier_channels" not in synthetic_trace.graph.nodes[dist]
    assert np.sqrt(np.mean(clean.astype(np.float64) ** 2)) < 1.1


def test_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^outlier_channels must be in \[0, size\], not 9$"):
        build_synthetic(tmp_path, size=8, outlier_channels=9)
    with pytest.raises(ValueError, match=r"^distribution must be one of gaussian, laplace, "
                                         r"student-t3, not 'cauchy'$"):
        sample("cauchy", np.random.default_rng(0), (1,))
    with pytest.raises(ValueError, match=r"^workload must be one of minilm, digits-cnn, "
                                         r"synthetic, not 'resnet'$"):
        build("resnet", tmp_path)
