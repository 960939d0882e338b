"""What a user sees of a sweep: the self-contained ``report.html``, the metric's unit in the
report's tables."""

from __future__ import annotations

import base64
import math
from html.parser import HTMLParser
from typing import Any

import pytest

from arithforge.dse import engine, report
from arithforge.dse.executors import LocalExecutor
from arithforge.dse.outcome import Outcome
from arithforge.dse.spec import parse_spec

#: Two designs on the synthetic workload: a few seconds.
SPEC = """\
name = "report"
[formats]
weights = ["float8_e4m3fn", "int8"]
accumulators = ["float32", "int32"]
[datapaths]
enabled = ["fma", "imac"]
[workloads]
names = ["synthetic"]
max_rows = 8
[stages]
verify = "none"
"""


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    out = tmp_path_factory.mktemp("report")
    return engine.explore(parse_spec(SPEC, "report.toml"), out, executor=LocalExecutor(2))


class _References(HTMLParser):
    """Every attribute of the page that can load something: src, href, srcset, data, poster."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value:
                self.found.append((tag, name, value))


def test_report_html_is_self_contained(explored: Outcome) -> None:
    out = explored.out_dir
    page = (out / "report.html").read_text()
    parser = _References()
    parser.feed(page)
    plots = [f for name, f in explored.files.items()
             if name.startswith(("pareto", "sensitivity", "error_sources"))]
    assert plots  # the sweep has plots to embed
    # Nothing loads from another file (sibling or remote): only data: URIs.
    assert [r for r in parser.found if not r[2].startswith("data:")] == []
    assert not {"link", "script", "iframe", "object", "embed"} & set(parser.tags)
    assert "url(" not in page
    # Each plot is there, byte for byte, as a PNG.
    images = [value for tag, name, value in parser.found if tag == "img"]
    assert len(images) == len(plots)
    for uri, file in zip(images, plots, strict=True):
        head, _, data = uri.partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(data) == (out / file).read_bytes()


def test_report_md_links_its_plots(explored: Outcome) -> None:
    # report.md lives beside the plots and links them (a Markdown viewer shows them there).
    text = (explored.out_dir / "report.md").read_text()
    assert "![pareto_area](pareto_area.png)" in text


def test_metric_column_names_its_unit(explored: Outcome) -> None:
    # The synthetic workload is scored by its pooled SQNR: every point table says dB.
    text = (explored.out_dir / "report.md").read_text()
    assert "| design | workload | pooled output SQNR (dB) | area um2/MAC |" in text
    assert "| metric |" not in text
    assert "<th>pooled output SQNR (dB)</th>" in (explored.out_dir / "report.html").read_text()


def _point(metric: float, name: str | None) -> dict[str, Any]:
    return {"label": "x", "workload": "w", "metric": metric, "metric_name": name,
            "area_um2": 1.0, "energy_pj": 1.0, "delay_ns": 1.0, "ice40_luts": 1.0}


@pytest.mark.parametrize(("name", "unit"), [("sqnr_db", "(dB)"), ("accuracy", "(fraction)"),
                                            ("spearman", "ρ")])
def test_metric_heading_per_metric(name: str, unit: str) -> None:
    headers = report.point_headers([_point(0.5, name), _point(0.25, name)])
    assert headers[2] == report.METRICS[name][0]
    assert unit in headers[2]
    assert headers[:2] + headers[3:] == report.POINT_HEADERS[:2] + report.POINT_HEADERS[3:]


def test_mixed_metrics_carry_units_per_cell() -> None:
    points = [_point(27.77, "sqnr_db"), _point(0.9375, "accuracy"), _point(0.8125, "spearman"),
              _point(math.inf, "sqnr_db")]
    assert report.point_headers(points)[2] == "metric (unit in each cell)"
    assert [report.point_row(p, unit=True)[2] for p in points] == [
        "27.77 dB", "0.9375 (fraction)", "ρ = 0.8125", "exact"]
    # Without metrics (the accuracy stage off) the column is plain.
    assert report.point_headers([_point(math.nan, None)])[2] == "metric"
