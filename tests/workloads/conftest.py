"""Traces built once per session, and the checks every trace must pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from arithforge.workloads import Trace, build, load_trace

TRACE_FILES = ("graph.json", "tensors.npz", "meta.json")


def _check_trace(trace: Trace) -> None:
    """Graph shapes match the stored tensors; every traced GEMM reproduces its reference."""
    assert trace.gemms, "a trace must have traced GEMMs"
    for g in trace.gemms:
        node = trace.graph.nodes[g.name]
        assert (node["kind"], node["traced"]) == ("gemm", True)
        x, w, b, y, rows = trace.operands(g.name)
        assert x.shape == (g.rows, g.K)
        assert w.shape == (g.N, g.K)
        assert y.shape == (g.rows, g.N)
        assert x.dtype == w.dtype == y.dtype == np.float32
        assert (b is not None) == g.has_bias
        if b is not None:
            assert b.shape == (g.N,)
        if g.sampled:
            assert rows is not None
            assert rows.shape == (g.rows,)
            assert np.all(np.diff(rows) > 0)
            assert 0 <= rows[0]
            assert rows[-1] < g.M
        else:
            assert rows is None
            assert g.rows == g.M
        ref = x.astype(np.float64) @ w.T.astype(np.float64)
        if b is not None:
            ref += b
        scale = np.abs(x).astype(np.float64) @ np.abs(w).T.astype(np.float64) + 1e-30
        assert np.max(np.abs(y - ref) / scale) < 1e-5, g.name


@pytest.fixture(scope="session")
def check_trace() -> Callable[[Trace], None]:
    """Return the invariants every trace must satisfy, as a function of the trace."""
    return _check_trace


@pytest.fixture(scope="session")
def trace_bytes() -> Callable[[Path], dict[str, bytes]]:
    """Return a function reading a trace directory's files."""
    return lambda path: {f: (path / f).read_bytes() for f in TRACE_FILES}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    build("synthetic", out).close()
    return out


@pytest.fixture(scope="session")
def synthetic64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic trace of 64 samples (the transform tests' small GEMMs)."""
    out = tmp_path_factory.mktemp("synthetic64")
    build("synthetic", out, size=64).close()
    return out


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    build("digits-cnn", out).close()
    return out


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Tracing MiniLM needs the trace extra; without torch this fails rather than skips, as the
    # Makefile installs it for the tests.
    import torch  # noqa: F401

    out = tmp_path_factory.mktemp("minilm")
    build("minilm", out).close()
    return out


@pytest.fixture
def synthetic_trace(synthetic_dir: Path) -> Iterator[Trace]:
    with load_trace(synthetic_dir) as t:
        yield t


@pytest.fixture
def digits_trace(digits_dir: Path) -> Iterator[Trace]:
    with load_trace(digits_dir) as t:
        yield t


@pytest.fixture
def minilm_trace(minilm_dir: Path) -> Iterator[Trace]:
    with load_trace(minilm_dir) as t:
        yield t
