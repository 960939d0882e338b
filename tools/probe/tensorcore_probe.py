#!/usr/bin/env python3
# Ref: MMA-Sim, arXiv 2511.10909 (H100 wgmma: fp16/bf16 n=16 F=25; fp8 n=32 F=13);
#      DeepSeek-V3 report §3.3.2 (FP8 GEMM promotion every 128 elements).
"""Probe the accumulation behaviour of NVIDIA tensor cores and record a data set.

Runs structured probes (see ``probe_cases.py``) and random 16x16xK matrix products through
several instruction paths, and writes every input code and output bit pattern to one ``.npz``:

* ``torch_*``      ``torch.matmul`` / ``torch.mm(out_dtype=float32)`` on bf16/fp16 (cuBLAS), with
                   the reduced-precision-reduction flags at their defaults and switched off, and
                   with fp16 accumulation allowed;
* ``scaled_mm_*``  ``torch._scaled_mm`` on fp8 (cuBLASLt), fp32 or bf16 output,
                   ``use_fast_accum`` False ("slow") or True ("fast");
* ``mma_sync*``    one warp running PTX ``mma.sync`` m16n8k16 (16-bit) or m16n8k32 (fp8),
                   chained over K in registers (compiled at run time with NVRTC through CuPy);
* ``triton*``      a Triton kernel whose ``tl.dot`` lowers to Hopper ``wgmma`` (the PTX is checked
                   and recorded), fp8 also with ``max_num_imprecise_acc=32``.

cuBLAS paths are run on two shapes for the random cases: ``s16`` (the 16x16 product itself) and
``t256`` (the 16x16 blocks tiled 16 times to 256x256, which makes cuBLAS choose other kernels);
the kernels that ran are recorded per call shape. Probes use ``A @ B.T`` on ``Q x Q`` and keep the
diagonal.

Usage::

    python tools/probe/tensorcore_probe.py --out OUTDIR            # on a CUDA machine
    python tools/probe/tensorcore_probe.py --out OUTDIR --dry-run  # CPU: model stands in for GPU

Outputs ``OUTDIR/tensorcore_probe.npz`` and ``OUTDIR/tensorcore_probe_meta.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import mma_model as mm  # noqa: E402
import probe_cases as pc  # noqa: E402

FP8_PATHS = ["scaled_mm_f32_slow", "scaled_mm_f32_fast", "scaled_mm_bf16_slow",
             "scaled_mm_bf16_fast", "mma_sync", "triton", "triton_imp32"]
B16_PATHS = ["torch_mm_f32out", "torch_matmul", "torch_matmul_noreduced", "mma_sync", "triton"]
F16ACC_PATHS = ["torch_matmul_f16acc", "mma_sync_f16acc"]


def paths_for(group: str) -> list[str]:
    if group == "fp16acc":
        return F16ACC_PATHS
    if group in ("bf16", "fp16"):
        return B16_PATHS
    return FP8_PATHS


def out_format(group: str, path: str) -> str:
    if path.startswith("scaled_mm_bf16"):
        return "bfloat16"
    if path in ("torch_matmul", "torch_matmul_noreduced", "torch_matmul_f16acc",
                "mma_sync_f16acc"):
        return "bfloat16" if group == "bf16" else "float16"
    return "float32"


def supports_c(path: str) -> bool:
    return path in ("mma_sync", "triton", "triton_imp32")


def is_cublas(path: str) -> bool:
    return path.startswith(("torch_", "scaled_mm"))


# ------------------------------------------------------------------------- simulated backend


class SimBackend:
    """Stands in for the GPU in --dry-run: the published model with assumed parameters."""

    name = "sim"

    def params(self, group: str, path: str) -> mm.MMAParams:
        out = out_format(group, path)
        if group in ("bf16", "fp16", "fp16acc"):
            if path.endswith("f16acc"):
                return mm.MMAParams(n=16, F=25, out_frac_bits=10, out_round="rne",
                                    acc_format="float16", out="float16")
            return mm.MMAParams(n=16, F=25, out=out)
        promote = {"scaled_mm_f32_slow": 128, "scaled_mm_bf16_slow": 128,
                   "triton_imp32": 32}.get(path)
        return mm.MMAParams(n=32, F=13, out_frac_bits=13, promote=promote, out=out)

    def pairs(self, group, path, A, B, C):
        fa, fb = pc.GROUPS[group]
        return mm.mma_dot(A, B, fa, fb, mm.bits_float32(C), self.params(group, path))

    def matmul(self, group, path, A, B, shape):
        fa, fb = pc.GROUPS[group]
        return mm.mma_matmul(A, B, fa, fb, self.params(group, path)), True


# ------------------------------------------------------------------------- CUDA backend

MMA_HEADER = r"""
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32;
__device__ __forceinline__ u32 pk2(const u16* p) { return (u32)p[0] | ((u32)p[1] << 16); }
__device__ __forceinline__ u32 pk4(const u8* p) {
  return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24); }
"""

MMA_KERNELS = {"mma16": r"""
// One warp per problem: D(16x8) = C + A(16xK) * B(Kx8); B given transposed (8xK).
extern "C" __global__ void mma16(const u16* A, const u16* BT, const float* C, float* D,
                                 int K, int nprob) {
  int p = blockIdx.x; if (p >= nprob) return;
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const u16* a = A + (size_t)p * 16 * K; const u16* bt = BT + (size_t)p * 8 * K;
  const float* c = C + (size_t)p * 128; float* d = D + (size_t)p * 128;
  float d0 = c[g * 8 + 2 * t], d1 = c[g * 8 + 2 * t + 1];
  float d2 = c[(g + 8) * 8 + 2 * t], d3 = c[(g + 8) * 8 + 2 * t + 1];
  for (int k0 = 0; k0 < K; k0 += 16) {
    u32 a0 = pk2(a + g * K + k0 + 2 * t), a1 = pk2(a + (g + 8) * K + k0 + 2 * t);
    u32 a2 = pk2(a + g * K + k0 + 8 + 2 * t), a3 = pk2(a + (g + 8) * K + k0 + 8 + 2 * t);
    u32 b0 = pk2(bt + g * K + k0 + 2 * t), b1 = pk2(bt + g * K + k0 + 8 + 2 * t);
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.@T@.@T@.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  d[g * 8 + 2 * t] = d0; d[g * 8 + 2 * t + 1] = d1;
  d[(g + 8) * 8 + 2 * t] = d2; d[(g + 8) * 8 + 2 * t + 1] = d3;
}
""", "mma8": r"""
extern "C" __global__ void mma8(const u8* A, const u8* BT, const float* C, float* D,
                                int K, int nprob) {
  int p = blockIdx.x; if (p >= nprob) return;
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const u8* a = A + (size_t)p * 16 * K; const u8* bt = BT + (size_t)p * 8 * K;
  const float* c = C + (size_t)p * 128; float* d = D + (size_t)p * 128;
  float d0 = c[g * 8 + 2 * t], d1 = c[g * 8 + 2 * t + 1];
  float d2 = c[(g + 8) * 8 + 2 * t], d3 = c[(g + 8) * 8 + 2 * t + 1];
  for (int k0 = 0; k0 < K; k0 += 32) {
    u32 a0 = pk4(a + g * K + k0 + 4 * t), a1 = pk4(a + (g + 8) * K + k0 + 4 * t);
    u32 a2 = pk4(a + g * K + k0 + 16 + 4 * t), a3 = pk4(a + (g + 8) * K + k0 + 16 + 4 * t);
    u32 b0 = pk4(bt + g * K + k0 + 4 * t), b1 = pk4(bt + g * K + k0 + 16 + 4 * t);
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.@TA@.@TB@.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  d[g * 8 + 2 * t] = d0; d[g * 8 + 2 * t + 1] = d1;
  d[(g + 8) * 8 + 2 * t] = d2; d[(g + 8) * 8 + 2 * t + 1] = d3;
}
""", "mma16h": r"""
// fp16 inputs, fp16 accumulator (C and D as fp16 codes).
extern "C" __global__ void mma16h(const u16* A, const u16* BT, const u16* C, u16* D,
                                  int K, int nprob) {
  int p = blockIdx.x; if (p >= nprob) return;
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const u16* a = A + (size_t)p * 16 * K; const u16* bt = BT + (size_t)p * 8 * K;
  const u16* c = C + (size_t)p * 128; u16* d = D + (size_t)p * 128;
  u32 d0 = pk2(c + g * 8 + 2 * t), d1 = pk2(c + (g + 8) * 8 + 2 * t);
  for (int k0 = 0; k0 < K; k0 += 16) {
    u32 a0 = pk2(a + g * K + k0 + 2 * t), a1 = pk2(a + (g + 8) * K + k0 + 2 * t);
    u32 a2 = pk2(a + g * K + k0 + 8 + 2 * t), a3 = pk2(a + (g + 8) * K + k0 + 8 + 2 * t);
    u32 b0 = pk2(bt + g * K + k0 + 2 * t), b1 = pk2(bt + g * K + k0 + 8 + 2 * t);
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 "
                 "{%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%0,%1};\n"
                 : "+r"(d0), "+r"(d1)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  d[g * 8 + 2 * t] = (u16)(d0 & 0xffff); d[g * 8 + 2 * t + 1] = (u16)(d0 >> 16);
  d[(g + 8) * 8 + 2 * t] = (u16)(d1 & 0xffff); d[(g + 8) * 8 + 2 * t + 1] = (u16)(d1 >> 16);
}
"""}

PTX_TYPE = {"bfloat16": "bf16", "float16": "f16", "float8_e4m3fn": "e4m3",
            "float8_e5m2": "e5m2"}


class CudaBackend:
    """Runs the paths on the GPU."""

    name = "cuda"

    def __init__(self, log):
        import torch

        self.torch = torch
        self.log = log
        self.dev = torch.device("cuda")
        self.one = torch.tensor(1.0, device=self.dev)
        self._mods = {}
        self._triton = None
        self.triton_info = {}

    # -- helpers
    def tensor(self, codes: np.ndarray, fmt: str):
        torch = self.torch
        if codes.dtype == np.uint16:
            t = torch.from_numpy(np.ascontiguousarray(codes).view(np.int16))
        else:
            t = torch.from_numpy(np.ascontiguousarray(codes))
        return t.to(self.dev).view(getattr(torch, fmt))

    def bits(self, t) -> np.ndarray:
        torch = self.torch
        t = t.contiguous()
        if t.dtype == torch.float32:
            return t.view(torch.int32).cpu().numpy().view(np.uint32)
        return t.view(torch.int16).cpu().numpy().view(np.uint16)

    @contextlib.contextmanager
    def flags(self, path: str):
        m = self.torch.backends.cuda.matmul
        saved = (m.allow_bf16_reduced_precision_reduction,
                 m.allow_fp16_reduced_precision_reduction,
                 getattr(m, "allow_fp16_accumulation", False))
        try:
            if path == "torch_matmul_noreduced":
                m.allow_bf16_reduced_precision_reduction = False
                m.allow_fp16_reduced_precision_reduction = False
            if path == "torch_matmul_f16acc":
                m.allow_fp16_accumulation = True
            yield
        finally:
            m.allow_bf16_reduced_precision_reduction = saved[0]
            m.allow_fp16_reduced_precision_reduction = saved[1]
            if hasattr(m, "allow_fp16_accumulation"):
                m.allow_fp16_accumulation = saved[2]

    def cublas(self, path: str, a, bt):
        """``a @ bt.T`` through the cuBLAS path ``path`` (a, bt: row-major (M,K), (N,K))."""
        torch = self.torch
        with self.flags(path):
            if path == "torch_mm_f32out":
                return torch.mm(a, bt.t(), out_dtype=torch.float32)
            if path.startswith("torch_matmul"):
                return torch.matmul(a, bt.t())
            if path.startswith("scaled_mm"):
                od = torch.float32 if "_f32_" in path else torch.bfloat16
                return torch._scaled_mm(a, bt.t(), scale_a=self.one, scale_b=self.one,
                                        out_dtype=od, use_fast_accum=path.endswith("fast"))
        raise ValueError(path)

    # -- mma.sync through CuPy / NVRTC
    def mma_kernel(self, group: str, path: str):
        key = (group, path)
        if key not in self._mods:
            import cupy

            fa, fb = pc.GROUPS[group]
            name = "mma16h" if path == "mma_sync_f16acc" else (
                "mma8" if mm.FORMATS[fa].bits == 8 else "mma16")
            src = MMA_HEADER + (MMA_KERNELS[name].replace("@T@", PTX_TYPE[fa])
                                .replace("@TA@", PTX_TYPE[fa]).replace("@TB@", PTX_TYPE[fb]))
            mod = cupy.RawModule(code=src, options=("--std=c++17",))
            self._mods[key] = mod.get_function(name)
        return self._mods[key]

    def mma_run(self, group, path, A3, BT3, C3):
        """A3 (P,16,K), BT3 (P,8,K) codes; C3 (P,16,8) float32 (or fp16 codes): D (P,16,8)."""
        import cupy

        P, _, K = A3.shape
        fn = self.mma_kernel(group, path)
        a = cupy.asarray(np.ascontiguousarray(A3))
        b = cupy.asarray(np.ascontiguousarray(BT3))
        c = cupy.asarray(np.ascontiguousarray(C3))
        d = cupy.zeros_like(c)
        fn((P,), (32,), (a, b, c, d, np.int32(K), np.int32(P)))
        cupy.cuda.runtime.deviceSynchronize()
        out = cupy.asnumpy(d)
        return out.view(np.uint32) if out.dtype == np.float32 else out.view(np.uint16)

    # -- Triton (wgmma on Hopper)
    def triton_kernel(self):
        if self._triton is None:
            import triton
            import triton.language as tl

            @triton.jit
            def _dot_kernel(A, B, C, D, K, BK: tl.constexpr, IMP: tl.constexpr):
                pid = tl.program_id(0).to(tl.int64)
                rm = tl.arange(0, 64)
                rn = tl.arange(0, 16)
                rk = tl.arange(0, BK)
                acc = tl.load(C + pid * 1024 + rm[:, None] * 16 + rn[None, :])
                a_base = A + pid * 64 * K
                b_base = B + pid * K * 16
                for k0 in range(0, K, BK):
                    a = tl.load(a_base + rm[:, None] * K + (k0 + rk)[None, :])
                    b = tl.load(b_base + (k0 + rk)[:, None] * 16 + rn[None, :])
                    if IMP > 0:
                        acc = tl.dot(a, b, acc, max_num_imprecise_acc=IMP)
                    else:
                        acc = tl.dot(a, b, acc)
                tl.store(D + pid * 1024 + rm[:, None] * 16 + rn[None, :], acc)

            self._triton = _dot_kernel
        return self._triton

    def triton_run(self, group, path, A3, B3, C3):
        """A3 (P,64,K), B3 (P,K,16) codes, C3 (P,64,16) float32: D bits (P,64,16)."""
        torch = self.torch
        fa, fb = pc.GROUPS[group]
        P, _, K = A3.shape
        a = self.tensor(A3.reshape(P * 64, K), fa)
        b = self.tensor(B3.reshape(P * K, 16), fb)
        c = torch.from_numpy(np.ascontiguousarray(C3).view(np.float32)).to(self.dev)
        d = torch.empty_like(c)
        imp = 32 if path == "triton_imp32" else 0
        k = self.triton_kernel()[(P,)](a, b, c, d, K, BK=32, IMP=imp, num_warps=4)
        torch.cuda.synchronize()
        key = f"{group}/{path}"
        if key not in self.triton_info:
            try:
                ptx = k.asm["ptx"]
                self.triton_info[key] = {
                    "wgmma": "wgmma.mma_async" in ptx, "mma.sync": "mma.sync" in ptx,
                    "wgmma_lines": sorted({ln.strip().split()[0] for ln in ptx.splitlines()
                                           if "wgmma.mma_async" in ln})[:4]}
            except Exception as exc:  # the asm is informative only
                self.triton_info[key] = {"error": repr(exc)}
        return d.view(torch.int32).cpu().numpy().view(np.uint32).reshape(P, 64, 16)

    # -- the two entry points
    def pairs(self, group, path, A, B, C):
        fa, fb = pc.GROUPS[group]
        Q, K = A.shape
        if is_cublas(path):
            Qp = -(-Q // 16) * 16
            Ap = np.zeros((Qp, K), A.dtype)
            Bp = np.zeros((Qp, K), B.dtype)
            Ap[:Q], Bp[:Q] = A, B
            out = self.cublas(path, self.tensor(Ap, fa), self.tensor(Bp, fb))
            self.torch.cuda.synchronize()
            return self.bits(out.diagonal())[:Q]
        cvals = mm.bits_float32(C)
        if path.startswith("mma_sync"):
            P = -(-Q // 8)
            A3 = np.zeros((P, 16, K), A.dtype)
            B3 = np.zeros((P, 8, K), B.dtype)
            h = path == "mma_sync_f16acc"
            C3 = np.zeros((P, 16, 8), np.uint16 if h else np.float32)
            for q in range(Q):
                p, r = divmod(q, 8)
                A3[p, r] = A3[p, r + 8] = A[q]
                B3[p, r] = B[q]
                cv = cvals[q].astype(np.float16).view(np.uint16) if h else cvals[q]
                C3[p, r, r] = C3[p, r + 8, r] = cv
            D = self.mma_run(group, path, A3, B3, C3)
            top = D[np.arange(Q) // 8, np.arange(Q) % 8, np.arange(Q) % 8]
            bot = D[np.arange(Q) // 8, np.arange(Q) % 8 + 8, np.arange(Q) % 8]
            if not np.array_equal(top, bot):
                self.log(f"  warning: {group}/{path}: duplicated rows disagree")
            return top
        if path.startswith("triton"):
            P = -(-Q // 16)
            A3 = np.zeros((P, 64, K), A.dtype)
            B3 = np.zeros((P, K, 16), B.dtype)
            C3 = np.zeros((P, 64, 16), np.float32)
            for q in range(Q):
                p, r = divmod(q, 16)
                for rep in range(4):
                    A3[p, r + 16 * rep] = A[q]
                    C3[p, r + 16 * rep, r] = cvals[q]
                B3[p, :, r] = B[q]
            D = self.triton_run(group, path, A3, B3, C3)
            idx = np.arange(Q)
            top = D[idx // 16, idx % 16, idx % 16]
            for rep in range(1, 4):
                if not np.array_equal(top, D[idx // 16, idx % 16 + 16 * rep, idx % 16]):
                    self.log(f"  warning: {group}/{path}: repeated rows disagree")
            return top
        raise ValueError(path)

    def matmul(self, group, path, A, B, shape):
        """One 16x16 product; returns (bits (16,16), consistent)."""
        fa, fb = pc.GROUPS[group]
        if is_cublas(path):
            BT = np.ascontiguousarray(B.T)
            rep = 16 if shape == "t256" else 1
            a = self.tensor(np.tile(A, (rep, 1)), fa)
            bt = self.tensor(np.tile(BT, (rep, 1)), fb)
            out = self.bits(self.cublas(path, a, bt))
            blocks = out.reshape(rep, 16, rep, 16)
            consistent = bool(np.all(blocks == blocks[:1, :, :1, :]))
            return out[:16, :16], consistent
        if path.startswith("mma_sync"):
            h = path == "mma_sync_f16acc"
            A3 = np.stack([A, A])
            B3 = np.stack([B.T[:8], B.T[8:]])
            C3 = np.zeros((2, 16, 8), np.uint16 if h else np.float32)
            D = self.mma_run(group, path, A3, B3, C3)
            return np.concatenate([D[0], D[1]], axis=1), True
        if path.startswith("triton"):
            A3 = np.tile(A, (4, 1))[None]
            D = self.triton_run(group, path, A3, B[None], np.zeros((1, 64, 16), np.float32))
            blocks = D[0].reshape(4, 16, 16)
            return D[0, :16], bool(np.all(blocks == blocks[:1]))
        raise ValueError(path)


# ------------------------------------------------------------------------- driver


def environment(backend) -> dict:
    env = {"python": sys.version, "platform": platform.platform(), "numpy": np.__version__,
           "backend": backend.name}
    if backend.name != "cuda":
        return env
    import torch

    m = torch.backends.cuda.matmul
    env.update({
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(), "capability": torch.cuda.get_device_capability(),
        "cublas_flags_default": {
            "allow_bf16_reduced_precision_reduction": m.allow_bf16_reduced_precision_reduction,
            "allow_fp16_reduced_precision_reduction": m.allow_fp16_reduced_precision_reduction,
            "allow_fp16_accumulation": getattr(m, "allow_fp16_accumulation", None),
            "allow_tf32": m.allow_tf32},
    })
    for mod in ("triton", "cupy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as exc:
            env[mod] = f"unavailable: {exc!r}"
    try:
        env["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as exc:
        env["nvidia_smi"] = repr(exc)
    return env


def kernel_census(backend, groups, cases, log) -> dict:
    """Names of the GPU kernels each cuBLAS path ran, per call shape (one profiled call each)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    items = []
    for g in groups:
        probes, rand = cases[g]
        for path in paths_for(g):
            if not is_cublas(path):
                continue
            for pname in ("trunc_k", "promo"):
                pr = probes[pname]
                items.append((f"{g}|{path}|probe:{pname}|QxQxK={len(pr['A'])}x{pr['A'].shape[1]}",
                              lambda g=g, path=path, pr=pr: backend.pairs(
                                  g, path, pr["A"], pr["B"], pr["C"])))
            for K in (32, 256, 4096):
                for shape in ("s16", "t256"):
                    r = rand[K]
                    items.append((f"{g}|{path}|rand:{shape}|K={K}",
                                  lambda g=g, path=path, r=r, shape=shape: backend.matmul(
                                      g, path, r["A"][0], r["B"][0], shape)))
    census = {}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for label, fn in items:
            with record_function("CENSUS::" + label):
                try:
                    fn()
                except Exception as exc:
                    census[label] = [f"error: {exc!r}"]
                torch.cuda.synchronize()
            time.sleep(0.002)
    evs = prof.events()
    regions = [(e.name[len("CENSUS::"):], e.time_range.start, e.time_range.end)
               for e in evs if e.name.startswith("CENSUS::")]
    kernels = [(e.name, e.time_range.start) for e in evs
               if e.device_type == torch.autograd.DeviceType.CUDA
               and not e.name.startswith("CENSUS::")]
    for label, t0, t1 in regions:
        names = sorted({n for n, t in kernels if t0 <= t <= t1})
        census.setdefault(label, names)
    census["_all_kernels"] = sorted({n for n, _ in kernels})
    log(f"kernel census: {len(regions)} regions, {len(census['_all_kernels'])} kernels")
    return census


def summary(arrays, meta, groups, log):
    """Print the direct readings that matter most (F, step boundaries, lost chunks)."""
    import fit_mma_model as fit

    class _Z:  # the arrays dict seen as an npz
        files = list(arrays)

        def __getitem__(self, k):
            return arrays[k]

    for g in groups:
        fa, fb = pc.GROUPS[g]
        for path in paths_for(g):
            fmt = out_format(g, path)
            chunks = [c for c in fit.chunks_for(_Z(), meta, g, path) if c.name.startswith("probe")]
            if not chunks:
                continue
            R = fit.direct_readings(chunks, mm.FORMATS[fa], mm.FORMATS[fb], fmt)
            F = {k: R[k]["F"] for k in R if k.startswith("trunc_k")}
            steps = [r[0] for r in R.get("block_pos", {}).get("runs_j_count", [])][:6]
            tr = R.get("term_round", {})
            modes = {k: v["modes_matching"] for k, v in tr.items()}
            lost = {j: v[:2] for j, v in R.get("promo_lost_i_ranges", {}).items()}
            log(f"{g}/{path}: F={F} steps@{steps} term={modes} out={R.get('out_round')} "
                f"sanity={R.get('sanity_int_exact')}")
            log(f"    promo lost i-ranges {lost}; uniform {R.get('promo_uniform')}")


def run_splitk(args, backend, log, t_start) -> int:
    """The split-K matrix probes (probe_cases.build_splitk) through every path."""
    groups = [g for g in args.groups.split(",") if g]
    meta = {"env": environment(backend), "groups": {}, "errors": {}, "consistency": {},
            "argv": sys.argv}
    log(json.dumps(meta["env"], indent=1, default=str))
    arrays: dict[str, np.ndarray] = {}
    census_items = []
    for g in groups:
        sets = {"splitk": pc.build_splitk(g)}
        if g in ("bf16", "fp16", "fp16acc"):  # long-K random products for the split-K fit
            rnd = pc.build_random(g, seed=777)
            for K in (1024, 4096):
                sets[f"rand{K}"] = {"A": rnd[K]["A"][:1], "B": rnd[K]["B"][:1]}
        meta["groups"][g] = {"formats": pc.GROUPS[g], "paths": paths_for(g),
                             "out": {p: out_format(g, p) for p in paths_for(g)}}
        for name, d in sets.items():
            for key in d:
                arrays[f"m16/{g}/{name}/{key}"] = d[key]
            for path in paths_for(g):
                shapes = ("s16", "t256") if is_cublas(path) else ("direct",)
                for shape in shapes:
                    try:
                        outs, cons = [], []
                        for m in range(len(d["A"])):
                            o, c = backend.matmul(g, path, d["A"][m], d["B"][m], shape)
                            outs.append(o)
                            cons.append(c)
                        arrays[f"m16/{g}/{name}/out/{path}@{shape}"] = np.stack(outs)
                        if not all(cons):
                            meta["consistency"][f"{g}/{path}@{shape}/{name}"] = int(
                                len(cons) - sum(cons))
                    except Exception:
                        meta["errors"][f"{g}/{path}/{name}@{shape}"] = (
                            traceback.format_exc()[-1500:])
                    if is_cublas(path) and name == "splitk":
                        census_items.append((f"{g}|{path}|splitk:{shape}|K=4096",
                                             lambda g=g, path=path, d=d, shape=shape:
                                             backend.matmul(g, path, d["A"][0], d["B"][0],
                                                            shape)))
        log(f"{g}: splitk done")
    if backend.name == "cuda" and not args.no_census:
        try:
            meta["kernels"] = _census(census_items, log)
        except Exception:
            meta["errors"]["census"] = traceback.format_exc()[-3000:]
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    arrays["meta"] = np.array(json.dumps(meta, default=str))
    np.savez_compressed(args.out / "tensorcore_probe_splitk.npz", **arrays)
    (args.out / "tensorcore_probe_splitk_meta.json").write_text(
        json.dumps(meta, indent=1, default=str))
    for k, v in meta["errors"].items():
        log(f"ERROR {k}: {v.strip().splitlines()[-1]}")
    # direct reading: for each cuBLAS path, the i-ranges lost with each j (same partial sum)
    for g in groups:
        fa, fb = pc.GROUPS[g]
        for key in sorted(k for k in arrays if k.startswith(f"m16/{g}/splitk/out/")
                          and ("@s16" in k or "@direct" in k)):
            out = arrays[key]
            fmt = out_format(g, key.split("/")[-1].split("@")[0])
            if fmt != "float32":
                continue
            vals = mm.bits_float32(out).astype(np.float64)
            lost = {}
            for r in range(16):
                # T itself: the value with the small term lost is the minimum over the row
                row = vals[:, r, :].reshape(-1)
                ii = arrays[f"m16/{g}/splitk/i"].reshape(-1)
                lo = row == row.min()
                runs = []
                for i_, l_ in sorted(zip(ii.tolist(), lo.tolist(), strict=True)):
                    if l_ and runs and runs[-1][1] == i_ - 16:
                        runs[-1][1] = i_
                    elif l_:
                        runs.append([i_, i_])
                jr = int(arrays[f"m16/{g}/splitk/j"][r])
                near = [rg for rg in runs if rg[0] - 16 <= jr <= rg[1] + 16]
                lost[jr] = (near[0] if near else None, len(runs))
            log(f"{g} {key.split('/')[-1]}: j -> (lost i-range around j, #ranges): {lost}")
    log(f"done in {time.time() - t_start:.1f} s")
    return 0


def _census(items, log) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    census = {}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for label, fn in items:
            with record_function("CENSUS::" + label):
                try:
                    fn()
                except Exception as exc:
                    census[label] = [f"error: {exc!r}"]
                torch.cuda.synchronize()
            time.sleep(0.002)
    evs = prof.events()
    regions = [(e.name[len("CENSUS::"):], e.time_range.start, e.time_range.end)
               for e in evs if e.name.startswith("CENSUS::")]
    kernels = [(e.name, e.time_range.start) for e in evs
               if e.device_type == torch.autograd.DeviceType.CUDA
               and not e.name.startswith("CENSUS::")]
    for label, t0, t1 in regions:
        census.setdefault(label, sorted({n for n, t in kernels if t0 <= t <= t1}))
    log(f"kernel census: {len(regions)} regions")
    return census


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: the model stands in")
    ap.add_argument("--groups", default=",".join(pc.GROUPS), help="comma-separated groups")
    ap.add_argument("--no-random", action="store_true", help="probes only")
    ap.add_argument("--no-census", action="store_true", help="skip the kernel-name census")
    ap.add_argument("--splitk-only", action="store_true",
                    help="only the 16x16x4096 split-K matrix probes (file suffix _splitk)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / "tensorcore_probe.log", "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    t_start = time.time()
    backend = SimBackend() if args.dry_run else CudaBackend(log)
    if args.splitk_only:
        return run_splitk(args, backend, log, t_start)
    groups = [g for g in args.groups.split(",") if g]
    meta = {"env": environment(backend), "groups": {}, "errors": {}, "consistency": {},
            "argv": sys.argv, "random_k": pc.RAND_K}
    log(json.dumps(meta["env"], indent=1, default=str))
    arrays: dict[str, np.ndarray] = {}
    cases = {}
    for g in groups:
        probes = pc.build_probes(g)
        rand = {} if args.no_random else pc.build_random(g)
        cases[g] = (probes, rand)
        meta["groups"][g] = {"formats": pc.GROUPS[g], "paths": paths_for(g),
                             "out": {p: out_format(g, p) for p in paths_for(g)}}
        for name, pr in probes.items():
            for key in ("A", "B", "C", "param"):
                arrays[f"probe/{g}/{name}/{key}"] = pr[key]
        for K, r in rand.items():
            for key in ("A", "B", "gen"):
                arrays[f"rand/{g}/K{K}/{key}"] = r[key]

    def save():
        meta["elapsed_s"] = round(time.time() - t_start, 1)
        arrays["meta"] = np.array(json.dumps(meta, default=str))
        np.savez_compressed(args.out / "tensorcore_probe.npz", **arrays)
        (args.out / "tensorcore_probe_meta.json").write_text(
            json.dumps(meta, indent=1, default=str))

    try:
        for g in groups:
            probes, rand = cases[g]
            for path in paths_for(g):
                t0 = time.time()
                nerr = 0
                for name, pr in probes.items():
                    if bool(pr["needs_c"]) and not supports_c(path):
                        continue
                    try:
                        arrays[f"probe/{g}/{name}/out/{path}"] = backend.pairs(
                            g, path, pr["A"], pr["B"], pr["C"])
                    except Exception:
                        nerr += 1
                        meta["errors"][f"{g}/{path}/probe/{name}"] = traceback.format_exc()[-1500:]
                for K, r in rand.items():
                    # the tiled shape only where cuBLAS kernel choice (split-K) may matter
                    shapes = (("s16", "t256") if K >= 256 else ("s16",)) if is_cublas(
                        path) else ("direct",)
                    for shape in shapes:
                        outs, cons = [], []
                        try:
                            for i in range(len(r["A"])):
                                o, c = backend.matmul(g, path, r["A"][i], r["B"][i], shape)
                                outs.append(o)
                                cons.append(c)
                            arrays[f"rand/{g}/K{K}/out/{path}@{shape}"] = np.stack(outs)
                            if not all(cons):
                                meta["consistency"][f"{g}/{path}@{shape}/K{K}"] = int(
                                    len(cons) - sum(cons))
                        except Exception:
                            nerr += 1
                            meta["errors"][f"{g}/{path}/rand/K{K}@{shape}"] = (
                                traceback.format_exc()[-1500:])
                log(f"{g:10s} {path:24s} {time.time() - t0:6.1f} s  errors={nerr}")
            save()
        if backend.name == "cuda":
            meta["triton_asm"] = backend.triton_info
            if not args.no_census:
                try:
                    meta["kernels"] = kernel_census(backend, groups, cases, log)
                except Exception:
                    meta["errors"]["census"] = traceback.format_exc()[-3000:]
    finally:
        save()
    for k, v in meta["errors"].items():
        log(f"ERROR {k}: {v.strip().splitlines()[-1]}")
    try:
        summary(arrays, meta, groups, log)
    except Exception:
        log("summary failed: " + traceback.format_exc()[-800:])
    log(f"done in {time.time() - t_start:.1f} s; {len(meta['errors'])} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
