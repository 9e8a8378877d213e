"""The registry of flow methods that users name (``dis-medium``, ``discrete``, ``semantic``...).

It sits above both the baselines and the composer: ``semantic`` is a baseline plus a segmenter plus
the composer, so the registry imports them lazily, and none of them imports the registry's users.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from semflow.baseline.base import FlowMethod
from semflow.errors import InputError


@dataclass(frozen=True)
class MethodSpec:
    """How to build one named method: ``target`` is ``"module:Class"``, ``kwargs`` its fixed arguments."""

    name: str
    target: str
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type[FlowMethod]:
        module_name, attr = self.target.split(":")
        return getattr(importlib.import_module(module_name), attr)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, target: str, description: str, **kwargs: Any) -> None:
    """Add a method to the registry. ``target`` is ``"package.module:ClassName"``."""
    _REGISTRY[name] = MethodSpec(name, target, description, kwargs)


def list_methods() -> list[str]:
    """Names of all registered flow methods, in registration order."""
    return list(_REGISTRY)


def describe_methods() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: spec.description for name, spec in _REGISTRY.items()}


def get_method(name: str, **options: Any) -> FlowMethod:
    """Build the flow method called ``name``.

    ``options`` are passed to the method's constructor; options set to ``None`` are dropped, and
    ``device`` is dropped for methods that run no torch code. Any other option the method does not
    take is an error, and so is one that would change what the name means (``dis-medium`` with
    ``preset="fast"``).
    """
    if isinstance(name, FlowMethod):
        return name
    spec = _REGISTRY.get(name)
    if spec is None:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(_REGISTRY)}")
    cls = spec.load()
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = dict(spec.kwargs)
    for key, value in options.items():
        if value is None:
            continue
        if key in spec.kwargs and value != spec.kwargs[key]:
            raise InputError(f"method {name!r} is {key}={spec.kwargs[key]!r}; it cannot take {key}={value!r}")
        if key in accepted or takes_any:
            kwargs[key] = value
        elif key != "device":
            raise InputError(f"method {name!r} takes no option {key!r}")
    return cls(**kwargs)


register_method("dis-ultrafast", "semflow.baseline.opencv:DISFlow", "OpenCV DIS, ultrafast preset", preset="ultrafast")
register_method("dis-fast", "semflow.baseline.opencv:DISFlow", "OpenCV DIS, fast preset", preset="fast")
register_method("dis-medium", "semflow.baseline.opencv:DISFlow", "OpenCV DIS, medium preset", preset="medium")
register_method("farneback", "semflow.baseline.opencv:FarnebackFlow", "OpenCV Farneback polynomial expansion")
register_method("deepflow", "semflow.baseline.opencv:DeepFlow", "OpenCV contrib DeepFlow")
register_method("tvl1", "semflow.baseline.opencv:TVL1Flow", "OpenCV contrib dual TV-L1 (scaleStep 0.5)")
register_method(
    "discrete", "semflow.baseline.discrete:DiscreteFlow",
    "DiscreteFlow-style: matched proposals, discrete CRF, interpolation, refinement",
)
register_method(
    "semantic", "semflow.semantic:SemanticFlow",
    "Semantic flow: segmentation + layered things, homography planes, composed with a baseline",
)

OPENCV_METHODS = ("dis-ultrafast", "dis-fast", "dis-medium", "farneback", "deepflow", "tvl1")
