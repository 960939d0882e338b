"""Nothing but a datapath's own modules and the registry names it (issue 15).

Every string literal of ``src/arithforge`` above the emulator (docstrings aside; ``formats``
names its operations ``fma``, ``lmul``, ``imac``, a vocabulary of arithmetic, not of datapaths)
that is a datapath's name, or a PE spec starting ``NAME:``, must sit in one of that datapath's
own modules: its descriptor's module (and its unit's), its generator's module, or the registry. A
few modules name datapaths on purpose, each listed in :data:`ALLOWED` with the reason.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import arithforge
from arithforge.datapaths import DATAPATHS
from arithforge.datapaths.registry import _BUILTIN

ROOT = Path(arithforge.__file__).parent

#: (module, datapath name) -> why it names the datapath.
ALLOWED: dict[tuple[str, str], str] = {
    # The papers' claims compare named designs (L-Mul against the FMA, the LUT core against a
    # MAC array, BitMoD against an fp16 PE): a reproduction is about those datapaths.
    **{("costmodel/reproduction.py", n): "seed-claim reproductions compare named datapaths"
       for n in ("fma", "mul", "lmul", "lmac", "imac", "lut", "bitserial", "dot")},
    # The FMA's sweep scores MX (block) formats with the OCP MX dot product's GEMM model.
    ("datapaths/fma.py", "mx"): "fma's MX designs use the mx GEMM model",
    # Operation kinds that share a datapath's name: the dot step's L-Mul lanes
    # (formats.mma.PRODUCTS), BitMoD's per-group rescale by a fused multiply-add.
    ("datapaths/dot.py", "lmul"): "product kind 'lmul' of the dot step's lanes",
    ("hdl/dot.py", "lmul"): "product kind 'lmul' of the dot step's lanes",
    ("datapaths/bitserial.py", "fma"): "rescale kind 'fma' (a fused multiply-add per group)",
    # A float nonlinear unit is charged as FMA equivalents in the transformer-block cost.
    **{(f"datapaths/{n}.py", "fma"): "block_float: float units costed as FMA equivalents"
       for n in ("gelu", "softmax", "layernorm")},
}

# Names that are also ordinary words of other vocabularies (operation names of the traced
# graphs and of the cost model's component graphs, rounding and normalization words): only a
# PE-spec use of them (``NAME:param=...``) is a datapath reference there.
# The traced graphs name their nonlinear operations ``softmax`` and ``gelu`` too (issue 20);
# evaluate's transform vocabulary (--transform hadamard:32) names the rotation.
COMMON_WORDS = {"add", "mul", "exact", "lut", "mx", "gelu", "softmax", "layernorm", "hadamard"}


def _own(name: str) -> set[str]:
    d = DATAPATHS[name]
    files = {Path(sys.modules[type(d).__module__].__file__ or "").resolve()}
    for ref in (d.generator, d.unit):
        if isinstance(ref, str):
            module = ref.partition(":")[0]
            files.add((ROOT / Path(*module.split(".")[1:])).with_suffix(".py").resolve())
    files.add((ROOT / "datapaths" / "registry.py").resolve())
    return {str(f.relative_to(ROOT.resolve())) for f in files}


def _literals(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


def test_only_own_modules_name_a_datapath() -> None:
    names = sorted(_BUILTIN)
    found: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith("formats/"):
            continue  # the emulator's operations (ops.fma, ops.lmul, ops.imac): not datapaths
        for line, text in _literals(path):
            for name in names:
                spec = text.startswith(f"{name}:") and "=" in text
                if not (spec or (text == name and name not in COMMON_WORDS)):
                    continue
                if rel in _own(name) or (rel, name) in ALLOWED:
                    continue
                found.append(f"{rel}:{line}: {text!r}")
    assert not found, "datapath names outside their own modules:\n" + "\n".join(found)


def test_every_builtin_has_its_modules() -> None:
    for name in _BUILTIN:
        own = _own(name)
        assert all((ROOT / f).is_file() for f in own), (name, own)
