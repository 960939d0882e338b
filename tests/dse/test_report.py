"""What a user sees of a sweep: the self-contained ``report.html`` and the report's tables."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from arithforge.dse import engine
from arithforge.dse.executors import LocalExecutor
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
def explored(tmp_path_factory: pytest.TempPathFactory) -> engine.Outcome:
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


def test_report_html_is_self_contained(explored: engine.Outcome) -> None:
    out = explored.out_dir
    page = (out / "report.html").read_text()
    parser = _References()
    parser.feed(page)
    plots = [f for name, f in explored.files.items() if name.startswith(("pareto", "sensitivity"))]
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


def test_report_md_links_its_plots(explored: engine.Outcome) -> None:
    # report.md lives beside the plots and links them (a Markdown viewer shows them there).
    text = (explored.out_dir / "report.md").read_text()
    assert "![pareto_area](pareto_area.png)" in text
