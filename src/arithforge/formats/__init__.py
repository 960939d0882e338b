"""The golden numeric emulator: format descriptors, codec and exact operations on codes.

Everything here is numpy only and imports nothing else of arithforge. Every operation is exact and
then rounded once, on integer codes; nothing is "quantize then compute in float32".
"""

from . import bitmod, lut, ops, packing
from ._errors import FormatError
from .bitmod import PEConfig
from .block import BlockCodes, BlockFormat, ScaledBlockCodes
from .catalog import get_format, names
from .descriptors import FixedFormat, FloatFormat, Format, IntFormat, Specials
from .lut import LUTConfig
from .packing import pack, unpack
from .posit import PositFormat
from .rounding import Rounding, Saturation

__all__ = [
    "BlockCodes", "BlockFormat", "FixedFormat", "FloatFormat", "Format", "FormatError", "IntFormat",
    "LUTConfig", "PEConfig", "PositFormat", "Rounding", "Saturation", "ScaledBlockCodes",
    "Specials", "bitmod",
    "get_format", "lut", "names", "ops", "pack", "packing", "unpack",
]
