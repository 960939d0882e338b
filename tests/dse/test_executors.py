"""The Ray executor gives the same results as the local process pool (same keys, same values).

Ray is part of what `make test` installs (the `ray` extra); without it this test fails, loudly.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .conftest import run_explore


def _results(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT key, stage, status, result FROM results").fetchall()
    out = {}
    for key, stage, status, result in rows:
        value = json.loads(result)
        value.pop("seconds")  # wall time is the one field that may differ
        out[key] = {"stage": stage, "status": status, "result": value}
    return out


def test_ray_matches_local(tiny_spec, tmp_path, one_ray_runtime):
    import ray  # noqa: F401  (a missing Ray is an install error here, not a skip)

    local = run_explore(tiny_spec, tmp_path / "local", "--executor", "local", "-j", "2")
    remote = run_explore(tiny_spec, tmp_path / "ray", "--executor", "ray", "-j", "2")
    assert remote["computed"] == local["computed"] > 0
    a = _results(tmp_path / "local" / "results.sqlite")
    b = _results(tmp_path / "ray" / "results.sqlite")
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key
    assert local["fronts"] == remote["fronts"]
