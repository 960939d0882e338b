"""Interrupted sweeps: SIGKILL of the whole run or of a worker loses no finished task, stores
none twice, and the next run resumes with exactly what is missing; the runs table says which
runs finished and which were interrupted."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from arithforge.dse.engine import _start_run
from arithforge.dse.executors import process_start
from arithforge.dse.store import Store

from .conftest import explore_cmd, run_explore


def _keys(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as con:
        return [k for (k,) in con.execute("SELECT key FROM results")]


def _runs(db: Path) -> list[tuple[int, str, bool]]:
    """``(id, status, whether it has a finish time)`` of every run."""
    with sqlite3.connect(db, timeout=30) as con:
        return [(i, status, bool(finished)) for i, status, finished in
                con.execute("SELECT id, status, finished IS NOT NULL FROM runs ORDER BY id")]


def _wait_rows(proc: subprocess.Popen, db: Path, rows: int, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"explore ended (status {proc.returncode}) before {rows} rows")
        try:
            if len(_keys(db)) >= rows:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {rows} rows within {timeout} s")


def test_sigkill_of_the_run_resumes_without_loss_or_duplicates(tiny_spec, tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    proc = subprocess.Popen(explore_cmd(tiny_spec, out, "--quiet", "-j", "1"),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_rows(proc, db, 3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _keys(db)
    assert len(before) >= 3
    summary = run_explore(tiny_spec, out)
    after = _keys(db)
    assert len(after) == len(set(after))             # no duplicates
    assert set(before) <= set(after)                 # nothing finished was lost
    assert summary["cached"] == len(before)          # ...and none of it was recomputed
    assert summary["computed"] == len(after) - len(before)
    assert summary["failed"] == 0
    assert all(p["status"] == "ok" for p in summary["points"])
    again = run_explore(tiny_spec, out)
    assert again["computed"] == 0
    assert again["cached"] == len(after)


def _workers(pid: int) -> list[int]:
    """Descendants of ``pid`` that run tasks (the pool's workers, under the forkserver)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            p, pp = map(int, line.split())
            children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    # The forkserver is the first child; workers are its children.
    forkservers = children.get(pid, [])
    return [p for p in found if p not in forkservers]


def test_sigkill_of_a_worker_is_retried(tiny_spec, tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    proc = subprocess.Popen(explore_cmd(tiny_spec, out, "--json", "-j", "2"),
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_rows(proc, db, 1)
        workers = _workers(proc.pid)
        assert workers, "no worker process found"
        os.kill(workers[-1], signal.SIGKILL)
        stdout, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(stdout)["worker_restarts"] == 1  # the pool broke and was replaced
    keys = _keys(db)
    assert len(keys) == len(set(keys))
    with sqlite3.connect(db) as con:
        errors = con.execute("SELECT COUNT(*) FROM results WHERE status != 'ok'").fetchone()[0]
    assert errors == 0
    assert run_explore(tiny_spec, out)["computed"] == 0


def test_ctrl_c_stops_with_one_line_and_resumes(tiny_spec, tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    # A shell's background job inherits SIGINT ignored; restore Python's default handling.
    proc = subprocess.Popen(explore_cmd(tiny_spec, out, "-j", "1"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_rows(proc, db, 2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == (f"explore: interrupted; every finished task is in {out}/"
                                    "results.sqlite: run the same command again to resume")
    assert _runs(db) == [(1, "interrupted", False)]  # said by the run itself
    before = _keys(db)
    summary = run_explore(tiny_spec, out)
    assert summary["cached"] == len(before)
    assert len(_keys(db)) == len(set(_keys(db))) == summary["cached"] + summary["computed"]


def test_a_killed_run_is_recorded_as_interrupted(tiny_spec, tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(explore_cmd(tiny_spec, out, "--quiet", "-j", "1"),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_rows(proc, db, 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _runs(db) == [(1, "running", False)]  # it had no time to say
    stored = len(_keys(db))
    second = subprocess.run(explore_cmd(tiny_spec, out, "-j", "1"), capture_output=True,
                            text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (f"explore: resuming after interrupted run 1: {stored} tasks already stored"
            in second.stderr.splitlines())
    assert _runs(db) == [(1, "interrupted", False), (2, "finished", True)]
    third = subprocess.run(explore_cmd(tiny_spec, out, "-j", "1"), capture_output=True,
                           text=True, env=env, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resuming" not in third.stderr  # run 2 finished: nothing to resume after
    assert _runs(db)[-1] == (3, "finished", True)


def test_only_a_run_whose_process_is_gone_is_interrupted(tmp_path):
    host = socket.gethostname()
    gone = subprocess.Popen(["sleep", "60"])
    gone_start = process_start(gone.pid)
    gone.kill()
    gone.wait()
    said: list[str] = []
    with Store(tmp_path / "results.sqlite") as store:
        store.start_run("", "local", host=host, pid=os.getpid(),
                        pid_start=process_start(os.getpid()))         # 1: alive, this process
        store.start_run("", "local", host="elsewhere", pid=1, pid_start=0)  # 2: cannot tell
        store.start_run("", "local", host=host, pid=gone.pid, pid_start=gone_start)  # 3: gone
        store.put("k", "cost", {}, "v", result={"x": 1})                # stored by run 3
        store.put("e", "cost", {}, "v", error="E: failed")              # not a result
        assert _start_run(store, SimpleNamespace(text=""), "local", said.append) == 4
    assert said == ["resuming after interrupted run 3: 1 tasks already stored"]
    assert _runs(tmp_path / "results.sqlite") == [
        (1, "running", False), (2, "running", False), (3, "interrupted", False),
        (4, "running", False)]
