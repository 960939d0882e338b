"""How often ``b200-mxf4`` / ``b200-nvfp4`` give the codes of MMA-Sim's published B200 rule.

MMA-Sim (arXiv 2511.10909) aligns each 16-product group of ``tcgen05.mma`` kind::mxf4* at the sum
of its two block-scale exponents alone and counts every group; arithforge's groups align at the
largest non-zero product's exponent plus those exponents (docs/tensor-cores.md, "Beyond the
H100"). This script implements the published rule independently, in exact rationals (F = 35,
terms cut toward zero at the step's largest exponent, the float32 accumulator included, the step
sum cut toward zero to float32), chains it over K in steps of 64 as the presets do, and counts
the output codes on which the two agree.

    python benchmarks/b200_group_alignment.py [--k 1024] [--size 8] [--trials 4]
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction

import numpy as np

from arithforge.formats import FloatFormat, get_format, mma

F = 35
N_STEP, GROUP = 64, 16


def _exp(x: Fraction, emin: int) -> int | None:
    """floor(log2 |x|), at least ``emin`` (the format's subnormal exponent); None for 0."""
    if x == 0:
        return None
    e = math.floor(math.log2(abs(x)))
    while Fraction(2) ** e > abs(x):  # log2 of a Fraction may round up
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    return max(e, emin)


def _rz_f32(x: Fraction) -> Fraction:
    e = _exp(x, -126)
    if e is None:
        return Fraction(0)
    q = Fraction(2) ** (e - 23)
    return math.trunc(x / q) * q


def published_step(c: Fraction, groups: list[tuple[Fraction, Fraction, Fraction]],
                   scale_emin: int) -> Fraction:
    """One kind::mxf4* step as MMA-Sim describes it: ``groups`` of (exact sum, scale a,
    scale b)."""
    terms: list[tuple[Fraction, int]] = []
    ec = _exp(c, -126)
    if ec is not None:
        terms.append((c, ec))
    for s, sa, sb in groups:
        ea, eb = _exp(sa, scale_emin), _exp(sb, scale_emin)
        if ea is None or eb is None:
            continue
        terms.append((s * sa * sb, ea + eb))
    if not terms:
        return Fraction(0)
    q = Fraction(2) ** (max(e for _, e in terms) - F)
    return _rz_f32(sum((math.trunc(v / q) * q for v, _ in terms), Fraction(0)))


def published_matmul(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray,
                     sf: FloatFormat, block: int) -> np.ndarray:
    e2m1 = get_format("float4_e2m1fn")
    av = [[Fraction(float(v)) for v in row] for row in e2m1.decode(a)]
    bv = [[Fraction(float(v)) for v in row] for row in e2m1.decode(b).T]
    sav = [[Fraction(float(v)) for v in row] for row in sf.decode(sa)]
    sbv = [[Fraction(float(v)) for v in row] for row in sf.decode(sb).T]
    scale_emin = sf.emin
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = Fraction(0)
            for k0 in range(0, a.shape[1], N_STEP):
                groups = []
                for g in range(k0, k0 + N_STEP, GROUP):
                    s = sum((av[i][k] * bv[j][k] for k in range(g, g + GROUP)), Fraction(0))
                    groups.append((s, sav[i][g // block], sbv[j][g // block]))
                acc = published_step(acc, groups, scale_emin)
            out[i, j] = float(acc)
    return out


def _case(rng: np.random.Generator, model: str, k: int, size: int, spread: str
          ) -> tuple[int, int]:
    m = mma.get_model(model)
    assert m.block is not None
    assert m.scale_format is not None
    sf, block = m.scale_format, m.block
    a = rng.integers(0, 16, size=(size, k))
    b = rng.integers(0, 16, size=(k, size))
    if sf.name == "float8_e8m0fnu":
        lo, hi = (124, 131) if spread == "narrow" else (100, 155)
    else:  # UE4M3: positive finite codes
        lo, hi = (0x30, 0x41) if spread == "narrow" else (0x01, 0x7F)
    sa = rng.integers(lo, hi, size=(size, k // block))
    sb = rng.integers(lo, hi, size=(k // block, size))
    e2m1 = get_format("float4_e2m1fn")
    assert isinstance(e2m1, FloatFormat)
    ours = mma.matmul(a, b, e2m1, model=model, block_scale_a=sa, block_scale_b=sb)
    f32 = get_format("float32")
    want = f32.encode(published_matmul(a, b, sa, sb, sf, block))
    return int((ours == want).sum()), ours.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"K={args.k}, {args.size}x{args.size} outputs x {args.trials} trials, seed {args.seed}")
    print(f"{'model':12} {'scales':7} {'agree':>12} {'rate':>8}")
    for model in ("b200-mxf4", "b200-nvfp4"):
        for spread in ("narrow", "wide"):
            same = total = 0
            for _ in range(args.trials):
                s, t = _case(rng, model, args.k, args.size, spread)
                same, total = same + s, total + t
            print(f"{model:12} {spread:7} {f'{same}/{total}':>12} {100 * same / total:7.2f}%")


if __name__ == "__main__":
    main()
