"""Number formats for ML accelerators: emulator, datapath generators, verification, cost, DSE.

The subpackages are imported on demand (``arithforge.formats``, ``arithforge.hdl``, ...); importing
``arithforge`` itself loads nothing heavy, so the command line starts quickly.
"""

from ._errors import ArithforgeError

__all__ = ["ArithforgeError", "__version__"]

__version__ = "0.1.0"
