"""Throughput of float32 -> float8_e4m3fn encode and of e4m3 fma, against ml_dtypes in the same run.

Usage: ``python benchmarks/bench_encode.py [--log2n 24] [--repeat 5]``

Rows (best of ``--repeat`` runs, one core, M elements/s, ratio against the peer row):

encode, float32 -> float8_e4m3fn, round to nearest even, non-saturating
    ml_dtypes ``x.astype(float8_e4m3fn)`` (peer); arithforge ``fmt.encode(x)`` (the derived table,
    the path every float32 input takes); arithforge golden path ``codec.encode_float_exact``.
    The script checks in the same run that the arithforge results equal ml_dtypes' bit for bit.
fma, e4m3fn x e4m3fn + e4m3fn -> e4m3fn, one rounding
    "ml_dtypes emulation" (peer): decode to float32, ``a * b + c`` in float64, ``astype``. That peer
    is not bit-exact in general (a float64 intermediate is exact only while the operands' exponent
    span fits in 53 bits, and it rounds twice when it is not); for e4m3 it is exact, and the script
    counts where the two disagree. arithforge ``ops.fma(a, b, c, f, f, f, f)``.

Results go to stdout only.
"""

from __future__ import annotations

import os

# One core: pin before numpy loads any threaded library, and pin the process itself.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

from arithforge.formats import FloatFormat, Rounding, codec, get_format  # noqa: E402


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def table(title: str, rows: list[tuple[str, float]], n: int, note: str) -> None:
    """Print one table: method, M elem/s, ratio against the first (peer) row."""
    peer = rows[0][1]
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print(f"{'method':<{width}}  {'M elem/s':>9}  {'vs peer':>8}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 8}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {n / seconds / 1e6:9.1f}  {peer / seconds:7.2f}x")
    if note:
        print(note)


def bench_encode(n: int, repeat: int, rng: np.random.Generator) -> None:
    fmt = get_format("float8_e4m3fn")
    assert isinstance(fmt, FloatFormat)
    # Random float32 in the format's range and beyond (overflow and underflow take part), with
    # random signs: the values a quantizer sees.
    x = (np.exp2(rng.uniform(-12, 10, n)) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    t_peer, peer = best_of(lambda: x.astype(ml_dtypes.float8_e4m3fn), repeat)
    peer_codes = peer.view(np.uint8)
    fmt.encode(x[:1024])  # build the derived table outside the timing (cached once per process)
    t_fast, fast = best_of(lambda: fmt.encode(x), repeat)
    x64 = x.astype(np.float64)
    t_gold, gold = best_of(
        lambda: codec.encode_float_exact(fmt, x64, Rounding.RNE, saturate=False, rand=None,
                                         rwidth=0, ftz=False),
        repeat,
    )
    differ = [int(np.count_nonzero(codes != peer_codes)) for codes in (fast, gold)]
    verdict = ["yes" if d == 0 else f"NO, {d} codes differ" for d in differ]
    table(
        f"encode float32 -> float8_e4m3fn (RNE, non-saturating), n = 2**{n.bit_length() - 1}",
        [("ml_dtypes astype", t_peer), ("arithforge encode (table)", t_fast),
         ("arithforge golden path", t_gold)],
        n,
        f"bit-exact against ml_dtypes: table {verdict[0]}, golden {verdict[1]}",
    )


def bench_fma(n: int, repeat: int, rng: np.random.Generator) -> None:
    from arithforge.formats import ops

    fma = getattr(ops, "fma", None)
    if fma is None:
        print("\nfma: arithforge.formats.ops has no fma yet; skipped (rerun once it lands)")
        return
    fmt = get_format("float8_e4m3fn")
    a, b, c = (rng.integers(0, 256, n, dtype=np.uint8) for _ in range(3))

    def peer() -> Any:
        def dec(codes: Any) -> Any:
            return codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32)

        with np.errstate(invalid="ignore", over="ignore"):
            exact = dec(a).astype(np.float64) * dec(b) + dec(c)
            return exact.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)

    t_peer, want = best_of(peer, repeat)
    fma(a[:1024], b[:1024], c[:1024], fmt, fmt, fmt, fmt)  # warm caches
    t_ours, got = best_of(lambda: fma(a, b, c, fmt, fmt, fmt, fmt), repeat)
    differ = got != want
    both_nan = fmt.is_nan_code(got) & fmt.is_nan_code(want)  # type: ignore[union-attr]
    table(
        f"fma e4m3fn * e4m3fn + e4m3fn -> e4m3fn (RNE), random codes, n = 2**{n.bit_length() - 1}",
        [("ml_dtypes emulation (f32 decode, f64 a*b+c, astype)", t_peer),
         ("arithforge ops.fma", t_ours)],
        n,
        "the ml_dtypes emulation is NOT bit-exact in general (float64 intermediate: exact for e4m3"
        " only, double rounding for wider formats);\n"
        f"here: {int(differ.sum())} of {n} codes differ, {int((differ & ~both_nan).sum())} of them"
        " other than the sign of a NaN",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24, help="elements: 2**LOG2N (default 24)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs, best kept (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n = 1 << args.log2n
    print(f"python {platform.python_version()}, numpy {np.__version__}, ml_dtypes "
          f"{ml_dtypes.__version__}, {platform.processor() or platform.machine()}, one core, "
          f"best of {args.repeat}, seed {args.seed}")
    rng = np.random.default_rng(args.seed)
    bench_encode(n, args.repeat, rng)
    bench_fma(n, args.repeat, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
