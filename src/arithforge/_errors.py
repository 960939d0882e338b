"""The user-error type of the command line and of the packages above the emulator.

Raise :class:`ArithforgeError` for a mistake the user can fix (a bad argument, a missing tool, a
file that does not parse): ``arithforge`` prints its message as one line, ``arithforge: error:
<message>``, and exits with status 2. Any other exception is a bug and keeps its traceback. The
emulator has its own :class:`arithforge.formats.FormatError` (a ``ValueError``), because
``formats`` imports nothing else of ours; the command line treats it the same way.
"""

__all__ = ["ArithforgeError"]


class ArithforgeError(Exception):
    """A mistake the user can fix; the message says what is wrong and how to fix it, on one line."""
