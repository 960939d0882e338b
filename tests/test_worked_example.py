"""docs/worked-example.md shows what tools/worked_example.py prints, and the numbers hold up."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np

from .conftest import load_module

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    return load_module(ROOT / "tools" / "worked_example.py")


def test_doc_quotes_the_script() -> None:
    tool = _tool()
    result = tool.compute()
    block = f"{tool.BEGIN}\n{tool.render(result)}{tool.END}\n"
    doc = (ROOT / "docs" / "worked-example.md").read_text()
    assert block in doc


def test_numbers() -> None:
    tool = _tool()
    r = tool.compute()
    exact = np.array([[float(v) for v in row] for row in r["exact"]])
    # The FMA chain is float32-accurate; the PE's alignment and the LUT's float16 tables lose more.
    assert r["fma"]["max_abs_err"] < r["bitserial"]["max_abs_err"] < r["lut"]["max_abs_err"]
    assert r["fma"]["max_abs_err"] <= np.abs(exact).max() * 2.0**-23
    assert r["lut"]["max_abs_err"] <= np.abs(exact).max() * 2.0**-9
    assert r["fma"]["exact_outputs"] > 8
    # Cycle counts: 128 MACs on one FMA, 16 transactions of II 2 (+2), 4 tiles of P 5 (+1).
    assert [r["cycles"][k]["cycles"] for k in ("fma", "bitserial", "lut")] == [128, 34, 21]
    # The exact product is that of the operands' values.
    want = [[sum(Fraction(float(r["A"][m, k])) * int(r["W"][k, n]) for k in range(8))
             for n in range(4)] for m in range(4)]
    assert want == r["exact"]
