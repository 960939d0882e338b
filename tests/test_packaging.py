"""Packaging and project plumbing: pyproject.toml, Makefile, .ci/run.

These check the promises the README makes about installation and testing, which nothing else in
the suite would notice breaking.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT_TEXT = (ROOT / "pyproject.toml").read_text()
PYPROJECT = tomllib.loads(PYPROJECT_TEXT)


def _array_lines(table: str, key: str) -> list[str]:
    """Source lines of the TOML array ``key = [...]`` in ``[table]``, without the brackets."""
    section = re.search(rf"^\[{re.escape(table)}\]\n(.*?)(?=^\[|\Z)", PYPROJECT_TEXT, re.M | re.S)
    assert section is not None, table
    array = re.search(rf"^{re.escape(key)} = \[\n(.*?)^\]", section.group(1), re.M | re.S)
    assert array is not None, (table, key)
    return array.group(1).splitlines()


def _uncommented_entries(lines: list[str]) -> list[str]:
    """Array entries with no comment on their line or on the comment lines just above."""
    bare, previous = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith('"') and "#" not in line and not previous.startswith("#"):
            bare.append(stripped)
        if stripped:
            previous = stripped
    return bare


def test_project_metadata() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == "arithforge"
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"arithforge": "arithforge.cli:main"}


def test_every_dependency_says_why() -> None:
    tables = {"project": ["dependencies"],
              "project.optional-dependencies": list(PYPROJECT["project"]["optional-dependencies"])}
    for table, keys in tables.items():
        for key in keys:
            assert _uncommented_entries(_array_lines(table, key)) == [], (table, key)


def test_extras() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) == {"test", "sim", "fpga", "trace", "ray", "dse"}
    # Any looser torch requirement downloads a multi-GB CUDA build.
    torch = [req for reqs in extras.values() for req in reqs if re.match(r"torch\b", req)]
    assert torch == ["torch==2.13.0"]


def test_ruff_rules_explicit_and_commented() -> None:
    lint = PYPROJECT["tool"]["ruff"]["lint"]
    assert lint["select"] == ["E", "F", "W", "B", "UP", "I", "ISC", "PT"]
    assert _uncommented_entries(_array_lines("tool.ruff.lint", "select")) == []
    assert PYPROJECT["tool"]["ruff"]["line-length"] == 100


def test_pytest_strictness() -> None:
    config = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in config["addopts"]
    assert config["xfail_strict"] is True
    assert config["filterwarnings"] == ["error"]
    assert config["testpaths"] == ["tests"]
    markers = {m.split(":")[0].split("(")[0] for m in config["markers"]}
    assert markers == {"slow", "cosim", "gpu"}


def test_ci_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    commands = [line for line in script.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "${BASH_SOURCE[0]}")/.."',
                        "make test"]


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```") + 1:]
    block = block[:block.index("```")]
    assert [line.split("#")[0].strip() for line in block] == ["make explore", "make test"]


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    # `-o`: take the installs as done, so this never installs anything.
    command = ["make", "--no-print-directory", "-o", "install", "-o", "install-trace", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


@needs_make
def test_make_test_steps() -> None:
    result = _make("-n", "test")
    assert result.returncode == 0, result.stderr
    commands = result.stdout
    ruff, mypy = commands.index("ruff check "), commands.index("mypy ")
    layers = commands.index("lint-imports")
    pytest_at = commands.index('-m pytest -m "not slow"')
    assert ruff < mypy < layers < pytest_at
    # On every core, a file's tests on one worker.
    assert "-n auto --dist loadfile" in commands[pytest_at:]
    serial = _make("-n", "test", "PYTEST_WORKERS=0")
    assert "-n 0 --dist loadfile" in serial.stdout, serial.stderr


@needs_make
def test_make_lint_checks_the_layer_contracts() -> None:
    result = _make("-n", "lint")
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:1] == [".venv/bin/lint-imports"]
               for line in result.stdout.splitlines()), result.stdout


@needs_make
def test_make_fails_when_pytest_collects_nothing() -> None:
    # Serially (PYTEST_WORKERS=0): starting xdist workers to find nothing only costs time, and
    # pytest under xdist exits 5 all the same when it collects no test.
    result = _make("verify-all", f"PY={sys.executable}", "PYTEST_WORKERS=0",
                   "PYTEST_ARGS=tests/test_packaging.py -p no:cacheprovider -k no_such_test_zz")
    assert result.returncode != 0
    assert "pytest collected no test (exit 5)" in result.stderr


LOCK = ROOT / "requirements" / "lock.txt"


def _lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LOCK.name}: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_every_requirement_within_pyproject() -> None:
    """Every dependency of every extra has an exact pin in the lock that pyproject.toml allows."""
    from packaging.requirements import Requirement

    pins = _lock_pins()
    project = PYPROJECT["project"]
    requirements = [*project["dependencies"],
                    *(r for reqs in project["optional-dependencies"].values() for r in reqs)]
    for text in requirements:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{text!r} has no pin in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {text!r}: run `make lock`")
    # The CPU wheel: a torch without the local label is the multi-GB CUDA build.
    assert pins["torch"] == "2.13.0+cpu"


@needs_make
def test_make_installs_the_locked_versions() -> None:
    """Both install steps constrain pip with the lock, and a changed lock redoes them."""
    # -n: print the commands only; -W: as if the lock had just changed; the apt step taken as done.
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", "requirements/lock.txt",
         "-o", "install-system", "install", "install-trace"],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if " pip " in f" {line} "
                and " install " in line and "pip-tools" not in line]
    assert len(installs) == 2, result.stdout
    assert all("-c requirements/lock.txt" in line for line in installs), installs
