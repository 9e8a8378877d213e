"""Where torch code runs: the one parser of ``--device`` values."""

from __future__ import annotations

import torch

from semflow.errors import InputError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when there is one; None means cpu) as a
    torch device. Raises InputError for an unknown name or CUDA asked for where there is none."""
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or "cpu").strip().lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu")
    return dev
