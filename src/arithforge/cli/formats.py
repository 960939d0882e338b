"""``arithforge formats``: the format catalog, one format's facts, or every code and its value."""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from typing import Any

from .._errors import ArithforgeError
from . import command, import_package, print_table

__all__ = ["MAX_VALUES_BITS", "format_cell"]

#: Widest format whose codes ``--values`` lists (65,536 lines).
MAX_VALUES_BITS = 16

#: Columns of the catalog table: descriptor attribute and alignment. Formats that lack an
#: attribute (integers have no exponent field, block formats no single bias) show ``-``.
_COLUMNS = (
    ("name", "l"), ("bits", "r"), ("exp_bits", "r"), ("man_bits", "r"), ("bias", "r"),
    ("max_finite", "r"), ("min_normal", "r"), ("min_subnormal", "r"), ("epsilon", "r"),
    ("specials", "l"),
)


def format_cell(value: Any) -> str:
    """Format one fact or value exactly: shortest round-trip ``repr`` of floats, ``-`` for none.

    Values are shown in full (``0.001953125``, not ``0.00195``): an architect reads the exact
    smallest subnormal off this table.
    """
    if value is None:
        return "-"
    if isinstance(value, bool | int | str):
        return str(value)
    if isinstance(value, Fraction):
        return repr(float(value)) if Fraction(float(value)) == value else str(value)
    if isinstance(value, float):
        if math.isnan(value):  # repr() drops the sign of a NaN; the code's sign bit is a fact
            return "-nan" if math.copysign(1.0, value) < 0 else "nan"
        return repr(float(value))  # float() drops numpy's `np.float64(...)` repr
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # numpy scalar
        return format_cell(value.item())
    if isinstance(value, tuple | list | frozenset | set):
        return ", ".join(format_cell(v) for v in value) or "-"
    return str(value)


def _row(fmt: Any) -> list[str]:
    return [format_cell(getattr(fmt, attr, None)) for attr, _ in _COLUMNS]


def _field_layout(fmt: Any) -> tuple[int, ...]:
    """Widths of the code's fields, most significant first: (sign, exp, man) or just (bits,)."""
    exp_bits, man_bits = getattr(fmt, "exp_bits", None), getattr(fmt, "man_bits", None)
    if not isinstance(exp_bits, int) or not isinstance(man_bits, int):
        return (fmt.bits,)
    sign_bits = fmt.bits - exp_bits - man_bits
    return tuple(w for w in (sign_bits, exp_bits, man_bits) if w > 0)


def _binary(code: int, layout: tuple[int, ...]) -> str:
    text = format(code, f"0{sum(layout)}b")
    fields, start = [], 0
    for width in layout:
        fields.append(text[start:start + width])
        start += width
    return " ".join(fields)


def _print_values(fmt: Any) -> None:
    import numpy as np

    if fmt.bits > MAX_VALUES_BITS:
        raise ArithforgeError(
            f"--values needs a format of at most {MAX_VALUES_BITS} bits, "
            f"not {fmt.name} ({fmt.bits} bits)"
        )
    count = 1 << fmt.bits
    codes = np.arange(count, dtype=np.min_scalar_type(count - 1))
    values = np.asarray(fmt.decode(codes))
    layout = _field_layout(fmt)
    digits = (fmt.bits + 3) // 4
    rows = [
        [f"0x{code:0{digits}x}", _binary(code, layout), format_cell(value.item())]
        for code, value in zip(range(count), values, strict=True)
    ]
    fields = "|".join(("sign", "exp", "man")[-len(layout):]) if len(layout) > 1 else "bits"
    # A rich table of 65,536 rows takes seconds to lay out: only small ones get one.
    print_table(["code", fields, "value"], rows, align="llr", title=f"{fmt.name}: every code",
                rich=None if count <= 256 else False)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="a catalog name (float8_e4m3fn, bfloat16, int8, ...) or eXmY")
    parser.add_argument("--values", action="store_true",
                        help=f"list every code and its value (formats of at most "
                             f"{MAX_VALUES_BITS} bits)")


@command("formats", help="list the format catalog, or one format's facts and values",
         configure=_configure)
def run(args: argparse.Namespace) -> int:
    """List the format catalog, or describe one format.

    Without NAME: one row per catalog format with its width, fields, bias, range, epsilon and
    special-value policy. With NAME: that format's facts; with --values also every code, its bit
    fields and its exact value.
    """
    formats = import_package("arithforge.formats")
    if args.name is None:
        if args.values:
            raise ArithforgeError("--values needs a format NAME")
        rows = [_row(formats.get_format(name)) for name in formats.catalog.names()]
        print_table([attr for attr, _ in _COLUMNS], rows, align="".join(a for _, a in _COLUMNS))
        return 0
    fmt = formats.get_format(args.name)
    if args.values:
        _print_values(fmt)
        return 0
    facts = [[attr, cell] for (attr, _), cell in zip(_COLUMNS, _row(fmt), strict=True)]
    if hasattr(fmt, "bits_per_element"):  # block formats: storage with the block scale
        facts.insert(2, ["bits_per_element", format_cell(fmt.bits_per_element)])
    facts.append(["repr", repr(fmt)])
    print_table(["fact", "value"], facts, align="ll")
    return 0
