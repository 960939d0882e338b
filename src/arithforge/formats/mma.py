# Ref: MMA-Sim, arXiv 2511.10909 §4; Khattak & Mikaitis, arXiv 2512.07004; Fasi et al., "Numerical
#      behavior of NVIDIA tensor cores" (PeerJ CS 2021).
"""Tensor-core accumulation: block-aligned, truncating multi-term addition.

One step adds ``n`` exact products and the running accumulator: every term is aligned to the
largest term's leading bit, truncated toward zero to ``frac_bits`` fraction bits below it, the
terms are summed exactly and the sum is rounded to the accumulator format. Steps chain over K.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._core import FINITE, INF, NAN, ZERO
from ._errors import FormatError
from .descriptors import FloatFormat
from .rounding import Rounding

__all__ = ["block_accumulate"]


def _step(
    cls: Any, neg: Any, sig: Any, exp: Any, facc: FloatFormat, frac_bits: int,
    out_rounding: Rounding,
) -> npt.NDArray[Any]:
    """One block step over the last axis of unpacked terms; returns accumulator codes."""
    finite = cls == FINITE
    top = np.where(finite, exp + _core.bit_length(sig) - 1, np.iinfo(np.int64).min // 2)
    max_top = top.max(axis=-1, keepdims=True)
    cut = max_top - frac_bits
    shift = cut - exp
    kept = np.where(shift > 0, sig >> np.clip(shift, 0, 63), sig << np.clip(-shift, 0, 62))
    kept = np.where(finite, kept, 0)
    total = np.where(neg, -kept, kept).sum(axis=-1)
    nan = (cls == NAN).any(-1)
    pinf = ((cls == INF) & ~neg).any(-1)
    ninf = ((cls == INF) & neg).any(-1)
    nan |= pinf & ninf
    inf = ~nan & (pinf | ninf)
    zero = ~nan & ~inf & (total == 0)
    rcls = np.select([nan, inf, zero], [NAN, INF, ZERO], FINITE).astype(np.int8)
    rneg = np.where(inf, ninf, total < 0) & ~zero
    return _core.round_float(facc, rneg, np.abs(total), cut[..., 0], out_rounding, cls=rcls)


def block_accumulate(
    a: npt.NDArray[Any], b: npt.NDArray[Any], fmt_a: FloatFormat, fmt_b: FloatFormat,
    fmt_acc: FloatFormat, c: npt.NDArray[Any], *, n: int, frac_bits: int,
    out_rounding: Rounding,
) -> npt.NDArray[Any]:
    """Accumulate ``c + sum_k a_k b_k`` over the last axis in steps of ``n`` products."""
    from .ops import _prepare, _product  # shared product semantics (specials, exactness)

    if n < 1 or frac_bits < 1 or frac_bits + 2 + int(n).bit_length() > _core.SIG_LIMIT_BITS:
        raise FormatError(
            f"block accumulation needs n >= 1 and 1 <= frac_bits <= {_core.SIG_LIMIT_BITS - 2} "
            f"- bits(n), not n={n}, frac_bits={frac_bits}"
        )
    acc = np.asarray(c)
    k = a.shape[-1]
    for start in range(0, max(k, 1), n):
        x, y = _prepare([a[..., start:start + n], b[..., start:start + n]], [fmt_a, fmt_b], False)
        pcls, pneg, psig, pexp = _product(x, y)
        z = _prepare([acc], [fmt_acc], False)[0]
        cls = np.concatenate([pcls, z.cls[..., None]], axis=-1)
        neg = np.concatenate([pneg, z.neg[..., None]], axis=-1)
        sig = np.concatenate([psig, z.sig[..., None]], axis=-1)
        exp = np.concatenate([pexp, z.exp[..., None]], axis=-1)
        acc = _step(cls, neg, sig, exp, fmt_acc, frac_bits, out_rounding)
    return acc
