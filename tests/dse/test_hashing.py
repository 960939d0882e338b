"""Task keys: a content hash of the configuration and the stage's code version."""

from __future__ import annotations

from pathlib import Path

from arithforge.dse import tasks
from arithforge.dse.designs import plan
from arithforge.dse.run import accuracy_config, cost_config
from arithforge.dse.spec import parse_spec

SPEC = """\
[formats]
weights = ["float8_e4m3fn", "float8_e5m2"]
[datapaths]
enabled = ["fma"]
[datapaths.fma]
stages = [0, 1]
[workloads]
names = ["synthetic"]
"""


def test_key_ignores_dict_order_and_sees_every_value():
    a = {"hdl": "fma", "params": {"a": "float8_e4m3fn", "stages": 0}}
    b = {"params": {"stages": 0, "a": "float8_e4m3fn"}, "hdl": "fma"}
    assert tasks.task_key("cost", a) == tasks.task_key("cost", b)
    c = {"hdl": "fma", "params": {"a": "float8_e4m3fn", "stages": 1}}
    assert tasks.task_key("cost", a) != tasks.task_key("cost", c)
    assert tasks.task_key("cost", a) != tasks.task_key("verify", a)
    assert len(tasks.task_key("cost", a)) == 64


def test_key_follows_the_code_version(monkeypatch):
    config = {"hdl": "fma", "params": {}}
    before = tasks.task_key("cost", config)
    monkeypatch.setattr(tasks, "code_version", lambda stage: "0.0.0+changed")
    assert tasks.task_key("cost", config) != before


def test_code_version_hashes_the_stage_sources():
    v = tasks.code_version("accuracy")
    assert v.startswith(tasks.__version__ + "+")
    assert len(v.split("+")[1]) == 12
    assert tasks.code_version("accuracy") == v  # stable within a run


def test_accuracy_shared_across_pipeline_depths():
    spec = parse_spec(SPEC, "s.toml")
    designs, _ = plan(spec, frozenset({"fma"}))
    assert len(designs) == 4
    acc = {tasks.task_key("accuracy", accuracy_config(spec, d, "synthetic")) for d in designs}
    cost = {tasks.task_key("cost", cost_config(spec, d)) for d in designs}
    # Pipeline stages change the hardware, not the numbers: 2 accuracy tasks, 4 cost tasks.
    assert len(acc) == 2
    assert len(cost) == 4


def test_stage_sources_exist():
    # A moved module (sim/export.py -> tools/export.py, issue 15) must not drop out of the hash.
    root = Path(tasks.__file__).resolve().parents[1]
    missing = [entry for entries in tasks._STAGE_PACKAGES.values() for entry in entries
               if not (root / entry).exists()]
    assert missing == []
