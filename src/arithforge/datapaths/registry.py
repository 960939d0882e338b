"""The one registry of datapaths: name -> :class:`~.base.Descriptor`.

Every command, sweep, simulation, calibration, report and parametrized test loops over
:data:`DATAPATHS`; nothing else names a datapath. :func:`register` is the one way in: the
built-in datapaths go through it (the one line per datapath at the bottom), and so do plug-in
datapaths of users and tests (``register(MyDescriptor())``, or ``with registered(...):`` for the
length of a block); :func:`unregister` takes one out again.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import DatapathError, Descriptor, import_class

__all__ = ["DATAPATHS", "PLUGINS_ENV", "generator_descriptor", "generator_of", "get",
           "load_plugins", "plugin_sources", "register", "registered", "unregister", "with_face"]

#: Datapath name -> descriptor, in registration order. Written only through :func:`register`
#: and :func:`unregister`.
DATAPATHS: dict[str, Descriptor] = {}

FACES = ("generator", "accuracy", "sweep", "array_pe")


def register(descriptor: Descriptor) -> Descriptor:
    """Add ``descriptor`` to :data:`DATAPATHS` under its name; return it.

    Raises
    ------
    TypeError
        ``descriptor`` is not a :class:`Descriptor` instance, or a parameter is not a ``Param``.
    ValueError
        The name is empty or taken, or a parameter's name or kind is malformed.
    """
    if not isinstance(descriptor, Descriptor):
        raise TypeError(f"datapath must be a Descriptor instance, not {descriptor!r}")
    cls = type(descriptor)
    name = descriptor.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__name__}.name must be an identifier, not {name!r}")
    if name in DATAPATHS:
        raise ValueError(f"{cls.__name__}.name must be unique, not {name!r} (taken by "
                         f"{type(DATAPATHS[name]).__qualname__})")
    from .base import Param

    for table in ("params", "sweep"):
        params = getattr(descriptor, table)
        if not isinstance(params, dict):
            raise TypeError(f"{cls.__name__}.{table} must be a dict, not {params!r}")
        for pname, param in params.items():
            where = f"{cls.__name__}.{table}[{pname!r}]"
            if not isinstance(pname, str) or not pname.isidentifier():
                raise ValueError(f"{cls.__name__}.{table} keys must be identifiers, not "
                                 f"{pname!r}")
            if not isinstance(param, Param):
                raise TypeError(f"{where} must be a Param, not {param!r}")
            param.check(where)
    if descriptor.params and descriptor.generator is None:
        raise ValueError(f"{cls.__name__} has generator parameters but no generator")
    if descriptor.accuracy is not None and descriptor.accuracy.name != name:
        # The model reports under the datapath's name.
        descriptor.accuracy = dataclasses.replace(descriptor.accuracy, name=name)
    DATAPATHS[name] = descriptor
    return descriptor


def unregister(name: str) -> Descriptor:
    """Remove datapath ``name`` from :data:`DATAPATHS`; return its descriptor."""
    try:
        return DATAPATHS.pop(name)
    except KeyError:
        raise ValueError(f"name must be a registered datapath, not {name!r}") from None


@contextmanager
def registered(*descriptors: Descriptor) -> Iterator[None]:
    """Register ``descriptors`` for the length of a ``with`` block (tests, scripts), then remove
    them again, whatever the block raised."""
    done: list[str] = []
    try:
        for d in descriptors:
            register(d)
            done.append(d.name)
        yield
    finally:
        for name in reversed(done):
            DATAPATHS.pop(name, None)


def has_face(descriptor: Descriptor, face: str) -> bool:
    """Whether ``descriptor`` has ``face``: ``generator`` (hardware), ``accuracy`` (a GEMM
    model), ``sweep`` (explore sweeps it) or ``array_pe`` (a PE of the systolic array)."""
    if face not in FACES:
        raise ValueError(f"face must be one of {', '.join(FACES)}, not {face!r}")
    return bool(getattr(descriptor, face))


def with_face(face: str) -> dict[str, Descriptor]:
    """The registered datapaths that have ``face`` (see :func:`has_face`), in order."""
    return {n: d for n, d in DATAPATHS.items() if has_face(d, face)}


def get(name: str, face: str | None = None) -> Descriptor:
    """The datapath called ``name`` (with ``face`` when given).

    Raises
    ------
    DatapathError
        One line naming the close matches and the datapaths there are.
    """
    pool = DATAPATHS if face is None else with_face(face)
    if isinstance(name, str) and name in pool:
        return pool[name]
    what = {None: "datapath", "generator": "datapath with hardware",
            "accuracy": "datapath with a GEMM model", "sweep": "datapath explore sweeps",
            "array_pe": "PE datapath"}[face]
    close = difflib.get_close_matches(str(name), list(pool), n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    if isinstance(name, str) and name in DATAPATHS:
        raise DatapathError(f"{name!r} is not a {what}; choose one of {', '.join(pool)}")
    raise DatapathError(f"unknown {what} {name!r}{hint}; choose one of {', '.join(pool)}")


def generator_descriptor(name: str) -> Descriptor:
    """The descriptor of datapath ``name``, which must have a generator: what ``generate``,
    ``verify``, ``cost`` and ``synth`` take (``arithforge.hdl.registry.descriptor``).

    Raises
    ------
    DatapathError
        One line naming the closest names and the datapaths with hardware.
    """
    d = DATAPATHS.get(name) if isinstance(name, str) else None
    known = with_face("generator")
    if d is not None and d.generator is not None:
        return d
    if d is not None:
        raise DatapathError(f"datapath {name!r} has no hardware generator (datapaths with one: "
                            f"{', '.join(sorted(known))})")
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise DatapathError(f"unknown datapath {name!r}{hint} (known: "
                        f"{', '.join(sorted(known))})")


def generator_of(descriptor: Descriptor) -> type:
    """The generator class of ``descriptor`` (imported on first use)."""
    gen = descriptor.generator
    if gen is None:
        raise DatapathError(f"datapath {descriptor.name!r} has no hardware generator")
    return import_class(gen, f"{descriptor.name}: generator")


#: Environment variable naming plug-in modules the command line loads: module names or ``.py``
#: files, separated by ``os.pathsep`` (``:``) or commas.
PLUGINS_ENV = "ARITHFORGE_PLUGINS"
#: Names of the built-in datapaths (registered below).
_BUILTIN: set[str] = set()
#: Plug-in sources loaded into this process.
_LOADED: set[str] = set()


def plugin_sources() -> tuple[str, ...]:
    """Where the registered plug-in datapaths (not the built-in ones) are defined: the file of
    each one's module, for :func:`load_plugins` in another process."""
    out: list[str] = []
    for name, d in DATAPATHS.items():
        if name in _BUILTIN:
            continue
        module = sys.modules.get(type(d).__module__)
        path = getattr(module, "__file__", None)
        if path is None:
            raise DatapathError(f"plug-in datapath {name!r} is defined in module "
                                f"{type(d).__module__!r}, which has no file another process "
                                f"could load; define it in a module")
        source = str(Path(path).resolve())
        if source not in out:
            out.append(source)
    return tuple(out)


def load_plugins(sources: Iterable[str]) -> list[str]:
    """Load plug-in modules (``.py`` files or module names) into this process, once each;
    return the names of the datapaths they added.

    A module registers its descriptors when imported, or defines ``arithforge_datapaths()``
    returning them; datapaths already registered under their name are left alone.

    Raises
    ------
    DatapathError
        A source that does not exist or does not import (one line).
    """
    added: list[str] = []
    for source in sources:
        source = str(source).strip()
        if not source or source in _LOADED:
            continue
        before = set(DATAPATHS)
        try:
            if source.endswith(".py"):
                path = Path(source)
                if not path.is_file():
                    raise DatapathError(f"plug-in {source!r} is not a file")
                tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
                spec = importlib.util.spec_from_file_location(f"arithforge_plugin_{tag}", path)
                assert spec is not None
                assert spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(source)
        except ImportError as exc:
            raise DatapathError(f"plug-in {source!r} does not import: {exc}") from None
        _LOADED.add(source)
        hook = getattr(module, "arithforge_datapaths", None)
        if callable(hook):
            for d in hook():
                if d.name not in DATAPATHS:
                    register(d)
        added += [n for n in DATAPATHS if n not in before]
    return added


def env_plugins() -> list[str]:
    """The plug-in sources :data:`PLUGINS_ENV` names."""
    text = os.environ.get(PLUGINS_ENV, "")
    return [s for part in text.split(os.pathsep) for s in part.split(",") if s.strip()]


def _builtin() -> None:
    from . import (
        bitserial,
        dot,
        exact,
        fma,
        gelu,
        hadamard,
        imac,
        layernorm,
        lmul,
        lut,
        mx,
        softmax,
        tensorcore,
    )

    for d in (fma.FMA(), fma.Mul(), fma.Add(), lmul.LMul(), lmul.LMac(), imac.IMac(),
              lut.LUT(), bitserial.BitSerial(), exact.Exact(), mx.MX(), tensorcore.TensorCore(),
              dot.Dot(), gelu.GELU(), softmax.Softmax(), layernorm.LayerNorm(),
              hadamard.Hadamard()):
        register(d)
        _BUILTIN.add(d.name)


_builtin()
