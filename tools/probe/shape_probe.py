#!/usr/bin/env python3
"""Record the shape grid of cuBLAS split-K behaviour (``data/tensorcore/h100_shapes.npz``).

Window probes and random 16x16xK products of every path of ``arithforge.formats.mma_probe.PATHS``
at every shape of the grid (M, N in GRID_MN, K in GRID_K), through PyTorch on the first CUDA
GPU; ``--dry-run`` runs the library model instead. Fit and replay: ``fit_shapes.py``.

    PYTHONPATH=src python3 tools/probe/shape_probe.py --out OUT [--kernels]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from arithforge.formats import _gpu_probe as gp
from arithforge.formats import mma_probe as mp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true", help="the model instead of a GPU")
    ap.add_argument("--kernels", action="store_true", help="record kernel names (profiler)")
    ap.add_argument("--random", type=int, default=2, help="random products per group and K")
    ap.add_argument("--mn", default=",".join(map(str, mp.GRID_MN)))
    ap.add_argument("--k", default=",".join(map(str, mp.GRID_K)))
    ap.add_argument("--square-only", action="store_true")
    args = ap.parse_args(argv)
    mns = [int(x) for x in args.mn.split(",")]
    shapes = [(m, n) for m in mns for n in mns if not args.square_only or m == n]
    ks = [int(x) for x in args.k.split(",")]
    backend = gp.ModelBackend() if args.dry_run else gp.TorchBackend()
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:7.1f}s] {msg}", flush=True)

    arrays, meta = gp.record(backend, mp.PATHS.values(), shapes, ks, args.random, log,
                             kernels=args.kernels)
    args.out.mkdir(parents=True, exist_ok=True)
    gp.save(args.out / "h100_shapes.npz", arrays, meta)
    if (args.out / "h100_shapes.npz").stat().st_size > 15 << 20:  # the device returns <= 16 MiB
        rand = {k: v for k, v in arrays.items() if k.startswith("rand/")}
        gp.save(args.out / "h100_shapes.npz", {k: v for k, v in arrays.items()
                                               if k not in rand}, meta)
        gp.save(args.out / "h100_shapes_rand.npz", rand, {})
    (args.out / "h100_shapes_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    log(f"wrote {args.out}; environment {meta['environment']}; "
        f"inconsistent {len(meta['inconsistent'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
