"""No process outlives `arithforge explore`: SIGKILL of the run (the parent only, not its group)
leaves no descendant alive, whatever the executor; the workers' own children (Yosys, ABC) and
multiprocessing's forkserver and resource tracker, or a local Ray runtime's daemons, included.

Linux only, as the mechanism (procfs, pidfd): the descendants are read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import explore_cmd

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs procfs")

#: Seconds the descendants of a killed run may take to end.
GRACE_S = 10

#: Two designs, only the analytical cost and Yosys's CMOS synthesis (seconds per design): the
#: synthesis runs in a fresh build folder, so Yosys and ABC are there to be killed.
SYNTH = """\
name = "synth"
[formats]
weights = ["float8_e4m3fn", "int8"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["fma", "imac"]
[workloads]
names = ["synthetic"]
max_rows = 8
[stages]
accuracy = false
accel = false
synth = "cmos"
verify = "none"
"""

Seen = dict[tuple[int, int], str]  # (pid, start time) -> command line


def _stat(pid: int) -> list[str] | None:
    """Fields 3 and on of /proc/pid/stat, None for a process gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def _descendants(root: int) -> Seen:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: Seen = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            fields = _stat(pid)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if fields is not None:
                found[(pid, int(fields[19]))] = cmdline.decode(errors="replace")
                todo.append(pid)
    return found


def _alive(seen: Seen) -> Seen:
    return {(pid, start): cmd for (pid, start), cmd in seen.items()
            if (fields := _stat(pid)) is not None and int(fields[19]) == start}


def _kill_parent_when(cmd: list[str], env: dict[str, str], ready: Callable[[Seen], bool],
                      log: Path, timeout: float = 180) -> tuple[Seen, Seen]:
    """Start ``cmd`` in its own session, record its descendants until ``ready(seen)``, SIGKILL
    it (it alone); return what was seen and what is still alive :data:`GRACE_S` later."""
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
    seen: Seen = {}
    try:
        end = time.monotonic() + timeout
        while not ready(seen):
            assert proc.poll() is None, (f"ended (status {proc.returncode}) before it was "
                                         f"ready: {log.read_text()[-2000:]}")
            assert time.monotonic() < end, f"not ready in {timeout} s: {sorted(seen.values())}"
            seen.update(_descendants(proc.pid))
            time.sleep(0.05)
        seen.update(_descendants(proc.pid))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    end = time.monotonic() + GRACE_S
    while (alive := _alive(seen)) and time.monotonic() < end:
        time.sleep(0.1)
    for pid, _ in alive:  # no leak from a failing test
        os.kill(pid, signal.SIGKILL)
    return seen, alive


def _synthesizing(seen: Seen) -> bool:
    """Whether Yosys was seen synthesizing (not asked its version), and a second has passed."""
    if not any(Path(c.split(" ", 1)[0]).name == "yosys" and " synth " in c
               for c in seen.values()):
        return False
    time.sleep(1)  # long enough for ABC to start under it, not for the run to end
    return True


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_sigkill_of_explore_leaves_no_process(executor, tmp_path, request):
    if executor == "ray":
        import ray  # noqa: F401  (a missing Ray is an install error here, not a skip)
        request.getfixturevalue("one_ray_runtime")
    spec = tmp_path / "synth.toml"
    spec.write_text(SYNTH)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "ARITHFORGE_BUILD": str(tmp_path / "build")}
    seen, alive = _kill_parent_when(
        explore_cmd(spec, tmp_path / "out", "--quiet", "-j", "2", "--executor", executor),
        env, _synthesizing, tmp_path / "stderr")
    commands = " ".join(seen.values())
    # What was there to kill (the test would prove nothing without it).
    for name in (["forkserver", "resource_tracker"] if executor == "local"
                 else ["raylet", "default_worker", "dashboard/agent.py"]):
        assert name in commands
    assert not alive, f"alive {GRACE_S} s after the run was killed: {alive}"


#: A process that starts a pool-like worker holding a lifeline to it, then a grandchild of its
#: own: a shell and two sleeps, one of them in the background.
LIFELINE = """\
import subprocess, sys, time
worker = '''
import subprocess, sys, time
from arithforge.dse.executors import _hold
_hold((int(sys.argv[1]), int(sys.argv[2])))
subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"])
time.sleep(300)
'''
from arithforge.dse.executors import lifeline
subprocess.Popen([sys.executable, "-c", worker, *map(str, lifeline())])
time.sleep(300)
"""

#: A process that starts a reaper, then a child that would outlive it (a plain subprocess).
REAPER = """\
import subprocess, time
from arithforge.dse.executors import _Reaper
reaper = _Reaper()  # held: its end is the stop signal
subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"])
time.sleep(300)
"""


@pytest.mark.parametrize("program", [LIFELINE, REAPER], ids=["lifeline", "reaper"])
def test_guard_kills_the_tree_below(program, tmp_path):
    cmd = [sys.executable, "-c", textwrap.dedent(program)]

    def ready(seen: Seen) -> bool:
        if sum(Path(c.split(" ", 1)[0]).name == "sleep" for c in seen.values()) < 2:
            return False
        time.sleep(0.5)  # the reaper's look at them
        return True

    seen, alive = _kill_parent_when(cmd, {**os.environ, "PYTHONWARNINGS": "ignore"}, ready,
                                    tmp_path / "stderr", timeout=60)
    assert not alive, f"alive {GRACE_S} s after the parent was killed: {alive}"
