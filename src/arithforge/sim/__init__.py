"""Verification of the generated hardware: the Verilator batch harness, cocotb benches, the array
model and the acceptance sweep. Export, lint, synthesis checks and tool lookup are the tools layer's
(:mod:`arithforge.tools`), which ``arithforge.costmodel`` uses too.

Submodules are imported on demand; importing ``arithforge.sim`` loads nothing heavy.

- :mod:`.harness`: :func:`~.harness.verify`, compiled batch comparison against ``reference()``.
- :mod:`.activity`: data-dependent energy, the datapath traced in the harness.
- :mod:`.cocotb_benches`: driver, monitor and scoreboard for pipelined datapaths.
- :mod:`.acceptance`: the acceptance sweep, ``python -m arithforge.sim.acceptance``.
"""

__all__: list[str] = []
