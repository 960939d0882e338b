"""Generate docs/accumulator-study.md: accuracy against area of the tensor-core accumulator.

How much accumulator precision does an FP8 GEMM need? The study sweeps the ``dot`` unit (one
n = 32 e4m3 x e4m3 tensor-core step, the H100's fp8 shape) over the fraction bits ``F`` kept per
term (the accumulator keeps ``min(F, 23)``, as the H100's e8m13 accumulator keeps ``F = 13``),
promotion into float32 every ``P`` elements of K, and wide fixed-point (Kulisch) accumulators of
several widths, and reports for each point the end metric and the mean per-layer SQNR of MiniLM
and the digits CNN (every GEMM emulated bit-exactly, :func:`arithforge.workloads.evaluate.evaluate`)
next to the unit's area and energy per MAC from the calibrated cost model (``arithforge cost``).

Usage (from the repository root, with the trace extra installed)::

    .venv/bin/python tools/accumulator_study.py measure [--traces DIR] [--jobs N]
    .venv/bin/python tools/accumulator_study.py report

``measure`` evaluates every point not yet in ``data/studies/accumulator.json`` (the committed
results; points are keyed by their options, so a rerun adds only new points) and writes it back;
``report`` costs every point and writes the Markdown table and the plot
(``docs/img/accumulator-study.png``). Traces are built into ``--traces`` (default
``build/accuracy-traces``) when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "data" / "studies" / "accumulator.json"
DOC = ROOT / "docs" / "accumulator-study.md"
PLOT = ROOT / "docs" / "img" / "accumulator-study.png"
WORKLOADS = {"minilm": "minilm", "digits": "digits-cnn"}
#: Operands of every point: the H100's fp8 tensor-core step.
FMT = "float8_e4m3fn"
N = 32
FRAC_BITS = tuple(range(10, 26))
PROMOTE = (32, 128, 512)
#: Promotion is swept at these F (the H100's 13 and the low end).
PROMOTE_AT = (10, 13)
#: Kulisch register widths (None: the default, 53 bits for e4m3: exact for K up to 2**16; a
#: narrower register keeps that top and raises its least bit).
KULISCH_WIDTHS = (None, 40, 32, 28, 24)
#: MiniLM's end metric (the whole network, minutes a point) is run at these points only; the
#: per-GEMM SQNR at every point.
END_METRIC_AT = {"F=10", "F=13", "F=25", "F=13 P=128"}


def points() -> list[dict[str, Any]]:
    """Every point of the study: a label, the ``dot`` GEMM model's options and the unit's
    parameters (for the cost)."""
    out: list[dict[str, Any]] = []

    def add(label: str, family: str, opts: dict[str, Any]) -> None:
        out.append({"label": label, "family": family, "options": opts,
                    "unit": {"a": FMT, **opts}, "end_metric": label in END_METRIC_AT})

    for f in FRAC_BITS:
        add(f"F={f}", "F", {"n": N, "frac_bits": f, "acc_frac_bits": min(f, 23)})
    for f in PROMOTE_AT:
        for p in PROMOTE:
            add(f"F={f} P={p}", "promote",
                {"n": N, "frac_bits": f, "acc_frac_bits": min(f, 23), "promote": p})
    for w in KULISCH_WIDTHS:
        add(f"Kulisch W={w or 'default'}", "kulisch",
            {"n": N, "kulisch": True, **({"acc_width": w} if w else {})})
    return out


def key(point: Mapping[str, Any]) -> str:
    return json.dumps(point["options"], sort_keys=True)


def _trace(traces: Path, name: str) -> Path:
    from arithforge.workloads import build

    path = traces / name
    if not (path / "meta.json").exists():
        build(WORKLOADS[name], path)
    return path


def _measure_one(args: tuple[str, str, dict[str, Any], bool]
                 ) -> tuple[str, str, dict[str, Any]]:
    from arithforge.workloads.evaluate import evaluate

    trace, workload, options, end_metric = args
    t0 = time.perf_counter()
    res = evaluate(trace, FMT, FMT, "dot", "float32", options=options, end_metric=end_metric)
    summary = res["summary"]
    end = res.get("end_metric") or {}
    return json.dumps(options, sort_keys=True), workload, {
        "end_metric": end.get("name"), "value": end.get("value"), "fp32": end.get("fp32"),
        "mean_sqnr_db": summary.get("sqnr_db_mean"), "min_sqnr_db": summary.get("sqnr_db_min"),
        "path": res["layers"][0]["path"] if res["layers"] else None,
        "seconds": round(time.perf_counter() - t0, 1)}


def measure(traces: Path, jobs: int, families: set[str] | None = None) -> None:
    done: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {
        "points": {}}
    paths = {w: str(_trace(traces, w)) for w in WORKLOADS}
    todo = [(paths[w], w, p["options"], p["end_metric"] or w != "minilm") for p in points()
            if families is None or p["family"] in families for w in WORKLOADS
            if w not in done["points"].get(key(p), {})]
    print(f"{len(todo)} evaluations to run on {jobs} processes", flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        for k, workload, res in pool.map(_measure_one, todo):
            # Re-read before writing: nothing another run added meanwhile is lost.
            if RESULTS.exists():
                done = json.loads(RESULTS.read_text())
            done["points"].setdefault(k, {})[workload] = res
            print(f"{k} {workload}: {res['value']} ({res['seconds']} s)", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    done["env"] = {"python": platform.python_version(), "numpy": np.__version__,
                   "machine": platform.machine(), "cpus": os.cpu_count()}
    RESULTS.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")


def _cost(unit: Mapping[str, Any]) -> dict[str, float]:
    from arithforge.costmodel import estimate
    from arithforge.datapaths import get

    u = get("dot").build_unit(**unit)
    est = estimate(u.structure())
    macs = u.n
    return {"area_um2_per_mac": est.area_um2 / macs, "energy_pj_per_mac": est.energy_pj / macs,
            "transistors_per_mac": est.transistors / macs}


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report() -> None:
    data = json.loads(RESULTS.read_text())
    rows = []
    for p in points():
        res = data["points"].get(key(p))
        if res is None:
            continue
        rows.append((p, res, _cost(p["unit"])))
    lines = [
        "# Accumulator precision: accuracy against area",
        "",
        ("<!-- Generated by `python tools/accumulator_study.py report` from "
        "data/studies/accumulator.json; do not edit. -->"),
        "",
        (f"Every point is one `dot` tensor-core step of n = {N} `{FMT}` products into a float32 "
        "accumulator (weights and activations per-tensor scaled), chained over K; every GEMM "
        "of the workload is emulated bit-exactly and the whole model runs on the results. "
        "`F`: fraction bits kept per term (the accumulator keeps `min(F, 23)`); `P`: promotion "
        "into float32 every P elements of K. Area and energy per MAC: the calibrated cost "
        "model of the same unit (`arithforge cost dot ...`)."),
        "",
        ("| point | MiniLM Spearman | MiniLM mean SQNR (dB) | digits accuracy | digits mean SQNR "
        "(dB) | area per MAC (um2) | energy per MAC (pJ) |"),
        "|---|---|---|---|---|---|---|",
    ]
    for p, res, cost in rows:
        m, d = res.get("minilm", {}), res.get("digits", {})
        lines.append(f"| {p['label']} | {_fmt(m.get('value'), '.4f')} | "
                     f"{_fmt(m.get('mean_sqnr_db'), '.2f')} | {_fmt(d.get('value'), '.4f')} | "
                     f"{_fmt(d.get('mean_sqnr_db'), '.2f')} | "
                     f"{cost['area_um2_per_mac']:.1f} | {cost['energy_pj_per_mac']:.3f} |")
    fp32 = next((r[1].get("minilm", {}).get("fp32") for r in rows), None)
    lines += ["", f"fp32 reference: MiniLM Spearman {_fmt(fp32, '.4f')}.", ""]
    lines += _findings(rows)
    DOC.write_text("\n".join(lines) + "\n")
    _plot(rows)


def _findings(rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]]
              ) -> list[str]:
    """Findings computed from the table (MiniLM's mean GEMM SQNR, the cost model's area)."""
    def sq(r: dict[str, Any]) -> float | None:
        return r.get("minilm", {}).get("mean_sqnr_db")

    f_rows = [(p, r, c) for p, r, c in rows if p["family"] == "F" and sq(r) is not None]
    if not f_rows:
        return []
    best = max(sq(r) for _, r, _ in f_rows)  # type: ignore[type-var]
    enough = next(p for p, r, _ in f_rows if sq(r) >= best - 0.01)  # type: ignore[operator]
    top = f_rows[-1]
    out = ["## Findings", "",
           (f"- MiniLM's mean GEMM SQNR reaches within 0.01 dB of its best ({best:.2f} dB) at "
           f"{enough['label']}; more fraction bits per term buy nothing measurable on these "
           f"workloads, while each one costs area (the aligners, the adder tree and the "
           f"normalizer widen): {top[0]['label']} is "
           f"{top[2]['area_um2_per_mac'] / f_rows[0][2]['area_um2_per_mac']:.2f}x "
           f"{f_rows[0][0]['label']}'s area per MAC. The FP8 operands' own quantization "
           f"error (about 31.5 dB) dominates; the accumulator matters only below that.")]
    promo = [(p, r, c) for p, r, c in rows if p["family"] == "promote" and sq(r) is not None]
    if promo:
        p, r, c = max(promo, key=lambda t: (sq(t[1]), -t[2]["area_um2_per_mac"]))
        out.append(f"- Promotion into float32 recovers the short accumulator: {p['label']} "
                   f"reaches {sq(r):.2f} dB at {c['area_um2_per_mac']:.0f} um2 per MAC "
                   f"(the float32 adder shared by 32 products), against "
                   f"{top[2]['area_um2_per_mac']:.0f} um2 for {top[0]['label']} without it.")
    kul = [(p, r, c) for p, r, c in rows if p["family"] == "kulisch" and sq(r) is not None]
    if kul:
        out.append("- Kulisch registers: " + "; ".join(
            f"{p['label']} {sq(r):.2f} dB at {c['area_um2_per_mac']:.0f} um2 per MAC"
            for p, r, c in kul) + " (the one float32 rounding per output is not in the "
            "per-MAC cost).")
    ends = [(p["label"], r["minilm"]["value"]) for p, r, _ in rows
            if r.get("minilm", {}).get("value") is not None]
    if ends:
        lo, hi = min(v for _, v in ends), max(v for _, v in ends)
        out.append(f"- MiniLM's whole-network Spearman, run at {len(ends)} points (minutes "
                   f"each), lies between {lo:.4f} and {hi:.4f} (fp32: "
                   f"{rows[0][1]['minilm'].get('fp32', float('nan')):.4f}): 80 sentences do "
                   f"not separate these accumulators; the per-GEMM SQNR does.")
    out += ["", ("The same sweep as an explore spec: `docs/specs/accumulator-study.toml`. Plot: "
            "`docs/img/accumulator-study.png`."), ""]
    return out


def _plot(rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fam, marker in (("F", "o"), ("promote", "s"), ("kulisch", "^")):
        pts = [(c["area_um2_per_mac"], r.get("minilm", {}).get("mean_sqnr_db"), p["label"])
               for p, r, c in rows if p["family"] == fam]
        pts = [t for t in pts if t[1] is not None]
        if pts:
            ax.scatter([t[0] for t in pts], [t[1] for t in pts], marker=marker, label=fam)
            for x, y, lab in pts:
                ax.annotate(lab, (x, y), fontsize=6)
    ax.set_xlabel("area per MAC (um2, cost model)")
    ax.set_ylabel("MiniLM mean GEMM SQNR (dB)")
    ax.legend()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120, metadata={"Software": None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("measure", "report"))
    parser.add_argument("--traces", type=Path, default=ROOT / "build" / "accuracy-traces")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--family", action="append", default=None,
                        help="measure: only these families of points (F, promote, kulisch)")
    args = parser.parse_args(argv)
    if args.what == "measure":
        measure(args.traces, args.jobs, set(args.family) if args.family else None)
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
