"""Structure graphs say which bits of a wide component vary, and the approximate normalizer's
logic is in the FMA's graph: the facts the um^2 calibration found the model missing
(docs/asic.md, "Calibration in um^2")."""

from __future__ import annotations

import pytest

from arithforge.costmodel import estimate, load_tech
from arithforge.datapaths import get
from arithforge.formats import get_format

TECH = load_tech(calibration=False)


@pytest.mark.parametrize(("a", "c"), [("bfloat16", "bfloat16"), ("float8_e4m3fn", "float32"),
                                      ("float4_e2m1fn", "float16")])
def test_fma_addend_and_product_widths(a: str, c: str) -> None:
    unit = get("fma").build_unit(a=a, c=c)
    g, nodes = unit.geometry, unit.structure().nodes
    assert g.pc == get_format(c).precision
    assert g.px == 2 * get_format(a).precision
    # The addend's significand at the top of the alignment window, zeros below it; the
    # product's px bits at a fixed place of the sum, only carries elsewhere.
    assert (nodes["align"]["width"], nodes["align"]["data_bits"]) == (g.N - 2, g.pc)
    assert (nodes["add"]["width"], nodes["add"]["data_bits"]) == (g.N + 1, g.px)
    assert nodes["abs"]["inputs"] == 1  # a negation
    assert nodes["add_select"]["kind"] == nodes["abs_select"]["kind"] == "mux"
    # The normalizer shifts the N-bit magnitude into N + K bits, by an amount computed from
    # the exponents (the LSB's, the leading one's raised to emin) and clamped.
    assert (nodes["normalize"]["width"], nodes["normalize"]["data_bits"]) == (g.N + g.K, g.N)
    assert {"lsb_exp", "lsb_select", "exp_min_select", "norm_amount", "norm_clamp"} <= set(nodes)


def test_fma_window_logic_is_costed() -> None:
    # Yosys 0.23 on the OSU 0.18 um cells: bfloat16 FMA 64,694 um2 exact, 69,461 / 72,857 /
    # 72,934 um2 with windows 2 / 4 / 8: the window's floor, its compare and select, and the
    # post-normalization cost more than the narrower leading-zero count saves.
    exact = get("fma").build_unit(a="bfloat16")
    approx = get("fma").build_unit(a="bfloat16", normalization="8")
    extra = set(approx.structure().nodes) - set(exact.structure().nodes)
    assert extra == {"approx_top", "approx_top_select", "approx_floor", "approx_use",
                     "approx_exp_select", "post_lzc", "post_room", "post_cap", "post_shift",
                     "post_normalize", "post_select", "post_exp", "post_exp_select"}
    assert estimate(approx.structure(), TECH).transistors > \
        estimate(exact.structure(), TECH).transistors
    flush = get("fma").build_unit(a="bfloat16", normalization="8", subnormals="false")
    assert not {"post_room", "post_cap", "post_shift"} & set(flush.structure().nodes)


@pytest.mark.parametrize("params", [{"a": "float4_e2m1fn", "acc": "float16", "n": 2},
                                    {"a": "bfloat16", "n": 4}])
def test_dot_alignment_shifters_know_their_significands(params: dict[str, object]) -> None:
    unit = get("dot").build_unit(**params)
    g, nodes = unit.geometry, unit.structure().nodes
    assert nodes["align"]["data_bits"] == g.YW - g.B == g.P
    assert nodes["align_c"]["data_bits"] == g.YWc - g.Bc
    assert 1 <= nodes["align"]["data_bits"] <= nodes["align"]["width"]
    assert (nodes["normalize"]["width"], nodes["normalize"]["data_bits"]) == (g.OW, g.SW)


def test_dot_exponent_width_follows_the_formats() -> None:
    from arithforge.datapaths.dot import EXP_BITS

    # float4 products and a float16 accumulator: exponents from -45 (14 below float16's emin,
    # the 31-bit normalizer's word below that) to 17 fit 7 signed bits of the 12 carried.
    small = get("dot").build_unit(a="float4_e2m1fn", acc="float16", n=2)
    assert small.exp_width == 7
    assert small.structure().nodes["exp_max"]["width"] == 7
    wide = get("dot").build_unit(a="bfloat16", n=4)  # product exponents up to 254
    assert small.exp_width < wide.exp_width == 10 <= EXP_BITS
