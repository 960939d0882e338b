"""Shared pieces of the dse tests: a tiny sweep spec and a runner of `arithforge explore`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arithforge.tools.build import locked

#: Four formats, three datapaths, the synthetic workload on 8 rows: 12 tasks of about a second.
TINY = """\
name = "tiny"
[formats]
weights = ["float8_e4m3fn", "float4_e2m1fn", "int8", "int4"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["fma", "lmac", "imac"]
[workloads]
names = ["synthetic"]
max_rows = 8
[stages]
verify = "none"
"""


@pytest.fixture
def one_ray_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Wait until no other test of this pytest run has a local Ray runtime up, then hold the
    turn: pytest-xdist workers (``make test``) each start one otherwise, and two runtimes on a
    2-core machine slow each other down past the timing the SIGKILL tests allow."""
    # The parent of the base folder: one for the whole run, whatever the worker.
    with locked(tmp_path_factory.getbasetemp().parent / "arithforge-ray.lock"):
        yield


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def explore_cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "arithforge", "explore", "--spec", str(spec), "-o", str(out),
            *extra]


def run_explore(spec: Path, out: Path, *extra: str, timeout: float = 600, status: int = 0,
                env: dict[str, str] | None = None) -> dict:
    """Run `arithforge explore --json`; return its JSON (fails the test unless it exits with
    ``status``). ``env``: variables to set on top of this process's environment."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run(explore_cmd(spec, out, "--json", *extra), capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == status, proc.stderr[-3000:]
    return json.loads(proc.stdout)
