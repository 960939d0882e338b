"""The acceptance sweep: its list, its table, and the bounded subset `make test` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from arithforge.datapaths.fma import ACCEPTANCE_ROUNDINGS, FP8, SMALL_FLOATS
from arithforge.sim import acceptance

BOUNDED = acceptance.cases(full=False)


def test_the_list() -> None:
    full = acceptance.cases(full=True)
    muls = {(c.params["a"], c.params["rounding"]) for c in full if c.datapath == "mul"}
    assert muls == {(f, r) for f in SMALL_FLOATS for r in ACCEPTANCE_ROUNDINGS}
    exhaustive_fma = [c for c in full if c.datapath == "fma" and c.kind == "exhaustive"]
    assert {c.params["a"] for c in exhaustive_fma} == set(FP8)
    # Per-vector datapaths get 10^6 and more; the sequential ones (issue 4: bitserial, lut)
    # count transactions, 10^5 random ones per configuration and their corner set, and so does
    # the block transform (hadamard: up to 128 lanes a vector).
    blocks = ("bitserial", "lut", "hadamard")
    sampled = [c for c in full if c.kind in ("random", "corner") and c.datapath not in blocks]
    assert all(c.n is not None and c.n >= 10**6 for c in sampled)
    tiles = [c for c in full if c.kind == "random" and c.datapath in blocks]
    assert all(c.n is not None and c.n >= 10**5 for c in tiles)
    assert {c.kind for c in sampled if c.params.get("a") == "bfloat16"} == {"random", "corner"}
    windows = {c.params.get("normalization") for c in sampled if c.datapath == "fma"}
    assert len(windows - {None}) == 2


def test_the_list_is_the_registry() -> None:
    """Every registered datapath's acceptance checks, in registration order; a plug-in's too."""
    from arithforge import datapaths
    from arithforge.datapaths import AcceptanceCheck, Descriptor

    order = [c.datapath for c in acceptance.CASES]
    assert list(dict.fromkeys(order)) == [n for n, d in datapaths.DATAPATHS.items()
                                          if d.acceptance]

    class Plug(Descriptor):
        name = "plugcheck"
        acceptance = (AcceptanceCheck("plug int8", {"a_bits": 8}, "exhaustive", bounded=True),)

    with datapaths.registered(Plug()):
        assert acceptance.CASES[-1] == acceptance.Case("plug int8", "plugcheck", {"a_bits": 8},
                                                       "exhaustive", bounded=True)
        assert acceptance.cases(full=False)[-1].datapath == "plugcheck"
    assert all(c.datapath != "plugcheck" for c in acceptance.CASES)


def test_bounded_subset() -> None:
    exhaustive_fp8_mul = {c.params["a"] for c in BOUNDED
                          if c.datapath == "mul" and c.kind == "exhaustive"}
    assert exhaustive_fp8_mul == set(FP8)
    assert any(c.datapath == "fma" and c.kind == "random" and c.n >= 10**6 for c in BOUNDED)


def test_write_docs(tmp_path: Path) -> None:
    doc = tmp_path / "v.md"
    doc.write_text(f"# V\n\nbefore\n\n{acceptance.BEGIN}\nold\n{acceptance.END}\n\nafter\n")
    case = acceptance.Case("mul e4m3fn rne", "mul", {"a": "float8_e4m3fn"}, "exhaustive")
    rows = [acceptance.Row(case, vectors=65536, vectors_per_s=2.5e7, wall_s=1.25),
            acceptance.Row(case, vectors=65536, mismatches=3, vectors_per_s=2.5e7, wall_s=1.0)]
    acceptance.write_docs(doc, rows, "Last run: now.")
    text = doc.read_text()
    assert text.startswith("# V\n\nbefore\n\n<!-- acceptance:begin -->\nLast run: now.\n\n")
    assert text.endswith("<!-- acceptance:end -->\n\nafter\n")
    assert "| mul e4m3fn rne | 65,536 | exhaustive | 0 | 25.0 M | 1.2 |" in text
    assert "| **3** |" in text
    assert "old" not in text


@pytest.mark.cosim
@pytest.mark.parametrize("case", BOUNDED, ids=lambda c: f"{c.label}-{c.kind}")
def test_bounded_case(case: acceptance.Case) -> None:
    (row,) = acceptance.run([case])
    assert row.error == ""
    assert row.mismatches == 0, row.first_failures
    assert row.vectors >= (case.n or 1)
