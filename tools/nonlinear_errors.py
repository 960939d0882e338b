"""Print the error tables of docs/nonlinear.md: the integer GELU and softmax units
(``arithforge.formats.nonlinear``) against float math.

Usage (from the repository root)::

    .venv/bin/python tools/nonlinear_errors.py

GELU: every input code of each (bits, scale_exp), max and mean absolute error of the unit's
output against ``x (1 + erf(x / sqrt 2)) / 2`` in float64, and of I-BERT's i-GELU in the paper's
form (float output scale, no requantization). Softmax: 100,000 uniform random int8 rows (seed 0)
per row length, max and mean absolute error of the probabilities against float64 softmax.
LayerNorm: 100,000 uniform random int8 rows and 100,000 rows within +-2 of a random level (seed
0), max (in output LSBs) and mean absolute error against float64 ``(x - mean) / std``.
"""

from __future__ import annotations

import math

import numpy as np

from arithforge.formats import nonlinear as nl


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def main() -> None:
    print("| input | s | range | i-GELU (paper form) max | ibert unit max / mean | "
          "shift unit max / mean | output LSB |")
    print("|---|---|---|---|---|---|---|")
    for bits, s in ((8, 3), (8, 4), (8, 5), (16, 8), (16, 10), (16, 12)):
        q = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
        x = q * 2.0 ** -s
        ref = _gelu(x)
        qp, sp = nl.i_gelu(q, 2.0 ** -s)
        paper = np.abs(qp * sp - ref).max()
        cells = []
        for fn in (nl.ibert_gelu, nl.shift_gelu):
            out, se = fn(q, s, bits)
            err = np.abs(out * 2.0 ** -se - ref)
            cells.append(f"{err.max():.4f} / {err.mean():.4f}")
        print(f"| int{bits} | {s} | ±{x.max():.3g} | {paper:.4f} | {cells[0]} | {cells[1]} | "
              f"{2.0 ** -s:.4g} |")
    print()
    print("| n | s | ibert max / mean | shift max / mean | output LSB |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (4, 8, 16):
        rows = rng.integers(-128, 128, size=(100_000, n))
        for s in (2, 3, 4, 6, 8):
            x = rows * 2.0 ** -s
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            ref = e / e.sum(axis=-1, keepdims=True)
            cells = []
            for fn in (nl.ibert_softmax, nl.shiftmax):
                out, ob = fn(rows, s)
                err = np.abs(out * 2.0 ** -ob - ref)
                cells.append(f"{err.max():.4f} / {err.mean():.5f}")
            print(f"| {n} | {s} | {cells[0]} | {cells[1]} | {2.0 ** -8:.4g} |")
    print()
    print("| n | out_bits | frac_bits | uniform rows max (LSB) / mean | "
          "small-variance rows max (LSB) / mean | output LSB |")
    print("|---|---|---|---|---|---|")
    for n, ob, f in ((4, 8, 4), (8, 8, 4), (16, 8, 4), (8, 12, 8), (16, 16, 12)):
        uniform = rng.integers(-128, 128, size=(100_000, n))
        narrow = np.clip(uniform[:, :1] + rng.integers(-2, 3, size=(100_000, n)), -128, 127)
        cells = []
        for rows in (uniform, narrow):
            out, fr = nl.i_layernorm(rows, ob, f)
            x = rows.astype(np.float64)
            sd = x.std(axis=-1, keepdims=True)
            ref = np.where(sd == 0, 0.0,
                           (x - x.mean(axis=-1, keepdims=True)) / np.where(sd == 0, 1, sd))
            err = np.abs(out * 2.0 ** -fr - ref)
            cells.append(f"{err.max():.5f} ({err.max() * 2 ** f:.2f}) / {err.mean():.5f}")
        print(f"| {n} | {ob} | {f} | {cells[0]} | {cells[1]} | {2.0 ** -f:.4g} |")


if __name__ == "__main__":
    main()
