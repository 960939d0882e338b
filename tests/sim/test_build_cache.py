"""The build folder under concurrent processes (pytest-xdist workers, two ``explore`` runs): one
compile per build, and :func:`arithforge.tools.build.locked` excludes other processes."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arithforge.tools.build import VerilatorBuild, locked

pytestmark = pytest.mark.cosim  # VerilatorBuild looks Verilator up (its version keys the cache)


def test_concurrent_builds_of_one_model_compile_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARITHFORGE_BUILD", str(tmp_path))
    compiled: list[str] = []

    def compile_slowly(self: VerilatorBuild) -> Path:
        compiled.append(self.hash)
        time.sleep(0.3)  # long enough for the other caller to arrive while this one compiles
        self.binary.parent.mkdir(parents=True)
        self.binary.write_text("")
        self.cached = False
        return self.binary

    monkeypatch.setattr(VerilatorBuild, "_build", compile_slowly)
    builds = [VerilatorBuild("harness", "top", {"top.v": "module top; endmodule\n"}, ["--cc"],
                             [], {"v": 0}, what="the test model") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:  # flock excludes open files, so threads too
        binaries = list(pool.map(VerilatorBuild.build, builds))
    assert compiled == [builds[0].hash]
    assert binaries[0] == binaries[1] == builds[0].binary
    assert sorted(b.cached for b in builds) == [False, True]


#: Takes the lock at argv[1] and prints when it asked for it and when it got it.
TAKER = """\
import sys, time
from pathlib import Path
from arithforge.tools.build import locked
print("asking", flush=True)
with locked(Path(sys.argv[1])):
    print(time.time(), flush=True)
"""


def test_lock_excludes_another_process(tmp_path) -> None:
    path = tmp_path / "x.lock"
    with locked(path):
        proc = subprocess.Popen([sys.executable, "-c", TAKER, str(path)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "asking\n"
        time.sleep(0.3)  # it asks while this process holds the lock
        released = time.time()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert float(out) >= released  # it got the lock only once this process let go
