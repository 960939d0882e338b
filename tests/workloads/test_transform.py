"""`evaluate --transform`: the block Hadamard rotation before quantization keeps the product
(up to the format's precision), spreads heavy tails, and is spelled and refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arithforge import ArithforgeError, cli
from arithforge.workloads import build
from arithforge.workloads.evaluate import evaluate
from arithforge.workloads.transform import Transform, parse_transform

GRAMMAR = ("none or a '+'-joined list of smoothquant[:ALPHA], hadamard[:BLOCK][@LANES], "
           "rht[:BLOCK[:SEED]][@LANES], afpq[:GROUP], group[:GROUP], zeropoint[:GROUP] (one of "
           "each stage)")


@pytest.fixture(scope="module")
def synthetic64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic64")
    build("synthetic", out, size=64).close()
    return out


@pytest.mark.parametrize(("text", "want"), [
    ("none", Transform()), ("hadamard", Transform("hadamard", 32)),
    ("hadamard:16", Transform("hadamard", 16)), ("rht:128", Transform("rht", 128, 0)),
    ("RHT:16:7", Transform("rht", 16, 7)), (None, Transform())])
def test_parse_and_name_round_trip(text: str | None, want: Transform) -> None:
    got = parse_transform(text)
    assert got == want
    assert parse_transform(got.name) == got


@pytest.mark.parametrize(("text", "message"), [
    ("hadamard:24", "transform block must be a power of two from 2 to 4096, not 24"),
    ("hadamard:1", "transform block must be a power of two from 2 to 4096, not 1"),
    ("hadamard:x", "transform block must be a non-negative integer, not 'x' (in 'hadamard:x')"),
    ("hadamard:32:1", f"transform must be {GRAMMAR}, not 'hadamard:32:1'"),
    ("rotate", f"transform must be {GRAMMAR}, not 'rotate'"),
    ("rht:16:-1", "transform seed must be a non-negative integer, not '-1'"),
])
def test_bad_spellings(text: str, message: str) -> None:
    with pytest.raises(ArithforgeError) as err:
        parse_transform(text)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("transform", ["hadamard:32", "hadamard:128", "rht:16:3"])
def test_the_product_is_kept(synthetic64: Path, transform: str) -> None:
    """float32 operands, no scaling: only float32's rounding of the rotated operands is left
    (K = 64 is padded to 128 for the 128 block)."""
    r = evaluate(synthetic64, "float32", "float32", scaling="none", transform=transform)
    assert r["config"]["transform"] == transform
    for layer in r["layers"]:
        assert layer["sqnr_db"] > 120, layer["name"]


def test_rotation_spreads_heavy_tails(synthetic64: Path) -> None:
    """Student-t (3 degrees of freedom) operands in int4 per tensor: the outliers set the scale
    and the rest round to zero; rotated, the block is near Gaussian (QuaRot's argument)."""
    plain = {r["name"]: r["sqnr_db"] for r in evaluate(synthetic64, "int4", "int4")["layers"]}
    rot = {r["name"]: r["sqnr_db"]
           for r in evaluate(synthetic64, "int4", "int4", transform="hadamard:32")["layers"]}
    assert rot["student-t3"] > plain["student-t3"] + 5
    assert rot["student-t3-outliers"] > plain["student-t3-outliers"] + 5
    # Gaussian operands gain nothing: the rotation of a Gaussian vector is Gaussian.
    assert abs(rot["gaussian"] - plain["gaussian"]) < 1.5


def test_random_signs_depend_on_the_seed(synthetic64: Path) -> None:
    a = evaluate(synthetic64, "int4", "int4", transform="rht:16:1")["layers"]
    b = evaluate(synthetic64, "int4", "int4", transform="rht:16:1")["layers"]
    c = evaluate(synthetic64, "int4", "int4", transform="rht:16:2")["layers"]
    assert [x["sqnr_db"] for x in a] == [x["sqnr_db"] for x in b]
    assert [x["sqnr_db"] for x in a] != [x["sqnr_db"] for x in c]


def test_cli(synthetic64: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evaluate", str(synthetic64), "--weights", "mxfp4_e2m1", "--acts",
                     "mxfp4_e2m1", "--transform", "hadamard:16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["transform"] == "hadamard:16"
    assert all(np.isfinite(r["sqnr_db"]) for r in doc["layers"])
    assert cli.main(["evaluate", str(synthetic64), "--transform", "rht:32"]) == 0
    assert ", transform rht:32:0" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(("value", "message"), [
    ("hadamard:48", "transform block must be a power of two from 2 to 4096, not 48"),
    ("spin", f"transform must be {GRAMMAR}, not 'spin'")])
def test_cli_errors(synthetic64: Path, capsys: pytest.CaptureFixture[str], value: str,
                    message: str) -> None:
    status = cli.main(["evaluate", str(synthetic64), "--transform", value])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith(f"arithforge: error: evaluate: argument --transform: {message}")
    assert err.count("\n") == 1
