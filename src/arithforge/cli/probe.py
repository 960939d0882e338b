"""``arithforge probe-gpu``: measure how this machine's CUDA GPU (through cuBLAS) accumulates."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .._errors import ArithforgeError
from . import command, int_arg, output_dir

__all__: list[str] = []


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="folder for probe.npz, the model files and the report")
    parser.add_argument("--quick", action="store_true",
                        help="a small shape grid (M, N in 16, 64, 1024; K in 1024, 8192)")
    parser.add_argument("--paths", default=None, metavar="P,P",
                        help="group/path names to probe (default: all; see the report)")
    parser.add_argument("--random", type=int_arg(1, 8), default=2, metavar="R",
                        help="random products per group, K and shape (default 2)")
    parser.add_argument("--from", dest="source", default=None, metavar="NPZ",
                        help="fit a recorded probe.npz again instead of probing (no GPU needed)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the built-in H100 presets instead of a GPU (checks the "
                             "pipeline on any machine)")


@command("probe-gpu", help="probe the CUDA GPU's tensor-core accumulation and fit a model file",
         configure=_configure)
def run(args: argparse.Namespace) -> int:
    """Probe the tensor-core accumulation of this machine's CUDA GPU through cuBLAS (PyTorch).

    Runs truncation probes and random products at one shape to fit each path's step (n, F,
    roundings, alignment, promotion), then window probes and random products at every shape of
    the grid to fit split-K per shape. Writes DIR/probe.npz (every input code and output bit
    pattern), DIR/probe_meta.json, one model file per path DIR/models/GROUP_PATH.json (give it
    to --model, or -O model=FILE, wherever a preset name is accepted) and DIR/report.md with
    the outputs each fitted model reproduces. Exit 1 if a fitted model misses a recorded output.
    """
    from ..formats import _gpu_probe as gp
    from ..formats import mma
    from ..formats import mma_probe as mp
    from ..formats._errors import FormatError

    out = output_dir(args.out)
    names = list(mp.PATHS) if args.paths is None else [p.strip() for p in args.paths.split(",")]
    bad = [n for n in names if n not in mp.PATHS]
    if bad:
        raise ArithforgeError(f"--paths: unknown path {bad[0]!r}; choose from "
                              f"{', '.join(mp.PATHS)}")
    paths = [mp.PATHS[n] for n in names]
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    if args.source is not None:
        try:
            arrays, meta = gp.load(args.source)
        except (OSError, ValueError) as exc:
            raise ArithforgeError(f"--from {args.source!r}: cannot read a probe.npz ({exc})"
                                  ) from None
        missing = [p.key for p in paths if f"out/{p.key}/step/trunc" not in arrays]
        if missing:
            raise ArithforgeError(f"--from {args.source!r} has no recording of {missing[0]}; "
                                  f"give --paths of those it has")
        out.mkdir(parents=True, exist_ok=True)
    else:
        try:
            backend: Any = gp.ModelBackend() if args.dry_run else gp.TorchBackend()
        except FormatError as exc:
            raise ArithforgeError(str(exc)) from None
        mn = mp.QUICK_MN if args.quick else mp.GRID_MN
        ks = mp.QUICK_K if args.quick else mp.GRID_K
        shapes = [(m, n) for m in mn for n in mn]
        arrays = gp.record_step(backend, paths, args.random, log)
        grid, meta = gp.record(backend, paths, shapes, ks, args.random, log)
        arrays.update(grid)
        out.mkdir(parents=True, exist_ok=True)
        gp.save(out / "probe.npz", arrays, meta)
        (out / "probe_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "models").mkdir(exist_ok=True)
    lines = [f"# arithforge probe-gpu: {meta['environment'].get('device', 'model')}", "",
             f"Environment: `{json.dumps(meta['environment'])}`", "",
             ("| path | fitted model | F read | step outputs | shapes | random outputs | "
              "windows | = preset |"), "|---|---|---|---|---|---|---|---|"]
    report: dict[str, Any] = {"environment": meta["environment"], "paths": {}}
    all_ok = True
    for path in paths:
        fit = gp.fit_path(arrays, path, log)
        model = fit["model"]
        mma.save_model(model, out / "models" / f"{path.group}_{path.name}.json")
        preset = mma.get_model(path.preset)
        same = gp.same_step(model, preset, path)
        rm = sum(r["random_match"] for r in fit["shapes"])
        rt = sum(r["random_total"] for r in fit["shapes"])
        wins = sum(r["windows_match"] for r in fit["shapes"])
        ok = rm == rt and fit["step_match"] == fit["step_total"] and wins == len(fit["shapes"])
        all_ok &= ok
        lines.append(f"| {path.key} | {model.label()} | {fit['frac_bits_read']} | "
                     f"{fit['step_match']}/{fit['step_total']} | {len(fit['shapes'])} | "
                     f"{rm}/{rt} | {wins}/{len(fit['shapes'])} | {'yes' if same else 'no'} |")
        report["paths"][path.key] = {k: v for k, v in fit.items() if k != "model"} | {
            "model": mma.model_to_dict(model), "equals_preset": same, "preset": path.preset}
    lines += ["", "Split-K per shape (`parts x tile`; 1 = no split):", ""]
    for key, rep in report["paths"].items():
        splits = [f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}: {r['split']}x"
                  f"{r['split_tile']}" for r in rep["shapes"] if r["split"] > 1]
        lines.append(f"- {key}: {', '.join(splits) or 'no split at any shape'}")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print("\n".join(lines))
    return 0 if all_ok else 1
