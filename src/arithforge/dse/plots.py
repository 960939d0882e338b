"""Plots of a sweep (matplotlib, Agg backend, PNG and SVG).

``pareto_area``, ``pareto_energy``, ``pareto_inference`` (with ``[stages] accel``): one panel
per workload, accuracy against area per MAC, energy per MAC or energy per inference (log axis),
every point marked by its datapath (its descriptor's ``marker``, or one of a fixed cycle for a
datapath without one; a named variant has its datapath's marker, hollow; the legend names the
sweep labels), the front drawn as a step line with its points labelled ``format/datapath``, the
knee circled, tensor-core references as dashed lines at their accuracy.
``sensitivity_<workload>``: per-layer SQNR of every format on the first design of that format
whose parameters are its section's defaults (or the first), as a heat map whose colour scale
spans the finite SQNRs of the data (nothing clipped); a layer computed exactly (infinite SQNR) is
a white cell marked ``∞``, the colour of the colourbar's top arrow.

``error_sources_<workload>`` (a workload whose accuracy results carry per-op-type errors): where
the error comes from, SQNR (dB) per op type (attention QK^T and PV, Linear GEMMs, softmax, GELU,
LayerNorm: ``evaluate``'s ``summary.by_kind`` pooled and ``summary.nonlinear_by_op`` mean) of
every design, as a heat map. ``pareto_block_area`` and ``pareto_block_energy`` (``[stages]
block``): accuracy against the transformer block's area and energy per inference
(:mod:`.block`).

A panel with no front (every point failed, or no point has both accuracy and cost) says so in
its axes, "no feasible design / empty front", instead of staying blank.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcome import Outcome

__all__ = ["ERROR_SOURCES", "error_sources", "markers", "write_plots"]

#: Markers of datapaths whose descriptor names none, in turn (those taken by a descriptor left
#: out).
FALLBACK_MARKERS = ("s", "v", "<", ">", "*", "h", "p", "d", "8", "H")
_UNITS = {"area_um2": "area per MAC/cycle (um^2, 45 nm)", "energy_pj": "energy per MAC (pJ)",
          "energy_uj": "energy per inference on the systolic array (uJ)",
          "memory": "weight + activation traffic (bits per MAC)",
          "block_area_um2": "transformer-block area (um^2, 45 nm): PE array + nonlinear + "
                            "transform units",
          "block_energy_uj": "transformer-block energy per inference (uJ, compute)",
          "model_energy_uj": "whole-model energy per inference (uJ, compute, every block)"}
_REF_COLORS = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:cyan")
_TITLES = {"area_um2": "area", "energy_pj": "energy per MAC",
           "energy_uj": "energy per inference", "memory": "memory traffic",
           "block_area_um2": "block area", "block_energy_uj": "block energy",
           "model_energy_uj": "model energy"}
_METRIC = {"accuracy": "test accuracy (fraction)", "spearman": "Spearman ρ (rank correlation)",
           "sqnr_db": "pooled output SQNR (dB)"}
#: What an empty panel says.
EMPTY_FRONT = "no feasible design / empty front"
#: Heat-map colours outside the scale: exact layers (infinite SQNR), layers with a non-finite
#: output, and a zero reference (-inf dB).
_EXACT_COLOR, _NONFINITE_COLOR, _NO_SIGNAL_COLOR = "white", "0.6", "black"


def markers(datapaths: Any = ()) -> dict[str, str]:
    """Datapath name -> marker: each datapath ``explore`` sweeps, and each of ``datapaths``
    (unregistered ones too: no point is left off a plot). A descriptor's ``marker``, else the
    next of :data:`FALLBACK_MARKERS` not taken, in registry order."""
    from ..datapaths import with_face

    swept = with_face("sweep")
    out = {n: str(d.marker) for n, d in swept.items() if d.marker}
    free = [m for m in FALLBACK_MARKERS if m not in out.values()] or list(FALLBACK_MARKERS)
    fallback = 0
    for n in dict.fromkeys([*swept, *datapaths]):
        if n not in out:
            out[n] = free[fallback % len(free)]
            fallback += 1
    return out


def _datapath(p: dict[str, Any]) -> str:
    """The datapath of a point (its label's for points that do not say)."""
    d = p.get("design")
    return str(p.get("datapath") or getattr(d, "datapath", "") or p["kind"])


def _at_defaults(p: dict[str, Any]) -> bool:
    """Whether a point's parameters are its sweep section's defaults."""
    defaults = getattr(p.get("design"), "defaults", None) or {}
    return all(defaults.get(k, v) == v for k, v in p["params"].items())


def _metric_label(points: list[dict[str, Any]]) -> str:
    names = {p.get("metric_name") for p in points if p.get("metric_name")}
    return _METRIC.get(str(next(iter(names))), str(names)) if len(names) == 1 \
        else "accuracy metric"


def write_plots(outcome: Outcome) -> dict[str, str]:
    """Write every plot of ``outcome`` into its output folder; return name -> file."""
    import matplotlib

    matplotlib.use("Agg")
    files = {}
    plots = [("area_um2", "pareto_area"), ("energy_pj", "pareto_energy")]
    if outcome.spec.stages.accel:
        plots.append(("energy_uj", "pareto_inference"))
    if "memory" in outcome.spec.pareto.objectives:
        plots.append(("memory", "pareto_memory"))
    if outcome.spec.stages.block:
        plots += [("block_area_um2", "pareto_block_area"),
                  ("block_energy_uj", "pareto_block_energy"),
                  ("model_energy_uj", "pareto_model_energy")]
    for objective, name in plots:
        files[name] = _pareto(outcome, objective, outcome.out_dir / name)
    for w in outcome.spec.workloads.names:
        path = _heatmap(outcome, w, outcome.out_dir / f"sensitivity_{w}")
        if path:
            files[f"sensitivity_{w}"] = path
        fig = _error_sources_figure(outcome, w)
        if fig is not None:
            files[f"error_sources_{w}"] = _save(fig, outcome.out_dir / f"error_sources_{w}")
    return files


def _save(fig: Any, stem: Path) -> str:
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    fig.savefig(stem.with_suffix(".svg"), metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return stem.with_suffix(".png").name


def _pareto(outcome: Outcome, objective: str, stem: Path) -> str:
    return _save(_pareto_figure(outcome, objective), stem)


def _pareto_figure(outcome: Outcome, objective: str) -> Any:
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    workloads = outcome.spec.workloads.names
    fig, axes = plt.subplots(1, len(workloads), figsize=(7.5 * len(workloads), 6), squeeze=False)
    for ax, w in zip(axes[0], workloads, strict=True):
        pts = [(i, p) for i, p in enumerate(outcome.points)
               if p["workload"] == w and p["status"] == "ok"
               and math.isfinite(p[objective]) and not math.isnan(p["metric"])]
        finite = [p["metric"] for _, p in pts if math.isfinite(p["metric"])]
        top = max(finite) if finite else 1.0
        cap = top + 0.1 * (abs(top) + 1) if finite else 1.0

        def y(v: float, cap: float = cap) -> float:
            return cap if v > cap else v

        shapes = markers([_datapath(p) for _, p in pts])
        for label in dict.fromkeys(p["kind"] for _, p in pts):
            sel = [p for _, p in pts if p["kind"] == label]
            datapath = _datapath(sel[0])
            # A named variant: its datapath's marker, hollow.
            face = "0.45" if label == datapath else "none"
            ax.scatter([p[objective] for p in sel], [y(p["metric"]) for p in sel],
                       marker=shapes[datapath], s=36, alpha=0.55, label=label,
                       facecolors=face, edgecolors="0.45")
        front = sorted(outcome.fronts.get((w, objective), []),
                       key=lambda i: outcome.points[i][objective])
        if front:
            xs = [outcome.points[i][objective] for i in front]
            ys = [y(outcome.points[i]["metric"]) for i in front]
            ax.step(xs, ys, where="post", color="tab:red", lw=1.5, label="Pareto front")
            ax.scatter(xs, ys, color="tab:red", s=50, zorder=3)
            for n, (i, xv, yv) in enumerate(zip(front, xs, ys, strict=True)):
                # Alternate below-right and above-left: neighbours on a crowded front stay apart.
                below = n % 2 == 0
                ax.annotate(outcome.points[i]["label"], (xv, yv), textcoords="offset points",
                            xytext=(5, -11) if below else (-5, 6), fontsize=7,
                            ha="left" if below else "right", color="tab:red")
        # Accuracy-only references (tensor cores): no cost, so a line at their accuracy.
        refs = [p for p in outcome.points if p["workload"] == w and p["reference"]
                and p["status"] == "ok" and not math.isnan(p["metric"])]
        for n, p in enumerate(refs):
            ax.axhline(y(p["metric"]), ls="--", lw=1.2, color=_REF_COLORS[n % len(_REF_COLORS)],
                       label=f"{p['label']} (tensor-core reference)")
        k = outcome.knees.get((w, objective))
        if k is not None:
            p = outcome.points[k]
            ax.scatter([p[objective]], [y(p["metric"])], s=220, facecolors="none",
                       edgecolors="tab:blue", lw=2, zorder=4, label="knee")
        if not front:
            ax.text(0.5, 0.5, EMPTY_FRONT, transform=ax.transAxes, ha="center", va="center",
                    fontsize=12, color="tab:red")
        ax.set_xscale("log")
        # Minor ticks unlabelled: their labels collide on a log axis spanning one decade; but
        # an axis inside one decade may hold no major tick, so its minor ticks are labelled.
        xs_all = [p[objective] for _, p in pts if p[objective] > 0]
        narrow = bool(xs_all) and max(xs_all) < 10 * min(xs_all)
        ax.xaxis.set_minor_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}") if narrow
            else matplotlib.ticker.NullFormatter())
        ax.set_xlabel(_UNITS[objective] + (f" ({outcome.spec.accel.array} "
                                           f"{outcome.spec.accel.dataflow})"
                                           if objective == "energy_uj" else ""))
        ax.set_ylabel(_metric_label([p for _, p in pts]) +
                      (" (exact shown at the top)" if any(math.isinf(p["metric"])
                                                           for _, p in pts) else ""))
        ax.set_title(f"{w}: accuracy vs {_TITLES[objective]}")
        ax.grid(True, which="both", alpha=0.3)
        # Outside the axes: inside, it would hide points. None without a labelled artist.
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _heatmap(outcome: Outcome, workload: str, stem: Path) -> str | None:
    fig = _heatmap_figure(outcome, workload)
    return None if fig is None else _save(fig, stem)


def _layer_db(layer: dict[str, Any]) -> float:
    """A layer's SQNR in dB: +inf when exact, NaN when its output was not finite.

    The accuracy task stores ``sqnr_db`` None for both (:func:`arithforge.workloads.evaluate.
    sqnr_db`); ``rel_err`` tells them apart: 0 when exact, None when not finite.
    """
    v = layer.get("sqnr_db")
    if v is not None:
        return float(v)
    return math.inf if layer.get("rel_err") == 0 else math.nan


def _sqnr_scale(values: Any) -> tuple[float, float]:
    """Colour limits of a heat map of SQNRs (dB): the finite values' range, whole dB, never
    clipped; a range of one value gets 1 dB either side."""
    import numpy as np

    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = math.floor(float(finite.min())), math.ceil(float(finite.max()))
    return (lo - 1.0, hi + 1.0) if lo == hi else (float(lo), float(hi))


def _heatmap_figure(outcome: Outcome, workload: str) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    columns: dict[str, dict[str, Any]] = {}
    for p in outcome.points:
        if p["workload"] != workload or p["accuracy"] is None:
            continue
        name = p["weights"] if p["weights"] == p["acts"] else f"{p['weights']}x{p['acts']}"
        # The first design of the format at its section's defaults, else the first.
        if name not in columns or (_at_defaults(p) and not _at_defaults(columns[name])):
            columns[name] = p
    if not columns:
        return None
    names = list(columns)
    layers = [ly["name"] for ly in columns[names[0]]["accuracy"]["layers"]]
    grid = np.full((len(layers), len(names)), np.nan)
    for j, n in enumerate(names):
        for i, ly in enumerate(columns[n]["accuracy"]["layers"][:len(layers)]):
            grid[i, j] = _layer_db(ly)
    vmin, vmax = _sqnr_scale(grid)
    exact = grid == math.inf
    no_signal = grid == -math.inf
    # Outside [vmin, vmax] on purpose: the colour map's over and under colours draw them (imshow
    # would mask an infinity as a bad value, the colour of a non-finite output).
    shown = np.where(exact, vmax + 1.0, np.where(no_signal, vmin - 1.0, grid))
    cmap = plt.get_cmap("viridis").with_extremes(over=_EXACT_COLOR, under=_NO_SIGNAL_COLOR,
                                                 bad=_NONFINITE_COLOR)
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names) + 2), max(3, 0.3 * len(layers) + 2)))
    im = ax.imshow(shown, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    for i, j in zip(*np.nonzero(exact), strict=True):
        ax.text(j, i, "∞", ha="center", va="center", fontsize=9, color="black")
    ax.set_xticks(range(len(names)), [f"{n}/{columns[n]['kind']}" for n in names],
                  rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("format / datapath")
    ax.set_ylabel("layer (GEMM)")
    notes = (["grey: output not finite"] if np.isnan(grid).any() else []) + \
        (["black: zero reference, -inf dB"] if no_signal.any() else [])
    ax.set_title(f"{workload}: per-layer output SQNR (dB)"
                 + ("\n" + "; ".join(notes) if notes else ""))
    # The exact cells' colour is the top arrow's.
    bar = fig.colorbar(im, ax=ax, extend="both" if no_signal.any() else "max")
    bar.set_label("SQNR (dB); white ∞ = exact", fontsize=9)
    fig.tight_layout()
    return fig


#: Op types of the error-source plot, in order, and their axis labels: the GEMM kinds of
#: ``evaluate``'s ``summary.by_kind`` (pooled SQNR) and the nonlinear ops of its
#: ``summary.nonlinear_by_op`` (mean SQNR over the traced ops).
ERROR_SOURCES = (("attn_qk", "attention QK^T"), ("attn_pv", "attention PV"),
                 ("linear", "linear GEMMs"), ("conv2d", "conv GEMMs"), ("softmax", "softmax"),
                 ("gelu", "GELU"), ("layer_norm", "LayerNorm"))


def error_sources(point: dict[str, Any]) -> dict[str, float]:
    """Op type -> SQNR (dB) of one point's accuracy result (:data:`ERROR_SOURCES`); +inf for
    an exact op type. Only the op types the trace has."""
    acc = point.get("accuracy") or {}
    out: dict[str, float] = {}
    for kinds, key in ((acc.get("by_kind") or {}, "sqnr_db_pooled"),
                       (acc.get("nonlinear_by_op") or {}, "sqnr_db_mean")):
        for kind, entry in kinds.items():
            v = entry.get(key)
            out[kind] = math.inf if v is None and entry.get("rel_err_mean") == 0 else \
                (math.nan if v is None else float(v))
    return out


def _error_sources_figure(outcome: Outcome, workload: str) -> Any:
    """Where the error comes from: SQNR (dB) per op type (rows) of every design (columns),
    lower = more error; None when no point has per-op-type results."""
    import matplotlib.pyplot as plt
    import numpy as np

    cols = [p for p in outcome.points if p["workload"] == workload and p["accuracy"] is not None
            and error_sources(p)]
    if not cols:
        return None
    present = {k for p in cols for k in error_sources(p)}
    rows = [(k, name) for k, name in ERROR_SOURCES if k in present] + \
        [(k, k) for k in sorted(present - {k for k, _ in ERROR_SOURCES})]
    grid = np.array([[error_sources(p).get(k, math.nan) for p in cols] for k, _ in rows])
    vmin, vmax = _sqnr_scale(grid)
    exact = grid == math.inf
    shown = np.where(exact, vmax + 1.0, grid)
    cmap = plt.get_cmap("viridis").with_extremes(over=_EXACT_COLOR, bad=_NONFINITE_COLOR)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(cols) + 3), 0.45 * len(rows) + 2.5))
    im = ax.imshow(shown, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    for i, j in np.ndindex(grid.shape):
        v = grid[i, j]
        text = "∞" if v == math.inf else "-" if math.isnan(v) else f"{v:.0f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="black" if v == math.inf or math.isnan(v) or v > (vmin + vmax) / 2
                else "white")
    ax.set_xticks(range(len(cols)), [p["label"] for p in cols], rotation=60, ha="right",
                  fontsize=7)
    ax.set_yticks(range(len(rows)), [name for _, name in rows], fontsize=8)
    ax.set_title(f"{workload}: where the error comes from (SQNR dB per op type; low = more "
                 "error)", fontsize=10)
    bar = fig.colorbar(im, ax=ax, extend="max")
    bar.set_label("SQNR (dB); GEMMs pooled, nonlinear ops mean", fontsize=8)
    fig.tight_layout()
    return fig
