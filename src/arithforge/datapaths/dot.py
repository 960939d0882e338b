# Ref: MMA-Sim, arXiv 2511.10909 §4; Fasi et al., "Numerical behavior of NVIDIA tensor cores"
#      (PeerJ CS 2021); Khattak & Mikaitis, arXiv 2512.07004 (one tensor-core step).
"""The dot-product unit ``dot``: one tensor-core step as RTL (issue 16, first slice).

One step adds ``n`` exact products and the accumulator as :class:`arithforge.formats.mma.MMAModel`
defines it: every non-zero term aligned to the largest alignment exponent ``E`` of the step, cut
to ``frac_bits`` ``F`` fraction bits relative to ``2**E`` (``term_rounding``), summed exactly,
the sum rounded to ``acc_frac_bits`` fraction bits in the exponent range of ``acc``
(``acc_rounding``). ``reference()`` is :func:`arithforge.formats.mma.step` bit for bit; the
generator is ``arithforge.hdl.dot.DotProduct``.

Ports: ``a`` the ``n`` codes of A packed (lane 0 in the low bits), ``b`` likewise, ``c`` the
accumulator code (``acc``: float32, float16 or bfloat16 codes (bfloat16: float32's exponent
range, at most 7 fraction bits, overflow as float32's); with ``acc_frac_bits`` below the format's
mantissa the low bits of a result are zero, those of ``c`` are read as they are); result the new
accumulator code. A GEMM chains steps over K through ``c``.

Contract: finite operand codes (the model's: non-finite A or B codes are outside it; issue 17
measures them). An infinite accumulator passes through unchanged and a NaN accumulator gives the
accumulator format's NaN of its sign, as ``formats.mma`` computes them (neither is measured
behaviour of a GPU). Test vectors hold finite operands only; accumulators of every class.

Approximate normalization (``normalization = W``, arXiv 2408.11997): the leading-zero count of
the sum covers only its top ``W`` bits; a sum whose leading one lies lower is rounded at the
window's floor, keeping fewer significant bits, and a small post-normalizer (leading zeros of
the rounded bits, a left shift) makes the code (:class:`~arithforge.formats.mma.MMAModel`
``normalization``). With ``F`` no more than ``acc_frac_bits`` plus ``W - 3 - bits(n + 1)`` the
window loses nothing: the sum has no bits below the floor's rounding position.

``model`` (a :data:`arithforge.formats.mma.PRESETS` name) sets ``n``, ``frac_bits``,
``term_rounding``, ``alignment``, ``acc``, ``acc_frac_bits`` and ``acc_rounding``, and what
happens around the steps: ``promote``, ``k_order`` and ``out`` (``promote`` and ``out``
given with a model override its; a model that splits K is refused).

Around the steps (promotion, K order, output): with ``promote`` (``h100-fp8``: 128,
``h100-fp8-mma-sync``: 32) or an ``out`` other than the accumulator's, ``c`` and the result
hold the unit's state, ``partial`` (the step accumulator, low bits) and, with promotion, the
float32 ``main`` accumulator above it (``describe()["state"]``), and ``a`` carries a control
field above its lanes (``describe()["control"]``): ``flush`` (with promotion) ends a promotion
window, ``main <- f32_add_rne(main, step)`` and ``partial <- +0``; ``last`` (with promotion or
an output conversion) makes the result the output code, ``main`` (or, without promotion, the
step's result) rounded to nearest even to ``out`` (float32, bfloat16 or float16). Both are
float32-style adders (the ``add`` datapath's hardware; the conversion adds -0). What the steps
see of K (:meth:`DotUnit.step_control`, :attr:`DotUnit.k_block`,
:attr:`DotUnit.k_permutation`) is the feed's: K zero-padded to whole promotion windows (and
K-order blocks), reordered within blocks of 32 (``pairs2x16``), ``flush`` on every
``promote / n``-th step and ``last`` on the final one; a chain fed so from a (+0, +0) state is
:func:`arithforge.formats.mma.matmul` of the whole model, bit for bit. This is a model of what
the libraries do around the instructions (an FADD into registers every 128 elements for
``torch._scaled_mm``, between ``mma.sync`` instructions), not of how an H100 is built.

GEMM model (``evaluate --datapath dot``, explore's accuracy stage): what a chain of these steps
computes over K in steps of ``n``, from a +0 accumulator: :func:`arithforge.formats.mma.matmul`
with the step's :class:`~arithforge.formats.mma.MMAModel` and the accumulator as the output
(its codes decoded, never re-rounded). A is the activations (``a``), B the weights (``b``); the
accumulator is the config's ``acc`` (float32, float16 or bfloat16) with its ``rounding`` as
``acc_rounding`` (rtz or rne; default rtz); options ``n``, ``frac_bits``, ``term_rounding``,
``alignment``, ``acc_frac_bits``, ``normalization`` as the unit's (None: the unit's defaults),
or ``model``, a preset that sets all of them and the accumulator itself. ``promote = P`` (or a
preset that promotes, ``h100-fp8``, ``h100-fp8-mma-sync`` with its K order) adds each window's
partial sum into a float32 accumulator, which is then the output, as the unit's flush steps and
its last step with ``out = float32`` do.

Sweep (``[datapaths.dot]``, not in the default spec): ``n`` (16), ``frac_bits`` and
``acc_frac_bits`` (the unit's defaults), ``term_rounding``, ``acc_rounding``, ``stages``; float
operands of at most 16 bits into a float32 or float16 accumulator, or signed integers of at
most 8 bits into int16..int32 (a float-only parameter off its default skips those); ``n`` MACs
per operation.

Integer operands (issue 16, second slice): A and B both integer formats of at most 8 bits
(signed int2..int8, or unsigned; integer x float is refused) into a signed integer accumulator
``acc`` of 16 to 32 bits (default int32). One step is what integer tensor-core paths (IMMA)
compute: ``c + sum_k a_k b_k`` with exact products of the codes' integers, summed exactly and
wrapped to ``acc`` (two's complement, as :func:`arithforge.formats.ops.imac`). Integer steps have
no alignment, cut or rounding: the float-only parameters (``frac_bits``, ``term_rounding``,
``alignment``, ``acc_frac_bits``, ``acc_rounding``, ``model``) are refused when given with
integer operands, never silently ignored. The GEMM model of integer operands is
:func:`int_matmul` (wrapping addition is associative: a chain of steps over K is one wrapped
exact sum, the ``imac`` model's), its options all None but ``n``.

Kulisch accumulator (``kulisch=true``; float operands): the exact products enter a wide
two's-complement fixed-point register of ``acc_width`` W bits whose least bit weighs
``2**acc_lsb`` (:class:`arithforge.formats.mma.Kulisch`): no alignment to a largest exponent and
no cut to F bits, so ``frac_bits``, ``term_rounding``, ``alignment``, ``acc``,
``acc_frac_bits``, ``acc_rounding`` and ``model`` are refused. Defaults: the LSB is the least
exponent of a product of the operand formats (nothing is cut: a product of two smallest
subnormals is one LSB) and W holds any sum of up to 2**16 products (e4m3 x e4m3: W = 53, LSB
2**-18; e2m1: 25, 2**-2; bf16: 539, 2**-266); a narrower ``acc_width`` given alone keeps that
top and raises the LSB (e4m3, W = 40: LSB 2**-5). A higher LSB cuts each product's magnitude
toward zero, then negates it; a register too narrow for a sum wraps (two's complement, never
saturates). Ports: ``c`` the W-bit register code, ``result`` the new register (the array keeps
it from step to step); with ``acc_result=float32`` ``result`` is instead the register after this
step rounded once to float32 (RNE, gradual underflow, infinity past the largest float32, +0 for
a zero register): the unit of the last step of K (the hardware's choice here: one generator with
a result option, no second output port). ``reference()`` is :func:`arithforge.formats.mma.step`
(and :func:`~arithforge.formats.mma.kulisch_round`) bit for bit. GEMM model: option
``kulisch=true`` (with ``acc_width``, ``acc_lsb``; ``n`` only labels the step): the exact sum of
all K products in the register, rounded once to float32, from a zero register
(:func:`arithforge.formats.mma.matmul` with the Kulisch model); the accumulator must be float32.
Sweep: ``kulisch`` (false) and ``acc_width`` (None), best as a named variant
(``[datapaths.dot_kulisch]`` with ``datapath = "dot"``, ``kulisch = [true]``, ``acc_width = [32,
40, 53]``): a Kulisch point needs a float32 accumulator and the float-step parameters at their
defaults (else skipped with the reason); its cost is the register's step (the one float32
rounding per output is not costed). Approximate normalization applies to the float step, not
to the register (above).

Array PE (``simulate gemm --pe dot:...``): one operation is one step, ``n`` products along K, so
the array's K counts steps (``array_shape``); an A element is the ``n`` activation codes packed
as the ``a`` port takes them (and the step's control field, the same for every row), a B
element the ``n`` weight codes (``b``): a 1 x 1 x n tile (``tile``), so
:func:`arithforge.sim.accelerator.element_operands` packs element GEMMs (``simulate gemm --a
--b``) into steps.

Groups and block scales (``group``, ``scale``, ``block``; float operands): the step of
:class:`arithforge.formats.mma.MMAModel` with ``group``, ``block`` and ``scale_format``: the
products of each ``group`` consecutive lanes summed exactly first, each group sum multiplied
exactly by its block's A and B scales (``scale``: ``float8_e8m0fnu``, OCP MX's E8M0, a power of
two; or ``float8_e4m3fn`` codes with sign 0, NVFP4's UE4M3; ``block`` elements per scale, a
multiple of ``group`` dividing ``n``, default 32 for E8M0 and 16 otherwise), its alignment
exponent its products' largest plus the scale exponents; then the ``n / group`` group terms and
the accumulator are aligned, cut, summed and rounded as above. A NaN scale gives the
accumulator's positive NaN. Ports: ``a`` is the ``n`` lane codes (lane 0 lowest) followed by
the ``n / block`` scale codes of A (block 0 lowest), ``b`` likewise: one A element of a systolic
array carries everything of a step's A side. The per-tensor float32 scale is not in the unit: it
multiplies a GEMM's float32 result in the epilogue (``formats.mma.matmul``'s ``scale_a``,
``scale_b``), as cuBLAS applies it. Every operand format takes groups: the group adder is as
wide as the exact sum needs (70 bits for MXFP8 E5M2 at g=32; the model sums such groups in
Python integers); alignment ``sum`` (or ``normalized`` with E8M0). The GEMM model takes block
formats (``evaluate --weights mxfp8_e4m3 --acts mxfp8_e4m3 --datapath dot``, ``nvfp4``): steps
of one block (``n`` = the block size unless given), each block one group with its scale pair, K
padded with zero elements; an NVFP4 per-tensor scale is the operand's row scale, applied after
the GEMM. The sweep takes block formats (one group per block, ``n`` whole blocks), and the
array PE takes element GEMMs with their block scale codes (``simulate gemm
--a-scale/--b-scale``); promotion, a K order and an output conversion are not built with groups
or scales.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from .._errors import ArithforgeError
from ..formats import (
    BlockFormat,
    FloatFormat,
    FormatError,
    IntFormat,
    Rounding,
    get_format,
    mma,
    ops,
)
from ..formats import _core as core
from ..formats.rounding import as_rounding
from . import _cases
from ._common import F64, element, float_acc, int_option, kinds
from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    DatapathError,
    Descriptor,
    Design,
    Operand,
    Param,
    Skip,
    SweepContext,
    check_stages,
    stages_param,
)
from .bitserial import pack_fields, unpack_fields
from .fma import _stages
from .unit import Graph, Unit, check_kind, choose_cuts

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Dot", "DotGeometry", "DotUnit", "GroupGeometry", "MAX_BITS", "MAX_INT_BITS", "MAX_N",
           "gemm_model", "int_matmul"]

#: Widest operand format.
MAX_BITS = 16
#: Widest integer operand format.
MAX_INT_BITS = 8
#: Widths of an integer accumulator (signed).
INT_ACC_BITS = (16, 32)
#: Most products per step.
MAX_N = 64
#: Alignment rules the hardware builds (all of ``formats.mma``'s).
ALIGNMENTS = ("sum", "sum_fp16", "normalized")
#: Accumulator formats (their exponent ranges).
ACCS = ("float32", "float16", "bfloat16")
#: What a Kulisch unit's ``result`` port gives: the new register, or it rounded to float32.
ACC_RESULTS = ("register", "float32")
#: Signed width of every exponent signal (operands of at most 16 bits, float32 accumulators).
EXP_BITS = 12

PARAMS: dict[str, Param] = {
    "a": Param("format", "float8_e4m3fn", "format of the A codes (a float of at most 16 bits, "
                                          "or an integer of at most 8 bits)"),
    "b": Param("format", None, "format of the B codes (default: a)"),
    "n": Param("int", None, "products per step (default: the model's, else 4)", 1, MAX_N),
    "frac_bits": Param("int", None, "fraction bits F kept per term relative to 2**E (default: "
                                    "the model's, else 13 for operands of at most 8 bits, 25 "
                                    "otherwise)", 1, 40),
    "term_rounding": Param("choice:rtz|rdn|rne", None, "how bits below F are cut (default: rtz)"),
    "alignment": Param(f"choice:{'|'.join(ALIGNMENTS)}", None,
                       "alignment exponent of a product: sum of the operands' exponents (after "
                       "widening subnormals to float16: sum_fp16), or the exact product's "
                       "(default: sum)"),
    "acc": Param("format", None, "accumulator format: float32 or float16 (default: float32); "
                                 "int16..int32 for integer operands (default: int32)"),
    "acc_frac_bits": Param("int", None, "fraction bits of the accumulator after each step "
                                        "(default: 13 for operands of at most 8 bits into "
                                        "float32, else the format's)", 0, 23),
    "acc_rounding": Param("choice:rtz|rne", None, "rounding of each step (default: rtz)"),
    "stages": stages_param(),
    "model": Param(f"choice:{'|'.join(mma.PRESETS)}", None,
                   "a formats.mma preset: sets n, F, roundings, alignment and the accumulator, "
                   "and the promotion, K order and output around the steps (split-K is "
                   "refused)"),
    "normalization": Param("int", None, "approximate normalization: the leading-zero count and "
                                        "shift of the sum cover only this many bits below its "
                                        "top (arXiv 2408.11997; default: exact)", 1, 64),
    "product": Param(f"choice:{'|'.join(mma.PRODUCTS)}", None,
                     "how each lane multiplies: exact, or lmul (L-Mul, arXiv 2410.00907: the "
                     "fractions added with the offset 2**-l; one operand format; default: "
                     "exact)"),
    "lmul_offset": Param("int", None, "L-Mul's offset bits l (default: the paper's l(m))",
                         0, 40),
    "group": Param("int", None, "products per group g, summed exactly first (a two-level "
                                "tree; a divisor of n; default 1: none)", 1, MAX_N),
    "scale": Param("format", None, "block scale format: float8_e8m0fnu (OCP MX E8M0) or "
                                   "float8_e4m3fn read unsigned (NVFP4 UE4M3); default none"),
    "block": Param("int", None, "elements per block scale (a multiple of group dividing n; "
                                "default: 32 for E8M0, 16 otherwise)", 1, MAX_N),
    "kulisch": Param("bool", False, "accumulate the exact products in a wide fixed-point "
                                    "(Kulisch) register: c and result are the register"),
    "acc_width": Param("int", None, "Kulisch register bits (default: holds 2**16 products "
                                    "of the operand formats; a narrower one without acc_lsb "
                                    "keeps that top and cuts below)", 2,
                       mma.KULISCH_MAX_WIDTH),
    "acc_lsb": Param("int", None, "exponent of the Kulisch register's least bit (default: the "
                                  "least product exponent: nothing is cut)", -4096, 4096),
    "acc_result": Param(f"choice:{'|'.join(ACC_RESULTS)}", None,
                        "Kulisch result port: the new register (default) or it rounded once "
                        "to float32 (RNE), the last step of K"),
    "promote": Param("int", None, "promotion period in elements of K, a multiple of n: the "
                                  "unit holds a float32 main accumulator beside the step's and "
                                  "adds the step sum into it (RNE) on flush steps (default: the "
                                  "model's, else none)", 1, 1 << 16),
    "out": Param("format", None, "format of the final result: float32, bfloat16 or float16, "
                                    "the accumulator rounded to nearest even on the last step "
                                    "(default: the model's, else the accumulator's)"),
}

#: Parameters of groups and block scales (float operands only).
BLOCK_PARAMS = ("group", "scale", "block")

#: Parameters of the Kulisch accumulator (refused without ``kulisch``).
KULISCH_ONLY = ("acc_width", "acc_lsb", "acc_result")

#: Parameters a preset sets, and the model field of each.
_MODEL_FIELDS = {"n": "n", "frac_bits": "frac_bits", "term_rounding": "term_rounding",
                 "alignment": "alignment", "acc": "acc_format", "acc_frac_bits": "acc_frac_bits",
                 "acc_rounding": "acc_rounding"}


#: Parameters of float operands only (refused with integer operands).
FLOAT_ONLY = ("frac_bits", "term_rounding", "alignment", "acc_frac_bits", "acc_rounding",
              "model", "normalization", "promote", "out", "product", "lmul_offset")

#: Parameters of the lanes' multipliers (:attr:`MMAModel.product`), None: exact products.
_PRODUCT_FIELDS = ("product", "lmul_offset")


def _float_format(value: Any, what: str) -> FloatFormat:
    if isinstance(value, str):
        value = get_format(value)
    if not isinstance(value, FloatFormat):
        raise ValueError(f"{what} must be a float format (or an integer of at most "
                         f"{MAX_INT_BITS} bits), not {getattr(value, 'name', value)!r}")
    if value.bits > MAX_BITS:
        raise ValueError(f"{what} must be at most {MAX_BITS} bits wide, not {value.name} "
                         f"({value.bits} bits)")
    return value


def _operand_format(value: Any, what: str) -> FloatFormat | IntFormat:
    """A float operand format of at most 16 bits or an integer one of at most 8."""
    if isinstance(value, str):
        value = get_format(value)
    if isinstance(value, IntFormat):
        if value.bits > MAX_INT_BITS:
            raise ValueError(f"{what} must be an integer of at most {MAX_INT_BITS} bits, not "
                             f"{value.name}")
        return value
    return _float_format(value, what)


def _int_acc(value: Any) -> IntFormat:
    """The integer accumulator (None: int32)."""
    if value is None:
        value = "int32"
    if isinstance(value, str):
        value = get_format(value)
    low, high = INT_ACC_BITS
    if not (isinstance(value, IntFormat) and value.signed and low <= value.bits <= high):
        raise ValueError(f"integer operands accumulate in a signed integer of {low} to {high} "
                         f"bits (int16..int32), not {getattr(value, 'name', value)!r}")
    return value


def _int_formats(fa: FloatFormat | IntFormat, fb: FloatFormat | IntFormat
                 ) -> tuple[IntFormat, IntFormat] | None:
    """Both operand formats when both are integers, None when both are floats."""
    if isinstance(fa, IntFormat) and isinstance(fb, IntFormat):
        return fa, fb
    if isinstance(fa, IntFormat) or isinstance(fb, IntFormat):
        raise ValueError(f"a and b must both be integers or both floats, not {fa.name} x "
                         f"{fb.name} (integer x float dot products are not supported)")
    return None


def int_matmul(x: np.ndarray, w: np.ndarray, fa: IntFormat, fb: IntFormat, acc: IntFormat
               ) -> np.ndarray:
    """Accumulator codes ``(M, N)`` of ``x @ w`` (codes ``(M, K)`` of ``fa``, ``(K, N)`` of
    ``fb``) on integer dot units from a zero accumulator: the exact sum wrapped to ``acc``
    (what any chain of steps over K gives, wrapping addition being associative)."""
    xi = np.asarray(fa.to_int(np.asarray(x, dtype=np.uint64)), dtype=np.int64)
    wi = np.asarray(fb.to_int(np.asarray(w, dtype=np.uint64)), dtype=np.int64)
    return np.asarray(acc.from_int(xi @ wi)).astype(np.uint64)


def _model_value(field: str, model: mma.MMAModel) -> Any:
    value = getattr(model, field)
    if isinstance(value, FloatFormat):
        return value.name
    if isinstance(value, Rounding):
        return value.value
    return value


def _build_model(fa: FloatFormat, fb: FloatFormat, given: dict[str, Any], preset: str | None,
                 *, around: bool = False) -> mma.MMAModel:
    """The step's :class:`~arithforge.formats.mma.MMAModel` from the parameters given (None: not
    given) and the preset. ``around``: the unit builds promotion, the K order (its feed) and the
    output conversion, so a preset with them is taken (split-K is still refused)."""
    if preset is not None:
        # A preset's cuBLAS split-K table (shape_splits) describes library calls, not a unit.
        base = dataclasses.replace(mma.get_model(preset), shape_splits=())
        if base.step_kind != "fused":
            raise ValueError(f"model {preset} has step_kind {base.step_kind} (AMD CDNA3 "
                             f"MFMA), which the dot unit does not build; evaluate it with the "
                             f"tensorcore datapath")
        refused = [why for why, bad in (
            (f"promotion every {base.promote}", base.promote is not None and not around),
            (f"split-K {base.split}", base.split > 1),
            (f"k_order {base.k_order}", base.k_order != "natural" and not around),
            (f"alignment {base.alignment}", base.alignment not in ALIGNMENTS)) if bad]
        if refused and around:
            raise ValueError(
                f"model {preset} has {', '.join(refused)}, which the dot unit does not build "
                f"(split-K joins separate accumulations; use a preset without it)")
        if refused:
            raise ValueError(
                f"model {preset} has {', '.join(refused)}, which one dot step cannot express "
                f"(promotion and the K order happen around the steps, which the dot datapath does "
                f"not build yet; use a preset without them, such as h100-fp8-fastacc)")
        for pname, field in _MODEL_FIELDS.items():
            value = given.get(pname)
            want = _model_value(field, base)
            if value is not None and value != want:
                raise ValueError(f"{pname}={value} contradicts model {preset} ({pname}={want})")
        changes = {k: given[k] for k in ("normalization", *_PRODUCT_FIELDS)
                   if given.get(k) is not None}  # a window or L-Mul lanes on the preset's step
        return dataclasses.replace(base, **changes) if changes else base
    narrow = max(fa.bits, fb.bits) <= 8
    acc = given.get("acc") or "float32"
    acc_fmt = get_format(acc)
    assert isinstance(acc_fmt, FloatFormat)
    default_acc_frac = 13 if narrow and acc == "float32" else acc_fmt.man_bits
    return mma.MMAModel(
        n=4 if given.get("n") is None else given["n"],
        frac_bits=(13 if narrow else 25) if given.get("frac_bits") is None
        else given["frac_bits"],
        term_rounding=as_rounding(given.get("term_rounding") or "rtz"),
        alignment=given.get("alignment") or "sum",
        acc_format=acc_fmt,
        acc_frac_bits=default_acc_frac if given.get("acc_frac_bits") is None
        else given["acc_frac_bits"],
        acc_rounding=as_rounding(given.get("acc_rounding") or "rtz"),
        normalization=given.get("normalization"),
        product=given.get("product") or "exact", lmul_offset=given.get("lmul_offset"))


# -- around the steps: promotion, K order, output (the unit's accumulator state) ----------------

#: Output formats of the final conversion.
OUTPUTS = ("float32", "bfloat16", "float16")
_F32 = FloatFormat(8, 23)


def _around(model: mma.MMAModel, promote: Any, output: Any) -> mma.MMAModel:
    """``model`` with the unit's ``promote`` and ``output`` (None: the model's)."""
    if promote is not None:
        if isinstance(promote, bool) or not isinstance(promote, int | np.integer):
            raise TypeError(f"promote must be an integer, not {promote!r}")
        model = dataclasses.replace(model, promote=int(promote))
    if output is not None:
        out = get_format(output) if isinstance(output, str) else output
        if not isinstance(out, FloatFormat) or out.name not in OUTPUTS:
            raise ValueError(f"out must be one of {', '.join(OUTPUTS)}, not "
                             f"{getattr(out, 'name', out)!r}")
        model = dataclasses.replace(model, output=out)
    if model.promote is not None and model.acc_format != _F32:
        raise ValueError(f"promotion adds the steps into a float32 accumulator; the step's "
                         f"accumulator must be float32 too, not {model.acc_format.name}")
    return model


# -- the GEMM model -------------------------------------------------------------------------------

#: Options of the GEMM model (None: the unit's default) besides ``model``.
_OPTIONS = ("n", "frac_bits", "term_rounding", "alignment", "acc_frac_bits", "normalization",
            "promote", "product", "lmul_offset")
_TERM_ROUNDINGS = PARAMS["term_rounding"].choices or ()


def _check_kulisch_options(options: dict[str, Any]) -> None:
    """``kulisch`` (true/false), ``acc_width`` and ``acc_lsb`` of the GEMM model."""
    value = options.get("kulisch", False)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"option kulisch must be true or false, not {value!r}")
    options["kulisch"] = bool(value)
    options["acc_width"] = int_option({"acc_width": options.get("acc_width")}, "acc_width", 2,
                                      mma.KULISCH_MAX_WIDTH, none=True)
    options["acc_lsb"] = int_option({"acc_lsb": options.get("acc_lsb")}, "acc_lsb", -4096,
                                    4096, none=True)
    if not options["kulisch"]:
        given = [k for k in ("acc_width", "acc_lsb") if options[k] is not None]
        if given:
            raise ValueError(f"option {given[0]} applies to a Kulisch accumulator only "
                             f"(kulisch=true)")


def _kulisch_gemm_model(fa: FloatFormat, fb: FloatFormat, acc: FloatFormat,
                        options: Mapping[str, Any]) -> mma.MMAModel:
    """The GEMM model of Kulisch units: every product of K exactly into the register (wrapping
    past ``acc_width``), one rounding to float32 at the end (``acc`` must be float32)."""
    given = [k for k in ("model", *_OPTIONS) if k != "n" and options.get(k) is not None]
    if given:
        raise ValueError(f"option {given[0]} does not apply to a Kulisch accumulator")
    if acc.name != "float32":
        raise ValueError(f"a Kulisch register is rounded once to float32: the accumulator must "
                         f"be float32, not {acc.name!r}")
    n = options.get("n")
    width, lsb = mma.Kulisch(options.get("acc_width"), options.get("acc_lsb")).resolve(fa, fb)
    return mma.MMAModel(n=4 if n is None else int(n), kulisch=mma.Kulisch(width, lsb))


def _check_model(options: dict[str, Any]) -> dict[str, Any]:
    _check_kulisch_options(options)
    options["n"] = int_option(options, "n", 1, MAX_N, none=True)
    options["frac_bits"] = int_option(options, "frac_bits", 1, 40, none=True)
    options["acc_frac_bits"] = int_option(options, "acc_frac_bits", 0, 23, none=True)
    options["normalization"] = int_option(options, "normalization", 1, 64, none=True)
    options["promote"] = int_option(options, "promote", 1, 1 << 16, none=True)
    options["lmul_offset"] = int_option(options, "lmul_offset", 0, 40, none=True)
    for key, choices in (("term_rounding", _TERM_ROUNDINGS), ("alignment", ALIGNMENTS),
                         ("model", tuple(mma.PRESETS)), ("product", mma.PRODUCTS)):
        value = options[key]
        if value is not None and value not in choices:
            raise ValueError(f"option {key} must be one of {', '.join(choices)} (or none), not "
                             f"{value!r}")
    return options


def gemm_model(fa: FloatFormat, fb: FloatFormat, acc: FloatFormat, rounding: Rounding | str,
               options: Mapping[str, Any]) -> mma.MMAModel:
    """The :class:`~arithforge.formats.mma.MMAModel` of a GEMM on dot units: the step the unit
    with these parameters computes (``options`` as the GEMM model's: ``model`` or ``n``,
    ``frac_bits``, ... with None for the unit's defaults), into ``acc`` with ``rounding``
    (ignored with a ``model``, which sets them), its output the accumulator itself.

    Raises
    ------
    ValueError
        Parameters the unit refuses (``FormatError`` included).
    """
    if options.get("kulisch"):
        return _kulisch_gemm_model(fa, fb, acc, options)
    preset = options.get("model")
    given: dict[str, Any] = {k: options.get(k) for k in _OPTIONS}
    if preset is None:
        if acc.name not in ACCS:
            raise ValueError(f"the accumulator must be one of {', '.join(ACCS)}, not "
                             f"{acc.name!r}")
        given["acc"] = acc.name
        given["acc_rounding"] = as_rounding(rounding).value
    model = _build_model(fa, fb, given, None if preset is None else str(preset), around=True)
    if model.n > MAX_N:
        raise ValueError(f"n must be at most {MAX_N}, not {model.n}")
    promote = options.get("promote")
    if promote is None and model.promote is None:
        # No promotion: the steps chain from +0 through the accumulator, which is the output.
        return dataclasses.replace(model, output=model.acc_format)
    # Promotion (the option or the preset's): the float32 main accumulator is the output, as
    # the unit's on its last step with output float32.
    return _around(dataclasses.replace(model, output=_F32), promote, None)


def _run_int(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    """The integer GEMM model (:func:`int_matmul`)."""
    fa, fb = qx.fmt, qw.fmt
    try:
        ints = _int_formats(_operand_format(fa, "activations"), _operand_format(fb, "weights"))
        acc = _int_acc(config.acc)
        given = [k for k in FLOAT_ONLY if config.options.get(k) is not None]
        if given:
            raise ValueError(f"option {given[0]} applies to float operands only, not to "
                             f"{fa.name} x {fb.name}")
        n = int_option(config.options, "n", 1, MAX_N, none=True) if "n" in config.options \
            else None
    except ValueError as exc:
        raise ArithforgeError(f"dot: {exc}") from None
    assert ints is not None
    codes = int_matmul(qx.codes, np.asarray(qw.codes).T, ints[0], ints[1], acc)
    steps = f"n={n}" if n is not None else "n=4"
    return (np.asarray(acc.to_int(codes), dtype=np.float64),
            f"dot integer steps {steps} {fa.name}x{fb.name}->{acc.name} wrapping")


def _block_scale_format(fmt: BlockFormat, who: str = "dot") -> FloatFormat:
    """The step's ``scale_format`` of a block format's scales: E8M0 as it is; UE4M3 (the
    catalog's ``float8_ue4m3``, NVFP4's) as ``float8_e4m3fn`` codes with sign 0, the same
    bits."""
    sf = fmt.scale
    if sf.name == "float8_e8m0fnu":
        return sf
    if sf.name == "float8_ue4m3":
        out = get_format("float8_e4m3fn")
        assert isinstance(out, FloatFormat)
        return out
    raise ArithforgeError(f"{who}: block scales in the step are E8M0 or UE4M3, not {sf.name} "
                          f"({fmt.name})")


def _block_model(ea: FloatFormat, eb: FloatFormat, acc: FloatFormat, rounding: Any,
                 options: Mapping[str, Any], block: int, sf: FloatFormat) -> mma.MMAModel:
    """The GEMM model of block-scaled steps: :func:`gemm_model` of the elements (``n`` one block
    unless given) with one group per block and ``sf`` scales. ValueError when it cannot be."""
    opts = dict(options)
    if opts.get("n") is None and opts.get("model") is None:
        opts["n"] = block
    model = gemm_model(ea, eb, acc, rounding, opts)
    model = dataclasses.replace(model, group=block, block=block, scale_format=sf)
    return model


#: ``build(ea, eb, block, scale_format) -> MMAModel``: the block-scaled GEMM model of
#: :func:`block_gemm` for the operands' elements, block size and step scale format.
BlockModelBuilder = Callable[[FloatFormat, FloatFormat, int, FloatFormat], mma.MMAModel]


def block_gemm(qx: Operand, qw: Operand, build: BlockModelBuilder, who: str
               ) -> tuple[F64, mma.MMAModel]:
    """Run block-scaled operands (OCP MX, NVFP4) through the model ``build`` gives: steps of
    ``n`` lanes, each group summed exactly and scaled by its block's two scales
    (:class:`MMAModel`'s ``group``, ``block``, ``scale_format``); a per-tensor scale (NVFP4) is
    the operand's row scale, applied after the GEMM as cuBLAS's epilogue applies it. K is
    padded with zero elements (and unit scales) to whole steps. Shared by the ``dot`` and
    ``tensorcore`` datapaths; ``who`` prefixes the one-line errors."""
    fx, fw = qx.fmt, qw.fmt
    if not (isinstance(fx, BlockFormat) and isinstance(fw, BlockFormat)):
        raise ArithforgeError(f"{who}: block-scaled steps need both operands in block formats "
                              f"(mxfp8_e4m3, mxfp4_e2m1, nvfp4...), not {fx.name} x {fw.name}; "
                              f"quantize both per block")
    if fx.block_size != fw.block_size:
        raise ArithforgeError(f"{who}: both operands need one block size, not {fx.block_size} "
                              f"and {fw.block_size}")
    sfx, sfw = _block_scale_format(fx, who), _block_scale_format(fw, who)
    if sfx != sfw:
        raise ArithforgeError(f"{who}: both operands need one scale format, not "
                              f"{fx.scale.name} and {fw.scale.name}")
    block = fx.block_size
    try:
        ea = _float_format(fx.element, "activation elements")
        eb = _float_format(fw.element, "weight elements")
        model = build(ea, eb, block, sfx)
    except ValueError as exc:  # FormatError included
        raise ArithforgeError(f"{who}: {' '.join(str(exc).split())}") from None
    xa, xw = qx.codes, qw.codes
    k = np.asarray(xa.element).shape[1]
    kp = -(-k // model.n) * model.n
    one = int(np.asarray(fx.scale.encode(1.0)))

    def padded(codes: Any) -> tuple[np.ndarray, np.ndarray]:
        el = np.asarray(codes.element)
        sc = np.asarray(codes.scale)
        el = np.pad(el, ((0, 0), (0, kp - k)))
        sc = np.pad(sc, ((0, 0), (0, kp // block - sc.shape[1])), constant_values=one)
        return el, sc

    a, sa = padded(xa)
    b, sb = padded(xw)
    codes = mma.matmul(a, b.T, ea, eb, model=model, block_scale_a=sa, block_scale_b=sb.T)
    return model.output.decode(codes), model


def _run_blocks(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    """Block formats through the unit's block-scaled steps (:func:`block_gemm`; ``n`` one
    block unless given, one group per block)."""
    acc = float_acc(config, "dot")

    def build(ea: FloatFormat, eb: FloatFormat, block: int, sf: FloatFormat) -> mma.MMAModel:
        return _block_model(ea, eb, acc, config.rounding, config.options, block, sf)

    values, model = block_gemm(qx, qw, build, "dot")
    return values, f"dot block steps {model.label()}"


def _run(qx: Operand, qw: Operand, config: Config) -> tuple[F64, str]:
    if isinstance(qx.fmt, BlockFormat) or isinstance(qw.fmt, BlockFormat):
        return _run_blocks(qx, qw, config)
    if isinstance(qx.fmt, IntFormat) or isinstance(qw.fmt, IntFormat):
        if config.options.get("kulisch"):
            raise ArithforgeError(f"dot: option kulisch applies to float operands only, not to "
                                  f"{qx.fmt.name} x {qw.fmt.name}")
        return _run_int(qx, qw, config)
    acc = float_acc(config, "dot")
    fx, fw = element(qx, "dot"), element(qw, "dot")
    try:
        fa, fb = _float_format(fx, "activations"), _float_format(fw, "weights")
        model = gemm_model(fa, fb, acc, config.rounding, config.options)
        if model.product == "lmul" and fa != fb:
            raise ValueError(f"L-Mul products take one operand format, not {fa.name} x "
                             f"{fb.name}")
    except ValueError as exc:  # FormatError included
        raise ArithforgeError(f"dot: {exc}") from None
    if not (np.isfinite(qx.values).all() and np.isfinite(qw.values).all()):
        raise ArithforgeError("the dot datapath needs finite operands; quantize with "
                              "saturation")
    codes = mma.matmul(qx.codes, np.asarray(qw.codes).T, fa, fb, model=model)
    return model.output.decode(codes), f"dot steps {model.label()}"


# -- groups and block scales ------------------------------------------------------------------

def _with_blocks(model: mma.MMAModel, fa: FloatFormat, fb: FloatFormat, group: Any, scale: Any,
                 block: Any) -> mma.MMAModel:
    """``model`` with the unit's ``group``, ``scale`` and ``block`` (None: none given)."""
    if group is None and scale is None and block is None:
        return model
    for what, v in (("group", group), ("block", block)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)):
            raise TypeError(f"{what} must be an integer, not {v!r}")
    sf: FloatFormat | None = None
    if scale is not None:
        sf_any = get_format(scale) if isinstance(scale, str) else scale
        if not isinstance(sf_any, FloatFormat):
            raise ValueError(f"scale must be a float format (float8_e8m0fnu, float8_e4m3fn), "
                             f"not {getattr(sf_any, 'name', sf_any)!r}")
        sf = sf_any
        if block is None:
            block = 32 if sf.man_bits == 0 else 16
    elif block is not None:
        raise ValueError("block needs a scale format (scale=float8_e8m0fnu or float8_e4m3fn)")
    try:
        out = dataclasses.replace(model, group=1 if group is None else int(group),
                                  block=None if block is None else int(block), scale_format=sf)
    except FormatError as exc:
        raise ValueError(str(exc)) from None
    if out.blocked and out.alignment == "sum_fp16":
        raise ValueError("groups and block scales take alignment sum or normalized")
    return out


def _group_term_extra(m: mma.MMAModel) -> int:
    """Bits a group term needs above the plain step's ``F + 3``: ``bits(g - 1)`` for a sum of
    ``g`` products, 2 for a scale product with significands (below 4)."""
    sx = 2 if m.scale_format is not None and m.scale_format.man_bits else 0
    return (m.group - 1).bit_length() + sx


def _words(arr: Any, width: int) -> np.ndarray:
    a = np.asarray(arr).astype(np.uint64)
    return a.reshape(-1, 1) if width <= 64 else a.reshape(-1, (width + 63) // 64)


def _get_fields(arr: Any, width: int, lo: int, count: int, bits: int) -> np.ndarray:
    """``count`` fields of ``bits`` from bit ``lo`` of a packed port: ``(N, count)`` int64."""
    words = _words(arr, width)
    out = np.zeros((words.shape[0], count), dtype=np.int64)
    mask = np.uint64((1 << bits) - 1)
    for k in range(count):
        word, shift = divmod(lo + k * bits, 64)
        v = words[:, word] >> np.uint64(shift)
        if shift + bits > 64:
            v |= words[:, word + 1] << np.uint64(64 - shift)
        out[:, k] = (v & mask).astype(np.int64)
    return out


def _put_fields(words: np.ndarray, fields: Any, lo: int, bits: int) -> None:
    f = np.asarray(fields).astype(np.uint64)
    for k in range(f.shape[1]):
        word, shift = divmod(lo + k * bits, 64)
        words[:, word] |= f[:, k] << np.uint64(shift)
        if shift + bits > 64:
            words[:, word + 1] |= f[:, k] >> np.uint64(64 - shift)


@dataclass(frozen=True)
class GroupGeometry:
    """Widths of a group of the two-level tree (``arithforge.hdl.dot``).

    A group's products are placed in an exact fixed-point word relative to the group's
    largest exponent sum ``M``: product ``k`` shifted left by ``SP - (M - e_k)`` (``SP`` the
    largest possible ``M - e_k``); the word's magnitude times the scale significands' product
    is ``X``, with ``frac`` fraction bits relative to ``2**(M + scale exponents)``, which
    enters the term aligner as a product does (``B``, ``D`` as :class:`DotGeometry`'s).
    """

    SP: int     #: largest exponent distance within a group
    SPW: int    #: bits of a placement shift
    GW: int     #: magnitude bits of the exact group sum
    SS: int     #: bits of the scale significands' product (0: no scales)
    XW: int     #: bits of X
    frac: int   #: fraction bits of X
    B: int
    D: int
    YW: int     #: shifter width
def _kulisch_given(kulisch: Any, width: Any, lsb: Any, result: Any) -> str:
    """The first Kulisch parameter given (``kulisch`` true, the others not None), else ''."""
    if not isinstance(kulisch, bool | np.bool_):
        raise TypeError(f"kulisch must be a bool, not {kulisch!r}")
    if kulisch:
        return "kulisch"
    for name, v in (("acc_width", width), ("acc_lsb", lsb), ("acc_result", result)):
        if v is not None:
            return name
    return ""


def _kulisch_formats(width: int, lsb: int, result: str) -> dict[str, Any]:
    """Formats of a Kulisch unit's ports: the register as a signed integer (its value times
    ``2**lsb``; registers over 62 bits have none), the result float32 or the register."""
    reg = {"c": IntFormat(width)} if width <= 62 else {}
    if result == "float32":
        return {**reg, "result": get_format("float32")}
    return {**reg, **({"result": reg["c"]} if reg else {})}


@dataclass(frozen=True)
class DotGeometry:
    """Widths of the step (``arithforge.hdl.dot`` gives the argument).

    A term ``X`` (``frac`` fraction bits, exponent ``e``) is placed in a word ``X << B`` and
    shifted right by ``E - e + D``: the word's lowest bit above position 1 is then ``2**(E -
    F)`` and position 0 is the guard bit, the shifter's sticky the rest.
    """

    P: int      #: product significand width
    pfrac: int  #: product fraction bits
    B: int      #: product word: significand << B
    D: int      #: product shift offset
    YW: int     #: product shifter width
    mc: int     #: accumulator fraction bits (its significand has mc + 1)
    Bc: int
    Dc: int
    YWc: int
    TW: int     #: term magnitude width (after its rounding)
    SW: int     #: signed sum width
    p: int      #: accumulator precision (acc_frac_bits + 1)
    OW: int     #: normalizer output width


class DotUnit(Unit):
    """One tensor-core step ``round(c + sum_k a_k b_k)`` (module docstring): the unit of
    ``arithforge.hdl.dot.DotProduct``.

    With integer operands (both ``a`` and ``b`` integers of at most 8 bits) the step is ``c +
    sum_k a_k b_k`` exact, wrapped to the integer accumulator ``acc`` (int16..int32, default
    int32); the float-only parameters (:data:`FLOAT_ONLY`) are then refused when given.

    Parameters
    ----------
    a, b : FloatFormat, IntFormat or str
        Operand formats, floats of at most 16 bits or integers of at most 8 (``b`` defaults to
        ``a``).
    n, frac_bits, term_rounding, alignment, acc, acc_frac_bits, acc_rounding
        The step (:class:`~arithforge.formats.mma.MMAModel`); None: the model's or the default.
    stages : int
        Pipeline registers (the latency).
    model : str, optional
        A :data:`~arithforge.formats.mma.PRESETS` name.
    normalization : int, optional
        Approximate normalization window ``W`` (module docstring); None: exact.
    group, scale, block : optional
        Groups summed exactly first and block scales (module docstring); None: none.
    """

    name: ClassVar[str] = "dot"
    cli_params: ClassVar[dict[str, Param]] = PARAMS

    _CUTS: ClassVar[tuple[str, ...]] = ("align", "sum", "product", "normalize")
    #: Cut points of the integer step: after the products, after the adder tree.
    _INT_CUTS: ClassVar[tuple[str, ...]] = ("product", "sum")
    #: Cut points of the Kulisch step: after the products, after the register's adder tree,
    #: after the normalizer of the float32 rounding (``acc_result=float32``).
    _KULISCH_CUTS: ClassVar[tuple[str, ...]] = ("product", "sum", "normalize")

    def __init__(self, a: FloatFormat | IntFormat | str,
                 b: FloatFormat | IntFormat | str | None = None, *,
                 n: int | None = None, frac_bits: int | None = None,
                 term_rounding: str | None = None, alignment: str | None = None,
                 acc: FloatFormat | IntFormat | str | None = None,
                 acc_frac_bits: int | None = None, acc_rounding: str | None = None,
                 stages: int = 0, model: str | None = None, group: int | None = None,
                 scale: FloatFormat | str | None = None, block: int | None = None,
                 normalization: int | None = None, kulisch: bool = False,
                 acc_width: int | None = None, acc_lsb: int | None = None,
                 acc_result: str | None = None, promote: int | None = None,
                 out: FloatFormat | str | None = None, product: str | None = None,
                 lmul_offset: int | None = None) -> None:
        fa = _operand_format(a, "a")
        fb = _operand_format(a if b is None else b, "b")
        if isinstance(acc, FloatFormat | IntFormat):
            acc = acc.name
        ints = _int_formats(fa, fb)
        blocks = {"group": group, "scale": scale, "block": block}
        if ints is not None and any(v is not None for v in blocks.values()):
            which = next(k for k, v in blocks.items() if v is not None)
            raise ValueError(f"{which} applies to float operands only, not to integer "
                             f"{ints[0].name} x {ints[1].name}")
        self._kul: tuple[int, int, str] | None = None
        kul_given = _kulisch_given(kulisch, acc_width, acc_lsb, acc_result)
        if ints is not None and kul_given:
            raise ValueError(f"{kul_given} applies to float operands only, not to integer "
                             f"{ints[0].name} x {ints[1].name}")
        if kulisch and any(v is not None for v in blocks.values()):
            which = next(k for k, v in blocks.items() if v is not None)
            raise ValueError(f"{which} and a Kulisch accumulator are not built together: the "
                             f"register takes exact products without groups or block scales")
        if kulisch:
            assert isinstance(fa, FloatFormat)
            assert isinstance(fb, FloatFormat)
            self._init_kulisch(fa, fb, n, stages, acc_width, acc_lsb, acc_result, {
                "frac_bits": frac_bits, "term_rounding": term_rounding, "alignment": alignment,
                "acc": acc, "acc_frac_bits": acc_frac_bits, "acc_rounding": acc_rounding,
                "model": model, "normalization": normalization, "promote": promote,
                "out": out, "product": product, "lmul_offset": lmul_offset})
            return
        if kul_given:
            raise ValueError(f"{kul_given} applies to a Kulisch accumulator only (kulisch=true)")
        if ints is not None:
            self._init_int(ints, n, acc, stages, {
                "frac_bits": frac_bits, "term_rounding": term_rounding, "alignment": alignment,
                "acc_frac_bits": acc_frac_bits, "acc_rounding": acc_rounding, "model": model,
                "normalization": normalization, "promote": promote, "out": out,
                "product": product, "lmul_offset": lmul_offset})
            return
        assert isinstance(fa, FloatFormat)
        assert isinstance(fb, FloatFormat)
        self._fa, self._fb = fa, fb
        self._int: tuple[IntFormat, IntFormat, IntFormat] | None = None
        given = {"n": n, "frac_bits": frac_bits, "term_rounding": term_rounding,
                 "alignment": alignment, "acc": acc, "acc_frac_bits": acc_frac_bits,
                 "acc_rounding": acc_rounding, "normalization": normalization,
                 "product": product, "lmul_offset": lmul_offset}
        for what in ("n", "frac_bits", "acc_frac_bits", "normalization", "lmul_offset"):
            v = given[what]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)):
                raise TypeError(f"{what} must be an integer, not {v!r}")
        if alignment is not None and alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, not "
                             f"{alignment!r}")
        if acc is not None and acc not in ACCS:
            raise ValueError(f"acc must be one of {', '.join(ACCS)}, not {acc!r}")
        if product is not None and product not in mma.PRODUCTS:
            raise ValueError(f"product must be one of {', '.join(mma.PRODUCTS)}, not "
                             f"{product!r}")
        if product == "lmul" and fa != fb:
            raise ValueError(f"L-Mul lanes take one operand format, not {fa.name} x {fb.name}")
        if model is not None and model not in mma.PRESETS:
            mma.get_model(str(model))  # the error naming the close presets
        try:
            step = _build_model(self._fa, self._fb, given, model, around=True)
            # Without a model the result is the accumulator's format unless out says.
            self._model = _around(step, promote, step.acc_format if out is None
                                  and model is None else out)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        if self._model.n > MAX_N:
            raise ValueError(f"n must be at most {MAX_N}, not {self._model.n}")
        self._model = _with_blocks(self._model, fa, fb, group, scale, block)
        mdl = self._model
        if mdl.blocked and (mdl.promote is not None or mdl.k_order != "natural"
                            or mdl.output != mdl.acc_format):
            raise ValueError("promotion, a K order and an output conversion are not built with "
                             "groups or block scales (the scale codes follow the lanes where the "
                             "control field would be): drop promote and out (or use a preset "
                             "without them), or group and scale")
        self._n = self._model.n
        self._preset = model
        self._stages = check_stages(stages)
        self._facc = self._model.acc_format
        self._ready()

    def _init_int(self, ints: tuple[IntFormat, IntFormat], n: int | None, acc: str | None,
                  stages: int, float_only: dict[str, Any]) -> None:
        given = [k for k in FLOAT_ONLY if float_only[k] is not None]
        if given:
            raise ValueError(f"{given[0]} applies to float operands only, not to integer "
                             f"{ints[0].name} x {ints[1].name}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer)):
            raise TypeError(f"n must be an integer, not {n!r}")
        n = 4 if n is None else int(n)
        if not 1 <= n <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N}, not {n}")
        self._int = (ints[0], ints[1], _int_acc(acc))
        self._n = n
        self._preset = None
        self._stages = check_stages(stages)
        self._ready()

    def _init_kulisch(self, fa: FloatFormat, fb: FloatFormat, n: int | None, stages: int,
                      width: int | None, lsb: int | None, result: str | None,
                      float_step: dict[str, Any]) -> None:
        """A Kulisch unit: the exact products added into a ``width``-bit register."""
        given = [k for k, v in float_step.items() if v is not None]
        if given:
            raise ValueError(f"{given[0]} does not apply to a Kulisch accumulator (the products "
                             f"enter the register exactly; its parameters are acc_width, "
                             f"acc_lsb and acc_result)")
        for what, v in (("n", n), ("acc_width", width), ("acc_lsb", lsb)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)):
                raise TypeError(f"{what} must be an integer, not {v!r}")
        n = 4 if n is None else int(n)
        if not 1 <= n <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N}, not {n}")
        result = "register" if result is None else result
        if result not in ACC_RESULTS:
            raise ValueError(f"acc_result must be one of {', '.join(ACC_RESULTS)}, not "
                             f"{result!r}")
        try:
            w, low = mma.Kulisch(width, lsb).resolve(fa, fb)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        self._fa, self._fb = fa, fb
        self._int = None
        self._kul = (w, low, result)
        self._model = mma.MMAModel(n=n, kulisch=mma.Kulisch(w, low))
        self._n = n
        self._preset = None
        self._stages = check_stages(stages)
        self._facc = FloatFormat(8, 23)  # float32: the format of the one final rounding
        self._ready()

    @classmethod
    def from_params(cls, **p: Any) -> Self:
        return cls(p.pop("a"), p.pop("b", None), **p)

    @property
    def kulisch_cuts(self) -> tuple[str, ...]:
        """Cut points of a Kulisch unit, by priority (``normalize`` with a float32 result)."""
        assert self._kul is not None
        return self._KULISCH_CUTS if self._kul[2] == "float32" else self._KULISCH_CUTS[:2]

    @property
    def kulisch(self) -> tuple[int, int, str] | None:
        """``(width, lsb, acc_result)`` of a Kulisch unit's register, else None."""
        return self._kul

    # -- facts ----------------------------------------------------------------------------------
    @property
    def model(self) -> mma.MMAModel:
        """The step as a :class:`~arithforge.formats.mma.MMAModel` (float operands only)."""
        if self._int is not None:
            raise ValueError("an integer dot unit has no MMAModel (its step is exact)")
        return self._model

    @property
    def integer(self) -> bool:
        """Whether the operands are integers."""
        return self._int is not None

    @property
    def n(self) -> int:
        """Products per step."""
        return self._n

    # -- around the steps: promotion, K order, output ---------------------------------------------
    @property
    def promote(self) -> int | None:
        """Promotion period in elements of K (None: none)."""
        return None if self._int is not None else self._model.promote

    @property
    def converts(self) -> bool:
        """Whether the last step puts the ``out`` code in the result: the accumulator
        rounded to another format, or (with promotion) the main accumulator's code."""
        return self._int is None and (self._model.output != self._facc
                                      or self._model.promote is not None)

    @property
    def control_bits(self) -> int:
        """Width of the step's control field at the top of ``a`` (above the ``n`` lanes):
        ``flush`` (with promotion), then ``last`` (with an output conversion)."""
        return int(self.promote is not None) + int(self.converts)

    @property
    def k_permutation(self) -> tuple[int, ...] | None:
        """Order of K within blocks of its length in which the feed streams the products
        (``k_order``; None: natural)."""
        return None if self._int is not None else mma.K_ORDERS[self._model.k_order]

    @property
    def k_block(self) -> int:
        """The feed pads K with zero codes to a multiple of this: ``n``, the promotion period
        and the K-order block."""
        blk = self._n
        for extra in (self.promote, len(self.k_permutation or ())):
            if extra:
                blk = int(np.lcm(blk, extra))
        return blk

    def step_control(self, steps: int) -> np.ndarray:
        """The control field of each of ``steps`` steps of one output's chain (K padded to
        :attr:`k_block`): ``flush`` every ``promote // n`` steps, ``last`` on the final step."""
        k = np.arange(steps)
        ctrl = np.zeros(steps, dtype=np.uint64)
        if self.promote is not None:
            ctrl |= ((k + 1) % (self.promote // self._n) == 0).astype(np.uint64)
        if self.converts:
            ctrl |= (k == steps - 1).astype(np.uint64) << np.uint64(int(self.promote
                                                                         is not None))
        return ctrl

    @property
    def _state_widths(self) -> tuple[int, int]:
        """``(partial, main)`` widths of the accumulator state (``main`` 0: no promotion)."""
        return self._facc.bits, 32 if self.promote is not None else 0

    @property
    def state_width(self) -> int:
        """Width of ``c`` and the result: the step accumulator (low bits), the float32 main
        accumulator above it with promotion, wide enough for an output code."""
        part, main = self._state_widths
        out = self._model.output.bits if self.converts else 0
        return max(part + main, out)

    @property
    def int_formats(self) -> tuple[IntFormat, IntFormat, IntFormat]:
        """The formats of A, B and the accumulator of an integer unit."""
        if self._int is None:
            raise ValueError("a float dot unit has no integer formats")
        return self._int

    @property
    def operands(self) -> tuple[str, ...]:
        return ("a", "b", "c")

    def _lane_formats(self) -> tuple[FloatFormat | IntFormat, FloatFormat | IntFormat,
                                     FloatFormat | IntFormat]:
        """The formats of an A lane, a B lane and the accumulator."""
        if self._int is not None:
            return self._int
        return self._fa, self._fb, self._facc

    @property
    def operand_widths(self) -> dict[str, int]:
        if self._kul is not None:
            return {"a": self._n * self._fa.bits, "b": self._n * self._fb.bits,
                    "c": self._kul[0]}
        n = self._n
        fa, fb, fc = self._lane_formats()
        extra = self._scale_bits()
        if self._int is not None:
            return {"a": n * fa.bits, "b": n * fb.bits, "c": fc.bits}
        return {"a": n * fa.bits + extra + self.control_bits, "b": n * fb.bits + extra,
                "c": self.state_width}

    @property
    def block_scales(self) -> tuple[int, int, int] | None:
        """``(block, bits, one)`` of the block scale codes that ride after the lanes of ``a``
        and of ``b`` (one per ``block`` lanes, ``bits`` each, in lane order; ``one`` the code of
        1.0); None without scales."""
        if not self._scale_bits():
            return None
        m = self._model
        assert m.block is not None
        assert m.scale_format is not None
        one = int(np.asarray(m.scale_format.encode(np.array([1.0]), "rne")).reshape(-1)[0])
        return m.block, m.scale_format.bits, one

    def _scale_bits(self) -> int:
        """Bits of the block scale codes after the lanes of ``a`` (and ``b``); 0 without."""
        if self._int is not None or self._model.scale_format is None:
            return 0
        assert self._model.block is not None
        return self._n // self._model.block * self._model.scale_format.bits

    @property
    def result_width(self) -> int:
        if self._kul is not None:
            return 32 if self._kul[2] == "float32" else self._kul[0]
        if self._int is not None:
            return self._lane_formats()[2].bits
        return self.state_width

    @property
    def latency(self) -> int:
        return self._stages

    @property
    def formats(self) -> dict[str, Any]:
        if self._kul is not None:
            return _kulisch_formats(*self._kul)
        fc = self._lane_formats()[2]
        if self._int is None and self.control_bits:
            return {}  # c and the result hold the accumulator state (describe()["state"])
        return {"c": fc, "result": fc}

    @property
    def exp_width(self) -> int:
        """Bits of the exponent signals that vary: the signed width of every exponent the step
        computes (the products' and the accumulator's, and positions down to the widest word
        below them). The hardware carries :data:`EXP_BITS` bits; synthesis folds the rest,
        which narrow formats leave constant."""
        g = self.geometry
        fa, fb, fc = self._fa, self._fb, self._facc
        hi = max(fa.emax + fb.emax, fc.emax) + 2
        lo = min(fa.emin + fb.emin, fc.emin) - max(g.YW, g.YWc, g.SW, g.OW)
        return min(EXP_BITS, max(hi.bit_length(), (-lo - 1).bit_length()) + 1)

    @property
    def window(self) -> int:
        """Bits the sum's leading-zero count covers below its top: the approximate normalizer's
        window, or the whole sum register (exact normalization)."""
        w = self._model.normalization
        sw = self.geometry.SW
        return sw if w is None else min(w, sw)

    @property
    def geometry(self) -> DotGeometry:
        m = self._model
        fa, fb = self._fa, self._fb
        f = m.frac_bits
        pfrac = mma.product_frac_bits(fa, fb, m)
        # An L-Mul product's significand lies in [1, 2) at its exponent.
        P = fa.precision + fb.precision if m.product == "exact" else pfrac + 1
        # The shift E - e is at least 0 (sum), at least -pfrac (normalized: a product whose
        # leading bit lies below its exponent may set E).
        low = pfrac if m.alignment == "normalized" else 0
        B = max(0, 1 + f - pfrac + low)
        mc = self._facc.man_bits
        Bc = max(0, 1 + f - mc)
        tw = f + 3 + _group_term_extra(m)
        sw = tw + 1 + (m.n // m.group + 1).bit_length()
        p = m.acc_frac_bits + 1
        return DotGeometry(P=P, pfrac=pfrac, B=B, D=B - 1 - f + pfrac, YW=P + B, mc=mc, Bc=Bc,
                           Dc=Bc - 1 - f + mc, YWc=mc + 1 + Bc, TW=tw, SW=sw, p=p,
                           OW=sw + p + 1)

    @property
    def group_geometry(self) -> GroupGeometry:
        """Widths of a group (:class:`GroupGeometry`) of a unit with groups or block scales."""
        m = self._model
        fa, fb = self._fa, self._fb
        f = m.frac_bits
        pfrac = fa.man_bits + fb.man_bits
        sp = (fa.emax - fa.emin) + (fb.emax - fb.emin)
        gw = fa.precision + fb.precision + sp + (m.group - 1).bit_length()
        sf = m.scale_format
        ss = 0 if sf is None else 2 * sf.precision
        sman = 0 if sf is None else sf.man_bits
        frac = sp + pfrac + 2 * sman
        low = pfrac if m.alignment == "normalized" else 0
        xw = gw + ss
        b = max(0, 1 + f - frac + low)
        return GroupGeometry(SP=sp, SPW=max(1, sp.bit_length()), GW=gw, SS=ss, XW=xw,
                             frac=frac, B=b, D=b - 1 - f + frac, YW=xw + b)

    def split_scales(self, a: np.ndarray, b: np.ndarray
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Block scale codes ``(N, n / block)`` of packed ``a`` and ``b`` (None without)."""
        if not self._scale_bits():
            return None, None
        m = self._model
        assert m.scale_format is not None
        assert m.block is not None
        nb, sb = self._n // m.block, m.scale_format.bits
        w = self.operand_widths
        return (_get_fields(a, w["a"], self._n * self._fa.bits, nb, sb),
                _get_fields(b, w["b"], self._n * self._fb.bits, nb, sb))

    def _join_scales(self, la: np.ndarray, lb: np.ndarray, sa: np.ndarray | None,
                     sb: np.ndarray | None) -> dict[str, np.ndarray]:
        """Port codes of lanes and block scales (None: every scale 1.0)."""
        m = self._model
        sf = m.scale_format
        assert sf is not None
        assert m.block is not None
        nb = self._n // m.block
        one = int(np.asarray(sf.encode(np.array([1.0]), "rne")).reshape(-1)[0])
        out = {}
        for name, lanes, sc, fmt in (("a", la, sa, self._fa), ("b", lb, sb, self._fb)):
            width = self.operand_widths[name]
            lanes = np.asarray(lanes)
            words = np.zeros((lanes.shape[0], (width + 63) // 64), dtype=np.uint64)
            _put_fields(words, lanes, 0, fmt.bits)
            sc = np.full((lanes.shape[0], nb), one) if sc is None else np.asarray(sc)
            _put_fields(words, sc, self._n * fmt.bits, sf.bits)
            out[name] = words[:, 0].copy() if width <= 64 else words
        return out

    def _scale_draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Scale codes: mostly moderate (exponents within +-12), a sixteenth each of the
        largest, the smallest and uniform codes, 1/256 NaN; sign 0."""
        sf = self._model.scale_format
        if sf is None:
            return np.zeros(shape, dtype=np.int64)
        top = (1 << sf.mag_bits) - 1  # the NaN code's magnitude (both scale formats are FN)
        if sf.man_bits == 0:
            mid = int(-sf.emin)
            codes = rng.integers(mid - 12, mid + 13, size=shape)
        else:
            e = rng.integers(-12, 9, size=shape).clip(sf.emin - 1, sf.emax) - sf.emin + 1
            codes = (e << sf.man_bits) + rng.integers(0, 1 << sf.man_bits, size=shape)
        kind = rng.integers(0, 256, size=shape)
        codes = np.where(kind < 16, top - 1, codes)
        codes = np.where((kind >= 16) & (kind < 32), 0, codes)
        codes = np.where((kind >= 32) & (kind < 48), rng.integers(0, top, size=shape), codes)
        codes = np.where(kind == 255, top, codes)
        return codes.astype(np.int64)

    def _block_cases(self, rng: np.random.Generator, base: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
        """``base`` vectors (their scales 1.0) with block scales drawn (:meth:`_scale_draw`),
        and in an eighth of them every scale 1.0, an eighth one group's lanes zero (an all-zero
        block), an eighth group 1 cancelling group 0 (equal scales) and an eighth (with scales)
        the accumulator near minus the scaled products' sum."""
        m = self._model
        la, lb = self.split(base["a"], base["b"])
        la, lb = la.copy(), lb.copy()
        rows, g = la.shape[0], m.group
        nb = self._n // (m.block or self._n)
        sa, sb = self._scale_draw(rng, (rows, nb)), self._scale_draw(rng, (rows, nb))
        kind = rng.integers(0, 8, size=rows)
        if m.scale_format is not None:
            one = int(np.asarray(m.scale_format.encode(np.array([1.0]), "rne")).reshape(-1)[0])
            sa[kind == 0] = one
            sb[kind == 0] = one
        la[kind == 1, :g] = 0
        pick = (kind == 2) & (self._n >= 2 * g)
        if pick.any():
            la[pick, g:2 * g] = self._negate(self._fa, la[pick, :g].astype(np.uint64))
            lb[pick, g:2 * g] = lb[pick, :g]
            if m.block is not None and m.block == g and nb >= 2:
                sa[pick, 1] = sa[pick, 0]
                sb[pick, 1] = sb[pick, 0]
        la, lb = la.astype(np.uint64), lb.astype(np.uint64)
        ports = self.join(la, lb, sa, sb) if self._scale_bits() else self.join(la, lb)
        c = base["c"].copy()
        near = kind == 3
        if near.any() and m.scale_format is not None:
            # The accumulator near minus the scaled products' sum (cancellation, shifts past F).
            sf, block = m.scale_format, m.block or self._n
            with np.errstate(all="ignore"):
                scale = np.repeat(sf.decode(sa[near]) * sf.decode(sb[near]), block, axis=1)
                total = (self._fa.decode(la[near]) * self._fb.decode(lb[near]) * scale).sum(-1)
                total = total * (1 + rng.integers(-3, 4, size=total.shape) * np.ldexp(
                    1.0, -rng.integers(1, 30, size=total.shape)))
                total = np.where(np.isfinite(total), -total, 0.0)
            c[near] = np.asarray(self._facc.encode(total, "rtz", saturate=True)
                                 ).astype(np.uint64)
        return {**ports, "c": c}

    def _block_exhaustive(self) -> dict[str, np.ndarray]:
        """Every finite lane code of every lane of a and b, with every pair of block scales of
        a bounded set (the smallest, 0.5, 1, 2, the largest and NaN: of E8M0 codes 0, 126,
        127, 128, 254, 255; of another scale format its codes of 0.5, 1, 2 and its zero,
        largest and NaN) on all blocks alike, against the accumulators +0 and -1.5; at most
        2**26 vectors."""
        m = self._model
        n, fa, fb, fc = self._n, self._fa, self._fb, self._facc
        sf = m.scale_format
        if sf is None:
            scales = np.zeros(1, dtype=np.uint64)
        else:
            top = (1 << sf.mag_bits) - 1
            mid = np.asarray(sf.encode(np.array([0.5, 1.0, 2.0]), "rne")).astype(np.uint64)
            scales = np.unique(np.concatenate([[0], mid, [top - 1, top]])
                               ).astype(np.uint64)
        accs = np.asarray(fc.encode(np.array([0.0, -1.5]), "rne")).astype(np.uint64)
        count = (1 << (n * (fa.bits + fb.bits))) * len(scales) ** 2 * len(accs)
        if count > 1 << _cases.EXHAUSTIVE_LIMIT_BITS:
            raise DatapathError(
                f"exhaustive vectors must number at most 2**{_cases.EXHAUSTIVE_LIMIT_BITS}, not "
                f"{count}; use random or corner vectors")
        cols = _cases.cross(*([np.arange(1 << fa.bits, dtype=np.uint64)] * n
                              + [np.arange(1 << fb.bits, dtype=np.uint64)] * n
                              + [scales, scales, accs]))
        la = np.stack(cols[:n], axis=1)
        lb = np.stack(cols[n:2 * n], axis=1)
        keep = self._finite(fa, la).all(1) & self._finite(fb, lb).all(1)
        c = cols[-1][keep]
        if sf is None:
            return {**self.join(la[keep], lb[keep]), "c": c}
        assert m.block is not None
        nb = n // m.block
        sa = np.repeat(cols[2 * n][keep][:, None], nb, 1)
        sb = np.repeat(cols[2 * n + 1][keep][:, None], nb, 1)
        return {**self.join(la[keep], lb[keep], sa, sb), "c": c}

    def describe(self) -> dict[str, Any]:
        if self._kul is not None:
            return self._kulisch_describe()
        if self._int is not None:
            fa, fb, fc = self._int
            return {"datapath": self.name, "a": fa.name, "b": fb.name, "n": self._n,
                    "frac_bits": None, "term_rounding": None, "alignment": None,
                    "acc": fc.name, "acc_frac_bits": None, "acc_rounding": None,
                    "model": None, "normalization": None, "stages": self._stages,
                    "latency": self.latency,
                    "label": self.int_label(),
                    "formats": {k: v.name for k, v in self.formats.items()},
                    "element_formats": {"a": fa.name, "b": fb.name}}
        m = self._model
        return {"datapath": self.name, "a": self._fa.name, "b": self._fb.name, "n": m.n,
                "frac_bits": m.frac_bits, "term_rounding": m.term_rounding.value,
                "alignment": m.alignment, "acc": self._facc.name,
                "acc_frac_bits": m.acc_frac_bits, "acc_rounding": m.acc_rounding.value,
                "model": self._preset, "normalization": m.normalization, "stages": self._stages,
                "latency": self.latency,
                "label": m.label(), "formats": {k: v.name for k, v in self.formats.items()},
                "element_formats": {"a": self._fa.name, "b": self._fb.name},
                **self._describe_blocks(), **self._describe_around(),
                **({} if m.product == "exact" else
                   {"product": m.product, "lmul_offset": m.lmul_offset})}

    def _describe_blocks(self) -> dict[str, Any]:
        m = self._model
        if not m.blocked:
            return {}
        return {"group": m.group, "block": m.block,
                "scale": None if m.scale_format is None else m.scale_format.name}

    def _describe_around(self) -> dict[str, Any]:
        """Promotion, K order, output and the layout of the state and control fields."""
        m = self._model
        part, main = self._state_widths
        ctrl = {}
        if self.promote is not None:
            ctrl["flush"] = m.n * self._fa.bits
        if self.converts:
            ctrl["last"] = m.n * self._fa.bits + int(self.promote is not None)
        return {"promote": m.promote, "k_order": m.k_order, "output": m.output.name,
                "state": {"partial": [0, part], **({"main": [part, part + main]} if main
                                                   else {})},
                "control": ctrl}

    # -- reference and vectors ------------------------------------------------------------------
    def int_label(self) -> str:
        """A short label of an integer step."""
        fa, fb, fc = self.int_formats
        return f"int n={self._n} {fa.name}x{fb.name}->{fc.name} wrap"

    def split(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lane codes ``(N, n)`` of packed ``a`` and ``b`` port codes (block scales after the
        lanes are left out: :meth:`split_scales`)."""
        n, w = self._n, self.operand_widths
        fa, fb, _ = self._lane_formats()
        if self._scale_bits():
            return (_get_fields(a, w["a"], 0, n, fa.bits), _get_fields(b, w["b"], 0, n, fb.bits))
        return (unpack_fields(a, w["a"], n, fa.bits), unpack_fields(b, w["b"], n, fb.bits))

    def _stack(self, rows: list[tuple[np.ndarray, np.ndarray, Any]]) -> dict[str, np.ndarray]:
        """Ports of the ``(lanes a, lanes b, accumulator)`` row groups, stacked in order."""
        return {**self.join(np.concatenate([r[0] for r in rows]),
                            np.concatenate([r[1] for r in rows])),
                "c": np.concatenate([np.asarray(r[2]) for r in rows])}

    def join(self, a: np.ndarray, b: np.ndarray, scale_a: np.ndarray | None = None,
             scale_b: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Port codes of lane codes ``(N, n)`` (and block scale codes ``(N, n / block)``,
        required with block scales)."""
        w = self.operand_widths
        fa, fb, _ = self._lane_formats()
        if self._scale_bits():
            return self._join_scales(a, b, scale_a, scale_b)
        return {"a": pack_fields(a, w["a"], fa.bits), "b": pack_fields(b, w["b"], fb.bits)}

    def reference(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        la, lb = self.split(a, b)
        if self._kul is not None:
            return self._kulisch_reference(la, lb, c)
        if self._int is not None:
            fa, fb, fc = self._int
            prods = (np.asarray(fa.to_int(la), dtype=np.int64)
                     * np.asarray(fb.to_int(lb), dtype=np.int64))
            total = np.asarray(fc.to_int(np.asarray(c, dtype=np.uint64)), dtype=np.int64) \
                + prods.sum(axis=-1)
            return np.asarray(fc.from_int(total)).astype(np.uint64)
        if self.control_bits:
            return self._step_around(la, lb, a, c)
        sa, sb = self.split_scales(a, b)
        codes = mma.step(la, lb, np.asarray(c, dtype=np.int64), self._fa, self._fb,
                         model=self._model, block_scale_a=sa, block_scale_b=sb)
        return np.asarray(codes).astype(np.uint64)

    # -- around the steps: the reference and the vectors of the state ---------------------------
    def control_field(self, a: np.ndarray) -> np.ndarray:
        """The control field (``flush``, ``last``) of packed ``a`` port codes."""
        width = self.operand_widths["a"]
        arr = np.asarray(a, dtype=np.uint64)
        words = arr.reshape(-1, 1) if width <= 64 else arr.reshape(-1, (width + 63) // 64)
        word, shift = divmod(self._n * self._fa.bits, 64)
        v = words[:, word] >> np.uint64(shift)
        if shift + self.control_bits > 64:
            v = v | (words[:, word + 1] << np.uint64(64 - shift))
        return v & np.uint64((1 << self.control_bits) - 1)

    def _step_around(self, la: np.ndarray, lb: np.ndarray, a: np.ndarray, c: np.ndarray
                     ) -> np.ndarray:
        """One step with the promotion and the output conversion around it (module
        docstring): the step on the partial accumulator; ``flush``: ``main <- f32_add_rne(main,
        step)``, ``partial <- +0``; ``last``: the result is ``out``'s code of ``main`` (or of
        the step, without promotion), rounded to nearest even."""
        part_bits, _ = self._state_widths
        c = np.asarray(c, dtype=np.uint64).reshape(-1)
        ctrl = self.control_field(a)
        partial = c & np.uint64((1 << part_bits) - 1)
        step = np.asarray(mma.step(la, lb, partial.astype(np.int64), self._fa, self._fb,
                                   model=self._model)).astype(np.uint64)
        state, value, vfmt = step, step, self._facc
        if self.promote is not None:
            main = (c >> np.uint64(part_bits)) & np.uint64(0xFFFFFFFF)
            flush = (ctrl & np.uint64(1)).astype(bool)
            added = np.asarray(ops.add(main, step, _F32, self._facc, _F32, Rounding.RNE))
            main = np.where(flush, added.astype(np.uint64), main)
            state = np.where(flush, np.uint64(0), step) | (main << np.uint64(part_bits))
            value, vfmt = main, _F32
        if self.converts:
            last = ((ctrl >> np.uint64(int(self.promote is not None))) & np.uint64(1)).astype(
                bool)
            out_fmt = self._model.output
            # round(x + -0) is x rounded (x = +0 included): the conversion is an adder's.
            nz = np.full(value.shape, out_fmt.sign_mask, dtype=np.uint64)
            out = np.asarray(ops.add(value, nz, vfmt, out_fmt, out_fmt, Rounding.RNE))
            state = np.where(last, out.astype(np.uint64), state)
        return state.astype(np.uint64)

    def _with_state(self, rng: np.random.Generator, vec: dict[str, np.ndarray]
                    ) -> dict[str, np.ndarray]:
        """Step vectors given a control field and, with promotion, a main accumulator: control
        uniform over its values; main a quarter exactly cancelling the step's result at the
        float32 addition, a quarter within a few codes of that, an eighth float32 corner codes
        (zeros, infinities, NaN, the largest), the rest uniform codes."""
        if not self.control_bits:
            return vec
        count = len(vec["c"])
        ctrl = rng.integers(0, 1 << self.control_bits, size=count).astype(np.uint64)
        la, lb = self.split(vec["a"], vec["b"])
        fields = np.concatenate([la.astype(np.uint64), ctrl[:, None]], axis=1)
        a = pack_fields(fields, self.operand_widths["a"], self._fa.bits)
        c = np.asarray(vec["c"], dtype=np.uint64)
        if self.promote is not None:
            step = np.asarray(mma.step(la, lb, c.astype(np.int64), self._fa, self._fb,
                                       model=self._model)).astype(np.uint64)
            s32 = np.asarray(_F32.encode(self._facc.decode(step), "rne")).astype(np.uint64)
            main = _cases.uniform(rng, 32, count).astype(np.uint64)
            kind = rng.integers(0, 8, size=count)
            flip = s32 ^ np.uint64(1 << 31)
            near = (flip.astype(np.int64) + rng.integers(-3, 4, size=count)).clip(0, 2**32 - 1)
            corners = _cases.corner_codes(_F32).astype(np.uint64)
            main = np.where(kind < 2, flip, main)
            main = np.where((kind == 2) | (kind == 3), near.astype(np.uint64), main)
            main = np.where(kind == 4, corners[rng.integers(0, len(corners), size=count)], main)
            c = c | (main << np.uint64(self._facc.bits))
        return {"a": a, "b": vec["b"], "c": c}

    def _finite(self, fmt: FloatFormat, codes: np.ndarray) -> np.ndarray:
        cls = core.unpack_float(fmt, codes)[0]
        return np.asarray((cls != core.NAN) & (cls != core.INF))

    def _uniform(self, rng: np.random.Generator, fmt: FloatFormat, shape: tuple[int, ...]
                 ) -> np.ndarray:
        """Uniform finite codes."""
        out = _cases.uniform(rng, fmt.bits, int(np.prod(shape))).reshape(shape)
        while True:
            bad = ~self._finite(fmt, out)
            if not bad.any():
                return out
            out[bad] = _cases.uniform(rng, fmt.bits, int(bad.sum()))

    def _negate(self, fmt: FloatFormat, codes: np.ndarray) -> np.ndarray:
        """``-x`` of finite codes where that is a finite code (an fnuz zero stays +0, an
        unsigned format's codes stay as they are)."""
        if not fmt.signed:
            return codes.copy()
        flipped = codes ^ np.uint64(fmt.sign_mask)
        return np.where(self._finite(fmt, flipped), flipped, codes)

    def _corner_list(self, fmt: FloatFormat) -> np.ndarray:
        codes = _cases.corner_codes(fmt)
        return codes[self._finite(fmt, codes)]

    def _sum_codes(self, la: np.ndarray, lb: np.ndarray, rng: np.random.Generator,
                   wiggle: bool) -> np.ndarray:
        """Accumulator codes near minus the lanes' sum of products (cancellation)."""
        with np.errstate(all="ignore"):
            s = (self._fa.decode(la) * self._fb.decode(lb)).sum(axis=-1)
            if wiggle:
                s = s * (1 + rng.integers(-3, 4, size=s.shape) * np.ldexp(
                    1.0, -rng.integers(1, 30, size=s.shape)))
            s = np.where(np.isfinite(s), -s, 0.0)
        return np.asarray(self._facc.encode(s, "rtz", saturate=True)).astype(np.uint64)

    def _random(self, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
        """Uniform finite lane codes and accumulators; a quarter of the vectors with lanes
        cancelling in pairs, a quarter with the accumulator near minus the products' sum, an
        eighth with a zero accumulator."""
        n = self._model.n
        la = self._uniform(rng, self._fa, (count, n))
        lb = self._uniform(rng, self._fb, (count, n))
        c = self._uniform(rng, self._facc, (count,))
        kind = rng.integers(0, 8, size=count)
        pairs = (kind < 2) & (n > 1)
        if pairs.any():
            half = n // 2
            la[pairs, 1:2 * half:2] = self._negate(self._fa, la[pairs, 0:2 * half:2])
            lb[pairs, 1:2 * half:2] = lb[pairs, 0:2 * half:2]
        near = (kind == 2) | (kind == 3)
        c = np.where(near, self._sum_codes(la, lb, rng, True), c)
        c = np.where(kind == 4, np.uint64(0), c)
        return {**self.join(la, lb), "c": c}

    def _accumulator_set(self) -> np.ndarray:
        """Corner accumulators: zeros, subnormal and normal ends, values around one, the
        largest values, infinities and NaNs."""
        return _cases.corner_codes(self._facc)

    def _corner(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        n = self._model.n
        ca, cb = self._corner_list(self._fa), self._corner_list(self._fb)
        cc = self._accumulator_set()
        x, y, z = _cases.cross(ca, cb, cc)
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # Every lane the same product, against every corner accumulator.
        rows.append((np.repeat(x[:, None], n, 1), np.repeat(y[:, None], n, 1), z))
        # One lane holding the product, the others +-0 (all-zero products of either sign).
        zero = np.zeros(n, dtype=np.uint64)
        zeros_a = np.where(np.arange(n) % 2 == 1, self._negate(self._fa, zero), zero)
        la = np.repeat(zeros_a[None, :].astype(np.uint64), len(x), 0)
        lb = np.repeat(y[:, None], n, 1)
        la[:, 0] = x
        rows.append((la, lb, z))
        # Lanes cancelling in pairs (equal magnitudes, opposite signs).
        x2, y2 = _cases.cross(ca, cb)
        la = np.repeat(x2[:, None], n, 1)
        la[:, 1::2] = self._negate(self._fa, la[:, 1::2])
        lb = np.repeat(y2[:, None], n, 1)
        rows.append((la, lb, np.zeros(len(x2), dtype=np.uint64)))
        # The accumulator cancelling the products (exactly, or nearly).
        rows.append((la[:, ::-1].copy() if n > 1 else la, lb, self._sum_codes(la, lb, rng,
                                                                              False)))
        la = np.repeat(x2[:, None], n, 1)
        rows.append((la, lb, self._sum_codes(la, lb, rng, False)))
        rows.append((la, lb, self._sum_codes(la, lb, rng, True)))
        return self._stack(rows)

    def _exhaustive(self) -> dict[str, np.ndarray]:
        n = self._model.n
        bits = n * (self._fa.bits + self._fb.bits)
        full = bits + self._facc.bits <= _cases.EXHAUSTIVE_LIMIT_BITS
        accs = np.arange(1 << self._facc.bits, dtype=np.uint64) if full \
            else self._accumulator_set()
        if not full and (1 << bits) * len(accs) > 1 << _cases.EXHAUSTIVE_LIMIT_BITS:
            raise DatapathError(
                f"exhaustive vectors must number at most 2**{_cases.EXHAUSTIVE_LIMIT_BITS}, not "
                f"2**{bits} operand codes x {len(accs)} accumulators; use random or corner "
                f"vectors")
        cols = _cases.cross(*([np.arange(1 << self._fa.bits, dtype=np.uint64)] * n
                              + [np.arange(1 << self._fb.bits, dtype=np.uint64)] * n + [accs]))
        la = np.stack(cols[:n], axis=1)
        lb = np.stack(cols[n:2 * n], axis=1)
        c = cols[-1]
        keep = self._finite(self._fa, la).all(1) & self._finite(self._fb, lb).all(1)
        return {**self.join(la[keep], lb[keep]), "c": c[keep]}

    def test_cases(self, rng: np.random.Generator, kind: str, n: int | None = None
                   ) -> dict[str, np.ndarray]:
        """Draw operand vectors, finite operands only (the contract).

        ``exhaustive``: every finite lane code of every lane against every accumulator code
        when that is at most 2**26 vectors, else against the corner accumulators
        (:meth:`_accumulator_set`) while that fits.
        ``corner``: corner lane codes, all lanes alike and in one lane (the others +-0), lanes
        cancelling in pairs, accumulators cancelling the products, against corner accumulators
        (near overflow, infinite and NaN included); ``n`` subsamples them or tops them up with
        random vectors. ``random``: :meth:`_random`.
        """
        check_kind(kind, n)
        if self._kul is not None:
            return self._kulisch_cases(rng, kind, n)
        if self._int is not None:
            return self._int_cases(rng, kind, n)
        if kind == "exhaustive":
            return self._with_state(rng, self._block_exhaustive() if self._model.blocked
                                    else self._exhaustive())
        if kind == "random":
            assert n is not None
            return self._with_state(rng, self._blocked(rng, self._random(rng, int(n))))
        out = self._blocked(rng, self._corner(rng))
        if n is not None:
            size = len(out["c"])
            extra = self._blocked(rng, self._random(rng, int(n) - size)) if int(n) > size \
                else None
            out = _cases.resize(rng, out, int(n), extra)
        return self._with_state(rng, out)

    def _blocked(self, rng: np.random.Generator, base: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
        """``base`` as it is for a plain step, else with :meth:`_block_cases`."""
        return self._block_cases(rng, base) if self._model.blocked else base

    # -- integer vectors ------------------------------------------------------------------------
    def _int_corner_codes(self, fmt: IntFormat) -> np.ndarray:
        """Lane corner codes: zero, ones, twos, both range ends and their neighbours, halves."""
        vals = {0, 1, 2, fmt.max_int, fmt.max_int - 1, fmt.min_int, fmt.min_int + 1,
                fmt.max_int // 2}
        if fmt.signed:
            vals |= {-1, -2, fmt.min_int // 2}
        vals = {v for v in vals if fmt.min_int <= v <= fmt.max_int}
        return np.asarray(fmt.from_int(np.array(sorted(vals), dtype=np.int64))).astype(np.uint64)

    def _int_accumulators(self) -> np.ndarray:
        """Corner accumulator codes: zero, ones, both range ends and their neighbours, halves,
        and the accumulators that ``n`` extreme products push just past either end (wrap)."""
        fa, fb, fc = self.int_formats
        prods = [x * y for x in (fa.min_int, fa.max_int) for y in (fb.min_int, fb.max_int)]
        smax, smin = self._n * max(prods), self._n * min(prods)
        vals = {0, 1, -1, 2, fc.min_int, fc.max_int, fc.min_int + 1, fc.max_int - 1,
                fc.max_int - smax + 1, fc.max_int - smax, fc.min_int - smin - 1,
                fc.min_int - smin, fc.max_int - max(prods) + 1, fc.min_int - min(prods) - 1,
                fc.max_int // 2, fc.min_int // 2}
        vals = {v for v in vals if fc.min_int <= v <= fc.max_int}
        return np.asarray(fc.from_int(np.array(sorted(vals), dtype=np.int64))).astype(np.uint64)

    def _int_near_wrap(self, la: np.ndarray, lb: np.ndarray, rng: np.random.Generator,
                       top: bool) -> np.ndarray:
        """Accumulator codes that put ``c + sum`` within 2 of the top (or bottom) end."""
        fa, fb, fc = self.int_formats
        s = (np.asarray(fa.to_int(la), dtype=np.int64)
             * np.asarray(fb.to_int(lb), dtype=np.int64)).sum(axis=-1)
        end = fc.max_int if top else fc.min_int
        c = end - s + rng.integers(-2, 3, size=s.shape)
        return np.asarray(fc.from_int(c)).astype(np.uint64)

    def _int_random(self, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
        """Uniform lane and accumulator codes; an eighth each with the accumulator putting the
        sum within 2 of the top or of the bottom end, an eighth with every lane an extreme
        code, an eighth with a zero accumulator."""
        fa, fb, fc = self.int_formats
        n = self._n
        la = _cases.uniform(rng, fa.bits, count * n).reshape(count, n)
        lb = _cases.uniform(rng, fb.bits, count * n).reshape(count, n)
        c = _cases.uniform(rng, fc.bits, count)
        kind = rng.integers(0, 8, size=count)
        ends = kind == 2
        if ends.any():
            for lanes, fmt in ((la, fa), (lb, fb)):
                pick = np.asarray(fmt.from_int(np.array([fmt.min_int, fmt.max_int],
                                                        dtype=np.int64))).astype(np.uint64)
                lanes[ends] = pick[rng.integers(0, 2, size=(int(ends.sum()), n))]
        c = np.where(kind == 0, self._int_near_wrap(la, lb, rng, True), c)
        c = np.where(kind == 1, self._int_near_wrap(la, lb, rng, False), c)
        c = np.where(kind == 3, np.uint64(0), c)
        return {**self.join(la, lb), "c": c.astype(np.uint64)}

    def _int_corner(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        fa, fb, _ = self.int_formats
        n = self._n
        ca, cb = self._int_corner_codes(fa), self._int_corner_codes(fb)
        x, y, z = _cases.cross(ca, cb, self._int_accumulators())
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # Every lane the same product (all-min products among them), every corner accumulator.
        rows.append((np.repeat(x[:, None], n, 1), np.repeat(y[:, None], n, 1), z))
        # One lane holding the product, the others zero.
        la = np.zeros((len(x), n), dtype=np.uint64)
        la[:, 0] = x
        rows.append((la, np.repeat(y[:, None], n, 1), z))
        # Lanes alternating between the corner code and the range's other end.
        x2, y2 = _cases.cross(ca, cb)
        other = np.asarray(fa.from_int(np.array([fa.min_int, fa.max_int], dtype=np.int64))
                           ).astype(np.uint64)
        la = np.repeat(x2[:, None], n, 1)
        la[:, 1::2] = other[np.arange(len(x2)) % 2][:, None]
        lb = np.repeat(y2[:, None], n, 1)
        rows.append((la, lb, np.zeros(len(x2), dtype=np.uint64)))
        # The sum landing next to either end of the accumulator.
        rows.append((la, lb, self._int_near_wrap(la, lb, rng, True)))
        rows.append((la, lb, self._int_near_wrap(la, lb, rng, False)))
        return self._stack(rows)

    def _int_exhaustive(self) -> dict[str, np.ndarray]:
        fa, fb, fc = self.int_formats
        n = self._n
        bits = n * (fa.bits + fb.bits)
        full = bits + fc.bits <= _cases.EXHAUSTIVE_LIMIT_BITS
        accs = np.arange(1 << fc.bits, dtype=np.uint64) if full else self._int_accumulators()
        if not full and (1 << bits) * len(accs) > 1 << _cases.EXHAUSTIVE_LIMIT_BITS:
            raise DatapathError(
                f"exhaustive vectors must number at most 2**{_cases.EXHAUSTIVE_LIMIT_BITS}, not "
                f"2**{bits} operand codes x {len(accs)} accumulators; use random or corner "
                f"vectors")
        cols = _cases.cross(*([np.arange(1 << fa.bits, dtype=np.uint64)] * n
                              + [np.arange(1 << fb.bits, dtype=np.uint64)] * n + [accs]))
        la = np.stack(cols[:n], axis=1)
        lb = np.stack(cols[n:2 * n], axis=1)
        return {**self.join(la, lb), "c": cols[-1]}

    def _int_cases(self, rng: np.random.Generator, kind: str, n: int | None
                   ) -> dict[str, np.ndarray]:
        """Vectors of an integer unit: ``exhaustive`` every lane code of every lane against
        every accumulator when that is at most 2**26 vectors, else against the corner
        accumulators (:meth:`_int_accumulators`) while that fits; ``corner`` lane corner codes
        all alike or in one lane, lanes alternating with a range end, against the corner
        accumulators and accumulators putting the sum next to either end (wrap);
        ``random`` :meth:`_int_random`."""
        return _kind_cases(rng, kind, n, self._int_exhaustive, self._int_corner,
                           self._int_random)

    # -- the Kulisch register -------------------------------------------------------------------
    def _kulisch_describe(self) -> dict[str, Any]:
        assert self._kul is not None
        w, low, result = self._kul
        return {"datapath": self.name, "a": self._fa.name, "b": self._fb.name, "n": self._n,
                "frac_bits": None, "term_rounding": None, "alignment": None, "acc": None,
                "acc_frac_bits": None, "acc_rounding": None, "model": None,
                "normalization": None, "kulisch": True, "acc_width": w, "acc_lsb": low,
                "acc_result": result,
                "stages": self._stages, "latency": self.latency, "label": self.kulisch_label(),
                "formats": {k: v.name for k, v in self.formats.items()},
                "element_formats": {"a": self._fa.name, "b": self._fb.name}}

    def kulisch_label(self) -> str:
        """A short label of a Kulisch step."""
        assert self._kul is not None
        w, low, result = self._kul
        return (f"kulisch n={self._n} {self._fa.name}x{self._fb.name} width={w} lsb={low}"
                + (" -> float32" if result == "float32" else ""))

    def _reg_in(self, c: Any) -> Any:
        """Register codes of the ``c`` port (1-D codes, or ``(N, words)`` for a port over 64
        bits) as the model takes them: uint64 up to 62 bits, else Python ints."""
        assert self._kul is not None
        w = self._kul[0]
        arr = np.asarray(c)
        if w <= 62:
            return arr.reshape(-1).astype(np.uint64)
        if arr.dtype == object:
            return np.asarray([int(v) for v in arr.reshape(-1)], dtype=object)
        words = arr.reshape(len(arr), -1).astype(np.uint64) if w > 64 else \
            arr.reshape(-1, 1).astype(np.uint64)
        out = np.zeros(len(words), dtype=object)
        for j in range(words.shape[1]):
            out = out + words[:, j].astype(object) * (1 << (64 * j))
        return out

    def _reg_values(self, values: Any) -> Any:
        """Register codes of signed register values (Python ints or int64), modulo 2**width."""
        assert self._kul is not None
        w = self._kul[0]
        mask = (1 << w) - 1
        if w <= 62:
            return (np.asarray(values).astype(np.int64) & mask).astype(np.uint64)
        return np.asarray([int(v) & mask for v in np.asarray(values, dtype=object).reshape(-1)],
                          dtype=object)

    def _reg_add(self, x: Any, y: Any) -> Any:
        """``x + y`` modulo 2**width of register codes (uint64 or Python ints)."""
        assert self._kul is not None
        w = self._kul[0]
        if w <= 62:
            return (np.asarray(x).astype(np.uint64) + np.asarray(y).astype(np.uint64)) \
                & np.uint64((1 << w) - 1)
        mask = (1 << w) - 1
        xs = np.asarray(x, dtype=object).reshape(-1)
        ys = np.broadcast_to(np.asarray(y, dtype=object), xs.shape)
        return np.asarray([(int(p) + int(q)) & mask for p, q in zip(xs, ys, strict=True)],
                          dtype=object)

    def _kulisch_reference(self, la: np.ndarray, lb: np.ndarray, c: np.ndarray) -> np.ndarray:
        assert self._kul is not None
        w, low, result = self._kul
        reg = mma.step(la, lb, self._reg_in(c), self._fa, self._fb, model=self._model)
        if result == "float32":
            return mma.kulisch_round(reg, w, low).astype(np.uint64)
        return np.asarray(reg) if w > 62 else np.asarray(reg).astype(np.uint64)

    def _kulisch_sum(self, la: np.ndarray, lb: np.ndarray) -> Any:
        """Register codes of the lanes' products alone (the step from a zero register)."""
        zero = self._reg_values(np.zeros(len(la), dtype=np.int64))
        return mma.step(la, lb, zero, self._fa, self._fb, model=self._model)

    def _kulisch_registers(self) -> Any:
        """Corner register codes: zero, one, minus one, both ends and their neighbours, halves,
        and the registers that ``n`` (or one) largest products push past either end (wrap)."""
        assert self._kul is not None
        w, low, _ = self._kul
        top, bottom = (1 << (w - 1)) - 1, -(1 << (w - 1))
        big = int(Fraction(self._fa.max_finite) * Fraction(self._fb.max_finite)
                  / Fraction(2) ** low)
        vals = {0, 1, -1, 2, top, bottom, top - 1, bottom + 1, top // 2, bottom // 2,
                top - self._n * big + 1, top - big + 1, bottom + self._n * big - 1,
                bottom + big - 1, big, -big}
        vals = {v for v in vals if bottom <= v <= top}
        return self._reg_values(np.asarray(sorted(vals), dtype=object))

    def _kulisch_random(self, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
        """Uniform finite lanes (a quarter cancelling in pairs); registers: a quarter uniform
        codes, a quarter the products' negated sum plus -2..2 (cancellation), an eighth each
        zero, within 2 of the top end and within 2 of the bottom end after the step (wrap), an
        eighth small (a few products' size)."""
        assert self._kul is not None
        w, _, _ = self._kul
        n = self._n
        la = self._uniform(rng, self._fa, (count, n))
        lb = self._uniform(rng, self._fb, (count, n))
        kind = rng.integers(0, 8, size=count)
        pairs = (kind < 2) & (n > 1)
        if pairs.any():
            half = n // 2
            la[pairs, 1:2 * half:2] = self._negate(self._fa, la[pairs, 0:2 * half:2])
            lb[pairs, 1:2 * half:2] = lb[pairs, 0:2 * half:2]
        if w <= 62:
            c = rng.integers(0, 1 << w, size=count, dtype=np.uint64)
        else:
            words = rng.integers(0, 1 << 63, size=(count, -(-w // 63)), dtype=np.int64)
            c = self._reg_values(np.asarray([sum(int(x) << (63 * j) for j, x in enumerate(r))
                                             for r in words], dtype=object))
        neg_sum = self._reg_add(self._reg_values(np.zeros(count, dtype=np.int64)),
                                self._negated(self._kulisch_sum(la, lb)))
        delta = self._reg_values(rng.integers(-2, 3, size=count))
        top = self._reg_values(np.full(count, (1 << (w - 1)) - 1, dtype=object))
        small = self._reg_values(rng.integers(-(1 << min(w - 2, 40)), 1 << min(w - 2, 40),
                                              size=count))
        picks = [(kind == 2) | (kind == 3), kind == 4, kind == 5, kind == 6, kind == 7]
        choices = [self._reg_add(neg_sum, delta), self._reg_values(np.zeros(count, dtype=int)),
                   self._reg_add(self._reg_add(neg_sum, top), delta),
                   self._reg_add(self._reg_add(neg_sum, self._reg_add(top, 1)), delta), small]
        for pick, values in zip(picks, choices, strict=True):
            c = np.where(pick, values, c)
        return {**self.join(la, lb), "c": c if w > 62 else c.astype(np.uint64)}

    def _negated(self, codes: Any) -> Any:
        """``-x`` modulo 2**width of register codes."""
        assert self._kul is not None
        w = self._kul[0]
        if w <= 62:
            return (~np.asarray(codes).astype(np.uint64) + np.uint64(1)) \
                & np.uint64((1 << w) - 1)
        return np.asarray([(-int(v)) & ((1 << w) - 1) for v in codes], dtype=object)

    def _kulisch_corner(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Corner lane codes (subnormal, largest, +-0) all alike or in one lane, lanes
        cancelling in pairs, against the corner registers; registers cancelling the products
        exactly (a zero result) or putting the sum at either end (wrap)."""
        assert self._kul is not None
        w, n = self._kul[0], self._n
        ca, cb = self._corner_list(self._fa), self._corner_list(self._fb)
        regs = self._kulisch_registers()
        idx = np.arange(len(regs))
        x, y, z = _cases.cross(ca, cb, idx)
        rows: list[tuple[np.ndarray, np.ndarray, Any]] = []
        rows.append((np.repeat(x[:, None], n, 1), np.repeat(y[:, None], n, 1), regs[z]))
        la = np.zeros((len(x), n), dtype=np.uint64)
        la[:, 1::2] = self._negate(self._fa, la[:, 1::2])
        la[:, 0] = x
        rows.append((la, np.repeat(y[:, None], n, 1), regs[z]))
        x2, y2 = _cases.cross(ca, cb)
        la = np.repeat(x2[:, None], n, 1)
        la[:, 1::2] = self._negate(self._fa, la[:, 1::2])
        lb = np.repeat(y2[:, None], n, 1)
        rows.append((la, lb, self._reg_values(np.zeros(len(x2), dtype=np.int64))))
        la = np.repeat(x2[:, None], n, 1)
        ns = self._negated(self._kulisch_sum(la, lb))
        top = self._reg_values(np.full(len(x2), (1 << (w - 1)) - 1, dtype=object))
        rows.append((la, lb, ns))
        rows.append((la, lb, self._reg_add(ns, top)))
        rows.append((la, lb, self._reg_add(self._reg_add(ns, top), 1)))
        return self._stack(rows)

    def _kulisch_exhaustive(self) -> dict[str, np.ndarray]:
        """Every finite lane code of every lane against the corner registers."""
        n = self._n
        bits = n * (self._fa.bits + self._fb.bits)
        regs = self._kulisch_registers()
        if (1 << bits) * len(regs) > 1 << _cases.EXHAUSTIVE_LIMIT_BITS:
            raise DatapathError(
                f"exhaustive vectors must number at most 2**{_cases.EXHAUSTIVE_LIMIT_BITS}, not "
                f"2**{bits} operand codes x {len(regs)} registers; use random or corner vectors")
        cols = _cases.cross(*([np.arange(1 << self._fa.bits, dtype=np.uint64)] * n
                              + [np.arange(1 << self._fb.bits, dtype=np.uint64)] * n
                              + [np.arange(len(regs))]))
        la = np.stack(cols[:n], axis=1)
        lb = np.stack(cols[n:2 * n], axis=1)
        keep = self._finite(self._fa, la).all(1) & self._finite(self._fb, lb).all(1)
        return {**self.join(la[keep], lb[keep]), "c": regs[cols[-1][keep]]}

    def _kulisch_cases(self, rng: np.random.Generator, kind: str, n: int | None
                       ) -> dict[str, np.ndarray]:
        """Vectors of a Kulisch unit: ``exhaustive`` every finite lane code of every lane
        against the corner registers (:meth:`_kulisch_registers`); ``corner``
        :meth:`_kulisch_corner` (``n`` subsamples them or tops them up with random vectors);
        ``random`` :meth:`_kulisch_random`."""
        return _kind_cases(rng, kind, n, self._kulisch_exhaustive, self._kulisch_corner,
                           self._kulisch_random)

    def _kulisch_structure(self) -> nx.DiGraph:
        """Per lane a multiplier and a left shifter placing the product in the register; one
        adder tree of the register's width with the register; with ``acc_result=float32`` the
        one rounding: absolute value, leading-zero count, normalizer, rounder, pack."""
        assert self._kul is not None
        w, _, result = self._kul
        fa, fb = self._fa, self._fb
        n = self._n
        cuts, extra = choose_cuts(self.kulisch_cuts, self._stages)
        gr = Graph(cuts)
        p = fa.precision + fb.precision
        span = (fa.emax - fa.emin) + (fb.emax - fb.emin)
        gr.node("in_a", "input", n * fa.bits)
        gr.node("in_b", "input", n * fb.bits)
        gr.node("in_c", "input", w)
        ua = gr.node("unpack_a", "logic", fa.bits, "in_a", count=n,
                     gates=2 * fa.bits + 2 * fa.exp_bits, depth=3)
        ub = gr.node("unpack_b", "logic", fb.bits, "in_b", count=n,
                     gates=2 * fb.bits + 2 * fb.exp_bits, depth=3)
        mul = gr.node("multiplier", "multiplier", p, ua, ub, count=n, a_width=fa.precision,
                      b_width=fb.precision)
        exp = gr.node("exp_add", "adder", max(fa.exp_bits, fb.exp_bits) + 1, ua, ub, count=n)
        after = gr.cut("product", n * (p + EXP_BITS + 1) + w, mul, exp, "in_c")
        place = gr.node("place", "shifter", min(w, p + span), *after, count=n,
                        shift_bits=max(1, span.bit_length()))
        neg = gr.node("term_negate", "adder", w, place, count=n, inputs=1)
        tree = gr.node("adder_tree", "adder", w, neg, *after, inputs=n + 1)
        out_w = w
        after = gr.cut("sum", w, tree)
        if result == "float32":
            absval = gr.node("abs", "adder", w, *after, inputs=1)
            lzc = gr.node("lzc", "lzc", w, absval)
            lead = gr.node("lead_exp", "adder", EXP_BITS + 2, lzc)
            norm = gr.node("normalize", "shifter", w + 26, lead, absval,
                           shift_bits=max(1, (w + 26).bit_length()))
            sticky = gr.node("sticky", "logic", w, norm, gates=w,
                             depth=max(1, w.bit_length()))
            after = gr.cut("normalize", 24 + 2 + EXP_BITS + 3, norm, sticky)
            rnd = gr.node("round", "rounder", 25, *after)
            pack = gr.node("exp_pack", "adder", 31, rnd)
            over = gr.node("overflow", "comparator", 31, pack)
            out_w = 32
            after = (gr.node("pack", "mux", 32, over, pack, inputs=3),)
        for name in self._output_stages(extra):
            after = gr.cut(name, out_w, *after)
        gr.node("out", "output", out_w, *after)
        gr.g.graph.update(name=self.name, latency=self.latency)
        return gr.g

    # -- structure ------------------------------------------------------------------------------
    def _int_structure(self) -> nx.DiGraph:
        """Integer multipliers, one adder tree of the products and the accumulator wrapping in
        its width; no alignment, normalization or rounding."""
        fa, fb, fc = self.int_formats
        n = self._n
        cuts, extra = choose_cuts(self._INT_CUTS, self._stages)
        gr = Graph(cuts)
        pw = fa.bits + int(not fa.signed) + fb.bits + int(not fb.signed)
        gr.node("in_a", "input", n * fa.bits)
        gr.node("in_b", "input", n * fb.bits)
        gr.node("in_c", "input", fc.bits)
        mul = gr.node("multiplier", "multiplier", pw, "in_a", "in_b", count=n, a_width=fa.bits,
                      b_width=fb.bits, signed=fa.signed or fb.signed)
        after = gr.cut("product", n * pw + fc.bits, mul, "in_c")
        tree = gr.node("adder_tree", "adder", min(fc.bits, pw + (n - 1).bit_length()), *after,
                       inputs=n)
        # The accumulator adds the tree's sum and c (through the product register when cut),
        # never a product directly.
        add = gr.node("acc_add", "adder", fc.bits, tree, *(a for a in after if a != mul),
                      inputs=2)
        after = gr.cut("sum", fc.bits, add)
        for name in self._output_stages(extra):
            after = gr.cut(name, fc.bits, *after)
        gr.node("out", "output", fc.bits, *after)
        gr.g.graph.update(name=self.name, latency=self.latency)
        return gr.g

    def structure(self) -> nx.DiGraph:
        """Component graph; per-lane components carry ``count``."""
        if self._kul is not None:
            return self._kulisch_structure()
        if self._int is not None:
            return self._int_structure()
        g = self.geometry
        m = self._model
        n = m.n
        fa, fb, fc = self._fa, self._fb, self._facc
        cuts, extra = choose_cuts(self._CUTS, self._stages)
        gr = Graph(cuts)
        ew = EXP_BITS if m.blocked else self.exp_width
        gr.node("in_a", "input", n * fa.bits)
        gr.node("in_b", "input", n * fb.bits)
        gr.node("in_c", "input", fc.bits)
        ua = gr.node("unpack_a", "logic", fa.bits, "in_a", count=n,
                     gates=2 * fa.bits + 2 * fa.exp_bits, depth=3)
        ub = gr.node("unpack_b", "logic", fb.bits, "in_b", count=n,
                     gates=2 * fb.bits + 2 * fb.exp_bits, depth=3)
        uc = gr.node("unpack_c", "logic", fc.bits, "in_c", gates=2 * fc.bits + 2 * fc.exp_bits,
                     depth=3)
        if m.product == "lmul":
            # L-Mul (arXiv 2410.00907): the two fraction fields and the offset in one adder of
            # G + 1 bits (the offset is a constant), the carries into a three-input exponent
            # sum, a select for zero or subnormal operands; no multiplier.
            lbits = mma.lmul_bits(fa, m)
            mul = gr.node("lmul_adder", "adder", max(fa.man_bits, lbits) + 1, ua, ub, count=n)
            exp = gr.node("exp_add", "adder", max(fa.exp_bits, fb.exp_bits) + 2, ua, ub, mul,
                          count=n, inputs=3)
            mul = gr.node("lmul_zero", "mux", g.P, mul, count=n)
        else:
            mul = gr.node("multiplier", "multiplier", g.P, ua, ub, count=n,
                          a_width=fa.precision, b_width=fb.precision)
            exp = gr.node("exp_add", "adder", max(fa.exp_bits, fb.exp_bits) + 2, ua, ub,
                          count=n)
        if m.alignment == "sum_fp16":
            # Subnormal operands re-expressed as float16 normals: a leading-zero count and a
            # small left shift per operand.
            # The shift is the leading zeros capped by the room above float16's emin: an
            # exponent subtraction and a compare-and-select of the two.
            for op, fmt, src in (("a", fa, ua), ("b", fb, ub)):
                lz = gr.node(f"widen_lzc_{op}", "lzc", fmt.precision, src, count=n)
                sb = max(1, fmt.precision.bit_length())
                room = gr.node(f"widen_room_{op}", "adder", fmt.exp_bits + 2, src, count=n,
                               inputs=1)
                cap = gr.node(f"widen_cap_{op}", "comparator", sb, lz, room, count=n)
                pick = gr.node(f"widen_shift_{op}", "mux", sb, cap, count=n)
                gr.node(f"widen_{op}", "shifter", fmt.precision, pick, src, count=n,
                        shift_bits=sb)
            mul_after = ("widen_a", "widen_b")
            gr.g.add_edges_from((a, mul) for a in mul_after)
            gr.g.add_edges_from((a, exp) for a in mul_after)
        terms = [mul, exp]
        if m.alignment == "normalized":
            # The product's leading bit: its leading zeros subtracted from the exponent sum.
            plz = gr.node("product_lzc", "lzc", g.P, mul, count=n)
            terms.append(gr.node("product_lead", "adder", ew, plz, exp, count=n, inputs=2))
        if fc == get_format("float16"):
            # A subnormal accumulator normalized (the model reads it through float32).
            alz = gr.node("acc_lzc", "lzc", fc.precision, uc)
            terms += [gr.node("acc_normalize", "shifter", fc.precision, alz, uc,
                              shift_bits=max(1, fc.precision.bit_length())),
                      gr.node("acc_exp", "adder", ew, alz, uc, inputs=2)]
        # A zero term's alignment exponent is the least (it never sets E).
        zero = gr.node("exp_zero_select", "mux", ew, *terms, uc, count=n + 1)
        after = gr.cut("product", n * (g.P + ew + 1) + fc.bits + ew, *terms, zero, uc)
        emax = gr.node("exp_max", "comparator", ew, *after, count=n)
        esel = gr.node("exp_max_select", "mux", ew, emax, count=n)
        # Each term's shift E - e + D, clamped to the shifter's range (a compare with a
        # constant and a select of the amount's bits).
        amount = gr.node("align_amount", "adder", ew, esel, *after, count=n + 1, inputs=2)
        clamp = gr.node("align_clamp", "logic", ew, amount, count=n + 1,
                        gates=ew + 2 * max(1, g.YW.bit_length()),
                        depth=max(1, ew.bit_length()) + 1)
        # Each shifter takes its significand at the top of its word (x << B), zeros below.
        align = gr.node("align", "shifter", g.YW, clamp, *after, count=n, sticky=True,
                        shift_bits=max(1, g.YW.bit_length()), data_bits=g.YW - g.B)
        align_c = gr.node("align_c", "shifter", g.YWc, clamp, *after, sticky=True,
                          shift_bits=max(1, g.YWc.bit_length()), data_bits=g.YWc - g.Bc)
        last = [align, align_c]
        if m.term_rounding is not Rounding.RTZ:
            last = [gr.node("term_round", "rounder", g.TW, *last, count=n + 1)]
        # The signed term: its negation and a select by the sign.
        neg = gr.node("term_negate", "adder", g.TW + 1, *last, count=n + 1, inputs=1)
        sign = gr.node("term_sign", "mux", g.TW + 1, neg, *last, count=n + 1)
        after = gr.cut("align", (n + 1) * (g.TW + 1) + ew, sign, esel)
        add = gr.node("adder_tree", "adder", g.SW, *after, inputs=n + 1)
        after = gr.cut("sum", g.SW + ew, add)
        negsum = gr.node("abs", "adder", g.SW, *after, inputs=1)
        absval = gr.node("abs_select", "mux", g.SW, negsum, *after)
        window = self.window
        lzc = gr.node("lzc", "lzc", window, absval)
        lead = gr.node("lead_exp", "adder", ew, lzc, *after, inputs=2)
        # The result exponent max(lead, emin), and the normalizing shift from it, clamped.
        cmp = gr.node("exp_compare", "comparator", ew, lead)
        rexp = gr.node("exp_select", "mux", ew, cmp, lead)
        shift = gr.node("norm_amount", "adder", ew, rexp, *after, inputs=2)
        nclamp = gr.node("norm_clamp", "logic", ew, shift,
                         gates=ew + 2 * max(1, (g.OW - 1).bit_length()),
                         depth=max(1, ew.bit_length()) + 1)
        # The SW-bit magnitude shifted left into the OW-bit word.
        norm = gr.node("normalize", "shifter", g.OW, nclamp, absval,
                       shift_bits=max(1, (g.OW - 1).bit_length()), data_bits=min(g.SW, g.OW))
        sticky = gr.node("sticky", "logic", g.OW, norm, gates=g.OW,
                         depth=max(1, g.OW.bit_length()))
        after = gr.cut("normalize", g.p + 2 + ew + 3, norm, sticky)
        rnd = gr.node("round", "rounder", g.p + 1, *after)
        if window < g.SW:
            # A sum whose leading one lies below the window leaves the rounder unnormalized:
            # a small post-normalizer (leading zeros of the p rounded bits, a left shift).
            plz = gr.node("post_lzc", "lzc", g.p, rnd)
            rnd = gr.node("post_normalize", "shifter", g.p + 1, plz, rnd,
                          shift_bits=max(1, g.p.bit_length()))
        pack = gr.node("exp_pack", "adder", ew + fc.man_bits, rnd)
        over = gr.node("overflow", "comparator", ew + fc.man_bits, pack)
        out = gr.node("pack", "mux", fc.bits, over, pack, inputs=4)
        after = self._structure_around(gr, out)
        for name in self._output_stages(extra):
            after = gr.cut(name, self.state_width, *after)
        gr.node("out", "output", self.state_width, *after)
        if m.blocked:
            self._block_structure(gr)
        gr.g.graph.update(name=self.name, latency=self.latency)
        return gr.g

    def _block_structure(self, gr: Graph) -> None:
        """Groups and block scales in the component graph: per block the scale unpack and the
        scale exponent add (and, for a scale with a significand, a small multiplier); per lane a
        placement shifter into its group's exact word and the group's exponent maximum; per
        group an exact ``g``-input adder, its magnitude, the scale multiply of that magnitude
        and the scale exponent add; then ``n / g`` terms (not ``n``) are aligned, cut and
        summed."""
        m = self._model
        gg = self.group_geometry
        n, g = m.n, m.group
        groups = n // g
        ew = EXP_BITS
        before = list(gr.g.predecessors("exp_max"))
        sources = before
        sf = m.scale_format
        if sf is not None:
            assert m.block is not None
            blocks = n // m.block
            su = gr.node("scale_unpack", "logic", sf.bits, "in_a", "in_b", count=2 * blocks,
                         gates=2 * sf.bits, depth=2)
            sources = [*before, gr.node("scale_exp_add", "adder", ew, su, count=blocks)]
            if sf.man_bits:
                sources.append(gr.node("scale_sig_mul", "multiplier", gg.SS, su, count=blocks,
                                       a_width=sf.precision, b_width=sf.precision))
        gmax = gr.node("group_exp_max", "comparator", ew, *before, count=max(1, n - groups))
        place = gr.node("group_place", "shifter", gg.GW, gmax, *before, count=n,
                        shift_bits=gg.SPW)
        add = gr.node("group_adder", "adder", gg.GW + 1, place, count=groups, inputs=g)
        last = gr.node("group_abs", "adder", gg.GW, add, count=groups, inputs=1)
        if sf is not None and sf.man_bits:
            last = gr.node("group_scale_mul", "multiplier", gg.XW, last, *sources,
                           count=groups, a_width=gg.GW, b_width=gg.SS)
        gexp = gr.node("group_exp_add", "adder", ew, gmax, *sources, count=groups, inputs=2)
        gr.g.add_edges_from([(last, "align"), (gexp, "exp_max")])
        nodes = gr.g.nodes
        nodes["exp_max"]["count"] = groups
        nodes["exp_max_select"]["count"] = groups
        nodes["align_amount"]["count"] = groups + 1
        nodes["align"].update(count=groups, width=gg.YW, shift_bits=max(1, gg.YW.bit_length()),
                              data_bits=gg.YW - gg.B)
        for name in ("term_round", "term_negate"):
            if name in nodes:
                nodes[name]["count"] = groups + 1
        nodes["adder_tree"]["inputs"] = groups + 1

    def _structure_around(self, gr: Graph, step: str) -> tuple[str, ...]:
        """The float32 adder of promotion and the output conversion after the step (each an
        adder datapath's alignment, addition, leading-zero count, normalization and rounding),
        and the state multiplexers."""
        last = step
        if self.promote is not None:
            al = gr.node("promote_align", "shifter", 27, step, sticky=True, shift_bits=5)
            add = gr.node("promote_add", "adder", 28, al)
            lz = gr.node("promote_lzc", "lzc", 28, add)
            nm = gr.node("promote_normalize", "shifter", 28, lz, add, shift_bits=5)
            rnd = gr.node("promote_round", "rounder", 25, nm)
            last = gr.node("promote_select", "mux", self.state_width, rnd, step, inputs=2)
        if self.converts:
            out = self._model.output
            rnd = gr.node("output_round", "rounder", out.precision + 1, last)
            last = gr.node("output_select", "mux", self.state_width, rnd, last, inputs=2)
        return (last,)


def _kind_cases(rng: np.random.Generator, kind: str, n: int | None,
                exhaustive: Callable[[], dict[str, np.ndarray]],
                corner: Callable[[np.random.Generator], dict[str, np.ndarray]],
                random: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
                ) -> dict[str, np.ndarray]:
    """Vectors of one kind: ``exhaustive()``, ``random(rng, n)``, or ``corner(rng)`` subsampled
    to ``n`` or topped up with random vectors."""
    if kind == "exhaustive":
        return exhaustive()
    if kind == "random":
        assert n is not None
        return random(rng, int(n))
    out = corner(rng)
    if n is not None:
        size = len(out["c"])
        extra = random(rng, int(n) - size) if int(n) > size else None
        out = _cases.resize(rng, out, int(n), extra)
    return out


def _dot(a: str, **kw: Any) -> dict[str, Any]:
    return {"a": a, **kw}


_FP8 = "float8_e4m3fn"

#: Acceptance checks: (label, parameters, kinds and counts).
_CHECKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dot e4m3 n=4 F=13 e8m13 rtz (h100-fp8-fastacc at n=4)",
     _dot(_FP8, n=4, frac_bits=13, acc_frac_bits=13)),
    ("dot e5m2 n=4 F=13 e8m13", _dot("float8_e5m2", n=4)),
    ("dot bf16 n=2 F=25 float32 rtz", _dot("bfloat16", n=2, frac_bits=25)),
    ("dot fp16 n=4 F=25 float32", _dot("float16", n=4)),
    ("dot fp16 n=4 float16 accumulator rne",
     _dot("float16", n=4, acc="float16", acc_rounding="rne")),
    ("dot e4m3 n=4 term rdn", _dot(_FP8, n=4, term_rounding="rdn")),
    ("dot e4m3 n=4 term rne, normalized, 2 stages",
     _dot(_FP8, n=4, term_rounding="rne", alignment="normalized", stages=2)),
    ("dot e4m3 x e5m2 n=4 F=8, sum_fp16 alignment, 1 stage",
     _dot(_FP8, b="float8_e5m2", n=4, frac_bits=8, alignment="sum_fp16", stages=1)),
    ("dot bf16 h100-bf16", _dot("bfloat16", model="h100-bf16")),
    ("dot h100-fp8-fastacc", _dot(_FP8, model="h100-fp8-fastacc")),
    ("dot e4m3 n=16 F=13 e8m13, normalization window 6",
     _dot(_FP8, n=16, frac_bits=13, acc_frac_bits=13, normalization=6)),
    ("dot bf16 n=8 F=25 float32 rne, normalization window 6, 2 stages",
     _dot("bfloat16", n=8, acc_rounding="rne", normalization=6, stages=2)),
    # Promotion as hardware: the control field (flush, last) and the float32 main accumulator.
    ("dot h100-fp8 (promotion every 128: flush into float32 main, last)",
     _dot(_FP8, model="h100-fp8")),
    ("dot e5m2 x e4m3 h100-fp8-mma-sync (sum_fp16, promotion every 32)",
     _dot("float8_e5m2", b=_FP8, model="h100-fp8-mma-sync")),
    # L-Mul lanes (arXiv 2410.00907): L-Mul products into the aligned adder tree.
    ("dot L-Mul e4m3 h100-fp8-fastacc step (n=32)",
     _dot(_FP8, model="h100-fp8-fastacc", product="lmul")),
    ("dot L-Mul bf16 n=8 F=25 float32 rne, 1 stage",
     _dot("bfloat16", n=8, acc_rounding="rne", product="lmul", stages=1)),
    ("dot L-Mul e5m2 n=4 l=5 term rne", _dot("float8_e5m2", n=4, product="lmul",
                                             lmul_offset=5, term_rounding="rne")),
)

#: Acceptance checks of integer operands.
_INT_CHECKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dot int8 n=4 int32", _dot("int8", n=4)),
    ("dot int4 x uint4 n=16 int16, 2 stages", _dot("int4", b="uint4", n=16, acc="int16",
                                                   stages=2)),
)


_E8M0 = "float8_e8m0fnu"
_FP4 = "float4_e2m1fn"

#: Acceptance checks of groups and block scales: OCP MX (E8M0 per 32), NVFP4 (UE4M3 per 16:
#: float8_e4m3fn codes with sign 0) and a two-level tree without scales.
_BLOCK_CHECKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dot MXFP8 e4m3 n=32 g=32 E8M0 F=13 e8m13",
     _dot(_FP8, n=32, group=32, scale=_E8M0, block=32, frac_bits=13, acc_frac_bits=13)),
    ("dot MXFP4 e2m1 n=32 g=32 E8M0", _dot(_FP4, n=32, group=32, scale=_E8M0, block=32)),
    ("dot NVFP4 e2m1 n=16 g=16 UE4M3", _dot(_FP4, n=16, group=16, scale="float8_e4m3fn",
                                            block=16)),
    ("dot e4m3 n=32 g=4 two-level tree, no scales", _dot(_FP8, n=32, group=4, frac_bits=13,
                                                         acc_frac_bits=13)),
    # Group sums wider than int64 (a 70-bit group adder; Python integers in the model).
    ("dot MXFP8 e5m2 n=32 g=32 E8M0 F=13 e8m13",
     _dot("float8_e5m2", n=32, group=32, scale=_E8M0, block=32, frac_bits=13,
          acc_frac_bits=13)),
    ("dot fp16 n=8 g=4 two-level tree rne", _dot("float16", n=8, group=4, term_rounding="rne")),
)

#: Wide steps (n = 64: about 0.4 M vectors/s in Verilator), 10^6 corner and 10^7 random.
_WIDE_BLOCK_CHECKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dot MXFP4 e2m1 n=64 g=32 E8M0 (two blocks), 2 stages",
     _dot(_FP4, n=64, group=32, scale=_E8M0, block=32, stages=2)),
    ("dot NVFP4 e2m1 n=64 g=16 UE4M3 (four blocks)",
     _dot(_FP4, n=64, group=16, scale="float8_e4m3fn", block=16)),
)


def _block_acceptance() -> list[AcceptanceCheck]:
    # Every e2m1 code of both lanes of a and b with E8M0 scales in a bounded set, against +0
    # and -1.5 accumulators; then the checks above, corners and random.
    out = [AcceptanceCheck("dot e2m1 n=2 g=2 E8M0 (scales 2**-127, 2**-1..2**1, 2**127, NaN)",
                           _dot(_FP4, n=2, group=2, scale=_E8M0, block=2), "exhaustive")]
    for label, params in _BLOCK_CHECKS:
        out.append(AcceptanceCheck(label, params, "corner", 10**6))
        out.append(AcceptanceCheck(label, params, "random", 10**7))
    for label, params in _WIDE_BLOCK_CHECKS:
        out.append(AcceptanceCheck(label, params, "corner", 10**6))
        out.append(AcceptanceCheck(label, params, "random", 10**7))
    return out


#: Cost-model calibration (``arithforge calibrate``): every operand family the unit takes (FP4,
#: FP6, both FP8s and their mix, bf16, fp16; int4, int8), n from 1 to 32, F, the three
#: alignments, term roundings, both float accumulators, integer accumulators of 16 and 32 bits,
#: and pipelining. Float steps stop at n = 16: Yosys 0.23's ``synth_ice40`` of one n = 32 e4m3
#: step (the H100's) ran past 15 minutes and 18 GB without finishing (its CMOS flow takes one
#: minute), so the H100 steps are costed in ``docs/reproduction.md`` from the CMOS flow alone.
_CALIBRATION: tuple[dict[str, Any], ...] = (
    _dot("float4_e2m1fn", n=2, acc="float16"),
    _dot("float4_e2m1fn", n=16),
    _dot("float6_e2m3fn", n=8, frac_bits=10),
    _dot("float6_e3m2fn", n=4, acc="float16", acc_rounding="rne"),
    _dot(_FP8, n=4),
    _dot(_FP8, n=8, stages=4),
    _dot(_FP8, n=8, term_rounding="rne", alignment="normalized"),
    _dot("float8_e5m2", n=4, frac_bits=20, term_rounding="rdn"),
    _dot(_FP8, b="float8_e5m2", n=8, frac_bits=8, alignment="sum_fp16"),
    _dot("bfloat16", n=1),
    _dot("bfloat16", n=4, frac_bits=16, stages=2),
    _dot("float16", n=2, acc="float16", acc_rounding="rne"),
    _dot("float16", n=4),
    _dot("int8", n=4),
    _dot("int8", n=16, stages=2),
    _dot("int8", n=32),
    _dot("int4", n=16, acc="int16"),
    _dot("int4", b="uint4", n=8, acc="int16", stages=1),
)


def _acceptance() -> tuple[AcceptanceCheck, ...]:
    out = [AcceptanceCheck("dot e2m1 n=1 float16", _dot("float4_e2m1fn", n=1, acc="float16"),
                           "exhaustive"),
           AcceptanceCheck("dot L-Mul e2m1 n=1 float16",
                           _dot("float4_e2m1fn", n=1, acc="float16", product="lmul"),
                           "exhaustive")]
    for i, (label, params) in enumerate(_CHECKS):
        # The corner set (about 5 x 10^4 vectors) topped up with random ones.
        out.append(AcceptanceCheck(label, params, "corner", 10**6, bounded=i == 0))
        out.append(AcceptanceCheck(label, params, "random", 10**7))
    # Integer operands: every int2 pair of two lanes against every int16 accumulator; int8
    # and mixed-signedness int4 x uint4 steps, corners (wrap) and random.
    out.append(AcceptanceCheck("dot int2 n=2 int16", _dot("int2", n=2, acc="int16"),
                               "exhaustive", bounded=True))
    for i, (label, params) in enumerate(_INT_CHECKS):
        out.append(AcceptanceCheck(label, params, "corner", 10**6, bounded=i == 0))
        out.append(AcceptanceCheck(label, params, "random", 10**7))
    # The bounded subset: the corners above and 10^6 random vectors of the H100 fp8 step at
    # n = 4 (the whole list leaves this duplicate sample out).
    out.append(AcceptanceCheck(_CHECKS[0][0], _CHECKS[0][1], "random", 10**6, bounded=True))
    out.extend(_block_acceptance())
    out.extend(_acc_acceptance())
    return tuple(out)


#: Acceptance checks of the wide accumulators (corner 10^6 and random 10^7 each).
_ACC_CHECKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dot acc: e4m3 n=16 Kulisch register (W=53, LSB 2**-18)",
     _dot(_FP8, n=16, kulisch=True)),
    ("dot acc: e4m3 n=4 Kulisch rounded to float32, 3 stages",
     _dot(_FP8, n=4, kulisch=True, acc_result="float32", stages=3)),
    ("dot acc: bf16 n=8 bfloat16 accumulator rtz", _dot("bfloat16", n=8, acc="bfloat16")),
)


def _acc_acceptance() -> list[AcceptanceCheck]:
    """Every e2m1 pair of two lanes against every corner Kulisch register; the checks of
    :data:`_ACC_CHECKS`."""
    out = [AcceptanceCheck("dot acc: e2m1 n=2 Kulisch register (W=25)",
                           _dot("float4_e2m1fn", n=2, kulisch=True), "exhaustive")]
    for label, params in _ACC_CHECKS:
        out.append(AcceptanceCheck(label, params, "corner", 10**6))
        out.append(AcceptanceCheck(label, params, "random", 10**7))
    return out


def _block_reason(weights: str, acts: str, acc: str) -> str:
    """Why block formats ``weights`` x ``acts`` cannot be a dot design ('' when they can)."""
    fw, fx = get_format(weights), get_format(acts)
    if not (isinstance(fw, BlockFormat) and isinstance(fx, BlockFormat)):
        return (f"the dot unit takes block formats on both sides or neither, not {acts} x "
                f"{weights}")
    if fx.block_size != fw.block_size:
        return (f"the dot unit takes one block size for both operands, not {fx.block_size} and "
                f"{fw.block_size}")
    for f in (fx, fw):
        if f.scale.name not in ("float8_e8m0fnu", "float8_ue4m3"):
            return f"the dot unit applies E8M0 or UE4M3 block scales, not {f.scale.name} ({f.name})"
        if not isinstance(f.element, FloatFormat):
            return f"the dot unit's block formats have float elements, not {f.element.name}"
    if fx.scale.name != fw.scale.name:
        return (f"the dot unit takes one scale format for both operands, not {fx.scale.name} "
                f"and {fw.scale.name}")
    if acc not in ACCS:
        return f"the dot unit accumulates in {', '.join(ACCS[:-1])} or {ACCS[-1]}"
    return ""


class Dot(Descriptor):
    """The dot-product unit (module docstring)."""

    name: ClassVar[str] = "dot"
    summary: ClassVar[str] = "tensor-core step: n products aligned, cut to F bits, summed once"
    params: ClassVar[dict[str, Param]] = PARAMS
    generator: ClassVar[str] = "arithforge.hdl.dot:DotProduct"
    unit: ClassVar[type] = DotUnit
    accuracy: Accuracy | None = Accuracy(
        _run, "tensor-core steps of n products chained from +0 into the accumulator",
        {"model": None, **dict.fromkeys(_OPTIONS), "kulisch": False, "acc_width": None,
         "acc_lsb": None}, rounding="rtz", fast=False,
        check=_check_model)
    sweep: ClassVar[dict[str, Param]] = {
        "n": Param("int", 16, "products per step (MACs per operation)", 1, MAX_N),
        "frac_bits": Param("int", None, "fraction bits F kept per term (default: 13 for "
                                        "operands of at most 8 bits, 25 otherwise)", 1, 40),
        "acc_frac_bits": Param("int", None, "fraction bits of the accumulator after each step "
                                            "(default: 13 for operands of at most 8 bits into "
                                            "float32, else the format's)", 0, 23),
        "term_rounding": Param("choice:rtz|rdn|rne", "rtz", "how bits below F are cut"),
        "acc_rounding": Param("choice:rtz|rne", "rtz", "rounding of each step"),
        "normalization": Param("int", None, "approximate normalization window W of the sum "
                                            "(default: exact)", 1, 64),
        "product": Param(f"choice:{'|'.join(mma.PRODUCTS)}", "exact",
                         "how each lane multiplies: exact, or lmul (L-Mul products into the "
                         "aligned adder tree, arXiv 2410.00907; one operand format)"),
        "promote": Param("int", None, "promotion period P in elements of K, a multiple of n: "
                                      "a float32 main accumulator and adder (default: none)",
                         1, 1 << 16),
        "stages": stages_param(),
        "kulisch": Param("bool", False, "a Kulisch register instead of the float accumulator "
                                        "(float32 designs only; a named variant sweeps it)"),
        "acc_width": Param("int", None, "Kulisch register bits (default: holds 2**16 "
                                        "products; narrower: the same top, a higher LSB)", 2,
                           mma.KULISCH_MAX_WIDTH),
    }
    #: Not in the default spec (its results stay as they were): enable ``[datapaths.dot]``.
    default_sweeps: ClassVar[dict[str, dict[str, Any]]] = {}
    marker: ClassVar[str | None] = "*"
    acceptance = _acceptance()
    calibration = _CALIBRATION
    #: Four e4m3 products per operation (an A element is 32 bits).
    arrays: ClassVar[tuple[ArrayExample, ...]] = (
        ArrayExample("dot:a=float8_e4m3fn,n=4", {"os": (2, 3), "ws": (2, 3)}, ("os", 2, 2)),
    )
    array_pe: ClassVar[bool] = True

    def pe_timing(self, params: Any) -> tuple[int, int] | None:
        return _stages(params), 1

    def array_shape(self, params: Mapping[str, Any], m: int, n: int, k: int
                    ) -> tuple[int, int, int]:
        # One operation is one step: n products along K.
        return m, n, -(-k // self._lanes(params))

    def _lanes(self, params: Mapping[str, Any]) -> int:
        """Products per step of the unit at ``params`` (``n``, else the model's or default)."""
        if params.get("n") is not None:
            return int(params["n"])
        unit = self.build_unit(**{k: v for k, v in params.items() if v is not None})
        assert isinstance(unit, DotUnit)
        return unit.n

    def tile(self, params: Mapping[str, Any]) -> tuple[int, int, int] | None:
        # PE face of element GEMMs: one step is a 1 x 1 x n tile, the a port one row of n
        # activation codes (lane 0 low), the b port one column of n weight codes, c one output.
        return 1, 1, self._lanes(params)

    def reason(self, weights: str, acts: str, acc: str) -> str:
        kw, ka, kacc = kinds(weights, acts, acc)
        if "block" in (kw, ka):
            return _block_reason(weights, acts, acc)
        if kw == "int" and ka == "int":
            wide = [f for f in (weights, acts) if get_format(f).bits > MAX_INT_BITS]
            if wide:
                return (f"the dot unit takes integer operands of at most {MAX_INT_BITS} bits, "
                        f"not {wide[0]}")
            low, high = INT_ACC_BITS
            if kacc != "int" or not low <= get_format(acc).bits <= high:
                return (f"the dot unit accumulates integer operands in a signed integer of "
                        f"{low} to {high} bits")
            return ""
        if kw != "float" or ka != "float":
            return ("the dot unit takes float operands or signed integer ones (not integer x "
                    "float)")
        wide = [f for f in (weights, acts) if get_format(f).bits > MAX_BITS]
        if wide:
            return f"the dot unit takes operands of at most {MAX_BITS} bits, not {wide[0]}"
        if acc not in ACCS:
            return f"the dot unit accumulates in {', '.join(ACCS[:-1])} or {ACCS[-1]}"
        return ""

    def _kulisch_design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
                        params: dict[str, Any]) -> Design | Skip:
        """A Kulisch design: the register's step in hardware (its result the register; the one
        float32 rounding per output of K is not costed), the Kulisch GEMM model."""
        given = [k for k in ("frac_bits", "acc_frac_bits", "term_rounding", "acc_rounding",
                             "normalization", "product")
                 if params.get(k, self.sweep[k].default) != self.sweep[k].default]
        if given:
            return Skip(label, weights, acts, acc,
                        f"dot: {given[0]} does not apply to a Kulisch accumulator")
        fa, fb = get_format(acts), get_format(weights)
        if not (isinstance(fa, FloatFormat) and isinstance(fb, FloatFormat)):
            return Skip(label, weights, acts, acc, "dot: kulisch applies to float operands only")
        if acc != "float32":
            return Skip(label, weights, acts, acc, "dot: a Kulisch register is rounded once to "
                                                   "float32 (accumulator float32 only)")
        try:
            width, lsb = mma.Kulisch(params.get("acc_width"), None).resolve(fa, fb)
        except FormatError as exc:
            return Skip(label, weights, acts, acc, f"dot: {exc}")
        n = int(params["n"])
        hdl = {"a": acts, "b": weights, "n": n, "kulisch": True, "acc_width": width,
               "acc_lsb": lsb, "stages": int(params["stages"])}
        model = ctx.model(weights, acts, acc, self.name, rounding="rne",
                          options={"n": n, "kulisch": True, "acc_width": width, "acc_lsb": lsb})
        return self.make_design(label, weights, acts, acc, params, (self.name, hdl), model,
                                macs=n)

    def _block_design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
                      params: dict[str, Any]) -> Design | Skip:
        """A block-scaled design (OCP MX, NVFP4): the unit with one group per block and the
        block's two scales applied to the group sum, the GEMM model of the same steps."""
        fx, fw = get_format(acts), get_format(weights)
        assert isinstance(fx, BlockFormat)
        assert isinstance(fw, BlockFormat)
        given = [k for k in ("normalization", "promote", "acc_width")
                 if params.get(k) is not None]
        given += ["kulisch"] if params.get("kulisch") else []
        given += ["product=lmul"] if params.get("product", "exact") != "exact" else []
        if given:
            return Skip(label, weights, acts, acc,
                        f"dot: {given[0]} is not built with block scales")
        block, n = fx.block_size, int(params["n"])
        if n % block:
            return Skip(label, weights, acts, acc,
                        f"dot: n={n} is not a whole number of blocks of {block}: a block-scaled "
                        f"step takes whole blocks (sweep n = {block}, {2 * block}, ...)")
        facc = get_format(acc)
        assert isinstance(facc, FloatFormat)
        ea, eb = fx.element, fw.element
        assert isinstance(ea, FloatFormat)
        assert isinstance(eb, FloatFormat)
        sf = _block_scale_format(fx)
        options = {"n": n, "frac_bits": params["frac_bits"],
                   "term_rounding": params["term_rounding"], "alignment": None,
                   "acc_frac_bits": params["acc_frac_bits"]}
        try:
            m = _block_model(ea, eb, facc, params["acc_rounding"], options, block, sf)
        except ValueError as exc:  # FormatError included
            return Skip(label, weights, acts, acc, f"dot: {' '.join(str(exc).split())}")
        hdl = {"a": ea.name, "b": eb.name, "n": m.n, "frac_bits": m.frac_bits,
               "term_rounding": m.term_rounding.value, "alignment": m.alignment, "acc": acc,
               "acc_frac_bits": m.acc_frac_bits, "acc_rounding": m.acc_rounding.value,
               "group": block, "block": block, "scale": sf.name,
               "stages": int(params["stages"])}
        model = ctx.model(weights, acts, acc, self.name, rounding=m.acc_rounding.value,
                          options={"n": m.n, "frac_bits": m.frac_bits,
                                   "term_rounding": m.term_rounding.value,
                                   "alignment": m.alignment, "acc_frac_bits": m.acc_frac_bits})
        return self.make_design(label, weights, acts, acc, params, (self.name, hdl), model,
                                macs=m.n)

    def design(self, ctx: SweepContext, label: str, weights: str, acts: str, acc: str,
               params: dict[str, Any]) -> Design | Skip:
        if isinstance(get_format(acts), BlockFormat):
            return self._block_design(ctx, label, weights, acts, acc, params)
        if params.get("kulisch"):
            return self._kulisch_design(ctx, label, weights, acts, acc, params)
        if params.get("acc_width") is not None:
            return Skip(label, weights, acts, acc,
                        "dot: acc_width applies to a Kulisch accumulator only (kulisch = true)")
        if isinstance(get_format(acts), IntFormat):
            # Integer steps: exact, nothing but n and the stages applies; a float-only
            # parameter off its sweep default is refused as the unit refuses it.
            given = [k for k in FLOAT_ONLY if k in params and params[k] != self.sweep[k].default]
            if given:
                return Skip(label, weights, acts, acc,
                            f"dot: {given[0]} applies to float operands only")
            n = int(params["n"])
            hdl_int = {"a": acts, "b": weights, "n": n, "acc": acc,
                       "stages": int(params["stages"])}
            model_int = ctx.model(weights, acts, acc, self.name, options={"n": n})
            return self.make_design(label, weights, acts, acc, params, (self.name, hdl_int),
                                    model_int, macs=n)
        fa, fb, facc = (get_format(f) for f in (acts, weights, acc))
        assert isinstance(fa, FloatFormat)
        assert isinstance(fb, FloatFormat)
        assert isinstance(facc, FloatFormat)
        product = params.get("product", "exact")
        if product != "exact" and fa != fb:
            return Skip(label, weights, acts, acc, f"dot: {product} lanes take one operand "
                                                   f"format, not {acts} x {weights}")
        options = {"n": params["n"], "frac_bits": params["frac_bits"], "term_rounding":
                   params["term_rounding"], "alignment": None,
                   "acc_frac_bits": params["acc_frac_bits"],
                   "normalization": params.get("normalization"),
                   "promote": params.get("promote"),
                   "product": None if product == "exact" else product}
        try:
            m = gemm_model(fa, fb, facc, params["acc_rounding"], options)
        except ValueError as exc:
            return Skip(label, weights, acts, acc, f"dot: {' '.join(str(exc).split())}")
        # The unit's parameters, every one explicit; the model: the same step chained over K.
        hdl = {"a": acts, "b": weights, "n": m.n, "frac_bits": m.frac_bits,
               "term_rounding": m.term_rounding.value, "alignment": m.alignment, "acc": acc,
               "acc_frac_bits": m.acc_frac_bits, "acc_rounding": m.acc_rounding.value,
               "stages": int(params["stages"])}
        if m.normalization is not None:
            hdl["normalization"] = m.normalization
        if m.promote is not None:
            hdl["promote"] = m.promote
        lanes = {} if m.product == "exact" else {"product": m.product}
        hdl.update(lanes)
        model = ctx.model(weights, acts, acc, self.name, rounding=m.acc_rounding.value,
                          options={"n": m.n, "frac_bits": m.frac_bits,
                                   "term_rounding": m.term_rounding.value,
                                   "alignment": m.alignment, "acc_frac_bits": m.acc_frac_bits,
                                   "normalization": m.normalization, "promote": m.promote,
                                   **lanes})
        return self.make_design(label, weights, acts, acc, params, (self.name, hdl), model,
                                macs=m.n)

