"""Running a sweep's tasks: their hashed configurations, and the tasks the store lacks.

The configuration of a task is what its key hashes (:func:`.tasks.task_key`): the builders here
are the one place that says what a design's accuracy, cost, accelerator objectives and
verification depend on. :func:`run_tasks` runs the tasks the store lacks through an executor
and stores what they come to. :func:`.engine.explore` and the searches (:mod:`.search`,
:mod:`.mixed`) all run their tasks through it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from ..datapaths.registry import plugin_sources
from .designs import Design
from .executors import LocalExecutor, RayExecutor, Task
from .spec import Spec
from .store import Store
from .tasks import canonical, code_version, task_key

__all__ = ["Progress", "Tally", "accel_config", "accuracy_config", "cost_config", "hdl_config",
           "run_tasks", "verify_config"]

Progress = Callable[[str, int, int], None]


def accuracy_config(spec: Spec, d: Design, workload: str) -> dict[str, Any]:
    """Hashed configuration of a design's accuracy on a workload."""
    wl = spec.workloads
    return {"workload": workload, "workload_seed": wl.seed, "model": d.model,
            "end_metric": wl.end_metric, "max_rows": wl.max_rows, "max_cols": wl.max_cols,
            "seed": 0}


def hdl_config(d: Design) -> dict[str, Any]:
    """Hashed configuration of a design's hardware."""
    assert d.hdl is not None
    return {"hdl": d.hdl[0], "params": d.hdl[1]}


def cost_config(spec: Spec, d: Design) -> dict[str, Any]:
    """Hashed configuration of a design's analytical cost."""
    return {**hdl_config(d), "macs": d.macs, "tech": spec.cost.tech,
            "node": spec.cost.node, "calibrated": spec.cost.calibrated}


def accel_config(spec: Spec, d: Design, workload: str) -> dict[str, Any]:
    """Hashed configuration of a design's accelerator objectives on a workload."""
    return {**hdl_config(d), "workload": workload, "workload_seed": spec.workloads.seed,
            "array": spec.accel.array, "dataflow": spec.accel.dataflow}


def verify_config(spec: Spec, d: Design) -> dict[str, Any]:
    """Hashed configuration of a design's verification."""
    v = spec.verify
    # A vector of a multi-MAC datapath is a whole tile or dot product of ``macs`` MACs.
    scale = max(1, d.macs)
    hw = hdl_config(d)
    # The module is named after the hardware, not the design: designs sharing hardware (an MX
    # format and its element format on the FMA) share one verification and one compiled harness.
    digest = hashlib.sha256(canonical(hw).encode()).hexdigest()[:10]
    return {**hw, "name": f"{hw['hdl']}_{digest}", "random": -(-v.random // scale),
            "corner": v.corner, "corner_n": max(64, 4096 // scale), "seed": v.seed,
            "lanes": v.lanes}


class Tally:
    """What the tasks of a run came to, stage by stage, and the reports of its progress.

    Parameters
    ----------
    progress : callable, optional
        ``progress(label, done, total)``: at the start of each stage (``done`` 0) and after each
        task the stage runs; ``total`` counts the tasks the store lacked.
    log : callable, optional
        Where status lines go.
    every : float, optional
        Seconds between two status lines ``<stage>: <done>/<total> tasks done, <n> failed,
        <h:mm:ss>`` while a stage runs, plus one when it ends; None: no status lines. For a log
        where no progress bar is drawn.

    Members
    -------
    computed, cached, failed : int
        Tasks run (failed ones included), found in the store, and failed, over every stage.
    """

    def __init__(self, progress: Progress | None = None, log: Callable[[str], None] | None = None,
                 every: float | None = None) -> None:
        if every is not None and not every > 0:
            raise ValueError(f"every must be positive, not {every!r}")
        self.computed = self.cached = self.failed = 0
        self._progress = progress
        self._log = log
        self._every = every if log is not None else None
        #: label -> [done, total, failed, start]; stages that are running.
        self._stages: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        """Pass a progress report on (a :class:`Tally` is a progress callback too)."""
        if self._progress is not None:
            self._progress(label, done, total)

    def begin(self, label: str, total: int, cached: int) -> None:
        """Start stage ``label``: ``total`` tasks to run, ``cached`` found in the store."""
        self.cached += cached
        with self._lock:
            self._stages[label] = [0, total, 0, time.monotonic()]
        self(label, 0, total)

    def step(self, label: str, failed: bool) -> None:
        """Count a task of stage ``label`` that finished (``failed``: with an error)."""
        self.computed += 1
        self.failed += failed
        with self._lock:
            stage = self._stages[label]
            stage[0] += 1
            stage[2] += failed
            done, total = stage[0], stage[1]
        self(label, done, total)

    def end(self, label: str) -> None:
        """End stage ``label``."""
        with self._lock:
            stage = self._stages.pop(label, None)
        if stage is not None and stage[1] and self._every is not None:
            self._say(label, stage)

    def _say(self, label: str, stage: list[Any]) -> None:
        done, total, failed, start = stage
        seconds = int(time.monotonic() - start)
        clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        assert self._log is not None
        self._log(f"{label}: {done}/{total} tasks done, {failed} failed, {clock}")

    def _tick(self) -> None:
        assert self._every is not None
        while not self._stop.wait(self._every):
            with self._lock:
                stages = [(label, list(stage)) for label, stage in self._stages.items()
                          if stage[1]]
            for label, stage in stages:
                self._say(label, stage)

    def __enter__(self) -> Tally:
        if self._every is not None:
            self._thread = threading.Thread(target=self._tick, name="arithforge-status",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_tasks(store: Store, executor: LocalExecutor | RayExecutor,
              tasks: Sequence[tuple[str, dict[str, Any], dict[str, Any]]],
              progress: Progress | None = None, label: str = "") -> tuple[int, int, int]:
    """Run the tasks ``(stage, config, runtime)`` the store lacks; return (computed, cached,
    failed). ``progress``: a callback, or the :class:`Tally` of the run, which counts them."""
    tally = progress if isinstance(progress, Tally) else Tally(progress)
    keyed: dict[str, Task] = {}
    plugins = plugin_sources()
    for stage, config, runtime in tasks:
        if plugins:  # workers load the plug-in datapaths' modules (task_key hashes their code)
            runtime = {**runtime, "plugins": list(plugins)}
        keyed.setdefault(task_key(stage, config), (task_key(stage, config), stage, config,
                                                   runtime))
    done = store.finished(keyed)
    todo = [t for k, t in keyed.items() if k not in done]
    computed = failed = 0
    tally.begin(label, len(todo), len(done))
    try:
        for key, result, error in executor.run(todo):
            _, stage, config, _ = keyed[key]
            store.put(key, stage, config, code_version(stage), result=result, error=error)
            computed += 1
            failed += error is not None
            tally.step(label, error is not None)
    finally:
        tally.end(label)
    return computed, len(done), failed
