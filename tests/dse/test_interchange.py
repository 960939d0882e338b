"""``arithforge export``: the files load in their tools' formats, with the cost model's numbers.

SCALE-Sim (PyPI ``scalesim``) reads the exported ``.cfg`` and GEMM topology with its own readers,
and its own compute model runs on them. Accelergy is not on PyPI: the ERT is checked against the
rules Accelergy's ERT input parser applies (``accelergy/raw_inputs_2_dicts.py``,
``ERT_input_parser``; version check in ``accelergy/version.py``), the ART against the form
``ART_generator.ART.get_ART`` writes, and ``arch.yaml`` against the Timeloop v4 examples of
``timeloop-accelergy-exercises`` (``!Container``/``!Component``/``!Parallel`` nodes).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from arithforge import cli
from arithforge.costmodel import estimate, load_tech
from arithforge.datapaths.registry import generator_descriptor
from arithforge.dse import interchange as ic
from arithforge.sim import accelerator as acc

FMA = "fma:a=float8_e4m3fn,c=float32"
DOT = "dot:n=4"


class _Loader(yaml.SafeLoader):
    """YAML with Timeloop's node tags (``!Component`` ...) read as mappings tagged ``_tag``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.MappingNode)
    return {"_tag": suffix, **loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tagged)


def _export(tmp_path: Path, *argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["export", *argv, "--json"]) == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def _check_ert(ert: Any) -> dict[str, dict[str, float]]:
    """The rules of Accelergy's ERT input parser; the table as {component: {action: pJ}}."""
    content = ert["ERT"]
    assert {"version", "tables"} <= set(content)
    assert str(content["version"]) == ic.ACCELERGY_VERSION
    assert isinstance(content["tables"], list)
    out: dict[str, dict[str, float]] = {}
    for entry in content["tables"]:
        assert {"name", "actions"} <= set(entry)
        actions = {}
        for action in entry["actions"]:
            assert set(action) == {"name", "arguments", "energy"}
            assert action["arguments"] == {}
            assert isinstance(action["energy"], float)
            assert action["energy"] >= 0
            actions[action["name"]] = action["energy"]
        out[entry["name"]] = actions
    return out


def _arch_components(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [c for n in node for c in _arch_components(n)]
    if node.get("_tag") == "Component":
        return [node]
    return _arch_components(node.get("nodes", []))


def test_accelergy_export_of_a_pe(tmp_path: Path) -> None:
    summary = _export(tmp_path, "accelergy", FMA, "-o", str(tmp_path), "--array", "4x8")
    ert = _check_ert(yaml.safe_load((tmp_path / "ERT.yaml").read_text()))
    art = yaml.safe_load((tmp_path / "ART.yaml").read_text())["ART"]
    assert str(art["version"]) == ic.ACCELERGY_VERSION
    areas = {t["name"]: t["area"] for t in art["tables"]}
    assert set(areas) == set(ert)
    # The MAC's numbers are the cost model's, per MAC.
    spec = acc.parse_pe(FMA)
    est = estimate(generator_descriptor("fma").build_unit(**spec.kwargs).structure())
    mac = "system_top_level.mac[1..32]"
    assert ert[mac]["compute"] == pytest.approx(est.energy_pj, rel=1e-5)
    assert areas[mac] == pytest.approx(est.area_um2, rel=1e-5)
    assert summary["designs"][0]["energy_pj_per_mac"] == pytest.approx(est.energy_pj, rel=1e-5)
    # SRAMs: the technology's bit cell, A and B 8-bit words, C 32-bit words.
    bit = load_tech().cell("sram_bit")
    assert ert["system_top_level.ifmap_sram[1..1]"]["read"] == pytest.approx(8 * bit.energy_pj)
    assert ert["system_top_level.ofmap_sram[1..1]"]["write"] == pytest.approx(32 * bit.energy_pj)
    assert areas["system_top_level.ifmap_sram[1..1]"] == pytest.approx(
        256 * 8192 * bit.area_um2, rel=1e-5)
    # The architecture names every table's component, with its count.
    arch = yaml.load((tmp_path / "arch.yaml").read_text(), Loader=_Loader)["architecture"]
    assert str(arch["version"]) == ic.ACCELERGY_VERSION
    names = {c["name"] for c in _arch_components(arch["nodes"])}
    assert {n.split(".")[1].split("[")[0] for n in ert} == names
    pe = next(n for n in arch["nodes"] if n.get("name") == "PE")
    assert pe["spatial"] == {"meshX": 8, "meshY": 4}
    keeps = {c["name"]: c["constraints"]["dataspace"]["keep"]
             for c in _arch_components(arch["nodes"]) if "constraints" in c}
    assert keeps == {"ifmap_sram": ["Inputs"], "filter_sram": ["Weights"],
                     "ofmap_sram": ["Outputs"]}


def test_accelergy_dot_pe_is_per_mac(tmp_path: Path) -> None:
    """A dot-product PE of n lanes is n MAC instances per PE, each 1/n of its energy."""
    _export(tmp_path, "accelergy", DOT, "-o", str(tmp_path), "--array", "2x2")
    ert = _check_ert(yaml.safe_load((tmp_path / "ERT.yaml").read_text()))
    spec = acc.parse_pe(DOT)
    est = estimate(generator_descriptor("dot").build_unit(**spec.kwargs).structure())
    assert ert["system_top_level.mac[1..16]"]["compute"] == pytest.approx(est.energy_pj / 4,
                                                                           rel=1e-5)
    arch = yaml.load((tmp_path / "arch.yaml").read_text(), Loader=_Loader)["architecture"]
    lane = next(n for n in arch["nodes"] if n.get("name") == "lane")
    assert lane["spatial"] == {"meshX": 4}


def _scalesim_cycles(folder: Path) -> list[int]:
    """Compute cycles of every layer by SCALE-Sim's own compute model (no memory stalls: its
    memory model is swapped for one that records the demand matrices)."""
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    class Demand:
        cycles = -1

        def service_memory_requests(self, ifmap: Any, filt: Any, ofmap: Any) -> None:
            self.cycles = int(ifmap.shape[0])

    config = scale_config()
    config.read_conf_file(str(folder / "arithforge.cfg"))
    assert config.valid_conf_flag
    topo = topologies()
    topo.load_arrays(str(folder / "topology.csv"), mnk_inputs=True)
    cycles = []
    for layer in range(topo.get_num_layers()):
        sim = single_layer_sim()
        demand = Demand()
        with contextlib.redirect_stdout(io.StringIO()):
            sim.set_params(layer_id=layer, config_obj=config, topology_obj=topo,
                           layout_obj=layouts(), verbose=False)
            sim.set_memory_system(demand)  # type: ignore[arg-type]
            sim.run()
        cycles.append(demand.cycles)
    return cycles


# SCALE-Sim 3.0.0's topology reader (topology_utils.load_arrays_gemm) never closes the file.
_OPEN_FILE = "ignore::pytest.PytestUnraisableExceptionWarning"


@pytest.mark.filterwarnings(_OPEN_FILE)
@pytest.mark.parametrize("pe", [FMA, DOT])
def test_scalesim_reads_the_export(tmp_path: Path, pe: str, synthetic_trace: Path) -> None:
    from scalesim.scale_config import scale_config
    from scalesim.topology_utils import topologies

    _export(tmp_path, "scalesim", pe, "-o", str(tmp_path), "--array", "4x8", "--dataflow", "ws",
            "--sram-kb", "64,32,16", "--trace", str(synthetic_trace))
    config = scale_config()
    config.read_conf_file(str(tmp_path / "arithforge.cfg"))
    assert config.valid_conf_flag
    assert config.get_array_dims() == (4, 8)
    assert config.get_dataflow() == "ws"
    assert config.get_mem_sizes() == (64, 32, 16)
    # The topology: the trace's six 256x256x256 GEMMs in the array's units (a dot PE of 4
    # lanes takes K in steps of 4).
    topo = topologies()
    topo.load_arrays(str(tmp_path / "topology.csv"), mnk_inputs=True)
    assert topo.get_num_layers() == 6
    k = 256 // (4 if pe == DOT else 1)
    for layer in range(6):
        # SCALE-Sim's GEMM mode: an M x K ifmap (1 x K filter window) and N filters.
        assert topo.get_layer_ifmap_dims(layer) == [256, k]
        assert topo.get_layer_num_filters(layer) == 256


def _scalesim_cycles(folder: Path) -> list[int]:
    """Compute cycles of every layer by SCALE-Sim's own compute model (no memory stalls: its
    memory model is swapped for one that records the demand matrices; SCALE-Sim 3.0.0's memory
    model fails under numpy 2.4, int() of a 1-element 2-D array)."""
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    class Demand:
        cycles = -1

        def service_memory_requests(self, ifmap: Any, filt: Any, ofmap: Any) -> None:
            self.cycles = int(ifmap.shape[0])

    config = scale_config()
    config.read_conf_file(str(folder / "arithforge.cfg"))
    topo = topologies()
    topo.load_arrays(str(folder / "topology.csv"), mnk_inputs=True)
    cycles = []
    for layer in range(topo.get_num_layers()):
        sim = single_layer_sim()
        demand = Demand()
        with contextlib.redirect_stdout(io.StringIO()):
            sim.set_params(layer_id=layer, config_obj=config, topology_obj=topo,
                           layout_obj=layouts(), verbose=False)
            sim.set_memory_system(demand)
            sim.run()
        cycles.append(demand.cycles)
    return cycles


@pytest.mark.filterwarnings(_OPEN_FILE)
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("pe", [FMA, DOT])
def test_scalesim_runs_the_export(tmp_path: Path, pe: str, dataflow: str) -> None:
    """SCALE-Sim's compute model on the exported array and topology agrees with arithforge's
    model of the same array: exactly for ws; for os SCALE-Sim 3.0.0's compute model leaves out
    the R-cycle drain of each fold that its paper's runtime (2R + C + T - 2, which
    sim.accelerator follows) counts."""
    design = ic.from_pe(pe)
    shapes = [{"M": 16, "N": 12, "K": 20}, {"M": 5, "N": 9, "K": 7}, {"M": 8, "N": 8, "K": 8}]
    gemms = ic.gemm_rows(pe, shapes)
    files = ic.scalesim_files(design, array=(4, 8), dataflow=dataflow, gemms=gemms)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cfg = acc.ArrayConfig(4, 8, dataflow, acc.parse_pe(pe))
    got = _scalesim_cycles(tmp_path)
    for (_, m, n, k), cycles in zip(gemms, got, strict=True):
        ours = acc.schedule(cfg, m, n, k).cycles
        assert ours == acc.scalesim_cycles(4, 8, dataflow, m, n, k)
        folds = math.ceil(m / 4) * math.ceil(n / 8)
        assert cycles == (ours if dataflow == "ws" else ours - 4 * folds), (m, n, k)


def _store(tmp_path: Path) -> Path:
    """A results store as `explore` leaves it: one run (the built-in spec's text) and the cost
    rows of two FMA designs of it."""
    from arithforge.dse.designs import plan
    from arithforge.dse.run import cost_config
    from arithforge.dse.spec import default_spec_text, parse_spec
    from arithforge.dse.store import Store

    text = default_spec_text()
    spec = parse_spec(text)
    designs = [d for d in plan(spec)[0] if d.hdl is not None and d.hdl[0] == "fma"][:2]
    with Store(tmp_path / "results.sqlite") as store:
        store.start_run(text, "local")
        for d in designs:
            assert d.hdl is not None
            unit = generator_descriptor("fma").build_unit(**d.hdl[1])
            est = estimate(unit.structure())
            store.put(f"k-{d.ident}", "cost", cost_config(spec, d), "test", result={
                "area_um2": est.area_um2, "energy_pj": est.energy_pj,
                "area_um2_total": est.area_um2, "energy_pj_op": est.energy_pj,
                "delay_ns": est.delay_ns, "macs": 1, "ii": 1, "tech": est.tech})
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute("UPDATE runs SET status = 'finished'")
    return tmp_path


def test_export_of_a_store(tmp_path: Path) -> None:
    store = _store(tmp_path / "explore")
    rows = sqlite3.connect(store / "results.sqlite").execute(
        "SELECT config, result FROM results").fetchall()
    summary = _export(tmp_path, "accelergy", str(store), "-o", str(tmp_path / "out"))
    assert len(summary["designs"]) == len(rows) == 2
    assert summary["array"] == "16x16"  # the built-in spec's [accel] array
    for design, (config, result) in zip(summary["designs"], rows, strict=True):
        folder = Path(design["folder"])
        assert folder.parent == tmp_path / "out"
        ert = _check_ert(yaml.safe_load((folder / "ERT.yaml").read_text()))
        assert ert["system_top_level.mac[1..256]"]["compute"] == pytest.approx(
            json.loads(result)["energy_pj_op"], rel=1e-5)
        assert design["pe"].startswith(json.loads(config)["hdl"] + ":")
    one = summary["designs"][1]["ident"]
    again = _export(tmp_path, "accelergy", f"{store}:{one}", "-o", str(tmp_path / "one"))
    assert [d["ident"] for d in again["designs"]] == [one]


def test_store_synthesis_area_replaces_the_model(tmp_path: Path) -> None:
    """The hook for ASIC synthesis: a synth row with area_um2 is the exported area."""
    from arithforge.dse.store import Store

    store = _store(tmp_path / "explore")
    config, = sqlite3.connect(store / "results.sqlite").execute(
        "SELECT config FROM results ORDER BY rowid LIMIT 1").fetchone()
    hw = {k: v for k, v in json.loads(config).items() if k in ("hdl", "params")}
    with Store(store / "results.sqlite") as db:
        db.put("synth-1", "synth", {**hw, "target": "asic"}, "test", result={"area_um2": 1234.5})
    summary = _export(tmp_path, "accelergy", str(store), "-o", str(tmp_path / "out"))
    first, second = summary["designs"]
    assert (first["area_source"], first["area_um2_per_mac"]) == ("synth asic", 1234.5)
    assert second["area_source"] == "analytical"
    art = yaml.safe_load((Path(first["folder"]) / "ART.yaml").read_text())["ART"]
    assert {t["name"]: t["area"] for t in art["tables"]}["system_top_level.mac[1..256]"] == 1234.5


def test_multi_cycle_pe_adds_up_to_its_area(tmp_path: Path) -> None:
    """A PE of many MACs over several cycles (the LUT core): lanes = MACs per cycle, and the
    lanes' areas add up to the PE's."""
    design = ic.from_pe("lut")
    assert design.ii > 1
    assert design.macs % design.ii == 0
    assert design.lanes == design.macs // design.ii
    assert design.lanes * design.area_per_mac_um2 == pytest.approx(design.area_um2)
    files = ic.accelergy_files(design, array=(2, 3))
    ert = _check_ert(yaml.safe_load(files["ERT.yaml"]))
    assert ert[f"system_top_level.mac[1..{6 * design.lanes}]"]["compute"] == pytest.approx(
        design.energy_pj / design.macs, rel=1e-5)


def test_a_folder_named_like_a_datapath_is_a_pe(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fma").mkdir()
    assert not ic.is_store("fma")
    assert not ic.is_store("fma:a=float8_e4m3fn")
    (tmp_path / "fma" / "results.sqlite").write_text("")
    assert ic.is_store("fma")
    assert ic.is_store("nowhere/store:ident")


@pytest.mark.parametrize("value", [0.0, 1.0, 2.1467, 1280.0, 725615.04, 1e6, 1.5e-5, 1e-5,
                                   2.3e12])
def test_numbers_read_back_as_floats(value: float) -> None:
    """Every number of the tables is a float to a YAML 1.1 reader (PyYAML reads ``1e+06`` as a
    string), within 6 significant digits."""
    parsed = yaml.safe_load(ic._num(value))
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("pe", [FMA, "imac:a_bits=8,b_bits=8,acc_bits=32"])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_tables_reproduce_the_accelerator_energy(pe: str, dataflow: str) -> None:
    """The action counts of arithforge's schedule priced by the exported ERT give the energy
    `simulate` computes: the tables are the same model, not a copy of a few of its numbers."""
    shape = (16, 12, 20)
    ert = _check_ert(yaml.safe_load(ic.accelergy_files(ic.from_pe(pe), array=(4, 8),
                                                       dataflow=dataflow)["ERT.yaml"]))
    ours = acc.gemm_objectives([shape], pe=pe, array=(4, 8), dataflow=dataflow)
    s = acc.schedule(acc.ArrayConfig(4, 8, dataflow, acc.parse_pe(pe)), *shape)
    table = {name.split(".")[1].split("[")[0]: actions for name, actions in ert.items()}
    energy = (s.pe_ops * table["mac"]["compute"]
              + s.reads["a"] * table["ifmap_sram"]["read"]
              + s.reads["b"] * table["filter_sram"]["read"]
              + (s.reads["psum"] + s.writes) * table["ofmap_sram"]["write"]
              + ours["dram_bits"] / ic.DRAM_WIDTH * table["DRAM"]["read"])
    assert energy == pytest.approx(ours["energy_pj"], rel=1e-5)


def test_generate_options_give_the_same_export(tmp_path: Path) -> None:
    """`fma --a float8_e4m3fn --c float32` (generate's options) is `fma:a=...,c=...`."""
    a = _export(tmp_path, "accelergy", "fma", "--a", "float8_e4m3fn", "--c", "float32", "-o",
                str(tmp_path / "a"))
    b = _export(tmp_path, "accelergy", FMA, "-o", str(tmp_path / "b"))
    assert a["designs"][0]["pe"] == b["designs"][0]["pe"] == f"{FMA},out=float32"
    for name in ("ERT.yaml", "ART.yaml", "arch.yaml"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_store_exports_the_latest_cost(tmp_path: Path) -> None:
    from arithforge.dse.store import Store

    store = _store(tmp_path / "explore")
    config, result = sqlite3.connect(store / "results.sqlite").execute(
        "SELECT config, result FROM results ORDER BY rowid LIMIT 1").fetchone()
    later = {**json.loads(config), "node": 7}  # costed again by a later run, at 7 nm
    with Store(store / "results.sqlite") as db:
        db.put("later", "cost", later, "test",
               result={**json.loads(result), "energy_pj_op": 0.125})
    summary = _export(tmp_path, "accelergy", str(store), "-o", str(tmp_path / "out"))
    assert len(summary["designs"]) == 2
    assert summary["designs"][0]["energy_pj_per_mac"] == 0.125
