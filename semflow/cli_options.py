"""Click options made from the methods' option declarations (the CLI layer; torch is not imported).

Each option is declared once, in a method's options dataclass (:mod:`semflow.options`);
:func:`click_type` gives its click type. The ``segment`` command offers the CLIP prior's options as
``semantic`` declares them (``prior``, ``clip_model``, ``clip_weights``, ``prior_classes``,
``prior_weight``: :data:`PRIOR_OPTION_NAMES`) through :func:`prior_options`; the command then passes
the values to :func:`semflow.segmentation.clip.prior_from_options`, which makes the
:class:`~semflow.segmentation.clip.ClipPriorSpec` that :func:`semflow.segmentation.get_segmenter` takes.
``run`` and ``batch`` share their run options (:func:`shared_run_options`); the path types refuse ``-``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from semflow.methods import DEFAULT_RUN_METHOD
from semflow.options import OptionInfo

F = TypeVar("F", bound=Callable[..., Any])

PRIOR_OPTION_NAMES: tuple[str, ...] = ("prior", "clip_model", "clip_weights", "prior_classes", "prior_weight")


class FiniteFloat(click.ParamType):
    """A finite float (``nan`` and ``inf`` refused: click's FloatRange lets ``nan`` through), above 0
    when ``positive``."""

    name = "float"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} is not above 0.", param, ctx)
        return number


class MaxFlow(FiniteFloat):
    """``--max-flow``: a colour normaliser in px within :data:`semflow.viz.MAX_FLOW_LIMITS`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from semflow.errors import InputError
        from semflow.viz import MAX_FLOW_LIMITS, check_max_flow

        number = super().convert(value, param, ctx)
        try:
            return check_max_flow(number)
        except InputError:
            self.fail(f"{value!r} is not between {MAX_FLOW_LIMITS[0]:g} and {MAX_FLOW_LIMITS[1]:g} px.", param, ctx)


class Whole(click.IntRange):
    """A whole number within bounds, as click's IntRange but for its name: a value that is no whole number
    read "'abc' is not a valid integer range", as if a range were asked for (each option using it names its
    value with a metavar, N, PX or MB, as the docs and its help do, where click showed INTEGER RANGE)."""

    name = "integer"


MAX_FLOW = MaxFlow(positive=True)
"""The click type of ``--max-flow``: a finite length in px within the normaliser's limits."""


def click_type(info: OptionInfo) -> Any:
    """The click type of a declared option: its choices, else its first number/bool type, else text."""
    if info.choices:
        return click.Choice(list(info.choices))
    kinds = typing.get_args(info.type) or (info.type,)
    for kind in (bool, int, float):
        if kind in kinds:
            return FiniteFloat() if kind is float else kind
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


class FilePath(click.Path):
    """A path argument, taken as given and checked by semflow itself (click's check of an existing path's
    readability was a usage error, exit 2, "Invalid value for 'IMAGE1': Path 'a.png' is not readable", where
    semflow says "a.png: not readable" and exits 1; an output file that exists was refused as unreadable).
    ``-`` is refused: semflow reads and writes files, not standard input or output (it said "-: no such file")."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in ("-", b"-"):
            self.fail("'-' (standard input or output) is not supported; name a file", param, ctx)
        return super().convert(value, param, ctx)


PATH = FilePath(path_type=Path, readable=False)
"""A path argument (a :class:`~pathlib.Path`)."""
TEXT_PATH = FilePath(path_type=str, readable=False)
"""A path argument kept as text (batch's inputs: globs and manifests too)."""

def check_segment_options(backend: str, label_set: str | None, kinds: str | None, prior: Any) -> None:
    """``segment``'s refusals of options that do not go together, told in its own options: ``--kinds``
    without a CLIP ``prior`` (its spec, or None), and a ``--label-set`` that ``--segmenter camvid`` cannot use
    (segment has no ``--segmentation``: masks and torchvision weights are given to ``--segmenter``)."""
    from semflow.errors import InputError
    from semflow.segmentation.spec_check import check_camvid_label_set

    if kinds is not None and prior is None:  # (label maps hold classes: kinds matter only to the prior's fusion)
        raise InputError("--kinds acts only with --prior clip")
    if backend.partition(":")[0].lower() == "camvid":
        check_camvid_label_set(label_set, uses="--segmenter masks:PATH or torchvision:PATH")


def sharpen_help(baseline_flows: str) -> str:
    """``--sharpen``'s declared help with the command's own option for the baseline's flows (``flow``:
    ``--baseline-flow``), or without them where it has none (``""``: ``batch``)."""
    from semflow.options import SharpenOptions

    text = {f.name: f.metadata["help"] for f in dataclasses.fields(SharpenOptions)}["sharpen"]
    return text.replace(" or on --baseline-flows", f" or on {baseline_flows}" if baseline_flows else "")


BATCH_HELPS = {
    "device": "Where torch parts run: cpu, cuda (each worker gets its GPU from Ray) or auto.",
    "segmentation": "Given masks instead of a segmenter: one label PNG, used for every frame of every clip.",
    "sharpen": sharpen_help(""),
}
"""``semflow batch``'s own help for method options whose values it narrows (a batch refuses cuda:N and a
folder of one video's masks) or that name an option it does not offer (--baseline-flows)."""

FLOW_HELPS = {"sharpen": sharpen_help("--baseline-flow")}
"""``semflow flow``'s own help for options that name another option (a pair's baseline is --baseline-flow)."""

COMPARE_HELPS = {
    "baseline_flows": "The baseline's flows computed already, instead of a baseline method: a folder of NNNNNN.flo"
                      " (.png, .npy), one a sample, NNNNNN its place in the dataset's sorted listing (000000 the"
                      " first).",
    "segmentation": "Given masks instead of a segmenter: one label PNG for every sample, or a folder"
                    " of NNNNNN.png, one a sample by its place in the dataset's sorted listing.",
}
"""``semflow compare``'s own help for the per-pair inputs, which it reads by each sample's place in the dataset
(the options' own text speaks of a video's frames and of `run --save-flo`)."""


def methods_listing() -> list[str]:
    """``semflow methods``' lines: each method's name, what it is and the command-line options it takes (as
    ``--method NAME`` refuses another: "it takes --device, --sharpen"), one line a method."""
    from semflow.methods import describe_methods, method_options

    return [f"{name:15s} {description}; options: "
            + ", ".join("--" + info.name.replace("_", "-") for info in method_options(name) if info.cli)
            for name, description in describe_methods().items()]


RUN_SETTINGS = ("save_flo", "max_frames", "max_side", "max_flow", "resume", "pairwise", "progress")
"""The options of ``run`` that ``batch`` shares (besides --method and --cache-mb): RunOptions' fields."""


def shared_run_options(per_clip: bool) -> Callable[[F], F]:
    """The options ``run`` and ``batch`` share (``per_clip``: worded for batch's clips), declared once."""
    clip = " per clip" if per_clip else ""
    flo = "DIR/NAME/flo" if per_clip else "DIR/flo"
    declared = [
        click.option("--method", default=DEFAULT_RUN_METHOD, show_default=True, metavar="NAME",
                     help="Flow method (see `semflow methods`)."),
        click.option("--save-flo", is_flag=True, help=f"Also write {flo}/NNNNNN.flo for every pair."),
        click.option("--max-frames", type=Whole(min=2), default=None, metavar="N",  # (a flow needs a pair)
                     help=f"Read at most this many frames{clip} (default: all)."),
        click.option("--max-side", type=Whole(min=16), default=None, metavar="PX",
                     help="Shrink frames so the longer side is at most PX."),
        click.option("--max-flow", type=MAX_FLOW, default=None, metavar="PX",
                     help="Colour normaliser in px, 0.001 to 1e6 (default: the largest of the pairs' 99th percentiles); one pass,"
                          " no flows kept."),
        click.option("--resume", is_flag=True, help="Keep the pairs an earlier, interrupted run finished; do only what is"
                                                    " missing."),
        click.option("--cache-mb", type=Whole(min=0), default=512, show_default=True, metavar="MB",
                     help=f"Disk (MiB){clip} for the flows kept to draw the clip: exact ones when the clip fits, else"
                          " a compact re-colourable video of them at this size over the clip (0: keep none, compute"
                          " them again to draw them)."),
        click.option("--pairwise", is_flag=True,
                     help="Compute each pair on its own (pair mode) instead of carrying what is known from pair to pair."),
        click.option("--progress/--no-progress", default=None, help="Progress display (default: on a terminal)."),
    ]

    def apply(func: F) -> F:
        for option in reversed(declared):
            func = option(func)
        return func

    return apply
