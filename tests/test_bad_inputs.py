"""Every subcommand refuses bad input with one line, ``arithforge: error: ...``, and exit 2.

The table is the cases of ``bad_inputs_*.py`` (one module per group of subcommands); each case
runs in this process as the console script would, under a time limit (a hang fails). Run with
``ARITHFORGE_BAD_INPUT_LOG=FILE`` to record every outcome, e.g. to count the same table on an
older checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .bad_inputs import BadInput, run_case
from .bad_inputs_export import CASES as EXPORT_CASES
from .bad_inputs_hw import CASES as HW_CASES
from .bad_inputs_workloads import CASES as WORKLOAD_CASES

CASES: list[BadInput] = [
    BadInput("no-command", ()),
    BadInput("unknown-command", ("frobnicate",)),
    BadInput("unknown-option", ("--frobnicate",)),
    BadInput("formats-unknown-name", ("formats", "float9_e9m9")),
    BadInput("formats-values-too-wide", ("formats", "float32", "--values")),
    BadInput("formats-extra-argument", ("formats", "float8_e4m3fn", "extra")),
    BadInput("empty-command", ("",)),
    BadInput("uppercase-command", ("GENERATE", "fma")),
    BadInput("abbreviated-command", ("gen", "fma")),
    BadInput("only-dash-dash", ("--",)),
    BadInput("option-typo-before-command", ("--hepl",)),
    BadInput("unknown-option-before-command", ("--frobnicate", "formats")),
    BadInput("version-with-value", ("--version=2",)),
    # no CUDA GPU on CI (or no torch): one line naming what is missing
    BadInput("probe-gpu-no-cuda", ("probe-gpu", "-o", "{tmp}/out", "--quick")),
    BadInput("probe-gpu-unknown-path", ("probe-gpu", "-o", "{tmp}/out", "--paths", "bf16/x")),
    BadInput("probe-gpu-out-is-file", ("probe-gpu", "-o", "{tmp}/f"), files={"f": "x"}),
    BadInput("probe-gpu-random-zero", ("probe-gpu", "-o", "{tmp}/out", "--random", "0")),
    *HW_CASES,
    *WORKLOAD_CASES,
    *EXPORT_CASES,
]


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_and_exit_2(
    case: BadInput, tmp_path: Path, synthetic_trace: Path
) -> None:
    outcome = run_case(case, tmp_path, synthetic_trace)
    assert outcome.kind == "ok", outcome.explain(case)
