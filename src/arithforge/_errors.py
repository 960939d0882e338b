"""The user-error type of the command line and of the packages above the emulator.

Raise :class:`ArithforgeError` for a mistake the user can fix (a bad argument, a missing tool, a
file that does not parse): ``arithforge`` prints its message as one line, ``arithforge: error:
<message>``, and exits with status 2. Any other exception is a bug and keeps its traceback. The
emulator has its own :class:`arithforge.formats.FormatError` (a ``ValueError``), because
``formats`` imports nothing else of ours; the command line treats it the same way.

:func:`import_package` lives here, below every package, so that the command line and the packages
(calibration imports the datapath registry on demand) report a package missing from the install
in the same words, and no package has to import the command line for it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ArithforgeError", "import_package"]


class ArithforgeError(Exception):
    """A mistake the user can fix; the message says what is wrong and how to fix it, on one line."""


def import_package(name: str) -> ModuleType:
    """Import package ``name``, or raise :class:`ArithforgeError` if it is not in this install.

    Only the absence of the package itself is a user error (an install without it); an import
    error raised from inside the package is a bug and propagates.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise
        raise ArithforgeError(
            f"{name} is not available in this installation ({exc}); run `make install`"
        ) from exc
