"""Traces load, and the numpy workloads evaluate, in a process where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Runs in a fresh interpreter: the tracing libraries are blocked before arithforge is imported.
LOADER = r"""
import json, sys
for blocked in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy"):
    sys.modules[blocked] = None
import numpy as np
from arithforge.workloads import load_trace
from arithforge.workloads.digits import digits_accuracy

report = {}
for path in sys.argv[1:]:
    with load_trace(path) as trace:
        rows = 0
        for g in trace.gemms:
            x, w, b, y, _ = trace.operands(g.name)
            assert x.shape == (g.rows, g.K) and w.shape == (g.N, g.K) and y.shape == (g.rows, g.N)
            rows += g.rows
        report[trace.name] = {"gemms": len(trace.gemms), "rows": rows}
        if trace.name == "digits-cnn":
            report[trace.name]["accuracy"] = digits_accuracy(trace)
        assert all(m not in sys.modules or sys.modules[m] is None for m in ("torch", "sklearn"))
print(json.dumps(report))
"""


def load_elsewhere(*paths: Path) -> dict[str, dict[str, float]]:
    proc = subprocess.run([sys.executable, "-c", LOADER, *map(str, paths)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, dict[str, float]] = json.loads(proc.stdout)
    return report


def test_numpy_workloads(synthetic_dir: Path, digits_dir: Path) -> None:
    report = load_elsewhere(synthetic_dir, digits_dir)
    assert report["synthetic"]["gemms"] == 6
    assert report["digits-cnn"]["gemms"] == 4
    meta = json.loads((digits_dir / "meta.json").read_text())
    assert report["digits-cnn"]["accuracy"] == meta["accuracy_fp32"]


def test_minilm(minilm_dir: Path) -> None:
    assert load_elsewhere(minilm_dir)["minilm"] == {"gemms": 36, "rows": 36 * 64}


def test_blocked_import_is_reported(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['torch'] = None\n"
              "from arithforge.workloads import trace_module\n"
              "trace_module(None, None, sys.argv[1])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 1
    assert "ArithforgeError: trace_module needs torch, which is not installed" in proc.stderr


@pytest.mark.parametrize("name", ["minilm", "digits-cnn"])
def test_cli_reports_missing_dependency(tmp_path: Path, name: str) -> None:
    blocked, dist = {"minilm": ("torch", "torch"), "digits-cnn": ("sklearn", "scikit-learn")}[name]
    script = (f"import sys; sys.modules[{blocked!r}] = None\n"
              "from arithforge.cli import main\n"
              "raise SystemExit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, "trace", name, "-o", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"arithforge: error: the {name} workload needs {dist}, which is "
                                  "not installed; install the trace extra")
