"""Where the emulator runs: ``device="cpu"`` is numpy; any other torch device string uses
:mod:`._torch_backend` (``"cuda"``, ``"cuda:1"``, or ``"cpu:0"`` for the torch code on the CPU)."""

from __future__ import annotations

from types import ModuleType

from ._errors import FormatError


def torch_backend(device: object) -> ModuleType:
    """The PyTorch backend module, imported on first use; a clear error without PyTorch."""
    try:
        from . import _torch_backend
    except ImportError:
        raise FormatError(f"device={device!r} needs PyTorch: install it (pip install torch) or "
                          "use device='cpu'") from None
    return _torch_backend
