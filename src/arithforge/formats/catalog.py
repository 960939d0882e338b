# Ref: ml_dtypes README (names); OFP8 v1.0; OCP Microscaling Formats (MX) v1.0 §5;
#      Posit Standard 2022.
"""Named formats, spelled as ml_dtypes spells them, plus any ``eXmY`` the user writes.

Like Amaranth's ``crc.catalog``: named presets of the one descriptor class per kind.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from ._errors import FormatError
from .descriptors import FloatFormat, Format, IntFormat, Specials

__all__ = ["get_format", "names", "register"]

_FACTORIES: dict[str, Callable[[], Format]] = {}


def register(name: str, factory: Callable[[], Format]) -> None:
    """Add a named format to the catalog (other modules register posits and block formats)."""
    _FACTORIES[name] = factory


def _float(e: int, m: int, **kw: object) -> Callable[[], Format]:
    return lambda: FloatFormat(e, m, **kw)  # type: ignore[arg-type]


for _name, _factory in {
    "float64": _float(11, 52),
    "float32": _float(8, 23),
    "float16": _float(5, 10),
    "bfloat16": _float(8, 7),
    "float8_e5m2": _float(5, 2),
    "float8_e4m3fn": _float(4, 3, specials=Specials.FN),
    "float8_e4m3": _float(4, 3),
    "float8_e3m4": _float(3, 4),
    "float8_e4m3fnuz": _float(4, 3, specials=Specials.FNUZ),
    "float8_e5m2fnuz": _float(5, 2, specials=Specials.FNUZ),
    "float8_e4m3b11fnuz": _float(4, 3, specials=Specials.FNUZ, bias=11),
    "float8_e8m0fnu": _float(8, 0, specials=Specials.FN, signed=False, subnormals=False,
                             zero=False),
    # NVIDIA's unsigned E4M3 block scale of NVFP4 (PTX ISA ``.ue4m3``): 7 code bits, stored in
    # a byte with the sign bit 0; max 448, NaN at 0x7F, subnormals down to 2**-9.
    "float8_ue4m3": _float(4, 3, specials=Specials.FN, signed=False),
    "float6_e3m2fn": _float(3, 2, specials=Specials.NONE),
    "float6_e2m3fn": _float(2, 3, specials=Specials.NONE),
    "float4_e2m1fn": _float(2, 1, specials=Specials.NONE),
}.items():
    register(_name, _factory)
def _int(bits: int, signed: bool) -> Callable[[], Format]:
    return lambda: IntFormat(bits, signed)


for _bits in (2, 3, 4, 8, 16, 32):
    register(f"int{_bits}", _int(_bits, True))
    register(f"uint{_bits}", _int(_bits, False))

_EXMY = re.compile(
    r"^(?P<unsigned>u)?(?:float(?P<bits>\d+)_)?e(?P<e>\d+)m(?P<m>\d+)(?:b(?P<bias>-?\d+))?"
    r"(?P<tail>fnuz|fn_nan|fn_nonan|fnu|fn|ext)?(?P<nosub>_nosub)?(?P<nozero>_nozero)?$"
)


def _parse_exmy(name: str) -> Format | None:
    match = _EXMY.match(name)
    if match is None:
        return None
    e, m = int(match["e"]), int(match["m"])
    tail = match["tail"] or ""
    bits = 1 + e + m - (tail == "fnu" or match["unsigned"] is not None)
    sub_byte = bits <= 6
    specials = {
        "": Specials.IEEE, "fnuz": Specials.FNUZ, "fn_nan": Specials.FN, "ext": Specials.EXT,
        "fn_nonan": Specials.NONE, "fnu": Specials.FN,
        "fn": Specials.NONE if sub_byte else Specials.FN,
    }[tail]
    kw: dict[str, object] = {"specials": specials}
    if match["bias"] is not None:
        kw["bias"] = int(match["bias"])
    if match["nosub"]:
        kw["subnormals"] = False
    if tail == "fnu":
        kw.update(signed=False, subnormals=False, zero=False)
    if match["unsigned"]:
        if tail == "fnu":
            raise FormatError(f"{name!r}: 'fnu' is already unsigned; drop the leading 'u'")
        kw["signed"] = False
    if match["nozero"]:
        # Without a zero, exponent field 0 is an ordinary binade: no subnormals either.
        kw.update(zero=False, subnormals=False)
    fmt = FloatFormat(e, m, **kw)  # type: ignore[arg-type]
    if match["bits"] is not None and int(match["bits"]) != fmt.bits:
        raise FormatError(
            f"{name!r} says {match['bits']} bits but e{e}m{m} with that sign and policy has "
            f"{fmt.bits}; write float{fmt.bits}_e{e}m{m}{tail}"
        )
    return fmt


def names() -> list[str]:
    """Names of every catalog format, in catalog order."""
    _load_plugins()
    return list(_FACTORIES)


def _load_plugins() -> None:
    # Posits and block formats live in their own modules and register themselves on import.
    from . import block, posit  # noqa: F401


def get_format(name: str | Format) -> Format:
    """Return the format called ``name`` (a catalog name or any ``eXmY`` spelling).

    Raises
    ------
    FormatError
        For an unknown name, listing the closest valid names.
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format name must be a string, not {name!r}")
    _load_plugins()
    key = name.strip().lower()
    factory = _FACTORIES.get(key)
    if factory is not None:
        return factory()
    try:
        parsed = _parse_exmy(key)
    except FormatError:
        raise
    if parsed is not None:
        return parsed
    from .p3109 import parse_name

    p3109 = parse_name(key)  # IEEE P3109 names (binary8p3sf): aliases, not catalog entries
    if p3109 is not None:
        return p3109
    close = difflib.get_close_matches(key, list(_FACTORIES), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise FormatError(
        f"unknown format {name!r}{hint} (see 'arithforge formats' for the catalog, or spell a "
        f"float as eXmY)"
    )
