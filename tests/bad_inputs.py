"""Bad command lines and how ``arithforge`` answers them (helpers of ``test_bad_inputs.py``).

Each :class:`BadInput` is a command line a user could type that must be refused with one line,
``arithforge: error: <what is wrong and how to fix it>``, and exit status 2: never a traceback,
never exit 1 (which means "did not verify / a point failed"), never silent acceptance, never a
hang. :func:`run_case` runs one in this process, as the console script would, and classifies
what happened.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BadInput", "Outcome", "run_case"]


@dataclass(frozen=True)
class BadInput:
    """A command line that must be refused with one line, ``arithforge: error: ...``, exit 2.

    ``argv`` may name ``{tmp}`` (the case's own empty folder, also the working directory) and
    ``{trace}`` (a valid synthetic trace, copied to ``{tmp}/trace`` first, for cases that corrupt
    it). ``files`` are written under ``{tmp}`` before the run, after the trace copy so they can
    replace its members: text, bytes, or a function of the folder that makes the file itself.
    ``env`` sets environment variables for the run (``None`` removes one; values may name
    ``{tmp}``), e.g. a ``PATH`` without a tool, and restores them afterwards.
    """

    id: str
    argv: tuple[str, ...]
    files: Mapping[str, str | bytes | Callable[[Path], None]] = field(default_factory=dict)
    env: Mapping[str, str | None] = field(default_factory=dict)
    #: Seconds before the case counts as a hang.
    timeout: float = 60.0


@dataclass(frozen=True)
class Outcome:
    """What a :class:`BadInput` did: ``kind`` is ``"ok"`` or what went wrong."""

    kind: str  # ok | traceback | hang | accepted | status N | not one line
    status: int | None
    stderr: str

    def explain(self, case: BadInput) -> str:
        return (f"{case.id}: {self.kind} (exit {self.status}) for arithforge "
                f"{' '.join(case.argv)}\n--- stderr ---\n{self.stderr}")


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def _set_env(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_case(case: BadInput, tmp: Path, trace: Path) -> Outcome:
    """Run ``case`` with ``tmp`` as its folder and working directory; classify the outcome.

    ``trace`` is a valid trace to copy for ``{trace}``. The outcome is appended to
    ``$ARITHFORGE_BAD_INPUT_LOG`` (JSON lines) when that is set, so the same table can be counted
    on another checkout (``PYTHONPATH=<old checkout>/src``).
    """
    from arithforge.cli import main

    if any("{trace}" in a for a in case.argv):
        shutil.copytree(trace, tmp / "trace")
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(tmp)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    argv = [a.format(tmp=tmp, trace=tmp / "trace") for a in case.argv]
    err = io.StringIO()
    status: int | None = None
    kind = ""
    cwd = Path.cwd()
    saved_env = {name: os.environ.get(name) for name in case.env}
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout)
    try:
        os.chdir(tmp)
        _set_env({name: None if value is None else value.format(tmp=tmp)
                  for name, value in case.env.items()})
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
    except _Hang:
        kind = "hang"
    except Exception:
        kind = "traceback"
        err.write(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _set_env(saved_env)
        os.chdir(cwd)
    text = err.getvalue()
    lines = text.splitlines()
    if not kind:
        if status == 0:
            kind = "accepted"
        elif status != 2:
            kind = f"status {status}"
        elif (len(lines) != 1 or not lines[0].startswith("arithforge: error: ")
              or lines[0].startswith("arithforge: error: arithforge")):
            kind = "not one line"
        else:
            kind = "ok"
    outcome = Outcome(kind, status, text)
    log = os.environ.get("ARITHFORGE_BAD_INPUT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"id": case.id, "kind": kind, "status": status}) + "\n")
    return outcome
