"""The memory term of the cost model: bits per element with block scales, traffic of GEMMs."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from arithforge.costmodel.memory import bits_per_element, gemm_traffic
from arithforge.formats import BlockFormat, FormatError, get_format


@pytest.mark.parametrize("name", ["nvfp4", "mxfp4_e2m1", "mxfp6_e3m2", "mxfp8_e4m3", "mxint8",
                                  "float16", "bfloat16", "float8_e4m3fn", "int4", "float32"])
def test_bits_per_element_from_the_descriptor(name: str) -> None:
    """Element bits plus the stored scale bytes over the block, derived from the descriptor's
    own fields (not a table): NVFP4 4 + 8/16, MX 4/6/8 + 8/32, plain formats their width."""
    fmt = get_format(name)
    if isinstance(fmt, BlockFormat):
        want = Fraction(fmt.element.bits) + Fraction(8 * -(-fmt.scale.bits // 8), fmt.block_size)
    else:
        want = Fraction(fmt.bits)
    assert bits_per_element(name) == float(want)
    assert bits_per_element(fmt) == float(want)


def test_published_overheads() -> None:
    # NVIDIA's NVFP4 blog and OCP MX v1.0: 4.5 and 4.25 / 8.25 bits per value.
    assert [bits_per_element(n) for n in ("nvfp4", "mxfp4_e2m1", "mxfp8_e4m3", "float16")] == \
        [4.5, 4.25, 8.25, 16.0]


def test_gemm_traffic_counts_each_operand_once() -> None:
    gemms = [{"M": 4, "N": 8, "K": 32}, {"M": 2, "N": 3, "K": 16, "batch": 5}]
    t = gemm_traffic(gemms, "nvfp4", "float16")
    w = (32 * 8 + 16 * 3 * 5) * 4.5
    a = (4 * 32 + 2 * 16 * 5) * 16.0
    macs = 4 * 8 * 32 + 2 * 3 * 16 * 5
    assert t == {"weight_bits": w, "act_bits": a, "total_bits": w + a, "macs": macs,
                 "bits_per_mac": (w + a) / macs}
    # The ranking the memory objective gives: NVFP4 < MXFP8 < FP16 on any GEMMs.
    per = [gemm_traffic(gemms, f, f)["bits_per_mac"] for f in ("nvfp4", "mxfp8_e4m3", "float16")]
    assert per == sorted(per)
    assert len(set(per)) == 3
    assert math.isnan(gemm_traffic([], "nvfp4", "nvfp4")["bits_per_mac"])
    with pytest.raises(FormatError):
        gemm_traffic(gemms, "float5_nonsense", "float16")
