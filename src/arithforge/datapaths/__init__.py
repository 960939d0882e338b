"""Datapath descriptors and their one registry: every face of every datapath, free of Amaranth.

``arithforge.datapaths.DATAPATHS`` maps each datapath's one name to its
:class:`~.base.Descriptor`; :func:`register` adds a plug-in datapath
(``docs/adding-a-datapath.md``). ``Descriptor.build_unit`` builds a datapath's :class:`~.unit.Unit`:
one configured datapath, every face but its hardware.
"""

from __future__ import annotations

from .base import (
    AcceptanceCheck,
    Accuracy,
    ArrayExample,
    Config,
    DatapathError,
    Descriptor,
    Design,
    Operand,
    Param,
    ParamError,
    Skip,
    SweepContext,
    format_kind,
)
from .registry import DATAPATHS, generator_of, get, register, registered, unregister, with_face
from .unit import Unit

__all__ = ["DATAPATHS", "AcceptanceCheck", "Accuracy", "ArrayExample", "Config", "DatapathError",
           "Descriptor", "Design", "Operand", "Param", "ParamError", "Skip", "SweepContext", "Unit",
           "format_kind", "generator_of", "get", "register", "registered", "unregister",
           "with_face"]
