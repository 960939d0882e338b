"""Run the probes of :mod:`.mma_probe` through cuBLAS on a CUDA GPU (PyTorch; imported only then).

Every probe and random 16 x 16 x K product is tiled to the call shape ``M x N`` (A's 16 rows
repeated ``M / 16`` times, B's 16 columns ``N / 16`` times), so cuBLAS runs the kernel it picks for
``(M, N, K)``; the 16 x 16 block of the output is kept, and whether every block agreed with it
is recorded (``consistent``). :class:`ModelBackend` stands in for the GPU (the library model of
each path's preset) so the pipeline runs, and is tested, without one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import mma
from . import mma_probe as mp
from ._errors import FormatError

Log = Callable[[str], None]

_TORCH_DTYPE = {"float8_e4m3fn": "float8_e4m3fn", "bfloat16": "bfloat16", "float16": "float16"}


class ModelBackend:
    """The library model in place of the GPU: each path's preset, split per ``splits``."""

    name = "model"

    def __init__(self, splits: dict[tuple[str, int, int, int], int] | None = None) -> None:
        self.splits: dict[tuple[str, int, int, int], int] = splits or {}

    def environment(self) -> dict[str, Any]:
        return {"backend": "model (no GPU)"}

    def run(self, path: mp.ProbePath, a: npt.NDArray[Any], b: npt.NDArray[Any], rows: int,
            cols: int) -> tuple[npt.NDArray[Any], bool]:
        k = int(a.shape[1])
        part = self.splits.get((path.key, rows, cols, k), k)
        m = mp.model_for(path, k, part)
        return np.asarray(mma.matmul(a, b, path.fmt_a, path.fmt_b, model=m)), True

    def kernels(self, path: mp.ProbePath, a: Any, b: Any, rows: int, cols: int) -> list[str]:
        return []


class TorchBackend:
    """cuBLAS through PyTorch on the first CUDA device."""

    name = "cuda"

    def __init__(self) -> None:
        try:
            import torch
        except ImportError:
            raise FormatError("probe-gpu needs PyTorch with CUDA (pip install torch); "
                              "torch is not installed") from None
        if not torch.cuda.is_available():
            raise FormatError("probe-gpu needs a CUDA GPU: torch.cuda.is_available() is False "
                              f"(torch {torch.__version__})")
        self.torch = torch
        self.dev = torch.device("cuda")
        self.one = torch.tensor(1.0, device=self.dev)
        self._cache: dict[Any, Any] = {}

    def environment(self) -> dict[str, Any]:
        torch = self.torch
        env: dict[str, Any] = {
            "backend": "cuda", "device": torch.cuda.get_device_name(0),
            "capability": list(torch.cuda.get_device_capability(0)),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cublas": _cublas_version(), "python": platform.python_version(),
            "numpy": np.__version__,
            "flags": {f: getattr(torch.backends.cuda.matmul, f, None) for f in (
                "allow_bf16_reduced_precision_reduction",
                "allow_fp16_reduced_precision_reduction", "allow_fp16_accumulation",
                "allow_tf32")},
        }
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
        return env

    def _operand(self, codes: npt.NDArray[Any], fmt: str) -> Any:
        torch = self.torch
        arr = np.ascontiguousarray(codes)
        if arr.dtype == np.uint16:
            arr = arr.view(np.int16)
        t = torch.from_numpy(arr).to(self.dev)
        return t.view(getattr(torch, _TORCH_DTYPE[fmt]))

    def _call(self, path: mp.ProbePath, a: Any, bt: Any) -> Any:
        torch = self.torch
        if path.call == "scaled_mm":
            od = torch.float32 if path.output == "float32" else torch.bfloat16
            return torch._scaled_mm(a, bt.t(), scale_a=self.one, scale_b=self.one,
                                    out_dtype=od, use_fast_accum=path.fast)
        if path.call == "mm_f32out":
            return torch.mm(a, bt.t(), out_dtype=torch.float32)
        return torch.matmul(a, bt.t())

    def _inputs(self, path: mp.ProbePath, a: npt.NDArray[Any], b: npt.NDArray[Any], rows: int,
                cols: int) -> tuple[Any, Any]:
        ta = self._operand(a, path.fmt_a).repeat(rows // 16, 1)
        tb = self._operand(np.ascontiguousarray(b.T), path.fmt_b).repeat(cols // 16, 1)
        return ta, tb

    def run(self, path: mp.ProbePath, a: npt.NDArray[Any], b: npt.NDArray[Any], rows: int,
            cols: int) -> tuple[npt.NDArray[Any], bool]:
        torch = self.torch
        ta, tb = self._inputs(path, a, b, rows, cols)
        out = self._call(path, ta, tb)
        bits = out.view(torch.int32) if out.dtype == torch.float32 else out.view(torch.int16)
        blocks = bits.reshape(rows // 16, 16, cols // 16, 16)
        consistent = bool((blocks == blocks[:1, :, :1, :]).all().item())
        blk = bits[:16, :16].cpu().numpy()
        return (blk.view(np.uint32) if blk.dtype == np.int32 else blk.view(np.uint16)), consistent

    def kernels(self, path: mp.ProbePath, a: npt.NDArray[Any], b: npt.NDArray[Any], rows: int,
                cols: int) -> list[str]:
        """Names of the CUDA kernels one call runs (torch.profiler)."""
        torch = self.torch
        from torch.profiler import ProfilerActivity, profile

        ta, tb = self._inputs(path, a, b, rows, cols)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            self._call(path, ta, tb)
            torch.cuda.synchronize()
        names = [e.name for e in prof.events() if e.device_type.name == "CUDA"]
        return sorted(set(names))


def _cublas_version() -> str | None:
    """cuBLASLt's version number as the loaded library reports it (``cublasLtGetVersion``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libs = {ln.split()[-1] for ln in fh if "libcublasLt" in ln}
        for lib in sorted(libs):
            fn = ctypes.CDLL(lib).cublasLtGetVersion
            fn.restype = ctypes.c_size_t
            return f"{lib.rsplit('/', 1)[-1]}: {fn()}"
    except (OSError, AttributeError):
        return None
    return None


def record(backend: Any, paths: Iterable[mp.ProbePath], shapes_mn: Iterable[tuple[int, int]],
           ks: Iterable[int], n_random: int, log: Log, *, kernels: bool = False
           ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """Run window probes and random products of every path at every shape.

    Keys of the arrays (``g`` group, ``p`` path, ``s`` a ``MxNxK`` shape):
    ``win/{g}/K{K}/A``, ``.../B`` (W, 16, K), (W, K, 16) codes, ``.../j``, ``.../i`` (W, 16)
    positions; ``rand/{g}/K{K}/A``, ``.../B`` likewise; ``out/{p}/{s}/win`` (W, 16, 16) and
    ``out/{p}/{s}/rand`` (R, 16, 16) output codes; ``ok/{p}/{s}`` (W + R,) block consistency.
    """
    paths = list(paths)
    mn = list(shapes_mn)
    ks = list(ks)
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta: dict[str, Any] = {"environment": backend.environment(), "paths": {},
                            "grid": {"mn": mn, "k": ks, "n_random": n_random,
                                     "cell": mp.CELL, "window_step": mp.WINDOW_STEP},
                            "kernels": {}, "inconsistent": []}
    t0 = time.time()
    for g in sorted({p.group for p in paths}):
        for k in ks:
            wins = [mp.window_probe(g, k, s) for s in mp.windows(k)]
            rands = [mp.random_case(g, k, seed) for seed in range(n_random)]
            arrays[f"win/{g}/K{k}/A"] = np.stack([w[0] for w in wins])
            arrays[f"win/{g}/K{k}/B"] = np.stack([w[1] for w in wins])
            arrays[f"win/{g}/K{k}/j"] = np.stack([w[2] for w in wins])
            arrays[f"win/{g}/K{k}/i"] = np.stack([w[3] for w in wins])
            if rands:
                arrays[f"rand/{g}/K{k}/A"] = np.stack([r[0] for r in rands])
                arrays[f"rand/{g}/K{k}/B"] = np.stack([r[1] for r in rands])
            for path in (p for p in paths if p.group == g):
                meta["paths"][path.key] = {f: getattr(path, f) for f in (
                    "group", "fmt_a", "fmt_b", "call", "fast", "output", "preset")}
                for rows, cols in mn:
                    s = f"{rows}x{cols}x{k}"
                    outs, oks = [], []
                    for a, b, _j, _i in wins:
                        o, ok = backend.run(path, a, b, rows, cols)
                        outs.append(o)
                        oks.append(ok)
                    routs = []
                    for a, b in rands:
                        o, ok = backend.run(path, a, b, rows, cols)
                        routs.append(o)
                        oks.append(ok)
                    arrays[f"out/{path.key}/{s}/win"] = np.stack(outs)
                    if routs:
                        arrays[f"out/{path.key}/{s}/rand"] = np.stack(routs)
                    arrays[f"ok/{path.key}/{s}"] = np.asarray(oks)
                    if not all(oks):
                        meta["inconsistent"].append(f"{path.key}@{s}")
                    if kernels:
                        with contextlib.suppress(Exception):  # informative only
                            meta["kernels"][f"{path.key}@{s}"] = backend.kernels(
                                path, rands[0][0] if rands else wins[0][0],
                                rands[0][1] if rands else wins[0][1], rows, cols)
            log(f"{g} K={k}: {len(wins)} windows, {len(rands)} random, "
                f"{time.time() - t0:.1f} s")
    meta["seconds"] = round(time.time() - t0, 1)
    return arrays, meta


def load(path: Any) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """Read a recording written by :func:`save`."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    return arrays, meta


def save(path: Any, arrays: dict[str, npt.NDArray[Any]], meta: dict[str, Any]) -> None:
    np.savez_compressed(path, meta=np.asarray(json.dumps(meta)), **arrays)  # type: ignore[arg-type]


def shapes_of(arrays: dict[str, Any], key: str) -> Iterator[tuple[int, int, int]]:
    """The ``(M, N, K)`` shapes recorded for path ``key``."""
    seen = set()
    for name in arrays:
        if name.startswith(f"out/{key}/") and name.endswith("/win"):
            s = name.split("/")[-2]
            m_, n_, k_ = (int(x) for x in s.split("x"))
            if (m_, n_, k_) not in seen:
                seen.add((m_, n_, k_))
                yield m_, n_, k_


def record_step(backend: Any, paths: Iterable[mp.ProbePath], n_random: int, log: Log
                ) -> dict[str, npt.NDArray[Any]]:
    """The step-fit data: truncation probes and random 16x16x``STEP_K`` products at
    ``STEP_SHAPE`` (keys ``step/{g}/trunc/A|B|k``, ``step/{g}/rand/A|B``,
    ``out/{p}/step/trunc|rand``)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    rows, cols = mp.STEP_SHAPE
    paths = list(paths)
    for g in sorted({p.group for p in paths}):
        ta, tb, tk = mp.trunc_probe(g)
        # seeds 100, 101 (+ more with n_random > 2) and 102 (a dominant +T ... -T pair)
        seeds = sorted({100 + s for s in range(n_random)} | {102})
        rands = [mp.random_case(g, mp.STEP_K, s) for s in seeds]
        arrays[f"step/{g}/trunc/A"], arrays[f"step/{g}/trunc/B"] = ta, tb
        arrays[f"step/{g}/trunc/k"] = tk
        arrays[f"step/{g}/rand/A"] = np.stack([r[0] for r in rands])
        arrays[f"step/{g}/rand/B"] = np.stack([r[1] for r in rands])
        for p in (p for p in paths if p.group == g):
            arrays[f"out/{p.key}/step/trunc"] = np.stack(
                [backend.run(p, ta[w], tb[w], rows, cols)[0] for w in range(len(ta))])
            arrays[f"out/{p.key}/step/rand"] = np.stack(
                [backend.run(p, a, b, rows, cols)[0] for a, b in rands])
        log(f"{g}: step probes recorded")
    return arrays


def readings(arrays: dict[str, Any], path: mp.ProbePath, shape: tuple[int, int, int]
             ) -> tuple[list[tuple[Any, Any, Any]], list[tuple[Any, Any, Any]]]:
    """Window readings ``(j, i, kept)`` and random products ``(A, B, out)`` of one shape."""
    rows, cols, k = shape
    s = f"{rows}x{cols}x{k}"
    g = path.group
    js, is_ = arrays[f"win/{g}/K{k}/j"], arrays[f"win/{g}/K{k}/i"]
    outs = arrays[f"out/{path.key}/{s}/win"]
    reads = [(js[w], is_[w], mp.kept(outs[w], path)) for w in range(len(js))]
    rands = []
    if f"out/{path.key}/{s}/rand" in arrays:
        ra, rb = arrays[f"rand/{g}/K{k}/A"], arrays[f"rand/{g}/K{k}/B"]
        ro = arrays[f"out/{path.key}/{s}/rand"]
        rands = [(ra[r], rb[r], ro[r]) for r in range(len(ro))]
    return reads, rands


def fit_path(arrays: dict[str, Any], path: mp.ProbePath, log: Log) -> dict[str, Any]:
    """Fit one path: ``F`` from the truncation probe, the step by coordinate descent, then the
    split-K part at every recorded shape. Returns the model and the report rows."""
    g = path.group
    f = mp.read_frac_bits(path, arrays[f"out/{path.key}/step/trunc"], arrays[f"step/{g}/trunc/k"])
    ra, rb = arrays[f"step/{g}/rand/A"], arrays[f"step/{g}/rand/B"]
    ro = arrays[f"out/{path.key}/step/rand"]
    step_model, smatch, stotal, evals = mp.fit_step(
        path, f, [(ra[r], rb[r], ro[r]) for r in range(len(ro))], log)
    best: tuple[int, Any, list[Any], list[Any]] | None = None
    cache: dict[Any, Any] = {}
    ties = mp.step_ties(path, f, step_model, evals)[:6]
    for cand in ties:  # the step data's ties, decided by the grid's random products
        rows = []
        entries = []
        for shape in sorted(shapes_of(arrays, path.key)):
            reads, rands = readings(arrays, path, shape)
            fit = mp.fit_split(path, shape[2], reads, rands, base=cand, cache=cache)
            part = fit["part"]
            win_ok = all(np.array_equal(mp.predicted_kept(j, i, part, cand.promote), kp)
                         for j, i, kp in reads)
            rows.append({"shape": list(shape), "part": part, "split": fit["split"],
                         "split_tile": fit["split_tile"], "random_match": fit["match"],
                         "random_total": fit["total"], "windows_match": win_ok,
                         "candidates": fit["candidates"][:8]})
            entries.append((path.output, *shape, fit["split"], fit["split_tile"]))
        score = sum(r["random_match"] for r in rows)
        if best is None or score > best[0]:
            best = (score, cand, rows, entries)
        if all(r["random_match"] == r["random_total"] for r in rows):
            break
    assert best is not None
    _, step_model, rows, entries = best
    if len(ties) > 1:
        log(f"{path.key}: {len(ties)} steps tie on the step data; kept {step_model.label()}")
    import dataclasses

    model = dataclasses.replace(step_model, shape_splits=tuple(entries),
                                name=f"probe:{path.key}",
                                source=f"fitted by arithforge probe-gpu ({path.call})")
    return {"path": path.key, "frac_bits_read": f, "model": model, "step_match": smatch,
            "step_total": stotal, "step_evals": [[str(k), v] for k, v in evals],
            "shapes": rows}


def same_step(fitted: mma.MMAModel, preset: mma.MMAModel, path: mp.ProbePath) -> bool:
    """Whether a fitted model has the preset's step and library structure (its output the
    path's; the split-K table is compared per shape by the caller, not here). The probe cases
    are finite, so special-value behaviour (``overflow``, ``nan_output``) is not fitted and not
    compared: a fitted model keeps the defaults."""
    import dataclasses

    a = dataclasses.replace(fitted, shape_splits=(), split=1, split_tile=1,
                            overflow=preset.overflow, nan_output=preset.nan_output)
    b = dataclasses.replace(preset, shape_splits=(), split=1, split_tile=1,
                            output=fitted.output)
    return a == b
