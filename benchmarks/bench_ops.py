"""Throughput of ``formats.ops`` add, mul, fma and dot on small float formats, against APyTypes.

Usage: ``taskset -c 0 python benchmarks/bench_ops.py [--log2n 21] [--repeat 3] [--exact]
[--formats float16,bfloat16] [--ops add,dot]``

APyTypes (github.com/apytypes/apytypes, C++ behind nanobind) is the peer: bit-accurate
arbitrary-format floating point. It has IEEE-like formats only (the top exponent is inf/NaN), so
formats with other special values (``fn``, ``fnuz``, none) are measured against the same job in
APyTypes' format of the same exponent and mantissa widths. Rows: M results/s of each (best of
``--repeat``, one core, APyTypes' thread pool set to 1) and the ratio ours / peer.

- add, mul: ``round(a op b)`` into the operands' format, RNE, 2**log2n random codes of every
  class (NaN, inf, subnormals included); APyTypes arrays are built from the codes outside timing.
- fma: ours ``ops.fma`` (one rounding); the peer's is ``a * b + c`` (two roundings: APyTypes
  has no fused array op), as in issue 19.
- dot: rows of K = 16; ours ``ops.dot(..., fmt_out=fmt)`` (exact sum, one rounding); the peer's
  ``(a * b).sum(axis=1)`` in the same format (rounded per step). Results are M products/s.

``--exact`` adds a column with the exact path (``ops.exact_only()``, the fast paths off) measured
in the same process: the "before" of the table in docs/formats.md ("Speed: the fast paths"). The
script checks that the fast and exact paths give equal codes. ``--formats`` and ``--ops`` pick
rows. Results go to stdout only.
"""

from __future__ import annotations

import os

# One core: pin before numpy loads any threaded library.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from arithforge.formats import FloatFormat, get_format, ops  # noqa: E402

FORMATS = ["float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float6_e2m3fn", "float6_e3m2fn",
           "float4_e2m1fn", "float16", "bfloat16"]
K = 16


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def finite_random(fmt: FloatFormat, n: int, rng: np.random.Generator) -> Any:
    """Random codes of every class (NaN and inf included: both libraries take them)."""
    return rng.integers(0, 1 << fmt.bits, n, dtype=np.int64).astype(fmt.code_dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=21)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exact", action="store_true", help="also time the exact path (before)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--ops", default="add,mul,fma,dot")
    args = ap.parse_args()
    try:
        import apytypes as apy
    except ImportError:
        # Not in the lock file yet: skip (as `make bench` runs every script) and say how to get it.
        print("bench_ops: APyTypes (the peer) is not installed; skipped. "
              "Install it with `pip install apytypes==0.5.1` and rerun.")
        return
    apy.reset_thread_pool(1)
    n = 1 << args.log2n
    rng = np.random.default_rng(19)
    head = f"{'op':<4} {'format':<16} {'ours M/s':>9} {'APyTypes':>9} {'ratio':>7}"
    if args.exact:
        head += f" {'exact M/s':>9} {'ratio':>7} {'fast==exact':>11}"
    print(f"n = 2**{args.log2n} per op, best of {args.repeat}, one core\n{head}\n{'-' * len(head)}")
    for name in args.formats.split(","):
        bench_format(apy, get_format(name), n, args, rng)


def bench_format(apy: Any, fmt: Any, n: int, args: argparse.Namespace,
                 rng: np.random.Generator) -> None:
    """Print one row per op for ``fmt``."""
    assert isinstance(fmt, FloatFormat)
    a, b, c = (finite_random(fmt, n, rng) for _ in range(3))

    def peer_arr(codes: Any) -> Any:
        return apy.APyFloatArray.from_bits(codes.astype(np.int64), fmt.exp_bits, fmt.man_bits)

    pa, pb, pc = peer_arr(a), peer_arr(b), peer_arr(c)
    pa2, pb2 = (x.reshape((n // K, K)) for x in (pa, pb))
    a2, b2 = a.reshape(-1, K), b.reshape(-1, K)
    jobs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "add": (lambda: ops.add(a, b, fmt), lambda: pa + pb),
        "mul": (lambda: ops.mul(a, b, fmt), lambda: pa * pb),
        "fma": (lambda: ops.fma(a, b, c, fmt), lambda: pa * pb + pc),
        "dot": (lambda: ops.dot(a2, b2, fmt, fmt_out=fmt), lambda: (pa2 * pb2).sum(1)),
    }
    for op in args.ops.split(","):
        ours, peer = jobs[op]
        ours()  # build derived tables outside the timing (cached once per process)
        t_ours, got = best_of(ours, args.repeat)
        t_peer, _ = best_of(peer, args.repeat)
        line = (f"{op:<4} {fmt.name:<16} {n / t_ours / 1e6:9.1f} {n / t_peer / 1e6:9.1f} "
                f"{t_peer / t_ours:6.2f}x")
        if args.exact:
            with ops.exact_only():
                t_ex, want = best_of(ours, 1 if op == "dot" else args.repeat)
            same = "yes" if np.array_equal(got, want) else "NO"
            line += f" {n / t_ex / 1e6:9.1f} {t_peer / t_ex:6.2f}x {same:>11}"
        print(line, flush=True)

if __name__ == "__main__":
    main()
