# Ref: Luo & Sun, arXiv 2410.00907 (L-Mul); OCP MX v1.0 §6.2 (block dot product); MMA-Sim,
#      arXiv 2511.10909 and Khattak & Mikaitis, arXiv 2512.07004 (tensor-core accumulation);
#      Alexandridis et al., arXiv 2408.11997 (approximate normalization)
"""Numeric models of GEMM datapaths: one registry from names to functions on quantized operands.

A datapath takes the quantized activations ``X`` (``M x K``) and weights ``W`` (``N x K``) and
returns the exact values of its accumulator output, ``M x N`` float64, for the element values
(the callers multiply by the operands' row scales). Every model is bit-exact with
:mod:`arithforge.formats.ops` on the codes; :mod:`.gemm` holds the fast kernels.

=============== ==========================================================================
``exact``       exact products, exact sum, one rounding to ``acc`` (default float32)
``fma_chain``   ``acc = fma(x_k, w_k, acc)`` in ``acc`` for k = 0..K-1; option
                ``normalization`` (``"exact"`` or a window W, arXiv 2408.11997, emulated)
``lmul``        every product an L-Mul in the operand format (``ops.lmul``), its value passed
                to float32 exactly (it has at most ``max(m, l) + 2`` significant bits); options
                ``form`` (``"int"``, the paper's code, or ``"equation"``), ``offset_bits``, and
                ``accumulate``: ``"exact"`` (exact sum, one rounding to ``acc``) or ``"chain"``
                (one rounding to ``acc`` per addition, in order of K)
``mx``          OCP MX block-scaled operands, exact dot product, one rounding (``mx_dot``;
                an exact zero sum is +0 as in ``ops.dot``, where ``mx_dot`` gives -0 when
                every product is -0)
``tensorcore``  ``ops.dot(model="block")``: steps of ``n`` products plus the accumulator,
                truncated to ``frac_bits`` fraction bits, rounded with ``rounding`` (default
                ``rtz``); defaults n=32, frac_bits=13 (H100 fp8) for operands of at most 8 bits,
                n=16, frac_bits=25 (H100 fp16/bf16) otherwise. Option ``model``: a preset of
                :mod:`arithforge.formats.mma` (``h100-fp8``, ``h100-fp8-fastacc``,
                ``h100-bf16``, ``a100-bf16``, ``v100-fp16``...; :data:`TENSORCORE_MODELS`)
                runs ``mma.matmul`` instead, what that GPU computes: its steps, promotion and
                float32 output (``acc`` and ``rounding`` are then the model's, not the
                config's)
``int``         integer MAC (``ops.imac``): exact products of the integer codes, sum wrapping
                modulo 2**bits of ``acc`` (default int32)
``bitserial``   the BitMoD bit-serial PE (``formats.bitmod``, arXiv 2411.11745): the weights'
                values (``--weights float32 --weight-scaling none`` passes them on unchanged)
                are requantized group-wise along K, each group's datatype chosen by MSE from
                ``family`` (default ``bitmod4``), scale in ``scale`` (float16); activations in
                float16, bfloat16 or int8 aligned per group with ``align_bits`` (8); exact
                partial sums, one rounding per group into ``acc``; options ``family``,
                ``group`` (128), ``align_bits``, ``scale``
``lut``         the LUT tensor core (``formats.lut``, arXiv 2408.06003): activations in the
                table entry format (float16, bfloat16 or int8), int2-int4 weights (signed
                codes), the reduction in tiles of ``group`` activations chained through ``acc``
                (each tile's bit-planes least significant first, then the offset step; one
                rounding per step); options ``group`` (K, default 4) and ``symmetric``
=============== ==========================================================================

To add a datapath, write ``run(qx, qw, config) -> (values, path)`` and register it with
:func:`register_datapath`; :data:`PLANNED` names the ones to come (none at present), which
fail with a clear message until then.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import (
    BlockFormat,
    FixedFormat,
    FloatFormat,
    Format,
    FormatError,
    Rounding,
    bitmod,
    mma,
    ops,
)
from ..datapaths import gemm
from .quantize import Quantized

__all__ = ["DATAPATHS", "PLANNED", "TENSORCORE_MODELS", "Config", "Datapath", "get_datapath",
           "register_datapath"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Config:
    """What a datapath is asked to do besides its operands.

    Parameters
    ----------
    acc : Format
        Accumulator (and output) format.
    rounding : Rounding
        Rounding of the accumulator.
    options : mapping
        The datapath's own options, defaults filled in.
    """

    acc: Format
    rounding: Rounding
    options: Mapping[str, Any] = field(default_factory=dict)


#: ``run(qx, qw, config) -> (values, path)``: accumulator values ``(M, N)`` and a word on how they
#: were computed (``"matmul"``, ``"limbs:2x2"``, ``"chain"``, ``"emulator"``...).
Run = Callable[[Quantized, Quantized, Config], tuple[F64, str]]


@dataclass(frozen=True)
class Datapath:
    """A registered datapath model.

    Parameters
    ----------
    name : str
    run : callable
        See :data:`Run`.
    summary : str
        One line for listings.
    options : mapping
        Option names and their defaults; anything else is refused.
    acc : str
        Default accumulator format.
    rounding : str
        Default accumulator rounding.
    fast : bool
        Whether its cost is that of a few float64 matmuls, so it runs on every row and column of
        a trace by default. Slow models run on a sample of rows for per-layer metrics.
    check : callable, optional
        ``check(options) -> options``: validates the options (defaults filled in) before any
        work, converting command-line strings (``"true"``) to their values; raises ``ValueError``
        or ``TypeError`` naming the option.
    """

    name: str
    run: Run
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    acc: str = "float32"
    rounding: str = "rne"
    fast: bool = True
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None


#: Registered datapaths by name.
DATAPATHS: dict[str, Datapath] = {}

#: Datapaths to come: name -> what it will model.
PLANNED: dict[str, str] = {}


def register_datapath(datapath: Datapath) -> Datapath:
    """Add ``datapath`` to :data:`DATAPATHS` (replacing one of the same name); return it."""
    DATAPATHS[datapath.name] = datapath
    return datapath


def get_datapath(name: str) -> Datapath:
    """Return the datapath called ``name``.

    Raises
    ------
    ArithforgeError
        For a planned or unknown name, listing the registered ones.
    """
    if name in DATAPATHS:
        return DATAPATHS[name]
    known = ", ".join(DATAPATHS)
    if name in PLANNED:
        raise ArithforgeError(f"datapath {name!r} is not implemented yet ({PLANNED[name]}); "
                              f"choose one of {known}")
    close = difflib.get_close_matches(name, list(DATAPATHS), n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise ArithforgeError(f"datapath must be one of {known}, not {name!r}{hint}")


def check_options(datapath: Datapath, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill in a datapath's option defaults; refuse options it does not have or values it does
    not take (:attr:`Datapath.check`)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(datapath.options))
    if unknown:
        have = ", ".join(datapath.options) or "none"
        raise ArithforgeError(f"datapath {datapath.name!r} has no option {unknown[0]!r} "
                              f"(its options: {have})")
    full = {**datapath.options, **given}
    if datapath.check is None:
        return full
    try:
        return datapath.check(full)
    except (TypeError, ValueError) as exc:
        raise ArithforgeError(f"datapath {datapath.name!r}: {exc}") from None


# -- option checks -------------------------------------------------------------------------------

def _int_option(options: Mapping[str, Any], key: str, low: int, high: int, *,
                none: bool = False) -> int | None:
    value = options[key]
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not low <= value <= high:
        also = " or none" if none else ""
        raise ValueError(f"option {key} must be an integer between {low} and {high}{also}, "
                         f"not {value!r}")
    return int(value)


def _choice_option(options: Mapping[str, Any], key: str, choices: Any) -> Any:
    value = options[key]
    if value not in choices:
        raise ValueError(f"option {key} must be one of {', '.join(map(str, choices))}, "
                         f"not {value!r}")
    return value


def _bool_option(options: Mapping[str, Any], key: str) -> bool:
    value = options[key]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    # From the command line: -O symmetric=false (a string), -O symmetric=0 (an int).
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"option {key} must be true or false, not {value!r}")


#: Largest step of the ``tensorcore`` datapath (GPUs use 4 to 32 products per step).
MAX_TC_STEP = 1024


def _check_fma_chain(options: dict[str, Any]) -> dict[str, Any]:
    if options["normalization"] != "exact":
        options["normalization"] = _int_option(options, "normalization", 1, ops.MAX_WINDOW)
    return options


def _check_lmul(options: dict[str, Any]) -> dict[str, Any]:
    _choice_option(options, "form", ("int", "equation"))
    options["offset_bits"] = _int_option(options, "offset_bits", 0, 40, none=True)
    _choice_option(options, "accumulate", ("exact", "chain"))
    return options


def _check_tensorcore(options: dict[str, Any]) -> dict[str, Any]:
    n = options["n"] = _int_option(options, "n", 1, MAX_TC_STEP, none=True)
    limit = 51 - ((n or 32) + 1).bit_length()
    f = options["frac_bits"] = _int_option(options, "frac_bits", 1, limit, none=True)
    if options["model"] is not None:
        try:
            mma.get_model(str(options["model"]))
        except FormatError as exc:
            raise ArithforgeError(f"tensorcore {exc}") from None
        if n is not None or f is not None:
            raise ValueError("option model sets n and frac_bits itself: give model or "
                             "n/frac_bits, not both")
    return options


def _check_bitserial(options: dict[str, Any]) -> dict[str, Any]:
    try:
        bitmod.get_family(options["family"])
    except (FormatError, TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"option family must be one of {', '.join(bitmod.FAMILIES)} or a "
                         f"list of datatypes, not {options['family']!r} ({exc})") from None
    options["group"] = _int_option(options, "group", 1, 4096)
    options["align_bits"] = _int_option(options, "align_bits", 0, 16)
    from ..formats import get_format

    try:
        scale = get_format(str(options["scale"]))
    except ValueError:
        scale = None
    if not isinstance(scale, FloatFormat):
        raise ValueError(f"option scale must be a float format, not {options['scale']!r}")
    return options


def _check_lut(options: dict[str, Any]) -> dict[str, Any]:
    from ..formats.lut import MAX_GROUP

    options["group"] = _int_option(options, "group", 1, MAX_GROUP)
    options["symmetric"] = _bool_option(options, "symmetric")
    return options


# -- helpers -------------------------------------------------------------------------------------

def _float_acc(config: Config, what: str) -> FloatFormat:
    if not isinstance(config.acc, FloatFormat):
        raise ArithforgeError(f"the {what} datapath needs a float accumulator, not "
                              f"{config.acc.name!r}")
    return config.acc


def _element(q: Quantized, what: str) -> FloatFormat:
    if not isinstance(q.fmt, FloatFormat):
        raise ArithforgeError(f"the {what} datapath needs float operand formats, not "
                              f"{q.fmt.name!r}")
    return q.fmt


# -- the models ----------------------------------------------------------------------------------

def _exact(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = _float_acc(config, "exact")
    y, path = gemm.exact_dot([(qx.values, qw.values)])
    return gemm.finish(y, acc, config.rounding, zeros=_zeros(qx.values, qw.values)), path


def _zeros(x: F64, w: F64, min_normal: float = 0.0) -> tuple[F64, F64, Any, Any]:
    """Operands and which of their elements give zero products (below ``min_normal`` too)."""
    return x, w, np.abs(x) <= min_normal, np.abs(w) <= min_normal


def _fma_chain(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = _float_acc(config, "fma_chain")
    window = config.options["normalization"]
    if window == "exact":
        return gemm.fma_chain(qx.values, qw.values, acc, config.rounding), "chain"
    fx, fw = _element(qx, "fma_chain"), _element(qw, "fma_chain")
    codes = ops.dot(qx.codes[:, None, :], qw.codes[None, :, :], fx, fw, fmt_out=acc,
                    model="fma_chain", fmt_acc=acc, rounding=config.rounding,
                    normalization=window)
    return acc.decode(codes), "emulator"


_LMUL_OUT = FloatFormat(8, 23)  # L-Mul products go to float32, exactly


def _lmul(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = _float_acc(config, "lmul")
    fx, fw = _element(qx, "lmul"), _element(qw, "lmul")
    if fx != fw:
        raise ArithforgeError(f"the lmul datapath needs one operand format for weights and "
                              f"activations, not {fw.name!r} and {fx.name!r}")
    opts = config.options
    if opts["accumulate"] not in ("exact", "chain"):
        raise ArithforgeError(f"accumulate must be 'exact' or 'chain', not {opts['accumulate']!r}")
    gemm.check_lmul_range(qx.values, qw.values, fx, _LMUL_OUT)
    if opts["accumulate"] == "chain":
        product = gemm.lmul_products(qx.values, qw.values, fx, form=opts["form"],
                                     offset_bits=opts["offset_bits"])
        return gemm.fma_chain(qx.values, qw.values, acc, config.rounding, product=product,
                              products_float32=True), "chain"
    pairs = gemm.lmul_pairs(qx.values, qw.values, fx, form=opts["form"],
                            offset_bits=opts["offset_bits"])
    y, path = gemm.exact_dot(pairs)
    below = np.nextafter(fx.min_normal, 0.0)  # subnormal inputs give zero products
    zeros = _zeros(qx.values, qw.values, below)
    return gemm.finish(y, acc, config.rounding, zeros=zeros), f"{path}, {len(pairs)} pairs"


def _mx(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = _float_acc(config, "mx")
    for q, what in ((qx, "activations"), (qw, "weights")):
        if not isinstance(q.fmt, BlockFormat):
            raise ArithforgeError(f"the mx datapath needs block formats: {what} are "
                                  f"{q.fmt.name!r}; use an mx format (mxfp8_e4m3, mxfp4_e2m1, "
                                  "mxint8...) or scaling 'per-block'")
    y, path = gemm.exact_dot([(qx.values, qw.values)])
    return gemm.finish(y, acc, config.rounding, zeros=_zeros(qx.values, qw.values)), path


#: Presets the ``tensorcore`` datapath takes as its ``model`` option.
TENSORCORE_MODELS = tuple(mma.PRESETS)


def _tensorcore_model(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    opts = config.options
    if opts["n"] is not None or opts["frac_bits"] is not None:
        raise ArithforgeError("the tensorcore option model sets n and frac_bits itself: give "
                              "model or n/frac_bits, not both")
    try:
        model = mma.get_model(str(opts["model"]))
    except FormatError as exc:
        raise ArithforgeError(f"tensorcore {exc}") from None
    fx, fw = _element(qx, "tensorcore"), _element(qw, "tensorcore")
    if not (np.isfinite(qx.values).all() and np.isfinite(qw.values).all()):
        raise ArithforgeError("the tensor-core model needs finite operands; quantize with "
                              "saturation")
    codes = mma.matmul(qx.codes, np.asarray(qw.codes).T, fx, fw, model=model)
    return model.output.decode(codes), f"{model.name}: {model.label()}"


def _tensorcore(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    if config.options["model"] is not None:
        return _tensorcore_model(qx, qw, config)
    acc = _float_acc(config, "tensorcore")
    narrow = max(qx.fmt.bits, qw.fmt.bits) <= 8
    n = config.options["n"] or (32 if narrow else 16)
    frac_bits = config.options["frac_bits"] or (13 if narrow else 25)
    y = gemm.block_chain(qx.values, qw.values, acc, n=int(n), frac_bits=int(frac_bits),
                         out_rounding=config.rounding)
    return y, f"steps n={n} F={frac_bits}"


def _int(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = config.acc
    if not (isinstance(acc, FixedFormat) and acc.frac_bits == 0):
        raise ArithforgeError(f"the int datapath needs an integer accumulator, not {acc.name!r}")
    fx, fw = qx.fmt, qw.fmt
    for f, what in ((fx, "activations"), (fw, "weights")):
        if not isinstance(f, FixedFormat):
            raise ArithforgeError(f"the int datapath needs integer formats (int8, int4...): "
                                  f"{what} are {f.name!r}")
    assert isinstance(fx, FixedFormat)
    assert isinstance(fw, FixedFormat)
    fracs = fx.frac_bits + fw.frac_bits
    k = qx.values.shape[1]
    if fx.bits + fw.bits + (k - 1).bit_length() > 53 or acc.bits > 52:
        raise ArithforgeError("the int datapath supports products and sums of up to 53 bits and "
                              "accumulators of up to 52")
    ints = gemm.exact_dot([(np.ldexp(qx.values, fx.frac_bits),
                            np.ldexp(qw.values, fw.frac_bits))])[0]
    half = float(1 << (acc.bits - 1))
    wrapped = np.mod(ints + half, 2 * half) - half  # two's complement, as ops.imac
    return np.ldexp(wrapped, -fracs), "matmul"


def _bitserial(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    acc = _float_acc(config, "bitserial")
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


def _lut(qx: Quantized, qw: Quantized, config: Config) -> tuple[F64, str]:
    """The LUT tensor core (``formats.lut``) on K-groups of the reduction, tile after tile."""
    from ..formats import IntFormat, lut

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


for _dp in (
    Datapath("exact", _exact, "exact products and sum, one rounding to acc"),
    Datapath("fma_chain", _fma_chain, "sequential FMA in acc, optional normalization window",
             {"normalization": "exact"}, fast=False, check=_check_fma_chain),
    Datapath("lmul", _lmul, "L-Mul products (exact in float32), accumulated in acc",
             {"form": "int", "offset_bits": None, "accumulate": "exact"}, check=_check_lmul),
    Datapath("mx", _mx, "OCP MX block formats, exact dot product, one rounding"),
    Datapath("tensorcore", _tensorcore, "tensor-core steps of n products truncated to frac_bits",
             {"n": None, "frac_bits": None, "model": None}, rounding="rtz", fast=False,
             check=_check_tensorcore),
    Datapath("int", _int, "integer MAC, wrapping accumulator", acc="int32"),
    Datapath("bitserial", _bitserial, "BitMoD bit-serial PE, group-wise MSE datatypes",
             {"family": "bitmod4", "group": 128, "align_bits": 8, "scale": "float16"},
             check=_check_bitserial),
    Datapath("lut", _lut, "LUT tensor core: tables of K activations, int2-4 weight bit-planes",
             {"group": 4, "symmetric": True}, fast=False, check=_check_lut),
):
    register_datapath(_dp)
