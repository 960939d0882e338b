"""``report.md`` and ``report.html`` of a sweep: the same blocks (headings, text, tables, plots)
rendered twice.

``report.md`` links the plots beside it (``pareto_area.png``, ...). ``report.html`` stands alone:
each plot is embedded as a base64 PNG ``data:`` URI and nothing refers to another file, so the one
file can be mailed or attached to a CI run. PNG rather than SVG: mail clients and CI viewers that
block SVG images still show it, and several matplotlib SVGs inlined in one page would share
element ids.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcome import Outcome

__all__ = ["METRICS", "point_headers", "point_row", "write_reports"]

Block = tuple[str, Any]


def _num(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "-"
    x = float(v)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "exact" if x > 0 else "-inf"
    return format(x, spec)


POINT_HEADERS = ["design", "workload", "metric", "area um2/MAC", "energy pJ/MAC", "delay ns",
                 "iCE40 LUTs/MAC", "latency us/inf", "energy uJ/inf"]

#: The accuracy metrics a point can carry (its ``metric_name``: the workload's end metric, else
#: the pooled SQNR; :func:`arithforge.dse.tasks.run_task`): column heading with the unit, and a
#: value with its unit for a column that mixes metrics.
METRICS = {
    "sqnr_db": ("pooled output SQNR (dB)", "{} dB"),
    "accuracy": ("test accuracy (fraction)", "{} (fraction)"),
    "spearman": ("Spearman ρ", "ρ = {}"),
}


def _metric_names(points: list[dict[str, Any]]) -> set[str]:
    return {str(p["metric_name"]) for p in points if p.get("metric_name")}


def point_headers(points: list[dict[str, Any]]) -> list[str]:
    """:data:`POINT_HEADERS` for a table of ``points``, the metric column named with its unit
    (when the points mix metrics, each cell of :func:`point_row` ``unit=True`` carries its own)."""
    names = _metric_names(points)
    if len(names) == 1:
        name = names.pop()
        metric = METRICS[name][0] if name in METRICS else f"metric ({name})"
    else:
        metric = "metric (unit in each cell)" if names else "metric"
    return [metric if h == "metric" else h for h in POINT_HEADERS]


def _metric_cell(p: dict[str, Any], unit: bool) -> str:
    text = _num(p["metric"])
    name = p.get("metric_name")
    if not unit or not name or text in ("-", "exact"):
        return text
    return METRICS[name][1].format(text) if name in METRICS else f"{text} ({name})"


def point_row(p: dict[str, Any], *, unit: bool = False) -> list[str]:
    """Cells of one point for the tables; ``unit``: the metric cell says its unit."""
    lat = p.get("latency_s", math.nan)
    return [p["label"], p["workload"], _metric_cell(p, unit), _num(p["area_um2"], ",.0f"),
            _num(p["energy_pj"], ".3f"), _num(p["delay_ns"], ".2f"),
            _num(p["ice40_luts"], ",.0f"), _num(None if lat is None else lat * 1e6, ".4g"),
            _num(p.get("energy_uj"), ".4g")]


def _points_table(points: list[dict[str, Any]], extra: list[tuple[str, list[str]]] | None = None
                  ) -> Block:
    """A table of points: the metric's unit in the heading, or in each cell when they mix."""
    mixed = len(_metric_names(points)) > 1
    headers = point_headers(points) + [h for h, _ in extra or []]
    rows = [point_row(p, unit=mixed) + [col[i] for _, col in extra or []]
            for i, p in enumerate(points)]
    return ("table", (headers, rows))


def _blocks(o: Outcome) -> list[Block]:
    spec = o.spec
    b: list[Block] = [("h1", f"arithforge explore: {spec.name}")]
    n_ok = sum(p["status"] == "ok" for p in o.points)
    designs = len({p["ident"] for p in o.points})
    b.append(("p", f"Spec `{spec.source}`; {designs} designs x {len(spec.workloads.names)} "
                   f"workloads ({', '.join(spec.workloads.names)}) = {len(o.points)} points, "
                   f"{n_ok} complete; {len(o.skipped)} combinations skipped (reasons below). "
                   f"Tasks: {o.computed} computed by this run, {o.cached} found in "
                   f"`results.sqlite`, {o.failed} failed. Executor: {o.executor}. Wall time: "
                   + ", ".join(f"{k} {v:.1f} s" for k, v in o.seconds.items()) + "."))
    b.append(("p", ("Accuracy metric (the third column, headed by the metric and its unit; "
                   "where a table mixes metrics, each cell carries its unit): the "
                   "workload's end metric when it has one (digits-cnn: test accuracy, the "
                   "fraction of test images classified right, 0 to 1; minilm: Spearman rank "
                   "correlation ρ of the sentence similarities with the STS scores, -1 to 1), "
                   "else the pooled output SQNR in dB over every traced GEMM (synthetic; "
                   "`exact`: no error at all, infinite SQNR). Cost: the analytical model "
                   "(`arithforge cost`, 45 nm, calibrated against Yosys), per MAC: multi-MAC "
                   "datapaths (bit-serial PE, LUT core) divide area by their MACs per cycle and "
                   "energy by their MACs per operation.")))
    if spec.stages.accel:
        b.append(("p", (f"Latency and energy per inference (`latency_s`, `energy_uj`): the "
                       f"workload's GEMMs on a {spec.accel.array} "
                       f"{spec.accel.dataflow} systolic array of the design's PEs "
                       "(`arithforge.sim.accelerator`, cycles-only schedule; clock from the "
                       "PE's critical path; energy = PE operations + SRAM and DRAM bits moved), "
                       "divided by the inferences the trace stands for (digits-cnn: its test "
                       "images; synthetic: one pass of its GEMMs).")))
    for w in spec.workloads.names:
        b.append(("h2", f"Pareto fronts: {w}"))
        shown = [("area_um2", "accuracy vs area"), ("energy_pj", "accuracy vs energy")]
        if spec.stages.accel:
            shown += [("latency_s", "accuracy vs latency per inference"),
                      ("energy_uj", "accuracy vs energy per inference")]
        if "memory" in spec.pareto.objectives:
            shown.append(("memory", ("accuracy vs memory traffic (weight + activation bits "
                                    "per MAC)")))
        if spec.stages.block:
            shown += [("block_area_um2", "accuracy vs transformer-block area"),
                      ("block_energy_uj", "accuracy vs transformer-block energy per inference"),
                      ("model_energy_uj", "accuracy vs whole-model energy per inference")]
        shown.append(("nd", "all objectives: " + ", ".join(spec.pareto.objectives)))
        for obj, title in shown:
            if obj not in ("area_um2", "energy_pj", "nd") and (w, obj) not in o.fronts:
                continue
            front = o.fronts.get((w, obj), [])
            k = o.knees.get((w, obj))
            order = sorted(front, key=lambda i: -_sortable(o.points[i]["metric"]))
            b.append(("h3", f"{title} ({len(front)} designs)"))
            extra = [("knee", ["knee" if i == k else "" for i in order])]
            if "memory" in spec.pareto.objectives:
                extra = [("memory bits/MAC", [_num(o.points[i]["memory"], ".3f")
                                              for i in order]),
                         ("memory MB/inf", [_num(o.points[i]["memory_mb"], ".4g")
                                            for i in order]), *extra]
            if spec.stages.block:
                extra = [("block area um2", [_num(o.points[i].get("block_area_um2"), ",.0f")
                                             for i in order]),
                         ("block energy uJ/inf", [_num(o.points[i].get("block_energy_uj"),
                                                       ".4g") for i in order]),
                         ("model energy uJ/inf", [_num(o.points[i].get("model_energy_uj"),
                                                       ".4g") for i in order]), *extra]
            b.append(_points_table([o.points[i] for i in order], extra))
        if spec.stages.block:
            b += _block_blocks(o, w)
    refs = [p for p in o.points if p["reference"]]
    if refs:
        b += _reference_blocks(o, refs)
    b.append(("h2", "Plots"))
    for name, file in o.files.items():
        if name.startswith(("pareto", "sensitivity", "error_sources")):
            b.append(("img", (name, file)))
    synth = {p["ident"]: p for p in o.points if p.get("synth")}
    if synth:
        b.append(("h2", f"Synthesis (Yosys, target {spec.stages.synth})"))
        rows = [[p["label"], *(_num(p["synth"].get(k), ",.0f") for k in
                               ("transistors", "luts", "carries", "ffs", "dsps")),
                 _num(p["ice40_luts"], ",.0f")] for p in synth.values()]
        b.append(("table", (["design", "transistors", "LUTs", "carries", "FFs", "DSPs",
                             "model iCE40 LUTs/MAC"], rows)))
    b.append(("h2", "Verified RTL (rtl/)"))
    if o.verified:
        b.append(("p", ("Every design on an accuracy-vs-area or accuracy-vs-energy front, exported "
                       "to Verilog and run through the Verilator batch harness "
                       "(`arithforge verify`) on corner and random vectors against "
                       "`reference()`, comparing result codes bit for bit.")))
        rows = [[v["label"], v["file"] or "-", str(v["vectors"]),
                 "-" if v["mismatches"] is None else str(v["mismatches"]),
                 v["status"] if v["status"] != "error" else f"error: {v['error']}"]
                for v in o.verified]
        b.append(("table", (["design", "file", "vectors", "mismatches", "status"], rows)))
    else:
        b.append(("p", f"No design verified (stages.verify = {spec.stages.verify!r})."))
    if o.mixed is not None:
        b += _mixed_blocks(o.mixed)
    if o.search is not None:
        b.append(("h2", "NSGA-II search"))
        b.append(("p", o.search["summary"]))
    b.append(("h2", "Skipped combinations"))
    groups: dict[str, list[str]] = defaultdict(list)
    for s in o.skipped:
        name = s.weights if s.weights == s.acts else f"{s.weights}x{s.acts}"
        groups[s.reason].append(f"{name}/{s.kind} acc {s.acc}")
    rows = [[reason, str(len(ex)), ", ".join(sorted(set(ex))[:6]) +
             (" ..." if len(set(ex)) > 6 else "")] for reason, ex in groups.items()]
    b.append(("table", (["reason", "count", "examples"], rows)))
    failed = [p for p in o.points if p["status"] != "ok"]
    if failed:
        b.append(("h2", "Failed points"))
        b.append(("table", (["design", "workload", "error"],
                            [[p["label"], p["workload"], "; ".join(p["errors"])]
                             for p in failed])))
    b.append(("h2", "All points"))
    b.append(_points_table(o.points))
    notes = sorted({n for p in o.points for n in p["design"].notes})
    if notes:
        b.append(("h2", "Notes"))
        for n in notes:
            b.append(("p", n))
    return b


def _block_blocks(o: Outcome, w: str) -> list[Block]:
    """What each design on a block-level front of workload ``w`` is made of."""
    idx = sorted({i for obj in ("block_area_um2", "block_energy_uj", "model_energy_uj")
                  for i in o.fronts.get((w, obj), [])},
                 key=lambda i: o.points[i]["block_area_um2"])
    blocks = [o.points[i]["block"] for i in idx if o.points[i].get("block")]
    name = blocks[0]["block"] if blocks else "-"
    b: list[Block] = [("h3", f"transformer block {name}: what the front designs are made of"),
                      ("p", ("Block area = the [accel] array of the design's PEs + one unit per "
                             "nonlinear op type of its --nonlinear implementation + the FWHT "
                             "unit of an online --transform; energy per inference = the block's "
                             "MACs, nonlinear elements and rotated activations (from the trace) "
                             "x each unit's energy per operation (`arithforge.dse.block`); "
                             "the whole model's energy per inference sums the same over every "
                             "block of the trace. "
                             "Float nonlinear implementations are charged as FMAs (the unit "
                             "column says how many); compute only, no SRAM/DRAM."))]
    rows = []
    for i in idx:
        p = o.points[i]
        if not p.get("block"):
            continue
        model = p["block"].get("model_parts", {})
        for part, v in p["block"]["parts"].items():
            rows.append([p["label"], part, _num(v["area_um2"], ",.0f"),
                         _num(v["energy_uj"], ".4g"), _num(model.get(part), ".4g"), v["unit"]])
    b.append(("table", (["design", "part", "area um2", "energy uJ/inf", "model energy uJ/inf",
                         "unit"], rows)))
    return b


def _mixed_blocks(m: dict[str, Any]) -> list[Block]:
    b: list[Block] = [("h2", f"Per-layer mixed formats: {m['workload']} on {m['datapath']}")]
    b.append(("p", m["summary"]))
    rows = [[", ".join(f"{ly}={f}" for ly, f in s["assignment"].items()), _num(s["sqnr_db"]),
             _num(s["area_um2"], ",.0f"), _num(s["energy_pj"], ".3f"), s.get("note", "")]
            for s in m["solutions"]]
    b.append(("table", (["assignment (layer=format)", "est. SQNR dB", "area um2",
                         "energy pJ/inference-MAC", "note"], rows)))
    return b


def _reference_blocks(o: Outcome, refs: list[dict[str, Any]]) -> list[Block]:
    """The accuracy of the tensor-core references next to the best hardware design of the same
    operand formats."""
    rows = []
    for r in refs:
        same = [p for p in o.points if not p["reference"] and p["status"] == "ok"
                and p["workload"] == r["workload"] and p["weights"] == r["weights"]
                and p["acts"] == r["acts"]]
        best = max(same, key=lambda p: _sortable(p["metric"]), default=None)
        acc = r.get("accuracy") or {}
        rows.append([r["label"], r["workload"],
                     _metric_cell(r, True) if r["status"] == "ok" else "error: " + "; ".join(
                         r["errors"]),
                     _num(acc.get("sqnr_db_pooled"), ".2f"),
                     "-" if best is None else f"{best['label']}: {_metric_cell(best, True)}"])
    names = ", ".join(dict.fromkeys(str(r.get("datapath") or r["kind"]) for r in refs))
    return [("h2", "Tensor-core references (accuracy only)"),
            ("p", ("What a GPU's tensor cores compute for these layers: the "
                  f"`arithforge.formats.mma` presets (`arithforge evaluate --datapath {names} "
                  "-O model=PRESET`), bit-exact models of the measured or published "
                  "accumulation (steps, truncation, promotion, float32 output). No hardware "
                  "and no cost: they are not on the fronts; the plots draw them as dashed "
                  "lines.")),
            ("table", (["reference", "workload", "metric", "pooled SQNR dB",
                        "best hardware design, same formats"], rows))]


def _sortable(v: float) -> float:
    return -1e300 if math.isnan(v) else v


def _md(blocks: list[Block]) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + value + "\n")
        elif kind == "p":
            out.append(value + "\n")
        elif kind == "img":
            out.append(f"![{value[0]}]({value[1]})\n")
        elif kind == "table":
            headers, rows = value
            if not rows:
                out.append("(none)\n")
                continue
            cells = [headers, *rows]
            out.append("\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                                 for row in cells[:1] + [["---"] * len(headers)] + cells[1:])
                       + "\n")
    return "\n".join(out)


def _embedded_img(base: Path, name: str, file: str) -> str:
    """An ``<img>`` holding the PNG ``base/file`` itself, or a note when it is missing."""
    path = base / file
    alt = html.escape(name)
    if path.suffix != ".png" or not path.is_file():
        return f"<p>(plot {alt} not available)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<p><img src='data:image/png;base64,{data}' alt='{alt}'></p>"


def _html(blocks: list[Block], title: str, base: Path) -> str:
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>{html.escape(title)}</title>",
           ("<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
           "padding:2px 6px}th{background:#eee}img{max-width:100%}</style></head><body>")]
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            text = re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(value))
            out.append(f"<p>{text}</p>")
        elif kind == "img":
            out.append(_embedded_img(base, *value))
        elif kind == "table":
            headers, rows = value
            if not rows:
                out.append("<p>(none)</p>")
                continue
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                       + "</tr>")
            for row in rows:
                out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                           + "</tr>")
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_reports(outcome: Outcome) -> dict[str, str]:
    """Write ``report.md`` and the self-contained ``report.html``; return name -> file.

    The plots (:func:`.plots.write_plots`) must be written first: the HTML embeds them.
    """
    blocks = _blocks(outcome)
    (outcome.out_dir / "report.md").write_text(_md(blocks))
    (outcome.out_dir / "report.html").write_text(
        _html(blocks, f"arithforge explore: {outcome.spec.name}", outcome.out_dir))
    return {"report_md": "report.md", "report_html": "report.html"}
