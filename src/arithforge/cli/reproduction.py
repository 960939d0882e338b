"""Write ``docs/reproduction.md``: ``python -m arithforge.cli.reproduction [-o FILE]``.

The page writer drives three packages, so it lives in the top layer: the claims and the page are
:mod:`arithforge.costmodel.reproduction`'s, the datapaths come from :mod:`arithforge.hdl.registry`,
and the data-dependent energy table runs Verilator through
:func:`arithforge.sim.activity.data_energy`. The cost model imports neither ``hdl`` nor ``sim``
(issue 15); here they are handed to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_OUTPUT", "main"]

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUTPUT = ROOT / "docs" / "reproduction.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every claim and write the page."""
    parser = argparse.ArgumentParser(prog="python -m arithforge.cli.reproduction",
                                     description="Write docs/reproduction.md: our synthesized "
                                     "numbers next to published claims, with a verdict per row.")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"page to write (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--no-activity", action="store_true",
                        help="leave out the data-dependent energy table (Verilator runs)")
    from ..costmodel.reproduction import CLAIMS

    parser.add_argument("--claim", choices=sorted(CLAIMS),
                        help="measure this claim only and replace its verdict and section in "
                             "the existing page")
    args = parser.parse_args(argv)

    from ..costmodel import load_tech
    from ..costmodel.reproduction import activity_rows, claims, render, splice
    from ..hdl import registry

    tech = load_tech()
    if args.claim:
        if not args.output.exists():
            parser.error(f"--claim updates an existing page; {args.output} does not exist")
        found = CLAIMS[args.claim](registry, tech, {})
        args.output.write_text(splice(args.output.read_text(), found))
        print(f"updated {args.claim} in {args.output}", file=sys.stderr)
        return 0
    activity: list[list[str]] = []
    if not args.no_activity:
        from ..sim.activity import data_energy

        activity = activity_rows(registry, tech, data_energy)
    text = render(claims(registry, tech), tech, activity)
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
