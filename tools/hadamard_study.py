"""Measure 4-bit formats with and without a block Hadamard rotation on MiniLM and the digits CNN.

Each point is one ``arithforge evaluate TRACE --weights F --acts F [--scaling S] --transform T``
(the exact datapath: the rotation and the quantization are what is measured); the table in
docs/accuracy.md ("Hadamard rotation before 4-bit quantization") is this script's report.

Usage (from the repository root)::

    .venv/bin/python tools/hadamard_study.py measure [--traces DIR]
    .venv/bin/python tools/hadamard_study.py report

``measure`` evaluates every point not yet in ``data/studies/hadamard.json`` and writes it back;
``report`` prints the Markdown table, each row with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "data" / "studies" / "hadamard.json"

WORKLOADS = {"minilm": "minilm", "digits-cnn": "digits"}
#: (format, scaling or None for the format's own block scaling).
FORMATS = [("mxfp4_e2m1", None), ("nvfp4", None), ("int4", "per-channel")]
TRANSFORMS = ["none", "hadamard:16", "hadamard:32", "hadamard:128", "rht:32:0"]


def _key(workload: str, fmt: str, scaling: str | None, transform: str) -> str:
    return f"{workload}|{fmt}|{scaling or 'block'}|{transform}"


def _command(trace: str, fmt: str, scaling: str | None, transform: str) -> str:
    cmd = f"arithforge evaluate {trace} --weights {fmt} --acts {fmt}"
    if scaling:
        cmd += f" --scaling {scaling}"
    if transform != "none":
        cmd += f" --transform {transform}"
    return cmd


def measure(traces: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from arithforge.workloads.evaluate import evaluate

    done: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for workload, sub in WORKLOADS.items():
        for fmt, scaling in FORMATS:
            for transform in TRANSFORMS:
                key = _key(workload, fmt, scaling, transform)
                if key in done:
                    continue
                r = evaluate(traces / sub, fmt, fmt, "exact", None, scaling or "per-tensor",
                             transform=transform)
                m = r["end_metric"]
                done[key] = {
                    "command": _command(f"build/accuracy-traces/{sub}", fmt, scaling, transform),
                    "sqnr_db_mean": r["summary"]["sqnr_db_mean"],
                    "sqnr_db_min": r["summary"]["sqnr_db_min"],
                    "sqnr_db_pooled": r["summary"]["sqnr_db_pooled"],
                    "metric": m["name"], "value": m["value"], "fp32": m["fp32"],
                    "extra": {k: v for k, v in m.items()
                              if k in ("cosine_to_fp32_mean", "agreement_with_fp32")},
                }
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
                print(key, done[key]["sqnr_db_mean"], done[key]["value"], flush=True)


def report() -> None:
    done = json.loads(RESULTS.read_text())
    print("| workload | format | transform | SQNR dB mean | min | pooled | end metric | "
          "cos / agree | command |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for workload in WORKLOADS:
        for fmt, scaling in FORMATS:
            for transform in TRANSFORMS:
                r = done.get(_key(workload, fmt, scaling, transform))
                if r is None:
                    continue
                extra = next(iter(r["extra"].values()), None)
                label = fmt + (f" ({scaling})" if scaling else "")
                print(f"| {workload} | {label} | {transform} | {r['sqnr_db_mean']:.2f} | "
                      f"{r['sqnr_db_min']:.2f} | {r['sqnr_db_pooled']:.2f} | "
                      f"{r['metric']} {r['value']:.4f} | "
                      f"{'' if extra is None else format(extra, '.4f')} | `{r['command']}` |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--traces", type=Path, default=ROOT / "build" / "accuracy-traces")
    sub.add_parser("report")
    args = parser.parse_args(argv)
    if args.cmd == "measure":
        measure(args.traces)
    else:
        report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
