#!/usr/bin/env python3
# Ref: MMA-Sim, arXiv 2511.10909; DeepSeek-V3 report §3.3.2.
"""Read the probe data set, print direct readings per path, and fit the MMA model bit for bit.

For every (input group, path) this

1. reads parameters straight off the structured probes (fraction bits ``F`` from the
   ``trunc_k*`` probes, rounding of cut terms, fp32 output rounding, step boundaries, the
   chunks an fp32 adder combines), without assuming the model;
2. fits :class:`mma_model.MMAParams` by coordinate descent from two seeds (the published
   parameters and the direct readings), maximising the number of outputs reproduced bit for bit;
3. reports the fraction of outputs matched by every parameter set evaluated.

Usage::

    python tools/probe/fit_mma_model.py data/tensorcore/h100_probe.npz \\
        data/tensorcore/h100_splitk.npz --json data/tensorcore/h100_fit.json \\
        [--groups bf16,fp16] [--paths mma_sync]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import mma_model as mm  # noqa: E402

ACC_CHOICES = (("float32", 23), ("float32", 13), ("float16", 10))
# K tiles: 1 (any boundary) or 64, the K tile of the cuBLAS kernels seen (kernel names, part sizes)
SPLITS = ((1, 1),) + tuple((n, t) for n in (2, 3, 4, 5, 6, 8) for t in (1, 64))
AXES = {
    "n": (4, 8, 16, 32, 64, 128),
    "F": tuple(range(10, 30)),
    "term_round": ("rz", "rd", "rne"),
    "prod_exp": ("sum", "normalized", "sum_fp16"),
    "acc": ACC_CHOICES,
    "out_round": ("rz", "rne"),
    "promote": (None, 32, 64, 128, 256, 512, 1024, 2048),
    "k_order": tuple(mm.K_ORDERS),
}
STRUCT_AXES = ("n", "F", "term_round", "prod_exp", "acc", "out_round", "promote", "k_order")


@dataclasses.dataclass
class Chunk:
    name: str
    A: np.ndarray
    B: np.ndarray
    C: np.ndarray | None
    out: np.ndarray
    param: np.ndarray | None = None

    @property
    def K(self) -> int:
        return self.A.shape[1]


class _Merged:
    """Several probe ``.npz`` files seen as one (later files add keys)."""

    def __init__(self, paths):
        self._z = [np.load(p, allow_pickle=False) for p in paths]
        self.files = sorted({k for z in self._z for k in z.files})

    def __getitem__(self, key):
        for z in self._z:
            if key in z.files:
                return z[key]
        raise KeyError(key)


def load(*paths):
    """Open probe data sets; returns the merged arrays and the first file's metadata, with the
    groups and kernel census of the others merged in."""
    z = _Merged(paths)
    metas = [json.loads(str(np.load(p, allow_pickle=False)["meta"])) for p in paths]
    meta = metas[0]
    for extra in metas[1:]:
        for g, info in extra.get("groups", {}).items():
            meta["groups"].setdefault(g, info)
        meta.setdefault("kernels", {}).update(extra.get("kernels", {}))
    meta.setdefault("random_k", {})
    return z, meta


def chunks_for(z, meta, g, path) -> list[Chunk]:
    keys = set(z.files)
    out = []
    probe_names = sorted({k.split("/")[2] for k in keys if k.startswith(f"probe/{g}/")})
    for name in probe_names:
        key = f"probe/{g}/{name}/out/{path}"
        if key not in keys:
            continue
        C = mm.bits_float32(z[f"probe/{g}/{name}/C"])
        out.append(Chunk(f"probe:{name}", z[f"probe/{g}/{name}/A"], z[f"probe/{g}/{name}/B"],
                         C if np.any(C != 0) else None, z[key], z[f"probe/{g}/{name}/param"]))
    m16 = sorted({k.split("/")[2] for k in keys if k.startswith(f"m16/{g}/")})
    for name in m16:
        for shape in ("s16", "t256", "direct"):
            key = f"m16/{g}/{name}/out/{path}@{shape}"
            if key not in keys:
                continue
            A = z[f"m16/{g}/{name}/A"]
            BT = z[f"m16/{g}/{name}/B"].transpose(0, 2, 1)
            n, _, K = A.shape
            out.append(Chunk(f"m16:{name}@{shape}", np.repeat(A, 16, axis=1).reshape(n * 256, K),
                             np.tile(BT, (1, 16, 1)).reshape(n * 256, K), None,
                             z[key].reshape(-1)))
    for K in sorted(int(k) for k in meta["random_k"]):
        for shape in ("s16", "t256", "direct"):
            key = f"rand/{g}/K{K}/out/{path}@{shape}"
            if key not in keys:
                continue
            A = z[f"rand/{g}/K{K}/A"]
            BT = z[f"rand/{g}/K{K}/B"].transpose(0, 2, 1)
            n = A.shape[0]
            Ap = np.repeat(A, 16, axis=1).reshape(n * 256, K)
            Bp = np.tile(BT, (1, 16, 1)).reshape(n * 256, K)
            out.append(Chunk(f"rand:K{K}@{shape}", Ap, Bp, None, z[key].reshape(-1)))
    return out


def out_values(bits, fmt):
    bits = np.asarray(bits)
    if fmt == "float32":
        return mm.bits_float32(bits).astype(np.float64)
    if fmt == "float16":
        return bits.astype(np.uint16).view(np.float16).astype(np.float64)
    return mm.bits_float32(bits.astype(np.uint32) << 16).astype(np.float64)


def same(pred, out, fmt):
    """Bit-equal, NaN-equal; also returns equality that ignores the sign of zero."""
    strict = pred == out
    pv, ov = out_values(pred, fmt), out_values(out, fmt)
    nan = np.isnan(pv) & np.isnan(ov)
    loose = strict | nan | ((pv == 0) & (ov == 0))
    return strict | nan, loose


def exact_sums(ch: Chunk, fa, fb):
    """Exact dot products in float64 (used for probes, where they are exact)."""
    s = (mm.values(ch.A, fa) * mm.values(ch.B, fb)).sum(axis=1)
    if ch.C is not None:
        s = s + ch.C.astype(np.float64)
    return s


# ----------------------------------------------------------------------- direct readings


def _runs(xs, vals):
    """Compress (x, value) sequences into [x_start, x_end, value] runs."""
    runs = []
    for x, v in zip(xs, vals, strict=True):
        v = None if v is None or (isinstance(v, float) and np.isnan(v)) else v
        if runs and runs[-1][2] == v:
            runs[-1][1] = x
        else:
            runs.append([x, x, v])
    return runs


def _rz32(x):
    f = np.float32(x).astype(np.float64)
    return np.where(np.abs(f) > np.abs(x),
                    np.nextafter(np.float32(x), np.float32(0)).astype(np.float64), f)


def direct_readings(chunks, fa, fb, fmt) -> dict:
    R: dict = {}
    by = {c.name: c for c in chunks}
    ov = {c.name: out_values(c.out, fmt) for c in chunks}

    def survived_up_to(name):
        ch = by[name]
        ok = ov[name] == exact_sums(ch, fa, fb)
        ks = ch.param[:, 0].astype(int)
        F = 0
        for k, good in sorted(zip(ks, ok, strict=True)):
            if not good:
                break
            F = k
        return {"F": int(F), "kept_k": [int(k) for k, g in zip(ks, ok, strict=True) if g]}

    for name in ("trunc_k", "trunc_k_late", "trunc_k_sig225", "trunc_k_c", "trunc_k_cbig"):
        if f"probe:{name}" in by:
            R[name] = survived_up_to(f"probe:{name}")
    F = R.get("trunc_k", {}).get("F")
    if "probe:term_round" in by and F is not None:
        ch = by["probe:term_round"]
        ex = exact_sums(ch, fa, fb)
        res = {}
        for f in (F, F + 1):
            sel = ch.param[:, 0] == f
            if not np.any(sel):
                continue
            r = ch.param[sel, 1]
            unit = ex[sel] / r
            got = ov["probe:term_round"][sel] / unit
            modes = {"rz": np.trunc(r), "rd": np.floor(r), "rne": np.round(r)}
            res[f"f={f}"] = {
                "measured_units": {f"{ri:+.2f}": float(gi) for ri, gi in zip(r, got, strict=True)},
                "modes_matching": [m for m, v in modes.items() if np.array_equal(v, got)]}
        R["term_round"] = res
    if "probe:out_round" in by and fmt == "float32":
        ch = by["probe:out_round"]
        ex = exact_sums(ch, fa, fb)
        got = ov["probe:out_round"]
        R["out_round"] = {
            "n": int(len(ex)),
            "match_rz": int(np.sum(got == _rz32(ex))),
            "match_rne": int(np.sum(got == np.float32(ex).astype(np.float64))),
            "not_representable": int(np.sum(np.float32(ex).astype(np.float64) != ex))}
    if "probe:block_pos" in by:
        ch = by["probe:block_pos"]
        j = ch.param[:, 0].astype(int)
        pos = np.where(j == 1, 2, 1)
        tiny = mm.values(ch.A[np.arange(len(j)), pos], fa) * mm.values(
            ch.B[np.arange(len(j)), pos], fb)
        cnt = ov["probe:block_pos"] / tiny
        R["block_pos"] = {"K": ch.K, "runs_j_count": _runs(
            j.tolist(), [float(c) if np.isfinite(c) else None for c in cnt])}
    if "probe:chain_rz" in by:
        ch = by["probe:chain_rz"]
        T = mm.values(ch.A[:, 0], fa) * mm.values(ch.B[:, 0], fb)
        R["chain_rz"] = {"t_vs_result_minus_T_in_ulp32": {
            int(t): float(v) for t, v in zip(ch.param[:, 0], (ov["probe:chain_rz"] - T) /
                                             (T * 2.0**-23), strict=True)}}
    if "probe:promo" in by:
        ch = by["probe:promo"]
        jj, ii = ch.param[:, 0].astype(int), ch.param[:, 1].astype(int)
        T = mm.values(ch.A[np.arange(len(jj)), jj], fa) * mm.values(
            ch.B[np.arange(len(jj)), jj], fb)
        lost = ov["probe:promo"] == T
        res = {}
        for j in sorted(set(jj.tolist())):
            sel = jj == j
            res[str(j)] = [[a, b] for a, b, v in _runs(ii[sel].tolist(),
                                                       lost[sel].tolist()) if v]
        R["promo_lost_i_ranges"] = res
    if "probe:promo_uniform" in by:
        ch = by["probe:promo_uniform"]
        T = mm.values(ch.A[:, 0], fa) * mm.values(ch.B[:, 0], fb)
        small = mm.values(ch.A[:, 1], fa) * mm.values(ch.B[:, 1], fb)
        kept = (ov["probe:promo_uniform"] - T) / small
        R["promo_uniform"] = {int(k): {"kept": float(c), "lost": float(k - 1 - c)}
                              for k, c in zip(ch.param[:, 0], kept, strict=True)}
    if "probe:sanity_int" in by:
        ch = by["probe:sanity_int"]
        R["sanity_int_exact"] = float(np.mean(ov["probe:sanity_int"] == exact_sums(ch, fa, fb)))
    return R


# ----------------------------------------------------------------------- fitting


def shape_of(chunk_name: str) -> str:
    tail = chunk_name.split("@")[-1] if "@" in chunk_name else "probe"
    return tail if tail in ("s16", "t256") else "probe"


def split_key(chunk) -> str | None:
    """Split-K is a choice of the library per call shape and K: one fitted (factor, K tile)
    per cuBLAS 16x16 or 256x256 product shape with K >= 1024; none elsewhere."""
    sh = shape_of(chunk.name)
    if sh in ("s16", "t256") and chunk.K >= 1024:
        return f"split_{sh}_K{chunk.K}"
    return None


def params_from(d: dict, out: str, key: str | None = None) -> mm.MMAParams:
    acc_format, ofb = d["acc"]
    split, tile = d.get(key, (1, 1)) if key else (1, 1)
    return mm.MMAParams(n=d["n"], F=d["F"], term_round=d["term_round"], prod_exp=d["prod_exp"],
                        out_frac_bits=ofb, acc_format=acc_format, out_round=d["out_round"],
                        promote=d["promote"], split=split, split_tile=tile, out=out,
                        k_order=d["k_order"])


def describe(d: dict, out: str) -> str:
    """Label of a parameter set, with the split-K (factor x K tile) per call shape."""
    s = params_from(d, out).label()
    splits = {k[6:]: v for k, v in sorted(d.items()) if k.startswith("split_") and v[0] > 1}
    if splits:
        s += " split-K " + ", ".join(f"{k}:{v[0]}x{v[1]}" for k, v in splits.items())
    return s


def key_of(d):
    return tuple(sorted(d.items()))


class Scorer:
    def __init__(self, chunks, fa, fb, fmt):
        self.chunks, self.fa, self.fb, self.fmt = chunks, fa, fb, fmt
        self.cache: dict = {}

    def score(self, d, names=None) -> tuple[int, int, int, dict]:
        key = (key_of(d), names)
        if key in self.cache:
            return self.cache[key]
        good = loose = total = 0
        per = {}
        for ch in self.chunks:
            if names is not None and ch.name not in names:
                continue
            prm = params_from(d, self.fmt, split_key(ch))
            if prm.promote and prm.promote < prm.n:
                s = l_ = np.zeros(len(ch.out), bool)
            else:
                pred = mm.mma_dot(ch.A, ch.B, self.fa, self.fb, ch.C, prm)
                s, l_ = same(pred, ch.out, self.fmt)
            per[ch.name] = (int(s.sum()), int(l_.sum()), len(ch.out))
            good += int(s.sum())
            loose += int(l_.sum())
            total += len(ch.out)
        self.cache[key] = (good, loose, total, per)
        return self.cache[key]


def descend(scorer, seed, axes, names, log):
    cur = dict(seed)
    best = scorer.score(cur, names)[0]
    changed = True
    while changed:
        changed = False
        for ax in axes:
            for v in (SPLITS if ax.startswith("split_") else AXES[ax]):
                if v == cur[ax]:
                    continue
                cand = dict(cur, **{ax: v})
                s = scorer.score(cand, names)[0]
                if s > best:
                    best, cur, changed = s, cand, True
                    log(f"    {ax}={v!r}: {s}")
    return cur, best


def published(group: str, path: str) -> dict:
    d = {"n": 16, "F": 25, "term_round": "rz", "prod_exp": "sum", "acc": ("float32", 23),
         "out_round": "rz", "promote": None, "k_order": "natural"}
    if group.startswith(("e4m3", "e5m2")):
        d.update(n=32, F=13, acc=("float32", 13))
        if path.endswith("slow"):
            d["promote"] = 128
        if path == "triton_imp32":
            d["promote"] = 32
    if group == "fp16acc":
        d.update(acc=("float16", 10), out_round="rne")
    return d


def fit_path(z, meta, g, path, log, quick=False) -> dict:
    fa, fb = meta["groups"][g]["formats"]
    fmt = meta["groups"][g]["out"][path]
    chunks = chunks_for(z, meta, g, path)
    if not chunks:
        return {}
    t0 = time.time()
    R = direct_readings(chunks, mm.FORMATS[fa], mm.FORMATS[fb], fmt)
    scorer = Scorer(chunks, fa, fb, fmt)
    short = tuple(c.name for c in chunks if c.K <= 256 and c.name != "probe:block_pos") + (
        ("probe:block_pos",) if any(c.name == "probe:block_pos" for c in chunks) else ())
    pub = published(g, path)
    seeds = [pub]
    Fr = R.get("trunc_k", {}).get("F")
    if Fr and AXES["F"][0] <= Fr <= AXES["F"][-1] and Fr != pub["F"]:
        seeds.append(dict(pub, F=Fr))
    fp8 = mm.FORMATS[fa].bits == 8
    if fp8:
        # what the block_pos and promo probes of PTX mma.sync fp8 suggest: two fp16-like
        # steps of 16 (k interleaved by pairs, operands widened to fp16) added into the
        # accumulator by an fp32 adder
        seeds.append(dict(pub, n=16, F=25, acc=("float32", 23), promote=32,
                          k_order="pairs2x16", prod_exp="sum_fp16"))
    axes = STRUCT_AXES if fp8 else tuple(a for a in STRUCT_AXES if a != "k_order")
    long_probe = tuple(c.name for c in chunks if shape_of(c.name) == "probe" and c.K > 256)
    results = []
    for seed in seeds:
        log(f"  seed {seed}")
        results.append(descend(scorer, seed, axes, short, log)[0])
    # the library-structure stage only for the best structural fit (it costs the most)
    cur = max(results, key=lambda d: scorer.score(d, short)[0])
    results.remove(cur)
    if not quick:
        # promotion: from the long probes, whose call shapes ran no split-K kernel
        if long_probe:
            cur, _ = descend(scorer, cur, ("promote",), long_probe, log)
        # split-K: per call shape and K, on the products of that shape and K only
        for key in sorted({split_key(c) for c in chunks} - {None}):
            names = tuple(c.name for c in chunks if split_key(c) == key)
            cur = dict(cur, **{key: cur.get(key, (1, 1))})
            good, _, total, _ = scorer.score(cur, names)
            if good < total:  # already exact without split-K: nothing to fit
                cur, _ = descend(scorer, cur, (key,), names, log)
    results.insert(0, cur)
    allnames = None
    best = max(results, key=lambda d: scorer.score(d, allnames)[0])
    # the published step model inside the library structure (promotion, split-K) fitted here
    pub_lib = dict(best, **{k: pub[k] for k in STRUCT_AXES if k != "promote"})
    table = []
    for d in [pub, best, pub_lib] + [r for r in results if r is not best]:
        good, loose, total, per = scorer.score(d, allnames)
        table.append({"params": describe(d, fmt), "match": good / total,
                      "match_ignoring_zero_sign": loose / total, "n_outputs": total,
                      "per_chunk": {k: v[0] / v[2] for k, v in per.items()}})
    evaluated = sorted(
        ({"params": describe(dict(k[0]), fmt), "set": "subset" if k[1] else "all",
          "match": v[0] / v[2]} for k, v in scorer.cache.items() if v[2]),
        key=lambda e: (e["set"], -e["match"]))
    evaluated = [e for e in evaluated if e["set"] == "all"] + [
        e for e in evaluated if e["set"] != "all"][:200]
    log(f"  {g}/{path}: best {table[1]['params']} -> {table[1]['match']:.4%} "
        f"(published {table[0]['match']:.4%}) [{time.time() - t0:.0f} s]")
    return {"group": g, "path": path, "out": fmt, "readings": R,
            "best": {k: v for k, v in best.items()}, "table": table, "evaluated": evaluated}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npz", type=Path, nargs="+", help="probe data set(s), merged")
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--groups", default="")
    ap.add_argument("--paths", default="")
    ap.add_argument("--quick", action="store_true", help="fit on K<=256 only")
    args = ap.parse_args(argv)
    z, meta = load(*args.npz)
    groups = [g for g in (args.groups.split(",") if args.groups else meta["groups"])]
    report = {"source": [str(p) for p in args.npz], "env": meta.get("env"), "fits": []}
    for g in groups:
        for path in meta["groups"][g]["paths"]:
            if args.paths and path not in args.paths.split(","):
                continue
            print(f"== {g} / {path}", flush=True)
            res = fit_path(z, meta, g, path, lambda m: print(m, flush=True), args.quick)
            if res:
                report["fits"].append(res)
                if args.json:
                    args.json.write_text(json.dumps(report, indent=1, default=str))
    print("\n| group | path | out | best parameters | match | published | published+library |")
    print("|---|---|---|---|---|---|---|")
    for r in report["fits"]:
        t = r["table"]
        print(f"| {r['group']} | {r['path']} | {r['out']} | {t[1]['params']} | "
              f"{t[1]['match']:.4%} | {t[0]['match']:.4%} | {t[2]['match']:.4%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
