"""The one way this package runs Yosys and nextpnr: :func:`run`, and its error, :class:`SynthError`.

Both :func:`arithforge.tools.export.synth_ice40` (the structural check of exported Verilog) and
:mod:`arithforge.costmodel.synth` (cell counts and Fmax) run their tools through :func:`run`, so a
failure reads the same everywhere: the tool, its exit status and the first ``ERROR`` line of its
output, with the full log beside the design.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .._errors import ArithforgeError

__all__ = ["SynthError", "run", "TIMEOUT_S"]

#: Longest run of one tool, in seconds.
TIMEOUT_S = 1800


class SynthError(ArithforgeError):
    """Synthesis or place and route failed, or reported no usable statistics."""


def run(argv: Sequence[str], cwd: Path, what: str, *, timeout_s: float | None = None) -> str:
    """Run ``argv`` in ``cwd``, write its output to ``<cwd>/<program>.log``; return the output.

    Raises
    ------
    SynthError
        When it runs longer than ``timeout_s`` (default :data:`TIMEOUT_S`) or exits non-zero (the
        message names ``what``, the exit status and the first ``ERROR`` line).
    """
    limit = TIMEOUT_S if timeout_s is None else timeout_s
    # Its own process group, so that a timeout (or an interrupt of ours) stops the tool's children
    # too: Yosys runs ABC as a child process, which a kill of Yosys alone leaves running.
    proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except BaseException as exc:
        _kill_group(proc)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise SynthError(f"{what} ran longer than {limit:g} s") from exc
        raise
    log = stdout + stderr
    (cwd / f"{Path(argv[0]).name}.log").write_text(log)
    if proc.returncode != 0:
        errors = [ln.strip() for ln in log.splitlines() if "ERROR" in ln]
        raise SynthError(f"{what} failed (exit {proc.returncode}): "
                         f"{(errors or [log.strip()[-300:] or 'no output'])[0]}")
    return log


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` and every process of its group (the tool's children), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
