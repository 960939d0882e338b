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
    parser.add_argument("--only", metavar="NAME",
                        help="measure only the claims whose function name contains NAME "
                        "(e.g. bitmod) and replace their rows and sections in the existing "
                        "page")
    args = parser.parse_args(argv)

    from ..costmodel import load_tech
    from ..costmodel.reproduction import activity_rows, claims, render, splice, unexplained
    from ..hdl import registry

    tech = load_tech()
    if args.only is not None:
        found = claims(registry, tech, args.only)
        if not found:
            parser.error(f"--only must name a claim function (e.g. bitmod), not {args.only!r}")
        try:
            page = args.output.read_text()
            args.output.write_text(splice(page, found, tech))
        except (OSError, ValueError) as exc:
            parser.error(f"--only: {exc}")
        _warn(unexplained(found))
        print(f"updated {len(found)} claim(s) in {args.output}", file=sys.stderr)
        return 0
    activity: list[list[str]] = []
    if not args.no_activity:
        from ..sim.activity import data_energy

        activity = activity_rows(registry, tech, data_energy)
    found = claims(registry, tech)
    _warn(unexplained(found))
    text = render(found, tech, activity)
    args.output.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _warn(titles: Sequence[str]) -> None:
    """Name the claims whose verdict disagrees without a measured cause (issue 18)."""
    for title in titles:
        print(f"warning: {title!r} disagrees without a measured cause", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
