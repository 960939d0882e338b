"""The asic target: Yosys against a Liberty library (OSU 0.18 um), its parsers, the library lookup,
the node scaling, and the errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from arithforge.costmodel import scaling, synth
from arithforge.costmodel.synth import (
    SynthError,
    parse_abc_delay,
    parse_liberty_stat,
    synthesize,
)
from arithforge.tools import toolchain

# Captured from Debian Yosys 0.23, `arithforge.costmodel.synth.yosys_script("asic", "add4", ...)`
# on a registered 4-bit adder, osu018_stdcells.lib: the `stat -liberty` text and ABC's stime line.
ADD4_STAT = """
7. Printing statistics.

=== add4 ===

   Number of wires:                 20
   Number of wire bits:             42
   Number of public wires:           4
   Number of public wire bits:      14
   Number of memories:               0
   Number of memory bits:            0
   Number of processes:              0
   Number of cells:                 23
     AND2X2                          1
     AOI21X1                         1
     DFFPOSX1                        5
     NAND2X1                         5
     NOR2X1                          2
     OAI21X1                         2
     OR2X2                           1
     XNOR2X1                         3
     XOR2X1                          3

   Chip area for module '\\add4': 1126.000000

"""
ADD4_ABC = ('ABC: WireLoad = "none"  Gates =     18 (  0.0 %)   Cap = 29.6 ff (  0.0 %)   '
            'Area =      646.00 (100.0 %)   Delay =   458.77 ps  ( 22.2 %)')

ADD4 = ("module add4(input clk, input [3:0] a, input [3:0] b, output reg [4:0] y);\n"
        "  always @(posedge clk) y <= a + b;\nendmodule\n")


def _cell_areas(lib: Path) -> dict[str, float]:
    """Area of every cell of a Liberty file, read independently of Yosys."""
    text = lib.read_text()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"cell\s*\(\s*\"?(\w+)\"?\s*\)\s*\{\s*area\s*:\s*([0-9.]+)", text)}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARITHFORGE_BUILD", str(tmp_path))
    return tmp_path / "synth-cache"


def test_parse_liberty_stat() -> None:
    stat = parse_liberty_stat(ADD4_STAT)
    assert stat.area_um2 == 1126.0
    assert stat.cells["DFFPOSX1"] == 5
    assert sum(stat.cells.values()) == 23
    assert list(stat.cells) == sorted(stat.cells)
    # The captured counts times the library's cell areas give the printed chip area.
    areas = _cell_areas(toolchain.liberty("osu018").path)
    assert sum(areas[c] * n for c, n in stat.cells.items()) == pytest.approx(stat.area_um2)


def test_parse_liberty_stat_hierarchy_takes_the_top() -> None:
    text = ADD4_STAT.replace("Chip area for module '\\add4': 1126.000000",
                             "Chip area for module '\\add4': 1126.000000\n\n=== sub ===\n\n"
                             "   Chip area for module '\\sub': 10.0\n\n"
                             "   Chip area for top module '\\add4': 1136.000000")
    assert parse_liberty_stat(text).area_um2 == 1136.0
    two = text.replace("   Chip area for top module '\\add4': 1136.000000", "")
    with pytest.raises(SynthError, match="printed 2 modules and no top-module area"):
        parse_liberty_stat(two)


@pytest.mark.parametrize(("text", "message"), [
    ("", "printed no chip area"),
    (ADD4_STAT.replace("1126.000000", "lots"), "printed an unreadable chip area .lots."),
    (ADD4_STAT.replace("     DFFPOSX1                        5\n",
                       "     $_DFF_PN0_                      5\n"),
     r"cells not mapped to the Liberty library: \$_DFF_PN0_"),
    (ADD4_STAT.replace("1126.000000", "0.000000"), "reports no cells"),
], ids=["empty", "unreadable-area", "unmapped-dff", "zero-area"])
def test_parse_liberty_stat_errors(text: str, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        parse_liberty_stat(text)


def test_parse_abc_delay() -> None:
    assert parse_abc_delay(ADD4_ABC) == 0.4588  # ns, to 0.1 ps
    # One ABC run per clock domain: the slowest is the critical path.
    slower = ADD4_ABC.replace("458.77", "1234.5")
    assert parse_abc_delay(f"x\n{ADD4_ABC}\n{slower}\n") == 1.2345
    with pytest.raises(SynthError, match="ABC printed no timing"):
        parse_abc_delay("ABC: + stime -p\n")


def test_asic_flow_and_cache(cache: Path, tmp_path: Path) -> None:
    # Fails, never skips, without Yosys or the library: `make install` installs both.
    first = synthesize(ADD4, "add4", "asic")
    assert not first.cached
    lib = toolchain.liberty("osu018")
    areas = _cell_areas(lib.path)
    assert set(first.cells) <= set(areas)
    assert first.area_um2 == pytest.approx(sum(areas[c] * n for c, n in first.cells.items()))
    assert first.ffs == 5
    assert first.cells["DFFPOSX1"] == 5
    assert first.delay_ns is not None
    assert 0.05 < first.delay_ns < 5.0
    assert first.library == {"name": "osu018", "path": str(lib.path), "sha256": lib.sha256,
                             "node_nm": 180}
    assert first.tools["liberty"] == f"osu018 sha256:{lib.sha256[:16]}"
    out = first.as_dict()
    assert out["area_um2"] == first.area_um2
    assert out["scaled"]["nodes"]["45"]["area_um2"] == pytest.approx(first.area_um2 / 19,
                                                                      rel=1e-4)
    again = synthesize(ADD4, "add4", "asic", lib="osu018")
    assert again.cached
    assert (again.area_um2, again.delay_ns, again.cells) == (first.area_um2, first.delay_ns,
                                                             first.cells)
    # A library given by path, edited: another hash, so another cache entry, no scaling (its
    # node is unknown).
    copy = tmp_path / "osu018_copy.lib"
    copy.write_text(lib.path.read_text() + "\n/* edited */\n")
    other = synthesize(ADD4, "add4", "asic", lib=str(copy))
    assert not other.cached
    assert other.area_um2 == first.area_um2
    assert other.scaled is None
    assert other.library is not None
    assert other.library["node_nm"] is None
    assert len(list(cache.glob("*.json"))) == 2
    record = json.loads(next(iter(sorted(cache.glob("*.json")))).read_text())
    assert record["target"] == "asic"


def test_asic_timeout_is_an_error_not_cached(cache: Path) -> None:
    with pytest.raises(SynthError, match=r"yosys \(asic\) ran longer than 0.001 s"):
        synthesize(ADD4, "add4", "asic", timeout_s=0.001)
    assert not list(cache.glob("*.json"))


def test_asic_script() -> None:
    script = synth.yosys_script("asic", "t", liberty="/x/y.lib")
    assert script.startswith("read_verilog design.v; synth -flatten -top t; "
                             "dfflegalize -cell $_DFF_P_ 01; dfflibmap -liberty /x/y.lib; "
                             "abc -liberty /x/y.lib -script \"+strash;")
    assert ";buffer;upsize;dnsize;topo;stime,-p\"; opt_clean;" in script
    assert script.endswith("opt_clean; tee -q -o stat.txt stat -liberty /x/y.lib")
    with pytest.raises(synth.ArithforgeError, match="needed by target asic and by no other"):
        synth.yosys_script("asic", "t")
    with pytest.raises(synth.ArithforgeError, match="needed by target asic and by no other"):
        synth.yosys_script("cmos", "t", liberty="/x/y.lib")
    with pytest.raises(synth.ArithforgeError, match="must have no blanks"):
        synth.yosys_script("asic", "t", liberty="/x y/z.lib")


def test_liberty_lookup_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(toolchain.ToolchainError, match=r"^lib must be one of osu018, osu035, "
                                                       r"osu050 or a path to a .lib file, not "
                                                       r"'osu999'$"):
        toolchain.liberty("osu999")
    with pytest.raises(toolchain.ToolchainError, match=r"^Liberty file '/no/such.lib' does not "
                                                       r"exist"):
        toolchain.liberty("/no/such.lib")
    with pytest.raises(toolchain.ToolchainError, match=r"must be a Liberty file ending in \.lib"):
        toolchain.liberty(str(tmp_path))
    monkeypatch.setattr(toolchain, "QFLOW_TECH", tmp_path)
    with pytest.raises(toolchain.ToolchainError, match=r"^Liberty library osu035 is not "
                                                       r"installed .*: run 'make install' \(or "
                                                       r"apt-get install qflow-tech-osu035\)$"):
        toolchain.liberty("osu035")
    with pytest.raises(synth.ArithforgeError, match="Liberty library is for target asic only"):
        synth.check_tools("cmos", lib="osu018")


def test_scaling_factors() -> None:
    out = scaling.scale(19_000.0, 10.0, 180)
    nodes = out["nodes"]
    assert list(nodes) == ["45", "28", "16", "7"]
    assert nodes["45"]["area_um2"] == pytest.approx(1000.0)
    assert nodes["7"]["area_factor"] == pytest.approx(1 / 320, rel=1e-4)
    # 28 nm lies between the paper's 32 and 20 nm, and says it is interpolated.
    assert nodes["28"]["interpolated"] is True
    assert 1 / 88 < nodes["28"]["area_factor"] < 1 / 40
    assert not any(nodes[n]["interpolated"] for n in ("45", "16", "7"))
    areas = [nodes[n]["area_um2"] for n in ("45", "28", "16", "7")]
    assert areas == sorted(areas, reverse=True)
    # Delay: the ratio of the nodes' polynomials at their supplies, every one a speed-up.
    assert nodes["45"]["delay_factor"] == pytest.approx(
        scaling.delay_factor(45) / scaling.delay_factor(180), rel=1e-5)
    assert all(0 < nodes[n]["delay_factor"] < 1 for n in nodes)
    assert "Stillmaker" in out["source"]
    assert scaling.scale(1.0, None, 180)["nodes"]["7"]["delay_ns"] is None
    with pytest.raises(synth.ArithforgeError, match="not 350"):
        scaling.scale(1.0, 1.0, 350)


def test_area_factor_of_any_node_in_the_table() -> None:
    assert scaling.area_factor(45) == (pytest.approx(1 / 19), False)
    assert scaling.area_factor(180) == (1.0, False)
    f28, interpolated = scaling.area_factor(28)
    assert interpolated is True
    # scale() rounds its factors to six places.
    assert f28 == pytest.approx(scaling.scale(1.0, None, 180)["nodes"]["28"]["area_factor"],
                                abs=1e-6)
    # From another node of the table: the ratio of the two rows.
    assert scaling.area_factor(7, 45)[0] == pytest.approx(19 / 320)
    with pytest.raises(synth.ArithforgeError,
                       match=r"^node scaling covers 180 to 7 nm \(Stillmaker & Baas 2017\), "
                             r"not 5 nm$"):
        scaling.area_factor(5)
    with pytest.raises(synth.ArithforgeError, match="not 350$"):
        scaling.area_factor(45, 350)


def test_calibration_reports_um2_per_family() -> None:
    from arithforge.costmodel import calibrate as cal

    def sample(name: str, w: int, area: float | None, held: bool) -> cal.Sample:
        return cal.Sample(cal.Design(name, {"w": w}), {"adder": 100.0 * w}, 100 * w, 10 * w,
                          held, area)

    # Family "x": 3 um^2 per model transistor exactly; "y": 10% above that; one "y" design
    # without an area (its asic run was skipped) counts in no um^2 figure.
    samples = [sample("x", w, 300.0 * w, w % 2 == 0) for w in range(1, 7)]
    samples += [sample("y", w, 330.0 * w, w > 1) for w in range(1, 4)]
    samples.append(sample("y", 9, None, True))
    report = cal.Report(samples, {"adder": 1.0}, {"adder": 0.1}, {"adder": 3.0},
                        asic_skipped=["y w=9: asic synthesis ran longer than 300 s"])
    fam = report.families()
    assert fam["x"]["um2_median_abs_err"] == pytest.approx(0.0)
    assert fam["x"]["um2_spearman"] == pytest.approx(1.0)
    assert fam["y"]["um2_median_abs_err"] == pytest.approx(1 / 11)
    assert fam["y"]["held_out"] == 3
    summary = report.summary()["asic_um2"]
    assert summary["designs"] == 9
    assert summary["held_out"] == 5
    assert summary["skipped"] == ["y w=9: asic synthesis ran longer than 300 s"]
    lines = report.lines()
    assert any(line.startswith("held out, osu018 um^2 (5 of 9 designs with an area)")
               for line in lines)
    assert "  asic skipped: y w=9: asic synthesis ran longer than 300 s" in lines
    # The fit sees the training designs with an area: three at 3.0 um^2 per transistor, one at
    # 3.3, so its factor lies between them, nearer 3.0.
    fitted = cal.fit(samples)
    assert 3.0 < fitted.asic_um2["adder"] < 3.15


def test_asic_only_report_and_file(tmp_path: Path) -> None:
    from arithforge.costmodel import calibrate as cal
    from arithforge.costmodel.tech import load_calibration

    # No transistor or LUT truth (0): only um^2 figures are defined and written.
    samples = [cal.Sample(cal.Design("x", {"w": w}), {"adder": 100.0 * w, "mux": 10.0 * w}, 0,
                          0, w % 3 == 0, 310.0 * w) for w in range(1, 10)]
    report = cal.fit(samples, asic_only=True)
    assert report.size == {}
    assert report.ice40_luts == {}
    assert report.asic_um2["adder"] > 0
    summary = report.summary()
    assert summary["spearman"] is None
    assert summary["asic_um2"]["held_out"] == 3
    assert summary["asic_um2"]["median_abs_err"] < 0.01
    lines = report.lines()
    assert lines[0].split() == ["design", "split", "um^2", "model", "err"]
    assert lines[-1].startswith("  x: um^2 held out 3 of 9: Spearman 1.000, median |error| ")
    path = cal.write_asic_calibration(report, command="arithforge calibrate --test",
                                      path=tmp_path / "a.toml")
    loaded = load_calibration(path)
    assert loaded.size == {}
    assert loaded.asic_um2["adder"] == pytest.approx(report.asic_um2["adder"], rel=1e-5)
    assert loaded.meta["quality"]["um2_held_out"] == 3
    assert loaded.meta["quality"]["held_out"]["x w=3"][0] == 930
    with pytest.raises(synth.ArithforgeError, match="no um\\^2 factors"):
        cal.write_asic_calibration(cal.Report(samples, {}, {}), command="c",
                                   path=tmp_path / "b.toml")
