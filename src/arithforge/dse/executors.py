"""Executors: run tasks on a local process pool (the default) or on Ray, results as they finish.

Both take ``(key, stage, config, runtime)`` tuples and yield ``(key, result, error)`` in completion
order; the caller stores each one at once (:class:`~.store.Store`). Workers never touch the
results file.

The local pool survives a worker killed from outside (SIGKILL, the OOM killer): the pool breaks,
the tasks that had not answered are submitted again to a new pool, and a task that breaks the
pool :data:`MAX_ATTEMPTS` times is reported as an error instead of being retried forever.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .._errors import ArithforgeError
from .tasks import run_task

__all__ = ["EXECUTORS", "MAX_ATTEMPTS", "LocalExecutor", "RayExecutor", "Task", "make_executor"]

#: ``(key, stage, config, runtime)``.
Task = tuple[str, str, dict[str, Any], dict[str, Any]]
Outcome = tuple[str, dict[str, Any] | None, str | None]

#: How many times a task may take its worker down before it counts as failed.
MAX_ATTEMPTS = 3


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _work(stage: str, config: dict[str, Any], runtime: dict[str, Any]
          ) -> tuple[dict[str, Any] | None, str | None]:
    """Run a task in a worker; errors come back as one line (the point failed, not the run)."""
    import warnings

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
        while pending:
            pool = cf.ProcessPoolExecutor(self.jobs, mp_context=context)
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
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = max(1, self.jobs or len(os.sched_getaffinity(0)))
            try:
                ray.init(**kwargs)
            except Exception as exc:
                raise ArithforgeError(f"Ray did not start ({_one_line(exc)}); check --address "
                                      "or run with --executor local") from exc
            started = True
        try:
            # max_retries: Ray resubmits a task whose worker died, as the local pool does.
            remote = ray.remote(max_retries=MAX_ATTEMPTS - 1)(_work)
            refs = {remote.remote(t[1], t[2], t[3]): t[0] for t in tasks}
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
