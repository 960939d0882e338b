# Ref: FloPoCo (de Dinechin & Pasca, "Designing custom arithmetic data paths with FloPoCo", IEEE
#      Design & Test 2011): each operator's standard (corner) and random test cases.
"""Test vectors of float datapaths: corner codes of a format, crossing, filling and sampling."""

from __future__ import annotations

import numpy as np

from ..formats import FloatFormat, Specials
from .base import DatapathError

__all__ = ["corner_codes", "cross", "uniform", "EXHAUSTIVE_LIMIT_BITS", "exhaustive",
           "resize"]

#: An exhaustive sweep holds at most 2**26 vectors.
EXHAUSTIVE_LIMIT_BITS = 26


def corner_codes(fmt: FloatFormat) -> np.ndarray:
    """Boundary codes of ``fmt``, both signs: zeros, subnormal ends, normal ends, values around
    one and two, the largest values, infinities and NaNs."""
    m, b = fmt.man_bits, fmt._bias
    one = b << m
    mags = {0, 1, 2, (1 << m) - 1, 1 << m, (1 << m) + 1, one, one + 1, one - 1, (b + 1) << m,
            ((b + 1) << m) - 1, fmt.max_mag, fmt.max_mag - 1, fmt.max_mag >> 1,
            ((b - 1) << m) | (1 << max(m - 1, 0))}
    if fmt.inf_code is not None:
        mags.add(fmt.inf_code)
    if fmt.specials is Specials.IEEE:
        mags |= {fmt.inf_code + 1, (1 << fmt.mag_bits) - 1}  # type: ignore[operator]
    if fmt.specials is Specials.FN or (fmt.specials is Specials.EXT and not fmt.signed):
        mags.add((1 << fmt.mag_bits) - 1)
    mags = {v for v in mags if 0 <= v < (1 << fmt.mag_bits)}
    codes = set(mags)
    if fmt.signed:
        codes |= {v | fmt.sign_mask for v in mags}
    return np.array(sorted(codes), dtype=np.uint64)


def cross(*columns: np.ndarray) -> list[np.ndarray]:
    """Every combination of the given code lists (first varies slowest)."""
    grids = np.meshgrid(*columns, indexing="ij")
    return [g.ravel().astype(np.uint64) for g in grids]


def uniform(rng: np.random.Generator, bits: int, n: int) -> np.ndarray:
    """``n`` uniformly random ``bits``-bit codes."""
    return rng.integers(0, 1 << bits, size=n, dtype=np.uint64)


def exhaustive(spaces: dict[str, int]) -> dict[str, np.ndarray]:
    """Every combination of operands of the given widths, or ValueError past 2**26."""
    total = sum(spaces.values())
    if total > EXHAUSTIVE_LIMIT_BITS:
        shown = " x ".join(f"2**{w} ({op})" for op, w in spaces.items())
        raise DatapathError(f"exhaustive vectors must number at most 2**{EXHAUSTIVE_LIMIT_BITS}, "
                         f"not 2**{total} = {shown}; use random or corner vectors")
    cols = cross(*[np.arange(1 << w, dtype=np.uint64) for w in spaces.values()])
    return dict(zip(spaces, cols, strict=True))


def resize(rng: np.random.Generator, vectors: dict[str, np.ndarray], n: int | None,
           extra: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Subsample ``vectors`` to ``n``, or top them up with ``extra`` (drawn as needed)."""
    size = len(next(iter(vectors.values())))
    if n is None or n == size:
        return vectors
    if n < size:
        pick = np.sort(rng.choice(size, size=n, replace=False))
        return {k: v[pick] for k, v in vectors.items()}
    assert extra is not None
    return {k: np.concatenate([v, extra[k][:n - size]]) for k, v in vectors.items()}
