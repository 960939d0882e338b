"""A failed task fails the run (exit status 1, counted in the summary), is kept for the report but
never served as a result, and runs again next time, until it succeeds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from arithforge.dse.store import Store

from .conftest import explore_cmd, run_explore

#: One design, Yosys's CMOS synthesis on: without Yosys on PATH its synth task fails.
SYNTH = """\
name = "synth"
[formats]
weights = ["int8"]
accumulators = ["int32"]
[datapaths]
enabled = ["imac"]
[workloads]
names = ["synthetic"]
max_rows = 8
[stages]
synth = "cmos"
verify = "none"
"""


def _synth_rows(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT status, error FROM results WHERE stage = 'synth'").fetchall()


def test_a_failed_task_fails_the_run_and_runs_again(tmp_path):
    spec = tmp_path / "synth.toml"
    spec.write_text(SYNTH)
    out = tmp_path / "out"
    db = out / "results.sqlite"
    (tmp_path / "empty").mkdir()
    # An empty PATH: no Yosys (the interpreter is named by its full path).
    no_yosys = {**os.environ, "PYTHONWARNINGS": "ignore", "PATH": str(tmp_path / "empty")}
    first = subprocess.run(explore_cmd(spec, out, "-j", "1"), capture_output=True, text=True,
                           env=no_yosys, timeout=600)
    assert first.returncode == 1, first.stderr[-3000:]
    assert " 1 failed, in " in first.stdout
    assert first.stderr.splitlines()[-1] == (f"explore: 1 tasks failed ({out}/report.md says "
                                             "why); the next run tries them again")
    [(status, error)] = _synth_rows(db)
    assert status == "error"
    assert "yosys" in error
    assert "yosys" in (out / "report.md").read_text()  # the report still says why

    again = run_explore(spec, out, "-j", "1", status=1, env={"PATH": str(tmp_path / "empty")})
    assert (again["computed"], again["failed"]) == (1, 1)  # tried again, not served from the store
    stored = again["cached"]
    assert stored > 0
    assert len(_synth_rows(db)) == 1                         # replaced, not added

    fixed = run_explore(spec, out, "-j", "1")  # Yosys back on PATH
    assert (fixed["computed"], fixed["cached"], fixed["failed"]) == (1, stored, 0)
    assert [s for s, _ in _synth_rows(db)] == ["ok"]
    assert all(p["status"] == "ok" for p in fixed["points"])
    assert run_explore(spec, out, "-j", "1")["computed"] == 0


def test_a_result_is_never_replaced(tmp_path):
    with Store(tmp_path / "results.sqlite") as store:
        assert store.put("k", "cost", {}, "v", error="E: first")
        assert store.finished(["k"]) == set()
        assert store.put("k", "cost", {}, "v", error="E: second")
        assert store.get("k")["error"] == "E: second"
        assert store.put("k", "cost", {}, "v", result={"x": 1})
        assert store.finished(["k"]) == {"k"}
        assert not store.put("k", "cost", {}, "v", error="E: third")
        assert not store.put("k", "cost", {}, "v", result={"x": 2})
        row = store.get("k")
        assert (row["status"], row["result"], row["error"]) == ("ok", {"x": 1}, None)
