"""The fusion rule: a backbone's and CLIP's class probabilities for one region, made one decision.

Classes of the backbone and of the prior that name the same thing (``car`` and ``Car``, ``person`` and
CamVid's ``Pedestrian`` by alias) share one entry of a joint class list (:class:`JointClasses`), and a
shared class keeps the backbone's kind. With ``p_b`` the backbone's probabilities averaged over the
region r, ``v`` their mass on the void class (what the backbone says it does not know), ``p_c`` CLIP's
probabilities and ``w`` the prior's weight (default 0.5), :func:`fuse_region` computes::

    p_f(u | r) = (1 - w) * p_b(u | r) + (w + (1 - w) * v) * p_c(u | r)   for every joint class u
    p_f(k | r) = sum of p_f(u | r) over the classes u of kind k
    kind*      = argmax_k p_f(k | r)    (ties keep the backbone's kind)
    label*     = the backbone's label l, if l is not void, kind(l) = kind* and p_b(l | r) >= tau;
                 else argmax of p_f(u | r) over the classes u of kind*
    (a void region stays void, kind stuff, unless CLIP's best class has p_c >= tau)

so a region the backbone calls stuff becomes a thing (its own layer) when CLIP's thing mass outweighs
the backbone's stuff mass, and the backbone's label survives wherever it is confident (``tau`` =
``backbone_confidence``, default 0.5) and its kind is kept. ``w = 0`` turns the prior off; ``w = 1``
lets CLIP decide alone. Plain numpy: no torch, no CLIP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semflow.errors import InputError
from semflow.segmentation.clip.prompts import KINDS, PriorClass
from semflow.segmentation.regions import Box


@dataclass(frozen=True)
class JointClasses:
    """The backbone's classes followed by the prior's classes the backbone does not have.

    ``names``/``kinds``: per joint id. ``clip_to_joint`` (K,): joint id of each prior class.
    ``void_id``: the backbone's void id (None if it has none). Joint ids below the backbone's class
    count are the backbone's ids; the others are new and are what the fused label map may gain.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    clip_to_joint: np.ndarray
    void_id: int | None

    @classmethod
    def build(cls, backbone_names: Sequence[str], backbone_kinds: dict[str, str], void_id: int | None,
              prior_classes: Sequence[PriorClass]) -> JointClasses:
        """Match prior classes to backbone classes by name or alias; append the unmatched ones.

        A matched class keeps the backbone's kind; a backbone class missing from ``backbone_kinds``
        counts as stuff. New ids skip ``void_id`` and must stay below 255 (uint8 label maps).
        """
        names = list(backbone_names)
        kinds = [backbone_kinds.get(n, "stuff") for n in names]
        mapping = []
        for pc in prior_classes:
            match = next((i for i, n in enumerate(backbone_names) if i != void_id and pc.matches(n)), None)
            if match is None:
                if void_id is not None and len(names) == void_id:
                    names.append("void")
                    kinds.append("stuff")
                match = len(names)
                names.append(pc.name)
                kinds.append(pc.kind)
            mapping.append(match)
        if len(names) > 255:
            raise InputError(f"{len(names)} classes in all: a label map holds at most 255; shorten --prior-classes")
        return cls(tuple(names), tuple(kinds), np.array(mapping, np.int64), void_id)


@dataclass(frozen=True)
class RegionDecision:
    """What the prior decided for one region (``box`` (y0, y1, x0, x1); scores are probabilities in [0, 1])."""

    box: Box
    area: int
    backbone_label: str
    backbone_score: float
    clip_label: str
    clip_score: float
    label: str
    kind: str
    kind_probs: dict[str, float]
    changed: bool
    label_id: int = -1
    backbone_id: int = -1

    def explain(self) -> str:
        """One line for ``--explain``: box, backbone label and score, CLIP label and score, decision."""
        y0, y1, x0, x1 = self.box
        arrow = "->" if self.changed else "=="
        kp = " ".join(f"{k}={self.kind_probs[k]:.2f}" for k in KINDS)
        return (f"region [{x0},{y0},{x1},{y1}] {self.area}px: backbone {self.backbone_label} {self.backbone_score:.2f}, "
                f"CLIP {self.clip_label} {self.clip_score:.2f} {arrow} {self.label} ({self.kind}; {kp})")


def fuse_region(p_backbone: np.ndarray, p_clip: np.ndarray, joint: JointClasses, backbone_label: int, *,
                weight: float = 0.5, backbone_confidence: float = 0.5) -> tuple[int, str, np.ndarray, dict[str, float]]:
    """Fuse one region's class probabilities (the rule in the module docstring).

    p_backbone: (C,) the backbone's probabilities averaged over the region (C = backbone classes,
    void included if the backbone has a void channel). p_clip: (K,) CLIP's softmax over the prior
    classes. Returns (label id in the joint classes, kind, fused probabilities (J,), kind -> probability).
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"prior weight must be in [0, 1], got {weight}")
    n_joint = len(joint.names)
    pb = np.zeros(n_joint, np.float64)
    pb[:len(p_backbone)] = p_backbone
    void_mass = 0.0
    if joint.void_id is not None and joint.void_id < len(p_backbone):
        void_mass = float(pb[joint.void_id])
        pb[joint.void_id] = 0.0
    pc = np.zeros(n_joint, np.float64)
    np.add.at(pc, joint.clip_to_joint, np.asarray(p_clip, np.float64))
    fused = (1.0 - weight) * pb + (weight + (1.0 - weight) * void_mass) * pc
    kinds = np.array(joint.kinds)
    kind_probs = {k: float(fused[kinds == k].sum()) for k in KINDS}
    is_void = joint.void_id is not None and backbone_label == joint.void_id
    if is_void and float(np.max(p_clip)) < backbone_confidence:  # CLIP does not know either: stays void
        return backbone_label, "stuff", fused, kind_probs
    own_kind = None if is_void or backbone_label >= n_joint else joint.kinds[backbone_label]
    best = max(kind_probs.values())
    kind = own_kind if own_kind is not None and kind_probs[own_kind] >= best else max(KINDS, key=kind_probs.get)
    if own_kind == kind and pb[backbone_label] >= backbone_confidence:
        label = backbone_label
    else:
        label = int(np.argmax(np.where(kinds == kind, fused, -1.0)))
    return label, kind, fused, kind_probs


@dataclass
class PriorResult:
    """Fused output of :meth:`~semflow.segmentation.clip.prior.ClipPrior.apply`.

    labels: uint8 (H, W) joint class ids. probs: float32 (H, W, J) (the backbone's, padded with zeros
    for new classes; in scored regions the rule per pixel: (1 - w) * backbone + (w + (1 - w) * v) * CLIP,
    the pixel's void mass v moved from void to CLIP's classes, so each pixel's still sum to 1). kinds: the
    joint kinds table. regions: one :class:`RegionDecision` per scored region, largest first.
    """

    labels: np.ndarray
    probs: np.ndarray
    joint: JointClasses
    regions: list[RegionDecision] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, str]:
        return dict(zip(self.joint.names, self.joint.kinds, strict=True))

    def explain(self) -> list[str]:
        """One line per scored region (see :meth:`RegionDecision.explain`)."""
        return [r.explain() for r in self.regions]

    def to_json(self) -> list[dict[str, Any]]:
        """The per-region decisions as JSON-ready dicts (scores rounded to 3 decimals; ``box`` written as
        [x0, y0, x1, y1], end-exclusive, as in the ``--explain`` lines; ``label_id``: the label's id in the
        label maps)."""
        out = []
        for r in self.regions:
            out.append({"box": Box(*r.box).xyxy(), "area": r.area, "backbone": r.backbone_label,
                        "backbone_score": round(r.backbone_score, 3), "clip": r.clip_label,
                        "clip_score": round(r.clip_score, 3), "label": r.label, "label_id": r.label_id, "kind": r.kind,
                        "kind_probs": {k: round(v, 3) for k, v in r.kind_probs.items()}, "changed": r.changed})
        return out
