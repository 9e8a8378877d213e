"""What :func:`~semflow.segmentation.backends.get_segmenter` refuses of a backend spec, told without building
the segmenter (nor importing torch): ``semantic`` builds its segmenter on first use, so a mistyped
``--segmenter`` or a missing weights file is said when the method is built, and a batch says it once, before
Ray starts, not once a clip."""

from __future__ import annotations

import os
from typing import Any

from semflow.errors import InputError

PATH_NAMES = {"camvid": "segmenter weights file", "torchvision": "torchvision weights file",
              "masks": "mask folder or file"}
"""The built-in backends and what their PATH names, as their own errors for a missing one say it."""


def check_segmenter_spec(name: str) -> None:
    """InputError for a ``name`` (``backend`` or ``backend:PATH``) :func:`get_segmenter` would refuse without
    reading a file: an unknown backend, a built-in backend's PATH that does not exist. Another backend (one
    registered from Python) is looked up in the registry. (Not the label set: ``semantic`` with labels given
    to each call in another set never builds its segmenter.)"""
    spec = str(name)
    backend, _, arg = spec.partition(":")
    if backend.lower() not in PATH_NAMES:
        from semflow.segmentation.backends import backend_factory  # (imports torch: only for other names)

        backend_factory(spec)
        return
    path = os.path.expanduser(arg)
    if path and not os.path.exists(path):
        raise InputError(f"{path}: no such {PATH_NAMES[backend.lower()]}")


def check_camvid_label_set(label_set: Any, *,
                           uses: str = "given masks (--segmentation, masks:PATH) or of torchvision:PATH") -> None:
    """InputError unless ``label_set`` (a name, a LabelSet or None) is CamVid's, the camvid segmenter's classes;
    the message says ``--label-set`` names the classes of ``uses`` (run's and flow's options by default)."""
    if label_set is not None and str(getattr(label_set, "name", label_set)).lower() != "camvid":
        raise InputError(f"the camvid segmenter labels in CamVid's classes, not in label set {str(label_set)!r}:"
                         f" --label-set names the classes of {uses}")
