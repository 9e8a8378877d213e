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
_DEVICE = re.compile(r"cpu|auto|cuda(?::([0-9]+))?", re.ASCII)  # (\d took any script's digits: torch takes ASCII)


def check_device_name(device: str | None) -> str:
    """``device`` normalised (stripped, lower case; None means ``"cpu"``); InputError unless it is
    ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (``cuda:01`` is ``cuda:1``: torch refused the leading zero)."""
    name = (device or "cpu").strip().lower()
    match = _DEVICE.fullmatch(name)
    if not match:
        raise InputError(f"unknown device {device!r}; use {DEVICE_NAMES}")
    return f"cuda:{int(match[1])}" if match[1] else name


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when there is one; None means cpu) as a
    torch device. Raises InputError for an unknown name, CUDA asked for where there is none, or a GPU
    index this machine does not have."""
    import torch

    name = check_device_name(str(device) if isinstance(device, torch.device) else device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but no CUDA GPU is available here; use --device cpu")
    index = int(name.partition(":")[2] or -1)  # (checked before torch.device sees it: torch's index is 8 bits,
    if index >= torch.cuda.device_count():  # cuda:128 was cuda:-128, a larger one a RuntimeError)
        count = torch.cuda.device_count()
        raise InputError(f"device {name!r} asked for, but this machine has {count} CUDA GPU"
                         f"{'s' if count != 1 else ''} (cuda:0{'' if count == 1 else f' to cuda:{count - 1}'})")
    return torch.device("cuda", index) if index >= 0 else torch.device("cuda")
