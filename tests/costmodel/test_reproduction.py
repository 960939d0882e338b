"""docs/reproduction.md: claims without their datapaths say so; the page renders every claim."""

from __future__ import annotations

from arithforge.costmodel import load_tech
from arithforge.costmodel.reproduction import claims, render


def test_claims_without_datapaths(registry) -> None:
    tech = load_tech()
    found = claims(registry, tech)
    verdicts = {c.title: c.verdict for c in found}
    assert verdicts["LUT tensor core versus MAC array, 2-bit weights x fp16 activations"] == (
        "not yet: LUT core not built")
    assert verdicts["L-Mul versus an FP8 e4m3 multiplier"] == (
        "not yet: mul, lmul not in the registry")
    assert verdicts["Energy and area per operation at 45 nm"].startswith("agrees for integers")
    page = render(found, tech)
    assert page.startswith("# Reproduction: our numbers next to published claims\n")
    assert "| claim | source | verdict |" in page
    assert page.count("\n## ") == len(found) + 1
    assert "| int mul 8 b: energy pJ / area um2 |" in page
