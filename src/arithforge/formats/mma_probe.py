# Ref: MMA-Sim, arXiv 2511.10909 (H100 step parameters); DeepSeek-V3 report §3.3.2 (promotion
#      every 128); docs/tensor-cores.md (the split-K readings this module automates).
"""Probe designs and fits for the shape-dependent K handling of GPU libraries (numpy only).

A cuBLAS call chooses its kernel from the call shape ``(M, N, K)``; for small outputs and long
K the kernel splits K into parts that are accumulated independently and joined by float32
additions (round to nearest even). This module holds

* the cuBLAS paths probed (:data:`PATHS`) and the shape grid (:data:`GRID_MN`, :data:`GRID_K`);
* the *window probe* (:func:`window_probe`): a 16 x 16 x K product whose entry ``(r, c)`` is
  ``T (1 + 2^-d)`` at k position ``j_r`` plus a term ``0.75 ulp32(T)`` at ``i_c``. The small
  term shows up (one float32 ulp, which also tips the bf16/fp16 rounding of ``T (1 + 2^-d)``,
  a midpoint) only when ``j_r`` and ``i_c`` lie in different *chunks* (split-K parts or
  promotion windows), because only a float32 round-to-nearest adder keeps it;
* random products (:func:`random_case`) that check the fitted model bit for bit;
* the readings and the fit (:func:`consistent_parts`, :func:`fit_split`) and the per-shape
  table that :func:`arithforge.formats.mma.matmul` consults (``MMAModel.shape_splits``).

The GPU side (PyTorch) is :mod:`arithforge.formats._gpu_probe`; ``arithforge probe-gpu`` drives
both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from . import mma
from .catalog import get_format
from .descriptors import FloatFormat
from .rounding import Rounding

__all__ = ["CELL", "GRID_K", "GRID_MN", "PATHS", "QUICK_K", "QUICK_MN", "ProbePath",
           "chunk_ids", "consistent_parts", "fit_split", "kept", "predicted_kept",
           "random_case", "split_entry", "window_probe", "windows"]

#: k resolution of the window probe: cell ``c`` holds the big terms at ``CELL c + 5, + 6`` and
#: the small term at ``CELL c + 23``.
CELL = 32
#: Window probes cover 16 consecutive cells and step by 15, so every pair of adjacent cells
#: shares a window.
WINDOW_STEP = 15
GRID_MN = (16, 32, 64, 128, 256, 1024)
GRID_K = (256, 1024, 4096, 8192, 16384)
QUICK_MN = (16, 64, 1024)
QUICK_K = (1024, 8192)


@dataclasses.dataclass(frozen=True)
class ProbePath:
    """One library call probed: operand formats, the call, its output and the preset it fits."""

    name: str
    group: str
    fmt_a: str
    fmt_b: str
    call: str            # "scaled_mm", "mm_f32out" (torch.mm out_dtype=float32), "matmul"
    fast: bool           # torch._scaled_mm(use_fast_accum=...)
    output: str
    preset: str

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}"


def _paths() -> dict[str, ProbePath]:
    out: list[ProbePath] = []
    for od in ("f32", "bf16"):
        for fast in (True, False):
            out.append(ProbePath(f"scaled_mm_{od}_{'fast' if fast else 'slow'}", "e4m3xe4m3",
                                 "float8_e4m3fn", "float8_e4m3fn", "scaled_mm", fast,
                                 "float32" if od == "f32" else "bfloat16",
                                 "h100-fp8-fastacc" if fast else "h100-fp8"))
    for g, fmt in (("bf16", "bfloat16"), ("fp16", "float16")):
        out.append(ProbePath("torch_mm_f32out", g, fmt, fmt, "mm_f32out", False, "float32",
                             f"h100-{g}"))
        out.append(ProbePath("torch_matmul", g, fmt, fmt, "matmul", False, fmt, f"h100-{g}"))
    return {p.key: p for p in out}


#: The cuBLAS paths of the shape grid, by ``group/path`` (the names of ``data/tensorcore``).
PATHS: dict[str, ProbePath] = _paths()


def _formats(path: ProbePath) -> tuple[FloatFormat, FloatFormat]:
    fa, fb = get_format(path.fmt_a), get_format(path.fmt_b)
    assert isinstance(fa, FloatFormat)
    assert isinstance(fb, FloatFormat)
    return fa, fb


def _out(path: ProbePath) -> FloatFormat:
    out = get_format(path.output)
    assert isinstance(out, FloatFormat)
    return out


def _tip_exponent(group: str) -> int:
    """``d`` of the second big term ``T 2^-d``: a midpoint of the narrowest output of the group
    (bf16: 2^-8, fp16: 2^-11), so that one float32 ulp more changes the rounded output."""
    return 11 if group == "fp16" else 8


def _big_exponent(fa: FloatFormat, fb: FloatFormat) -> int:
    """x such that ``X = 2^x`` fits both formats with room (T = X^2 finite in fp16 outputs)."""
    return min(fa.emax, fb.emax, 8) - 1


def _encode(values: npt.NDArray[np.float64], fmt: FloatFormat) -> npt.NDArray[Any]:
    codes = np.asarray(fmt.encode(values, Rounding.RNE))
    back = np.asarray(fmt.decode(codes), dtype=np.float64)
    if not np.array_equal(back, values):
        raise AssertionError(f"probe value not exact in {fmt.name}")
    return codes


def windows(k: int) -> list[int]:
    """First cells of the window probes that cover a length-``k`` K (cells of :data:`CELL`)."""
    cells = k // CELL
    return list(range(0, max(cells - 1, 1), WINDOW_STEP))


def window_cells(k: int, start: int) -> npt.NDArray[np.int64]:
    return np.minimum(start + np.arange(16), k // CELL - 1)


def window_probe(path_or_group: ProbePath | str, k: int, start: int
                 ) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.int64],
                            npt.NDArray[np.int64]]:
    """The window probe over cells ``start .. start + 15``: ``(A, B, j, i)``.

    ``A`` (16 x k) and ``B`` (k x 16) are codes; entry ``(r, c)`` of ``A @ B`` is exactly
    ``T + T 2^-d`` (at ``j_r`` and ``j_r + 1``) plus ``0.75 ulp32(T)`` (at ``i_c``); no other
    product is non-zero.
    """
    group = path_or_group.group if isinstance(path_or_group, ProbePath) else path_or_group
    path = next(p for p in PATHS.values() if p.group == group)
    fa, fb = _formats(path)
    if k % CELL or k < 2 * CELL:
        raise ValueError(f"K must be a multiple of {CELL} and at least {2 * CELL}, not {k}")
    x = _big_exponent(fa, fb)
    t = 2 * x
    d = _tip_exponent(group)
    cells = window_cells(k, start)
    j = CELL * cells + 5
    i = CELL * cells + 23
    a = np.zeros((16, k))
    b = np.zeros((k, 16))
    a[np.arange(16), j] = 2.0**x
    a[np.arange(16), j + 1] = 2.0**x
    b[j, :] = 2.0**x
    b[j + 1, :] = 2.0 ** (x - d)
    small = t - 24  # 1.5 * 2^(t-24) = 0.75 ulp32(2^t)
    ea = small // 2
    a[:, i] = 1.5 * 2.0**ea
    b[i, np.arange(16)] = 2.0 ** (small - ea)
    return _encode(a, fa), _encode(b, fb), j, i


def probe_threshold(group: str) -> float:
    """``T (1 + 2^-d)``: a probe entry above it kept its small term."""
    path = next(p for p in PATHS.values() if p.group == group)
    x = _big_exponent(*_formats(path))
    return float(2.0 ** (2 * x) * (1 + 2.0 ** -_tip_exponent(group)))


def kept(out_codes: npt.ArrayLike, path: ProbePath) -> npt.NDArray[np.bool_]:
    """Which probe entries kept the small term (decoded output above ``T (1 + 2^-d)``)."""
    out = get_format(path.output)
    vals = np.asarray(out.decode(np.asarray(out_codes)), dtype=np.float64)
    return np.asarray(vals > probe_threshold(path.group))


def chunk_ids(pos: npt.ArrayLike, part: int, promote: int | None) -> npt.NDArray[np.int64]:
    """Chunk of each k position: split-K part ``pos // part``, and the promotion window inside
    it (windows restart at each part, as :func:`arithforge.formats.mma.matmul` runs them)."""
    p = np.asarray(pos, dtype=np.int64)
    cid = (p // part) * (1 << 20)
    if promote:
        cid = cid + (p % part) // promote
    return np.asarray(cid)


def predicted_kept(j: npt.ArrayLike, i: npt.ArrayLike, part: int, promote: int | None
                   ) -> npt.NDArray[np.bool_]:
    """Model reading of a window probe: kept iff ``j_r`` and ``i_c`` are in different chunks."""
    cj = chunk_ids(j, part, promote)
    ci = chunk_ids(i, part, promote)
    return np.asarray(cj[:, None] != ci[None, :])


def consistent_parts(k: int, readings: Iterable[tuple[Any, Any, Any]], promote: int | None,
                     step: int = 16) -> list[int]:
    """Part lengths (multiples of ``step``, ``k`` meaning no split) that explain every window
    reading ``(j, i, kept)``; ``k`` first, then longest first."""
    reads = list(readings)
    ok = []
    for part in [k, *range(k - step, step - 1, -step)]:
        if all(np.array_equal(predicted_kept(j, i, part, promote), np.asarray(kp))
               for j, i, kp in reads):
            ok.append(part)
    return ok


def split_entry(k: int, part: int, tiles: Iterable[int] = (64, 128, 256, 32, 16)
                ) -> tuple[int, int]:
    """``(split, split_tile)`` whose :class:`~arithforge.formats.mma.MMAModel` parts have length
    ``part`` at this ``k`` (a library tile if one fits, else the part itself)."""
    if part >= k:
        return 1, 1
    s = -(-k // part)
    for t in tiles:
        if -(-k // (s * t)) * t == part:
            return s, t
    return s, part


def random_case(path_or_group: ProbePath | str, k: int, seed: int
                ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """A random 16 x k by k x 16 product (codes): ``seed`` even draws normal values, odd draws
    log-normal magnitudes (2^N(0, 2)), both scaled by ``k^-1/4`` so fp16 sums stay finite.
    ``seed % 3 == 2`` (from 2 on) draws positive values only: every step's sum then outgrows
    its largest term, so the accumulator's precision shows even through a bf16 output."""
    group = path_or_group.group if isinstance(path_or_group, ProbePath) else path_or_group
    path = next(p for p in PATHS.values() if p.group == group)
    fa, fb = _formats(path)
    rng = np.random.default_rng([17, k, seed, sum(map(ord, group))])

    def draw(shape: tuple[int, int], fmt: FloatFormat) -> npt.NDArray[Any]:
        if seed % 2 == 0:
            v = rng.standard_normal(shape)
        else:
            v = rng.choice([-1.0, 1.0], shape) * np.exp2(rng.normal(0.0, 2.0, shape))
        v = np.clip(v * k ** -0.25, -fmt.max_finite, fmt.max_finite)
        return np.asarray(fmt.encode(v, Rounding.RNE))

    a, b = draw((16, k), fa), draw((k, 16), fb)
    if seed >= 2 and seed % 3 == 2:  # clear the sign bits
        a = a & np.asarray((1 << (fa.bits - 1)) - 1, dtype=a.dtype)
        b = b & np.asarray((1 << (fb.bits - 1)) - 1, dtype=b.dtype)
    return a, b


def model_for(path: ProbePath, k: int, part: int, base: mma.MMAModel | None = None
              ) -> mma.MMAModel:
    """The path's preset (or ``base``) with its output and the split into parts of ``part``."""
    m = base if base is not None else mma.get_model(path.preset)
    s, t = split_entry(k, part)
    return dataclasses.replace(m, output=_out(path), split=s, split_tile=t,
                               shape_splits=())


def fit_split(path: ProbePath, k: int, readings: list[tuple[Any, Any, Any]],
              randoms: list[tuple[Any, Any, Any]], base: mma.MMAModel | None = None,
              cache: dict[Any, Any] | None = None, max_tries: int = 6
              ) -> dict[str, Any]:
    """Fit the part length at one call shape: window readings first, random products decide.

    Returns ``{"part", "split", "split_tile", "candidates", "match", "total", "tried"}``:
    the chosen part length (the first probe-consistent candidate that reproduces every random
    output, else the best of those tried), and its random-product match count.
    """
    m0 = base if base is not None else mma.get_model(path.preset)
    cands = consistent_parts(k, readings, m0.promote)
    if m0.promote:  # promotion hides parts that are multiples of its window: try likely ones
        extra = [k] + [p for p in cands if p != k]
        cands = extra
    if not cands:
        cands = [k]
    cache = {} if cache is None else cache
    best: dict[str, Any] | None = None
    tried = []
    for part in cands[:max_tries]:
        m = model_for(path, k, part, m0)
        match = total = 0
        for idx, (a, b, out) in enumerate(randoms):
            key = (path.group, k, idx, m)
            if key not in cache:
                cache[key] = mma.matmul(a, b, path.fmt_a, path.fmt_b, model=m)
            match += int(np.sum(cache[key] == np.asarray(out)))
            total += int(np.asarray(out).size)
        tried.append((part, match))
        if best is None or match > best["match"]:
            s, t = split_entry(k, part)
            best = {"part": part, "split": s, "split_tile": t, "match": match, "total": total}
        if match == total:
            break
    assert best is not None
    best["candidates"] = cands[:32]
    best["tried"] = tried
    return best


def nearest_entry(entries: Iterable[tuple[str, int, int, int, int, int]], output: str,
                  rows: int, cols: int, k: int) -> tuple[int, int] | None:
    """``(split, split_tile)`` for a call shape from a measured table (``shape_splits``).

    The rule: the exact shape if measured; otherwise the measured shape of the same output that
    is nearest in ``log2`` distance summed over M, N and K (ties: the larger shape), its
    ``(split, split_tile)`` applied to this K. ``None`` when the table has no such output.
    """
    best: tuple[float, tuple[int, int, int], tuple[int, int]] | None = None
    for out, m_, n_, k_, s, t in entries:
        if out != output:
            continue
        if (m_, n_, k_) == (rows, cols, k):
            return s, t
        dist = sum(abs(math.log2(max(x, 1)) - math.log2(max(y, 1)))
                   for x, y in ((m_, rows), (n_, cols), (k_, k)))
        cand = (dist, (-m_, -n_, -k_), (s, t))
        if best is None or cand[:2] < best[:2]:
            best = cand
    return None if best is None else best[2]


# -- the step parameters (n, F, roundings, alignment, promotion) --------------------------------

#: Values the step fit tries per parameter (coordinate descent from :data:`STEP_START`).
STEP_SPACE: dict[str, tuple[Any, ...]] = {
    "n": (4, 8, 16, 32, 64),
    "acc_frac_bits": (23, 13, 10),
    "acc_rounding": (Rounding.RTZ, Rounding.RNE),
    "term_rounding": (Rounding.RTZ, Rounding.RNE, Rounding.RDN),
    "alignment": ("sum", "normalized"),
    "promote": (None, 32, 64, 128, 256),
}
STEP_START: dict[str, Any] = {"n": 16, "acc_frac_bits": 23, "acc_rounding": Rounding.RTZ,
                              "term_rounding": Rounding.RTZ, "alignment": "sum",
                              "promote": None}
#: Shape and K of the step fit's random products (no split-K there on the H100).
STEP_SHAPE = (256, 256)
STEP_K = 1024


def trunc_probe(group: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Two 16 x 64 by 64 x 16 products whose diagonal entry ``q`` is ``T - T + 2^-k T`` (at
    k positions 0, 1, 2)
    (``k = 16 w + q + 1`` in product ``w``): the small term survives iff ``k <= F``.
    Returns ``(A (2, 16, 64), B (2, 64, 16), k (2, 16))``."""
    path = next(p for p in PATHS.values() if p.group == group)
    fa, fb = _formats(path)
    x = _big_exponent(fa, fb)
    as_, bs, ks = [], [], []
    for w in range(2):
        a = np.zeros((16, 64))
        b = np.zeros((64, 16))
        kk = 16 * w + np.arange(16) + 1
        a[:, 0] = a[:, 1] = 2.0**x
        b[0, :] = 2.0**x
        b[1, :] = -(2.0**x)
        e = 2 * x - kk
        ea = e // 2
        a[:, 2] = 2.0**ea  # k = 2: in the first step of any n >= 4
        b[2, :] = 2.0 ** (e - ea)
        as_.append(_encode(a, fa))
        bs.append(_encode(b, fb))
        ks.append(kk)
    return np.stack(as_), np.stack(bs), np.stack(ks)


def read_frac_bits(path: ProbePath, outs: npt.ArrayLike, ks: npt.ArrayLike) -> int:
    """``F`` read off :func:`trunc_probe`: the largest ``k`` whose small term survived."""
    out = get_format(path.output)
    vals = np.asarray(out.decode(np.asarray(outs)), dtype=np.float64)
    diag = np.stack([np.diagonal(v) for v in vals])
    kk = np.asarray(ks)
    alive = kk[diag != 0]
    return int(alive.max()) if alive.size else 0


def _step_model(path: ProbePath, params: dict[str, Any], frac_bits: int) -> mma.MMAModel | None:
    try:
        return mma.MMAModel(frac_bits=frac_bits, output=_out(path), **params)
    except Exception:  # an invalid combination (promote not a multiple of n, ...) is skipped
        return None


def fit_step(path: ProbePath, frac_bits: int, randoms: list[tuple[Any, Any, Any]],
             log: Any = None, sweeps: int = 3) -> tuple[mma.MMAModel, int, int, list[Any]]:
    """Coordinate descent over :data:`STEP_SPACE` from :data:`STEP_START` with ``F`` fixed;
    short of every output, once more from the best ``(n, promote)`` pair.

    A change is taken only when it reproduces strictly more random outputs, so among models
    the data cannot tell apart the one nearer the start wins. Returns the model, its match
    count, the output count and every evaluation ``(label, match)``.
    """
    total = sum(int(np.asarray(o).size) for _, _, o in randoms)
    seen: dict[Any, int] = {}

    def score(params: dict[str, Any]) -> int:
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if key not in seen:
            m = _step_model(path, params, frac_bits)
            if m is None:
                seen[key] = -1
            else:
                seen[key] = sum(int(np.sum(np.asarray(mma.matmul(a, b, path.fmt_a, path.fmt_b,
                                                                  model=m)) == np.asarray(o)))
                                for a, b, o in randoms)
        return seen[key]

    def descend(cur: dict[str, Any], best: int) -> tuple[dict[str, Any], int]:
        for _ in range(sweeps):
            changed = False
            for name, values in STEP_SPACE.items():
                for v in values:
                    trial = {**cur, name: v}
                    s = score(trial)
                    if s > best:
                        cur, best, changed = trial, s, True
            if not changed or best == total:
                break
        return cur, best

    cur, best = descend(dict(STEP_START), score(dict(STEP_START)))
    if best < total:
        # n and promote are coupled (promote is a multiple of n), so one coordinate at a time
        # can stop short of the pair (the H100 fp8 path with a bf16 output on the full shape
        # grid: n=64 with round-to-nearest terms, 704 of 768, against n=32 promote=128, 768):
        # descend again from the start with the best pair of the two, if it scores more.
        pairs = [{**STEP_START, "n": n, "promote": pr}
                 for n in STEP_SPACE["n"] for pr in STEP_SPACE["promote"]]
        start = max(pairs, key=score)
        if score(start) > best:
            cur, best = descend(start, score(start))
    m = _step_model(path, cur, frac_bits)
    assert m is not None
    if log is not None:
        log(f"{path.key}: F={frac_bits} {m.label()} {best}/{total} ({len(seen)} models)")
    return m, best, total, sorted(seen.items(), key=lambda kv: -kv[1])[:20]


def step_ties(path: ProbePath, frac_bits: int, model: mma.MMAModel, evals: list[Any]
              ) -> list[mma.MMAModel]:
    """The fitted step first, then every other evaluated step with the same score (models the
    step data cannot tell apart, such as a 13- or 23-bit accumulator under a bf16 output)."""
    best = max(v for _, v in evals)
    out = [model]
    for key, v in evals:
        if v == best:
            m = _step_model(path, dict(key), frac_bits)
            if m is not None and m not in out:
                out.append(m)
    return out
