"""formats.hadamard: the integer FWHT against the Sylvester matrix and exact rational rounding;
the block rotation's orthogonality and the GEMM invariance it promises."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.formats import FormatError
from arithforge.formats import hadamard as H


def _signed(codes: np.ndarray, bits: int) -> np.ndarray:
    v = codes.astype(np.int64)
    return v - ((v >> (bits - 1)) << bits)


def _oracle(lanes: np.ndarray, bits: int, shift: int, rounding: str) -> np.ndarray:
    """H x by the matrix product (int64, exact), then the shift: ``y / 2**shift`` is exact in
    float64 (|y| < 2**32), and ``np.round`` rounds half to even; floor is ``np.floor``."""
    n = lanes.shape[1]
    y = _signed(lanes, bits) @ H.sylvester(n).T
    scaled = y.astype(np.float64) / (1 << shift)
    q = (np.round(scaled) if rounding == "rne" else np.floor(scaled)).astype(np.int64)
    out_bits = bits + n.bit_length() - 1 - shift
    return (q & ((1 << out_bits) - 1)).astype(np.uint64)


def test_sylvester_is_orthogonal_and_ordered() -> None:
    for n in (2, 16, 128):
        h = H.sylvester(n)
        np.testing.assert_array_equal(h @ h.T, n * np.eye(n, dtype=np.int64))
        # Sylvester order: row k is (-1)**popcount(k & j).
        k, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        parity = np.vectorize(lambda v: bin(v).count("1") & 1)(k & j)
        np.testing.assert_array_equal(h, 1 - 2 * parity)


@pytest.mark.parametrize(("n", "bits", "shift", "rounding"), [
    (2, 8, 0, "rne"), (4, 4, 1, "rne"), (4, 4, 1, "floor"), (2, 8, 0, "floor")])
def test_fwht_int_exhaustive(n: int, bits: int, shift: int, rounding: str) -> None:
    codes = np.arange(1 << (n * bits), dtype=np.uint64)
    lanes = (codes[:, None] >> (np.arange(n, dtype=np.uint64) * np.uint64(bits))) \
        & np.uint64((1 << bits) - 1)
    got = H.fwht_int(lanes, bits, shift, rounding)
    np.testing.assert_array_equal(got, _oracle(lanes, bits, shift, rounding))


@pytest.mark.parametrize(("n", "bits", "shift", "rounding"), [
    (16, 8, 2, "rne"), (32, 8, 2, "rne"), (64, 16, 3, "floor"), (128, 16, 6, "rne"),
    (128, 8, 0, "rne")])
def test_fwht_int_random_and_extremes(n: int, bits: int, shift: int, rounding: str) -> None:
    seed = 20 + n + shift
    rng = np.random.default_rng(seed)
    lanes = rng.integers(0, 1 << bits, size=(40, n), dtype=np.uint64)
    lo, hi = np.uint64(1 << (bits - 1)), np.uint64((1 << (bits - 1)) - 1)
    h = H.sylvester(n)
    extremes = np.concatenate([np.where(h > 0, hi, lo), np.where(h > 0, lo, hi)])
    lanes = np.concatenate([lanes, extremes.astype(np.uint64)])
    got = H.fwht_int(lanes, bits, shift, rounding)
    np.testing.assert_array_equal(got, _oracle(lanes, bits, shift, rounding), err_msg=f"{seed=}")


def test_fwht_int_width_is_tight() -> None:
    # The most negative sum needs every one of bits + log2(n) bits: -n * 2**(bits-1).
    lanes = np.full((1, 16), 0x80, dtype=np.uint64)
    y = H.fwht_int(lanes, 8)
    assert int(y[0, 0]) == 1 << 11  # -2048 in 12 bits
    assert H.out_bits(8, 16) == 12
    assert (y[0, 1:] == 0).all()


def test_fwht_int_errors() -> None:
    lanes = np.zeros((1, 16), dtype=np.uint64)
    with pytest.raises(FormatError, match=r"^shift must be an integer from 0 to log2\(n\) - 1 = "
                                          r"3, not 4$"):
        H.fwht_int(lanes, 8, 4)
    with pytest.raises(FormatError, match=r"^rounding must be one of rne, floor, not 'up'$"):
        H.fwht_int(lanes, 8, 1, "up")
    with pytest.raises(FormatError, match=r"^the transform length n must be a power of two "
                                          r"from 2 to 4096, not 12$"):
        H.fwht_int(np.zeros((1, 12), dtype=np.uint64), 8)
    with pytest.raises(FormatError, match=r"^bits must be an integer from 2 to 32, not 1$"):
        H.fwht_int(lanes, 1)


def test_rotate_keeps_the_product_and_pads() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 40))
    w = rng.standard_normal((3, 40))
    for block in (2, 16, 32):
        for signs in (None, H.random_signs(-(-40 // block) * block, 9)):
            xr, wr = H.rotate(x, block, signs), H.rotate(w, block, signs)
            assert xr.shape[1] == -(-40 // block) * block
            np.testing.assert_allclose(xr @ wr.T, x @ w.T, rtol=1e-12, atol=1e-12)
            # Orthonormal: norms are kept row by row.
            np.testing.assert_allclose(np.linalg.norm(xr, axis=1), np.linalg.norm(x, axis=1))


def test_rotate_spreads_an_outlier() -> None:
    x = np.zeros((1, 32))
    x[0, 3] = 8.0
    y = H.rotate(x, 32)
    np.testing.assert_allclose(np.abs(y), np.full((1, 32), 8.0 / np.sqrt(32)))


def test_random_signs_are_seeded() -> None:
    a, b = H.random_signs(64, 3), H.random_signs(64, 3)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a).tolist()) == {-1.0, 1.0}
    assert not np.array_equal(a, H.random_signs(64, 4))
    with pytest.raises(FormatError, match=r"^signs must have the padded length 64"):
        H.rotate(np.ones((1, 64)), 32, a[:32])


def _float_oracle(lanes: np.ndarray, fmt_name: str) -> np.ndarray:
    """Butterflies on decoded values: a + b and a - b are exact in float64 for these formats,
    then one encode (round to nearest even) per butterfly; NaN results compared as NaN."""
    from arithforge.formats import codec, get_format

    fmt = get_format(fmt_name)
    v = codec.decode_float(fmt, lanes.astype(np.uint64))
    n = lanes.shape[1]
    h = 1
    while h < n:
        w = v.reshape(len(v), n // (2 * h), 2, h)
        a, b = w[:, :, 0, :], w[:, :, 1, :]
        with np.errstate(invalid="ignore"):
            pair = np.stack([a + b, a - b], axis=2)
        v = codec.decode_float(fmt, codec.encode_float(fmt, pair, "rne")).reshape(len(v), n)
        h *= 2
    return v


@pytest.mark.parametrize(("fmt_name", "n", "count"), [
    ("float8_e4m3fn", 2, None), ("float8_e5m2", 2, None), ("bfloat16", 8, 300),
    ("float16", 16, 1000)])
def test_fwht_float_against_decoded_butterflies(fmt_name: str, n: int, count: int | None
                                                ) -> None:
    from arithforge.formats import codec, get_format

    fmt = get_format(fmt_name)
    if count is None:  # every block of two 8-bit codes
        codes = np.arange(1 << 16, dtype=np.uint64)
        lanes = np.stack([codes & np.uint64(0xFF), codes >> np.uint64(8)], axis=1)
    else:
        seed = 40 + n
        lanes = np.random.default_rng(seed).integers(0, 1 << fmt.bits, size=(count, n),
                                                     dtype=np.uint64)
    got = codec.decode_float(fmt, H.fwht_float(lanes, fmt))
    want = _float_oracle(lanes, fmt_name)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    # Signed zeros too: the sign of an exact zero sum is IEEE 754's (+0 in RNE).
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
