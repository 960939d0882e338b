"""Checks of the numbers a workload run takes, shared by ``arithforge trace``/``evaluate``, the
Python API and the sweep spec (:mod:`arithforge.dse.spec`), so that each accepts what the others
accept.

Each check returns the value or raises :class:`~arithforge.ArithforgeError` reading
``"<what> must be <rule>, not <value>"``. Importing this module loads nothing but the error type.
"""

from __future__ import annotations

import numbers
from typing import Any

from .._errors import ArithforgeError

__all__ = ["BLOCK_SIZE_MAX", "SEED_MAX", "check_block_size", "check_sample_limit",
           "check_seed"]

#: Largest seed: what numpy's and torch's generators both take (and so the bound of the command
#: line's ``arithforge.cli.SEED``).
SEED_MAX = 2**63 - 1

#: Largest block of per-block scaling. OCP MX blocks are 32 elements; a block longer than a
#: GEMM's reduction is padded with zeros, so huge ones only cost memory (rows x block).
BLOCK_SIZE_MAX = 4096



def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(value: Any, what: str = "seed") -> int:
    """Return ``value`` if it is an integer seed ``0 <= seed <= SEED_MAX``."""
    if not _integer(value) or not 0 <= value <= SEED_MAX:
        raise ArithforgeError(f"{what} must be an integer between 0 and 2**63-1, not {value!r}")
    return int(value)


def check_sample_limit(value: Any, what: str = "max_rows") -> int | None:
    """Return ``value`` if it is ``None`` (no limit) or a positive integer.

    ``max_rows`` and ``max_cols`` of :func:`~arithforge.workloads.evaluate.evaluate` and of a
    sweep spec, and ``max_rows`` of a MiniLM trace. A limit above a GEMM's rows (columns) takes
    them all.
    """
    if value is not None and (not _integer(value) or value < 1):
        raise ArithforgeError(f"{what} must be a positive integer, not {value!r}")
    return None if value is None else int(value)


def check_block_size(value: Any, what: str = "block size") -> int:
    """Return ``value`` if it is an integer ``1 <= block <= BLOCK_SIZE_MAX``."""
    if not _integer(value) or not 1 <= value <= BLOCK_SIZE_MAX:
        raise ArithforgeError(f"{what} must be an integer between 1 and {BLOCK_SIZE_MAX}, "
                              f"not {value!r}")
    return int(value)
