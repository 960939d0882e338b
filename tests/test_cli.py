"""The command line: subcommand registry, user-error policy, `formats` and `explore`."""

from __future__ import annotations

import argparse
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, __version__, cli
from arithforge.cli.formats import MAX_VALUES_BITS, format_cell
from arithforge.formats import Format, FormatError, catalog, get_format

ALL_FORMATS = [get_format(name) for name in catalog.names()]
# Every code of every small format; one 16-bit format for the widest listing allowed.
VALUES_FORMATS = [f for f in ALL_FORMATS if f.bits <= 8] + [get_format("bfloat16")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_user_error(status: int, out: str, err: str, message: str) -> None:
    assert (status, out, err) == (2, "", f"arithforge: error: {message}\n")


# -- parser and registry ------------------------------------------------------------------------

def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"arithforge {__version__}\n"


def test_command_required(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's own errors are one line too: no usage block, exit 2."""
    assert cli.main([]) == 2
    assert capsys.readouterr().err == (
        "arithforge: error: the following arguments are required: COMMAND "
        "(see `arithforge --help`)\n")


def test_every_command_module_registers() -> None:
    registered = cli.commands()
    assert {"formats", "explore"} <= set(registered)
    modules = {cmd.run.__module__ for cmd in registered.values()}
    assert modules == set(cli.COMMAND_MODULES)


def test_register_twice_from_another_module() -> None:
    def run(args: object) -> int:
        return 0

    run.__module__ = "somewhere.else"
    with pytest.raises(RuntimeError, match="subcommand 'formats' is registered twice"):
        cli.command("formats", help="again")(run)


# -- user-error policy --------------------------------------------------------------------------

@pytest.fixture
def fake_command(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Register subcommand `fake`, which raises the exception put in the returned list."""
    raised: list[BaseException] = []

    def run(args: object) -> int:
        raise raised[0]

    monkeypatch.setitem(cli._registry, "fake", cli.Command("fake", "raise", run))
    return raised


def test_arithforge_error_is_one_line(capsys: pytest.CaptureFixture[str],
                                      fake_command: list[BaseException]) -> None:
    fake_command.append(ArithforgeError("frobnication must be on,\nnot off"))
    assert_user_error(*run_cli(capsys, "fake"), "frobnication must be on, not off")


def test_format_error_is_one_line(capsys: pytest.CaptureFixture[str],
                                  fake_command: list[BaseException]) -> None:
    fake_command.append(FormatError("bits must be positive, not 0"))
    assert_user_error(*run_cli(capsys, "fake"), "bits must be positive, not 0")


@pytest.mark.parametrize("error", [ValueError("bug"), TypeError("bug"), RuntimeError("bug")],
                         ids=lambda e: type(e).__name__)
def test_other_errors_keep_traceback(capsys: pytest.CaptureFixture[str],
                                     fake_command: list[BaseException],
                                     error: Exception) -> None:
    fake_command.append(error)
    with pytest.raises(type(error), match="bug"):
        cli.main(["fake"])


def test_missing_formats_package(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "arithforge.formats", None)
    status, out, err = run_cli(capsys, "formats")
    assert (status, out) == (2, "")
    assert err.startswith("arithforge: error: arithforge.formats is not available")
    assert err.count("\n") == 1


def test_import_package_propagates_inner_import_errors(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_pkg_zz").mkdir()
    (tmp_path / "broken_pkg_zz" / "__init__.py").write_text("import no_such_dependency_zz\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_zz"):
        cli.import_package("broken_pkg_zz")
    with pytest.raises(ArithforgeError, match="no_such_module_zz is not available"):
        cli.import_package("no_such_module_zz")


# -- arguments: once, bounded, output paths -----------------------------------------------------

def _once_parser() -> cli.Parser:
    parser = cli.Parser(prog="arithforge thing")
    parser.add_argument("--n", type=cli.int_arg(0, 9), action=cli.StoreOnce)
    parser.add_argument("--flag", action=cli.BooleanOnce)
    return parser


def test_store_once() -> None:
    parser = _once_parser()
    assert parser.parse_args(["--n", "3", "--n", "3", "--flag", "--flag"]).n == 3
    with pytest.raises(ArithforgeError, match=r"^thing: argument --n: given twice, 3 and 4; give "
                                              r"it once \(see `arithforge thing --help`\)$"):
        parser.parse_args(["--n", "3", "--n", "4"])
    with pytest.raises(ArithforgeError, match=r"^thing: arguments --flag and --no-flag contradict "
                                              r"each other; give one"):
        parser.parse_args(["--no-flag", "--flag"])


@pytest.mark.parametrize(("text", "message"), [
    ("10", "must be between 0 and 9, not 10"), ("-1", "must be between 0 and 9, not -1"),
    ("nan", "must be an integer, not 'nan'"), ("1e400", "must be an integer, not '1e400'"),
    ("2.5", "must be an integer, not '2.5'"),
])
def test_int_arg_bounds(text: str, message: str) -> None:
    with pytest.raises(ArithforgeError, match=rf"^thing: argument --n: {re.escape(message)} "):
        _once_parser().parse_args(["--n", text])


def test_float_arg_open_bound() -> None:
    parse = cli.float_arg(0, 1000, low_open=True)
    assert parse("12.5") == 12.5
    for text in ("0", "-5", "1001"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"^must be > 0 and <= 1000, not "):
            parse(text)
    for text in ("nan", "inf", "1e400"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a finite number, not "):
            parse(text)


def test_output_file_leaves_nothing(tmp_path: Path) -> None:
    """The check opens the file to prove it writable; it removes what it created and keeps what
    was there."""
    assert cli.output_file(tmp_path / "new.v") == tmp_path / "new.v"
    assert not (tmp_path / "new.v").exists()
    (tmp_path / "old.v").write_text("kept")
    cli.output_file(tmp_path / "old.v")
    assert (tmp_path / "old.v").read_text() == "kept"


@pytest.mark.parametrize(("where", "message"), [
    ("", "-o must name a file, not ''"),
    ("{tmp}", "-o '{tmp}' is a folder; give a file name"),
    ("{tmp}/missing/x.v", ("-o '{tmp}/missing/x.v': folder '{tmp}/missing' does not exist; create "
                          "it first or choose another path")),
    ("{tmp}/file/x.v", "-o '{tmp}/file/x.v': '{tmp}/file' is a file, not a folder"),
    ("/proc/arithforge.v", "-o '/proc/arithforge.v' cannot be written"),
])
def test_output_file_refuses(tmp_path: Path, where: str, message: str) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ArithforgeError, match=f"^{re.escape(message.format(tmp=tmp_path))}"):
        cli.output_file(where.format(tmp=tmp_path))


def test_subcommand_leftovers_name_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(*run_cli(capsys, "formats", "int8", "extra"),
                      "formats: unrecognized arguments: extra (see `arithforge formats --help`)")
    assert_user_error(*run_cli(capsys, "--frobnicate", "formats"),
                      "unrecognized arguments: --frobnicate (see `arithforge --help`)")


# -- the datapath commands: the registry drives their help ---------------------------------------

@pytest.mark.parametrize("command", ["generate", "verify", "cost", "synth"])
def test_help_lists_every_datapath(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from arithforge.hdl import registry

    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    listed = out.partition(f"datapaths (`arithforge {command} DATAPATH --help`")[2]
    assert [line.split()[0] for line in listed.splitlines()[1:] if line.strip()] == list(
        registry.DATAPATHS)


def test_every_int_parameter_has_a_range_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Structural parameters are bounded where they are declared, and --help says how."""
    from arithforge.hdl import registry

    for name, cls in registry.DATAPATHS.items():
        with pytest.raises(SystemExit):
            cli.main(["generate", name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for pname, param in cls.cli_params.items():
            if param.kind != "int":
                continue
            where = (name, pname)
            assert param.low is not None, where
            assert param.high is not None, where
            if param.default is None:  # derived by the datapath (dot's n from its model)
                assert f"; {param.low} to {param.high}" in out, where
            else:
                assert param.low <= param.default <= param.high, where
                assert f"; {param.low} to {param.high} (default: {param.default})" in out, where
            with pytest.raises(ValueError, match=f"^{name} parameter {pname} must be between "
                                                 f"{param.low} and {param.high}, not "):
                registry.build(name, **{pname: param.high + 1})


@pytest.mark.parametrize(("argv", "message"), [
    (["simulate", "workload", "t", "--m", "4"],
     "--m: only for simulate gemm; simulate workload takes its GEMMs from the trace"),
    (["simulate", "gemm", "--fmax", "synth"],
     ("--fmax is the clock of simulate workload's roll-up; simulate gemm counts cycles only: drop "
     "--fmax")),
    (["simulate", "gemm", "--array", "300x2"], ("array rows and cols must be at most 256, not "
                                               "'300x2'")),
])
def test_simulate_options_of_the_other_kind(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(*run_cli(capsys, *argv), message)


def test_exit_statuses_documented() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "index.md").read_text()
    section = text.partition("### Exit status")[2].partition("\n## ")[0]
    assert [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("| ") and line[2].isdigit()] == ["0", "1", "2", "130"]


# -- formats ------------------------------------------------------------------------------------

def test_formats_lists_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "formats")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "bits", "exp_bits", "man_bits", "bias", "max_finite",
                                "min_normal", "min_subnormal", "epsilon", "specials"]
    assert [line.split()[0] for line in lines[1:]] == catalog.names()
    for line, fmt in zip(lines[1:], ALL_FORMATS, strict=True):
        assert line.split()[1] == str(fmt.bits)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_formats_one(capsys: pytest.CaptureFixture[str], fmt: Format) -> None:
    status, out, err = run_cli(capsys, "formats", fmt.name)
    assert (status, err) == (0, "")
    facts = dict(line.split(None, 1) for line in out.splitlines()[1:])
    for attr in ("name", "bits", "max_finite", "min_subnormal", "epsilon"):
        assert facts[attr] == format_cell(getattr(fmt, attr, None)), attr
    assert facts["repr"] == repr(fmt)


@pytest.mark.parametrize(("name", "bpe"), [("nvfp4", "4.5"), ("mxfp4_e2m1", "4.25"),
                                          ("mxfp8_e4m3", "8.25")])
def test_formats_one_block_format_shows_bits_per_element(capsys: pytest.CaptureFixture[str],
                                                         name: str, bpe: str) -> None:
    status, out, err = run_cli(capsys, "formats", name)
    assert (status, err) == (0, "")
    facts = dict(line.split(None, 1) for line in out.splitlines()[1:])
    assert facts["bits_per_element"] == bpe


@pytest.mark.parametrize("fmt", VALUES_FORMATS, ids=lambda f: f.name)
def test_formats_values(capsys: pytest.CaptureFixture[str], fmt: Format) -> None:
    status, out, err = run_cli(capsys, "formats", fmt.name, "--values")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    bits = fmt.bits
    assert len(lines) == 2 + (1 << bits)
    codes = np.arange(1 << bits)
    assert [int(line.split()[0], 16) for line in lines[2:]] == codes.tolist()
    assert ["".join(line.split()[1:-1]) for line in lines[2:]] == [
        format(c, f"0{bits}b") for c in codes.tolist()
    ]
    shown = np.array([float(line.split()[-1]) for line in lines[2:]])
    expected = np.asarray(fmt.decode(codes), dtype=np.float64)
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(np.signbit(shown), np.signbit(expected))


def test_formats_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FormatError) as expected:
        get_format("float8_e4m3f")
    assert "float8_e4m3fn" in str(expected.value)  # the closest names come with the message
    assert_user_error(*run_cli(capsys, "formats", "float8_e4m3f"), str(expected.value))


def test_formats_values_too_wide(capsys: pytest.CaptureFixture[str]) -> None:
    wide = next(f for f in ALL_FORMATS if f.bits > MAX_VALUES_BITS)
    assert_user_error(
        *run_cli(capsys, "formats", wide.name, "--values"),
        f"--values needs a format of at most 16 bits, not {wide.name} ({wide.bits} bits)",
    )


def test_formats_values_needs_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(*run_cli(capsys, "formats", "--values"), "--values needs a format NAME")


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (7, "7"), (np.int64(7), "7"), (0.001953125, "0.001953125"),
     (np.float64(448.0), "448.0"), (math.inf, "inf"),
     (math.nan, "nan"), (-math.nan, "-nan"), ("fn", "fn"), ((), "-"), (("a", 1), "a, 1")],
)
def test_format_cell(value: object, text: str) -> None:
    assert format_cell(value) == text


# -- tables -------------------------------------------------------------------------------------

def test_print_table_plain() -> None:
    out = io.StringIO()
    cli.print_table(["a", "long"], [["xyz", "1"], ["w", "22"]], align="lr", file=out)
    assert out.getvalue() == "a    long\nxyz     1\nw      22\n"


def test_print_table_rich() -> None:
    out = io.StringIO()
    cli.print_table(["name", "bits"], [["int8", "8"]], align="lr", title="T", file=out, rich=True)
    text = out.getvalue()
    assert "int8" in text
    assert "━" in text or "─" in text  # a box was drawn


def test_print_table_never_cuts_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    wide = [["x" * 40, "1.7976931348623157e+308" * 2]]
    rich_out, plain_out = io.StringIO(), io.StringIO()
    cli.print_table(["a", "b"], wide, file=rich_out, rich=True)
    cli.print_table(["a", "b"], wide, file=plain_out, rich=False)
    assert rich_out.getvalue() == plain_out.getvalue()


def test_print_table_align_checked() -> None:
    with pytest.raises(ValueError, match="align must be one of 'l'/'r' per column, not 'x'"):
        cli.print_table(["a"], [], align="x", file=io.StringIO())


# -- explore ------------------------------------------------------------------------------------

def test_explore_print_spec(capsys: pytest.CaptureFixture[str]) -> None:
    from arithforge.dse.spec import parse_spec

    status, out, err = run_cli(capsys, "explore", "--print-spec")
    assert (status, err) == (0, "")
    assert len(parse_spec(out, "printed").formats.weights) >= 15


def test_explore_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_user_error(*run_cli(capsys, "explore", "--jobs", "0"),
                      "--jobs must be at least 1, not 0")
    spec = tmp_path / "s.toml"
    spec.write_text('[formats]\nweights = ["int8", "nope"]\n')
    with pytest.raises(FormatError) as expected:
        get_format("nope")
    assert_user_error(*run_cli(capsys, "explore", "--spec", str(spec)),
                      f"{spec}:2: [formats] weights: {expected.value}")
    assert_user_error(*run_cli(capsys, "explore", "--spec", str(tmp_path / "none.toml")),
                      f"cannot read spec {str(tmp_path / 'none.toml')!r}: No such file or "
                      "directory")


# -- entry points -------------------------------------------------------------------------------

def test_python_dash_m() -> None:
    result = subprocess.run([sys.executable, "-m", "arithforge", "formats", "float8_e4m3f"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("arithforge: error: unknown format 'float8_e4m3f'")
    assert result.stderr.count("\n") == 1


def test_console_script() -> None:
    script = Path(sys.executable).parent / "arithforge"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f"arithforge {__version__}\n")
