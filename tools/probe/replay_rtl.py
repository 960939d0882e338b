# Ref: docs/tensor-cores.md ("The recordings through the RTL"); data/tensorcore/README.md.
"""Replay the recorded H100 products through the generated RTL: ``simulate gemm --pe dot:... --a
A.npy --b B.npy --out C.npy --cosim`` against the recorded output codes.

For every recorded group and instruction path that a ``dot`` configuration covers, each random
16 x 16 x K product (``rand/{group}/K{K}``) of the recordings is fed to a systolic array of ``dot``
PEs as element codes: the PE face packs them into steps (K zero-padded, reordered, control
fields), the array runs on Verilator, and its output codes (``C``, the RTL's) are compared with
the recorded ones bit for bit, and with the cycle-level model's (``outputs_match``). The PE of a
path is the preset that ``tests/formats/test_mma.py`` (``preset_for``) maps it to, with the
library's output format and promotion as the unit's ``out`` and ``promote``.

Out of scope (counted, not replayed): products that cuBLAS split along K (``h100_fit.json``'s
best split for that call shape is not 1: the unit does not build split-K), the ``m16`` split-K
probes, and the structured ``probe`` queries (single dot products with an initial accumulator;
the array starts every output from +0).

Run: ``python tools/probe/replay_rtl.py [--array 2x2] [--max-k K] [--model-only] [--json]``
(Verilator builds one array per PE configuration, about a minute each for n = 32 lanes at 2x2).
The first product of each path also goes through the ``arithforge simulate gemm`` command itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "data" / "tensorcore"

#: Input groups: formats of A and B.
GROUPS = {
    "e4m3xe4m3": ("float8_e4m3fn", "float8_e4m3fn"),
    "e5m2xe4m3": ("float8_e5m2", "float8_e4m3fn"),
    "e5m2xe5m2": ("float8_e5m2", "float8_e5m2"),
    "bf16": ("bfloat16", "bfloat16"),
    "fp16": ("float16", "float16"),
    "fp16acc": ("float16", "float16"),
}


def pe_for(group: str, path: str) -> str:
    """The ``dot`` PE spec of a recorded path: ``tests/formats/test_mma.py``'s ``preset_for``,
    the output format and promotion as the unit's parameters."""
    fa, fb = GROUPS[group]
    base = f"dot:a={fa},b={fb},model="
    fp8 = group.startswith("e")
    out = {"bf16": "bfloat16", "fp16": "float16"}.get(group, "float32")
    if path.startswith("scaled_mm"):
        spec = base + ("h100-fp8" if path.endswith("slow") else "h100-fp8-fastacc")
        return spec + (",out=bfloat16" if "_bf16_" in path else "")
    if path == "mma_sync":
        return base + ("h100-fp8-mma-sync" if fp8 else f"h100-{group}")
    if path == "triton":
        return base + ("h100-fp8-fastacc" if fp8 else f"h100-{group}")
    if path == "triton_imp32":  # Triton's max_num_imprecise_acc=32: promotion every 32
        return base + "h100-fp8-fastacc,promote=32"
    if path == "torch_mm_f32out":
        return base + f"h100-{group}"
    if path in ("torch_matmul", "torch_matmul_noreduced"):
        return base + f"h100-{group},out={out}"
    if path in ("torch_matmul_f16acc", "mma_sync_f16acc"):
        return base + "h100-fp16-f16acc"
    raise ValueError(f"no dot configuration models path {path!r}")


class Recordings:
    """The two recorded ``.npz`` files seen as one, and the fitted splits."""

    def __init__(self, data: Path = DATA) -> None:
        self._z = [np.load(data / n) for n in ("h100_probe.npz", "h100_splitk.npz")]
        self.where = {k: z for z in self._z for k in z.files}
        fits = json.loads((data / "h100_fit.json").read_text())["fits"]
        self.fits = {(f["group"], f["path"]): f for f in fits}

    def __getitem__(self, key: str) -> Any:
        return self.where[key][key]

    def paths(self) -> list[tuple[str, str]]:
        """Every recorded (group, path) with a fit."""
        return sorted(self.fits)

    def products(self, group: str, path: str, max_k: int | None = None
                 ) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], dict[str, int]]:
        """``(key, A (n, 16, K), B (n, K, 16), recorded (n, 16, 16))`` of the random products
        of a path the unit covers, and the outputs left out, by reason."""
        keep, skipped = [], {"split-K": 0, "m16 split-K probes": 0, "probe queries": 0,
                             "K above max_k": 0}
        for key in sorted(self.where):
            parts = key.split("/")
            if len(parts) < 4 or parts[1] != group or "/out/" not in key:
                continue
            kind = parts[0]
            if kind == "probe":
                if key.endswith(f"/out/{path}"):
                    skipped["probe queries"] += self[key].size
                continue
            name, _, shape = key.split("/out/")[1].partition("@")
            if name != path:
                continue
            if kind == "m16":
                skipped["m16 split-K probes"] += self[key].size
                continue
            base = "/".join(parts[:3])
            a, b = self[base + "/A"], self[base + "/B"]
            k = a.shape[-1]
            split = f"split_{shape}_K{k}" if shape in ("s16", "t256") and k >= 1024 else None
            factor = self.fits[group, path]["best"].get(split, (1, 1))[0] if split else 1
            if factor > 1:
                skipped["split-K"] += self[key].size
            elif max_k is not None and k > max_k:
                skipped["K above max_k"] += self[key].size
            else:
                keep.append((key, a, b, self[key]))
        return keep, {k: v for k, v in skipped.items() if v}


@dataclass
class PathResult:
    """One recorded path through the RTL."""

    group: str
    path: str
    pe: str
    cases: int = 0
    outputs: int = 0
    mismatches_rtl: int = 0      # RTL output codes unlike the recorded ones
    mismatches_model: int = 0    # cycle-level model's output codes unlike the recorded ones
    outputs_match: bool = True   # RTL against the cycle-level model, every case
    cycles_match: bool = True
    cli_outputs_match: bool | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    first_failure: str = ""


def _cli(spec: str, array: str, a: np.ndarray, b: np.ndarray, cosim: bool
         ) -> tuple[dict[str, Any], np.ndarray]:
    """``arithforge simulate gemm --pe SPEC --a --b --out [--cosim] --json``, in process."""
    from arithforge.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        pa, pb, pc = (str(Path(tmp) / f"{x}.npy") for x in "ABC")
        np.save(pa, a)
        np.save(pb, b)
        argv = ["simulate", "gemm", "--pe", spec, "--array", array, "--a", pa, "--b", pb,
                "--out", pc, "--json"] + (["--cosim"] if cosim else [])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            status = main(argv)
        if status != 0:
            raise RuntimeError(f"simulate gemm exited with {status}: {' '.join(argv)}")
        return json.loads(buf.getvalue()), np.load(pc)


def replay_path(rec: Recordings, group: str, path: str, *, array: str = "2x2",
                max_k: int | None = None, cosim: bool = True, limit: int | None = None,
                dataflow: str = "os") -> PathResult:
    """Replay the products of one path (``limit``: at most that many); see the module
    docstring."""
    from arithforge.sim import accelerator as acc

    start = time.monotonic()
    spec = pe_for(group, path)
    res = PathResult(group, path, spec)
    products, res.skipped = rec.products(group, path, max_k)
    rows, cols = acc.parse_array(array)
    cfg = acc.ArrayConfig(rows, cols, dataflow, acc.parse_pe(spec))
    jobs, wants, models, scheds = [], [], [], []
    for key, a_all, b_all, want_all in products:
        for i in range(len(a_all)):
            if limit is not None and len(jobs) >= limit:
                break
            ea, eb = acc.element_operands(cfg, a_all[i], b_all[i])
            sim = acc.simulate(cfg, ea, eb)
            assert sim.output is not None
            jobs.append((ea, eb))
            wants.append((f"{key}[{i}]", want_all[i].astype(np.uint64)))
            models.append(acc.element_output(cfg, sim.output, 16, 16))
            scheds.append(sim.schedule.cycles)
    if jobs and cosim:
        from arithforge.sim.array_rtl import ArrayRTL

        rtl = ArrayRTL(cfg.hardware())
        runs = rtl.run(jobs, max_cycles=4 * max(scheds) + 1000)
        outs = [acc.element_output(cfg, r.output, 16, 16) for r in runs]
        for r, cycles in zip(runs, scheds, strict=True):
            res.outputs_match &= r.unwritten == 0 and r.bad == 0
            res.cycles_match &= r.cycles == cycles and r.finished
        res.outputs_match &= all(bool((o == mo).all()) for o, mo in zip(outs, models,
                                                                         strict=True))
    else:
        outs = models
    for (name, want), got, model_out in zip(wants, outs, models, strict=True):
        res.cases += 1
        res.outputs += want.size
        bad = int((got != want).sum())
        res.mismatches_rtl += bad
        res.mismatches_model += int((model_out != want).sum())
        if bad and not res.first_failure:
            j = int(np.flatnonzero((got != want).reshape(-1))[0])
            res.first_failure = (f"{name} output {j}: got {int(got.reshape(-1)[j]):#x}, "
                                 f"recorded {int(want.reshape(-1)[j]):#x}")
    if products:  # the command itself, on the first product
        key, a_all, b_all, want_all = products[0]
        out, c = _cli(spec, array, a_all[0], b_all[0], cosim)
        res.cli_outputs_match = (bool((c.astype(np.uint64) == want_all[0]).all())
                                 and out["outputs_match"] is not False)
    res.seconds = round(time.monotonic() - start, 1)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--array", default="2x2", help="PE rows x columns (default 2x2)")
    p.add_argument("--max-k", type=int, default=None, help="replay products with K <= this")
    p.add_argument("--limit", type=int, default=None, help="at most this many products a path")
    p.add_argument("--model-only", action="store_true", help="the cycle model, no Verilator")
    p.add_argument("--only", default=None, help="GROUP/PATH substring filter")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rec = Recordings()
    results = []
    for group, path in rec.paths():
        if args.only and args.only not in f"{group}/{path}":
            continue
        r = replay_path(rec, group, path, array=args.array, max_k=args.max_k,
                        cosim=not args.model_only, limit=args.limit)
        results.append(r)
        if not args.json:
            print(f"{group:10} {path:24} {r.pe.split('model=')[1]:40} cases {r.cases:3} "
                  f"outputs {r.outputs:6} rtl-mismatch {r.mismatches_rtl} model-mismatch "
                  f"{r.mismatches_model} rtl=model {r.outputs_match} cycles {r.cycles_match} "
                  f"cli {r.cli_outputs_match} skipped {r.skipped} {r.seconds}s", flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=1))
    ok = all(r.mismatches_rtl == 0 and r.outputs_match and r.cycles_match
             and r.cli_outputs_match is not False for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
