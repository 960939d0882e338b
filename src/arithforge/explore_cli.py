"""``arithforge explore``: interim end-to-end job until the design-space exploration engine lands.

It runs the richest path that exists today, through the emulator only: a Gaussian tensor is scaled
per tensor, encoded into each format, decoded, and scored by its signal-to-quantization-noise
ratio. The ``dse`` package replaces this module's handler with the real sweep.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from ._errors import ArithforgeError
from .cli import command, import_package, print_table

__all__ = ["sqnr_db"]


def sqnr_db(reference: Any, approx: Any) -> float:
    """Signal-to-quantization-noise ratio of ``approx`` against ``reference``, in decibels.

    ``inf`` when the two are equal, ``nan`` when ``approx`` holds a NaN.
    """
    import numpy as np

    x = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum(np.square(x - np.asarray(approx, dtype=np.float64))))
    if math.isnan(noise):
        return math.nan
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(float(np.sum(np.square(x))) / noise)


def _scalings(fmt: Any, x: Any) -> dict[str, float]:
    """Candidate per-tensor scales: absmax (max|x| lands on max_finite) and none (x as it is).

    Absmax suits uniform grids (integers) and floats; tapered formats (posits) keep their
    precision near 1, where an N(0, 1) tensor already is.
    """
    import numpy as np

    top = getattr(fmt, "max_finite", None)
    scales = {"none": 1.0}
    if top:
        scales["absmax"] = float(np.max(np.abs(x))) / float(top)
    return scales


def _score(fmt: Any, x: Any) -> tuple[float, str, float]:
    """Best SQNR of ``x`` through ``fmt`` over the scalings, that scaling, and elements/second."""
    import numpy as np

    best, best_name, seconds = -math.inf, "none", 0.0
    scalings = _scalings(fmt, x)
    for name, scale in scalings.items():
        start = time.perf_counter()
        y = np.asarray(fmt.decode(fmt.encode(x / scale, saturate=True)), dtype=np.float64)
        seconds += time.perf_counter() - start
        sqnr = sqnr_db(x, y * scale)
        if sqnr > best or math.isnan(sqnr):
            best, best_name = sqnr, name
    rate = len(scalings) * x.size / seconds if seconds > 0 else math.inf
    return best, best_name, rate


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=1 << 16, metavar="N",
                        help="size of the Gaussian tensor (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tensor (default 0)")
    parser.add_argument("--formats", metavar="NAMES",
                        help="comma-separated format names (default: every signed catalog format)")


@command("explore", help="explore the design space (interim: SQNR of every catalog format)",
         configure=_configure)
def run(args: argparse.Namespace) -> int:
    """Explore the design space: interim job until the exploration engine lands.

    Until sweeps over formats x datapaths with cost and Pareto fronts exist, this encodes a
    tensor drawn from N(0, 1) into each signed catalog format, decodes it, and reports the
    signal-to-quantization-noise ratio (SQNR) per format with the emulator's encode+decode rate.
    The tensor is scaled per tensor, by absmax (max|x| onto max_finite) or not at all, whichever
    scores better: absmax suits integers and floats, posits keep their precision near 1.
    """
    import numpy as np

    formats = import_package("arithforge.formats")
    if args.samples < 1:
        raise ArithforgeError(f"--samples must be at least 1, not {args.samples}")
    if args.formats is None:
        # A signed tensor has nothing to say about unsigned formats (uint8, float8_e8m0fnu).
        chosen = [fmt for fmt in map(formats.get_format, formats.catalog.names())
                  if getattr(fmt, "signed", True)]
    else:
        # Resolve every name before any work, so a misspelt one fails at once.
        chosen = [formats.get_format(n.strip()) for n in args.formats.split(",") if n.strip()]

    print("arithforge explore: INTERIM JOB. The design-space exploration engine has not landed;")
    print("until it does, this runs the emulator end to end on the built-in default workload:")
    print(f"  {args.samples} samples of N(0, 1) (seed {args.seed}), scaled per tensor,")
    print("  encoded (round to nearest even, saturating), decoded, scored by SQNR in dB against")
    print("  the float64 tensor. Scaling: absmax (max|x| onto max_finite) or none, the better.")
    print()

    x = np.random.default_rng(args.seed).standard_normal(args.samples)
    rows = []
    for fmt in sorted(chosen, key=lambda f: (f.bits, f.name)):
        try:
            sqnr, scaling, rate = _score(fmt, x)
        except (formats.FormatError, NotImplementedError) as exc:
            rows.append([fmt.name, str(fmt.bits), "-", "-", "-", f"skipped: {exc}"])
            continue
        rows.append([fmt.name, str(fmt.bits), f"{sqnr:.2f}", f"{sqnr / fmt.bits:.2f}",
                     f"{rate / 1e6:.1f}", scaling])
    print_table(["format", "bits", "SQNR dB", "dB/bit", "M elem/s", "scaling"], rows,
                align="lrrrrl", title="Quantization of N(0, 1), per-tensor scaling")
    return 0
