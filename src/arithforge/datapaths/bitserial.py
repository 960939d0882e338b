# Ref: Chen et al., arXiv 2411.11745 (BitMoD)
"""The BitMoD bit-serial PE ``bitserial`` (``arithforge.hdl.bitserial``, ``formats.bitmod``).

GEMM model: the weights' values (``--weights float32 --weight-scaling none`` passes them on
unchanged) are requantized group-wise along K, each group's datatype chosen by MSE from
``family`` (default ``bitmod4``), scale in ``scale`` (float16); activations in float16, bfloat16
or int8 aligned per group with ``align_bits`` (8); exact partial sums, one rounding per group
into ``acc``; options ``family``, ``group`` (128), ``align_bits``, ``scale``.

Sweeps: one design per weight family x activation format x group, independent of ``[formats]
weights``; a transaction is ``group * groups`` MACs along K.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, FormatError, Rounding, bitmod, get_format
from ._common import F64, float_acc, int_option, kinds
from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
)

__all__ = ["BitSerial"]

ROUNDINGS = "|".join(r.value for r in Rounding if r is not Rounding.STOCHASTIC)
#: Most lanes per group the descriptor takes (reference, vectors, structure and cost), as a
#: sweep spec allows them.
MAX_GROUP = 1024
#: Most lanes per group that elaborate: Amaranth's time grows steeply with the lanes of the
#: group's alignment and adder tree (8 lanes 3.5 s, 14 lanes 22 s, 16 lanes 140 s and 1 GB).
MAX_ELABORATED_GROUP = 16
#: Most groups per transaction.
MAX_GROUPS = 64
#: Most fraction bits kept below a group's largest activation (``formats.bitmod.PEConfig``).
MAX_ALIGN_BITS = 16
ACTS = "float16|bfloat16|int8"

#: BitMoD bit-serial PE configurations of the acceptance sweep (tests/sim/test_bitserial.py runs
#: a bounded subset on smaller PEs): 10^5 random transactions (dot products of group x groups)
#: and the corner ones each. Together: every BitMoD datatype, float16/bfloat16/int8
#: activations, both serial modes.
ACCEPTANCE: list[tuple[str, dict[str, Any]]] = [
    ("fp16 bitmod4 (FP4 ER+/ER-/EA+/EA-) term", {"acts": "float16", "family": "bitmod4"}),
    ("bf16 bitmod3 (FP3 ER+/ER-/EA+/EA-) bit", {"acts": "bfloat16", "family": "bitmod3",
                                                "serial": "bit"}),
    ("int8 int4 term", {"acts": "int8", "family": "int4"}),
    ("fp16 int3 bit", {"acts": "float16", "family": "int3", "serial": "bit"}),
    ("bf16 int2 term", {"acts": "bfloat16", "family": "int2"}),
    ("int8 fp4 bit", {"acts": "int8", "family": "fp4", "serial": "bit"}),
    ("fp16 fp3 term, bf16 acc rtz", {"acts": "float16", "family": "fp3", "acc": "bfloat16",
                                     "rounding": "rtz"}),
    ("int8 bitmod4 bit, 16 lanes x 1", {"acts": "int8", "family": "bitmod4", "serial": "bit",
                                        "group": 16, "groups": 1}),
    ("bf16 int4,fp4,fp4_er_pos,fp4_ea_neg term, align 4, 4 lanes x 4",
     {"acts": "bfloat16", "family": "int4,fp4,fp4_er_pos,fp4_ea_neg", "align_bits": 4,
      "group": 4, "groups": 4}),
]


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    try:
        bitmod.get_family(options["family"])
    except (FormatError, TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"option family must be one of {', '.join(bitmod.FAMILIES)} or a "
                         f"list of datatypes, not {options['family']!r} ({exc})") from None
    options["group"] = int_option(options, "group", 1, 4096)
    options["align_bits"] = int_option(options, "align_bits", 0, 16)
    try:
        scale = get_format(str(options["scale"]))
    except ValueError:
        scale = None
    if not isinstance(scale, FloatFormat):
        raise ValueError(f"option scale must be a float format, not {options['scale']!r}")
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    acc = float_acc(config, "bitserial")
    opts = config.options
    if qx.fmt.name not in ("float16", "bfloat16", "int8"):
        raise ArithforgeError(f"the bitserial datapath needs float16, bfloat16 or int8 "
                              f"activations, not {qx.fmt.name!r}")
    m, k = qx.values.shape
    n = qw.values.shape[0]
    try:
        g = int(opts["group"])
        ng = -(-k // g)
        cfg = bitmod.PEConfig(qx.fmt, opts["family"], g, ng, int(opts["align_bits"]),
                              opts["scale"], acc, config.rounding)
        codes, sel, scales = bitmod.quantize_groups(qw.values, cfg.types, g, cfg.scale_format)
    except (FormatError, ValueError, TypeError) as exc:
        raise ArithforgeError(f"bitserial: {exc}") from None
    # K padded to whole groups with zeros (activation code 0 is +0, weight code 0 is 0).
    a = np.zeros((m, ng * g), dtype=np.int64)
    a[:, :k] = np.asarray(qx.codes, dtype=np.int64)
    w = np.zeros((n, ng * g), dtype=np.int64)
    w[:, :k] = codes
    aligned, lsb = bitmod.aligned_activations(a, cfg)  # (M, NG, G), (M, NG)
    values = bitmod.weight_values(w, sel, cfg)  # (N, NG, G)
    # |P| < 2**partial_bits <= 2**53: every float64 product and partial sum is exact.
    if cfg.partial_bits > 53:
        raise ArithforgeError("bitserial: partial sums wider than 53 bits; lower group or "
                              "align_bits")
    p = np.stack([aligned[:, j, :].astype(np.float64) @ values[:, j, :].T.astype(np.float64)
                  for j in range(ng)], axis=-1).astype(np.int64)  # (M, N, NG)
    zero = np.zeros((), dtype=np.uint64)
    out = bitmod.accumulate(p, lsb[:, None, :], scales[None, :, :], zero, cfg)
    return acc.decode(out), f"emulator, {ng} groups of {g}"


class BitSerial(Descriptor):
    """The BitMoD bit-serial PE (module docstring)."""

    name: ClassVar[str] = "bitserial"
    summary: ClassVar[str] = "BitMoD bit-serial PE, group-wise MSE datatypes"
    params: ClassVar[dict[str, Param]] = {
        "acts": Param(f"choice:{ACTS}", "float16", "activation format"),
        "family": Param("str", "bitmod4", "weight datatypes the 2-bit selector picks from"),
        "group": Param("int", 8, f"weights per group (parallel lanes; Verilog for at most "
                                 f"{MAX_ELABORATED_GROUP})", 1, MAX_GROUP),
        "groups": Param("int", 2, "groups per transaction", 1, MAX_GROUPS),
        "align_bits": Param("int", 8, "fraction bits kept below a group's largest activation",
                            0, MAX_ALIGN_BITS),
        "scale": Param("format", "float16", "format of the per-group scales"),
        "acc": Param("format", "float32", "accumulator format (c and the result)"),
        "rounding": Param(f"choice:{ROUNDINGS}", "rne", "rounding of each accumulation"),
        "serial": Param("choice:term|bit", "term", "one term per cycle, or one bit (digit)"),
    }
    generator: ClassVar[str] = "arithforge.hdl.bitserial:BitSerialPE"
    accuracy: Accuracy | None = Accuracy(
        _run, "BitMoD bit-serial PE, group-wise MSE datatypes",
        {"family": "bitmod4", "group": 128, "align_bits": 8, "scale": "float16"},
        check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "types": Param(f"choice:{'|'.join(bitmod.FAMILIES)}", "bitmod4",
                       "BitMoD weight family (formats.bitmod.FAMILIES)"),
        "acts": Param(f"choice:{ACTS}", "float16", "activation format"),
        "group": Param("int", 8, "weights per scale group = PE lanes", 1, MAX_GROUP),
        "align_bits": Param("int", 8, "fraction bits kept below a group's largest activation",
                            0, MAX_ALIGN_BITS),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"bitserial": {}}
    per_format: ClassVar[bool] = False
    hidden: ClassVar[tuple[str, ...]] = ("acts", "types")
    marker: ClassVar[str | None] = "P"
    #: Activation formats, weight families, lanes, term- and bit-serial, accumulators; small
    #: enough to synthesize in well under a minute.
    calibration = (
        {"acts": "int8", "family": "int2", "group": 2, "groups": 1},
        {"acts": "float16", "family": "bitmod4", "group": 4, "groups": 1},
        {"acts": "int8", "family": "int4", "group": 4, "groups": 2, "serial": "bit",
         "acc": "float16"},
        {"acts": "bfloat16", "family": "bitmod3", "group": 4, "groups": 1, "acc": "float16"},
        {"acts": "float16", "family": "fp4", "group": 2, "groups": 2, "serial": "bit"},
        {"acts": "int8", "family": "bitmod4", "group": 8, "groups": 1, "acc": "bfloat16"},
    )
    acceptance = tuple(AcceptanceCheck(f"bitserial {label}", params, kind, n)
                       for label, params in ACCEPTANCE
                       for kind, n in (("random", 10**5), ("corner", None)))
    #: A sequential dot-product PE: int8 activations, 2 lanes, 1 group per transaction.
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("bitserial:acts=int8,family=bitmod4,group=2,groups=1",
                     {"os": (3, 2), "ws": (3, 2)}, ("os", 2, 2)),
    )
    array_pe: ClassVar[bool] = True

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        lanes = int(params.get("group", 8)) * int(params.get("groups", 2))
        return m, n, -(-k // lanes)

    def plan(self, ctx: SweepContext, label: str, params: Mapping[str, list[Any]],
             only: Iterable[str] | None) -> list[Design | Skip]:
        from .base import grid

        out: list[Design | Skip] = []
        for p in grid(params):
            for acc in ctx.accs:
                if kinds(acc)[0] != "float":
                    out.append(Skip(label, p["types"], p["acts"], acc,
                                    "the bit-serial PE accumulates in a float format"))
                    continue
                out.append(self._design(ctx, label, p, acc))
        return out

    def _design(self, ctx: SweepContext, label: str, params: dict[str, Any], acc: str
                ) -> Design:
        acts = str(params["acts"])
        group = int(params["group"])
        align = int(params["align_bits"])
        # The bit-exact model of the PE (formats.bitmod, one rounding per group into the
        # accumulator, as a chain of PE transactions through ``c`` computes it); it requantizes
        # the float32 weights group-wise itself.
        model = {"weights": "float32", "acts": acts, "acc": acc, "weight_scaling": "none",
                 "act_scaling": ctx.scaling(acts), "datapath": self.name,
                 "options": {"family": params["types"], "group": group, "align_bits": align,
                             "scale": "float16"}}
        hdl = {"acts": acts, "family": params["types"], "group": group, "groups": 2,
               "align_bits": align, "scale": "float16", "acc": acc}
        return self.make_design(label, str(params["types"]), acts, acc, params,
                                (self.name, hdl), model, macs=2 * group)
