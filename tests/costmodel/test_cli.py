"""`arithforge cost` and `arithforge synth` over a plug-in datapath (tinymac), registered through
the registry's public call."""

from __future__ import annotations

import json

import pytest

from arithforge import cli


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cost_json(registry, capsys) -> None:
    status, out, err = run_cli(capsys, "cost", "tinymac", "--stages", "1", "--json")
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert {"area_um2", "transistors", "energy_pj", "delay_ns"} <= set(data)
    assert data["datapath"] == "tinymac"
    assert data["params"] == {"width": 4, "stages": 1}
    assert data["latency"] == 1
    assert data["transistors"] > 0
    assert [c["kind"] for c in data["components"]] == ["multiplier", "adder", "register"]


def test_cost_node_and_uncalibrated(registry, capsys) -> None:
    _, out45, _ = run_cli(capsys, "cost", "tinymac", "--json", "--uncalibrated")
    _, out7, _ = run_cli(capsys, "cost", "tinymac", "--json", "--uncalibrated", "--node", "7")
    at45, at7 = json.loads(out45), json.loads(out7)
    assert at7["area_um2"] == pytest.approx(0.05 * at45["area_um2"], rel=1e-3)
    assert at7["transistors"] == at45["transistors"]
    assert at7["tech"] == "generic-45nm@7nm"


def test_cost_table(registry, capsys) -> None:
    status, out, _ = run_cli(capsys, "cost", "tinymac", "--stages", "1")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("cost tinymac width=4 stages=1 (generic-45nm")
    assert lines[1].split() == ["component", "kind", "width", "area", "um2", "transistors",
                                "energy", "pJ", "delay", "ns", "crit"]
    assert [ln.split()[0] for ln in lines[2:6]] == ["mul", "add", "r0", "total"]


def test_cost_area_osu018(registry, capsys) -> None:
    from arithforge.costmodel import estimate, library_area, load_tech
    from arithforge.costmodel.scaling import AREA_FROM_180
    from arithforge.datapaths import get

    status, out, err = run_cli(capsys, "cost", "tinymac", "--stages", "1", "--json",
                               "--area", "osu018")
    assert (status, err) == (0, "")
    data = json.loads(out)
    area = data["area"]
    assert (area["source"], area["library_nm"], area["node_nm"]) == ("osu018", 180, 45)
    # The um^2 factors of calibrated_asic.toml times the uncalibrated transistors per kind.
    tech = load_tech()
    unit = get("tinymac").build_unit(stages=1)
    raw = estimate(unit.structure(), tech.with_calibration(None))
    expected = sum(tech.calibration.asic_um2[c.kind] * c.cost.raw_transistors
                   for c in raw.components)
    assert area["library_um2"] == pytest.approx(expected, rel=1e-6)
    assert library_area(raw, tech).library_um2 == pytest.approx(expected)
    assert data["area_um2"] == pytest.approx(expected / AREA_FROM_180[45], rel=1e-5)
    assert sum(c["area_um2"] for c in data["components"]) == pytest.approx(data["area_um2"],
                                                                          abs=0.01)
    # Transistors, energy and delay stay the model's.
    _, plain, _ = run_cli(capsys, "cost", "tinymac", "--stages", "1", "--json")
    model = json.loads(plain)
    assert model["area_um2"] != data["area_um2"]
    assert {k: model[k] for k in ("transistors", "energy_pj", "delay_ns")} == \
        {k: data[k] for k in ("transistors", "energy_pj", "delay_ns")}
    _, at28, _ = run_cli(capsys, "cost", "tinymac", "--stages", "1", "--json", "--area",
                         "osu018", "--node", "28")
    area28 = json.loads(at28)["area"]
    assert (area28["node_nm"], area28["interpolated"]) == (28, True)
    assert area28["library_um2"] == area["library_um2"]
    assert 1 / 88 < area28["factor"] < 1 / 40
    status, out, _ = run_cli(capsys, "cost", "tinymac", "--stages", "1", "--area", "osu018",
                             "--node", "7")
    lines = out.splitlines()
    assert status == 0
    assert lines[0].endswith("(generic-45nm@7nm, area osu018 cells)")
    total = next(ln for ln in lines if ln.startswith("total")).split()
    assert float(total[1].replace(",", "")) == pytest.approx(
        area["library_um2"] / AREA_FROM_180[7], rel=0.01)
    assert lines[-2].startswith(f"area: {area['library_um2']:,.0f} um2 of osu018 cells at 180 "
                                f"nm (um^2 calibration), x0.003125 to 7 nm (Stillmaker")


@pytest.mark.parametrize(("argv", "message"), [
    (["cost", "tinymac", "--area", "osu018", "--uncalibrated"],
     ("--area osu018 prices components with the um^2 calibration; drop --uncalibrated or use "
      "--area model")),
    (["cost", "tinymac", "--area", "osu035"],
     ("cost tinymac: argument --area: invalid choice: 'osu035' (choose from 'model', "
      "'osu018')")),
    (["cost", "tinymac", "--node", "5"], "node must be one of 7, 16, 28, 45 nm"),
    (["cost", "tinymac", "--stagse", "1"],
     "cost tinymac: unrecognized arguments: --stagse 1 (see `arithforge cost tinymac --help`)"),
    (["synth", "tinymac", "--target", "cmos", "--fmax"],
     "--fmax needs target ice40 or ecp5, not 'cmos'"),
    (["cost", "tinymax"], "unknown datapath 'tinymax'; closest: tinymac (known: tinymac)"),
    (["cost", "tinymac", "--vectors", "500"],
     ("cost tinymac: argument --vectors: cost has no --vectors (verify's --vectors is "
     "exhaustive, corner or random:N (N a count from 1 to 1e12)); the operations of --stream "
     "are --stream-vectors N")),
    (["cost", "tinymac", "--stream-vectors", "500"],
     ("--stream-vectors counts the operations of --stream; add --stream or drop "
     "--stream-vectors")),
    (["cost", "tinymac", "--stream", "gauss"],
     ("cost tinymac: argument --stream: operand stream must be one of uniform, gaussian, laplace, "
     "student-t3 or trace:DIR, not 'gauss'")),
    (["synth", "tinymac", "--target", "ice40", "--freq", "50"],
     "--freq is the target clock of --fmax's place and route; add --fmax or drop --freq"),
    (["synth", "tinymac", "--target", "ice40", "--fmax", "--freq", "nan"],
     "synth tinymac: argument --freq: must be a finite number, not 'nan'"),
    (["synth", "tinymac", "--nodsp"],
     ("--nodsp keeps multipliers out of the DSP blocks of ecp5 and xc7; target 'cmos' maps none "
     "there")),
    (["calibrate", "--list", "--write"],
     "--list prints the design set and exits, fitting nothing to --write; give one of them"),
])
def test_user_errors(registry, capsys, argv: list[str], message: str) -> None:
    status, out, err = run_cli(capsys, *argv)
    assert (status, out) == (2, "")
    assert err.startswith(f"arithforge: error: {message}")
    assert err.count("\n") == 1


def test_synth_json(registry, synth_cache, capsys) -> None:
    status, out, _ = run_cli(capsys, "synth", "tinymac", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["target"] == "cmos"
    assert data["transistors"] > 0
    assert data["cached"] is False
    _, again, _ = run_cli(capsys, "synth", "tinymac", "--json")
    assert json.loads(again)["cached"] is True
    status, out, _ = run_cli(capsys, "synth", "tinymac", "--target", "ice40", "--stages", "1")
    assert status == 0
    assert out.splitlines()[0] == "synth tinymac width=4 stages=1 --target ice40"
    assert "  luts" in out


@pytest.mark.cosim
def test_cost_stream(registry, capsys) -> None:
    status, out, _ = run_cli(capsys, "cost", "tinymac", "--json", "--stream", "gaussian",
                             "--stream-vectors", "500")
    assert status == 0
    data = json.loads(out)
    assert data["activity"]["stream"] == "gaussian"
    assert 0 < data["activity"]["activity"] < 1
    assert data["activity"]["energy_pj"] == data["energy_pj"]
