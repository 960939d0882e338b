"""Bad input to ``trace``, ``evaluate``, ``simulate workload`` and ``explore`` (its options and its
TOML spec): the cases of ``test_bad_inputs.py`` for the workload and exploration commands.

Corrupted traces start from a valid synthetic trace (``{trace}``) and replace one of its files.
Spec cases start from :data:`BASE_SPEC`, a sweep small enough (one design, eight rows, no
verification) that a spec wrongly accepted finishes in seconds rather than hanging the table.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .bad_inputs import BadInput

__all__ = ["BASE_SPEC", "CASES", "spec"]

# -- corrupted traces -----------------------------------------------------------------------------


def _truncate(tmp: Path) -> None:
    path = tmp / "trace" / "tensors.npz"
    path.write_bytes(path.read_bytes()[:1000])


def _truncate_tail(tmp: Path) -> None:
    """Cut the zip's central directory off, keeping every member's data."""
    path = tmp / "trace" / "tensors.npz"
    path.write_bytes(path.read_bytes()[:-10])


def _rewrite_npz(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        path = tmp / "trace" / "tensors.npz"
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays)
        np.savez(path, **arrays)  # type: ignore[arg-type]

    return make


def _drop(key: str) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        del arrays[key]

    return change


def _set(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[
        [dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[key] = value(arrays[key])

    return change


def _poison(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[3, 5] = value
        return a

    return change


def _pickled_npz(tmp: Path) -> None:
    """A member that is an object array: loading it would need pickle."""
    path = tmp / "trace" / "tensors.npz"
    with np.load(path) as npz:
        arrays: dict[str, np.ndarray] = {k: npz[k] for k in npz.files}
    arrays["gaussian/w"] = np.array([{"x": 1}], dtype=object)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def _bad_member(tmp: Path) -> None:
    """A zip whose member is not an .npy file."""
    path = tmp / "trace" / "tensors.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, a in arrays.items():
            if k == "gaussian/x":
                zf.writestr(f"{k}.npy", b"not an npy file")
            else:
                data = io.BytesIO()
                np.save(data, a)
                zf.writestr(f"{k}.npy", data.getvalue())
    path.write_bytes(buf.getvalue())


def _edit_json(name: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        path = tmp / "trace" / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return make


def _node(name: str, **attrs: object) -> Callable[[object], object]:
    """Change attributes of node ``name`` of a node-link graph (None deletes one)."""

    def change(doc: object) -> object:
        assert isinstance(doc, dict)
        for node in doc["nodes"]:
            if node["id"] == name:
                for k, v in attrs.items():
                    if v is None:
                        del node[k]
                    else:
                        node[k] = v
        return doc

    return change


def _meta(**attrs: object) -> Callable[[object], object]:
    def change(meta: object) -> object:
        assert isinstance(meta, dict)
        return {**meta, **attrs}

    return change


def _remove(name: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / "trace" / name).unlink()

    return make


def _no_gemms(doc: object) -> object:
    assert isinstance(doc, dict)
    return {**doc, "nodes": [], "edges": []}


# Cases that corrupt the trace; each runs against `evaluate` and, where loading is what breaks,
# `simulate workload` too.
_CORRUPT: list[tuple[str, Mapping[str, str | bytes | Callable[[Path], None]], bool]] = [
    # (id, files, simulate workload too)
    ("npz-truncated", {"trace/tensors.npz": _truncate}, True),
    ("npz-no-central-directory", {"trace/tensors.npz": _truncate_tail}, True),
    ("npz-random-bytes", {"trace/tensors.npz": bytes(range(256)) * 64}, True),
    ("npz-empty", {"trace/tensors.npz": b""}, True),
    ("npz-member-not-npy", {"trace/tensors.npz": _bad_member}, False),
    ("npz-tensor-missing", {"trace/tensors.npz": _rewrite_npz(_drop("laplace/w"))}, True),
    ("npz-tensor-wrong-shape",
     {"trace/tensors.npz": _rewrite_npz(_set("gaussian/x", lambda a: a[:, :7]))}, False),
    ("npz-tensor-strings",
     {"trace/tensors.npz": _rewrite_npz(_set("gaussian/w", lambda a: a.astype(str)))}, False),
    ("npz-tensor-pickled", {"trace/tensors.npz": _pickled_npz}, False),
    ("npz-tensor-nan",
     {"trace/tensors.npz": _rewrite_npz(_set("laplace/x", _poison(np.nan)))}, False),
    ("npz-tensor-inf",
     {"trace/tensors.npz": _rewrite_npz(_set("student-t3/w", _poison(np.inf)))}, False),
    ("graph-list", {"trace/graph.json": "[1,2,3]"}, True),
    ("graph-not-json", {"trace/graph.json": "{nodes: oops"}, True),
    ("graph-not-utf8", {"trace/graph.json": b"\xff\xfe{\x00}"}, True),
    ("graph-empty-object", {"trace/graph.json": "{}"}, True),
    ("graph-no-gemms", {"trace/graph.json": _edit_json("graph.json", _no_gemms)}, True),
    ("graph-gemm-without-M",
     {"trace/graph.json": _edit_json("graph.json", _node("gaussian", M=None))}, True),
    ("graph-gemm-M-string",
     {"trace/graph.json": _edit_json("graph.json", _node("laplace", M="many"))}, True),
    ("graph-gemm-N-negative",
     {"trace/graph.json": _edit_json("graph.json", _node("laplace", N=-4))}, True),
    ("graph-gemm-tensors-not-map",
     {"trace/graph.json": _edit_json("graph.json", _node("gaussian", tensors=[1, 2]))}, False),
    ("graph-gemm-unknown-tensor",
     {"trace/graph.json": _edit_json("graph.json", _node(
         "gaussian", tensors={"x": "nope/x", "w": "gaussian/w", "y": "gaussian/y"}))}, False),
    ("graph-gemm-rows-above-M",
     {"trace/graph.json": _edit_json("graph.json", _node("gaussian", rows=100000))}, False),
    ("meta-not-json", {"trace/meta.json": "{"}, True),
    ("meta-list", {"trace/meta.json": "[]"}, True),
    ("meta-other-format", {"trace/meta.json": _edit_json("meta.json", _meta(format="zip"))}, True),
    ("meta-version-99", {"trace/meta.json": _edit_json("meta.json", _meta(version=99))}, True),
    # A synthetic trace labelled as another workload: the end metric's arrays are missing.
    ("meta-wrong-workload",
     {"trace/meta.json": _edit_json("meta.json", _meta(workload="digits-cnn"))}, False),
    ("meta-missing", {"trace/meta.json": _remove("meta.json")}, True),
    ("graph-missing", {"trace/graph.json": _remove("graph.json")}, True),
]


def _trace_cases() -> list[BadInput]:
    cases = []
    for name, files, simulate in _CORRUPT:
        cases.append(BadInput(f"evaluate-{name}", ("evaluate", "{trace}"), files=files))
        if simulate:
            cases.append(BadInput(f"simulate-workload-{name}",
                                  ("simulate", "workload", "{trace}"), files=files))
    return cases


# -- specs ----------------------------------------------------------------------------------------

#: A valid sweep that runs in seconds: one design, eight rows and columns, no verification.
BASE_SPEC: dict[str, dict[str, str]] = {
    "": {"name": '"t"'},
    "formats": {"weights": '["float8_e4m3fn"]', "accumulators": '["float32"]'},
    "datapaths": {"enabled": '["fma"]'},
    "workloads": {"names": '["synthetic"]', "max_rows": "8", "max_cols": "8",
                  "end_metric": "false"},
    "stages": {"verify": '"none"', "accel": "false"},
    "references": {"tensorcore": "[]"},
}


def spec(**changes: str) -> str:
    """:data:`BASE_SPEC` with ``table__key=TOML`` set (``__`` for ``.`` in tables)."""
    tables = {t: dict(keys) for t, keys in BASE_SPEC.items()}
    for path, value in changes.items():
        table, _, key = path.rpartition("__")
        tables.setdefault(table.replace("__", "."), {})[key] = value
    lines = []
    for table, keys in tables.items():
        if table:
            lines.append(f"[{table}]")
        lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def _explore(id: str, text: str | bytes | None = None, *extra: str) -> BadInput:
    """``explore --spec s.toml -o out``; the spec is ``text`` (default :data:`BASE_SPEC`)."""
    return BadInput(f"explore-{id}",
                    ("explore", "--spec", "{tmp}/s.toml", "-o", "{tmp}/out", "--quiet", *extra),
                    files={"s.toml": spec() if text is None else text}, timeout=20)


_SPEC_CASES = [
    _explore("spec-not-utf8", spec().encode() + b"# caf\xe9\n"),
    _explore("spec-not-toml", spec().replace('name = "t"', 'name = "t')),
    _explore("spec-duplicate-key", spec() + "[stages]\n"),
    _explore("spec-unknown-section", spec(colours__red="1")),
    _explore("spec-unknown-key", spec(workloads__max_row="8")),
    _explore("spec-name-not-string", spec(name="5")),
    _explore("spec-max-rows-string", spec(workloads__max_rows='"64"')),
    _explore("spec-max-rows-float", spec(workloads__max_rows="6.5")),
    _explore("spec-max-rows-zero", spec(workloads__max_rows="0")),
    _explore("spec-max-cols-negative", spec(workloads__max_cols="-3")),
    _explore("spec-seed-negative", spec(seed="-1")),
    _explore("spec-workloads-seed-negative", spec(workloads__seed="-1")),
    _explore("spec-verify-seed-negative", spec(verify__seed="-1", stages__verify='"all"')),
    _explore("spec-search-seed-negative", spec(search__seed="-1")),
    _explore("spec-mixed-seed-negative", spec(mixed__enabled="true", mixed__workload='"synthetic"',
                                              mixed__formats='["float8_e4m3fn", "float16"]',
                                              mixed__seed="-1")),
    _explore("spec-verify-random-huge", spec(verify__random="1000000000000",
                                             stages__verify='"all"')),
    _explore("spec-verify-lanes-huge", spec(verify__lanes="1000000000", stages__verify='"all"')),
    _explore("spec-verify-random-bool", spec(verify__random="true")),
    _explore("spec-area-budget-nan", spec(mixed__enabled="true", mixed__workload='"synthetic"',
                                          mixed__formats='["float8_e4m3fn", "float16"]',
                                          mixed__area_budget_um2="nan")),
    _explore("spec-area-budget-inf", spec(mixed__enabled="true", mixed__workload='"synthetic"',
                                          mixed__formats='["float8_e4m3fn", "float16"]',
                                          mixed__area_budget_um2="inf")),
    _explore("spec-area-budget-bool", spec(mixed__enabled="true", mixed__workload='"synthetic"',
                                           mixed__formats='["float8_e4m3fn", "float16"]',
                                           mixed__area_budget_um2="true")),
    _explore("spec-area-budget-negative", spec(mixed__enabled="true",
                                               mixed__workload='"synthetic"',
                                               mixed__formats='["float8_e4m3fn", "float16"]',
                                               mixed__area_budget_um2="-1.5")),
    _explore("spec-mixed-population-zero", spec(mixed__enabled="true",
                                                mixed__workload='"synthetic"',
                                                mixed__formats='["float8_e4m3fn", "float16"]',
                                                mixed__population="0")),
    _explore("spec-mixed-generations-huge", spec(mixed__enabled="true",
                                                 mixed__workload='"synthetic"',
                                                 mixed__formats='["float8_e4m3fn", "float16"]',
                                                 mixed__generations="1000000000")),
    _explore("spec-search-population-huge", spec(search__method='"nsga2"',
                                                 search__population="1000000000")),
    _explore("spec-search-generations-huge", spec(search__method='"nsga2"',
                                                  search__generations="1000000000")),
    _explore("spec-fma-stages-huge", spec(datapaths__fma__stages="1000000000")),
    _explore("spec-fma-stages-float", spec(datapaths__fma__stages="2.0")),
    _explore("spec-fma-approx-window-huge", spec(datapaths__enabled='["fma_approx"]',
                                                 datapaths__fma_approx__window="1000000000")),
    _explore("spec-bitserial-group-huge", spec(datapaths__enabled='["bitserial"]',
                                               datapaths__bitserial__group="1000000000")),
    _explore("spec-bitserial-align-bits-huge", spec(datapaths__enabled='["bitserial"]',
                                                    datapaths__bitserial__align_bits="100000")),
    _explore("spec-lut-group-huge", spec(datapaths__enabled='["lut"]',
                                         formats__weights='["int4"]',
                                         datapaths__lut__group="1000")),
    _explore("spec-lut-tile-huge", spec(datapaths__enabled='["lut"]',
                                        formats__weights='["int4"]',
                                        datapaths__lut__tile='"100000x100000"')),
    _explore("spec-accel-array-huge", spec(stages__accel="true", accel__array='"100000x100000"')),
    _explore("spec-cost-node-string", spec(cost__node='"45nm"')),
    _explore("spec-cost-tech-missing", spec(cost__tech='"no/such/tech.toml"')),
    _explore("spec-formats-weights-empty", spec(formats__weights="[]")),
    _explore("spec-workloads-unknown", spec(workloads__names='["resnet"]')),
]

# -- the table ------------------------------------------------------------------------------------

SEED_TOO_BIG = str(2**64)

CASES: list[BadInput] = [
    # trace
    BadInput("trace-unknown-workload", ("trace", "resnet", "-o", "{tmp}/t")),
    BadInput("trace-no-output", ("trace", "synthetic")),
    BadInput("trace-output-is-file", ("trace", "synthetic", "-o", "{tmp}/f"), files={"f": "x"}),
    BadInput("trace-output-under-file", ("trace", "synthetic", "-o", "{tmp}/f/t"),
             files={"f": "x"}),
    BadInput("trace-seed-negative", ("trace", "synthetic", "-o", "{tmp}/t", "--seed", "-1")),
    BadInput("trace-seed-too-big", ("trace", "synthetic", "-o", "{tmp}/t", "--seed",
                                    SEED_TOO_BIG)),
    BadInput("trace-seed-not-int", ("trace", "synthetic", "-o", "{tmp}/t", "--seed", "1.5")),
    BadInput("trace-max-rows-synthetic", ("trace", "synthetic", "-o", "{tmp}/t",
                                          "--max-rows", "8")),
    BadInput("trace-max-rows-digits", ("trace", "digits-cnn", "-o", "{tmp}/t", "--max-rows", "8")),
    BadInput("trace-max-rows-zero", ("trace", "minilm", "-o", "{tmp}/t", "--max-rows", "0")),
    BadInput("trace-max-rows-negative", ("trace", "minilm", "-o", "{tmp}/t", "--max-rows", "-5")),
    # evaluate: the trace argument
    BadInput("evaluate-no-trace", ("evaluate",)),
    BadInput("evaluate-trace-missing", ("evaluate", "{tmp}/nope")),
    BadInput("evaluate-trace-is-file", ("evaluate", "{tmp}/f"), files={"f": "x"}),
    BadInput("evaluate-trace-empty-dir", ("evaluate", "{tmp}/d"), files={"d/notes.txt": "x"}),
    BadInput("evaluate-trace-files-are-dirs", ("evaluate", "{tmp}/d"),
             files={"d/graph.json/x": "", "d/tensors.npz/x": "", "d/meta.json/x": ""}),
    # evaluate: options
    BadInput("evaluate-weights-unknown", ("evaluate", "{trace}", "--weights", "float9_e9m9")),
    BadInput("evaluate-acts-unknown", ("evaluate", "{trace}", "--acts", "e9m")),
    BadInput("evaluate-acc-unknown", ("evaluate", "{trace}", "--acc", "float33")),
    BadInput("evaluate-datapath-unknown", ("evaluate", "{trace}", "--datapath", "fma_chain")),
    BadInput("evaluate-datapath-no-model", ("evaluate", "{trace}", "--datapath", "mul")),
    BadInput("evaluate-rounding-unknown", ("evaluate", "{trace}", "--rounding", "nearest")),
    BadInput("evaluate-scaling-unknown", ("evaluate", "{trace}", "--scaling", "per-row")),
    BadInput("evaluate-weight-scaling-unknown", ("evaluate", "{trace}", "--weight-scaling",
                                                 "global")),
    BadInput("evaluate-act-scaling-unknown", ("evaluate", "{trace}", "--act-scaling", "")),
    BadInput("evaluate-block-size-zero", ("evaluate", "{trace}", "--scaling", "per-block",
                                          "--block-size", "0")),
    BadInput("evaluate-block-size-negative", ("evaluate", "{trace}", "--block-size", "-1")),
    BadInput("evaluate-block-size-huge", ("evaluate", "{trace}", "--scaling", "per-block",
                                          "--block-size", "1000000000"), timeout=20),
    BadInput("evaluate-block-size-not-int", ("evaluate", "{trace}", "--block-size", "3x")),
    BadInput("evaluate-option-malformed", ("evaluate", "{trace}", "-O", "normalization")),
    BadInput("evaluate-option-empty-key", ("evaluate", "{trace}", "-O", "=4")),
    BadInput("evaluate-option-unknown", ("evaluate", "{trace}", "--datapath", "fma",
                                         "-O", "window=4")),
    BadInput("evaluate-option-window-zero", ("evaluate", "{trace}", "--datapath", "fma",
                                             "-O", "normalization=0")),
    BadInput("evaluate-option-window-word", ("evaluate", "{trace}", "--datapath", "fma",
                                             "-O", "normalization=approx")),
    BadInput("evaluate-option-window-huge", ("evaluate", "{trace}", "--datapath", "fma",
                                             "-O", "normalization=1000000000"), timeout=20),
    BadInput("evaluate-option-lmac-form", ("evaluate", "{trace}", "--datapath", "lmac",
                                           "-O", "form=float")),
    BadInput("evaluate-option-lmac-accumulate", ("evaluate", "{trace}", "--datapath", "lmac",
                                                 "-O", "accumulate=tree")),
    BadInput("evaluate-option-lmac-offset-negative", ("evaluate", "{trace}", "--datapath",
                                                      "lmac", "-O", "offset_bits=-1")),
    BadInput("evaluate-option-tc-n-zero", ("evaluate", "{trace}", "--datapath", "tensorcore",
                                           "-O", "n=0")),
    BadInput("evaluate-option-tc-n-huge", ("evaluate", "{trace}", "--datapath", "tensorcore",
                                           "-O", "n=1000000000"), timeout=20),
    BadInput("evaluate-option-tc-n-word", ("evaluate", "{trace}", "--datapath", "tensorcore",
                                           "-O", "n=many")),
    BadInput("evaluate-option-tc-frac-negative", ("evaluate", "{trace}", "--datapath",
                                                  "tensorcore", "-O", "frac_bits=-3")),
    BadInput("evaluate-option-tc-model-unknown", ("evaluate", "{trace}", "--datapath",
                                                  "tensorcore", "-O", "model=h200-fp4")),
    BadInput("evaluate-option-bitserial-group-zero", ("evaluate", "{trace}", "--datapath",
                                                      "bitserial", "--acts", "float16",
                                                      "-O", "group=0")),
    BadInput("evaluate-option-bitserial-family", ("evaluate", "{trace}", "--datapath",
                                                  "bitserial", "--acts", "float16",
                                                  "-O", "family=bitmod9")),
    BadInput("evaluate-option-lut-symmetric-word", ("evaluate", "{trace}", "--datapath", "lut",
                                                    "--weights", "int4", "--acts", "float16",
                                                    "-O", "symmetric=maybe")),
    BadInput("evaluate-option-lut-group-huge", ("evaluate", "{trace}", "--datapath", "lut",
                                                "--weights", "int4", "--acts", "float16",
                                                "-O", "group=1000"), timeout=20),
    BadInput("evaluate-max-rows-zero", ("evaluate", "{trace}", "--max-rows", "0")),
    BadInput("evaluate-max-rows-negative", ("evaluate", "{trace}", "--max-rows", "-1")),
    BadInput("evaluate-max-cols-zero", ("evaluate", "{trace}", "--max-cols", "0")),
    BadInput("evaluate-max-cols-word", ("evaluate", "{trace}", "--max-cols", "all")),
    BadInput("evaluate-seed-negative", ("evaluate", "{trace}", "--seed", "-1")),
    BadInput("evaluate-seed-too-big", ("evaluate", "{trace}", "--seed", SEED_TOO_BIG)),
    # evaluate: combinations a datapath refuses
    BadInput("evaluate-imac-datapath-float-formats", ("evaluate", "{trace}", "--datapath",
                                                        "imac")),
    BadInput("evaluate-mx-datapath-element-formats", ("evaluate", "{trace}", "--datapath", "mx")),
    BadInput("evaluate-exact-int-acc", ("evaluate", "{trace}", "--acc", "int32")),
    BadInput("evaluate-lmac-two-formats", ("evaluate", "{trace}", "--datapath", "lmac",
                                           "--acts", "float8_e5m2")),
    # evaluate and simulate workload: corrupted traces
    *_trace_cases(),
    # simulate workload: the trace argument
    BadInput("simulate-workload-no-trace", ("simulate", "workload")),
    BadInput("simulate-workload-trace-missing", ("simulate", "workload", "{tmp}/nope")),
    BadInput("simulate-workload-trace-is-file", ("simulate", "workload", "{tmp}/f"),
             files={"f": "x"}),
    # explore: options
    BadInput("explore-output-is-file", ("explore", "--spec", "{tmp}/s.toml", "-o", "{tmp}/f",
                                        "--quiet"), files={"s.toml": spec(), "f": "x"},
             timeout=20),
    BadInput("explore-output-under-file", ("explore", "--spec", "{tmp}/s.toml", "-o",
                                           "{tmp}/f/out", "--quiet"),
             files={"s.toml": spec(), "f": "x"}, timeout=20),
    BadInput("explore-spec-missing", ("explore", "--spec", "{tmp}/nope.toml", "-o", "{tmp}/out")),
    BadInput("explore-spec-is-dir", ("explore", "--spec", "{tmp}/d", "-o", "{tmp}/out"),
             files={"d/x": ""}),
    _explore("jobs-zero", None, "-j", "0"),
    _explore("jobs-negative", None, "--jobs", "-2"),
    _explore("jobs-word", None, "-j", "all"),
    _explore("executor-unknown", None, "--executor", "slurm"),
    # explore: the spec
    *_SPEC_CASES,
]
