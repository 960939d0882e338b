"""The trace directory format: deterministic archives, shape checks, loading and its errors."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.workloads import Trace, load_trace
from arithforge.workloads.trace import (
    FORMAT_VERSION,
    gemm_node,
    mark_traced,
    sample_rows,
    save_npz,
    write_trace,
)


def small_trace(rows: int = 3) -> tuple[nx.DiGraph, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((2, 4)).astype(np.float32)
    g = nx.DiGraph()
    g.add_node("input:x", kind="input", op="input", layer="")
    g.add_node("fc", **gemm_node("linear", "fc", 3, 2, 4))
    g.add_edge("input:x", "fc")
    mark_traced(g.nodes["fc"], {"x": "fc/x", "w": "fc/w", "y": "fc/y"}, rows)
    return g, {"fc/x": x, "fc/w": w, "fc/y": x @ w.T}


def test_save_npz_is_deterministic_and_loads(tmp_path: Path) -> None:
    arrays = {"a/x": np.arange(12, dtype=np.float32).reshape(3, 4),
              "b": np.array([1, 2], dtype=np.int64),
              "fortran": np.asfortranarray(np.eye(3))}
    save_npz(tmp_path / "1.npz", arrays)
    save_npz(tmp_path / "2.npz", arrays)
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "1.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "1.npz") as npz:
        assert npz.files == ["a/x", "b", "fortran"]
        for k, a in arrays.items():
            np.testing.assert_array_equal(npz[k], a)


def test_save_npz_refuses_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^array 'o' must not hold Python objects, not "
                                        r"dtype\('O'\)$"):
        save_npz(tmp_path / "o.npz", {"o": np.array([None])})


def test_write_and_load(tmp_path: Path, check_trace: Callable[[Trace], None]) -> None:
    g, arrays = small_trace()
    write_trace(tmp_path, g, arrays, {"workload": "tiny"})
    with load_trace(tmp_path) as t:
        assert t.name == "tiny"
        assert t.meta["version"] == FORMAT_VERSION
        assert [(x.name, x.M, x.N, x.K, x.rows, x.has_bias) for x in t.gemms] == [
            ("fc", 3, 2, 4, 3, False)]
        assert list(t.graph.edges) == [("input:x", "fc")]
        assert t.gemms[0].macs == 24
        assert not t.gemms[0].sampled
        assert sorted(t.tensors) == ["fc/w", "fc/x", "fc/y"]
        check_trace(t)
        with pytest.raises(KeyError, match="has no traced GEMM 'input:x'"):
            t.gemm("input:x")


def test_write_checks_shapes(tmp_path: Path) -> None:
    g, arrays = small_trace()
    arrays["fc/y"] = arrays["fc/y"][:, :1]
    with pytest.raises(ValueError, match=r"^y of GEMM 'fc' \(M=3, N=2, K=4, rows=3\) must have "
                                         r"shape \(3, 2\), not \(3, 1\)$"):
        write_trace(tmp_path, g, arrays, {})
    assert not (tmp_path / "graph.json").exists()


def test_write_checks_sampled_rows(tmp_path: Path) -> None:
    g, arrays = small_trace(rows=2)
    arrays = {k: (a[:2] if k != "fc/w" else a) for k, a in arrays.items()}
    with pytest.raises(ValueError, match=r"^GEMM 'fc' must store all M=3 rows or name the "
                                         r"sampled rows, not rows=2$"):
        write_trace(tmp_path, g, arrays, {})


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(ArithforgeError, match="trace directory must contain graph.json, "
                                              "tensors.npz, meta.json"):
        load_trace(tmp_path)


def test_load_other_version(tmp_path: Path) -> None:
    g, arrays = small_trace()
    write_trace(tmp_path, g, arrays, {})
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ArithforgeError, match=f"trace version must be {FORMAT_VERSION}, not 99"):
        load_trace(tmp_path)


def test_sample_rows() -> None:
    assert sample_rows(10, None, 0) is None
    assert sample_rows(10, 10, 0) is None
    rows = sample_rows(439, 64, 0)
    assert rows is not None
    assert rows.shape == (64,)
    assert rows.dtype == np.int64
    assert np.all(np.diff(rows) > 0)
    assert rows[-1] < 439
    np.testing.assert_array_equal(rows, sample_rows(439, 64, 0))
    assert not np.array_equal(rows, sample_rows(439, 64, 1))


def test_gemm_node_checks() -> None:
    with pytest.raises(ValueError, match=r"^K must be a non-negative int, not -1$"):
        gemm_node("linear", "fc", 1, 1, -1)


def test_load_damaged_archive(tmp_path: Path) -> None:
    g, arrays = small_trace()
    write_trace(tmp_path, g, arrays, {"workload": "synthetic"})
    npz = tmp_path / "tensors.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(ArithforgeError, match=r"tensors\.npz' is damaged: file is not a zip file; "
                                              r"re-run `arithforge trace synthetic -o "):
        load_trace(tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.pop("fc/w"), r"tensors\.npz' has no array 'fc/w', the weight of GEMM 'fc'"),
    (lambda a: a.update({"fc/x": a["fc/x"][:, :2]}),
     r"x of GEMM 'fc' \(M=3, N=2, K=4, rows=3\) must have shape \(3, 4\), not \(3, 2\)"),
    (lambda a: a.update({"fc/w": a["fc/w"].astype(str)}),
     r"array 'fc/w' of GEMM 'fc' must hold floats, not <U"),
])
def test_load_checks_arrays_against_graph(tmp_path: Path, change: Callable[[dict], object],
                                          message: str) -> None:
    g, arrays = small_trace()
    write_trace(tmp_path, g, arrays, {})
    change(arrays)
    save_npz(tmp_path / "tensors.npz", arrays)
    with pytest.raises(ArithforgeError, match=message):
        load_trace(tmp_path)


@pytest.mark.parametrize(("doc", "message"), [
    ([1, 2, 3], r"graph\.json' must be a networkx node-link graph .*not \[1, 2, 3\]"),
    ({"nodes": [], "edges": []}, r"graph\.json' has no GEMM node"),
])
def test_load_checks_graph(tmp_path: Path, doc: object, message: str) -> None:
    g, arrays = small_trace()
    write_trace(tmp_path, g, arrays, {})
    (tmp_path / "graph.json").write_text(json.dumps(doc))
    with pytest.raises(ArithforgeError, match=message):
        load_trace(tmp_path)


def test_operands_refuse_non_finite(tmp_path: Path) -> None:
    g, arrays = small_trace()
    arrays["fc/x"][1, 2] = np.nan
    write_trace(tmp_path, g, arrays, {})
    with load_trace(tmp_path) as t, pytest.raises(
            ArithforgeError, match=r"holds non-finite values \(NaN or infinity\) in tensor "
                                   r"'fc/x', the input of GEMM 'fc' \(1 of 12\)"):
        t.operands("fc")
