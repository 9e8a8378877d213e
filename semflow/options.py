"""Typed method options: each flow method declares its options once, as a dataclass.

    @dataclass(frozen=True)
    class MyOptions(MethodOptions):
        radius: int = option(8, "search radius in px")

Everything else is derived from that one declaration: :func:`semflow.methods.get_method`'s checks
(an unknown option is an error that lists the valid ones), the command line's ``--radius`` (fields
declared with ``cli=True``), ``compare``'s routing of options to the methods that take them, and the
settings a resumed ``run`` must share (:func:`options_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semflow.device import check_device_name, resolve_device
from semflow.errors import InputError


def option(default: Any, help: str, *, cli: bool = True, choices: tuple[str, ...] | None = None,
           path: str = "") -> Any:
    """A dataclass field for a method option: its default, a one-line ``help``, whether the command
    line offers it (``cli``; options that take Python objects do not), the allowed ``choices``, and how
    its value may name a file or folder (a resumed run checks it is the one the run began with):
    ``path`` (always), ``prefixed`` (after ``NAME:``, as ``camvid:PATH``), ``file`` (when it is an
    existing file, else a name or inline text), ``""`` (never)."""
    meta = {"help": help, "cli": cli, "choices": choices, "path": path}
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MethodOptions:
    """Options every method takes. Methods that run no torch code run on the CPU whatever ``device`` is
    (it must still name a device this machine has)."""

    device: str = option("cpu", "Where torch parts run (segmenter, CLIP, descriptors; OpenCV methods have none):"
                                " cpu, cuda, cuda:N or auto.")

    def __post_init__(self) -> None:
        # A misspelt device, or a GPU this machine lacks, is an error for every method, torch or not (a
        # method with no torch part would run on the CPU without a word). Torch is imported only for cuda.
        if check_device_name(self.device).startswith("cuda"):
            resolve_device(self.device)


@dataclass(frozen=True)
class SharpenOptions(MethodOptions):
    """Options of the methods whose flow can be sharpened where it jumps (the baselines; see
    :mod:`semflow.sharpen`)."""

    sharpen: bool = option(False, "Redo the flow where it jumps by local motion layers: sharper motion "
                           "boundaries of rigid things, +0.1-1.2 s a pair (BENCHMARKS.md, sharpen); on by "
                           "default for discrete (and semantic on it), off for the OpenCV methods (and "
                           "semantic on one of them or on --baseline-flows).")


@dataclass(frozen=True)
class OptionInfo:
    """One declared option: what the CLI and the error messages show."""

    name: str
    type: Any
    default: Any
    help: str
    cli: bool
    choices: tuple[str, ...] | None
    path: str = ""


def option_infos(options_type: type[MethodOptions]) -> list[OptionInfo]:
    """The options ``options_type`` declares, in declaration order (``device`` first)."""
    hints = typing.get_type_hints(options_type)
    infos = []
    for f in dataclasses.fields(options_type):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # (a kw_only dataclass takes one; the CLI, its help and a resumed run need every default)
            raise TypeError(f"option {f.name!r} of {options_type.__name__} has no default; declare it with"
                            " option(default, help)")
        infos.append(OptionInfo(f.name, hints[f.name], default, f.metadata.get("help", ""),
                                f.metadata.get("cli", False), f.metadata.get("choices"), f.metadata.get("path", "")))
    return infos


def option_names(options_type: type[MethodOptions]) -> list[str]:
    return [f.name for f in dataclasses.fields(options_type)]


def make_options(options_type: type[MethodOptions], method: str, given: dict[str, Any]) -> MethodOptions:
    """``options_type`` filled from ``given`` (options set to None count as not given).

    Raises InputError for an option the method does not declare (listing the ones it does), a value
    outside an option's choices, or a value of the wrong type.
    """
    infos = {i.name: i for i in option_infos(options_type)}
    values = {}
    for key, value in given.items():
        if value is None:
            continue
        info = infos.get(key)
        if info is None:
            raise InputError(f"method {method!r} takes no option {key!r}; its options: {', '.join(infos)}")
        values[key] = _check_value(method, info, value)
    return options_type(**values)


def options_dict(options: MethodOptions) -> dict[str, Any]:
    """The options as plain JSON-able values (objects given from Python appear as their repr)."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            value = repr(value)
        out[f.name] = value
    return out


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` for an error line: its repr, cut to about ``limit`` characters, and its type when cut."""
    text = repr(value)
    return text if len(text) <= limit else f"a {type(value).__name__} ({text[:limit]}...)"


def _check_value(method: str, info: OptionInfo, value: Any) -> Any:
    """``value`` for ``info``: numbers and booleans converted from strings, numpy scalars (``np.int64``,
    ``np.float32``, ``np.bool_``) to the plain Python value (which is checked as one), paths to strings
    where the option takes a str, choices enforced."""
    kinds, given = _plain_types(info.type), value
    for numpy_kind, plain in ((np.bool_, bool), (np.integer, int), (np.floating, float)):
        if isinstance(value, numpy_kind):  # plain values in options_dict, JSON and fingerprints
            value = plain(value)
    if isinstance(value, os.PathLike) and str in kinds and os.PathLike not in kinds:
        value = os.fspath(value)
    if isinstance(value, str) and str not in kinds:
        for kind in (bool, int, float):
            if kind in kinds:
                try:
                    value = _parse(kind, value)
                    break
                except ValueError:
                    pass
    if kinds and not isinstance(value, tuple(kinds)) and not (float in kinds and isinstance(value, int)
                                                             and not isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in kinds)
        raise InputError(f"method {method!r}: option {info.name!r} takes {names}, not {_shown(given)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"method {method!r}: option {info.name!r} takes a finite number, not {value!r}")
    if info.choices is not None and value not in info.choices:
        raise InputError(f"method {method!r}: option {info.name!r} must be one of {', '.join(info.choices)},"
                         f" not {value!r}")
    return value


def _plain_types(annotation: Any) -> list[type]:
    """The runtime classes an annotation admits (``str | None`` -> [str]); [] when it admits anything."""
    if annotation is Any:
        return []
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = args if is_union else (annotation,)
    kinds = []
    for member in members:
        origin = typing.get_origin(member) or member
        if origin is type(None):
            continue
        if not isinstance(origin, type):
            return []
        kinds.append(origin)
    return kinds


def _parse(kind: type, text: str) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    return kind(text)
