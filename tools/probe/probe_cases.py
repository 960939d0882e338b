# Ref: MMA-Sim, arXiv 2511.10909 (probe designs for fraction bits, rounding and summation order);
#      FPRev-style block detection (cancel a big pair, watch which small terms survive).
"""Deterministic input designs for the tensor-core probe (numpy only).

Every probe is a set of ``Q`` independent dot-product *queries* ``c + sum_k a[k] * b[k]`` given
as input codes ``A (Q, K)``, ``B (Q, K)`` and an fp32 accumulator ``C (Q,)``, plus per-query
parameters that say what each query tests. Let ``X = 2**x`` be a large power of two of the group
and ``T = X*X`` the big product:

``trunc_k``        ``T - T + 2**(2x-k)``: the small term survives iff ``k <= F``.
``trunc_k_late``   same with the small term at position 15 (last of a 16-step).
``trunc_k_sig225`` big products ``1.5X * 1.5X`` (significand 2.25): survives iff ``k <= F`` when
                   products align on ``exp_a + exp_b``, ``k <= F - 1`` when normalised.
``trunc_k_c``      small term in the accumulator ``c``, big pair in the products (needs ``c``).
``trunc_k_cbig``   ``c = T``, products ``-T`` and the small term (needs ``c``).
``term_round``     ``T - T + r * 2**(2x-f)`` for candidate ``F = f`` and fractions ``r``: at
                   ``f = F`` the result is the cut of ``r`` (RZ/RD/RNE tell apart by sign).
``out_round``      ``s*T + r*ulp32(T)`` and carry variants: fp32 result rounding.
``block_pos``      ``+T`` at 0, ``-T`` at ``j``, tiny ``y*y`` elsewhere: the tiny terms that
                   share a step with a big term vanish, so the result jumps at step boundaries.
``chain_rz``       ``T`` then ``0.75 ulp32(T)`` once in each of ``t`` later 16-blocks.
``promo``          ``T`` at ``j`` and ``0.75 ulp32(T)`` at ``i``: the small term counts only if
                   ``i`` and ``j`` are summed by an fp32 RNE adder (promotion or split-K), not
                   when they meet inside the tensor core accumulator (RZ) or get cut.
``promo_uniform``  ``T`` at 0 and ``2**(2x-16)`` at every other position, for several K.
``sanity_int``     small integers: exact under any model (checks data layouts).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import mma_model as mm  # noqa: E402

GROUPS: dict[str, tuple[str, str]] = {
    "e4m3xe4m3": ("float8_e4m3fn", "float8_e4m3fn"),
    "e5m2xe4m3": ("float8_e5m2", "float8_e4m3fn"),
    "e5m2xe5m2": ("float8_e5m2", "float8_e5m2"),
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("float16", "float16"),
    # fp16 inputs with an fp16 accumulator: smaller values so that sums stay finite
    "fp16acc": ("float16", "float16"),
}
_BIG_X = {"fp16": 7, "fp16acc": 5}  # exponent of the big factor X (fp16 outputs must stay finite)
_RAND_EXP = {"fp16": (-15, 6), "fp16acc": (-10, 2)}  # exponent window of random inputs
# K -> number of random 16x16xK cases per group
RAND_K: dict[int, int] = {32: 16, 64: 12, 128: 12, 256: 6, 1024: 2, 4096: 1}
RAND_GENERATORS = ("codes", "lognormal", "cancel", "spread", "narrow")
FRACTIONS = (0.25, 0.5, 0.75, 1.25, 1.5, 1.75)


def _exp_range(fmt: mm.FloatFormat, *, sub: bool) -> tuple[int, int]:
    lo = fmt.emin - fmt.man_bits if sub else fmt.emin
    hi = min(fmt.emax, 60)
    return max(lo, -60), hi


def _split(value_sig: float, e: int, fa: mm.FloatFormat, fb: mm.FloatFormat):
    """Factor ``value_sig * 2**e`` (``1 <= |value_sig| < 2``) as ``a * b`` representable in
    ``fa`` x ``fb``; ``a`` carries the significand. Prefers normal numbers. None if impossible."""
    best = None
    for sub in (False, True):
        lo_a, hi_a = _exp_range(fa, sub=sub)
        lo_b, hi_b = _exp_range(fb, sub=sub)
        order = sorted(range(lo_a, hi_a + 1), key=lambda ea: abs(ea - e / 2))
        for ea in order:
            eb = e - ea
            if not lo_b <= eb <= hi_b:
                continue
            a, b = value_sig * 2.0**ea, 2.0**eb
            try:
                mm.encode_exact([a], fa)
                mm.encode_exact([b], fb)
            except ValueError:
                continue
            best = (a, b)
            break
        if best:
            return best
    return None


def _big_exponent(fa: mm.FloatFormat, fb: mm.FloatFormat) -> int:
    """x such that 1.75 * 2**x fits both formats (room for 1.5X and sums)."""
    return min(fa.emax, fb.emax, 20) - 1


class _Builder:
    """Collects queries for one probe."""

    def __init__(self, fa, fb, K):
        self.fa, self.fb, self.K = fa, fb, K
        self.rows_a, self.rows_b, self.cs, self.params = [], [], [], []

    def add(self, terms, c=0.0, param=(0,)):
        """``terms``: list of (position, a_value, b_value). Returns False if unrepresentable."""
        a = np.zeros(self.K)
        b = np.zeros(self.K)
        for pos, va, vb in terms:
            a[pos], b[pos] = va, vb
        try:
            ca, cb = mm.encode_exact(a, self.fa), mm.encode_exact(b, self.fb)
        except ValueError:
            return False
        if np.float32(c) != c:
            return False
        self.rows_a.append(ca)
        self.rows_b.append(cb)
        self.cs.append(c)
        self.params.append(tuple(float(p) for p in param))
        return True

    def product(self, pos, sig, e):
        ab = _split(sig, e, self.fa, self.fb)
        return None if ab is None else (pos, ab[0], ab[1])

    def done(self, needs_c=False):
        if not self.rows_a:
            return None
        return {
            "A": np.stack(self.rows_a),
            "B": np.stack(self.rows_b),
            "C": mm.float32_bits(np.array(self.cs, dtype=np.float32)),
            "param": np.array(self.params, dtype=np.float64),
            "needs_c": np.array(needs_c),
        }


def build_probes(group: str) -> dict[str, dict]:
    """All structured probes of one input group."""
    fa, fb = (mm.FORMATS[f] for f in GROUPS[group])
    x = _BIG_X.get(group, _big_exponent(fa, fb))
    T = 2 * x  # exponent of the big product
    acc_frac = 10 if group == "fp16acc" else 23  # fraction bits of the accumulator output
    fp8 = fa.bits == 8
    probes: dict[str, dict] = {}

    def big(pos, sign=1.0, sig=1.0):
        return (pos, sign * sig * 2.0**x, sig * 2.0**x)

    # alignment / truncation: fraction bits F
    for name, pos_small, sig in (("trunc_k", 2, 1.0), ("trunc_k_late", 15, 1.0),
                                 ("trunc_k_sig225", 2, 1.5)):
        bld = _Builder(fa, fb, 64)
        for k in range(1, 45):
            s = bld.product(pos_small, 1.0, T - k)
            if s is None:
                continue
            bld.add([big(0, 1.0, sig), big(1, -1.0, sig), s], param=(k,))
        probes[name] = bld.done()
    bld = _Builder(fa, fb, 64)
    for k in range(1, 45):
        bld.add([big(0), big(1, -1.0)], c=2.0 ** (T - k), param=(k,))
    probes["trunc_k_c"] = bld.done(needs_c=True)
    bld = _Builder(fa, fb, 64)
    for k in range(1, 45):
        s = bld.product(2, 1.0, T - k)
        if s is not None:
            bld.add([big(0, -1.0), s], c=2.0**T, param=(k,))
    probes["trunc_k_cbig"] = bld.done(needs_c=True)

    # rounding of cut terms, for each candidate F
    bld = _Builder(fa, fb, 64)
    for f in range(6, 32):
        for r in FRACTIONS:
            for sgn in (1.0, -1.0):
                e = int(np.floor(np.log2(r)))
                s = bld.product(2, sgn * r / 2.0**e, T - f + e)
                if s is not None:
                    bld.add([big(0), big(1, -1.0), s], param=(f, sgn * r))
    probes["term_round"] = bld.done()

    # output rounding to fp32: s*T + r*ulp(T), and with a carry (T + T + r*ulp(2T))
    bld = _Builder(fa, fb, 64)
    for variant, nbig in ((0, 1), (1, 2)):
        for bsign in (1.0, -1.0):
            for r in FRACTIONS:
                for sgn in (1.0, -1.0):
                    e = int(np.floor(np.log2(r)))
                    ulp_e = T + (nbig - 1) - acc_frac
                    s = bld.product(5, sgn * r / 2.0**e, ulp_e + e)
                    if s is None:
                        continue
                    terms = [big(0, bsign)] + ([big(1, bsign)] if nbig == 2 else []) + [s]
                    bld.add(terms, param=(variant, bsign, sgn * r))
    probes["out_round"] = bld.done()

    # step size: +T at 0, -T at j, tiny terms elsewhere
    Kb = 256 if fp8 else 128
    bld = _Builder(fa, fb, Kb)
    tiny = None
    for drop in range(34, 26, -1):
        tiny = bld.product(0, 1.0, T - drop)
        if tiny is not None:
            break
    if tiny is not None:
        _, ta, tb = tiny
        for j in range(1, Kb):
            terms = [(p, ta, tb) for p in range(Kb)]
            terms[0] = big(0)
            terms[j] = big(j, -1.0)
            bld.add(terms, param=(j,))
    probes["block_pos"] = bld.done()

    # chaining: T then 0.75 ulp(T) in t later 16-blocks
    bld = _Builder(fa, fb, 256)
    for t in range(1, 16):
        terms = [big(0)]
        for u in range(1, t + 1):
            s = bld.product(16 * u + 3, 1.5, T - acc_frac - 1)
            if s is not None:
                terms.append(s)
        bld.add(terms, param=(t,))
    probes["chain_rz"] = bld.done()

    # promotion / split-K: T at j, 0.75 ulp(T) at i
    Kp = 4096
    bld = _Builder(fa, fb, Kp)
    for j in (0, 1000, 2047, 3001):
        for t in range(256):
            i = 16 * t + 7
            if i == j:
                continue
            s = bld.product(i, 1.5, T - acc_frac - 1)
            bld.add([big(j), s], param=(j, i))
    probes["promo"] = bld.done()
    bld = _Builder(fa, fb, Kp)
    small = bld.product(0, 1.0, T - 16)
    for Kq in (128, 256, 512, 1024, 2048, 4096):
        terms = [(p, small[1], small[2]) for p in range(1, Kq)]
        bld.add([big(0)] + terms, param=(Kq,))
    probes["promo_uniform"] = bld.done()

    # layout sanity: small integers, exact under any model
    rng = np.random.default_rng(99)
    bld = _Builder(fa, fb, 64)
    for _ in range(32):
        a = rng.integers(-4, 5, 64)
        b = rng.integers(-4, 5, 64)
        bld.add([(p, float(a[p]), float(b[p])) for p in range(64)], param=(0,))
    probes["sanity_int"] = bld.done()
    return {k: v for k, v in probes.items() if v is not None}


# ---------------------------------------------------------------- random matrices


def _rand_codes(rng, fmt: mm.FloatFormat, shape, exps) -> np.ndarray:
    """Codes with given unbiased exponents (array), random sign and mantissa; exponents below
    emin become subnormal codes."""
    exps = np.asarray(exps, dtype=np.int64)
    sign = rng.integers(0, 2, size=shape, dtype=np.int64)
    man = rng.integers(0, 1 << fmt.man_bits, size=shape, dtype=np.int64)
    e_field = np.clip(exps + fmt.bias, 0, (1 << fmt.exp_bits) - (1 if fmt.finite_only else 2))
    codes = (sign << (fmt.bits - 1)) | (e_field << fmt.man_bits) | man
    if fmt.finite_only:  # avoid the NaN code S.1111.111
        nan = (e_field == (1 << fmt.exp_bits) - 1) & (man == (1 << fmt.man_bits) - 1)
        codes = np.where(nan, codes - 1, codes)
    return codes.astype(fmt.code_dtype)


def _exp_bounds(fmt: mm.FloatFormat, group: str = "") -> tuple[int, int]:
    if group in _RAND_EXP:
        return _RAND_EXP[group]
    lo = fmt.emin - 1  # one binade of subnormals
    hi = fmt.emax
    if fmt.exp_bits == 8:  # bfloat16: keep products and sums well inside fp32
        lo, hi = -24, 24
    return lo, hi


def _gen_matrix(rng, fmt, shape, kind, group=""):
    lo, hi = _exp_bounds(fmt, group)
    mid = (lo + hi) // 2 if fmt.bits == 8 else 0
    if kind == "codes":
        exps = rng.integers(lo, hi + 1, size=shape)
    elif kind == "lognormal":
        exps = np.clip(np.round(rng.normal(mid, (hi - lo) / 6, size=shape)), lo, hi)
    elif kind == "narrow":
        exps = np.clip(rng.integers(-1, 2, size=shape) + mid, lo, hi)
    elif kind == "spread":
        exps = np.clip(np.round(rng.normal(mid - 2, (hi - lo) / 5, size=shape)), lo, hi - 2)
    else:
        raise ValueError(kind)
    return _rand_codes(rng, fmt, shape, exps)


def build_random(group: str, seed: int = 20250101) -> dict[int, dict]:
    """Random 16x16xK cases for one group: {K: {"A": (n,16,K), "B": (n,K,16), "gen": names}}."""
    fa, fb = (mm.FORMATS[f] for f in GROUPS[group])
    out = {}
    for K, count in RAND_K.items():
        rng = np.random.default_rng([seed, K, sum(map(ord, group))])
        As, Bs, gens = [], [], []
        for i in range(count):
            kind = RAND_GENERATORS[i % len(RAND_GENERATORS)]
            if kind == "cancel":
                A = _gen_matrix(rng, fa, (16, K), "lognormal", group).astype(np.int64)
                B = _gen_matrix(rng, fb, (K, 16), "lognormal", group).astype(np.int64)
                A[:, 1::2] = A[:, 0::2] ^ (1 << (fa.bits - 1))  # exact negation
                nudge = rng.integers(0, 2, size=B[1::2].shape)
                B1 = B[0::2] ^ nudge  # same value or one unit in the last place apart
                if fb.finite_only:
                    bad = (B1 & ((1 << (fb.bits - 1)) - 1)) == (1 << (fb.bits - 1)) - 1
                    B1 = np.where(bad, B[0::2], B1)
                B[1::2] = B1
                A, B = A.astype(fa.code_dtype), B.astype(fb.code_dtype)
            elif kind == "spread":
                A = _gen_matrix(rng, fa, (16, K), "spread", group)
                B = _gen_matrix(rng, fb, (K, 16), "spread", group)
                lo, hi = _exp_bounds(fa, group)
                cols = rng.integers(0, K, size=16)
                big = _rand_codes(rng, fa, (16,), np.full(16, hi - 1))
                A[np.arange(16), cols] = big
            else:
                A = _gen_matrix(rng, fa, (16, K), kind, group)
                B = _gen_matrix(rng, fb, (K, 16), kind, group)
            As.append(A)
            Bs.append(B)
            gens.append(kind)
        out[K] = {"A": np.stack(As), "B": np.stack(Bs), "gen": np.array(gens)}
    return out


def build_splitk(group: str, K: int = 4096) -> dict:
    """16x16xK matrix probes of how cuBLAS splits K for small outputs (split-K kernels).

    Matrix ``m`` (of 16): row ``r`` of A holds ``X`` at ``j_r = 256 r + 5`` and ``alpha`` at the
    16 positions ``i_c = 16 (16 m + c) + 7``; column ``c`` of B holds ``X`` at every ``j_r`` and
    ``beta`` at ``i_c``, so that entry (r, c) is exactly ``T + 0.75 ulp32(T)`` with ``T`` at
    ``j_r`` and the small term at ``i_c``. The small term shows up (as one ulp) only when the two
    positions are summed in different partial sums joined by an fp32 round-to-nearest adder.
    """
    fa, fb = (mm.FORMATS[f] for f in GROUPS[group])
    x = _BIG_X.get(group, _big_exponent(fa, fb))
    T = 2 * x
    acc_frac = 10 if group == "fp16acc" else 23
    alpha, beta = _split(1.5, T - acc_frac - 1, fa, fb)
    j = 256 * np.arange(16) + 5
    As, Bs, ii = [], [], []
    for m in range(16):
        i = 16 * (16 * m + np.arange(16)) + 7
        A = np.zeros((16, K))
        B = np.zeros((K, 16))
        A[np.arange(16), j] = 2.0**x
        A[:, i] = alpha
        B[j, :] = 2.0**x
        B[i, np.arange(16)] = beta
        As.append(mm.encode_exact(A, fa))
        Bs.append(mm.encode_exact(B, fb))
        ii.append(i)
    return {"A": np.stack(As), "B": np.stack(Bs), "j": j, "i": np.stack(ii)}
