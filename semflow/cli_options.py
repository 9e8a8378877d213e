"""Click options made from the methods' option declarations (the CLI layer; torch is not imported).

Each option is declared once, in a method's options dataclass (:mod:`semflow.options`);
:func:`click_type` gives its click type. The ``segment`` command offers the CLIP prior's options as
``semantic`` declares them (``prior``, ``clip_model``, ``clip_weights``, ``prior_classes``,
``prior_weight``: :data:`PRIOR_OPTION_NAMES`) through :func:`prior_options`; the command then passes
the values to :func:`semflow.segmentation.clip.prior_from_options`, which makes the
:class:`~semflow.segmentation.clip.ClipPriorSpec` that :func:`semflow.segmentation.get_segmenter` takes.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from semflow.options import OptionInfo

F = TypeVar("F", bound=Callable[..., Any])

PRIOR_OPTION_NAMES: tuple[str, ...] = ("prior", "clip_model", "clip_weights", "prior_classes", "prior_weight")


def click_type(info: OptionInfo) -> Any:
    """The click type of a declared option: its choices, else its first number/bool type, else text."""
    if info.choices:
        return click.Choice(list(info.choices))
    kinds = typing.get_args(info.type) or (info.type,)
    for kind in (bool, int, float):
        if kind in kinds:
            return kind
    return str


def prior_options(func: F) -> F:
    """Add ``--prior``, ``--clip-model``, ``--clip-weights``, ``--prior-classes`` and ``--prior-weight``
    to a command, with the types, defaults and help that ``semantic``'s options declare."""
    from semflow.methods import method_options

    declared = {info.name: info for info in method_options("semantic")}
    for name in reversed(PRIOR_OPTION_NAMES):
        info = declared[name]
        func = click.option(f"--{name.replace('_', '-')}", name, type=click_type(info), default=info.default,
                            show_default=info.default is not None, help=info.help)(func)
    return func
