"""Calibration: fit the analytical model's per-kind factors to Yosys over a set of datapaths.

For every design of :func:`design_set` the uncalibrated model gives one feature per component
kind (the transistors its closed forms predict for that kind), and synthesis gives three truths:
Yosys ``stat -tech cmos`` transistors, iCE40 LUT4s and the cell area in um^2 of the OSU 0.18 um
standard-cell library (``asic`` target, :data:`ASIC_LIB`) (:mod:`.synth`, cached). An asic run
longer than :data:`ASIC_TIMEOUT_S` is stopped and the design left out of the um^2 fit, named in
the report's ``asic_skipped``. A deterministic
split (:func:`.fit.held_out`, by a hash of each design's label) keeps about a quarter of the
designs out of the fit; least squares on the log scale with a weak log-normal prior
(:func:`.fit.fit_factors`) fits one factor per kind for transistors and one LUT-per-transistor
coefficient per kind for iCE40 and one um^2-per-transistor coefficient per kind for the
standard cells. Quality is reported on the held-out designs only: Spearman rank
correlation and median absolute relative error of the prediction against the truth, over all
held-out designs and per family (the designs of one datapath, :meth:`Report.families`).

:func:`write_calibration` stores the factors in ``data/calibrated.toml``, which
:func:`~.tech.load_tech` applies by default.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import networkx as nx

from .._errors import ArithforgeError
from ..workloads.metrics import spearman
from .fit import fit_factors, held_out, median_abs_err
from .model import FREE_KINDS, estimate
from .tech import (
    ASIC_LIB,
    DEFAULT_ASIC_CALIBRATION,
    DEFAULT_CALIBRATION,
    KINDS,
    Technology,
    load_tech,
)

__all__ = ["ASIC_LIB", "ASIC_TIMEOUT_S", "Design", "Report", "Sample", "calibrate", "design_set",
           "features", "measure", "write_asic_calibration", "write_calibration"]

#: Longest asic synthesis of one design; a slower one is left out of the um^2 fit.
ASIC_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Design:
    """One datapath of the registry with its parameters."""

    datapath: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``name key=value ...``: names the design in reports and picks its split."""
        shown = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.datapath} {shown}".strip()


@dataclass(frozen=True)
class Sample:
    """A design's model features and synthesis truths."""

    design: Design
    features: Mapping[str, float]
    transistors: int
    luts: int
    held_out: bool
    area_um2: float | None = None

    @property
    def raw(self) -> float:
        """Transistors the uncalibrated model predicts."""
        return float(sum(self.features.values()))


def features(graph: nx.DiGraph, tech: Technology) -> dict[str, float]:
    """Uncalibrated transistors of ``graph`` per component kind."""
    out: dict[str, float] = {}
    for c in estimate(graph, tech.with_calibration(None)).components:
        if c.kind not in FREE_KINDS:
            out[c.kind] = out.get(c.kind, 0.0) + c.cost.raw_transistors
    return out


def _predict(factors: Mapping[str, float], feats: Mapping[str, float]) -> float:
    return sum(factors.get(k, 0.0) * v for k, v in feats.items())


# -- the design set -----------------------------------------------------------------------------

def design_set(registry: ModuleType) -> list[Design]:
    """The calibration designs of every datapath (each descriptor's ``calibration`` in
    :mod:`arithforge.datapaths`, registry order) that ``registry`` has a generator for.

    ``registry`` is ``arithforge.hdl.registry`` (or a module like it), passed in by the caller:
    the cost model imports no ``hdl`` (the layer contract) and reads a datapath through
    ``structure()`` and the export alone. A datapath the registry lacks is left out, and a
    design it rejects is skipped with a message (:func:`measure`).
    """
    from ..datapaths import DATAPATHS

    return [Design(name, dict(params)) for name, d in DATAPATHS.items()
            if name in registry.DATAPATHS for params in d.calibration]


# -- measuring and fitting ----------------------------------------------------------------------

def _truth(verilog: str, top: str, asic_only: bool = False) -> tuple[int, int, float | str]:
    """Transistors, iCE40 LUTs, and the um^2 of :data:`ASIC_LIB` (or why there is none);
    ``asic_only``: the um^2 alone (transistors and LUTs 0)."""
    from .synth import SynthError, synthesize

    if asic_only:
        transistors, luts = 0, 0
    else:
        cmos = synthesize(verilog, top, "cmos")
        ice40 = synthesize(verilog, top, "ice40")
        if cmos.transistors is None or ice40.luts is None:
            raise ArithforgeError(f"{top}: synthesis reported no transistors or LUTs")
        transistors, luts = cmos.transistors, ice40.luts
    try:
        asic = synthesize(verilog, top, "asic", lib=ASIC_LIB, timeout_s=ASIC_TIMEOUT_S)
    except SynthError as exc:
        if "ran longer" not in str(exc):
            raise
        return transistors, luts, f"asic synthesis ran longer than {ASIC_TIMEOUT_S:g} s"
    if asic.area_um2 is None:
        raise ArithforgeError(f"{top}: asic synthesis reported no area")
    return transistors, luts, asic.area_um2


def measure(designs: Sequence[Design], *, registry: ModuleType, jobs: int = 2,
            progress: IO[str] | None = None, skipped: list[str] | None = None,
            asic_skipped: list[str] | None = None, asic_only: bool = False) -> list[Sample]:
    """Build, cost and synthesize every design; at most ``jobs`` synthesis runs at a time.

    Datapaths are built and exported in this thread (Amaranth), Yosys runs in ``jobs`` worker
    threads, each waiting on one process. A design the registry rejects (a ``ValueError``, a
    format it does not support) is left out and described in ``skipped``; a design whose asic
    synthesis timed out keeps ``area_um2`` None and is described in ``asic_skipped``.
    """
    from .synth import export_datapath

    tech = load_tech(calibration=False)
    start = time.perf_counter()
    pending = []
    finished = itertools.count(1)  # callbacks run in the worker threads; next() is atomic

    def report(label: str, future: Future[tuple[int, int, float | str]]) -> None:
        done = next(finished)
        if progress is not None and future.exception() is None:
            transistors, luts, area = future.result()
            shown = f"{area:.0f} um^2" if isinstance(area, float) else area
            if not asic_only:
                shown = f"{transistors} transistors, {luts} LUTs, {shown}"
            print(f"[{done}/{len(designs)} {time.perf_counter() - start:6.1f} s] {label}: "
                  f"{shown}", file=progress, flush=True)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for d in designs:
            try:
                dp = registry.build(d.datapath, **d.params)
            except (TypeError, ValueError) as exc:
                note = f"{d.label}: {exc}"
                if skipped is not None:
                    skipped.append(note)
                if progress is not None:
                    print(f"skipped {note}", file=progress, flush=True)
                continue
            feats = features(dp.structure(), tech)
            verilog, top, _ = export_datapath(dp)
            future = pool.submit(_truth, verilog, top, asic_only)
            future.add_done_callback(functools.partial(report, d.label))
            pending.append((d, feats, future))
        samples = []
        for d, feats, future in pending:
            transistors, luts, truth = future.result()
            if isinstance(truth, str) and asic_skipped is not None:
                asic_skipped.append(f"{d.label}: {truth}")
            area = truth if isinstance(truth, float) else None
            samples.append(Sample(d, feats, transistors, luts, held_out(d.label), area))
    return samples


@dataclass
class Report:
    """Fitted factors and their quality."""

    samples: list[Sample]
    size: dict[str, float]
    ice40_luts: dict[str, float]
    asic_um2: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    asic_skipped: list[str] = field(default_factory=list)
    #: Only the um^2 truth was measured (``calibrate --asic-only``).
    asic_only: bool = False

    @property
    def train(self) -> list[Sample]:
        """Designs the factors were fitted on."""
        return [s for s in self.samples if not s.held_out]

    @property
    def test(self) -> list[Sample]:
        """Held-out designs."""
        return [s for s in self.samples if s.held_out]

    def predicted_transistors(self, s: Sample) -> float:
        """Calibrated transistor prediction of a sample."""
        return _predict(self.size, s.features)

    def predicted_luts(self, s: Sample) -> float:
        """Calibrated iCE40 LUT prediction of a sample."""
        return _predict(self.ice40_luts, s.features)

    def predicted_um2(self, s: Sample) -> float:
        """Calibrated standard-cell area (um^2, :data:`ASIC_LIB`) of a sample."""
        return _predict(self.asic_um2, s.features)

    def quality(self, samples: Iterable[Sample]) -> dict[str, float]:
        """Spearman and median relative error on ``samples``: calibrated transistors, iCE40
        LUTs, standard-cell um^2 (over the samples that have it; NaN below two), and the
        uncalibrated transistor model."""
        rows = list(samples)
        nan = float("nan")
        if self.asic_only:
            # No transistor or LUT truth was measured: those figures are not defined.
            out = dict.fromkeys(("spearman", "median_abs_err", "luts_spearman",
                                 "luts_median_abs_err", "uncalibrated_spearman",
                                 "uncalibrated_median_abs_err"), nan)
        else:
            t = [s.transistors for s in rows]
            luts = [s.luts for s in rows]
            pt = [self.predicted_transistors(s) for s in rows]
            pl = [self.predicted_luts(s) for s in rows]
            raw = [s.raw for s in rows]
            out = {
                "spearman": spearman(pt, t), "median_abs_err": median_abs_err(pt, t),
                "luts_spearman": spearman(pl, luts),
                "luts_median_abs_err": median_abs_err(pl, luts),
                "uncalibrated_spearman": spearman(raw, t),
                "uncalibrated_median_abs_err": median_abs_err(raw, t),
            }
        with_area = [s for s in rows if s.area_um2 is not None]
        area = [float(s.area_um2) for s in with_area if s.area_um2 is not None]
        pa = [self.predicted_um2(s) for s in with_area]
        out.update(um2_spearman=spearman(pa, area) if len(area) >= 2 else nan,
                   um2_median_abs_err=median_abs_err(pa, area) if area else nan,
                   um2_designs=float(len(area)))
        return out

    def families(self) -> dict[str, dict[str, Any]]:
        """Quality per family (the designs of one datapath, registry order): the held-out
        designs' Spearman and median relative error (transistors, iCE40 LUTs), and the same over
        all the family's designs, fitted ones included (``all_*``), which a family with few
        held-out designs needs beside them. Spearman is NaN below two designs."""
        out: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(s.design.datapath for s in self.samples):
            rows = [s for s in self.samples if s.design.datapath == name]
            test = [s for s in rows if s.held_out]
            row: dict[str, Any] = {"designs": len(rows), "held_out": len(test)}
            if test:
                q = self.quality(test)
                row.update(spearman=q["spearman"], median_abs_err=q["median_abs_err"],
                           luts_spearman=q["luts_spearman"],
                           luts_median_abs_err=q["luts_median_abs_err"],
                           um2_spearman=q["um2_spearman"],
                           um2_median_abs_err=q["um2_median_abs_err"])
            q = self.quality(rows)
            row.update(all_spearman=q["spearman"], all_median_abs_err=q["median_abs_err"],
                       all_luts_spearman=q["luts_spearman"],
                       all_luts_median_abs_err=q["luts_median_abs_err"],
                       all_um2_spearman=q["um2_spearman"],
                       all_um2_median_abs_err=q["um2_median_abs_err"])
            out[name] = row
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready: held-out quality overall and per family, sizes of the split, the
        factors."""
        test = self.quality(self.test)
        train = self.quality(self.train)
        return {
            "spearman": _round(test["spearman"]),
            "median_abs_err": _round(test["median_abs_err"]),
            "designs": len(self.samples), "train": len(self.train), "held_out": len(self.test),
            "skipped": list(self.skipped),
            "ice40_luts": {"spearman": _round(test["luts_spearman"]),
                           "median_abs_err": _round(test["luts_median_abs_err"])},
            "asic_um2": {"library": ASIC_LIB, "spearman": _round(test["um2_spearman"]),
                         "median_abs_err": _round(test["um2_median_abs_err"]),
                         "held_out": int(test["um2_designs"]),
                         "designs": sum(s.area_um2 is not None for s in self.samples),
                         "skipped": list(self.asic_skipped)},
            "uncalibrated": {"spearman": _round(test["uncalibrated_spearman"]),
                             "median_abs_err": _round(test["uncalibrated_median_abs_err"])},
            "train_quality": {k: _round(v) for k, v in train.items()},
            "families": {name: {k: _round(v) for k, v in row.items()}
                         for name, row in self.families().items()},
            "factors": {k: round(v, 4) for k, v in sorted(self.size.items())},
            "ice40_lut_factors": {k: round(v, 6) for k, v in sorted(self.ice40_luts.items())},
            "asic_um2_factors": {k: round(v, 4) for k, v in sorted(self.asic_um2.items())},
        }

    def lines(self) -> list[str]:
        """A human-readable report: the designs, the factors, the held-out quality."""
        if self.asic_only:
            return self._asic_lines()
        out = [(f"{'design':<58} {'split':<8} {'yosys T':>9} {'model T':>9} {'err':>7} "
                f"{'LUTs':>6} {'model':>6} {'um^2':>9} {'model':>9} {'err':>7}")]
        for d in self.samples:
            pt, pl = self.predicted_transistors(d), self.predicted_luts(d)
            err = (pt - d.transistors) / d.transistors
            if d.area_um2 is None:
                um2 = f" {'-':>9} {'-':>9} {'-':>7}"
            else:
                pa = self.predicted_um2(d)
                um2 = f" {d.area_um2:>9.0f} {pa:>9.0f} {(pa - d.area_um2) / d.area_um2:>+7.1%}"
            out.append(f"{d.design.label[:58]:<58} {'held-out' if d.held_out else 'train':<8} "
                       f"{d.transistors:>9} {pt:>9.0f} {err:>+7.1%} {d.luts:>6} {pl:>6.0f}"
                       + um2)
        out.append("factors (transistors): " + ", ".join(f"{k} {v:.3f}"
                                                       for k, v in sorted(self.size.items())))
        out.append("iCE40 LUTs per transistor: " + ", ".join(
            f"{k} {v:.4f}" for k, v in sorted(self.ice40_luts.items())))
        out.append(f"{ASIC_LIB} um^2 per transistor: " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(self.asic_um2.items())))
        s = self.summary()
        out.append(f"held out ({s['held_out']} of {s['designs']} designs): transistors Spearman "
                   f"{_num(s['spearman'])}, median |error| {_num(s['median_abs_err'], True)}; "
                   f"iCE40 LUTs Spearman {_num(s['ice40_luts']['spearman'])}, median |error| "
                   f"{_num(s['ice40_luts']['median_abs_err'], True)}; uncalibrated transistors "
                   f"Spearman {_num(s['uncalibrated']['spearman'])}, median |error| "
                   f"{_num(s['uncalibrated']['median_abs_err'], True)}")
        a = s["asic_um2"]
        out.append(f"held out, {ASIC_LIB} um^2 ({a['held_out']} of {a['designs']} designs with an "
                   f"area): Spearman {_num(a['spearman'])}, median |error| "
                   f"{_num(a['median_abs_err'], True)}")
        out.extend(f"  asic skipped: {note}" for note in self.asic_skipped)
        for name, row in self.families().items():
            out.append(f"  {name}: {_family_text(row)}")
        return out


    def _asic_lines(self) -> list[str]:
        """:meth:`lines` of an ``asic_only`` report: um^2 alone."""
        out = [f"{'design':<58} {'split':<8} {'um^2':>9} {'model':>9} {'err':>7}"]
        for d in self.samples:
            pa = self.predicted_um2(d)
            shown = (f"{'-':>9} {pa:>9.0f} {'-':>7}" if d.area_um2 is None else
                     f"{d.area_um2:>9.0f} {pa:>9.0f} {(pa - d.area_um2) / d.area_um2:>+7.1%}")
            out.append(f"{d.design.label[:58]:<58} {'held-out' if d.held_out else 'train':<8} "
                       + shown)
        out.append(f"{ASIC_LIB} um^2 per transistor: " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(self.asic_um2.items())))
        a = self.summary()["asic_um2"]
        out.append(f"held out, {ASIC_LIB} um^2 ({a['held_out']} of {a['designs']} designs with an "
                   f"area): Spearman {_num(a['spearman'])}, median |error| "
                   f"{_num(a['median_abs_err'], True)}")
        out.extend(f"  asic skipped: {note}" for note in self.asic_skipped)
        for name, row in self.families().items():
            held = (f"held out {row['held_out']} of {row['designs']}: Spearman "
                    f"{_num(row.get('um2_spearman'))}, median |error| "
                    f"{_num(row.get('um2_median_abs_err'), True)}" if row["held_out"]
                    else f"none of {row['designs']} held out")
            out.append(f"  {name}: um^2 {held}; all {row['designs']}: Spearman "
                       f"{_num(row['all_um2_spearman'])}, median |error| "
                       f"{_num(row['all_um2_median_abs_err'], True)}")
        return out


def _round(value: Any) -> Any:
    """A JSON-ready number: floats to 4 places, NaN as None."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 4)
    return value


def _num(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def _family_text(row: Mapping[str, Any]) -> str:
    """One family's quality in words (:meth:`Report.families`)."""
    held = (f"held out {row['held_out']} of {row['designs']}: transistors Spearman "
            f"{_num(row.get('spearman'))}, median |error| {_num(row.get('median_abs_err'), True)}"
            f"; iCE40 LUTs Spearman {_num(row.get('luts_spearman'))}, median |error| "
            f"{_num(row.get('luts_median_abs_err'), True)}" if row["held_out"]
            else f"none of {row['designs']} held out")
    um2 = (f"; um^2 held out Spearman {_num(row.get('um2_spearman'))}, median |error| "
           f"{_num(row.get('um2_median_abs_err'), True)}" if row["held_out"] else "")
    return (f"{held}{um2}; all {row['designs']}: transistors Spearman "
            f"{_num(row['all_spearman'])}, median |error| "
            f"{_num(row['all_median_abs_err'], True)}; iCE40 LUTs Spearman "
            f"{_num(row['all_luts_spearman'])}, median |error| "
            f"{_num(row['all_luts_median_abs_err'], True)}; um^2 Spearman "
            f"{_num(row['all_um2_spearman'])}, median |error| "
            f"{_num(row['all_um2_median_abs_err'], True)}")


def fit(samples: list[Sample], *, asic_only: bool = False) -> Report:
    """Fit the factors on the training samples (``asic_only``: the um^2 factors alone)."""
    train = [s for s in samples if not s.held_out]
    if len(train) < 2 or not any(s.held_out for s in samples):
        raise ArithforgeError(f"calibration needs designs both to fit and to hold out; "
                              f"have {len(train)} and {len(samples) - len(train)}")
    feats = [s.features for s in train]
    size: dict[str, float] = {}
    luts: dict[str, float] = {}
    if not asic_only:
        size = fit_factors(feats, [s.transistors for s in train], dict.fromkeys(KINDS, 1.0))
        ratio = sum(s.luts for s in train) / sum(s.raw for s in train)
        luts = fit_factors(feats, [s.luts for s in train], dict.fromkeys(KINDS, ratio))
    with_area = [s for s in train if s.area_um2 is not None]
    asic: dict[str, float] = {}
    if len(with_area) >= 2:
        um2 = [float(s.area_um2) for s in with_area if s.area_um2 is not None]
        ratio = sum(um2) / sum(s.raw for s in with_area)
        asic = fit_factors([s.features for s in with_area], um2, dict.fromkeys(KINDS, ratio))
    return Report(samples, size, luts, asic, asic_only=asic_only)


def calibrate(designs: Sequence[Design] | None = None, *, registry: ModuleType, jobs: int = 2,
              progress: IO[str] | None = None, asic_only: bool = False) -> Report:
    """Measure ``designs`` (default :func:`design_set`) and fit the factors; ``registry`` is
    ``arithforge.hdl.registry`` (see :func:`design_set`). ``asic_only`` synthesizes for the
    standard cells alone and fits the um^2 factors alone."""
    designs = design_set(registry) if designs is None else designs
    if not designs:
        from ..datapaths import DATAPATHS

        names = [n for n, d in DATAPATHS.items() if d.calibration]
        raise ArithforgeError("no calibration design: " + (
            f"arithforge.hdl.registry has none of {', '.join(names)}" if names
            else "no registered datapath has calibration designs"))
    skipped: list[str] = []
    asic_skipped: list[str] = []
    report = fit(measure(designs, jobs=jobs, registry=registry, progress=progress,
                         skipped=skipped, asic_skipped=asic_skipped, asic_only=asic_only),
                 asic_only=asic_only)
    report.skipped = skipped
    report.asic_skipped = asic_skipped
    return report


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return '"nan"'
        return repr(value)
    if value is None:
        return '"nan"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_asic_calibration(report: Report, *, command: str,
                           path: str | Path = DEFAULT_ASIC_CALIBRATION) -> Path:
    """Write the um^2 factors of an ``asic_only`` report, how they were made and their quality
    as TOML (``data/calibrated_asic.toml``; :func:`~.tech.load_tech` adds them to the
    calibration)."""
    from .synth import _yosys

    if not report.asic_um2:
        raise ArithforgeError("the report has no um^2 factors to write")
    summary = report.summary()
    a = summary["asic_um2"]
    meta = {"command": command, "library": ASIC_LIB, "yosys": _yosys()[1],
            "designs": a["designs"], "held_out": a["held_out"],
            "asic_timeout_s": ASIC_TIMEOUT_S}
    quality = {"um2_spearman": a["spearman"], "um2_median_abs_err": a["median_abs_err"],
               "um2_designs": a["designs"], "um2_held_out": a["held_out"],
               "um2_skipped": a["skipped"]}
    keys = ("designs", "held_out", "um2_spearman", "um2_median_abs_err", "all_um2_spearman",
            "all_um2_median_abs_err")
    lines = [
        f"# Written by `{command}`:",
        "# um^2 of the OSU 0.18 um standard cells (Yosys abc -liberty, stat -liberty; `synth",
        "# --target asic`) per model transistor of each component kind, fitted on the calibration",
        "# designs (costmodel/calibrate.py). Do not edit by hand; rerun the command.",
        "# [calibration.quality] is measured on the held-out designs only.",
        "",
        "[calibration.meta]",
        *(f"{k} = {_toml_value(v)}" for k, v in meta.items()),
        "",
        "[calibration.asic_um2]",
        *(f"{k} = {round(v, 6)!r}" for k, v in sorted(report.asic_um2.items())),
        "",
        "[calibration.quality]",
        *(f"{k} = {_toml_value(v)}" for k, v in quality.items()),
        "",
        "# Per family: held-out um^2 quality (NaN: fewer than two designs) and the same over all",
        "# the family's designs with an area, fitted ones included (all_*).",
        *(line for name, row in report.families().items() for line in (
            f"[calibration.quality.families.{name}]",
            *(f"{k} = {_toml_value(round(row[k], 4) if isinstance(row[k], float) else row[k])}"
              for k in keys if k in row), "")),
        "# Held-out designs: label = [um^2 (-1: skipped), model]",
        "[calibration.quality.held_out]",
        *(f"{_toml_value(s.design.label)} = [{-1 if s.area_um2 is None else round(s.area_um2)}, "
          f"{round(report.predicted_um2(s))}]" for s in report.test),
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def write_calibration(report: Report, *, command: str, path: str | Path = DEFAULT_CALIBRATION,
                      tech: Technology | None = None) -> Path:
    """Write the fitted factors, how they were made and their quality as TOML."""
    from .synth import _yosys

    tech = load_tech(calibration=False) if tech is None else tech
    summary = report.summary()
    meta = {"command": command, "tech": tech.source.name if tech.source else tech.name,
            "yosys": _yosys()[1], "designs": summary["designs"], "train": summary["train"],
            "held_out": summary["held_out"]}
    quality = {"spearman": summary["spearman"], "median_abs_err": summary["median_abs_err"],
               "luts_spearman": summary["ice40_luts"]["spearman"],
               "luts_median_abs_err": summary["ice40_luts"]["median_abs_err"],
               "uncalibrated_spearman": summary["uncalibrated"]["spearman"],
               "uncalibrated_median_abs_err": summary["uncalibrated"]["median_abs_err"],
               "um2_spearman": summary["asic_um2"]["spearman"],
               "um2_median_abs_err": summary["asic_um2"]["median_abs_err"],
               "um2_designs": summary["asic_um2"]["designs"],
               "um2_held_out": summary["asic_um2"]["held_out"],
               "um2_skipped": summary["asic_um2"]["skipped"]}
    lines = [
        f"# Written by `{command}`:",
        "# per-kind factors of the cost model fitted against Yosys synthesis",
        "# (costmodel/calibrate.py). Do not edit by hand; rerun the command.",
        "# [calibration.size] multiplies the area and transistors of each component kind (not",
        "# its energy); [calibration.ice40_luts] gives iCE40 LUT4s per model transistor of each",
        "# kind; [calibration.asic_um2] gives um^2 of the OSU 0.18 um standard cells (Yosys",
        "# abc -liberty, stat -liberty; target asic) per model transistor of each kind.",
        "# [calibration.quality] is measured on the held-out designs only.",
        "",
        "[calibration.meta]",
        *(f"{k} = {_toml_value(v)}" for k, v in meta.items()),
        "",
        "[calibration.size]",
        *(f"{k} = {round(v, 6)!r}" for k, v in sorted(report.size.items())),
        "",
        "[calibration.ice40_luts]",
        *(f"{k} = {round(v, 8)!r}" for k, v in sorted(report.ice40_luts.items())),
        "",
        "[calibration.asic_um2]",
        *(f"{k} = {round(v, 6)!r}" for k, v in sorted(report.asic_um2.items())),
        "",
        "[calibration.quality]",
        *(f"{k} = {_toml_value(v)}" for k, v in quality.items()),
        "",
        "# Per family (the designs of one datapath): held-out quality (NaN: fewer than two",
        "# designs) and the same over all the family's designs, fitted ones included (all_*).",
        *(line for name, row in report.families().items() for line in (
            f"[calibration.quality.families.{name}]",
            *(f"{k} = {_toml_value(round(v, 4) if isinstance(v, float) else v)}"
              for k, v in row.items()), "")),
        "# Held-out designs: label = [Yosys transistors, model, iCE40 LUTs, model, um^2, model]",
        "# (um^2 -1: asic synthesis skipped, see um2_skipped)",
        "[calibration.quality.held_out]",
        *(f"{_toml_value(s.design.label)} = [{s.transistors}, "
          f"{round(report.predicted_transistors(s))}, {s.luts}, {round(report.predicted_luts(s))}"
          f", {-1 if s.area_um2 is None else round(s.area_um2)}, "
          f"{round(report.predicted_um2(s))}]"
          for s in report.test),
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path
