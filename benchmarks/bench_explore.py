"""Time the main job, `arithforge explore` on the built-in spec: a first run from nothing against
a second run with every task in the results store.

The first run starts from an empty output folder and an empty harness build folder
(``ARITHFORGE_BUILD``), so it builds the traces, computes every accuracy and cost task and
compiles a Verilator harness for every Pareto-optimal design, as on a fresh checkout. The second
run finds every task in ``results.sqlite`` and only plans, analyses, plots and reports. Targets
(issue 7): 10 minutes and 30 s on 2 cores. The load average is printed because the machine may
be shared.

Usage: ``python benchmarks/bench_explore.py [--spec FILE] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arithforge.cli import print_table


def _run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "arithforge", "explore", "--json", *args],
                          capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"explore failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, help="sweep spec (default: the built-in one)")
    parser.add_argument("--jobs", type=int, help="workers (default: the CPUs available)")
    args = parser.parse_args()
    extra = ([] if args.spec is None else ["--spec", str(args.spec)]) + \
        ([] if args.jobs is None else ["-j", str(args.jobs)])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
        env = {**os.environ, "ARITHFORGE_BUILD": str(Path(tmp) / "build")}
        out = ["-o", str(Path(tmp) / "out")]
        for name in ("first run (nothing cached)", "second run (all cached)"):
            wall, summary = _run([*out, *extra], env)
            load = os.getloadavg()[0]
            rows.append([name, f"{wall:.1f}", str(summary["computed"]), str(summary["cached"]),
                         str(len(summary["points"])), str(len(summary["verified"])),
                         f"{load:.1f}"])
    print_table(["run", "wall s", "computed", "cached", "points", "verified", "load avg"], rows,
                align="lrrrrrr", title=f"arithforge explore, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
