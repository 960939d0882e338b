# Ref: Mo et al., arXiv 2408.06003 (LUT Tensor Core)
"""The LUT tensor core ``lut`` (``arithforge.hdl.lut``, ``formats.lut``): an ``m x n x k`` tile
per operation, one table of ``2**k`` activation sums per row, int1-int4 weight bit-planes.

GEMM model: activations in the table entry format (float16, bfloat16 or int8), int2-int4
weights (signed codes), the reduction in tiles of ``group`` activations chained through ``acc``
(each tile's bit-planes least significant first, then the offset step; one rounding per step);
options ``group`` (K, default 4) and ``symmetric``.

Sweeps: signed integer weights of 2 to 4 bits from ``[formats] weights``, table entries
``entry`` (float entries with a float accumulator, int8 with an integer one), tile ``RxC``,
``symmetric`` tables. In an array each PE operation is a whole tile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .._errors import ArithforgeError
from ..formats import FloatFormat, IntFormat
from ._common import F64, bool_option, fmt, int_option, kinds
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

__all__ = ["LUT"]

#: Largest tile side the generator takes (M * N accumulators are built).
MAX_SIDE = 64
#: Largest activation group K the generator builds (a table of 2**K entries; the emulator's
#: ``formats.lut.MAX_GROUP`` goes further).
MAX_GROUP = 6
#: Most bits per weight code (``formats.lut.LUTConfig``'s range).
MAX_WEIGHT_BITS = 4

#: LUT tensor core configurations of the acceptance sweep (tests/sim/test_lut.py runs a bounded
#: subset of them): 10^5 random tiles each, the corner tiles, and every int4 activation group
#: through three of them.
ACCEPTANCE: list[tuple[str, dict[str, Any], bool]] = [
    ("fp16 w1 sym, fp32 acc", {"entry": "float16", "weight_bits": 1}, True),
    ("fp16 w2 full, fp16 acc", {"entry": "float16", "acc": "float16", "weight_bits": 2,
                                "symmetric": False}, False),
    ("bf16 w3 sym, fp32 acc", {"entry": "bfloat16", "weight_bits": 3}, True),
    ("bf16 w4 full, bf16 acc", {"entry": "bfloat16", "acc": "bfloat16", "weight_bits": 4,
                                "symmetric": False}, False),
    ("fp16 ternary sym, fp32 acc", {"entry": "float16", "weight_bits": 2, "ternary": True},
     False),
    ("int8 w4 sym, int32 acc, 2x64x4", {"entry": "int8", "weight_bits": 4, "n": 64}, True),
    ("int8 ternary full, int16 acc", {"entry": "int8", "acc": "int16", "weight_bits": 2,
                                      "ternary": True, "symmetric": False}, False),
    ("int8 w2 sym k3, int32 acc", {"entry": "int8", "weight_bits": 2, "k": 3}, False),
    ("fp16 int4 signed sym, fp32 acc", {"entry": "float16", "weight_bits": 4, "signed": True},
     False),
]


def _acceptance() -> tuple[AcceptanceCheck, ...]:
    out = []
    for label, params, exhaustive in ACCEPTANCE:
        full = {"m": 2, "n": 4, "k": 4, **params}
        out.append(AcceptanceCheck(f"lut {label}", full, "random", 10**5))
        out.append(AcceptanceCheck(f"lut {label}", full, "corner"))
        if exhaustive:
            out.append(AcceptanceCheck(f"lut {label}, int4 groups", full, "exhaustive"))
    return tuple(out)


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    from ..formats.lut import MAX_GROUP as MODEL_GROUP

    options["group"] = int_option(options, "group", 1, MODEL_GROUP)
    options["symmetric"] = bool_option(options, "symmetric")
    return options


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    """The LUT tensor core (``formats.lut``) on K-groups of the reduction, tile after tile."""
    from ..formats import lut

    fw = qw.fmt
    if not (isinstance(fw, IntFormat) and fw.signed and 2 <= fw.bits <= 4):
        raise ArithforgeError(f"the lut datapath needs int2, int3 or int4 weights (two's "
                              f"complement codes), not {fw.name!r}")
    opts = config.options
    try:
        cfg = lut.LUTConfig(fw.bits, qx.fmt, config.acc, group=int(opts["group"]),
                            symmetric=bool(opts["symmetric"]), signed=True)
    except (TypeError, ValueError) as exc:
        raise ArithforgeError(f"the lut datapath: {exc}") from None
    k = cfg.group
    xc = np.asarray(qx.codes)
    wc = np.asarray(qw.codes).astype(np.int64) & ((1 << fw.bits) - 1)
    rows, depth = xc.shape
    groups = -(-depth // k)
    pad = groups * k - depth
    if pad:  # zero activations and zero weights add nothing
        xc = np.concatenate([xc, np.zeros((rows, pad), dtype=xc.dtype)], axis=1)
        wc = np.concatenate([wc, np.zeros((wc.shape[0], pad), dtype=wc.dtype)], axis=1)
    fa = cfg.acc
    acc = np.zeros((rows, wc.shape[0]), dtype=np.uint64)  # +0, or the integer 0
    for g in range(groups):
        a = xc[:, g * k:(g + 1) * k]
        w = wc[:, g * k:(g + 1) * k].T
        acc = np.asarray(lut.lut_tile(a, w, acc, cfg)).astype(np.uint64)
    if isinstance(fa, FloatFormat):
        values = fa.decode(acc.astype(fa.code_dtype))
    else:
        assert isinstance(fa, IntFormat)
        values = fa.to_int(acc.astype(fa.code_dtype)).astype(np.float64)
    # The core's weight values are twice the signed codes (v = 2w): halve, exactly.
    return values / 2.0, f"tiles of K={k}, {groups} per row"


class LUT(Descriptor):
    """The LUT tensor core (module docstring)."""

    name: ClassVar[str] = "lut"
    summary: ClassVar[str] = "LUT tensor core: tables of K activations, int2-4 weight bit-planes"
    params: ClassVar[dict[str, Param]] = {
        "m": Param("int", 2, "tile rows M (one table each)", 1, MAX_SIDE),
        "n": Param("int", 4, "tile columns N", 1, MAX_SIDE),
        "k": Param("int", 4, "activation group size K (table of 2**K entries)", 1, MAX_GROUP),
        "weight_bits": Param("int", 4, "bits per weight code", 1, MAX_WEIGHT_BITS),
        "ternary": Param("bool", False, "ternary weights (weight_bits 2) via the offset step"),
        "signed": Param("bool", False, "two's-complement weight codes (top plane negated, "
                                       "offset step)"),
        "entry": Param("format", "float16", "activation and table entry format (float16, "
                                            "bfloat16, int8)"),
        "acc": Param("format", None, "accumulator format (default float32, int32 for int8 "
                                     "entries)"),
        "symmetric": Param("bool", True, "table symmetrization: 2**(K-1) stored entries"),
    }
    generator: ClassVar[str] = "arithforge.hdl.lut:LUTTensorCore"
    accuracy: Accuracy | None = Accuracy(
        _run, "LUT tensor core: tables of K activations, int2-4 weight bit-planes",
        {"group": 4, "symmetric": True}, fast=False, check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "tile": Param("size", "2x4", "M x N tile of the LUT tensor core", 1, MAX_SIDE),
        "group": Param("int", 4, "activations per table, K", 1, MAX_GROUP),
        "entry": Param("choice:float16|bfloat16|int8", "float16",
                       "activation and table entry format"),
        "symmetric": Param("bool", True, "table symmetrization: 2**(K-1) stored entries"),
    }
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {"lut": {}}
    hidden: ClassVar[tuple[str, ...]] = ("entry",)
    marker: ClassVar[str | None] = "X"
    #: Float and int8 tables, weight bits, ternary and signed weights, with and without
    #: symmetrization, tile shapes.
    calibration = (
        {"m": 1, "n": 1, "k": 2, "weight_bits": 2, "entry": "float16"},
        {"m": 1, "n": 2, "k": 3, "weight_bits": 1, "entry": "bfloat16", "acc": "bfloat16"},
        {"m": 1, "n": 2, "k": 2, "weight_bits": 2, "ternary": True, "entry": "float16",
         "acc": "float16", "symmetric": False},
        {"m": 1, "n": 1, "k": 2, "weight_bits": 2, "entry": "int8"},
        {"m": 2, "n": 2, "k": 4, "weight_bits": 2, "entry": "int8"},
        {"m": 2, "n": 4, "k": 4, "weight_bits": 4, "entry": "int8"},
        {"m": 1, "n": 4, "k": 3, "weight_bits": 2, "signed": True, "entry": "int8",
         "symmetric": False},
    )
    acceptance = _acceptance()
    #: A tile engine: each array element a 1x2x2 tile.
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("lut:m=1,n=2,k=2,weight_bits=2,entry=float16,acc=float32",
                     {"os": (2, 2), "ws": (2, 2)}, ("ws", 1, 2)),
    )
    array_pe: ClassVar[bool] = True

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        def up(a: int, b: Any) -> int:
            return -(-int(a) // int(b))

        return up(m, params["m"]), up(n, params["n"]), up(k, params["k"])

    def tile(self, params: Mapping[str, Any]) -> tuple[int, int, int] | None:
        # The core's ports: a (element m*K + k), w (k*N + n), c and the result (m*N + n).
        return int(params["m"]), int(params["n"]), int(params["k"])

    def reason(self, weights: str, acts: str, acc: str) -> str:
        if weights != acts:
            return "the LUT core takes its activation format from [datapaths.lut] entry"
        kw = kinds(weights)[0]
        if kw != "int" or not 2 <= fmt(weights).bits <= 4:
            return "the LUT tensor core takes signed integer weights of 2 to 4 bits"
        return ""

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        m, n = (int(x) for x in str(params["tile"]).split("x"))
        k = int(params["group"])
        entry = str(params["entry"])
        ke, kacc = kinds(entry, acc)
        if ke == "float" and kacc != "float":
            return Skip(label, weights, entry, acc, "the LUT core with float table entries "
                                                    "accumulates in a float format")
        if ke == "int" and kacc != "int":
            return Skip(label, weights, entry, acc, "the LUT core with integer table entries "
                                                    "accumulates in an integer format")
        symmetric = bool(params["symmetric"])
        # The bit-exact model of the core (formats.lut.lut_tile tile after tile); the weight
        # bits are the weight format's, two's-complement codes (signed).
        model = ctx.model(weights, entry, acc, self.name, options={"group": k,
                                                                  "symmetric": symmetric})
        model["weight_scaling"] = "per-channel"
        hdl = {"m": m, "n": n, "k": k, "weight_bits": fmt(weights).bits, "signed": True,
               "entry": entry, "acc": acc, "symmetric": symmetric}
        return self.make_design(label, weights, entry, acc, params, (self.name, hdl), model,
                                macs=m * n * k)
