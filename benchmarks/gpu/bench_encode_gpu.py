"""GPU encode throughput as a fraction of HBM bandwidth, the peer being a device-to-device copy.

Usage: ``python benchmarks/gpu/bench_encode_gpu.py [--log2n 28] [--repeat 20]`` (needs CUDA)

Rows (median of ``--repeat`` timed runs after warm-up, CUDA events; bytes = input read + output
written, each once):

- ``copy`` (peer): ``dst.copy_(src)`` of the float32 input: the memory bandwidth the GPU reaches.
- ``torch .to(float8_e4m3fn)``: PyTorch's own cast (not saturating, NaN on overflow), for scale.
- arithforge ``fmt.encode(x, device="cuda")`` float32 -> float8_e4m3fn, RNE (and saturating): the
  derived-table gather, as the Triton kernel (the default), fused by ``torch.compile``, and eager
  (several kernels).
- arithforge float32 -> bfloat16 (the arithmetic path, eager tensor code, int64).
- arithforge ``BlockFormat("float8_e4m3fn").quantize(x, device="cuda")`` (MXFP8, eager).

Each arithforge row is also checked bit for bit against the numpy emulator on the first 2^22
values (``exact``). Results go to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from arithforge.formats import BlockFormat, get_format
from arithforge.formats import _torch_backend as tb


def _time(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` runs, after three warm-ups."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=28, help="2^N float32 elements (default 28)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    n = 1 << args.log2n
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    x = torch.randn(n, device="cuda", generator=gen) * 64
    dst = torch.empty_like(x)
    e4m3, bf16 = get_format("float8_e4m3fn"), get_format("bfloat16")
    mx = BlockFormat("float8_e4m3fn")
    check = x[: 1 << 22].cpu().numpy()

    rows: list[tuple[str, float, float, str]] = []  # name, seconds, bytes, exact

    def row(name: str, fn: Callable[[], Any], nbytes: float, exact: str) -> None:
        rows.append((name, _time(fn, args.repeat), nbytes, exact))

    row("copy float32 (peer)", lambda: dst.copy_(x), 8.0 * n, "-")
    row("torch .to(float8_e4m3fn)", lambda: x.to(torch.float8_e4m3fn), 5.0 * n, "-")

    def same(got: Any, want: np.ndarray, bits: int) -> str:
        return "yes" if np.array_equal(tb.to_numpy_codes(got, bits), want) else "NO"

    sub = x[: 1 << 22]
    for kernel in ("triton", "compile", "eager"):
        tb.ENCODE_KERNEL = kernel
        ok = same(e4m3.encode(sub, device="cuda"), e4m3.encode(check), 8)
        row(f"arithforge e4m3 rne ({kernel})", lambda: e4m3.encode(x, device="cuda"), 5.0 * n, ok)
    tb.ENCODE_KERNEL = "triton"
    ok = same(e4m3.encode(sub, saturate=True, device="cuda"), e4m3.encode(check, saturate=True), 8)
    row("arithforge e4m3 rne saturate", lambda: e4m3.encode(x, saturate=True, device="cuda"),
        5.0 * n, ok)
    ok = same(bf16.encode(sub, device="cuda"), bf16.encode(check), 16)
    small = x[: n // 4]
    row("arithforge bf16 rne (arith.)", lambda: bf16.encode(small, device="cuda"), 6.0 * n / 4,
        ok)
    got = mx.quantize(sub, device="cuda")
    want = mx.quantize(check)
    ok = "yes" if (np.array_equal(tb.to_numpy_codes(got.element, 8), want.element)
                   and np.array_equal(tb.to_numpy_codes(got.scale, 8), want.scale)) else "NO"
    row("arithforge mxfp8_e4m3 quantize", lambda: mx.quantize(small, device="cuda"),
        (4.0 + 1.0 + 1.0 / 32) * n / 4, ok)

    peer = rows[0][2] / rows[0][1]
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"n = 2^{args.log2n} float32 (bf16 and mxfp8 rows: 2^{args.log2n - 2}), "
          f"median of {args.repeat}")
    print(f"{'method':34s} {'ms':>9s} {'GB/s':>9s} {'of copy':>8s} {'exact':>6s}")
    for name, sec, nbytes, exact in rows:
        bw = nbytes / sec
        print(f"{name:34s} {sec * 1e3:9.3f} {bw / 1e9:9.1f} {bw / peer:8.1%} {exact:>6s}")
    return 0 if all(r[3] in ("yes", "-") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
