"""Packed sub-byte storage: every code round-trips, padding, and a hand-checked byte per layout."""

from __future__ import annotations

import numpy as np
import pytest

from arithforge.formats import FormatError, get_format
from arithforge.formats.packing import group_size, pack, unpack


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_code_round_trips_at_every_length(bits: int, rng: np.random.Generator) -> None:
    per, nbytes = group_size(bits)
    assert per * bits == nbytes * 8  # a group is lcm(bits, 8) bits
    every = np.arange(1 << bits, dtype=np.uint8)
    for n in range(0, 2 * per + 2):  # every padding amount, and an empty row
        codes = np.resize(rng.permutation(every), n).astype(np.uint8)
        data = pack(codes, bits)
        assert data.dtype == np.uint8
        assert data.size == -(-n // per) * nbytes
        np.testing.assert_array_equal(unpack(data, bits, n), codes)
    data = pack(every, bits)
    np.testing.assert_array_equal(unpack(data, bits, every.size), every)
    # The padding is code 0.
    assert (unpack(data, bits)[every.size:] == 0).all()


def test_fp4_two_per_byte_low_nibble_first() -> None:
    # E2M1 codes of 0.5, 1.0, -6.0: 0x1 in the low nibble of byte 0, 0x2 in its high nibble.
    e2m1 = get_format("float4_e2m1fn")
    codes = e2m1.encode(np.array([0.5, 1.0, -6.0]))
    assert codes.tolist() == [0x1, 0x2, 0xF]
    assert pack(codes, e2m1).tolist() == [0x21, 0x0F]
    assert unpack(np.array([0x21, 0x0F], np.uint8), 4, 3).tolist() == [0x1, 0x2, 0xF]


def test_fp6_four_per_three_bytes_little_endian() -> None:
    # 24-bit word 1 | 2 << 6 | 3 << 12 | 0x3F << 18 = 0xFC3081, stored as 81 30 FC.
    assert pack(np.array([0x01, 0x02, 0x03, 0x3F]), 6).tolist() == [0x81, 0x30, 0xFC]
    # Five codes: a second group, padded with zeros.
    assert pack(np.array([0x01, 0x02, 0x03, 0x3F, 0x2A]), 6).tolist() == [
        0x81, 0x30, 0xFC, 0x2A, 0x00, 0x00]


def test_fp3_and_fp2_groups() -> None:
    # 3-bit codes 1..7, 0: the 24-bit word sum(c_i << 3i) = 0x1F58D1, stored D1 58 1F.
    codes = np.array([1, 2, 3, 4, 5, 6, 7, 0])
    assert pack(codes, 3).tolist() == [0xD1, 0x58, 0x1F]
    assert pack(np.array([1, 2, 3, 0]), 2).tolist() == [0b00111001]


def test_rows_pack_independently() -> None:
    codes = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    data = pack(codes, 4)
    assert data.tolist() == [[0x21, 0x03], [0x54, 0x06]]
    np.testing.assert_array_equal(unpack(data, 4, 3), codes)


def test_errors() -> None:
    with pytest.raises(FormatError, match="1 to 8 bits, not 9"):
        pack(np.zeros(4, np.uint16), 9)
    with pytest.raises(FormatError, match=r"codes must lie in \[0, 15\]"):
        pack(np.array([16]), 4)
    with pytest.raises(FormatError, match="integer array"):
        pack(np.array([1.0]), 4)
    with pytest.raises(FormatError, match="groups of 3 bytes"):
        unpack(np.zeros(4, np.uint8), 6)
    with pytest.raises(FormatError, match=r"n must lie in \[5, 8\]"):
        unpack(np.zeros(6, np.uint8), 6, 4)
    with pytest.raises(FormatError, match="uint8 bytes"):
        unpack(np.zeros(3, np.int32), 6)


def test_torch_float4_e2m1fn_x2_interop() -> None:
    """Every pair of E2M1 codes through ``torch.float4_e2m1fn_x2`` and back; its bytes are
    :func:`pack`'s (element 0 in the low nibble, as c10::Float4_e2m1fn_x2 defines it)."""
    torch = pytest.importorskip("torch", reason="the float4_e2m1fn_x2 dtype is PyTorch's")
    from arithforge.formats.packing import from_float4_e2m1fn_x2, to_float4_e2m1fn_x2

    if not hasattr(torch, "float4_e2m1fn_x2"):
        pytest.skip(f"torch {torch.__version__} has no float4_e2m1fn_x2 (PyTorch 2.8 or newer)")
    lo, hi = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    codes = np.stack([lo.ravel(), hi.ravel()], axis=-1).reshape(2, -1).astype(np.uint8)
    t = to_float4_e2m1fn_x2(codes)
    assert t.dtype == torch.float4_e2m1fn_x2
    assert tuple(t.shape) == (2, 128)  # one element of the dtype per byte: two codes
    np.testing.assert_array_equal(t.view(torch.uint8).numpy(), pack(codes, 4))
    assert t.view(torch.uint8)[0, 1].item() == 0x10  # codes (0, 1): 1 in the high nibble
    np.testing.assert_array_equal(from_float4_e2m1fn_x2(t), codes)
    with pytest.raises(FormatError, match="even length"):
        to_float4_e2m1fn_x2(np.zeros(3, np.uint8))
    with pytest.raises(FormatError, match="expected a torch.float4_e2m1fn_x2 tensor"):
        from_float4_e2m1fn_x2(torch.zeros(2, dtype=torch.uint8))


# -- NVIDIA's Blackwell layouts (PTX ISA §9.7.16.10.4.4, cvt .e2m3x2/.e3m2x2) --------------------

@pytest.mark.parametrize(("bits", "data_bytes"), [(6, 12), (4, 8)])
def test_padded_rows_round_trip_every_code(bits: int, data_bytes: int,
                                           rng: np.random.Generator) -> None:
    """16 codes per 16-byte row: the dense stream of the 16 (12 bytes of FP6, .b6x16_p32; 8 of
    FP4, .b4x16_p64), then padding that pack zeroes and unpack ignores."""
    every = np.arange(1 << bits, dtype=np.uint8)
    for n in (0, 1, 15, 16, 17, 64, 65):
        codes = np.resize(rng.permutation(every), n).astype(np.uint8)
        data = pack(codes, bits, layout="padded")
        assert data.size == 16 * -(-n // 16)
        rows = data.reshape(-1, 16)
        assert (rows[:, data_bytes:] == 0).all()
        # Each row is the dense packing of its 16 codes (zero-filled at the end).
        full = np.resize(np.concatenate([codes, np.zeros(-n % 16, np.uint8)]), rows.shape[0] * 16)
        np.testing.assert_array_equal(rows[:, :data_bytes], pack(full.reshape(-1, 16), bits))
        np.testing.assert_array_equal(unpack(data, bits, n, layout="padded"), codes)
        junk = rows.copy()
        junk[:, data_bytes:] = rng.integers(0, 256, junk[:, data_bytes:].shape)
        np.testing.assert_array_equal(unpack(junk.reshape(-1), bits, n, layout="padded"), codes)
    data = pack(np.tile(every, 2), bits, layout="padded")  # 2 x 64 or 2 x 16 codes
    np.testing.assert_array_equal(unpack(data, bits, layout="padded"), np.tile(every, 2))


def test_padded_fp6_row_by_hand() -> None:
    data = pack(np.array([0x01, 0x02, 0x03, 0x3F, 0x2A]), 6, layout="padded")
    assert data.tolist() == [0x81, 0x30, 0xFC, 0x2A] + [0] * 12
    two_rows = pack(np.array([[5] * 17]), 6, layout="padded")
    assert two_rows.shape == (1, 32)
    assert two_rows[0, 16:].tolist() == [5] + [0] * 15


def test_unpacked_fp6_one_code_per_byte() -> None:
    """cvt .e2m3x2/.e3m2x2: each code in the low 6 bits of its byte, the 2 high bits zero."""
    e2m3 = get_format("float6_e2m3fn")
    every = np.arange(64, dtype=np.uint8)
    data = pack(every, e2m3, layout="unpacked")
    assert data.tolist() == every.tolist()
    np.testing.assert_array_equal(unpack(data, 6, layout="unpacked"), every)
    np.testing.assert_array_equal(unpack(data, 6, 10, layout="unpacked"), every[:10])
    with pytest.raises(FormatError, match="keep the high 2 bits of each byte zero; found 0x40"):
        unpack(np.array([0x40], np.uint8), 6, layout="unpacked")


def test_layout_errors() -> None:
    with pytest.raises(FormatError, match="layout must be one of dense, padded, unpacked, not 'x'"):
        pack(np.zeros(4, np.uint8), 6, layout="x")
    with pytest.raises(FormatError, match="padded layout holds 4- or 6-bit codes .* not 8-bit"):
        pack(np.zeros(4, np.uint8), 8, layout="padded")
    with pytest.raises(FormatError, match="unpacked layout holds 6-bit codes .* not 4-bit"):
        unpack(np.zeros(4, np.uint8), 4, layout="unpacked")
    with pytest.raises(FormatError, match="rows of 16 bytes; 12 bytes"):
        unpack(np.zeros(12, np.uint8), 6, layout="padded")
    with pytest.raises(FormatError, match=r"n must lie in \[1, 16\]"):
        unpack(np.zeros(16, np.uint8), 6, 0, layout="padded")
    with pytest.raises(FormatError, match=r"codes must lie in \[0, 63\]"):
        pack(np.array([64]), 6, layout="padded")
