"""Executors: run tasks on a local process pool (the default) or on Ray, results as they finish.

Both take ``(key, stage, config, runtime)`` tuples and yield ``(key, result, error)`` in completion
order; the caller stores each one at once (:class:`~.store.Store`). Workers never touch the
results file.

The local pool survives a worker killed from outside (SIGKILL, the OOM killer): the pool breaks,
the tasks that had not answered are submitted again to a new pool, and a task that breaks the
pool :data:`MAX_ATTEMPTS` times is reported as an error instead of being retried forever.

No process outlives the coordinating process, however that one ends (SIGKILL included). Each
worker holds a :func:`lifeline` to it: a thread that waits on a pidfd of the coordinator and, when
it ends, kills the worker's own descendants (Yosys, ABC, Verilator, make, the compiler) and then
the worker. A parent death signal would not do: a worker's parent is the forkserver (or Ray's
raylet), not the coordinator, and the signal would kill the worker without its children.
multiprocessing's forkserver and resource tracker need no guard: they exit at the end of file of a
pipe whose write ends only the coordinator and the workers hold. A local Ray runtime's daemons
share the fate of the driver (Ray sets ``PR_SET_PDEATHSIG``), except its dashboard and runtime-env
agents, which spend up to a minute reporting the raylet's death to a dead GCS: a reaper process
(:class:`_Reaper`) kills them. Linux only (procfs); elsewhere nothing is guarded.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NoReturn

from .._errors import ArithforgeError
from .tasks import run_task

__all__ = ["EXECUTORS", "MAX_ATTEMPTS", "Lifeline", "LocalExecutor", "RayExecutor", "Task",
           "lifeline", "make_executor", "process_start"]

#: ``(key, stage, config, runtime)``.
Task = tuple[str, str, dict[str, Any], dict[str, Any]]
Outcome = tuple[str, dict[str, Any] | None, str | None]

#: How many times a task may take its worker down before it counts as failed.
MAX_ATTEMPTS = 3

#: ``(pid, start time)`` of the process a worker must not outlive (:func:`lifeline`).
Lifeline = tuple[int, int]

#: Seconds between two looks at the coordinator where the kernel has no pidfd (Linux < 5.3).
_POLL_S = 0.5


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks after boot, or None if it is gone (or a
    zombie, or there is no procfs). With the pid, it names one process: a pid is reused, the
    pair is not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):  # ended, not yet reaped by its parent
        return None
    return int(fields[19])  # field 22 of proc_pid_stat(5)


def lifeline() -> Lifeline | None:
    """This process as the one workers must not outlive; None where there is no procfs."""
    start = process_start(os.getpid())
    return None if start is None else (os.getpid(), start)


#: The lifeline this process already watches, so that a Ray worker running many tasks starts
#: one watcher, not one per task.
_watched: Lifeline | None = None
_watched_lock = threading.Lock()


def _hold(line: Lifeline | None) -> None:
    """End this process and its descendants when the process ``line`` names ends (a pool
    initializer, and the first thing a Ray task does)."""
    global _watched
    if line is None or line[0] == os.getpid():
        return
    with _watched_lock:
        if _watched == line:
            return
        _watched = line
    # A daemon thread: it runs while the worker computes, blocked in a system call or in a
    # subprocess; only C code that keeps the GIL for long delays it.
    threading.Thread(target=_watch, args=(line,), name="arithforge-lifeline", daemon=True).start()


def _watch(line: Lifeline) -> None:
    pid, start = line
    try:
        fd: int | None = os.pidfd_open(pid)
    except OSError:  # already gone, or no pidfd in this kernel: poll below
        fd = None
    try:
        # Checked after opening the pidfd: a coordinator gone before, whose pid was reused, is
        # told apart by its start time.
        if process_start(pid) == start:
            if fd is not None:
                select.select([fd], [], [])  # readable once the process has ended
            else:
                while process_start(pid) == start:
                    time.sleep(_POLL_S)
    finally:
        if fd is not None:
            os.close(fd)
    _end_tree()


def _tree(roots: Iterable[int]) -> set[int]:
    """Processes below ``roots`` (not ``roots`` themselves), from procfs."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        kids = [k for k in children.get(todo.pop(), []) if k not in found]
        found.update(kids)
        todo += kids
    return found


def _kill(roots: Iterable[int]) -> None:
    """Kill ``roots`` and every process below them."""
    # Stop them all before killing any: a stopped process cannot fork, and the children of a
    # killed one move to another parent, out of reach of a walk from here.
    stopped: set[int] = set()
    new = set(roots)
    for _ in range(100):  # bounded: a fork bomb must not keep this going
        for p in new:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGSTOP)
        stopped |= new
        new = _tree(stopped) - stopped
        if not new:
            break
    for p in stopped:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


def _end_tree() -> NoReturn:
    """Kill every descendant of this process, then this process."""
    _kill(_tree([os.getpid()]))
    os._exit(1)


#: Seconds between two looks of the reaper at the coordinator's process tree.
_REAP_EVERY_S = 0.25


class _Reaper:
    """A process that kills what it saw appear below this one (it looks every
    :data:`_REAP_EVERY_S`), if this one dies before :meth:`stop`, wherever they moved since.

    For a local Ray runtime: its daemons share the fate of the driver, except the dashboard and
    runtime-env agents, which spend up to a minute reporting the raylet's death to a dead GCS.
    Where there is no procfs it does nothing.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        line = lifeline()
        if line is None:
            return
        # The parent's import path, so that the reaper imports this very module.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        main = "import sys; from arithforge.dse.executors import _reap; _reap(*sys.argv[1:])"
        self._proc = subprocess.Popen([sys.executable, "-c", main, str(line[0]), str(line[1])],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._proc.stdout is not None
        # Its look at what runs already: only what starts after it is reaped.
        if self._proc.stdout.readline() != b"ready\n":
            self._proc.wait()
            raise RuntimeError(f"the reaper process did not start (status "
                               f"{self._proc.returncode})")
        self._proc.stdout.close()

    def stop(self) -> None:
        """End the reaper; it kills nothing."""
        if self._proc is not None and self._proc.stdin is not None:
            # Said, not just a closed pipe: the pipe closes too when this process is killed.
            self._proc.stdin.write(b"stop\n")
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None


def _reap(pid_text: str, start_text: str) -> None:
    """Main of the :class:`_Reaper` of the process ``(pid, start)``."""
    pid, start = int(pid_text), int(start_text)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    known = _tree([pid]) | {os.getpid()}
    seen: dict[int, int] = {}
    os.write(1, b"ready\n")
    os.close(1)
    listening = True
    while process_start(pid) == start:
        for p in _tree([pid]) - known:
            s = process_start(p)
            if s is not None:
                seen[p] = s
        known |= seen.keys()
        if not listening:
            time.sleep(_REAP_EVERY_S)
        elif select.select([0], [], [], _REAP_EVERY_S)[0]:
            if os.read(0, 64):
                return  # stopped
            # End of file without a word: the coordinator is dying (its pipes close before it
            # is seen gone), or dropped the reaper; either way, reap once it is gone.
            listening = False
    # A process is named by its pid and start time: a pid reused since is someone else's.
    _kill(p for p, s in seen.items() if process_start(p) == s)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _work(stage: str, config: dict[str, Any], runtime: dict[str, Any],
          line: Lifeline | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Run a task in a worker; errors come back as one line (the point failed, not the run).
    ``line``: the process this worker must not outlive (Ray workers; pool workers get theirs
    from their initializer)."""
    import warnings

    _hold(line)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_task(stage, config, runtime), None
    except Exception as exc:
        return None, _one_line(exc)


class LocalExecutor:
    """A process pool of ``jobs`` workers (default: the CPUs this process may use)."""

    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs or len(os.sched_getaffinity(0)))
        #: Pools replaced after a worker died.
        self.restarts = 0

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        """Run ``tasks``; yield each outcome as it finishes."""
        pending = {t[0]: t for t in tasks}
        attempts = dict.fromkeys(pending, 0)
        # forkserver: workers start from a clean interpreter (no threads of the parent).
        context = multiprocessing.get_context("forkserver")
        line = lifeline()
        while pending:
            pool = cf.ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_hold,
                                          initargs=(line,))
            broken = False
            try:
                futures = {pool.submit(_work, t[1], t[2], t[3]): key
                           for key, t in pending.items()}
                for fut in cf.as_completed(futures):
                    key = futures[fut]
                    try:
                        result, error = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    pending.pop(key, None)
                    yield key, result, error
            finally:
                # Not waiting: after Ctrl-C the workers have their own SIGINT to die of.
                pool.shutdown(wait=False, cancel_futures=True)
            if broken:
                self.restarts += 1
                for key in list(pending):
                    attempts[key] += 1
                    if attempts[key] >= MAX_ATTEMPTS:
                        pending.pop(key)
                        yield key, None, (f"worker died {MAX_ATTEMPTS} times running this task "
                                          "(killed, or out of memory)")


class RayExecutor:
    """Ray tasks on a cluster at ``address`` or, without one, a local Ray runtime of ``jobs``
    CPUs."""

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError as exc:
            raise ArithforgeError("--executor ray needs Ray: pip install 'arithforge[ray]'"
                                  ) from exc
        self._ray = ray
        self.jobs = jobs
        self.address = address
        self.restarts = 0  # Ray retries dead workers' tasks itself

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        """Run ``tasks`` as Ray tasks; yield each outcome as it finishes."""
        ray = self._ray
        started = False
        reaper = None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = max(1, self.jobs or len(os.sched_getaffinity(0)))
                reaper = _Reaper()
            try:
                ray.init(**kwargs)
            except Exception as exc:
                if reaper is not None:
                    reaper.stop()
                raise ArithforgeError(f"Ray did not start ({_one_line(exc)}); check --address "
                                      "or run with --executor local") from exc
            started = True
        # A lifeline only where this call started Ray on this machine: a cluster's workers may
        # run elsewhere, where this pid means nothing (Ray ends a dead driver's tasks there).
        local = started and not self.address and not os.environ.get("RAY_ADDRESS")
        line = lifeline() if local else None
        try:
            # max_retries: Ray resubmits a task whose worker died, as the local pool does.
            remote = ray.remote(max_retries=MAX_ATTEMPTS - 1)(_work)
            refs = {remote.remote(t[1], t[2], t[3], line): t[0] for t in tasks}
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    try:
                        result, error = ray.get(ref)
                    except Exception as exc:
                        result, error = None, _one_line(exc)
                    yield refs[ref], result, error
        finally:
            if started:
                ray.shutdown()
            if reaper is not None:
                reaper.stop()


EXECUTORS = ("local", "ray")


def make_executor(name: str, jobs: int | None = None, address: str | None = None
                  ) -> LocalExecutor | RayExecutor:
    """Build the executor called ``name``."""
    if name == "local":
        if address is not None:
            raise ArithforgeError("--address applies to --executor ray only")
        return LocalExecutor(jobs)
    if name == "ray":
        return RayExecutor(jobs, address)
    raise ArithforgeError(f"executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
