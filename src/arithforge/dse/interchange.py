# Ref: Accelergy v0.4 ERT/ART formats: Accelergy-Project/accelergy, accelergy/ERT_generator.py
#      (ERT.get_ERT: {"ERT": {"version", "tables": [{"name", "actions": [{"name", "arguments",
#      "energy"}]}]}}, energy in pJ), accelergy/ART_generator.py (ART.get_ART: {"ART":
#      {"version", "tables": [{"name", "area"}]}}, area in um^2), accelergy/raw_inputs_2_dicts.py
#      (ERT_input_parser: what an ERT given as input must hold);
#      Timeloop v4 architecture: Accelergy-Project/timeloop-accelergy-exercises,
#      workspace/example_designs/example_designs/simple_output_stationary/arch.yaml (!Container,
#      !Component, !Parallel nodes, version 0.4) and its ref_outputs (flattened names
#      system_top_level.NAME[1..N], the intmac compound component's compute/leak actions);
#      Timeloop's model reads a top-level ERT (and ART) among its inputs in place of its own
#      energy model (NVlabs/timeloop, src/applications/model: "Found Accelergy ERT ... replacing
#      internal energy model");
#      SCALE-Sim v3 (PyPI scalesim 3.0.0): scalesim/scale_config.py read_conf_file (the sections
#      and keys of a .cfg), scalesim/topology_utils.py load_arrays_gemm (GEMM topology CSV:
#      header, then "name, M, N, K," rows).
"""Export arithforge's cost of a design to Accelergy/Timeloop and SCALE-Sim.

``arithforge export accelergy|scalesim DESIGN -o DIR`` (:mod:`arithforge.cli.export`). A design
is either a PE spec as ``simulate --pe`` takes it (``fma:a=float8_e4m3fn,c=float32``,
``dot:n=16``) or the designs of an ``explore`` store (``results/explore`` or its
``results.sqlite``, ``STORE:IDENT`` for one design: the ident names its ``rtl/IDENT.v``).

- :func:`from_pe` and :func:`from_store` give :class:`ExportDesign` objects: a PE with its cost
  from the analytical model (:func:`arithforge.costmodel.estimate`), per operation and per MAC.
- :func:`accelergy_files`: ``ERT.yaml`` and ``ART.yaml`` in Accelergy's output formats (what
  Timeloop reads in place of calling Accelergy) for the MAC of the design, the three operand
  SRAMs of the array and DRAM, and ``arch.yaml``, a Timeloop v4 architecture whose component
  names are the tables' names.
- :func:`scalesim_files`: a SCALE-Sim v3 ``.cfg`` of the array (``simulate``'s array: rows,
  columns, dataflow, SRAM sizes) and, given GEMMs, a GEMM topology CSV in the array's units.

Units: energy in pJ per action, area in um^2, as Accelergy writes them. The MAC's numbers are
per MAC (a dot-product or tile PE of ``macs`` MACs per operation is ``macs`` MAC instances,
each ``energy / macs`` per compute and ``area * ii / macs``, the normalization ``explore``
uses). The SRAMs and DRAM are the accelerator model's (:mod:`arithforge.sim.accelerator`): the
technology's ``sram_bit`` cell (read energy per bit of an 8 KB array, Horowitz ISSCC 2014; bit
cell area, used for reads and writes alike, periphery not counted) and 20 pJ per DRAM bit. The
model has no leakage: every ``leak`` is 0.

Area source: the analytical model's ``area_um2`` (45 nm unless the store's spec or ``node``
says otherwise). Where an explore store holds a synthesis result with ``area_um2`` (an ASIC
target, from a real cell library), that figure is used instead and ``area_source`` says so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ArithforgeError

__all__ = ["ACCELERGY_VERSION", "DEFAULT_SRAM_KB", "ExportDesign", "accelergy_files",
           "check_sram_kb", "from_pe", "from_store", "gemm_rows", "is_store", "scalesim_files"]

#: The Accelergy/Timeloop input version the files declare (Timeloop v4 uses Accelergy 0.4).
ACCELERGY_VERSION = "0.4"
#: SRAM sizes in kB of the A (ifmap), B (filter) and C (ofmap) buffers when none are given:
#: SCALE-Sim's defaults (scale_config.__init__: 256, 256, 128).
DEFAULT_SRAM_KB = (256, 256, 128)
#: Bits per DRAM access in the architecture (an LPDDR4 x64 channel, as the Timeloop examples).
DRAM_WIDTH = 64
#: A GEMM size divisible by every tile and lane count: MACs per PE operation are read from the
#: descriptor's array_shape of it.
_DIVISIBLE = 2**8 * 3**2 * 5 * 7


@dataclass(frozen=True)
class ExportDesign:
    """One PE and its cost, as the exports write it.

    Members
    -------
    ident : str
        File-safe name (an explore design's ident, or one made from the PE spec).
    pe : str
        The PE spec (``simulate --pe``): ``NAME:PARAM=VALUE,...``.
    macs : int
        Multiply-accumulates per PE operation.
    ii : int
        Initiation interval of the PE in cycles.
    area_um2 : float
        Area of the whole PE.
    energy_pj : float
        Energy per PE operation.
    delay_ns : float
    tech : str
    area_source : str
        ``"analytical"`` or the synthesis target the area comes from.
    bits : tuple of int
        Bits of an A, a B and a C element code.
    """

    ident: str
    pe: str
    macs: int
    ii: int
    area_um2: float
    energy_pj: float
    delay_ns: float
    tech: str
    area_source: str = "analytical"
    bits: tuple[int, int, int] = (8, 8, 32)
    notes: tuple[str, ...] = field(default=())

    @property
    def energy_per_mac_pj(self) -> float:
        """Energy of one MAC: the operation's over its MACs."""
        return self.energy_pj / self.macs

    @property
    def area_per_mac_um2(self) -> float:
        """Area per MAC of throughput per cycle, ``area * ii / macs``."""
        return self.area_um2 * self.ii / self.macs

    @property
    def lanes(self) -> int:
        """MAC instances per PE in the Timeloop architecture: MACs per cycle, at least 1."""
        return max(1, round(self.macs / self.ii))


# -- designs ------------------------------------------------------------------------------------

def _macs(name: str, params: Mapping[str, Any]) -> int:
    """MACs per PE operation of datapath ``name`` at typed ``params`` (its array_shape)."""
    from ..datapaths import get

    d = get(name)
    n = _DIVISIBLE
    m_, n_, k_ = d.array_shape(params, n, n, n)
    total = m_ * n_ * k_
    if (n**3) % total:
        raise ArithforgeError(f"{name}: cannot tell its MACs per operation (array shape "
                              f"{m_}x{n_}x{k_} of a {n}^3 GEMM)")
    return n**3 // total


def _ident(pe: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in pe.replace(":", "-"))


def from_pe(text: str, *, node: int | None = None) -> ExportDesign:
    """The design of PE spec ``text`` (``simulate --pe``), costed by the analytical model.

    Raises
    ------
    ArithforgeError
        One line: a malformed spec, a datapath that cannot be an array PE, a bad parameter.
    """
    from ..costmodel import estimate, load_tech
    from ..datapaths import DatapathError
    from ..sim import accelerator as acc

    spec = acc.parse_pe(text)
    d = spec.descriptor  # refuses a datapath that cannot be an array PE
    try:
        typed = d.parse_params(spec.kwargs)
    except DatapathError as exc:
        raise ArithforgeError(f"PE {spec}: {exc}") from None
    latency, ii = spec.timing  # builds the PE, checking every parameter
    unit = d.build_unit(**spec.kwargs)
    tech = load_tech(node_nm=node)
    est = estimate(unit.structure(), tech)
    wa, wb, wc, _ = acc.element_bits(acc.ArrayConfig(1, 1, "os", spec))
    return ExportDesign(_ident(str(spec)), str(spec), _macs(spec.name, typed), int(ii),
                        float(est.area_um2), float(est.energy_pj), float(est.delay_ns),
                        est.tech, bits=(wa, wb, wc))


def is_store(text: str) -> bool:
    """Whether ``text`` (``STORE`` or ``STORE:IDENT``) names an explore store: an existing
    ``.sqlite`` file or a folder holding ``results.sqlite``, or a path (with ``/``) or
    ``.sqlite`` name that does not exist (so that a mistyped store is said to be missing rather
    than read as a PE spec)."""
    where = text.split(":", 1)[0]
    if not where:
        return False
    path = Path(where)
    if (path / "results.sqlite").is_file() or path.suffix == ".sqlite":
        return True
    return "/" in where


def _store_file(path: Path) -> Path:
    if path.is_dir():
        path = path / "results.sqlite"
    if not path.is_file():
        raise ArithforgeError(f"no explore store at {str(path)!r}: give the output folder of "
                              f"`arithforge explore` or its results.sqlite")
    return path


def from_store(text: str) -> tuple[list[ExportDesign], dict[str, str]]:
    """The costed designs of the explore store ``STORE[:IDENT]``, and the store's accelerator
    (``{"array": "RxC", "dataflow": ...}`` of its spec's ``[accel]``).

    The designs are those of the spec of the store's last run that have a cost result in it;
    with ``IDENT`` (a design's ident, as ``rtl/IDENT.v``, or its label) only that one.
    """
    from .designs import plan
    from .run import hdl_config
    from .spec import parse_spec

    where, _, point = text.partition(":")
    path = _store_file(Path(where))
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT spec FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            costs = db.execute("SELECT config, result FROM results WHERE stage = 'cost' AND "
                               "status = 'ok' ORDER BY rowid").fetchall()
            synths = db.execute("SELECT config, result FROM results WHERE stage = 'synth' AND "
                                "status = 'ok' ORDER BY rowid").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ArithforgeError(f"{str(path)!r} is not a readable explore store ({exc})") from None
    if row is None:
        raise ArithforgeError(f"{str(path)!r} records no explore run; run `arithforge explore` "
                              f"into it first")
    # Idents and labels come from the run's spec; a spec this version no longer reads (an
    # older store) leaves the designs named after their PE specs.
    names: dict[str, tuple[str, str]] = {}
    accel = {"array": "16x16", "dataflow": "os"}
    try:
        spec = parse_spec(row[0], str(path))
        designs, _ = plan(spec)
    except ArithforgeError:
        pass
    else:
        accel = {"array": spec.accel.array, "dataflow": spec.accel.dataflow}
        for d in designs:
            if d.hdl is not None:
                names.setdefault(_canon(hdl_config(d)), (d.ident, d.label))
    synth_area: dict[str, tuple[float, str]] = {}
    for c, r in synths:
        cfg, res = json.loads(c), json.loads(r)
        if res.get("area_um2"):
            synth_area[_canon({"hdl": cfg["hdl"], "params": cfg["params"]})] = (
                float(res["area_um2"]), str(cfg.get("target")))
    # A design costed again by a later run (newer code, another [cost] node) is exported with
    # its latest cost, in the place of its first.
    latest: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for c, r in costs:
        cfg = json.loads(c)
        latest[_canon({"hdl": cfg["hdl"], "params": cfg["params"]})] = (cfg, json.loads(r))
    out: list[ExportDesign] = []
    for hw, (cfg, cost) in latest.items():
        params = cfg["params"]
        pe = cfg["hdl"] + (":" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))
                           if params else "")
        ident, label = names.get(hw, (_ident(pe), pe))
        if point and point not in (ident, label):
            continue
        area, source = float(cost["area_um2_total"]), "analytical"
        if hw in synth_area:
            area, source = synth_area[hw][0], f"synth {synth_area[hw][1]}"
        out.append(ExportDesign(ident, pe, int(cost["macs"]), int(cost["ii"]), area,
                                float(cost["energy_pj_op"]), float(cost["delay_ns"]),
                                str(cost["tech"]), source, _bits(pe)))
    if not out:
        if point:
            known = ", ".join(sorted(n[0] for n in names.values())[:3]) or "none"
            raise ArithforgeError(f"{str(path)!r} has no costed design {point!r}; give a design "
                                  f"ident as in its rtl/ (e.g. {known}), or no :IDENT for all")
        raise ArithforgeError(f"{str(path)!r} holds no cost result; run `arithforge explore` "
                              f"with [stages] cost = true")
    return out, accel


def _canon(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _bits(pe: str) -> tuple[int, int, int]:
    from ..sim import accelerator as acc

    spec = acc.parse_pe(pe)
    try:
        wa, wb, wc, _ = acc.element_bits(acc.ArrayConfig(1, 1, "os", spec))
    except ArithforgeError:  # a design that is no array PE: its widths are not known here
        return (0, 0, 0)
    return wa, wb, wc


# -- Accelergy / Timeloop -----------------------------------------------------------------------

def _num(x: float) -> str:
    """A number in 6 significant digits that every YAML reader takes for a float: YAML 1.1
    (PyYAML) wants a point in the mantissa (``1e+06`` would be a string there, ``1.0e+06`` is a
    float)."""
    text = f"{float(x):.6g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa not in ("inf", "-inf", "nan"):
        mantissa += ".0"
    return mantissa + e + exponent


@dataclass(frozen=True)
class _Table:
    name: str
    count: int
    actions: tuple[tuple[str, float], ...]
    area: float
    cls: str
    attributes: tuple[tuple[str, Any], ...]


def _tables(design: ExportDesign, rows: int, cols: int, sram_kb: Sequence[int]
            ) -> list[_Table]:
    from ..costmodel import load_tech
    from ..sim.accelerator import DRAM_PJ_PER_BIT

    bit = load_tech().cell("sram_bit")
    tables = [_Table("DRAM", 1, tuple((a, DRAM_PJ_PER_BIT * DRAM_WIDTH)
                                      for a in ("read", "write", "update")) + (("leak", 0.0),),
                     0.0, "DRAM", (("type", "LPDDR4"), ("width", DRAM_WIDTH),
                                   ("datawidth", max(design.bits) or DRAM_WIDTH)))]
    for name, width, kb in zip(("ifmap_sram", "filter_sram", "ofmap_sram"), design.bits, sram_kb,
                               strict=True):
        width = max(int(width), 1)
        depth = int(kb) * 8192 // width
        access = float(bit.energy_pj) * width
        tables.append(_Table(name, 1, (("read", access), ("write", access), ("update", access),
                                       ("leak", 0.0)),
                             float(bit.area_um2) * width * depth, "SRAM",
                             (("depth", depth), ("width", width), ("datawidth", width))))
    macs = rows * cols * design.lanes
    tables.append(_Table("mac", macs, (("compute", design.energy_per_mac_pj), ("leak", 0.0)),
                         design.area_per_mac_um2, "arithforge_mac",
                         (("pe", design.pe), ("datawidth", design.bits[0]))))
    return tables


def _full(t: _Table) -> str:
    return f"system_top_level.{t.name}[1..{t.count}]"


def accelergy_files(design: ExportDesign, *, array: tuple[int, int] = (16, 16),
                    dataflow: str = "os", sram_kb: Sequence[int] = DEFAULT_SRAM_KB
                    ) -> dict[str, str]:
    """``ERT.yaml``, ``ART.yaml`` and ``arch.yaml`` of ``design`` on a ``rows x cols`` array.

    The ERT and ART are in the formats Accelergy writes (and Timeloop reads in place of
    calling Accelergy); their table names are those Timeloop gives the components of
    ``arch.yaml`` (``system_top_level.NAME[1..N]``).
    """
    rows, cols = array
    tables = _tables(design, rows, cols, sram_kb)
    head = (f"# arithforge export of PE {design.pe} ({design.tech}; area: {design.area_source})\n"
            f"# {rows}x{cols} array, {dataflow}; energy in pJ per action, area in um^2\n")
    ert = [head, "ERT:\n", f"  version: '{ACCELERGY_VERSION}'\n", "  tables:\n"]
    for t in tables:
        ert.append(f"  - name: {_full(t)}\n    actions:\n")
        for action, energy in t.actions:
            ert.append(f"    - name: {action}\n      arguments: {{}}\n"
                       f"      energy: {_num(energy)}\n")
    art = [head, "ART:\n", f"  version: '{ACCELERGY_VERSION}'\n", "  tables:\n"]
    art += [f"  - name: {_full(t)}\n    area: {_num(t.area)}\n" for t in tables]
    by = {t.name: t for t in tables}

    def component(t: _Table, indent: str, keep: str | None = None) -> str:
        attrs = "".join(f"{indent}    {k}: {json.dumps(v)}\n" for k, v in t.attributes)
        text = (f"{indent}- !Component\n{indent}  name: {t.name}\n{indent}  class: {t.cls}\n"
                f"{indent}  attributes:\n{attrs}")
        if keep is not None:
            text += f"{indent}  constraints:\n{indent}    dataspace: {{keep: [{keep}]}}\n"
        return text

    arch = [head, ("# Timeloop v4 architecture: the tables of ERT.yaml and ART.yaml are its "
                  "components' costs.\n"),
            "architecture:\n", f"  version: {ACCELERGY_VERSION}\n", "  nodes:\n",
            "  - !Container\n    name: system\n",
            component(by["DRAM"], "  "),
            ("  - !Container\n    name: accelerator\n    attributes:\n"
            f"      technology: {json.dumps(design.tech)}\n"),
            "  - !Parallel\n    nodes:\n",
            component(by["ifmap_sram"], "    ", "Inputs"),
            component(by["filter_sram"], "    ", "Weights"),
            component(by["ofmap_sram"], "    ", "Outputs"),
            f"  - !Container\n    name: PE\n    spatial: {{meshX: {cols}, meshY: {rows}}}\n"]
    if design.lanes > 1:
        arch.append(f"  - !Container\n    name: lane\n    spatial: {{meshX: {design.lanes}}}\n")
    arch.append(component(by["mac"], "  "))
    return {"ERT.yaml": "".join(ert), "ART.yaml": "".join(art), "arch.yaml": "".join(arch)}


# -- SCALE-Sim ------------------------------------------------------------------------------------

def gemm_rows(pe: str, gemms: Iterable[Mapping[str, Any]]) -> list[tuple[str, int, int, int]]:
    """``(name, M, N, K)`` of each GEMM in the array's units of PE ``pe`` (a dot-product PE's K
    counts its operations, as ``simulate`` schedules them); a batch of ``b`` copies is named
    ``NAME_xb``."""
    from ..datapaths import get
    from ..sim import accelerator as acc

    spec = acc.parse_pe(pe)
    d = get(spec.name)
    typed = d.parse_params(spec.kwargs)
    out = []
    for i, g in enumerate(gemms):
        m, n, k = d.array_shape(typed, int(g["M"]), int(g["N"]), int(g["K"]))
        name = _ident(str(g.get("name") or f"gemm{i}"))
        batch = int(g.get("batch", 1))
        out.append((name + (f"_x{batch}" if batch > 1 else ""), m, n, k))
    return out


def scalesim_files(design: ExportDesign, *, array: tuple[int, int] = (16, 16),
                   dataflow: str = "os", sram_kb: Sequence[int] = DEFAULT_SRAM_KB,
                   gemms: Sequence[tuple[str, int, int, int]] = ()) -> dict[str, str]:
    """``arithforge.cfg`` (SCALE-Sim v3) of the array and, with ``gemms``, ``topology.csv``
    (``gemm_rows``) and an empty ``layout.csv`` (SCALE-Sim's command line needs one)."""
    rows, cols = array
    cfg = "\n".join([
        f"# arithforge export: {rows}x{cols} array of PE {design.pe}, {dataflow}",
        (f"# PE: {design.macs} MACs per operation every {design.ii} cycles; "
        f"{design.energy_per_mac_pj:.6g} pJ and {design.area_per_mac_um2:.6g} um^2 per MAC "
        f"({design.tech}); A/B/C elements {design.bits[0]}/{design.bits[1]}/{design.bits[2]} "
        "bits"),
        "[general]",
        f"run_name = arithforge_{design.ident}",
        "",
        "[architecture_presets]",
        f"ArrayHeight = {rows}",
        f"ArrayWidth = {cols}",
        f"IfmapSramSzkB = {sram_kb[0]}",
        f"FilterSramSzkB = {sram_kb[1]}",
        f"OfmapSramSzkB = {sram_kb[2]}",
        "IfmapOffset = 0",
        "FilterOffset = 10000000",
        "OfmapOffset = 20000000",
        "Bandwidth = 10",
        f"Dataflow = {dataflow}",
        "ReadRequestBuffer = 32",
        "WriteRequestBuffer = 32",
        "",
        "[layout]",
        "IfmapCustomLayout = False",
        "IfmapSRAMBankBandwidth = 10",
        "IfmapSRAMBankNum = 10",
        "IfmapSRAMBankPort = 2",
        "FilterCustomLayout = False",
        "FilterSRAMBankBandwidth = 10",
        "FilterSRAMBankNum = 10",
        "FilterSRAMBankPort = 2",
        "",
        "[sparsity]",
        "SparsitySupport = false",
        "SparseRep = ellpack_block",
        "OptimizedMapping = false",
        "BlockSize = 8",
        "RandomNumberGeneratorSeed = 40",
        "",
        "[run_presets]",
        "InterfaceBandwidth = CALC",
        "UseRamulatorTrace = False",
        "",
    ])
    files = {"arithforge.cfg": cfg}
    if gemms:
        lines = ["Layer, M, N, K,"] + [f"{name}, {m}, {n}, {k}," for name, m, n, k in gemms]
        files["topology.csv"] = "\n".join(lines) + "\n"
        # SCALE-Sim 3.0.0 opens a layout file whatever [layout] says; a header alone is none.
        files["layout.csv"] = "Layer name,\n"
    return files


def check_sram_kb(values: Sequence[int]) -> tuple[int, int, int]:
    """Three positive SRAM sizes in kB (A, B, C), or a one-line error."""
    if len(values) != 3 or any(v < 1 for v in values) or any(v > 2**20 for v in values):
        raise ArithforgeError(f"--sram-kb must be three sizes in kB, A,B,C, each 1 to "
                              f"{2**20}, not {','.join(map(str, values))!r}")
    return int(values[0]), int(values[1]), int(values[2])
