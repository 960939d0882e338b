"""The split-K probes and fits of ``formats.mma_probe``, model files, and the per-shape table.

The probe designs are checked against the library model (a split the model is given must be
read back from its window probe outputs), the model file round-trips, and ``matmul`` with a
preset resolves ``shape_splits`` by the documented rule.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from arithforge.formats import FormatError, get_format, mma
from arithforge.formats import _gpu_probe as gp
from arithforge.formats import mma_probe as mp

PATH_KEYS = list(mp.PATHS)


@pytest.mark.parametrize("group", ["e4m3xe4m3", "bf16", "fp16"])
def test_window_probe_entries_are_exact(group: str) -> None:
    a, b, j, i = mp.window_probe(group, 1024, 15)
    p = next(p for p in mp.PATHS.values() if p.group == group)
    va = get_format(p.fmt_a).decode(a).astype(np.float64)
    vb = get_format(p.fmt_b).decode(b).astype(np.float64)
    exact = va @ vb  # few non-zero products, all exact in float64
    t = mp.probe_threshold(group)
    small = 0.75 * 2.0 ** (np.log2(t / (1 + 2.0 ** -mp._tip_exponent(group))) - 23)
    assert np.array_equal(exact, np.full((16, 16), t + small))
    assert (np.count_nonzero(a, axis=1) == 2 + 16).all()


@pytest.mark.parametrize(("key", "k", "part"), [
    ("bf16/torch_mm_f32out", 1024, 384), ("bf16/torch_matmul", 1024, 512),
    ("fp16/torch_matmul", 1024, 320), ("e4m3xe4m3/scaled_mm_f32_fast", 1024, 256),
    ("e4m3xe4m3/scaled_mm_bf16_slow", 1024, 1024)])
def test_window_probe_reads_the_split_back(key: str, k: int, part: int) -> None:
    """Outputs of the model with a given split: the readings admit that part length (and
    the model's kept/lost pattern is the chunk rule), and the fit returns it."""
    path = mp.PATHS[key]
    m = mp.model_for(path, k, part)
    reads, rands = [], []
    for s in mp.windows(k):
        a, b, j, i = mp.window_probe(path, k, s)
        out = mma.matmul(a, b, path.fmt_a, path.fmt_b, model=m)
        kp = mp.kept(out, path)
        assert np.array_equal(kp, mp.predicted_kept(j, i, part, m.promote))
        reads.append((j, i, kp))
    a, b = mp.random_case(path, k, 1)
    rands.append((a, b, mma.matmul(a, b, path.fmt_a, path.fmt_b, model=m)))
    assert part in mp.consistent_parts(k, reads, m.promote)
    fit = mp.fit_split(path, k, reads, rands)
    assert fit["match"] == fit["total"] == 256
    if m.promote is None:
        assert fit["part"] == part


def test_split_entry_reproduces_the_part() -> None:
    for k in (1024, 4096, 8192, 16384):
        for part in range(64, k + 1, 64):
            s, t = mp.split_entry(k, part)
            got = k if s == 1 else -(-k // (s * t)) * t
            assert got == part or (s == 1 and part >= k), (k, part, s, t)


def test_nearest_entry_rule() -> None:
    table = (("float32", 16, 16, 4096, 3, 64), ("float32", 256, 256, 4096, 2, 1),
             ("float32", 16, 16, 1024, 1, 1), ("bfloat16", 16, 16, 4096, 4, 64))
    assert mp.nearest_entry(table, "float32", 16, 16, 4096) == (3, 64)
    assert mp.nearest_entry(table, "bfloat16", 16, 16, 4096) == (4, 64)
    assert mp.nearest_entry(table, "float32", 20, 16, 4000) == (3, 64)   # nearest in log2
    assert mp.nearest_entry(table, "float32", 200, 300, 4096) == (2, 1)
    assert mp.nearest_entry(table, "float16", 16, 16, 4096) is None


def test_matmul_uses_the_shape_table() -> None:
    base = mma.get_model("h100-bf16")
    table = (("float32", 16, 16, 1024, 4, 64),)
    m = dataclasses.replace(base, shape_splits=table)
    a, b = mp.random_case("bf16", 1024, 0)
    want = mma.matmul(a, b, "bfloat16", model=dataclasses.replace(base, split=4, split_tile=64))
    plain = mma.matmul(a, b, "bfloat16", model=base.__class__(**{
        **mma.model_to_dict(base), "shape_splits": ()}))
    got = mma.matmul(a, b, "bfloat16", model=m)
    assert np.array_equal(got, want)
    assert not np.array_equal(plain, want)  # the split is visible in these outputs
    explicit = dataclasses.replace(m, split=2, split_tile=64)   # an explicit split wins
    assert mma.for_shape(explicit, 16, 16, 1024).split == 2


@pytest.mark.parametrize("name", ["h100-fp8", "h100-fp8-fastacc", "h100-bf16",
                                  "h100-fp16-f16acc", "h100-fp8-mma-sync"])
def test_model_file_round_trip(tmp_path, name: str) -> None:
    m = dataclasses.replace(mma.get_model(name),
                            shape_splits=(("float32", 16, 16, 4096, 3, 64),))
    f = tmp_path / "m.json"
    mma.save_model(m, f)
    assert mma.get_model(str(f)) == m
    assert mma.get_model(f) == m
    assert json.loads(f.read_text())["arithforge_mma_model"] == 1


@pytest.mark.parametrize(("text", "message"), [
    ("{", "is not JSON"),
    ('{"model": {"n": 16, "colour": 1}}', "unknown model fields colour"),
    ('{"model": {"n": 0}}', "n must be at least 1"),
    ('{"model": {"shape_splits": [["float32", 16, 16]]}}', "shape_splits entries must be"),
    ("[1]", "must hold a JSON object"),
])
def test_bad_model_files(tmp_path, text: str, message: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(text)
    with pytest.raises(FormatError, match=message):
        mma.get_model(str(f))
    with pytest.raises(FormatError, match="cannot read model file"):
        mma.get_model(str(tmp_path / "missing.json"))


def test_probe_pipeline_without_gpu() -> None:
    """record -> fit on the model backend with a known split: the fit finds the step of the
    preset and the split per shape, bit for bit."""
    path = mp.PATHS["bf16/torch_mm_f32out"]
    backend = gp.ModelBackend({(path.key, 16, 16, 2048): 768})
    logs: list[str] = []
    arrays = gp.record_step(backend, [path], 1, logs.append)
    grid, meta = gp.record(backend, [path], [(16, 16), (64, 16)], [2048], 1, logs.append)
    arrays.update(grid)
    fit = gp.fit_path(arrays, path, logs.append)
    assert fit["frac_bits_read"] == 25
    assert gp.same_step(fit["model"], mma.get_model(path.preset), path)
    by_shape = {tuple(r["shape"]): r for r in fit["shapes"]}
    assert by_shape[(16, 16, 2048)]["part"] == 768
    assert by_shape[(64, 16, 2048)]["part"] == 2048
    assert all(r["random_match"] == r["random_total"] for r in fit["shapes"])
    assert meta["inconsistent"] == []


def test_shape_table_on_the_torch_backend() -> None:
    """``device=`` resolves the table the same way (the torch code of the step, on ``cpu:0``)."""
    torch = pytest.importorskip("torch")
    from arithforge.formats._torch_backend import to_numpy_codes

    a, b = mp.random_case("bf16", 4096, 0)
    m = mma.get_model("h100-bf16")
    assert mma.for_shape(m, 16, 16, 4096).split == 3
    want = mma.matmul(a, b, "bfloat16", model=m)
    got = mma.matmul(torch.from_numpy(a.astype(np.int32)), torch.from_numpy(b.astype(np.int32)),
                     "bfloat16", model=m, device="cpu:0")
    assert np.array_equal(to_numpy_codes(got, 32), want)
    plain = mma.matmul(a, b, "bfloat16", model=dataclasses.replace(m, shape_splits=()))
    assert not np.array_equal(plain, want)
