"""What a CLIP prior is made of, as plain data: the spec the Python API, the CLI and ``compare`` share.

:func:`prior_from_options` builds it from the flat option names the command line uses (``prior``,
``clip_model``, ``clip_weights``, ``prior_classes``, ``prior_weight``), so that any layer taking options
by keyword (``get_method("semantic", prior="clip", clip_weights=...)``) spells them the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from semflow.errors import InputError
from semflow.segmentation.clip.prompts import PriorClass, parse_prior_class


@dataclass(frozen=True)
class ClipPriorSpec:
    """A CLIP prior to fuse with a segmenter (see :mod:`semflow.segmentation.clip`).

    model: an open_clip architecture name (``ViT-B-32``, ``ViT-B-16``, ``RN50``...) or the path of an
    architecture config JSON. weights: the checkpoint file the user downloaded (OpenAI TorchScript
    ``.pt`` or OpenCLIP ``.bin``/``.pt``/``.safetensors``); None fails when the prior is built, with a
    message saying so (semflow never downloads one). classes: the classes CLIP chooses from, a spec
    string ``"dog:thing,road:plane"``, the path of a file of them, or a list of :class:`PriorClass`
    objects and ``"name:kind"`` strings (None: the default list). weight: ``w`` of the fusion rule, in
    [0, 1]. backbone_confidence: ``tau``, in [0, 1]. max_regions: the largest regions scored per frame;
    min_area: the smallest, in pixels (None: 0.2% of the image).
    """

    model: str = "ViT-B-32"
    weights: str | os.PathLike | None = None  # (a path is kept as a str)
    classes: str | os.PathLike | Iterable[PriorClass | str] | None = None  # (a path kept as a str, a list as a tuple of PriorClasses)
    weight: float = 0.5
    backbone_confidence: float = 0.5
    max_regions: int = 24
    min_area: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", os.fspath(self.weights))
        if isinstance(self.classes, os.PathLike):
            object.__setattr__(self, "classes", os.fspath(self.classes))
        elif self.classes is not None and not isinstance(self.classes, str):
            object.__setattr__(self, "classes", tuple(parse_prior_class(c) for c in self.classes))
        if not str(self.model).strip():
            raise InputError("the CLIP prior needs a model name (ViT-B-32, ViT-B-16, ViT-L-14, RN50...)")
        for name in ("weight", "backbone_confidence"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise InputError(f"prior {name.replace('_', ' ')} must be in [0, 1], got {value}")
        if int(self.max_regions) < 1:
            raise InputError(f"prior max_regions must be at least 1, got {self.max_regions}")
        if self.min_area is not None and int(self.min_area) < 1:
            raise InputError(f"prior min_area must be at least 1 pixel, got {self.min_area}")

    def describe(self) -> dict[str, Any]:
        """The spec as JSON-ready options (what a run's summary and resume fingerprint record)."""
        classes: str | list[str] | None = self.classes if self.classes is None or isinstance(self.classes, str) \
            else [f"{'|'.join((c.name, *c.aliases))}:{c.kind}" for c in self.classes]
        return {"prior": "clip", "clip_model": self.model, "clip_weights": self.weights, "prior_classes": classes,
                "prior_weight": self.weight, "backbone_confidence": self.backbone_confidence,
                "max_regions": self.max_regions, "min_area": self.min_area}


PRIOR_CHOICES: tuple[str, ...] = ("none", "clip")


def prior_from_options(prior: str | None = "none", clip_model: str = "ViT-B-32",
                       clip_weights: str | os.PathLike | None = None, prior_classes: str | os.PathLike | None = None,
                       prior_weight: float = 0.5) -> ClipPriorSpec | None:
    """The spec the flat prior options name: ``prior`` ``"none"``/None -> None, ``"clip"`` -> a
    :class:`ClipPriorSpec`. Raises InputError for another prior name, a bad value, or a prior option
    set without a prior (it would do nothing)."""
    if prior is None or prior == "none":
        given = [name for name, value, default in [("clip-model", clip_model, "ViT-B-32"),
                                                   ("clip-weights", clip_weights, None),
                                                   ("prior-classes", prior_classes, None),
                                                   ("prior-weight", prior_weight, 0.5)] if value != default]
        if given:  # a user who sets one surely meant the prior to act
            verb = "acts" if len(given) == 1 else "act"
            raise InputError(f"{', '.join('--' + name for name in given)} {verb} only with --prior clip")
        return None
    if prior != "clip":
        raise InputError(f"unknown prior {prior!r}; use {' or '.join(PRIOR_CHOICES)}")
    return ClipPriorSpec(model=clip_model, weights=None if clip_weights is None else os.fspath(clip_weights),
                         classes=prior_classes, weight=prior_weight)
