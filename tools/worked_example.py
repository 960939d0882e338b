"""One small GEMM three ways: FMA MAC, bit-serial PE, LUT tensor core (docs/worked-example.md).

``Y = A @ W`` with ``A`` 4 x 8 float16 activations and ``W`` 8 x 4 int4 weights (the same two's
complement codes for all three), accumulated in float32:

- **FMA MAC** (``ops.dot(model="fma_chain")``): ``acc = fma(a_k, w_k, acc)`` in float32, RNE,
  k = 0..7, the int4 weights as float16 values (exact);
- **bit-serial PE** (``formats.bitmod.pe_dot``): family ``int4`` (selector 0), one group of 8,
  scale 1.0, activations aligned to the group's largest with 8 fraction bits (truncating), the
  exact partial sum rounded once into float32;
- **LUT tensor core** (``formats.lut.lut_tile``): 2 x 4 x 4 tiles, signed weights (the top plane
  negated, offset step), float16 tables (rounded sums of 4 activations), float32 accumulation
  rounded at every step; two K-groups chained through ``c``; the core's weights are ``2w``, so
  the accumulator is halved (exactly) at the end.

``python tools/worked_example.py`` prints the Markdown that docs/worked-example.md quotes between
its ``worked-example`` markers (tests/tools/test_worked_example.py checks they agree).
"""

from __future__ import annotations

import sys
from fractions import Fraction
from typing import Any

import numpy as np

from arithforge.formats import bitmod, get_format, lut, ops

M, K, N = 4, 8, 4
SEED = 7
BEGIN, END = "<!-- worked-example:begin -->", "<!-- worked-example:end -->"


def operands() -> tuple[np.ndarray, np.ndarray]:
    """float16 activation codes ``(M, K)`` and int4 weight codes ``(K, N)`` (two's complement)."""
    rng = np.random.default_rng(SEED)
    f16 = get_format("float16")
    a = f16.encode(rng.standard_normal((M, K)) * 3.0)
    # Activations of very different sizes in one row: alignment and table rounding show.
    a[0, 3] = f16.encode(np.array([1000.25]))[0]
    a[1, 0] = f16.encode(np.array([0.0009765625 * 3]))[0]
    w = rng.integers(-8, 8, size=(K, N))
    return a, (w & 0xF).astype(np.uint64)


def compute() -> dict[str, Any]:
    """Outputs (float32 values), errors against the exact product, and cycle counts."""
    f16, f32, i4 = get_format("float16"), get_format("float32"), get_format("int4")
    a, wc = operands()
    av = f16.decode(a)
    wv = i4.to_int(wc.astype(np.uint8))
    exact = [[sum(Fraction(float(av[m, k])) * int(wv[k, n]) for k in range(K))
              for n in range(N)] for m in range(M)]

    # FMA MAC: the weights as float16 codes (exact), a chain of fma in float32.
    w16 = f16.encode(wv.astype(np.float64))
    fma = ops.dot(a[:, None, :], w16.T[None, :, :], f16, f16, fmt_out=f32, model="fma_chain",
                  fmt_acc=f32)

    # Bit-serial PE: one transaction (a dot product of 8) per output.
    cfg = bitmod.PEConfig("float16", "int4", group=K, groups=1, align_bits=8, acc="float32")
    sel = np.zeros((M, N, 1), dtype=np.int64)
    one = np.full((M, N, 1), f16.encode(np.array([1.0]))[0])
    bs = bitmod.pe_dot(np.broadcast_to(a[:, None, :], (M, N, K)),
                       np.broadcast_to(wc.T[None, :, :], (M, N, K)), sel, one,
                       np.zeros((M, N), dtype=np.uint32), cfg)

    # LUT tensor core: tiles of K = 4 chained along the reduction.
    lcfg = lut.LUTConfig(4, "float16", "float32", signed=True)
    acc = np.zeros((M, N), dtype=np.uint32)
    for g in range(K // 4):
        acc = lut.lut_tile(a[:, 4 * g:4 * g + 4], wc[4 * g:4 * g + 4, :], acc, lcfg)
    lut_values = f32.decode(acc) / 2.0

    out: dict[str, Any] = {"A": av, "W": wv, "exact": exact}
    for name, values in (("fma", f32.decode(fma)), ("bitserial", f32.decode(bs)),
                         ("lut", lut_values)):
        err = [[abs(Fraction(float(values[m, n])) - exact[m][n]) for n in range(N)]
               for m in range(M)]
        out[name] = {"values": values, "max_abs_err": float(max(max(r) for r in err)),
                     "exact_outputs": sum(e == 0 for r in err for e in r)}
    tiles = (M // 2) * (K // 4)
    from arithforge.hdl import LUTTensorCore

    core = LUTTensorCore(2, 4, 4, weight_bits=4, entry="float16", signed=True)
    out["cycles"] = {
        "fma": {"unit": "one FMA (float16 x float16 + float32), 1 per cycle",
                "ops": M * N * K, "cycles": M * N * K},
        "bitserial": {"unit": f"one PE, group {K}, int4 (II = {cfg.initiation_interval})",
                      "ops": M * N, "cycles": cfg.cycles(M * N)},
        "lut": {"unit": f"one 2 x 4 x 4 core (P = {core.steps})", "ops": tiles,
                "cycles": core.cycles(tiles)},
    }
    return out


def _matrix(values: Any) -> list[str]:
    return ["| " + " | ".join(f"{float(v):.6g}" for v in row) + " |" for row in values]


def render(result: dict[str, Any]) -> str:
    """The Markdown block of docs/worked-example.md."""
    lines = ["Operands (`A` float16 values, `W` int4 values):", "", "```"]
    lines += ["A = " + "  ".join(f"{float(v):>10.6g}" for v in row) for row in result["A"]]
    lines += ["W = " + "  ".join(f"{int(v):>3d}" for v in row) for row in result["W"]]
    lines += ["```", ""]
    header = "| | " + " | ".join(f"n={n}" for n in range(N)) + " |"
    rule = "|---|" + "---:|" * N
    rows = {"exact": [[float(v) for v in r] for r in result["exact"]]}
    for name in ("fma", "bitserial", "lut"):
        rows[name] = result[name]["values"]
    for name, label in (("exact", "exact (rational)"), ("fma", "FMA MAC chain, float32"),
                        ("bitserial", "bit-serial PE (BitMoD int4), float32"),
                        ("lut", "LUT tensor core (float16 tables), float32")):
        lines += [f"{label}:", "", header, rule]
        lines += [f"| m={m} |" + line[1:] for m, line in enumerate(_matrix(rows[name]))]
        lines.append("")
    lines += [("| datapath | max abs error vs exact | exact outputs (of 16) | unit | operations "
               "| cycles |"), "|---|---:|---:|---|---:|---:|"]
    for name in ("fma", "bitserial", "lut"):
        c = result["cycles"][name]
        lines.append(f"| {name} | {result[name]['max_abs_err']:.6g} | "
                     f"{result[name]['exact_outputs']} | {c['unit']} | {c['ops']} | "
                     f"{c['cycles']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(f"{BEGIN}\n{render(compute())}{END}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
