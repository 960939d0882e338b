"""The hardware face of the one datapath registry: build a datapath's generator by name.

The registry is :data:`arithforge.datapaths.DATAPATHS` (name -> descriptor), and the one way in is
``arithforge.datapaths.register(descriptor)`` (``with arithforge.datapaths.registered(...):`` for
the length of a block): a plug-in datapath is a ``Descriptor`` whose ``generator`` is its
:class:`~.base.Datapath` class (or ``"module:Class"``). Nothing here registers anything.

:data:`DATAPATHS` is the live, read-only view that ``arithforge generate``, ``verify``, ``cost``,
``synth``, ``simulate --pe`` and the sweeps read: name -> generator class of every registered
datapath that has one, in registration order, each class imported on first use. :func:`build`
checks the parameters against the descriptor's ``params`` (:class:`Param`: names, types, integer
ranges) before the generator's constructor runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..datapaths.base import DatapathError, Descriptor, Param
from ..datapaths.registry import DATAPATHS as _DESCRIPTORS
from ..datapaths.registry import generator_descriptor, generator_of
from .base import Datapath

__all__ = ["DATAPATHS", "DatapathError", "Param", "build", "descriptor", "descriptors",
           "generator"]


def descriptors() -> dict[str, Descriptor]:
    """The registered datapaths that have a generator, name -> descriptor, in order."""
    return {n: d for n, d in _DESCRIPTORS.items() if d.generator is not None}


#: The descriptor of datapath ``name``, which must have a generator (one-line
#: :class:`DatapathError` naming the closest names otherwise): the descriptors' function.
descriptor = generator_descriptor


def generator(d: Descriptor) -> type[Datapath]:
    """The generator class of descriptor ``d`` (imported on first use), checked to be a
    :class:`~.base.Datapath`."""
    cls = generator_of(d)
    if not issubclass(cls, Datapath):
        raise TypeError(f"datapath {d.name!r}: generator {cls.__qualname__} must be a subclass "
                        f"of arithforge.hdl.base.Datapath")
    return cls


class Generators(Mapping[str, type[Datapath]]):
    """Read-only, live: datapath name -> generator class, for every registered datapath with a
    generator (registration order). Membership and iteration import nothing; looking a class up
    imports its module."""

    def __getitem__(self, name: str) -> type[Datapath]:
        d = _DESCRIPTORS.get(name) if isinstance(name, str) else None
        if d is None or d.generator is None:
            raise KeyError(name)
        return generator(d)

    def __contains__(self, name: object) -> bool:
        d = _DESCRIPTORS.get(name) if isinstance(name, str) else None
        return d is not None and d.generator is not None

    def __iter__(self) -> Iterator[str]:
        return iter(list(descriptors()))

    def __len__(self) -> int:
        return len(descriptors())

    def __repr__(self) -> str:
        return f"<generators of {', '.join(self) or 'no datapath'}>"


#: Datapath name -> generator class (see :class:`Generators`); written only through
#: ``arithforge.datapaths.register``.
DATAPATHS: Mapping[str, type[Datapath]] = Generators()


def build(name: str, **params: Any) -> Datapath:
    """Build datapath ``name`` from parameters as the command line gives them (strings) or typed.

    The descriptor parses the values (``Descriptor.parse_params``: each through its
    :class:`Param`, a missing one (or ``None``) the parameter's default, format names formats),
    then ``generator.from_params(**values)`` (``Descriptor.instantiate``). Its unit alone, without
    Amaranth: ``Descriptor.build_unit``.

    Raises
    ------
    DatapathError
        (a ``ValueError``) for an unknown datapath or parameter (one line, naming the closest
        valid names), or for a parameter value the schema or the datapath refuses.
    """
    d = descriptor(name)
    values = d.parse_params(params)
    return d.instantiate(generator(d), values)
