"""Class lists and prompt templates for the CLIP prior (plain data, no CLIP import).

A prior class is a name CLIP is prompted with, the region kind it stands for (``thing``, ``plane`` or
``stuff``, see DESIGN.md) and optional aliases: other spellings that name the same class in a
segmentation backbone's label set (CamVid's ``Pedestrian`` is CLIP's ``person``), so that the two
share one entry when their probabilities are fused.

Text form, used by ``--prior-classes`` and :func:`parse_prior_classes`: comma- or newline-separated
``name[|alias...]:kind`` items, e.g. ``"person|pedestrian:thing,dog:thing,road:plane,tree:stuff"``;
in a file, ``#`` starts a comment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semflow.errors import InputError

KINDS: tuple[str, ...] = ("thing", "plane", "stuff")

# A compact subset of CLIP's ImageNet prompt ensemble (Radford et al. 2021, notebook "Prompt
# Engineering for ImageNet"); the text embedding of a class is the mean over these of the normalised
# embeddings, normalised again.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a blurry photo of a {}.",
    "a cropped photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a low resolution photo of the {}.",
)


@dataclass(frozen=True)
class PriorClass:
    """One class CLIP can assign: the prompt ``name``, its region ``kind`` and backbone ``aliases``."""

    name: str
    kind: str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InputError("a prior class needs a name")
        if self.kind not in KINDS:
            raise InputError(f"prior class {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def matches(self, backbone_name: str) -> bool:
        """True if ``backbone_name`` names this class (case, spaces and punctuation ignored)."""
        key = normalize_name(backbone_name)
        return key == normalize_name(self.name) or any(key == normalize_name(a) for a in self.aliases)


def normalize_name(name: str) -> str:
    """Lower case, letters and digits only: ``"Traffic Sign"`` and ``"traffic_sign"`` are equal."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


# Common things, planes and stuff of street, indoor and nature scenes. Aliases cover CamVid's names.
DEFAULT_PRIOR_SPEC = """
person|pedestrian:thing, bicyclist|cyclist:thing, bicycle:thing, car:thing, motorcycle:thing,
bus:thing, truck:thing, train:thing, tram:thing, boat:thing, airplane:thing, bird:thing, cat:thing,
dog:thing, horse:thing, sheep:thing, cow:thing, animal:thing, ball:thing, chair:thing,
road:plane, sidewalk|pavement:plane, grass:plane, field:plane, sky:plane, water:plane, floor:plane,
sand:plane, snow:plane, wall:plane,
building:stuff, tree:stuff, bush:stuff, fence:stuff, pole|column pole:stuff,
traffic sign|sign symbol|signsymbol:stuff, traffic light:stuff, mountain:stuff, rock:stuff,
ceiling:stuff
"""


def parse_prior_classes(spec: str | os.PathLike | Sequence[PriorClass | str]) -> tuple[PriorClass, ...]:
    """Read a class list: ``PriorClass`` objects and ``name:kind`` strings, a spec string, or the path of a
    file holding one.

    Raises InputError on a list of fewer than 2 or more than 255 classes, a bad kind, a missing ``:kind``
    or a repeated name.
    """
    if not isinstance(spec, (str, os.PathLike)):
        classes = tuple(parse_prior_class(item) for item in spec)
    else:
        text = str(spec)
        path = Path(text)
        if "\n" not in text and len(text) < 4096 and _is_file(path):
            text = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
        elif isinstance(spec, os.PathLike) or ":" not in text:
            raise InputError(f"prior classes: {text!r} is neither a file nor a list like 'dog:thing,road:plane'")
        classes = tuple(parse_prior_class(item) for item in re.split(r"[,\n]", text) if item.strip())
    if not classes:
        raise InputError("the prior class list is empty")
    if len(classes) < 2:  # a softmax over one class is 1.0: every region would become it
        raise InputError(f"the prior needs at least 2 classes to choose from, got only {classes[0].name!r} "
                         "(CLIP's scores sum to 1 over the list: one class scores 1.0 in every region)")
    if len(classes) > 255:  # (checked here, before minutes of text encoding; with the backbone's, later)
        raise InputError(f"{len(classes)} prior classes: a label map holds at most 255; shorten --prior-classes")
    seen: set[str] = set()
    for c in classes:
        key = normalize_name(c.name)
        if key in seen:
            raise InputError(f"prior class {c.name!r} is listed twice")
        seen.add(key)
    return classes


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the system cannot hold (a long class list is no file name)."""
    try:
        return path.is_file()
    except OSError:  # ENAMETOOLONG: it was a traceback for an inline list of some 30 classes and more
        return False


def parse_prior_class(item: PriorClass | str) -> PriorClass:
    """One class of a list: a :class:`PriorClass` as it is, or a spec string's ``name[|alias...]:kind``
    (InputError without a kind or a name, or for an item of another type)."""
    if isinstance(item, PriorClass):
        return item
    if not isinstance(item, str):
        raise InputError(f"prior classes: a list holds PriorClass objects or 'name:kind' strings, not {type(item).__name__}")
    names, sep, kind = item.strip().rpartition(":")
    if not sep:
        raise InputError(f"prior class {item.strip()!r} has no kind; write it as name:thing, name:plane or name:stuff")
    parts = [p.strip() for p in names.split("|") if p.strip()]
    if not parts:
        raise InputError(f"prior class {item.strip()!r} has no name")
    return PriorClass(parts[0], kind.strip().lower(), tuple(parts[1:]))


DEFAULT_PRIOR_CLASSES: tuple[PriorClass, ...] = parse_prior_classes(DEFAULT_PRIOR_SPEC)
