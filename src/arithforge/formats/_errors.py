"""The one exception type of the emulator."""


class FormatError(ValueError):
    """A format descriptor, format name or operand is invalid.

    The message is one line that says what is wrong and how to fix it; the CLI prints it without a
    traceback.
    """
