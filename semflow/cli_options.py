"""Command-line options of the CLIP prior, and the spec they make (the CLI layer; torch is not imported).

``PRIOR_OPTIONS`` is the options as plain data (flag, parameter name, click keywords);
:func:`prior_options` turns them into click options on a command, which then receives ``prior``,
``clip_model``, ``clip_weights``, ``prior_classes`` and ``prior_weight``; :func:`prior_spec` turns
those values into the :class:`~semflow.segmentation.clip.spec.ClipPriorSpec` that
:func:`semflow.segmentation.get_segmenter` takes (None for ``--prior none``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from semflow.errors import InputError
from semflow.segmentation.clip.spec import ClipPriorSpec

F = TypeVar("F", bound=Callable[..., Any])

PRIOR_CHOICES = ("none", "clip")

# (flag, parameter name, click.option keywords), in the order --help lists them
PRIOR_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--prior", "prior", dict(
        type=click.Choice(PRIOR_CHOICES), default="none", show_default=True,
        help="Semantic prior fused with the segmentation per region: clip = zero-shot CLIP labels "
             "(needs pip install 'semflow[clip]' and --clip-weights).")),
    ("--clip-model", "clip_model", dict(
        default="ViT-B-32", show_default=True,
        help="open_clip architecture of the checkpoint (ViT-B-32, ViT-B-16, ViT-L-14, RN50, a -quickgelu variant...).")),
    ("--clip-weights", "clip_weights", dict(
        type=click.Path(path_type=Path), default=None,
        help="CLIP checkpoint file you downloaded (OpenAI .pt or OpenCLIP .bin/.pt/.safetensors); never downloaded "
             "by semflow, and read as tensors only: no code in it is run.")),
    ("--prior-classes", "prior_classes", dict(
        default=None,
        help="Classes CLIP chooses from, 'name:kind,...' (kind: thing, plane, stuff) or a file of them "
             "(default: common things, planes and stuff).")),
    ("--prior-weight", "prior_weight", dict(
        type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
        help="Weight w of CLIP in the per-region fusion: (1 - w) * backbone + w * CLIP.")),
)


def prior_options(func: F) -> F:
    """Add the click options of :data:`PRIOR_OPTIONS` to a command."""
    for flag, name, kwargs in reversed(PRIOR_OPTIONS):
        func = click.option(flag, name, **kwargs)(func)
    return func


def prior_spec(prior: str | None = "none", clip_model: str = "ViT-B-32", clip_weights: str | os.PathLike | None = None,
               prior_classes: str | None = None, prior_weight: float = 0.5) -> ClipPriorSpec | None:
    """The spec the prior options name: ``none``/None -> None, ``clip`` -> :class:`ClipPriorSpec`."""
    if prior is None or prior == "none":
        return None
    if prior != "clip":
        raise InputError(f"unknown prior {prior!r}; use {' or '.join(PRIOR_CHOICES)}")
    return ClipPriorSpec(model=clip_model, weights=None if clip_weights is None else os.fspath(clip_weights),
                         classes=prior_classes, weight=prior_weight)
