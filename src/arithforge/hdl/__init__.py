"""Amaranth generators of verified datapaths for ML-accelerator number formats.

One :class:`Datapath` (a ``wiring.Component``) per datapath, the hardware (``elaborate``) of its
unit (:class:`arithforge.datapaths.unit.Unit`, free of Amaranth), which it subclasses: the unit
carries the exact behaviour (``reference``, bound to :mod:`arithforge.formats.ops`), the
component graph (``structure``), the test vectors (``test_cases``) and the port facts. Each is
the ``generator`` of a datapath descriptor of :mod:`arithforge.datapaths`, whose ``params`` are
its parameters (``cli_params``); :mod:`.registry` builds one by name from the one registry of
descriptors.
Shared building blocks (leading-zero count, shifters, rounder) live in :mod:`.primitives`.
"""

from .base import Datapath, Param
from .bitserial import BitSerialPE
from .fma import Adder, FusedMultiplyAdd, Multiplier
from .imac import IntegerMAC
from .lmul import LMulMAC, LMulMultiplier
from .lut import LUTTensorCore

__all__ = ["Adder", "BitSerialPE", "Datapath", "FusedMultiplyAdd", "IntegerMAC", "LMulMAC",
           "LMulMultiplier", "LUTTensorCore", "Multiplier", "Param"]
