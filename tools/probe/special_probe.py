#!/usr/bin/env python3
# Ref: IEEE Std 754-2019 §6.2 (NaN propagation), §7.4 (overflow); OCP 8-bit FP spec v1.0 §4
#      (e4m3fn has no infinity, e5m2 has); NVIDIA PTX ISA 8.x "mma" (NaN/Inf handling is not
#      specified there, hence this probe).
"""Probe how NVIDIA tensor-core paths treat special values and non-power-of-two scales.

Two sets, written to one ``.npz`` (keys in ``data/tensorcore/README.md``):

* ``special/{group}``: 16x16xK products (K = 256) whose diagonal entries are designed queries
  (NaN codes with payloads, infinities, Inf - Inf in one step / in two steps / across a
  promotion block, Inf * 0, products and sums that overflow a step or the float32 accumulator,
  overflow at the bf16/fp16 output conversion, NaN/Inf/-0 in ``c``); off-diagonal entries mix
  rows and columns of different queries (recorded and replayed too). Every path of
  ``tensorcore_probe.py`` that the group has, plus ``scaled_mm_f16_*`` (fp16 output).
* ``scale/{group}/{mode}``: random fp8 products through ``torch._scaled_mm`` with random
  non-power-of-two float32 scales, ``mode`` ``tensor`` (0-d scales) or ``row`` (``scale_a``
  ``(M, 1)``, ``scale_b`` ``(1, N)``), with float32, bfloat16 and float16 outputs, fast
  accumulation off and on.

Usage::

    python tools/probe/special_probe.py --out OUTDIR            # on a CUDA machine
    python tools/probe/special_probe.py --out OUTDIR --dry-run  # CPU: torch on the CPU

Outputs ``OUTDIR/h100_special.npz`` and ``OUTDIR/h100_special_meta.json``. In ``--dry-run`` the
cuBLAS paths run through torch's CPU kernels and the ``mma_sync``/``triton`` paths through a
float32 stand-in: it checks the plumbing only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "src"))
import tensorcore_probe as tp  # noqa: E402

from arithforge.formats import FloatFormat, Rounding, get_format  # noqa: E402

GROUPS = {
    "e4m3xe4m3": ("float8_e4m3fn", "float8_e4m3fn"),
    "e5m2xe4m3": ("float8_e5m2", "float8_e4m3fn"),
    "e5m2xe5m2": ("float8_e5m2", "float8_e5m2"),
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("float16", "float16"),
}
K = 256
SCALED = [f"scaled_mm_{o}_{a}" for o in ("f32", "bf16", "f16") for a in ("slow", "fast")]
OUT_DTYPE = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def paths_for(group: str) -> list[str]:
    if group == "e5m2xe5m2":  # torch._scaled_mm refuses e5m2 x e5m2
        return ["mma_sync", "triton", "triton_imp32"]
    if group.startswith("e"):
        return SCALED + ["mma_sync", "triton", "triton_imp32"]
    return ["torch_mm_f32out", "torch_matmul", "torch_matmul_noreduced", "mma_sync", "triton"]


def out_format(group: str, path: str) -> str:
    if path.startswith("scaled_mm"):
        return OUT_DTYPE[path.split("_")[2]]
    if path in ("torch_matmul", "torch_matmul_noreduced"):
        return "bfloat16" if group == "bf16" else "float16"
    return "float32"


def takes_c(path: str) -> bool:
    return path in ("mma_sync", "triton", "triton_imp32")


# ----------------------------------------------------------------------------- special cases


def _codes(fmt: FloatFormat) -> dict[str, list[int]]:
    """NaN and infinity codes of ``fmt``, found by decoding every code (16-bit: a sample)."""
    allc = np.arange(1 << fmt.bits, dtype=np.uint32).astype(fmt.code_dtype)
    v = fmt.decode(allc)
    nan = [int(c) for c in allc[np.isnan(v)]]
    inf = [int(c) for c in allc[np.isinf(v)]]
    if fmt.bits == 16:  # the quiet ones (canonical), payloads, signalling ones, negatives
        q = 1 << (fmt.man_bits - 1)
        top = ((1 << fmt.exp_bits) - 1) << fmt.man_bits
        nan = [top | q, 0x8000 | top | q, top | q | 0x15, top | 1, 0x8000 | top | 0x2a]
    return {"nan": nan, "inf": inf}


def build_special(group: str, seed: int = 17) -> dict[str, np.ndarray]:
    """Queries ``c + A[q] . B[:, q]`` on the diagonal of ``nb`` 16x16xK products."""
    fa, fb = (get_format(n) for n in GROUPS[group])
    rng = np.random.default_rng(seed)
    enc_a = lambda x: int(fa.encode(np.float64(x), Rounding.RNE))  # noqa: E731
    enc_b = lambda x: int(fb.encode(np.float64(x), Rounding.RNE))  # noqa: E731
    ca, cb = _codes(fa), _codes(fb)
    maxa, maxb = fa.max_finite, fb.max_finite
    f32 = get_format("float32")
    queries: list[tuple[str, list[tuple[int, int, int]], int, bool]] = []

    def q(what: str, entries: list[tuple[int, float | int, float | int]], c: float | int = 0.0,
          bg: bool = True) -> None:
        """``entries``: (k, a, b), a float value or ('code', int) via an int code."""
        ents = []
        for k, a, b in entries:
            ac = a if isinstance(a, int) and not isinstance(a, bool) else enc_a(a)
            bc = b if isinstance(b, int) and not isinstance(b, bool) else enc_b(b)
            ents.append((k, ac, bc))
        cc = c if isinstance(c, int) else int(f32.encode(np.float64(c), Rounding.RNE))
        queries.append((what, ents, cc, bg))

    one_b = enc_b(1.0)
    # NaN codes of A (and of B), at the first, a middle and a late position
    for nc in ca["nan"]:
        for k in (0, 37):
            q(f"a=nan{nc:#x}@{k}", [(k, nc, one_b)])
    for nc in cb["nan"][:2]:
        q(f"b=nan{nc:#x}@5", [(5, enc_a(1.0), nc)])
    q("nan*0", [(3, ca["nan"][0], enc_b(0.0))], bg=False)
    q("two nans", [(1, ca["nan"][-1], one_b), (2, ca["nan"][0], one_b)])
    if ca["inf"]:
        pinf, ninf = sorted(ca["inf"])  # +inf has the smaller code
        q("+inf*1", [(4, pinf, one_b)])
        q("-inf*1", [(4, ninf, one_b)])
        q("+inf*-1", [(4, pinf, enc_b(-1.0))])
        q("inf*0", [(4, pinf, enc_b(0.0))], bg=False)
        q("inf*max", [(4, pinf, enc_b(maxb))])
        q("inf*min_sub", [(4, pinf, 1)], bg=False)
        q("+inf-inf same step", [(0, pinf, one_b), (1, ninf, one_b)])
        q("+inf-inf steps 0,2", [(0, pinf, one_b), (40, ninf, one_b)])
        q("+inf-inf promo blocks", [(0, pinf, one_b), (200, ninf, one_b)])
        q("+inf+inf", [(0, pinf, one_b), (100, pinf, one_b)])
        q("inf and nan", [(0, pinf, one_b), (9, ca["nan"][0], one_b)])
        q("+inf -max", [(0, pinf, one_b), (1, enc_a(-maxa), enc_b(maxb))])
        q("+inf c=-inf", [(0, pinf, one_b)], c=float("-inf"))
    if cb["inf"]:
        q("b=+inf*a=-2", [(6, enc_a(-2.0), sorted(cb["inf"])[0])])
    # overflow: products and sums beyond float32 (bf16 only), or at the output conversion
    big = min(maxa, 2.0 ** 63 * 1.5)
    bigb = min(maxb, 2.0 ** 63 * 1.5)
    q("max*max", [(2, enc_a(maxa), enc_b(maxb))], bg=False)
    q("-max*max", [(2, enc_a(-maxa), enc_b(maxb))], bg=False)
    q("max*max x32", [(k, enc_a(maxa), enc_b(maxb)) for k in range(32)], bg=False)
    q("big*big x2 same step", [(0, big, bigb), (1, big, bigb)], bg=False)
    q("big x2 -big same step", [(0, big, bigb), (1, big, bigb), (2, -big, bigb)], bg=False)
    q("big x2 then -big next step", [(0, big, bigb), (1, big, bigb), (40, -big, bigb)],
      bg=False)
    q("big then big next step", [(0, big, bigb), (40, big, bigb)], bg=False)
    q("big x2 across promotion", [(0, big, bigb), (130, big, bigb)], bg=False)
    q("max all k", [(k, enc_a(maxa), enc_b(maxb)) for k in range(K)], bg=False)
    q("c=f32max +big", [(0, big, bigb)], c=0x7F7FFFFF, bg=False)
    q("c=f32max +1", [(0, 1.0, 1.0)], c=0x7F7FFFFF, bg=False)
    for name, fmt in (("bf16", get_format("bfloat16")), ("fp16", get_format("float16"))):
        # sums just below/at/above the midpoint between max_finite and the next binade
        mx = fmt.max_finite
        ulp = 2.0 ** (fmt.emax - fmt.man_bits)
        for frac, tag in ((0.25, "below mid"), (0.5, "mid"), (0.75, "above mid"), (1.0, "1ulp"),
                          (-0.5, "minus half")):
            ents: list[tuple[int, float | int, float | int]] = []
            # split mx and frac*ulp into representable products
            for k, v in enumerate(_as_products(mx, fa, fb) + _as_products(frac * ulp, fa, fb)):
                ents.append((k, v[0], v[1]))
            if ents:
                q(f"{name} out max+{frac}ulp ({tag})", ents, bg=False)
            negs = [(k, -a, b) for k, a, b in ents]
            if negs and frac == 0.5:
                q(f"{name} out -(max+{frac}ulp)", negs, bg=False)
    # NaN, infinity and signed zero in c (paths that take c)
    q("c=nan payload", [], c=0x7FC12345)
    q("c=-nan", [], c=0xFFC00001)
    q("c=snan", [], c=0x7F800001)
    q("c=+inf", [], c=float("inf"))
    q("c=-inf", [], c=float("-inf"))
    q("c=-0 zero products", [], c=0x80000000, bg=False)
    q("c=-0 -0 products", [(k, enc_a(-0.0), enc_b(1.0)) for k in range(4)],
      c=0x80000000, bg=False)
    q("-0 products", [(k, int(enc_a(-0.0)), enc_b(1.0)) for k in range(4)], bg=False)
    q("exact cancel", [(0, 2.0, 3.0), (50, -2.0, 3.0)], bg=False)
    q("all zero", [], bg=False)
    q("nan in c and a", [(0, ca["nan"][0], one_b)], c=0x7FC12345)
    # pack into 16-query products
    nb = -(-len(queries) // 16)
    A = np.zeros((nb, 16, K), fa.code_dtype)
    B = np.zeros((nb, K, 16), fb.code_dtype)
    C = np.zeros((nb, 16, 16), np.uint32)
    what = np.full((nb, 16), "", dtype=object)
    for i, (w, ents, cc, bg) in enumerate(queries):
        p, r = divmod(i, 16)
        if bg:  # small random background: exponents around 0, both signs
            A[p, r] = fa.encode(rng.choice([-1, 1], K) * 2.0 ** rng.integers(-4, 3, K)
                                * rng.uniform(1, 2, K), Rounding.RNE)
            B[p, :, r] = fb.encode(rng.choice([-1, 1], K) * 2.0 ** rng.integers(-4, 3, K)
                                   * rng.uniform(1, 2, K), Rounding.RNE)
        for k, ac, bc in ents:
            A[p, r, k] = ac
            B[p, k, r] = bc
        C[p, r, r] = cc
        what[p, r] = w
    return {"A": A, "B": B, "C": C, "what": what.astype(str)}


def _as_products(v: float, fa: FloatFormat, fb: FloatFormat) -> list[tuple[float, float]]:
    """``v`` as a few exact products ``a * b`` of the two formats (greedy, by significand
    chunks of at most ``min(precision)`` bits); [] when the formats cannot reach it."""
    out = []
    rest = float(v)
    p = min(fa.precision, fb.precision)
    for _ in range(8):
        if rest == 0:
            break
        e = int(np.floor(np.log2(abs(rest))))
        chunk = np.floor(abs(rest) / 2.0 ** (e - p + 1)) * 2.0 ** (e - p + 1) * np.sign(rest)
        # chunk = m * 2**(e-p+1), m < 2**p: a = m * 2**ea, b = 2**eb
        ea = min(fa.emax, e) - p + 1
        a = chunk / 2.0 ** (e - p + 1) * 2.0 ** ea
        b = 2.0 ** (e - p + 1 - ea)
        if not (fa.decode(fa.encode(np.float64(a), Rounding.RNE)) == a
                and fb.decode(fb.encode(np.float64(b), Rounding.RNE)) == b):
            return []
        out.append((a, b))
        rest -= chunk
    return out if rest == 0 else []


# ----------------------------------------------------------------------------- scale cases


def build_scale(group: str, mode: str, n: int = 12, m_rows: int = 32, k: int = 256,
                seed: int = 3109) -> dict[str, np.ndarray]:
    """Random fp8 products with random non-power-of-two float32 scales."""
    fa, fb = (get_format(x) for x in GROUPS[group])
    rng = np.random.default_rng(seed + (mode == "row"))
    A = np.empty((n, m_rows, k), fa.code_dtype)
    B = np.empty((n, k, m_rows), fb.code_dtype)
    for i in range(n):
        A[i] = fa.encode(rng.normal(size=(m_rows, k)) * 2.0 ** rng.integers(-3, 4), Rounding.RNE)
        B[i] = fb.encode(rng.normal(size=(k, m_rows)) * 2.0 ** rng.integers(-3, 4), Rounding.RNE)
    shape_a = (n, 1, 1) if mode == "tensor" else (n, m_rows, 1)
    shape_b = (n, 1, 1) if mode == "tensor" else (n, 1, m_rows)
    sa = (2.0 ** rng.uniform(-12, 12, shape_a)).astype(np.float32)
    sb = (2.0 ** rng.uniform(-12, 12, shape_b)).astype(np.float32)
    # extremes: overflow past float32 (and past bf16/fp16) and results in the subnormal range
    sa[-2], sb[-2] = np.float32(3.1e19), np.float32(7.7e19)
    sa[-1], sb[-1] = np.float32(1.3e-22), np.float32(2.9e-21)
    sa[-3], sb[-3] = np.float32(301.7), np.float32(229.3)  # fp16 output overflow
    return {"A": A, "B": B, "scale_a": sa.view(np.uint32), "scale_b": sb.view(np.uint32)}


# ----------------------------------------------------------------------------- backends


class Runner:
    """Runs one 16x16 (or MxN) product through a path, on the GPU or (dry run) the CPU."""

    def __init__(self, dry: bool, log):
        import torch

        self.torch = torch
        self.dry = dry
        self.dev = torch.device("cpu" if dry else "cuda")
        self.cuda = None if dry else tp.CudaBackend(log)

    def tensor(self, codes: np.ndarray, fmt: str):
        torch = self.torch
        arr = np.ascontiguousarray(codes)
        t = torch.from_numpy(arr.view(np.int16) if arr.dtype == np.uint16 else arr)
        return t.to(self.dev).view(getattr(torch, fmt))

    def bits(self, t) -> np.ndarray:
        torch = self.torch
        t = t.contiguous().cpu()
        if t.dtype == torch.float32:
            return t.view(torch.int32).numpy().view(np.uint32)
        return t.view(torch.int16).numpy().view(np.uint16)

    def scaled_mm(self, path: str, group: str, A, B, sa, sb):
        torch = self.torch
        fa, fb = GROUPS[group]
        a = self.tensor(A, fa)
        bt = self.tensor(np.ascontiguousarray(B.T), fb)
        sa_t = torch.from_numpy(np.ascontiguousarray(sa).view(np.float32)).to(self.dev)
        sb_t = torch.from_numpy(np.ascontiguousarray(sb).view(np.float32)).to(self.dev)
        od = getattr(torch, OUT_DTYPE[path.split("_")[2]])
        out = torch._scaled_mm(a, bt.t(), scale_a=sa_t, scale_b=sb_t, out_dtype=od,
                               use_fast_accum=path.endswith("fast"))
        return self.bits(out)

    def run(self, group: str, path: str, A, B, C) -> np.ndarray:
        """``C + A @ B`` (C only on paths that take it); output bits."""
        torch = self.torch
        fa, fb = GROUPS[group]
        one = np.array(1.0, np.float32).view(np.uint32)
        if path.startswith("scaled_mm"):
            return self.scaled_mm(path, group, A, B, one, one)
        if self.dry:  # stand-ins for the GPU-only paths
            a = self.tensor(A, fa).float()
            b = self.tensor(B, fb).float()
            if path.startswith("torch"):
                a, b = self.tensor(A, fa), self.tensor(B, fb)
                r = torch.matmul(a, b)
                return self.bits(r.float() if path == "torch_mm_f32out" else r)
            c = torch.from_numpy(C.view(np.float32).copy())
            return self.bits(c + a @ b)
        if path.startswith("torch"):
            bt = np.ascontiguousarray(B.T)
            out = self.cuda.cublas(path, self.cuda.tensor(A, fa), self.cuda.tensor(bt, fb))
            torch.cuda.synchronize()
            return self.cuda.bits(out)
        c32 = C.view(np.float32)
        if path == "mma_sync":
            A3 = np.stack([A, A])
            B3 = np.stack([B.T[:8], B.T[8:]])
            C3 = np.stack([c32[:, :8], c32[:, 8:]])
            D = self.cuda.mma_run(group, path, A3, B3, C3)
            return np.concatenate([D[0], D[1]], axis=1)
        if path.startswith("triton"):
            D = self.cuda.triton_run(group, path, np.tile(A, (4, 1))[None], B[None],
                                     np.tile(c32, (4, 1))[None])
            blocks = D[0].reshape(4, 16, 16)
            if not np.all(blocks == blocks[:1]):
                raise RuntimeError("repeated rows disagree")
            return D[0, :16]
        raise ValueError(path)


# ----------------------------------------------------------------------------- driver


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--groups", default=",".join(GROUPS))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / "special_probe.log", "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    t0 = time.time()
    runner = Runner(args.dry_run, log)
    backend = tp.SimBackend() if args.dry_run else runner.cuda
    meta = {"env": tp.environment(backend), "groups": {}, "errors": {}, "argv": sys.argv,
            "K": K}
    log(json.dumps(meta["env"], indent=1, default=str))
    arrays: dict[str, np.ndarray] = {}
    groups = [g for g in args.groups.split(",") if g]
    for g in groups:
        sp = build_special(g)
        meta["groups"][g] = {"formats": GROUPS[g], "paths": paths_for(g),
                             "out": {p: out_format(g, p) for p in paths_for(g)},
                             "special_queries": int((sp["what"] != "").sum())}
        for key, v in sp.items():
            arrays[f"special/{g}/{key}"] = v
        for path in paths_for(g):
            try:
                outs = [runner.run(g, path, sp["A"][i], sp["B"][i],
                                   sp["C"][i] if takes_c(path) else np.zeros((16, 16), np.uint32))
                        for i in range(len(sp["A"]))]
                arrays[f"special/{g}/out/{path}"] = np.stack(outs)
            except Exception:
                meta["errors"][f"special/{g}/{path}"] = traceback.format_exc()[-1500:]
        log(f"{g}: special done ({time.time() - t0:.1f} s)")
        if not g.startswith("e") or g == "e5m2xe5m2":
            continue
        for mode in ("tensor", "row"):
            sc = build_scale(g, mode)
            for key, v in sc.items():
                arrays[f"scale/{g}/{mode}/{key}"] = v
            for path in SCALED:
                try:
                    outs = [runner.scaled_mm(path, g, sc["A"][i], sc["B"][i],
                                             sc["scale_a"][i].reshape(()) if mode == "tensor"
                                             else sc["scale_a"][i],
                                             sc["scale_b"][i].reshape(()) if mode == "tensor"
                                             else sc["scale_b"][i])
                            for i in range(len(sc["A"]))]
                    arrays[f"scale/{g}/{mode}/out/{path}"] = np.stack(outs)
                except Exception:
                    meta["errors"][f"scale/{g}/{mode}/{path}"] = traceback.format_exc()[-1500:]
            log(f"{g}: scale/{mode} done ({time.time() - t0:.1f} s)")
    if not args.dry_run:
        meta["triton_asm"] = runner.cuda.triton_info
    meta["elapsed_s"] = round(time.time() - t0, 1)
    arrays["meta"] = np.array(json.dumps(meta, default=str))
    np.savez_compressed(args.out / "h100_special.npz", **arrays)
    (args.out / "h100_special_meta.json").write_text(json.dumps(meta, indent=1, default=str))
    for k, v in meta["errors"].items():
        log(f"ERROR {k}: {v.strip().splitlines()[-1]}")
    log(f"done in {time.time() - t0:.1f} s; {len(meta['errors'])} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
