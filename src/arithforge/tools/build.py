"""Build outputs: the folder they go to (:func:`build_dir`) and the one cached Verilator build
(:class:`VerilatorBuild`) behind the batch harness and the array model of :mod:`arithforge.sim`.

A build is keyed by a hash of everything that goes into it (its sources, Verilator's version and
flags, a format version of the caller) and lives in ``<build>/<kind>/<hash>/``; a second build of
the same inputs returns the cached binary at once. Verilator's runtime objects, the same for every
design built with the same flags and most of a small design's compile time, are compiled once
per flags in ``<build>/<kind>/runtime-<hash>/`` and copied into later builds.

Processes share the build folder (two pytest workers, two ``explore`` runs): a build is written
to a private folder and renamed into place, and :func:`locked` makes a second process wanting the
same build wait for the first and take its result instead of compiling it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError
from . import toolchain

__all__ = ["BuiltModel", "VerilatorBuild", "build_dir", "locked"]

#: Verilator's runtime objects reused across builds (see the module docstring).
RUNTIME_OBJECTS = ("verilated", "verilated_threads", "verilated_vcd_c")


def build_dir() -> Path:
    """Return the folder of compiled harnesses and other build outputs.

    ``$ARITHFORGE_BUILD`` if set; else ``build/`` of the source checkout this package runs from
    (an editable install); else ``~/.cache/arithforge``.
    """
    env = os.environ.get("ARITHFORGE_BUILD")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "arithforge").is_dir():
        return root / "build"
    return Path.home() / ".cache" / "arithforge"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, with its folder, if missing).

    A ``flock`` on an open file: the kernel releases it when the holder exits, killed or not, so
    a crashed build never leaves a stale lock behind. Callers check for the finished output again
    once they hold the lock, since another process may have built it while they waited.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reuse_runtime(obj_dir: Path, runtime: Path) -> None:
    """Copy cached runtime objects into ``obj_dir``, newer than their sources so make keeps them."""
    if not runtime.is_dir():
        return
    stamp = time.time()
    for path in runtime.iterdir():
        if path.suffix in (".o", ".d"):
            target = obj_dir / path.name
            shutil.copyfile(path, target)
            os.utime(target, (stamp, stamp))


def _save_runtime(obj_dir: Path, runtime: Path) -> None:
    if runtime.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{runtime.name}-", dir=runtime.parent))
    for stem in RUNTIME_OBJECTS:
        for suffix in (".o", ".d"):
            if (obj_dir / f"{stem}{suffix}").is_file():
                shutil.copyfile(obj_dir / f"{stem}{suffix}", tmp / f"{stem}{suffix}")
    try:
        tmp.rename(runtime)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


class VerilatorBuild:
    """One Verilator model (``--cc --exe``: Verilog plus a C++ driver), built once and cached.

    Parameters
    ----------
    kind : str
        Folder under :func:`build_dir` (``"harness"``, ``"accel"``).
    top : str
        Top module; the binary is ``obj_dir/V<top>``.
    sources : mapping of str to str
        File name to text, written into the build folder and given to Verilator in this order.
    flags : sequence of str
        Verilator's flags.
    make_vars : sequence of str
        Variables for the ``make`` of the generated makefile.
    key : mapping of str to Any
        What the cache key holds besides Verilator's version and ``flags``: a format version
        (``"v"``) and the sources, under the names the caller chose.
    what : str
        The model in error messages (``"the harness"``).
    meta : callable, optional
        Returns JSON-ready data written to ``meta.json`` beside a fresh build.
    """

    def __init__(self, kind: str, top: str, sources: Mapping[str, str], flags: Sequence[str],
                 make_vars: Sequence[str], key: Mapping[str, Any], *, what: str,
                 meta: Callable[[], Mapping[str, Any]] | None = None) -> None:
        tool = toolchain.verilator()
        self.top = top
        self.sources = dict(sources)
        self.flags = list(flags)
        self.make_vars = list(make_vars)
        self.what = what
        self._meta = meta
        full_key = json.dumps({**key, "verilator": tool.version, "flags": self.flags},
                              sort_keys=True)
        self.hash = hashlib.sha256(full_key.encode()).hexdigest()[:16]
        runtime_key = json.dumps({"verilator": tool.version, "root": str(tool.root),
                                  "flags": self.flags, "make": self.make_vars})
        base = build_dir() / kind
        self.runtime = base / f"runtime-{hashlib.sha256(runtime_key.encode()).hexdigest()[:12]}"
        self.dir = base / self.hash
        self.binary = self.dir / "obj_dir" / f"V{top}"
        self.compile_s = 0.0
        self.cached = True

    def _make(self, obj_dir: Path, tool: toolchain.Verilator) -> subprocess.CompletedProcess[str]:
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        return subprocess.run(["make", "-C", str(obj_dir), "-f", f"V{self.top}.mk", "-j", jobs,
                               *self.make_vars], capture_output=True, text=True, env=tool.env(),
                              timeout=3600)

    def build(self) -> Path:
        """Compile unless a cached binary exists; return the binary's path.

        Raises
        ------
        ArithforgeError
            When Verilator or the C++ build fails; the build folder is kept as
            ``<kind>/failed-<hash>/`` with its ``build.log``.
        """
        if self.binary.is_file():
            return self.binary
        # One compile per build however many processes ask at once: the others wait here.
        with locked(self.dir.parent / f".{self.hash}.lock"):
            if self.binary.is_file():
                return self.binary
            return self._build()

    def _build(self) -> Path:
        tool = toolchain.verilator()
        self.cached = False
        start = time.perf_counter()
        # Build in a private folder and rename it into place: concurrent runs never see half a
        # build, and the loser of a race throws its copy away.
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.hash}-", dir=self.dir.parent))
        tmp.chmod(0o755)
        try:
            for name, text in self.sources.items():
                (tmp / name).write_text(text)
            argv = [str(tool.path), *self.flags, "-Mdir", "obj_dir", *self.sources]
            proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True,
                                  env=tool.env(), timeout=3600)
            obj = tmp / "obj_dir"
            if proc.returncode == 0:
                _reuse_runtime(obj, self.runtime)
                proc = self._make(obj, tool)
            if proc.returncode != 0 or not (obj / f"V{self.top}").is_file():
                log = tmp / "build.log"
                log.write_text(proc.stdout + proc.stderr)
                errors = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                          if "error" in ln.lower()]
                keep = self.dir.parent / f"failed-{self.hash}"
                shutil.rmtree(keep, ignore_errors=True)
                tmp.rename(keep)
                raise ArithforgeError(
                    f"Verilator build of {self.what} failed: {(errors or ['see log'])[0]} "
                    f"(log: {keep / 'build.log'})"
                )
            _save_runtime(obj, self.runtime)
            if self._meta is not None:
                (tmp / "meta.json").write_text(json.dumps(self._meta(), indent=1, default=str)
                                               + "\n")
            try:
                tmp.rename(self.dir)
            except OSError:
                if not self.binary.is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.compile_s = time.perf_counter() - start
        return self.binary


class BuiltModel:
    """A simulator model compiled through one :class:`VerilatorBuild` (the batch harness, the
    array model): its cache facts (``hash``, ``runtime``, ``dir``, ``binary``) and :meth:`build`,
    which records ``compile_s`` and whether the binary was ``cached``."""

    _build: VerilatorBuild

    def _use(self, build: VerilatorBuild) -> None:
        self._build = build
        self.hash = build.hash
        self.runtime = build.runtime
        self.dir = build.dir
        self.binary = build.binary
        self.compile_s = 0.0
        self.cached = True

    def build(self) -> Path:
        """Compile unless a cached binary exists; return the binary's path."""
        binary = self._build.build()
        self.compile_s, self.cached = self._build.compile_s, self._build.cached
        return binary
