"""The recorded H100 products through arrays of ``dot`` PEs (``tools/probe/replay_rtl.py``): the
array's output codes are the recorded ones, bit for bit, for every recorded path a ``dot``
configuration covers (docs/tensor-cores.md, "The recordings through the RTL").

Default run: the PE configurations are ``tests/formats/test_mma.py``'s presets; two products of
every path through the cycle-level model; one product with promotion, the last-step conversion
and bfloat16 output through Verilator. ``slow``: every product (no split-K) through Verilator.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ..conftest import load_module

ROOT = Path(__file__).resolve().parents[2]


replay = load_module(ROOT / "tools" / "probe" / "replay_rtl.py")


@pytest.fixture(scope="module")
def rec() -> object:
    return replay.Recordings()


def test_every_path_has_a_pe_and_it_is_the_model_tests_preset(rec: object) -> None:
    from arithforge.datapaths import get

    test_mma = load_module(ROOT / "tests" / "formats" / "test_mma.py", "test_mma_presets")
    paths = rec.paths()  # type: ignore[attr-defined]
    assert len(paths) == 29
    for group, path in paths:
        spec = replay.pe_for(group, path)
        name, _, params = spec.partition(":")
        unit = get(name).build_unit(**dict(p.split("=") for p in params.split(",")))
        # A unit is one step: no call shape, so no split-K table.
        want = dataclasses.replace(test_mma.preset_for(group, path), shape_splits=())
        assert unit.model == want, (group, path)


@pytest.mark.parametrize("only", ["e4m3xe4m3", "e5m2xe4m3", "e5m2xe5m2", "bf16", "fp16",
                                  "fp16acc"])
def test_recordings_through_the_array_model(rec: object, only: str) -> None:
    """Two products of every path of a group through the cycle-level model of the array."""
    for group, path in rec.paths():  # type: ignore[attr-defined]
        if group != only:
            continue
        r = replay.replay_path(rec, group, path, cosim=False, limit=2)
        assert r.cases == 2
        assert (r.mismatches_model, r.mismatches_rtl) == (0, 0), r.first_failure
        assert r.cli_outputs_match is True


@pytest.mark.cosim
def test_promoted_bf16_output_through_the_rtl(rec: object) -> None:
    """``torch._scaled_mm`` fp8 with promotion every 128 and a bfloat16 result (K = 1024: eight
    promotion windows) through a 1x1 array on Verilator."""
    r = replay.replay_path(rec, "e4m3xe4m3", "scaled_mm_bf16_slow", array="1x1", limit=1)
    assert r.cases == 1
    assert (r.mismatches_rtl, r.mismatches_model) == (0, 0), r.first_failure
    assert r.outputs_match
    assert r.cycles_match
    assert r.cli_outputs_match is True


@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("only", ["e4m3xe4m3", "e5m2xe4m3", "e5m2xe5m2", "bf16", "fp16",
                                  "fp16acc"])
def test_every_recording_through_the_rtl(rec: object, only: str) -> None:
    for group, path in rec.paths():  # type: ignore[attr-defined]
        if group != only:
            continue
        r = replay.replay_path(rec, group, path, array="2x2")
        assert r.cases > 0
        assert (r.mismatches_rtl, r.mismatches_model) == (0, 0), r.first_failure
        assert r.outputs_match
        assert r.cycles_match
        assert r.cli_outputs_match is True
