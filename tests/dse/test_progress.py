"""Where stderr is not a terminal (a CI log, ``2>log``), explore says how each stage goes every
few seconds: done/total, failures, elapsed time; ``--quiet`` says nothing."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence

import pytest

from arithforge.dse.engine import STATUS_EVERY_S
from arithforge.dse.executors import Task
from arithforge.dse.run import Tally, run_tasks
from arithforge.dse.store import Store

from .conftest import explore_cmd
from .test_orphans import SYNTH

LINE = re.compile(r"explore: evaluate: (\d+)/(\d+) tasks done, (\d+) failed, "
                  r"(\d+):(\d\d):(\d\d)")

#: Three designs, cost and Yosys's synthesis: about 8 s of one worker here (bfloat16's FMA the
#: longest), time for a status line before the one at the end.
SPEC = SYNTH.replace('weights = ["float8_e4m3fn", "int8"]',
                     'weights = ["bfloat16", "float8_e4m3fn", "int8"]')


class SlowExecutor:
    """Answers a task every ``pause`` seconds; the second one fails."""

    name = "slow"

    def __init__(self, pause: float) -> None:
        self.pause = pause

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[str, dict | None, str | None]]:
        for i, (key, *_) in enumerate(tasks):
            time.sleep(self.pause)
            yield (key, None, "E: boom") if i == 1 else (key, {"i": i}, None)


def test_status_lines_while_a_stage_runs(tmp_path):
    lines: list[str] = []
    reports: list[tuple[str, int, int]] = []
    tasks = [("cost", {"i": i}, {}) for i in range(6)]
    with Store(tmp_path / "results.sqlite") as store:
        with Tally(lambda *r: reports.append(r), lines.append, every=0.1) as tally:
            assert run_tasks(store, SlowExecutor(0.15), tasks, tally, "evaluate") == (6, 0, 1)
        assert (tally.computed, tally.cached, tally.failed) == (6, 0, 1)
        assert reports == [("evaluate", done, 6) for done in range(7)]
        assert len(lines) >= 5  # 0.9 s of work, a line every 0.1 s, and one at the end
        counts = []
        for line in lines:
            m = re.fullmatch(r"evaluate: (\d)/6 tasks done, (\d) failed, 0:00:0\d", line)
            assert m, line
            counts.append((int(m[1]), int(m[2])))
        assert counts == sorted(counts)
        assert counts[-1] == (6, 1)
        # The failed task is not a result: it runs again, the others are served from the store.
        lines.clear()
        with Tally(None, lines.append, every=0.1) as again:
            assert run_tasks(store, SlowExecutor(0), tasks, again, "evaluate") == (1, 5, 0)
        assert lines == ["evaluate: 1/1 tasks done, 0 failed, 0:00:00"]


def test_no_status_lines_without_an_interval(tmp_path):
    lines: list[str] = []
    with Store(tmp_path / "results.sqlite") as store, Tally(None, lines.append) as tally:
        run_tasks(store, SlowExecutor(0.05), [("cost", {"i": 0}, {})], tally, "evaluate")
    assert lines == []
    with pytest.raises(ValueError, match=r"^every must be positive, not 0$"):
        Tally(None, lines.append, every=0)


def test_explore_with_stderr_in_a_pipe(tmp_path):
    spec = tmp_path / "synth.toml"
    spec.write_text(SPEC)
    # A fresh build folder and one worker: Yosys runs, one design after the other.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "ARITHFORGE_BUILD": str(tmp_path / "build")}
    proc = subprocess.run(explore_cmd(spec, tmp_path / "out", "-j", "1"), capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [tuple(map(int, m.groups())) for m in map(LINE.fullmatch, proc.stderr.splitlines())
             if m]
    assert lines, proc.stderr
    done, total, failed, *clock = lines[-1]
    assert (done, total, failed) == (6, 6, 0)
    assert [line[:3] for line in lines] == sorted(line[:3] for line in lines)
    # A line every STATUS_EVERY_S while the stage ran (a second of slack at its ends), and one
    # when it ended: here 2 or more; a machine that ends the stage sooner sees only the last.
    seconds = clock[0] * 3600 + clock[1] * 60 + clock[2]
    assert len(lines) >= 1 + max(0, seconds - 1) // int(STATUS_EVERY_S), proc.stderr
    quiet = subprocess.run(explore_cmd(spec, tmp_path / "out", "-j", "1", "--quiet"),
                           capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
