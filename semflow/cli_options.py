"""Command-line options of the CLIP prior (the CLI layer; torch is not imported).

``PRIOR_OPTIONS`` is the options as plain data (flag, parameter name, click keywords);
:func:`prior_options` turns them into click options on a command, which then receives ``prior``,
``clip_model``, ``clip_weights``, ``prior_classes`` and ``prior_weight``, the flat option names that
:func:`semflow.segmentation.clip.prior_from_options` turns into the
:class:`~semflow.segmentation.clip.ClipPriorSpec` that :func:`semflow.segmentation.get_segmenter` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from semflow.segmentation.clip.spec import PRIOR_CHOICES

__all__ = ["PRIOR_OPTIONS", "prior_options"]

F = TypeVar("F", bound=Callable[..., Any])

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

