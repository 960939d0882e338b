#!/usr/bin/env python3
# Ref: docs/tensor-cores.md ("Special values", "Scales"); data/tensorcore/README.md (keys).
"""Replay ``data/tensorcore/h100_special.npz`` through the ``formats.mma`` presets.

Prints, per group and path, how many recorded output codes the preset reproduces bit for bit
(special-value products: every entry of every 16x16 product; scale products: every entry of
every M x N product), and the first mismatches.

Usage::

    PYTHONPATH=src python tools/probe/special_match.py [--npz PATH] [--show N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from arithforge.formats import mma  # noqa: E402

GROUPS = {
    "e4m3xe4m3": ("float8_e4m3fn", "float8_e4m3fn"),
    "e5m2xe4m3": ("float8_e5m2", "float8_e4m3fn"),
    "e5m2xe5m2": ("float8_e5m2", "float8_e5m2"),
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("float16", "float16"),
}
OUT = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def preset_for(group: str, path: str) -> mma.MMAModel:
    """The preset that models a recorded path, with its output format."""
    fp8 = group.startswith("e")
    if path.startswith("scaled_mm"):
        m = mma.get_model("h100-fp8" if path.endswith("slow") else "h100-fp8-fastacc")
        return dataclasses.replace(m, output=OUT[path.split("_")[2]])
    if path == "mma_sync":
        return mma.get_model("h100-fp8-mma-sync" if fp8 else f"h100-{group}")
    if path == "triton":
        return mma.get_model("h100-fp8-fastacc" if fp8 else f"h100-{group}")
    if path == "triton_imp32":
        return dataclasses.replace(mma.get_model("h100-fp8-fastacc"), promote=32)
    if path == "torch_mm_f32out":
        return mma.get_model(f"h100-{group}")
    assert path in ("torch_matmul", "torch_matmul_noreduced"), path
    return dataclasses.replace(mma.get_model(f"h100-{group}"),
                               output="bfloat16" if group == "bf16" else "float16")


def takes_c(path: str) -> bool:
    return path in ("mma_sync", "triton", "triton_imp32")


def replay(z: np.lib.npyio.NpzFile, prefix: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(model output, recorded output) of one recorded set and path, both (n, M, N) codes."""
    parts = prefix.split("/")
    group = parts[1]
    fa, fb = GROUPS[group]
    m = preset_for(group, path)
    A, B = z[prefix + "/A"], z[prefix + "/B"]
    want = z[f"{prefix}/out/{path}"]
    got = []
    for i in range(len(A)):
        kw = {}
        if parts[0] == "special" and takes_c(path):
            kw["c"] = z[prefix + "/C"][i]
        if parts[0] == "scale":
            kw["scale_a"] = z[prefix + "/scale_a"][i].view(np.float32)
            kw["scale_b"] = z[prefix + "/scale_b"][i].view(np.float32)
        got.append(mma.matmul(A[i], B[i], fa, fb, model=m, **kw))
    return np.stack(got).astype(np.uint32), want.astype(np.uint32)


def sets(z: np.lib.npyio.NpzFile) -> list[tuple[str, str]]:
    """(prefix, path) of every recorded output."""
    out = []
    for key in sorted(z.files):
        if "/out/" in key:
            prefix, path = key.split("/out/")
            out.append((prefix, path))
    return out


#: Candidate orders of the float32 scale epilogue, ``r`` the float32 accumulation result.
SCALE_ORDERS = {
    "r*(sa*sb)": lambda r, a, b: r * (a * b),
    "(r*sb)*sa": lambda r, a, b: (r * b) * a,
    "(r*sa)*sb": lambda r, a, b: (r * a) * b,
    "exact": lambda r, a, b: (r.astype(np.float64) * a.astype(np.float64)
                              * b.astype(np.float64)).astype(np.float32),
}


def scale_orders(z: np.lib.npyio.NpzFile) -> None:
    """Match rate of each candidate scale order on the float32-output scale recordings."""
    print("| set | path | " + " | ".join(SCALE_ORDERS) + " |")
    print("|---|---|" + "---|" * len(SCALE_ORDERS))
    for prefix, path in sets(z):
        if not prefix.startswith("scale") or "_f32_" not in path:
            continue
        group = prefix.split("/")[1]
        fa, fb = GROUPS[group]
        m = preset_for(group, path)
        sa = z[prefix + "/scale_a"].view(np.float32)
        sb = z[prefix + "/scale_b"].view(np.float32)
        want = z[f"{prefix}/out/{path}"]
        ok = dict.fromkeys(SCALE_ORDERS, 0)
        for i in range(len(want)):
            r = mma.matmul(z[prefix + "/A"][i], z[prefix + "/B"][i], fa, fb, model=m
                           ).view(np.float32)
            for name, fn in SCALE_ORDERS.items():
                with np.errstate(over="ignore", invalid="ignore"):
                    ok[name] += int((fn(r, sa[i], sb[i]).view(np.uint32) == want[i]).sum())
        print(f"| {prefix} | {path} | "
              + " | ".join(f"{100 * v / want.size:.1f}%" for v in ok.values()) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--npz", type=Path, default=ROOT / "data/tensorcore/h100_special.npz")
    ap.add_argument("--show", type=int, default=3, help="mismatches shown per path")
    ap.add_argument("--scale-orders", action="store_true",
                    help="instead: match rates of candidate scale orders (float32 outputs)")
    args = ap.parse_args(argv)
    z = np.load(args.npz)
    if args.scale_orders:
        scale_orders(z)
        return 0
    total_ok = total = 0
    print("| set | path | preset | matched | outputs |\n|---|---|---|---|---|")
    for prefix, path in sets(z):
        got, want = replay(z, prefix, path)
        ok = int((got == want).sum())
        total_ok += ok
        total += want.size
        print(f"| {prefix} | {path} | {preset_for(prefix.split('/')[1], path).label()} | "
              f"{ok} | {want.size} |")
        bad = np.argwhere(got != want)
        for idx in bad[: args.show]:
            what = ""
            if prefix.startswith("special") and idx[1] == idx[2]:
                what = str(z[prefix + "/what"][idx[0], idx[1]])
            print(f"    at {tuple(int(i) for i in idx)} {what}: model {int(got[tuple(idx)]):#x}, "
                  f"recorded {int(want[tuple(idx)]):#x}")
    print(f"total: {total_ok} / {total} output codes reproduced")
    return 0 if total_ok == total else 1


if __name__ == "__main__":
    sys.exit(main())
