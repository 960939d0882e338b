"""The plots of a sweep, on hand-made outcomes: heat-map colour scale, empty front, units."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import pytest

from arithforge.dse import plots
from arithforge.dse.outcome import Outcome
from arithforge.dse.spec import parse_spec

matplotlib.use("Agg")

SPEC = """\
name = "plots"
[formats]
weights = ["float8_e4m3fn", "int8"]
[workloads]
names = ["synthetic"]
"""


def _layer(name: str, sqnr_db: float | None, rel_err: float | None) -> dict[str, Any]:
    return {"name": name, "M": 4, "N": 4, "K": 4, "sqnr_db": sqnr_db, "rel_err": rel_err}


def _point(label: str, kind: str, metric: float, layers: list[dict[str, Any]] | None,
           status: str = "ok", area: float = 100.0) -> dict[str, Any]:
    fmt = label.split("/")[0]
    return {"label": label, "kind": kind, "weights": fmt, "acts": fmt, "params": {},
            "workload": "synthetic", "status": status, "reference": False,
            "metric": metric, "metric_name": "sqnr_db" if status == "ok" else None,
            "accuracy": None if layers is None else {"layers": layers},
            "area_um2": area, "energy_pj": area / 100, "energy_uj": area / 10}


def _outcome(tmp_path: Path, points: list[dict[str, Any]],
             fronts: dict[tuple[str, str], list[int]]) -> Outcome:
    return Outcome(parse_spec(SPEC, "plots.toml"), tmp_path, points, [], fronts,
                   dict.fromkeys(fronts))


@pytest.fixture
def layered(tmp_path: Path) -> Outcome:
    # Layers from 12.5 dB to 150 dB, one exact (infinite SQNR), one whose output overflowed.
    fp8 = [_layer("l0", 150.0, 3e-8), _layer("l1", None, 0.0), _layer("l2", 31.0, 0.03)]
    int8 = [_layer("l0", 12.5, 0.2), _layer("l1", 40.0, 0.01), _layer("l2", None, None)]
    points = [_point("e4m3fn/fma", "fma", 35.0, fp8, area=300.0),
              _point("int8/imac", "imac", 15.0, int8, area=100.0)]
    return _outcome(tmp_path, points, {("synthetic", "area_um2"): [0, 1],
                                       ("synthetic", "energy_pj"): [0, 1]})


def test_heatmap_scale_spans_the_data(layered: Outcome) -> None:
    fig = plots._heatmap_figure(layered, "synthetic")
    ax, bar = fig.axes
    image = ax.images[0]
    # Nothing clipped at 100 dB: the colour scale is the finite values' range, 12.5 to 150 dB.
    assert (image.norm.vmin, image.norm.vmax) == (12.0, 150.0)
    shown = image.get_array()
    assert shown[0, 0] == 150.0
    # The exact layer sits above the scale (the top arrow's colour), marked ∞; the overflowed
    # one is masked (grey).
    assert shown[1, 0] > image.norm.vmax
    assert matplotlib.colors.to_hex(image.cmap.get_over()) == "#ffffff"
    assert [t.get_text() for t in ax.texts] == ["∞"]
    assert bool(shown.mask[2, 1])
    assert bar.get_ylabel() == "SQNR (dB); white ∞ = exact"
    assert "grey: output not finite" in ax.get_title()


@pytest.mark.parametrize(("values", "scale"), [
    ([20.0, 150.0, math.inf, math.nan], (20.0, 150.0)),
    ([-3.2, 7.7], (-4.0, 8.0)),
    ([30.0, math.inf], (29.0, 31.0)),
    ([math.inf, math.nan], (0.0, 1.0)),
])
def test_sqnr_scale(values: list[float], scale: tuple[float, float]) -> None:
    assert plots._sqnr_scale(values) == scale


def test_empty_front_says_so(tmp_path: Path) -> None:
    # Every point failed: no front, no sensitivity data.
    failed = [_point("e4m3fn/fma", "fma", math.nan, None, status="failed"),
              _point("int8/imac", "imac", math.nan, None, status="failed")]
    outcome = _outcome(tmp_path, failed, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No artists with labels" from matplotlib
        fig = plots._pareto_figure(outcome, "area_um2")
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.texts] == [plots.EMPTY_FRONT]
        assert ax.get_legend() is None
        files = plots.write_plots(outcome)
    assert sorted(files) == ["pareto_area", "pareto_energy", "pareto_inference"]
    assert all((tmp_path / f).stat().st_size > 0 for f in files.values())


def test_front_has_no_empty_note(layered: Outcome) -> None:
    (ax,) = plots._pareto_figure(layered, "area_um2").axes
    assert plots.EMPTY_FRONT not in [t.get_text() for t in ax.texts]
    assert ax.get_legend() is not None


@pytest.mark.parametrize(("name", "unit"), [("sqnr_db", "(dB)"), ("accuracy", "(fraction)"),
                                            ("spearman", "ρ")])
def test_accuracy_axis_names_its_unit(name: str, unit: str) -> None:
    assert unit in plots._metric_label([{"metric_name": name}])


def test_markers_come_from_the_descriptors(tmp_path: Path) -> None:
    """Each point is drawn with its datapath's marker; a named variant with its datapath's
    (hollow); a datapath with no marker, registered or not, gets one of a fixed cycle; the legend
    names the labels."""
    from arithforge.datapaths import with_face

    swept = with_face("sweep")
    shapes = plots.markers(["plugin"])
    for name, d in swept.items():
        assert shapes[name] == (d.marker or shapes[name])
    assert shapes["plugin"] in plots.FALLBACK_MARKERS
    assert shapes["plugin"] not in {d.marker for d in swept.values()}
    variant = {**_point("bf16/fma_approx", "fma_approx", 30.0, None, area=200.0),
               "datapath": "fma"}
    points = [_point("e4m3fn/fma", "fma", 35.0, None, area=300.0), variant,
              _point("int8/plugin", "plugin", 15.0, None, area=100.0)]
    outcome = _outcome(tmp_path, points, {("synthetic", "area_um2"): [0, 2]})
    (ax,) = plots._pareto_figure(outcome, "area_um2").axes
    handles, labels = ax.get_legend_handles_labels()
    assert labels[:3] == ["fma", "fma_approx", "plugin"]
    paths = [h.get_paths()[0].vertices for h in handles[:3]]

    def shape(marker: str) -> Any:
        style = matplotlib.markers.MarkerStyle(marker)
        return style.get_path().transformed(style.get_transform()).vertices

    assert paths[0].shape == paths[1].shape == shape(shapes["fma"]).shape
    assert (paths[0] == shape(shapes["fma"])).all()
    assert (paths[1] == paths[0]).all()
    assert (paths[2] == shape(shapes["plugin"])).all()
    assert handles[1].get_facecolors().size == 0 or handles[1].get_facecolors()[0][3] == 0


def test_heatmap_prefers_a_design_at_its_defaults(tmp_path: Path) -> None:
    """A format's column is its first design whose parameters are its section's defaults."""
    from types import SimpleNamespace

    layers = [_layer("l0", 20.0, 0.1)]
    staged = {**_point("e4m3fn/fma,stages=2", "fma", 35.0, layers), "params": {"stages": 2},
              "design": SimpleNamespace(defaults={"stages": 0})}
    plain = {**_point("e4m3fn/lmac", "lmac", 30.0, layers), "params": {"stages": 0},
             "design": SimpleNamespace(defaults={"stages": 0})}
    later = {**_point("e4m3fn/other", "other", 30.0, layers), "params": {},
             "design": SimpleNamespace(defaults={})}
    outcome = _outcome(tmp_path, [staged, plain, later], {})
    (ax, _) = plots._heatmap_figure(outcome, "synthetic").axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["e4m3fn/lmac"]
