"""What ``semflow run`` does, as plain checked data: :class:`RunOptions` (``run_video``'s options, the
settings a resumed run must share, and the base of a batch's options)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semflow.baseline.base import FlowMethod
from semflow.build_identity import build_identity
from semflow.errors import InputError
from semflow.io.files import path_identity
from semflow.io.video import video_identity
from semflow.methods import DEFAULT_RUN_METHOD, list_methods, method_entry, resolve_options
from semflow.options import OptionInfo, option_infos, options_dict
from semflow.runstore import CACHE_BUDGET_BYTES
from semflow.viz import check_max_flow


def _check_int(name: str, value: Any, least: int) -> None:
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least):
        raise InputError(f"{name} must be a whole number of at least {least} (or None), got {value!r}")


def named_path(value: Any, kind: str = "path") -> tuple[str, str] | None:
    """(``value`` with the path in it made real, that real path) when ``value`` names an existing file or
    folder the way an option of ``kind`` reads it (:func:`~semflow.options.option`'s ``path``: ``path``
    itself, ``prefixed`` after ``NAME:`` as ``camvid:PATH``, ``file`` an existing file); else None (a
    name such as ``camvid``, even beside a folder of that name, or inline text)."""
    if not isinstance(value, str) or not value or not kind:
        return None
    head, path = "", value
    if kind == "prefixed":
        prefix, colon, path = value.partition(":")
        if not (colon and prefix.isalpha()):
            return None
        head = prefix + colon
    if not path or not (os.path.isfile(path) if kind == "file" else os.path.exists(path)):
        return None
    real = os.path.realpath(path)
    return head + real, real


@dataclass
class RunOptions:
    """What ``run_video`` does; mirrors ``semflow run``'s options."""

    method: str | FlowMethod = DEFAULT_RUN_METHOD
    method_options: dict[str, Any] = field(default_factory=dict)
    save_flo: bool = False
    max_frames: int | None = None
    max_side: int | None = None
    resume: bool = False
    max_flow: float | None = None
    progress: bool | None = None
    pairwise: bool = False
    """Compute every pair on its own (pair mode); by default a video state is carried from pair to pair."""
    cache_budget: int = CACHE_BUDGET_BYTES
    """Bytes the flows kept for drawing may take: exact for a clip that fits, else the intermediate."""

    def fingerprint(self, video: Path, method: FlowMethod | None = None) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues: the method's name and every
        option it is built with (defaults included: from the built ``method``, else resolved from the
        registry without building it, else the options given), and the video's identity (size and
        modification time: :func:`~semflow.io.video.video_identity`), and the build that computes the flows
        (:func:`~semflow.build_identity.build_identity`: semflow's code and libraries). An option that names a file or folder
        (declared ``path``) is recorded by its real path, and under ``inputs`` with that file's identity
        (:func:`~semflow.io.files.path_identity`): a class list or weights file changed in place, or the
        same relative name resumed from another folder, is a change."""
        if method is None and isinstance(self.method, FlowMethod):
            method = self.method
        given = {k: v for k, v in self.method_options.items() if v is not None}
        name = self.method if method is None else method.name
        infos: list[OptionInfo] = []
        if method is not None and method.options is not None:
            given, infos = options_dict(method.options), option_infos(type(method.options))
        elif name in list_methods():
            device = given.get("device")  # (recorded as named, not checked here: a batch's driver may lack the
            options = resolve_options(name, **{**given, "device": "cpu"})  # GPU its workers have)
            given, infos = options_dict(options), option_infos(type(options))
            if device is not None:
                given["device"] = device
        inputs = {}
        for info in infos:
            found = named_path(given.get(info.name), info.path)
            if found is not None:  # the file, by its real path, and what tells that it changed
                given[info.name], inputs[info.name] = found[0], [found[1], path_identity(found[1])]
        return {
            "video": os.path.realpath(video), "video_identity": video_identity(video), "method": name,
            "method_options": dict(sorted(given.items())), "inputs": inputs,
            "max_side": self.max_side, "max_frames": self.max_frames, "save_flo": self.save_flo,
            "max_flow": self.max_flow, "pairwise": self.pairwise, "build": build_identity(),
        }

    def __post_init__(self) -> None:
        """Refuse values of the wrong kind here, in one line, not deep in the run."""
        if not isinstance(self.method, (str, FlowMethod)):
            raise InputError(f"method must be a method name or a built FlowMethod, got {self.method!r}")
        if isinstance(self.method, str):
            method_entry(self.method)  # an unknown name, listing the known ones (was found only in run_video)
        if not isinstance(self.method_options, dict):
            raise InputError(f"method_options must be a dict of option names to values, got {self.method_options!r}")
        _check_int("max_frames", self.max_frames, 0)
        _check_int("max_side", self.max_side, 16)
        _check_int("cache_budget", self.cache_budget, 0)
        if self.max_flow is not None:
            check_max_flow(self.max_flow)
        for name in ("save_flo", "resume", "pairwise"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise InputError(f"progress must be True, False or None (shown on a terminal), got {self.progress!r}")
