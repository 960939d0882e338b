"""Emulated FP8 GEMM (``mma.matmul(..., device="cuda")``) next to the native ``torch._scaled_mm``.

Usage: ``python benchmarks/gpu/bench_mma_gpu.py [--shapes 256,1024,2048] [--repeat 5] [--no-eager]``

For each square shape M = N = K and each preset (``h100-fp8``: ``use_fast_accum=False``,
``h100-fp8-fastacc``: ``use_fast_accum=True``), on random e4m3 operands (codes of N(0, 1) values):
the native time (median of ``--repeat`` after warm-up), the emulator's time (one warm run, then the
median of ``--emu-repeat``), with the step compiled by ``torch.compile`` (the default on CUDA) and
eager (``eager`` rows), their ratio, and the share of the emulator's outputs that
equal the native float32 outputs bit for bit (a fresh check of the preset on this GPU: 100% where
cuBLAS runs no split-K for the shape). Results go to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from arithforge.formats import _torch_backend as tb
from arithforge.formats import get_format, mma


def _cuda_time(fn: Callable[[], Any], repeat: int, warm: int = 3) -> float:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="256,1024,2048")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--emu-repeat", type=int, default=1)
    parser.add_argument("--chunk-log2", type=int, default=26,
                        help="products per chunk of the emulator (2^N, default 26)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-eager", action="store_true",
                        help="time the compiled step only (eager is 10-20x slower)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    tb.CHUNK_ELEMENTS = 1 << args.chunk_log2
    e4m3 = get_format("float8_e4m3fn")
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    one = torch.ones((), device="cuda")
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; e4m3 x e4m3 -> "
          f"float32; emulator chunks of 2^{args.chunk_log2} products")
    print(f"{'M=N=K':>6s} {'preset (step)':24s} {'native ms':>10s} {'emulated ms':>12s} "
          f"{'ratio':>9s} {'Gprod/s':>8s} {'bit-equal':>10s}")
    for size in (int(s) for s in args.shapes.split(",")):
        a = torch.randn((size, size), device="cuda", generator=gen).to(torch.float8_e4m3fn)
        b = torch.randn((size, size), device="cuda", generator=gen).to(torch.float8_e4m3fn)
        bt = b.t().contiguous().t()  # column-major, as _scaled_mm wants its second operand
        a_codes, b_codes = a.view(torch.uint8), b.view(torch.uint8)
        for preset, fast in (("h100-fp8", False), ("h100-fp8-fastacc", True)):
            def native(fast: bool = fast, a: Any = a, bt: Any = bt) -> Any:
                return torch._scaled_mm(a, bt, scale_a=one, scale_b=one,
                                        out_dtype=torch.float32, use_fast_accum=fast)

            t_native = _cuda_time(native, args.repeat)

            def emulated(preset: str = preset, a: Any = a_codes, b: Any = b_codes) -> Any:
                return mma.matmul(a, b, e4m3, model=preset, device="cuda")

            ref = native().view(torch.int32).cpu().numpy().view(np.uint32)
            for compiled in (True,) if args.no_eager else (True, False):
                tb.COMPILE_MMA = compiled
                t_emu = _cuda_time(emulated, max(args.emu_repeat, 1), warm=1)
                got = emulated().cpu().numpy().view(np.uint32)
                equal = float(np.mean(got == ref))
                name = preset + ("" if compiled else " eager")
                print(f"{size:6d} {name:24s} {t_native * 1e3:10.3f} {t_emu * 1e3:12.1f} "
                      f"{t_emu / t_native:9.0f} {size**3 / t_emu / 1e9:8.2f} {equal:10.2%}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
