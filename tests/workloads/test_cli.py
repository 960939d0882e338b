"""`arithforge trace`: the subcommand, its output and its user errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from arithforge import cli
from arithforge.cli.workloads import add_trace_parser, trace_main
from arithforge.workloads import load_trace


def test_trace_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["trace", "synthetic", "-o", str(tmp_path / "t"), "--seed", "2"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.startswith("synthetic: 6 traced GEMMs\n")
    assert "student-t3-outliers" in out
    assert out.splitlines()[-1].startswith(f"wrote {tmp_path / 't'} (")
    with load_trace(tmp_path / "t") as trace:
        assert trace.meta["sampling"]["seed"] == 2


def test_max_rows_is_minilm_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["trace", "synthetic", "-o", str(tmp_path), "--max-rows", "8"])
    assert (status, capsys.readouterr()) == (
        2, ("", "arithforge: error: --max-rows applies to minilm only, not 'synthetic'\n"))


def test_unknown_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "resnet", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "argument WORKLOAD: invalid choice: 'resnet'" in err
    assert err.count("\n") == 1


def test_output_is_checked_before_work(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert cli.main(["trace", "synthetic", "-o", str(tmp_path / "f")]) == 2
    assert capsys.readouterr() == (
        "", f"arithforge: error: -o {str(tmp_path / 'f')!r} is a file; give a folder\n")


def test_standalone_parser() -> None:
    parser = argparse.ArgumentParser()
    add_trace_parser(parser.add_subparsers())
    args = parser.parse_args(["trace", "digits-cnn", "-o", "out"])
    assert (args.func, args.workload, args.output, args.seed, args.max_rows) == (
        trace_main, "digits-cnn", Path("out"), 0, None)
