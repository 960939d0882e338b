# Ref: QuaRot (Ashkboos et al., arXiv 2404.00456 §3: computational invariance x W = (x Q)(Q^T W)
#      for orthogonal Q; randomized Hadamard Q = H D); "Training LLMs with MXFP4" (Tseng et al.,
#      arXiv 2502.20586: a random Hadamard transform of blocks along the reduction dimension
#      before MXFP4 quantization); NVIDIA "Pretraining LLMs with NVFP4" (arXiv 2509.25149:
#      16x16 random Hadamard transforms).
"""Outlier transforms of the GEMM operands before quantization: the block Hadamard rotation.

``hadamard[:BLOCK]`` rotates every row of both GEMM operands (activations ``X[M, K]`` and weights
``W[N, K]``) along K by the block-diagonal orthonormal ``Q = H_b / sqrt(b)`` (Sylvester order,
``b = BLOCK``, default 32), ``rht[:BLOCK[:SEED]]`` by ``Q = D H_b / sqrt(b)`` with ``D`` a
diagonal of random signs drawn from ``SEED`` (default 0) over the whole of K. Since
``Q Q^T = I``, ``(X Q)(W Q)^T = X W^T`` in exact arithmetic: the transform changes only what the
quantizer sees, which is the point (an outlier channel is spread over its block). K is padded
with zeros to a multiple of the block, which leaves the product unchanged too.

The rotation is computed in float64 (:func:`arithforge.formats.hadamard.rotate`), i.e. an exact
rotation up to float64 rounding; in hardware the weights are rotated offline and the
activations by the FWHT unit (``arithforge generate hadamard``), whose cost ``arithforge cost
hadamard`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import ArithforgeError
from ..formats import hadamard

__all__ = ["DEFAULT_BLOCK", "KINDS", "Transform", "parse_transform"]

#: Transform names.
KINDS = ("none", "hadamard", "rht")
#: Default rotation block (the MX block size).
DEFAULT_BLOCK = 32


@dataclass(frozen=True)
class Transform:
    """A transform of both GEMM operands along K (module docstring)."""

    kind: str = "none"
    block: int = DEFAULT_BLOCK
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ArithforgeError(f"transform must be one of none, hadamard[:BLOCK], "
                                  f"rht[:BLOCK[:SEED]], not {self.kind!r}")
        b = self.block
        if isinstance(b, bool) or not isinstance(b, int) or b < hadamard.BLOCK_MIN \
                or b > hadamard.BLOCK_MAX or b & (b - 1):
            raise ArithforgeError(f"transform block must be a power of two from "
                                  f"{hadamard.BLOCK_MIN} to {hadamard.BLOCK_MAX}, not {b!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < 2**63:
            raise ArithforgeError(f"transform seed must be an integer from 0 to 2**63-1, not "
                                  f"{self.seed!r}")

    @property
    def name(self) -> str:
        """The spelling :func:`parse_transform` reads back."""
        if self.kind == "none":
            return "none"
        if self.kind == "hadamard":
            return f"hadamard:{self.block}"
        return f"rht:{self.block}:{self.seed}"

    def apply(self, operand: npt.ArrayLike) -> npt.NDArray[Any]:
        """Rotate the rows of a ``(rows, K)`` operand; ``none`` returns it as it is."""
        if self.kind == "none":
            return np.asarray(operand)
        v = np.asarray(operand, dtype=np.float64)
        kp = -(-v.shape[-1] // self.block) * self.block
        signs = hadamard.random_signs(kp, self.seed) if self.kind == "rht" else None
        return hadamard.rotate(v, self.block, signs)


def parse_transform(text: str | Transform | None) -> Transform:
    """Read ``none``, ``hadamard[:BLOCK]`` or ``rht[:BLOCK[:SEED]]``."""
    if text is None:
        return Transform()
    if isinstance(text, Transform):
        return text
    if not isinstance(text, str):
        raise ArithforgeError(f"transform must be a string, not {text!r}")
    kind, *rest = text.strip().lower().split(":")
    limit = {"none": 0, "hadamard": 1, "rht": 2}.get(kind)
    if limit is None or len(rest) > limit:
        raise ArithforgeError(f"transform must be none, hadamard[:BLOCK] or rht[:BLOCK[:SEED]], "
                              f"not {text!r}")
    values = []
    for part, what in zip(rest, ("block", "seed"), strict=False):
        if not part.isdigit():
            raise ArithforgeError(f"transform {what} must be a non-negative integer, not "
                                  f"{part!r} (in {text!r})")
        values.append(int(part))
    return Transform(kind, *values)
