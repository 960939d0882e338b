"""docs/accuracy.md keeps the sections `tools/accuracy_report.py` generates from saved runs: §5's
FWHT-lanes part and §5.1 (SmoothQuant, AFPQ, zero-points), rendered from `data/studies/` (no
evaluation), must equal the page's text, so a full regeneration keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import load_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("section", "study"), [("fwht_lanes", "fwht_lanes"),
                                                ("quant_transforms", "quant_transforms")])
def test_generated_section_is_on_the_page(section: str, study: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    tool = load_module(ROOT / "tools" / "accuracy_report.py")
    files = sorted((ROOT / "data" / "studies" / study).glob("*.json"))
    assert files
    for path in files:
        saved = json.loads(path.read_text(encoding="utf-8"))
        tool.SAVED[saved["cmd"]] = saved

    def not_saved(*args: object, **kw: object) -> None:
        raise AssertionError(f"not in data/studies/{study}: {args} {kw}")

    monkeypatch.setattr(tool, "evaluate", not_saved)
    monkeypatch.setattr(tool.Report, "trace", lambda self, key: Path(key))
    rep = tool.Report(ROOT / "build" / "no-traces-needed")
    tool.SECTIONS[section](rep)
    assert rep.runs == 0  # every number from the saved runs
    text = "\n".join(rep.lines).strip()
    assert text.startswith("### ")
    assert text in (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")
