"""Where torch code runs: the one parser of ``--device`` values.

:func:`check_device_name` checks the spelling alone and imports nothing heavy, so every method (those
with no torch part too) refuses a misspelt device early; :func:`resolve_device` turns a name into a
torch device and checks that the GPU is there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from semflow.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "cpu, cuda, cuda:N or auto"
_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")


def check_device_name(device: str | None) -> str:
    """``device`` normalised (stripped, lower case; None means ``"cpu"``); InputError unless it is
    ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""
    name = (device or "cpu").strip().lower()
    if not _DEVICE.fullmatch(name):
        raise InputError(f"unknown device {device!r}; use {DEVICE_NAMES}")
    return name


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when there is one; None means cpu) as a
    torch device. Raises InputError for an unknown name, CUDA asked for where there is none, or a GPU
    index this machine does not have."""
    import torch

    name = check_device_name(str(device) if isinstance(device, torch.device) else device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but no CUDA GPU is available here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InputError(f"device {name!r} asked for, but this machine has {count} CUDA GPU"
                         f"{'s' if count != 1 else ''} (cuda:0{'' if count == 1 else f' to cuda:{count - 1}'})")
    return dev
