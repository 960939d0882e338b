"""GPU encode throughput as a fraction of HBM bandwidth, the peer being a device-to-device copy.

Usage: ``python benchmarks/gpu/bench_encode_gpu.py [--log2n 28] [--repeat 20]`` (needs CUDA)

Rows (median of ``--repeat`` timed runs after warm-up, CUDA events; bytes = input read + output
written, each once):

- ``copy`` (peer): ``dst.copy_(src)`` of the float32 input: the memory bandwidth the GPU reaches.
- ``torch .to(float8_e4m3fn)``: PyTorch's own cast (not saturating, NaN on overflow), for scale.
- arithforge ``fmt.encode(x, device="cuda")`` float32 -> float8_e4m3fn, RNE (and saturating): the
  derived-table gather, as the Triton kernel (the default), fused by ``torch.compile``, and eager
  (several kernels).
- ``torch .to(bfloat16)``: PyTorch's own cast (RNE), for scale.
- arithforge float32 -> bfloat16 / float16 in several roundings, saturations and ``ftz`` (the
  arithmetic Triton kernel of ``formats/_triton_codec.py``; the stochastic rows also read int64
  random bits), and the eager tensor code it replaced (``ENCODE_KERNEL = "eager"``).
- arithforge ``quantize(x, device="cuda")`` of MXFP8 (E4M3), MXFP4 and NVFP4 (its per-tensor
  scale given, or derived by a first amax pass): scale and element codes in one Triton kernel;
  and the eager tensor code (bytes: float32 read, one byte per element and per scale written).

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
    parser.add_argument("--e4m3-kernels", default="triton,compile,eager",
                        help="kernels of the e4m3 table rows (torch.compile's takes ~20 s)")
    args = parser.parse_args(argv)
    tb.ARITH_KERNELS = True  # the arithmetic kernels are measured here (the default)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    n = 1 << args.log2n
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    x = torch.randn(n, device="cuda", generator=gen) * 64
    dst = torch.empty_like(x)
    e4m3, bf16, fp16 = (get_format(f) for f in ("float8_e4m3fn", "bfloat16", "float16"))
    check = x[: 1 << 22].cpu().numpy()

    rows: list[tuple[str, float, float, str]] = []  # name, seconds, bytes, exact

    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"n = 2^{args.log2n} float32 (eager bf16 and quantize rows: 2^{args.log2n - 2}), "
          f"median of {args.repeat}")
    print(f"{'method':34s} {'ms':>9s} {'GB/s':>9s} {'of copy':>8s} {'exact':>6s}")

    def row(name: str, fn: Callable[[], Any], nbytes: float, exact: str) -> None:
        """Time ``fn`` and print its row at once (against the first row, the copy)."""
        sec = _time(fn, args.repeat)
        rows.append((name, sec, nbytes, exact))
        bw, peer = nbytes / sec, rows[0][2] / rows[0][1]
        print(f"{name:34s} {sec * 1e3:9.3f} {bw / 1e9:9.1f} {bw / peer:8.1%} {exact:>6s}",
              flush=True)

    row("copy float32 (peer)", lambda: dst.copy_(x), 8.0 * n, "-")
    row("torch .to(float8_e4m3fn)", lambda: x.to(torch.float8_e4m3fn), 5.0 * n, "-")

    def same(got: Any, want: np.ndarray, bits: int) -> str:
        return "yes" if np.array_equal(tb.to_numpy_codes(got, bits), want) else "NO"

    sub = x[: 1 << 22]
    for kernel in args.e4m3_kernels.split(","):
        tb.ENCODE_KERNEL = kernel
        ok = same(e4m3.encode(sub, device="cuda"), e4m3.encode(check), 8)
        row(f"arithforge e4m3 rne ({kernel})", lambda: e4m3.encode(x, device="cuda"), 5.0 * n, ok)
    tb.ENCODE_KERNEL = "triton"
    ok = same(e4m3.encode(sub, saturate=True, device="cuda"), e4m3.encode(check, saturate=True), 8)
    row("arithforge e4m3 rne saturate", lambda: e4m3.encode(x, saturate=True, device="cuda"),
        5.0 * n, ok)
    row("torch .to(bfloat16)", lambda: x.to(torch.bfloat16), 6.0 * n, "-")

    # float32 -> bf16/fp16: the arithmetic Triton kernel, in several modes; random bits (int64,
    # as the codec holds them) count as read.
    rbits = torch.randint(0, 1 << 16, (n,), device="cuda", generator=gen)
    for fmt in (bf16, fp16):
        for mode, sat, ftz in (("rne", False, False), ("rtz", False, False),
                               ("rup", "SatFinite", False), ("rna", "SatPropagate", True),
                               ("stochastic", False, False)):
            kw: dict[str, Any] = {"saturate": sat, "ftz": ftz}
            nbytes = 6.0 * n
            if mode == "stochastic":
                kw.update(random_bits=rbits, random_width=16)
                nbytes += 8.0 * n
                want = fmt.encode(check, mode, saturate=sat, ftz=ftz,
                                  random_bits=rbits[: 1 << 22].cpu().numpy(), random_width=16)
                got = fmt.encode(sub, mode, saturate=sat, ftz=ftz,
                                 random_bits=rbits[: 1 << 22], random_width=16, device="cuda")
            else:
                want = fmt.encode(check, mode, **kw)
                got = fmt.encode(sub, mode, **kw, device="cuda")
            label = f"{mode}{' ' + sat if sat else ''}{' ftz' if ftz else ''}"
            row(f"arithforge {fmt.name} {label}",
                lambda fmt=fmt, mode=mode, kw=kw: fmt.encode(x, mode, **kw, device="cuda"),
                nbytes, same(got, want, 16))
    tb.ENCODE_KERNEL = "eager"
    small = x[: n // 4]
    row("arithforge bfloat16 rne (eager)", lambda: bf16.encode(small, device="cuda"),
        6.0 * n / 4, same(bf16.encode(sub, device="cuda"), bf16.encode(check), 16))
    tb.ENCODE_KERNEL = "triton"

    # Block quantize: scales + element codes (one byte each), one kernel.
    for name in ("mxfp8_e4m3", "mxfp4_e2m1", "nvfp4"):
        fmt_b = get_format(name)
        assert isinstance(fmt_b, BlockFormat)
        nbytes = (4.0 + 1.0 + 1.0 / fmt_b.block_size) * n
        want_b = fmt_b.quantize(check)
        variants: list[tuple[str, dict[str, Any], float]] = [("", {}, nbytes)]
        if fmt_b.tensor_scale is not None:
            t = np.asarray(want_b.tensor)
            variants = [(" (T given)", {"tensor_code": t}, nbytes),
                        (" (T derived: 2 passes)", {}, nbytes)]
            want_b = fmt_b.quantize(check, tensor_code=t)
        for label, kw, nb in variants:
            got_b = fmt_b.quantize(sub, device="cuda", **kw)
            ok = "yes" if (np.array_equal(tb.to_numpy_codes(got_b.element, fmt_b.element.bits),
                                          want_b.element)
                           and np.array_equal(tb.to_numpy_codes(got_b.scale, fmt_b.scale.bits),
                                              want_b.scale)) else "NO"
            row(f"arithforge {name} quantize{label}",
                lambda fmt_b=fmt_b, kw=kw: fmt_b.quantize(x, device="cuda", **kw), nb, ok)
        tb.ENCODE_KERNEL = "eager"
        got_b = fmt_b.quantize(sub, device="cuda", **variants[0][1])
        ok = "yes" if np.array_equal(tb.to_numpy_codes(got_b.element, fmt_b.element.bits),
                                     want_b.element) else "NO"
        row(f"arithforge {name} quantize (eager)",
            lambda fmt_b=fmt_b, kw=variants[0][1]: fmt_b.quantize(small, device="cuda", **kw),
            nbytes / 4, ok)
        tb.ENCODE_KERNEL = "triton"

    return 0 if all(r[3] in ("yes", "-") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
