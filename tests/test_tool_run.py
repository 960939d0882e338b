"""`arithforge.tools.yosys.run`: a tool that runs too long is stopped with its children."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from arithforge.tools.yosys import SynthError, run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the killed shell, is gone; init reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_tools_children(tmp_path: Path) -> None:
    # The shell stands for Yosys, its background sleep for the ABC child Yosys starts.
    script = "sleep 60 & echo $! > child.pid; wait"
    with pytest.raises(SynthError, match="ran longer than 0.5 s"):
        run(["sh", "-c", script], tmp_path, "the test tool", timeout_s=0.5)
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the tool's child outlived the timeout"


def test_failure_names_the_first_error_line(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match=r"the test tool failed \(exit 3\): ERROR: no cells"):
        run(["sh", "-c", "echo 'ERROR: no cells'; exit 3"], tmp_path, "the test tool")
    assert "ERROR: no cells" in (tmp_path / "sh.log").read_text()
