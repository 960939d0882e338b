# Ref: QuaRot (Ashkboos et al., arXiv 2404.00456 §3: computational invariance x W = (x Q)(Q^T W)
#      for orthogonal Q; randomized Hadamard Q = H D); "Training LLMs with MXFP4" (Tseng et al.,
#      arXiv 2502.20586: a random Hadamard transform of blocks along the reduction dimension
#      before MXFP4 quantization); NVIDIA "Pretraining LLMs with NVFP4" (arXiv 2509.25149:
#      16x16 random Hadamard transforms); SmoothQuant (Xiao et al., arXiv 2211.10438 §4:
#      s_j = max|X_j|**alpha / max|W_j|**(1 - alpha), alpha = 0.5, folded into the previous op);
#      AFPQ (Zhang et al., arXiv 2311.01792 §3: separate scales for the positive and negative
#      weights of a group; weight-only, group 128 in its main tables); Jacob et al., "Quantization
#      and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference"
#      (arXiv 1712.05877 §2.1 scale and integer zero-point, §2.3 eq. 7: the zero-point cross
#      terms of the integer GEMM).
"""Outlier transforms and asymmetric quantizers of the GEMM operands, named by one spelling.

``--transform`` is ``none`` or a ``+``-joined list of at most one part of each stage, applied in
this order whatever order they are written in (:attr:`Transform.name` writes it canonically):

1. ``smoothquant[:ALPHA]`` (SmoothQuant, default ``ALPHA = 0.5``): per input channel ``j`` of a
   weight GEMM, ``s_j = max|X_j|**ALPHA / max|W_j|**(1 - ALPHA)``, with ``max|X_j|`` over the
   trace's stored (calibration) rows of that GEMM and ``max|W_j|`` over the weight's output
   channels; then ``X / s`` and ``W * s`` (``X W^T`` unchanged in exact arithmetic). In hardware
   ``1/s`` is folded into the op that produces ``X`` (LayerNorm's affine ``gamma / s``,
   ``beta / s``, or the previous Linear's output channels) and ``s`` into the weights, so it is
   free at inference. The emulation divides the traced (fp32) activations by ``s`` in float64,
   i.e. it models the folded LayerNorm exactly up to that LayerNorm's own fp32 rounding; it
   smooths every weight GEMM (also BERT's FFN output projection, whose input comes from GELU and
   cannot be folded: :attr:`TransformFacts.unfoldable` says so). Attention GEMMs (two
   activations) are not smoothed.
2. A rotation along K: ``hadamard[:BLOCK]`` rotates every row of both GEMM operands
   (activations ``X[M, K]`` and weights ``W[N, K]``) by the block-diagonal orthonormal
   ``Q = H_b / sqrt(b)`` (Sylvester order, ``b = BLOCK``, default 32), ``rht[:BLOCK[:SEED]]`` by
   ``Q = D H_b / sqrt(b)`` with ``D`` a diagonal of random signs drawn from ``SEED`` (default 0)
   over the whole of K. Since ``Q Q^T = I``, ``(X Q)(W Q)^T = X W^T`` in exact arithmetic: the
   transform changes only what the quantizer sees, which is the point (an outlier channel is
   spread over its block). K is padded with zeros to a multiple of the block, which leaves the
   product unchanged too. Smoothing comes first (``smoothquant+hadamard``): the rotation then
   spreads what smoothing left, and the diagonal scale still folds into the previous op.
   ``@LANES`` after the rotation (``hadamard:32@float16``, ``rht:32:0@bfloat16``,
   ``hadamard:16@int16``) names the lane format of the FWHT unit that rotates the activations
   online (:meth:`Transform.apply_online`); without it the activations are rotated in float64.
3. An asymmetric (or group) quantizer in place of ``--scaling`` (:mod:`.quantize`):
   ``afpq[:GROUP]`` quantizes the weights (float formats) with two scales per group of
   ``GROUP`` (default 128) along K, one for the positive and one for the negative values
   (AFPQ); ``group[:GROUP]`` is its symmetric baseline (one scale per group);
   ``zeropoint`` gives every integer-format operand a scale and an integer zero-point at its
   ``--scaling`` granularity (per tensor or per channel) and corrects the integer GEMM exactly
   (:func:`.quantize.zero_point_correction`); ``zeropoint:GROUP`` does so for integer weights in
   groups of ``GROUP`` along K. Group schemes store float16 scales and dequantize the weights
   (code times scale, exact in float32) before the GEMM, as weight-only kernels do: the datapath
   sees float32 weights.

The weights are rotated offline, in float64 (:func:`arithforge.formats.hadamard.rotate`: an
exact rotation up to float64 rounding), then quantized. The activations are rotated online by
the FWHT unit (``arithforge generate hadamard``, cost ``arithforge cost hadamard``); with
``@LANES`` the emulation is that unit bit for bit, on the model it is verified against:

- float lanes (``float16``, ``bfloat16``, ``float8_e4m3fn``...: a float format of at most 16
  bits with NaN): the activations (after the random signs, which flip sign bits exactly) are
  rounded to the lane format (round to nearest even, overflow to infinity), every butterfly is
  two adds rounded to nearest even in that format
  (:func:`arithforge.formats.hadamard.fwht_float`), and the outputs are decoded;
- integer lanes (``int8`` to ``int16``): the activations are quantized to the lane integers with
  one symmetric per-tensor scale (amax of the rows the GEMM sees), transformed exactly in
  ``bits + log2(BLOCK)`` bits (:func:`arithforge.formats.hadamard.fwht_int`) and scaled back.

Then, in both cases, the normalizing ``1/sqrt(BLOCK)`` (in float64: in hardware it folds into
the operand quantizer's scale) and the operand quantizer (``--acts`` at its ``--scaling``).
Which lane formats the unit takes is its descriptor's rule (the datapath that declares the
rotation in ``block_transforms``, :func:`lane_unit`): a block above its largest ``n`` (128) or a
format it refuses is refused here too. ``arithforge explore`` gives every rotation of
``[workloads] transforms`` without ``@`` the lanes of ``[block] fwht_format``, so the accuracy
and the block cost (:func:`arithforge.dse.block.transform_unit`) describe the same unit. What
each transform needs in hardware is :func:`facts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import hadamard

__all__ = ["DEFAULT_ALPHA", "DEFAULT_BLOCK", "DEFAULT_GROUP", "KINDS", "QUANTIZERS",
           "SCALE_BITS", "TRANSFORMS", "Transform", "TransformFacts", "facts", "lane_unit",
           "parse_transform", "smooth_scales"]

#: Rotation names (:attr:`Transform.kind`).
KINDS = ("none", "hadamard", "rht")
#: Quantizer names (:attr:`Transform.quantizer`).
QUANTIZERS = ("none", "afpq", "group", "zeropoint")
#: Every part of a transform spelling, its grammar and what it does: the one list of names.
TRANSFORMS: dict[str, tuple[str, str]] = {
    "smoothquant": ("smoothquant[:ALPHA]", ("per-channel scales moved from activations to "
                                            "weights (folded, free at inference)")),
    "hadamard": ("hadamard[:BLOCK][@LANES]", ("block Hadamard rotation of both operands along "
                                              "K (LANES: the FWHT unit's lane format for the "
                                              "activations; default float64)")),
    "rht": ("rht[:BLOCK[:SEED]][@LANES]", "random-sign block Hadamard rotation along K"),
    "afpq": ("afpq[:GROUP]", "weights: asymmetric FP, a positive and a negative scale per group"),
    "group": ("group[:GROUP]", "weights: symmetric, one scale per group"),
    "zeropoint": ("zeropoint[:GROUP]", ("integer operands: scale and integer zero-point, exact "
                                        "GEMM correction (GROUP: weights per group, "
                                        "dequantized)")),
}
_STAGE = {"smoothquant": 0, "hadamard": 1, "rht": 1, "afpq": 2, "group": 2, "zeropoint": 2}
_GRAMMAR = ("none or a '+'-joined list of " + ", ".join(g for g, _ in TRANSFORMS.values())
            + " (one of each stage)")
#: Default rotation block (the MX block size).
DEFAULT_BLOCK = 32
#: Default SmoothQuant migration strength (arXiv 2211.10438 §4: 0.5 for most models).
DEFAULT_ALPHA = 0.5
#: Default group of the group quantizers (AFPQ's main tables: 128).
DEFAULT_GROUP = 128
#: Bits of a stored group scale (float16, as weight-only kernels keep them).
SCALE_BITS = 16
_GROUP_MAX = 1 << 16


@dataclass(frozen=True)
class Transform:
    """A transform of the GEMM operands (module docstring): a rotation ``kind`` (``block``,
    ``seed``; ``lanes``: the format name of the FWHT unit's lanes that rotate the activations,
    None: float64), SmoothQuant with ``alpha`` (None: none) and a ``quantizer`` with ``group``
    (None: at the ``--scaling`` granularity)."""

    kind: str = "none"
    block: int = DEFAULT_BLOCK
    seed: int = 0
    alpha: float | None = None
    quantizer: str = "none"
    group: int | None = None
    lanes: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ArithforgeError(f"transform must be {_GRAMMAR}, not {self.kind!r}")
        b = self.block
        if isinstance(b, bool) or not isinstance(b, int) or b < hadamard.BLOCK_MIN \
                or b > hadamard.BLOCK_MAX or b & (b - 1):
            raise ArithforgeError(f"transform block must be a power of two from "
                                  f"{hadamard.BLOCK_MIN} to {hadamard.BLOCK_MAX}, not {b!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < 2**63:
            raise ArithforgeError(f"transform seed must be an integer from 0 to 2**63-1, not "
                                  f"{self.seed!r}")
        a = self.alpha
        if a is not None and (isinstance(a, bool) or not isinstance(a, int | float)
                              or not 0 <= a <= 1):
            raise ArithforgeError(f"smoothquant alpha must be a number from 0 to 1, not {a!r}")
        if a is not None:
            object.__setattr__(self, "alpha", float(a))
        if self.quantizer not in QUANTIZERS:
            raise ArithforgeError(f"transform quantizer must be one of {', '.join(QUANTIZERS)}, "
                                  f"not {self.quantizer!r}")
        g = self.group
        if g is not None and (isinstance(g, bool) or not isinstance(g, int)
                              or not 2 <= g <= _GROUP_MAX):
            raise ArithforgeError(f"transform group must be an integer from 2 to {_GROUP_MAX}, "
                                  f"not {g!r}")
        if self.quantizer in ("afpq", "group") and g is None:
            object.__setattr__(self, "group", DEFAULT_GROUP)
        if self.quantizer == "none" and g is not None:
            raise ArithforgeError("transform group needs a quantizer (afpq, group, zeropoint)")
        if self.lanes is not None:
            if self.kind == "none":
                raise ArithforgeError(f"transform lanes @{self.lanes} need a rotation "
                                      f"(hadamard, rht)")
            lane_unit(self.kind, b, self.lanes)  # the FWHT unit's own checks

    @property
    def name(self) -> str:
        """The spelling :func:`parse_transform` reads back."""
        parts = []
        if self.alpha is not None:
            parts.append(f"smoothquant:{self.alpha!r}")
        lanes = "" if self.lanes is None else f"@{self.lanes}"
        if self.kind == "hadamard":
            parts.append(f"hadamard:{self.block}{lanes}")
        elif self.kind == "rht":
            parts.append(f"rht:{self.block}:{self.seed}{lanes}")
        if self.quantizer != "none":
            parts.append(self.quantizer + ("" if self.group is None else f":{self.group}"))
        return "+".join(parts) or "none"

    @property
    def smooths(self) -> bool:
        """Whether SmoothQuant scales the weight GEMMs (needs calibration rows)."""
        return self.alpha is not None

    def _signs(self, k: int) -> npt.NDArray[np.float64] | None:
        kp = -(-k // self.block) * self.block
        return hadamard.random_signs(kp, self.seed) if self.kind == "rht" else None

    def apply(self, operand: npt.ArrayLike) -> npt.NDArray[Any]:
        """Rotate the rows of a ``(rows, K)`` operand in float64 (the weights, offline); no
        rotation returns it as it is."""
        if self.kind == "none":
            return np.asarray(operand)
        v = np.asarray(operand, dtype=np.float64)
        return hadamard.rotate(v, self.block, self._signs(v.shape[-1]))

    def apply_online(self, operand: npt.ArrayLike) -> npt.NDArray[Any]:
        """Rotate the rows of a ``(rows, K)`` activation operand as the FWHT unit does: in its
        ``lanes`` format (module docstring), then scaled by ``1/sqrt(block)`` in float64;
        float64 lanes (None) are :meth:`apply`.

        Returns
        -------
        ndarray of float64, shape ``(rows, ceil(K / block) * block)``
        """
        if self.kind == "none" or self.lanes is None:
            return self.apply(operand)
        from ..formats import FloatFormat, get_format

        v = np.asarray(operand, dtype=np.float64)
        lead, k = v.shape[:-1], v.shape[-1]
        kp = -(-k // self.block) * self.block
        if kp != k:
            v = np.concatenate([v, np.zeros((*lead, kp - k))], axis=-1)
        signs = self._signs(k)
        if signs is not None:
            v = v * signs  # a sign flip: exact in any lane format
        blocks = v.reshape(*lead, kp // self.block, self.block)
        fmt = get_format(self.lanes)
        if isinstance(fmt, FloatFormat):
            codes = fmt.encode(blocks)
            y = fmt.decode(hadamard.fwht_float(codes, fmt))
        else:
            from .quantize import quantize

            q = quantize(blocks.reshape(-1, self.block), fmt, "per-tensor")
            width = fmt.bits + self.block.bit_length() - 1
            out = hadamard.fwht_int(np.asarray(q.codes), fmt.bits).astype(np.int64)
            out = out - ((out >> (width - 1)) << width)  # two's complement
            y = (out.astype(np.float64) * q.scale).reshape(blocks.shape)
        return (y / np.sqrt(self.block)).reshape(*lead, kp)


def lane_unit(kind: str, block: int, lanes: str) -> Any:
    """The FWHT unit that rotates activations of rotation ``kind`` in blocks of ``block`` with
    lanes ``lanes`` (a format name): the unit of the datapath whose ``block_transforms`` holds
    ``kind``, built with ``n = block`` and ``fmt = lanes`` (float) or ``bits`` (integer).

    Raises
    ------
    ArithforgeError
        One line, when no datapath claims ``kind`` or the unit refuses the block or the format.
    """
    from ..datapaths import DATAPATHS
    from ..formats import IntFormat, get_format

    try:
        fmt = get_format(lanes)
    except ValueError as exc:
        raise ArithforgeError(f"transform lanes @{lanes}: {exc}") from None
    for d in DATAPATHS.values():
        if kind in getattr(d, "block_transforms", ()):
            lane = {"bits": fmt.bits} if isinstance(fmt, IntFormat) else {"fmt": lanes}
            try:
                return d.build_unit(n=block, **lane)
            except ArithforgeError as exc:
                raise ArithforgeError(f"transform lanes @{lanes} with block {block}: the FWHT "
                                      f"unit ({d.name}) refuses them: {exc}") from None
    raise ArithforgeError(f"transform lanes @{lanes}: no datapath computes {kind!r} online")


def smooth_scales(x_amax: npt.ArrayLike, w: npt.ArrayLike, alpha: float) -> npt.NDArray[Any]:
    """SmoothQuant's per-input-channel scales ``s_j = max|X_j|**alpha / max|W_j|**(1-alpha)``.

    ``x_amax`` holds ``max|X_j|`` over the calibration rows (length K), ``w`` is ``(N, K)``.
    A channel whose activations or weights are all zero keeps ``s_j = 1``. Float64.
    """
    ax = np.asarray(x_amax, dtype=np.float64)
    aw = np.max(np.abs(np.asarray(w, dtype=np.float64)), axis=0)
    ok = (ax > 0) & (aw > 0) & np.isfinite(ax) & np.isfinite(aw)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.where(ok, ax ** alpha / aw ** (1.0 - alpha), 1.0)
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


@dataclass(frozen=True)
class TransformFacts:
    """What a transform needs in hardware, for the cost side (explore, report).

    Parameters
    ----------
    transform : str
        The transform's spelling.
    folded : bool
        True when it adds nothing at inference (everything done offline or folded into
        neighbouring ops): SmoothQuant alone, a weights-only rotation is not a case here.
    unfoldable : str
        Where the folding does not hold (the emulation still applies the transform there).
    online_unit : str or None
        The unit that transforms activations at run time (``hadamard``: the FWHT unit of the
        rotation block, ``arithforge cost hadamard``).
    online_block : int or None
        Its block size.
    online_lanes : str or None
        Its lane format as the transform names it (None: not named; the block cost then uses
        ``[block] fwht_format``, the accuracy float64 lanes).
    weight_group : int or None
        Weights per stored group scale (group quantizers).
    scales_per_group : int
        Stored scales per weight group (AFPQ 2, a symmetric group 1, zero-point groups 1).
    scale_bits : int
        Bits of each stored scale.
    zero_point_bits : int or None
        Bits of each stored integer zero-point: the operand format's width (None: none).
    selects_per_dequant : int
        Multiplexers per dequantized weight (AFPQ: the sign picks the positive or negative
        scale).
    dequant_multiplies_per_weight : int
        Multiplies per weight to dequantize it before the GEMM (group schemes: code x scale).
    zero_point_operands : tuple of str
        ``weights`` and/or ``acts`` when the integer GEMM is corrected for zero-points.
    correction_adds_per_output : int
        Adders per GEMM output for the zero-point cross terms: ``- zw * sum_k qx`` (weight
        zero-point), ``- zx * sum_k qw`` (activation zero-point; ``sum_k qw`` precomputed
        offline) and ``+ K zx zw`` (both).
    correction_multiplies_per_output : int
        Multiplies per output for those terms (``zx * sum qw``, ``zw * sum qx``; ``K zx zw``
        folds into a bias per output column with per-tensor activation zero-points).
    row_sum_adds_per_act : int
        Adds per activation element for ``sum_k qx`` (1 when weights have a zero-point).
    """

    transform: str
    folded: bool
    unfoldable: str = ""
    online_unit: str | None = None
    online_block: int | None = None
    online_lanes: str | None = None
    weight_group: int | None = None
    scales_per_group: int = 0
    scale_bits: int = 0
    zero_point_bits: int | None = None
    selects_per_dequant: int = 0
    dequant_multiplies_per_weight: int = 0
    zero_point_operands: tuple[str, ...] = ()
    correction_adds_per_output: int = 0
    correction_multiplies_per_output: int = 0
    row_sum_adds_per_act: int = 0

    def extra_bits_per_weight(self, k: int, zero_point_bits: int = 0) -> float:
        """Storage per weight beyond its code: group scales (and zero-points) spread over the
        group, or one per-channel zero-point of ``zero_point_bits`` spread over ``k``."""
        if self.weight_group:
            zp = self.zero_point_bits or 0
            return (self.scales_per_group * self.scale_bits + zp) / self.weight_group
        if "weights" in self.zero_point_operands:
            return (self.zero_point_bits or zero_point_bits) / max(1, k)
        return 0.0


def facts(transform: str | Transform | None, *, weights_int: bool = True,
          acts_int: bool = True, zero_point_bits: int | None = None) -> TransformFacts:
    """The hardware needs of ``transform`` (:class:`TransformFacts`).

    ``weights_int`` and ``acts_int`` say which operands are in integer formats (``zeropoint``
    applies to those); ``zero_point_bits`` is their width.
    """
    t = parse_transform(transform)
    online = t.kind != "none"
    kw: dict[str, Any] = {}
    if online:
        kw.update(online_unit="hadamard", online_block=t.block, online_lanes=t.lanes)
    if t.smooths:
        kw["unfoldable"] = ("a GEMM whose input comes from a nonlinear op (BERT's FFN output "
                            "projection after GELU) needs one multiply per input channel")
    if t.quantizer in ("afpq", "group") or (t.quantizer == "zeropoint" and t.group):
        kw.update(weight_group=t.group, scales_per_group=2 if t.quantizer == "afpq" else 1,
                  scale_bits=SCALE_BITS, dequant_multiplies_per_weight=1,
                  selects_per_dequant=1 if t.quantizer == "afpq" else 0)
        if t.quantizer == "zeropoint":
            kw.update(zero_point_bits=zero_point_bits, zero_point_operands=("weights",))
    elif t.quantizer == "zeropoint":
        ops = tuple(o for o, isint in (("weights", weights_int), ("acts", acts_int)) if isint)
        both = len(ops) == 2
        kw.update(zero_point_bits=zero_point_bits, zero_point_operands=ops,
                  correction_adds_per_output=len(ops) + int(both),
                  correction_multiplies_per_output=len(ops),
                  row_sum_adds_per_act=int("weights" in ops))
    folded = not online and t.quantizer == "none"
    return TransformFacts(t.name, folded, **kw)


def _number(part: str, what: str, text: str) -> int:
    if not part.isdigit():
        raise ArithforgeError(f"transform {what} must be a non-negative integer, not {part!r} "
                              f"(in {text!r})")
    return int(part)


def parse_transform(text: str | Transform | None) -> Transform:
    """Read a transform spelling (module docstring), e.g. ``smoothquant:0.5+hadamard:32``."""
    if text is None:
        return Transform()
    if isinstance(text, Transform):
        return text
    if not isinstance(text, str):
        raise ArithforgeError(f"transform must be a string, not {text!r}")
    spec = text.strip().lower()
    if spec == "none":
        return Transform()
    kw: dict[str, Any] = {}
    seen: dict[int, str] = {}
    for part in spec.split("+"):
        body, at, lanes = part.strip().partition("@")
        kind, *rest = body.strip().split(":")
        if at:
            if kind not in ("hadamard", "rht") or not lanes.strip():
                raise ArithforgeError(f"transform lanes (@FORMAT) follow a rotation "
                                      f"(hadamard[:BLOCK]@LANES), not {part.strip()!r} "
                                      f"(in {text!r})")
            kw["lanes"] = lanes.strip()
        limit = {"smoothquant": 1, "hadamard": 1, "rht": 2, "afpq": 1, "group": 1,
                 "zeropoint": 1}.get(kind)
        if limit is None or len(rest) > limit:
            raise ArithforgeError(f"transform must be {_GRAMMAR}, not {text!r}")
        stage = _STAGE[kind]
        if stage in seen:
            raise ArithforgeError(f"transform has both {seen[stage]!r} and {kind!r}: give one "
                                  f"of each stage (in {text!r})")
        seen[stage] = kind
        if kind == "smoothquant":
            alpha = DEFAULT_ALPHA
            if rest:
                try:
                    alpha = float(rest[0])
                except ValueError:
                    alpha = math.nan
                if not 0 <= alpha <= 1:
                    raise ArithforgeError(f"smoothquant alpha must be a number from 0 to 1, "
                                          f"not {rest[0]!r} (in {text!r})")
            kw["alpha"] = alpha
        elif kind in ("hadamard", "rht"):
            kw["kind"] = kind
            for value, what in zip(rest, ("block", "seed"), strict=False):
                kw[what] = _number(value, what, text)
        else:
            kw["quantizer"] = kind
            if rest:
                kw["group"] = _number(rest[0], "group", text)
    return Transform(**kw)
