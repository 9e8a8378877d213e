"""A segmenter whose predictions pass through a CLIP prior (the wrapper :func:`get_segmenter` builds)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from semflow.io.atomic import write_text_atomic
from semflow.io.jsonfile import dumps_strict
from semflow.segmentation.base import Segmenter, check_image
from semflow.segmentation.clip.fusion import JointClasses, PriorResult
from semflow.segmentation.clip.prior import ClipPrior


def replace_fields(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for dataclasses, else a shallow copy with attributes set."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **changes)
    new = copy.copy(obj)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def extend_palette(palette: Any, count: int, *, seed: int = 7) -> Any:
    """``palette`` (N, 3) uint8 grown to ``count`` colours; new ones are random but fixed (seeded)."""
    base = np.asarray(palette, np.uint8).reshape(-1, 3) if palette is not None else np.zeros((0, 3), np.uint8)
    if len(base) >= count:
        return palette
    extra = np.random.default_rng(seed).integers(40, 256, size=(count - len(base), 3), dtype=np.uint8)
    grown = np.concatenate([base, extra])
    return [tuple(int(v) for v in c) for c in grown] if isinstance(palette, (list, tuple)) else grown


class PriorSegmenter(Segmenter):
    """A segmenter whose predictions pass through a :class:`ClipPrior`.

    Composes with any segmenter whose ``predict(image[, key])`` returns a segmentation with ``probs``
    (H, W, C), ``labels`` (H, W) and ``label_set`` (``name``, ``class_names``, ``kinds``, ``void_id``,
    ``palette``). The fused segmentation has the same type, with labels and probs over the joint
    classes, a label set ``<name>+clip`` that adds the prior classes the backbone lacks, and the
    per-region decisions in its attribute ``prior`` (a :class:`PriorResult`; also :attr:`last_result`).
    ``explain_dir`` (also settable afterwards): if set, each prediction also writes
    ``<explain_dir>/<key>.json`` (the decisions; ``key`` as given to :meth:`predict`, a frame index
    written as ``NNNNNN``). :func:`semflow.segmentation.get_segmenter` builds one from a
    :class:`~semflow.segmentation.clip.spec.ClipPriorSpec`.
    """

    def __init__(self, segmenter: Any, prior: ClipPrior, *, explain_dir: str | os.PathLike | None = None):
        self.segmenter = segmenter
        self.prior = prior
        self.explain_dir = Path(explain_dir) if explain_dir is not None else None
        self.last_result: PriorResult | None = None
        self.last_label_set: Any = None  # the label set of the last prediction's labels
        self.name = f"{getattr(segmenter, 'name', 'segmenter')}+clip"
        self.device = getattr(segmenter, "device", "cpu")
        backbone_set = getattr(segmenter, "label_set", None)
        self._label_sets: dict[int, Any] = {}
        if backbone_set is not None:
            self.label_set = self._fused_label_set(backbone_set)

    def __getattr__(self, name: str) -> Any:  # anything else the wrapped segmenter offers
        if name == "segmenter":
            raise AttributeError(name)
        return getattr(self.segmenter, name)

    def _fused_label_set(self, ls: Any) -> Any:
        """The backbone's label set grown by the prior's new classes (built once per backbone set)."""
        if id(ls) not in self._label_sets:
            joint = JointClasses.build(list(ls.class_names), dict(ls.kinds), getattr(ls, "void_id", None),
                                       self.prior.classes)
            self._label_sets[id(ls)] = (ls, replace_fields(
                ls, name=f"{ls.name}+clip", class_names=list(joint.names),
                kinds=dict(zip(joint.names, joint.kinds, strict=True)),
                palette=extend_palette(getattr(ls, "palette", None), len(joint.names))))
        return self._label_sets[id(ls)][1]

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Any:
        """Backbone segmentation of ``image`` (uint8 RGB (H, W, 3); grey, RGBA, 16-bit and float [0, 1]
        images are converted first, as every segmenter converts them), fused with CLIP's region labels."""
        image = check_image(image)  # (CLIP's crops are cut from it: a float image's were near black)
        seg = self.segmenter.predict(image) if key is None else self.segmenter.predict(image, key=key)
        ls = seg.label_set
        result = self.prior.apply(image, seg.probs, seg.labels, list(ls.class_names), dict(ls.kinds),
                                  getattr(ls, "void_id", None))
        self.last_result, self.last_label_set = result, self._fused_label_set(ls)
        fused = replace_fields(seg, labels=result.labels, probs=result.probs, label_set=self.last_label_set)
        refresh = getattr(fused, "refresh_instances", None)
        if callable(refresh):
            refresh()
        with contextlib.suppress(AttributeError, TypeError):  # a class with __slots__ cannot carry it
            object.__setattr__(fused, "prior", result)
        if self.explain_dir is not None and key is not None:
            name = f"{key:06d}" if isinstance(key, int) else str(key)
            _write_decisions(self.explain_dir / f"{name}.json", self.last_label_set, result)
        return fused


def write_prior_decisions(segmenter: Any, out_dir: str | os.PathLike) -> None:
    """``out_dir/prior.json`` (the label set and each scored region's decision) and ``out_dir/prior.txt`` (one
    line a region) of the last prediction of ``segmenter``, when it is a :class:`PriorSegmenter` that made one."""
    result = getattr(segmenter, "last_result", None) if isinstance(segmenter, PriorSegmenter) else None
    if result is None:
        return
    _write_decisions(Path(out_dir) / "prior.json", segmenter.last_label_set, result)
    write_text_atomic(Path(out_dir) / "prior.txt", "".join(line + "\n" for line in result.explain()))


def label_set_json(label_set: Any) -> dict[str, Any]:
    """``label_set`` as :func:`~semflow.segmentation.get_label_set` reads a JSON file: ``name``, ``class_names``
    (index = the id in label maps), ``kinds``, ``void_id``, ``palette`` (a LabelSet, or an object with those)."""
    if callable(getattr(label_set, "to_json", None)):
        return label_set.to_json()
    palette = getattr(label_set, "palette", None)
    return {"name": str(label_set.name), "class_names": [str(n) for n in label_set.class_names],
            "kinds": dict(getattr(label_set, "kinds", {})), "void_id": getattr(label_set, "void_id", None),
            "palette": [] if palette is None else np.asarray(palette, np.uint8).reshape(-1, 3).tolist()}


def _write_decisions(path: Path, label_set: Any, result: PriorResult) -> None:
    """The per-region decisions of ``result`` as JSON at ``path`` (``segment``'s OUT/prior/NAME.json and
    ``--explain``'s prior.json alike; ``null`` where a score is undefined), with the label set of the labels
    (its ``label_set`` name, ``class_names`` in id order, ``kinds``, ``void_id``, ``palette``: the file is
    also a label-set file), so that the ids of the classes the prior added can be read."""
    data = {"label_set": str(label_set.name), **label_set_json(label_set), "regions": result.to_json()}
    write_text_atomic(path, dumps_strict(data, indent=1))
