"""The accuracy face of the datapath descriptors, and the parameter schema (``Param``).

Every datapath with a GEMM model (``with_face("accuracy")``) evaluates a tiny synthetic trace
through :func:`arithforge.workloads.evaluate.evaluate` under its one name, and each model's
``run`` is bit-identical to a direct :mod:`arithforge.formats.ops` computation on a small case
(``lut`` and ``bitserial`` against their PE emulators: ``tests/workloads/test_lut_datapath.py``,
``tests/workloads/test_bitserial_datapath.py``). Then :class:`arithforge.datapaths.Param`:
``parse`` of command-line strings, TOML values (``strict``) and Python values, and
``add_argument`` in an ``argparse`` parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arithforge import ArithforgeError
from arithforge.datapaths import Accuracy, Config, DatapathError, Param, ParamError, with_face
from arithforge.formats import BlockFormat, FloatFormat, Rounding, get_format, ops
from arithforge.formats.block import mx_dot
from arithforge.workloads import build
from arithforge.workloads.evaluate import accuracy_model, check_options, evaluate
from arithforge.workloads.quantize import Quantized, quantize

F32 = get_format("float32")
E4M3 = get_format("float8_e4m3fn")

#: How each built-in GEMM model is evaluated on a synthetic trace: evaluate()'s arguments.
CASES: dict[str, dict[str, Any]] = {
    "exact": {},
    "fma": {},
    "lmac": {},
    "imac": {"weights": "int8", "acts": "int8"},
    "mx": {"weights": "mxfp8_e4m3", "acts": "mxfp8_e4m3"},
    "tensorcore": {},
    "dot": {},
    # Float activations unscaled: scaled to float16's largest value, the sums overflow.
    "lut": {"weights": "int4", "acts": "float16", "weight_scaling": "per-channel",
            "act_scaling": "none"},
    # The weights' values pass on unchanged; the PE requantizes them group-wise.
    "bitserial": {"weights": "float32", "acts": "float16", "weight_scaling": "none",
                  "act_scaling": "none"},
}
MODELS = list(with_face("accuracy"))


@pytest.fixture(scope="module")
def tiny_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic GEMMs of 24 x 24 x 24."""
    out = tmp_path_factory.mktemp("synthetic24")
    build("synthetic", out, size=24).close()
    return out


def test_the_models_are_the_descriptors_accuracy_faces() -> None:
    assert set(MODELS) == set(CASES), "give every GEMM model a case in CASES"
    for name in MODELS:
        model = accuracy_model(name)
        assert isinstance(model, Accuracy)
        assert model.name == name  # filled in at registration: the model reports the name
    # One name per datapath: the old GEMM-model names are gone (lmul is the multiplier alone).
    choices = f"; choose one of {', '.join(MODELS)}"
    for old, message in (
            ("fma_chain", "unknown datapath with a GEMM model 'fma_chain' (did you mean 'fma'?)"),
            ("lmul", "'lmul' is not a datapath with a GEMM model"),
            ("int", "unknown datapath with a GEMM model 'int'"),
            ("mul", "'mul' is not a datapath with a GEMM model")):
        with pytest.raises(DatapathError) as exc:
            accuracy_model(old)
        assert isinstance(exc.value, ArithforgeError)
        assert str(exc.value).startswith(message)
        assert str(exc.value).endswith(choices)
        assert "\n" not in str(exc.value)


def test_lmac_accumulates_in_a_chain_by_default() -> None:
    """What the lmac hardware computes: one rounding per addition; ``exact`` stays an option."""
    model = accuracy_model("lmac")
    assert model.options["accumulate"] == "chain"
    assert check_options(model, {"accumulate": "exact"})["accumulate"] == "exact"


@pytest.mark.parametrize("name", MODELS)
def test_evaluate_a_tiny_trace(name: str, tiny_trace: Path) -> None:
    result = evaluate(tiny_trace, datapath=name, **CASES[name])
    model = accuracy_model(name)
    assert result["config"]["datapath"] == name
    assert result["config"]["acc"] == model.acc
    assert result["config"]["rounding"] == model.rounding
    assert result["config"]["options"] == check_options(model, None)
    assert len(result["layers"]) == 6
    for layer in result["layers"]:
        assert (layer["rows"], layer["cols"], layer["nonfinite"]) == (24, 24, 0)
        assert layer["sqnr_db"] is not None, layer
        assert layer["sqnr_db"] > 8, layer
    assert result["summary"]["nonfinite"] == 0


def test_options_are_checked_under_the_new_names() -> None:
    with pytest.raises(ArithforgeError, match=r"^datapath 'fma' has no option 'window' "
                                              r"\(its options: normalization\)$"):
        check_options(accuracy_model("fma"), {"window": 4})
    with pytest.raises(ArithforgeError, match=r"^datapath 'lmac': option accumulate must be "
                                              r"one of exact, chain, not 'tree'$"):
        check_options(accuracy_model("lmac"), {"accumulate": "tree"})
    with pytest.raises(ArithforgeError, match=r"^datapath 'imac' has no option 'n' "
                                              r"\(its options: none\)$"):
        check_options(accuracy_model("imac"), {"n": 4})
    assert check_options(accuracy_model("fma"), {"normalization": 4}) == {"normalization": 4}


# -- bit for bit against the emulator --------------------------------------------------------------

def _operands(fmt: Any, rng: np.random.Generator, m: int = 3, n: int = 4,
              k: int = 21) -> tuple[Quantized, Quantized]:
    x = rng.standard_normal((m, k))
    w = rng.standard_normal((n, k))
    x[0, :5] = 0.0  # zero products, and -0 ones below
    w[1, :5] = -0.0
    x[-1] = 0.0  # an exact zero sum of -0 products: its sign
    w[-1] = -0.0
    scaling = "none" if isinstance(fmt, FloatFormat) else "per-tensor"
    return quantize(x, fmt, scaling), quantize(w, fmt, scaling)


def _run(name: str, qx: Quantized, qw: Quantized, acc: Any, rounding: str = "rne",
         **options: Any) -> tuple[np.ndarray, str]:
    model = accuracy_model(name)
    config = Config(acc, Rounding(rounding), check_options(model, options))
    values, path = model.run(qx, qw, config)
    return values, path


@pytest.mark.parametrize("acc", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("rounding", ["rne", "rtz", "rdn"])
def test_fma_is_a_loop_of_ops_fma(acc: str, rounding: str, rng: np.random.Generator) -> None:
    fa = get_format(acc)
    qx, qw = _operands(E4M3, rng)
    values, path = _run("fma", qx, qw, fa, rounding)
    want = np.zeros((3, 4), dtype=fa.code_dtype)  # +0
    for k in range(qx.codes.shape[1]):
        want = ops.fma(qx.codes[:, None, k], qw.codes[None, :, k], want, E4M3, E4M3, fa, fa,
                       rounding)
    assert path == "chain"
    np.testing.assert_array_equal(fa.encode(values), want)


def test_fma_window_is_a_loop_of_ops_fma(rng: np.random.Generator) -> None:
    fa = get_format("bfloat16")
    qx, qw = _operands(E4M3, rng)
    values, path = _run("fma", qx, qw, fa, normalization=2)
    want = np.zeros((3, 4), dtype=fa.code_dtype)
    for k in range(qx.codes.shape[1]):
        want = ops.fma(qx.codes[:, None, k], qw.codes[None, :, k], want, E4M3, E4M3, fa, fa,
                       normalization=2)
    assert path == "emulator"
    np.testing.assert_array_equal(fa.encode(values), want)


@pytest.mark.parametrize(("fmt", "acc"), [("int8", "int32"), ("int4", "int16"),
                                          ("int8", "int16")])
def test_imac_is_a_loop_of_ops_imac(fmt: str, acc: str, rng: np.random.Generator) -> None:
    fi, fa = get_format(fmt), get_format(acc)
    qx, qw = _operands(fi, rng, k=300)
    values, path = _run("imac", qx, qw, fa)
    want = np.zeros((3, 4), dtype=fa.code_dtype)
    for k in range(300):
        want = ops.imac(qx.codes[:, None, k], qw.codes[None, :, k], want, fi, fi, fa)
    assert path == "matmul"
    np.testing.assert_array_equal(values, fa.decode(want))


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2", "bfloat16"])
@pytest.mark.parametrize("rounding", ["rne", "rtz", "rdn"])
def test_exact_is_ops_dot_exact(fmt: str, rounding: str, rng: np.random.Generator) -> None:
    f = get_format(fmt)
    qx, qw = _operands(f, rng)
    for acc in ("float32", "float16"):
        fa = get_format(acc)
        values, _ = _run("exact", qx, qw, fa, rounding)
        want = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], f, f, fmt_out=fa,
                       model="exact", rounding=rounding)
        np.testing.assert_array_equal(fa.encode(values), want)


def _lmac_case(form: str, rounding: str, rng: np.random.Generator) -> None:
    qx, qw = _operands(E4M3, rng)
    products = ops.lmul(qx.codes[:, None, :], qw.codes[None, :, :], E4M3, form=form,
                        fmt_out="float32")
    chain = np.zeros((3, 4), dtype=np.uint32)
    for k in range(products.shape[-1]):
        chain = ops.add(chain, products[..., k], F32, rounding=rounding)
    ones = np.full(products.shape, F32.encode(np.array(1.0)))
    exact = ops.dot(products, ones, F32, F32, fmt_out="float32", model="exact",
                    rounding=rounding)
    values, _ = _run("lmac", qx, qw, F32, rounding, form=form, accumulate="exact")
    np.testing.assert_array_equal(F32.encode(values), exact)
    values, path = _run("lmac", qx, qw, F32, rounding, form=form)  # the default: the chain
    assert path == "chain"
    np.testing.assert_array_equal(F32.encode(values), chain)


@pytest.mark.parametrize("form", ["int", "equation"])
@pytest.mark.parametrize("rounding", ["rne", "rtz", "rup"])
def test_lmac_is_a_chain_of_ops_lmul_products(form: str, rounding: str,
                                              rng: np.random.Generator) -> None:
    _lmac_case(form, rounding, rng)


def test_lmac_chain_keeps_the_sign_of_zero_products_under_rdn(rng: np.random.Generator) -> None:
    _lmac_case("int", "rdn", rng)


def test_tensorcore_is_ops_dot_block(rng: np.random.Generator) -> None:
    qx, qw = _operands(E4M3, rng, k=70)
    model = accuracy_model("tensorcore")
    values, path = _run("tensorcore", qx, qw, F32, model.rounding)
    want = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], E4M3, E4M3, fmt_out="float32",
                   model="block", n=32, frac_bits=13)
    assert path == "steps n=32 F=13"
    np.testing.assert_array_equal(F32.encode(values, "rtz"), want)


def test_mx_is_mx_dot(rng: np.random.Generator) -> None:
    bf = get_format("mxfp8_e4m3")
    assert isinstance(bf, BlockFormat)
    qx = quantize(rng.standard_normal((3, 40)), bf, "per-tensor")
    qw = quantize(rng.standard_normal((4, 40)), bf, "per-tensor")
    values, _ = _run("mx", qx, qw, F32)
    sx, ex = qx.codes
    sw, ew = qw.codes
    want = mx_dot(np.repeat(sx[:, None], 4, 1), np.repeat(ex[:, None], 4, 1),
                  np.repeat(sw[None], 3, 0), np.repeat(ew[None], 3, 0), bf)
    np.testing.assert_array_equal(F32.encode(values), want)


def test_lut_is_exact_when_nothing_rounds(rng: np.random.Generator) -> None:
    x = rng.integers(-8, 8, size=(3, 12)).astype(np.float64)
    w = rng.integers(-8, 8, size=(4, 12)).astype(np.float64)
    qx = quantize(x, get_format("float16"), "none")
    qw = quantize(w, get_format("int4"), "none")
    values, _ = _run("lut", qx, qw, F32)
    np.testing.assert_array_equal(values, x @ w.T)


# -- Param.parse -----------------------------------------------------------------------------------

STAGES = Param("int", 0, "pipeline registers", 0, 64)
WINDOW = Param("int", "exact", "normalization window", 1, 128, also=("exact",))
FLAG = Param("bool", False, "saturate")
TILE = Param("size", "2x2", "tile", 1, 8)
FORM = Param("choice:int|equation", "int", "L-Mul form")
FMT = Param("format", "float8_e4m3fn", "format of a")
TEXT = Param("str", "exact", "anything")


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("64", 64), (" 7 ", 7), ("0x10", 16), ("0b11", 3), ("1_0", 10),
    ("08", 8),  # leading zeros: decimal, not refused as octal
])
def test_int_from_the_command_line(text: str, value: int) -> None:
    assert STAGES.parse(text) == value
    assert type(STAGES.parse(text)) is int


@pytest.mark.parametrize(("param", "value", "message"), [
    (STAGES, "65", "must be between 0 and 64, not 65"),
    (STAGES, "-1", "must be between 0 and 64, not -1"),
    (STAGES, 99, "must be between 0 and 64, not 99"),
    (STAGES, "two", "must be an integer, not 'two'"),
    (STAGES, "", "must be an integer, not ''"),
    (STAGES, "2.0", "must be an integer, not '2.0'"),
    (WINDOW, "0", "must be between 1 and 128, not 0"),
    (WINDOW, "approx", "must be an integer or 'exact', not 'approx'"),
    (Param("int", None, "at least", 1), "0", "must be at least 1, not 0"),
    (Param("int", None, "at most", None, 4), "5", "must be at most 4, not 5"),
])
def test_int_refused(param: Param, value: Any, message: str) -> None:
    with pytest.raises(ParamError) as exc:
        param.parse(value)
    assert str(exc.value) == message


def test_int_words_and_types() -> None:
    assert WINDOW.parse("exact") == "exact"
    assert WINDOW.parse(" exact ") == "exact"
    assert WINDOW.parse("exact", strict=True) == "exact"
    assert WINDOW.parse(4) == 4
    assert STAGES.parse(np.int64(3)) == 3
    assert type(STAGES.parse(np.int64(3))) is int
    assert Param("int", None, "open").parse("-1000") == -1000
    # Other types go on to the datapath, which says what it takes; a spec's are refused.
    assert STAGES.parse(2.0) == 2.0
    assert STAGES.parse(True) is True
    with pytest.raises(ParamError, match=r"^must be an integer between 0 and 64, not '3'$"):
        STAGES.parse("3", strict=True)  # TOML: stages = "3" is a string, not an integer
    with pytest.raises(ParamError, match=r"^must be an integer between 0 and 64, not True$"):
        STAGES.parse(True, strict=True)
    with pytest.raises(ParamError, match=r"^must be an integer between 0 and 64, not 2.0$"):
        STAGES.parse(2.0, strict=True)
    with pytest.raises(ParamError, match=r"^must be an integer between 1 and 128 or 'exact', "
                                         r"not 'Exact'$"):
        WINDOW.parse("Exact", strict=True)
    with pytest.raises(ParamError, match=r"^must be between 0 and 64, not 65$"):
        STAGES.parse(65, strict=True)


@pytest.mark.parametrize("word", ["true", "True", "YES", "on", "1", " yes "])
def test_bool_true_words(word: str) -> None:
    assert FLAG.parse(word) is True


@pytest.mark.parametrize("word", ["false", "False", "NO", "off", "0"])
def test_bool_false_words(word: str) -> None:
    assert FLAG.parse(word) is False


def test_bool_types() -> None:
    assert FLAG.parse(True) is True
    assert FLAG.parse(np.bool_(False)) is False
    assert FLAG.parse(True, strict=True) is True
    for bad in ("maybe", "", "2", "t"):
        with pytest.raises(ParamError, match=r"^must be true or false, not "):
            FLAG.parse(bad)
    with pytest.raises(ParamError, match=r"^must be true or false, not 'true'$"):
        FLAG.parse("true", strict=True)  # TOML: a string, not a boolean
    with pytest.raises(ParamError, match=r"^must be true or false, not 1$"):
        FLAG.parse(1, strict=True)
    assert FLAG.parse(1) == 1  # passed on to the datapath


def test_size() -> None:
    assert TILE.parse("2x4") == "2x4"
    assert TILE.parse(" 8x1 ", strict=True) == "8x1"
    for bad in ("2", "2x", "x4", "0x4", "2X4", "2x4x1", "-2x4", "2 x 4", ""):
        with pytest.raises(ParamError, match=r"^must be a size 'RxC' such as '2x4', not "):
            TILE.parse(bad)
    with pytest.raises(ParamError, match=r"^must be a size 'RxC' such as '2x4', not 24$"):
        TILE.parse(24)
    with pytest.raises(ParamError, match=r"^must have sides between 1 and 8, not '9x2'$"):
        TILE.parse("9x2")
    with pytest.raises(ParamError, match=r"^must have sides at most 3, not '1x4'$"):
        Param("size", None, "tile", None, 3).parse("1x4")
    assert Param("size", None, "tile", 2).parse("100x2") == "100x2"


def test_choice() -> None:
    assert FORM.choices == ("int", "equation")
    assert FORM.parse("equation") == "equation"
    assert FORM.parse("int", strict=True) == "int"
    for bad in ("Equation", "log", "", 1):
        with pytest.raises(ParamError, match=r"^must be one of int, equation, not "):
            FORM.parse(bad)
    assert STAGES.choices is None


def test_format_names() -> None:
    assert FMT.parse("float16") == "float16"
    assert FMT.parse("e4m3", strict=True) == "e4m3"  # a spelling get_format takes, kept as given
    with pytest.raises(ParamError, match=r"^must be a format name: unknown format 'float9'"):
        FMT.parse("float9")
    with pytest.raises(ParamError) as exc:
        FMT.parse("float9_e9m9")
    assert "\n" not in str(exc.value)
    assert FMT.parse(E4M3) is E4M3  # a Format object, for the datapath
    with pytest.raises(ParamError, match=r"^must be a format name, not 8$"):
        FMT.parse(8, strict=True)


def test_str() -> None:
    assert TEXT.parse("anything") == "anything"
    assert TEXT.parse(4) == 4
    with pytest.raises(ParamError, match=r"^must be a string, not 4$"):
        TEXT.parse(4, strict=True)


def test_declarations_are_checked() -> None:
    Param("choice:a|b", "a", "x").check("ok")
    with pytest.raises(ValueError, match=r"^P\.kind must be one of format, int, str, bool, size"):
        Param("float", 0.5, "x").check("P")
    with pytest.raises(ValueError, match=r"^P\.kind must list non-empty choices"):
        Param("choice:a||b", "a", "x").check("P")
    with pytest.raises(TypeError, match=r"^P bounds must be integers or None, not 1.5$"):
        Param("int", 0, "x", 1.5, 2).check("P")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^P low must be at most high, not 3 > 2$"):
        Param("int", 0, "x", 3, 2).check("P")


# -- Param.add_argument ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """Errors raise, with argparse's message, instead of exiting."""

    def error(self, message: str) -> Any:
        raise ArithforgeError(message)


def _parser(**params: Param) -> _Parser:
    parser = _Parser(prog="generate toy")
    for name, param in params.items():
        param.add_argument(parser, name)
    return parser


def test_add_argument_parses_typed_values() -> None:
    parser = _parser(stages=STAGES, normalization=WINDOW, saturate=FLAG, tile=TILE, form=FORM,
                     a=FMT, random_width=Param("int", 8, "random bits", 1, 32))
    args = parser.parse_args([])
    assert vars(args) == {"stages": 0, "normalization": "exact", "saturate": False,
                          "tile": "2x2", "form": "int", "a": "float8_e4m3fn", "random_width": 8}
    args = parser.parse_args(["--stages", "0x3", "--normalization", "4", "--saturate", "--tile",
                              "4x2", "--form", "equation", "--a", "bfloat16",
                              "--random-width", "12"])
    assert vars(args) == {"stages": 3, "normalization": 4, "saturate": True, "tile": "4x2",
                          "form": "equation", "a": "bfloat16", "random_width": 12}
    assert parser.parse_args(["--no-saturate", "--random_width", "2"]).saturate is False
    assert parser.parse_args(["--random_width", "2"]).random_width == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["--stages", "99"], "argument --stages: must be between 0 and 64, not 99"),
    (["--stages", "x"], "argument --stages: must be an integer, not 'x'"),
    (["--normalization", "approx"],
     "argument --normalization: must be an integer or 'exact', not 'approx'"),
    (["--tile", "9x9"], "argument --tile: must have sides between 1 and 8, not '9x9'"),
    (["--a", "float9"], "argument --a: must be a format name: unknown format 'float9'"),
    (["--form", "log"], "argument --form: invalid choice: 'log'"),
    (["--random-width", "0"], "argument --random-width/--random_width: must be between 1 and 32"),
    (["--saturate=yes"], "argument --saturate/--no-saturate: ignored explicit argument 'yes'"),
])
def test_add_argument_refuses_bad_values(argv: list[str], message: str) -> None:
    parser = _parser(stages=STAGES, normalization=WINDOW, saturate=FLAG, tile=TILE, form=FORM,
                     a=FMT, random_width=Param("int", 8, "random bits", 1, 32))
    with pytest.raises(ArithforgeError) as exc:
        parser.parse_args(argv)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_add_argument_help() -> None:
    parser = _parser(stages=STAGES, normalization=WINDOW, tile=TILE, b=Param("format", None,
                                                                             "format of b"))
    text = " ".join(parser.format_help().split())
    assert "--stages N pipeline registers; 0 to 64 (default: 0)" in text
    assert "--normalization N|exact normalization window; 1 to 128 (default: exact)" in text
    assert "--tile RxC tile; 1 to 8 (default: 2x2)" in text
    assert "--b FORMAT format of b" in text
    assert "(default: None)" not in text


def test_add_argument_takes_the_callers_actions() -> None:
    """The command line passes actions that refuse an option given twice."""

    class Once(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: Any, option_string: str | None = None) -> None:
            if getattr(namespace, "_seen_" + self.dest, False):
                parser.error(f"argument {option_string}: given twice")
            setattr(namespace, "_seen_" + self.dest, True)
            setattr(namespace, self.dest, values)

    parser = _Parser()
    STAGES.add_argument(parser, "stages", store=Once)
    FORM.add_argument(parser, "form", store=Once)
    assert parser.parse_args(["--stages", "2"]).stages == 2
    assert parser.parse_args(["--form", "equation"]).form == "equation"
    with pytest.raises(ArithforgeError, match="given twice"):
        parser.parse_args(["--stages", "2", "--stages", "3"])
    with pytest.raises(ArithforgeError, match="argument --stages: must be between 0 and 64"):
        parser.parse_args(["--stages", "65"])  # the type still applies
