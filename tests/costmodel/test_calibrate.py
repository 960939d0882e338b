"""Calibration: the numerical pieces, and a real fit over the stand-in datapath."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arithforge.costmodel import calibrate as cal
from arithforge.costmodel.fit import fit_factors, held_out, median_abs_err
from arithforge.costmodel.tech import load_calibration, load_tech


def test_median_abs_err() -> None:
    assert median_abs_err([110, 90, 100], [100, 100, 100]) == pytest.approx(0.1)


def test_held_out_is_deterministic() -> None:
    labels = [f"fma a=e{e}m{m}" for e in range(2, 9) for m in range(1, 11)]
    picks = [held_out(label) for label in labels]
    assert picks == [held_out(label) for label in labels]
    assert 0.15 < np.mean(picks) < 0.35


def test_fit_recovers_factors(rng: np.random.Generator) -> None:
    true = {"adder": 1.3, "multiplier": 0.8, "register": 1.0}
    feats = [{k: float(rng.uniform(10, 1000)) for k in true} for _ in range(30)]
    truth = [sum(true[k] * f[k] for k in true) for f in feats]
    got = fit_factors(feats, truth, dict.fromkeys(cal.KINDS, 1.0), strength=1e-9)
    for k, v in true.items():
        assert got[k] == pytest.approx(v, rel=1e-4)
    assert got["lzc"] == 1.0  # absent: keeps its prior


def test_prior_keeps_collinear_kinds_positive() -> None:
    # Adders and shifters always appear together, in the same proportion: the data fix only
    # their sum, and the prior splits it instead of zeroing one of them.
    feats = [{"adder": 100.0 * k, "shifter": 50.0 * k} for k in range(1, 11)]
    truth = [150.0 * k for k in range(1, 11)]
    got = fit_factors(feats, truth, {"adder": 1.0, "shifter": 1.0})
    assert got["adder"] == pytest.approx(1.0, abs=1e-6)
    assert got["shifter"] == pytest.approx(1.0, abs=1e-6)
    got = fit_factors(feats, [2 * t for t in truth], {"adder": 1.0, "shifter": 1.0})
    assert got["adder"] > 1
    assert got["shifter"] > 1
    assert 100 * got["adder"] + 50 * got["shifter"] == pytest.approx(300, rel=0.02)


def test_calibrate_tinymac(registry, tmp_path: Path) -> None:
    # Synthesis results come from the shared cache (build/synth-cache/): this tests the fit.
    designs = [cal.Design("tinymac", {"width": w, "stages": s})
               for w in (2, 3, 4, 6) for s in (0, 1)]
    report = cal.calibrate([*designs, cal.Design("tinymac", {"stages": -1})], jobs=2,
                           registry=registry)
    summary = report.summary()
    assert summary["skipped"] == [
        "tinymac stages=-1: tinymac parameter stages must be between 0 and 64, not -1"]
    assert summary["designs"] == 8
    assert summary["held_out"] + summary["train"] == 8
    assert summary["held_out"] >= 1
    assert summary["spearman"] > 0.9
    assert summary["median_abs_err"] < 0.2
    assert set(summary["factors"]) >= {"adder", "multiplier", "register"}
    # The header, a line per design, the factors (three: transistors, iCE40 LUTs, um^2), the
    # held-out quality (two lines: transistors and LUTs, um^2) and one per family.
    assert len(report.lines()) == 1 + 8 + 3 + 2 + 1
    assert summary["asic_um2"]["designs"] == 8
    assert summary["asic_um2"]["median_abs_err"] < 0.3
    assert report.lines()[-1].startswith(f"  tinymac: held out {summary['held_out']} of 8")
    assert summary["families"]["tinymac"]["designs"] == 8
    path = cal.write_calibration(report, command="arithforge calibrate --test",
                                 path=tmp_path / "c.toml")
    loaded = load_calibration(path)
    assert loaded.size["multiplier"] == pytest.approx(report.size["multiplier"], rel=1e-5)
    assert loaded.meta["command"] == "arithforge calibrate --test"
    assert loaded.meta["quality"]["spearman"] == summary["spearman"]
    assert loaded.asic_um2["multiplier"] == pytest.approx(report.asic_um2["multiplier"],
                                                          rel=1e-5)
    assert loaded.meta["quality"]["um2_designs"] == 8
    tech = load_tech(calibration=path)
    assert tech.calibration.ice40_luts


def test_design_set_needs_the_registry(registry) -> None:
    assert cal.design_set(registry) == []
    with pytest.raises(cal.ArithforgeError, match="no calibration design"):
        cal.calibrate([], registry=registry)
