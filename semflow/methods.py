"""The registry of flow methods that users name (``dis-medium``, ``discrete``, ``semantic``...).

One entry point builds every method: :func:`get_method`. Each method declares its options once, as a
dataclass next to the method (:mod:`semflow.options`); the registry checks the options given against
it and hands the filled dataclass to the method's builder. The builder of ``semantic`` builds its parts
(the baseline through this registry, the segmenter and CLIP prior through :mod:`semflow.segmentation`)
and passes them to :class:`~semflow.semantic.SemanticFlow` ready-made, so nothing below the registry
imports it. Modules are imported on first use: listing methods or their options stays cheap.

Adding a method: see docs/adding-a-method.md ("How to add a flow method").
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from semflow.baseline.base import FlowMethod
from semflow.errors import InputError, did_you_mean
from semflow.options import MethodOptions, OptionInfo, make_options, option_infos, option_names

Builder = Callable[[Any], FlowMethod]

DEFAULT_RUN_METHOD = "semantic"
"""The method ``semflow run`` (and :func:`semflow.pipeline.run_video`) uses unless told otherwise."""


@dataclass(frozen=True)
class MethodEntry:
    """One named method: its description, its options type and the function that builds it from them.

    ``options`` and ``build`` may be given as ``"package.module:name"`` strings, imported on first use.
    """

    name: str
    description: str
    options: type[MethodOptions] | str = MethodOptions
    build: Builder | str = ""
    torch: bool = True
    """Whether it runs torch code (so that ``device`` decides where): the OpenCV methods do not."""

    def options_type(self) -> type[MethodOptions]:
        return _load(self.options) if isinstance(self.options, str) else self.options

    def builder(self) -> Builder:
        return _load(self.build) if isinstance(self.build, str) else self.build


def _load(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


_ENTRIES: dict[str, MethodEntry] = {}


def register_method(name: str, description: str, build: Builder | str,
                    options: type[MethodOptions] | str = MethodOptions, *, torch: bool = True) -> None:
    """Add (or replace) a method: ``build(options) -> FlowMethod`` with ``options`` an instance of the
    method's options dataclass (a subclass of :class:`~semflow.options.MethodOptions`); ``torch``: whether
    it runs torch code, where ``device`` says (a batch reserves GPUs for it). TypeError for an options
    dataclass with a field that has no default."""
    if not isinstance(options, str):
        option_infos(options)
    _ENTRIES[name] = MethodEntry(name, description, options, build, torch)


def unregister_method(name: str) -> None:
    """Remove a method from the registry (a plugin's, or a test's)."""
    method_entry(name)
    del _ENTRIES[name]


def list_methods() -> list[str]:
    """Names of all registered flow methods, in registration order."""
    return list(_ENTRIES)


def describe_methods() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: entry.description for name, entry in _ENTRIES.items()}


def method_entry(name: str) -> MethodEntry:
    """The registry entry of ``name``; InputError listing the known methods if there is none."""
    entry = _ENTRIES.get(name)
    if entry is None:
        raise InputError(unknown_method(name))
    return entry


def unknown_method(name: str, *, leave_out: str | None = None) -> str:
    """The message for an unknown method ``name``: the likeliest meant (a case, ``_`` or typing slip), and
    the known methods (but ``leave_out``, where it cannot serve)."""
    known = [entry for entry in _ENTRIES if entry != leave_out]
    meant = did_you_mean(str(name).replace("_", "-"), known)
    return f"unknown method {name!r}{meant}; known methods: {', '.join(known)}"


def method_options(name: str) -> list[OptionInfo]:
    """The options method ``name`` declares (name, type, default, help)."""
    return option_infos(method_entry(name).options_type())


def resolve_options(name: str, **options: Any) -> MethodOptions:
    """The options dataclass of method ``name`` filled from ``options`` (None = not given).

    Raises InputError for an unknown method, an option it does not declare (listing those it does),
    or a bad value.
    """
    return make_options(method_entry(name).options_type(), name, options)


def get_method(name: str | FlowMethod, **options: Any) -> FlowMethod:
    """Build the flow method called ``name`` with ``options`` (see :func:`method_options`).

    Options set to None count as not given. The built method keeps its filled options as ``.options``.
    A FlowMethod passed as ``name`` is returned as is; options given with it are an InputError (they go
    with a method name: a built method is not rebuilt).
    """
    if isinstance(name, FlowMethod):
        given = [key for key, value in options.items() if value is not None]
        if given:
            hint = f": get_method({name.name!r}, {given[0]}=...) builds one with them" if name.name in _ENTRIES else ""
            raise InputError(f"options ({', '.join(given)}) go with a method name, not with a built method"
                             f" ({name!r}){hint}")
        return name
    resolved = resolve_options(name, **options)
    method = method_entry(name).builder()(resolved)
    method.options = resolved
    return method


def cli_options() -> list[tuple[OptionInfo, list[str]]]:
    """Options offered on the command line: each once, with the methods that declare it (first
    declaration's type and help win)."""
    found: dict[str, tuple[OptionInfo, list[str]]] = {}
    for name in _ENTRIES:
        for info in method_options(name):
            if info.cli:
                found.setdefault(info.name, (info, []))[1].append(name)
    return list(found.values())


def route_options(names: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Split ``options`` among the methods ``names`` of a comparison.

    ``NAME.option`` goes to method NAME only; a plain ``option`` goes to every method that declares it
    (``device`` to all; ``preset`` to ``discrete`` but not to ``dis-medium``). An option no method of
    the comparison declares is an error.
    """
    routed: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in options.items():
        if value is None:
            continue
        target, dot, option = key.partition(".")
        if dot:
            if target not in routed:
                raise InputError(f"option {key!r} names method {target!r}, which is not compared"
                                 f" ({', '.join(names)})")
            routed[target][option] = value
            continue
        takers = [name for name in names if key in option_names(method_entry(name).options_type())]
        if not takers:
            raise InputError(f"no method among {', '.join(names)} takes option {key!r}")
        for name in takers:
            routed[name][key] = value
    return routed


def names_of(methods: Iterable[str]) -> list[str]:
    """Check a list of method names; InputError naming the unknown ones and listing the known ones."""
    names = [m.strip() for m in methods if m.strip()]
    unknown = [m for m in names if m not in _ENTRIES]
    if len(unknown) == 1:
        raise InputError(unknown_method(unknown[0]))
    if unknown or not names:
        raise InputError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                         f"known methods: {', '.join(_ENTRIES)}")
    return names


# --- builders -----------------------------------------------------------------------------------


def _sharpened(method: FlowMethod, options: Any) -> FlowMethod:
    """``method``, wrapped to sharpen its motion boundaries when ``options.sharpen`` asks for it."""
    if not options.sharpen:
        return method
    from semflow.sharpen import sharpened

    return sharpened(method, options)


def _opencv(class_name: str, *args: Any) -> Builder:
    def build(options: Any) -> FlowMethod:
        from semflow.baseline import opencv

        return _sharpened(getattr(opencv, class_name)(*args), options)

    return build


def _discrete(options: Any) -> FlowMethod:
    from semflow.baseline.discrete import DiscreteFlow

    own = {f.name: getattr(options, f.name) for f in fields(options) if f.name != "sharpen"}
    return _sharpened(DiscreteFlow(**own), options)


MAX_FEATHER_RADIUS = 256.0
"""The widest seam (px) ``semantic`` blends its models over: wider ones blend whole regions into each other."""


def _semantic(options: Any) -> FlowMethod:
    """``semantic``: its baseline from this registry, its segmenter (with the CLIP prior when asked)
    from :mod:`semflow.segmentation`, built on first use unless a prior makes it needed now."""
    from semflow.semantic import DEFAULT_SEGMENTER, SemanticFlow

    if isinstance(options.baseline, str) and options.baseline == "semantic":
        raise InputError("the baseline of 'semantic' cannot be 'semantic'")
    if options.segmentation is not None and (options.prior != "none" or not (
            isinstance(options.segmenter, str) and options.segmenter == DEFAULT_SEGMENTER)):  # (was ignored silently)
        raise InputError("'semantic' takes given masks (--segmentation) or a segmenter (--segmenter, --prior),"
                         " not both")
    if not 0 <= options.feather_radius <= MAX_FEATHER_RADIUS:  # (1e300 px: OpenCV's Gaussian kernel took all memory)
        raise InputError(f"method 'semantic': option 'feather_radius' takes 0 to {MAX_FEATHER_RADIUS} px,"
                         f" not {options.feather_radius!r}")
    width = options.ring_width  # (a bool is an int to Python, not a width)
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 0):
        raise InputError(f"method 'semantic': option 'ring_width' takes a whole number of px from 0 (or None),"
                         f" not {options.ring_width!r}")
    spec = _clip_prior_spec(options)  # checked now, even where the segmenter is built later
    _check_segmenter(options)
    baseline = _semantic_baseline(options)
    segmenter = options.segmenter
    if isinstance(segmenter, str):
        segmenter = _segmenter_builder(options)
        if options.prior != "none":
            segmenter = segmenter()  # loads CLIP now, so that a bad checkpoint is an early error
    elif options.prior != "none":
        from semflow.segmentation.clip.prior import ClipPrior
        from semflow.segmentation.clip.segmenter import PriorSegmenter

        segmenter = PriorSegmenter(segmenter, ClipPrior.from_spec(spec, device=options.device))
    return SemanticFlow(baseline, segmenter, segmentation=options.segmentation, label_set=options.label_set,
                        kinds=options.kinds, planes=options.planes, things=options.things,
                        feather_radius=options.feather_radius, ring_width=options.ring_width)


def _check_segmenter(options: Any) -> None:
    """What the segmenter named by ``options.segmenter``, which semantic builds on first use, would refuse,
    checked now: its spec (an unknown backend, a missing PATH) and ``kinds`` against its classes (given masks,
    and a segmenter behind a prior, built now, check their own)."""
    if not isinstance(options.segmenter, str) or options.prior != "none" or options.segmentation is not None:
        return
    from semflow.segmentation.labels import get_label_set
    from semflow.segmentation.spec_check import check_segmenter_spec

    check_segmenter_spec(options.segmenter)
    if not options.kinds:
        return
    backend = options.segmenter.partition(":")[0].lower()
    given = None if options.label_set == "camvid" else options.label_set  # (the default, as _build_segmenter)
    label_set = {"camvid": "camvid", "masks": options.label_set, "torchvision": given or "voc"}.get(backend)
    if label_set is not None:  # (VOC: a torchvision model of another size needs --label-set, refused when built)
        get_label_set(label_set, options.kinds)


def _semantic_baseline(options: Any) -> FlowMethod:
    """semantic's baseline, sharpened as ``options.sharpen`` says: True or False whatever the baseline's
    default (a baseline given built is only ever wrapped), None as the baseline does by default. With
    ``baseline_flows`` (a folder), the flows in it (:class:`~semflow.baseline.base.GivenFlows`)."""
    if options.baseline_flows is not None:
        if isinstance(options.baseline, FlowMethod):
            raise InputError("'semantic' takes a baseline method or a folder of its flows (baseline_flows), not both")
        from semflow.baseline.base import GivenFlows

        flows = GivenFlows(options.baseline_flows)
        return _sharpened(flows, options) if options.sharpen else flows
    baseline = options.baseline  # a built one as it is (wrapped below)
    if isinstance(baseline, str):
        if baseline not in _ENTRIES:
            raise InputError(f"semantic's baseline (--baseline): {unknown_method(baseline, leave_out='semantic')}")
        given = {"device": options.device}
        if options.sharpen is not None and "sharpen" in {info.name for info in method_options(baseline)}:
            given["sharpen"] = options.sharpen
        baseline = get_method(baseline, **given)
    return _sharpened(baseline, options) if options.sharpen else baseline


def _clip_prior_spec(options: Any) -> Any:
    """The :class:`~semflow.segmentation.clip.ClipPriorSpec` of semantic's prior options (None: no prior)."""
    from semflow.segmentation.clip import prior_from_options

    return prior_from_options(options.prior, options.clip_model, options.clip_weights, options.prior_classes,
                              options.prior_weight)


def _segmenter_builder(options: Any) -> Callable[[], Any]:
    """What builds semantic's segmenter when it is first needed: a partial, not a closure, so that the
    method pickles (a process pool, a batch's workers)."""
    return functools.partial(_build_segmenter, options)


def _build_segmenter(options: Any) -> Any:
    from semflow.segmentation import get_segmenter

    given_set = None if options.label_set == "camvid" else options.label_set  # (the default)
    return get_segmenter(options.segmenter, device=options.device, kinds_override=options.kinds,
                         label_set=given_set, prior=_clip_prior_spec(options))


SHARPEN = "semflow.options:SharpenOptions"
register_method("dis-ultrafast", "OpenCV DIS, ultrafast preset", _opencv("DISFlow", "ultrafast"), SHARPEN, torch=False)
register_method("dis-fast", "OpenCV DIS, fast preset", _opencv("DISFlow", "fast"), SHARPEN, torch=False)
register_method("dis-medium", "OpenCV DIS, medium preset", _opencv("DISFlow", "medium"), SHARPEN, torch=False)
register_method("farneback", "OpenCV Farneback polynomial expansion", _opencv("FarnebackFlow"), SHARPEN, torch=False)
register_method("deepflow", "OpenCV contrib DeepFlow", _opencv("DeepFlow"), SHARPEN, torch=False)
register_method("tvl1", "OpenCV contrib dual TV-L1 (scaleStep 0.5)", _opencv("TVL1Flow"), SHARPEN, torch=False)
register_method("discrete", "DiscreteFlow-style: matched proposals, discrete CRF, interpolation, refinement, "
                "missed motions, sharpened motion boundaries",
                _discrete, "semflow.baseline.discrete.presets:DiscreteOptions")
register_method("semantic", "Semantic flow: segmentation + layered things, homography planes, composed with a baseline",
                _semantic, "semflow.semantic:SemanticOptions")

OPENCV_METHODS = ("dis-ultrafast", "dis-fast", "dis-medium", "farneback", "deepflow", "tvl1")
