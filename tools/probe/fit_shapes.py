#!/usr/bin/env python3
"""Fit cuBLAS split-K per call shape from ``h100_shapes.npz`` and write the presets' table.

For every path and shape: the part lengths that explain every window probe, then the first of
them whose model (the path's preset with that split) reproduces every random output bit for
bit. Writes ``src/arithforge/formats/_h100_shapes.py`` (``SHAPE_SPLITS`` per preset) and a JSON
report with the match rate per path and shape.

    PYTHONPATH=src python3 tools/probe/fit_shapes.py data/tensorcore/h100_shapes.npz \\
        --json data/tensorcore/h100_shapes_fit.json --table src/arithforge/formats/_h100_shapes.py
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
    ap.add_argument("npz", type=Path, nargs="+")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path)
    ap.add_argument("--paths", default=None)
    args = ap.parse_args(argv)
    arrays: dict = {}
    meta: dict = {}
    for f in args.npz:
        a, m = gp.load(f)
        arrays.update(a)
        meta = meta or m
    env = meta.get("environment", {})
    keys = list(mp.PATHS) if args.paths is None else args.paths.split(",")
    report: dict = {"environment": env, "paths": {}}
    tables: dict[str, list] = {}
    t0 = time.time()
    for key in keys:
        path = mp.PATHS[key]
        cache: dict = {}
        rows = []
        for shape in sorted(gp.shapes_of(arrays, key)):
            reads, rands = gp.readings(arrays, path, shape)
            fit = mp.fit_split(path, shape[2], reads, rands, cache=cache)
            s = f"{shape[0]}x{shape[1]}x{shape[2]}"
            ok = arrays.get(f"ok/{key}/{s}")
            rows.append({"shape": list(shape), "part": fit["part"], "split": fit["split"],
                         "split_tile": fit["split_tile"], "match": fit["match"],
                         "total": fit["total"], "candidates": fit["candidates"][:8],
                         "tried": fit["tried"],
                         "blocks_consistent": None if ok is None else bool(ok.all())})
            tables.setdefault(path.preset, []).append(
                (path.output, *shape, fit["split"], fit["split_tile"]))
        m = sum(r["match"] for r in rows)
        t = sum(r["total"] for r in rows)
        report["paths"][key] = {"preset": path.preset, "output": path.output, "match": m,
                                "total": t, "shapes": rows}
        print(f"[{time.time() - t0:6.1f}s] {key}: {m}/{t} random outputs; splits: "
              + ", ".join(f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}={r['split']}x"
                          f"{r['split_tile']}" for r in rows if r["split"] > 1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.table:
        used = {k: env.get(k) for k in ("device", "torch", "cuda", "cublas", "driver")}
        lines = ['"""cuBLAS split-K per call shape of the H100 presets (generated: do not edit).',
                 "", ("Written by ``tools/probe/fit_shapes.py`` from ``data/tensorcore/"
                      "h100_shapes.npz``; measured with:"), *(f"{k}: {v}" for k, v in used.items()),
                 "Entries: (output, M, N, K, split, split_tile).", '"""', "",
                 "MEASURED_WITH: dict[str, object] = {",
                 *(f"    {k!r}: {v!r}," for k, v in used.items()), "}",
                 "", "SHAPE_SPLITS: dict[str, tuple[tuple[str, int, int, int, int, int], ...]] = {"]
        for preset, entries in sorted(tables.items()):
            lines.append(f"    {preset!r}: (")
            for e in sorted(set(entries)):
                lines.append(f"        {e!r},")
            lines.append("    ),")
        lines.append("}")
        args.table.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
