"""Label sets: class names (index = class id), colours, and the class -> region kind table.

Region kinds follow Sevilla-Lara et al. (CVPR 2016): ``thing`` (objects that move on their own: one
layered motion model per instance), ``plane`` (surfaces a homography describes), ``stuff`` (the rest:
keeps the baseline flow). The table is data: :meth:`LabelSet.with_kinds` overrides it, from a dict or
a string like ``"Tree:plane,Car:thing"``.

Known sets: ``camvid`` (the shipped model's 11 classes, void = 11) and ``voc`` (PASCAL VOC's 21
classes, void = 255, what torchvision's segmentation weights predict). A JSON file
``{"name": ..., "class_names": [...], "kinds": {...}, "void_id": ..., "palette": [[r, g, b], ...]}``
describes any other set (for user-given masks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semflow.errors import InputError, did_you_mean
from semflow.io.jsonfile import loads_untrusted

KINDS = ("thing", "plane", "stuff")
# Integer codes of the kinds in kind maps (the same codes semflow.semantic uses).
KIND_CODES: dict[str, int] = {"stuff": 0, "plane": 1, "thing": 2}

KINDS_SAID = "--kinds (the class -> kind table, e.g. Tree:plane,Car:thing)"
"""How a kind table's errors name it: the option a user gives it with."""


def look_up(table: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``table[labels]`` for a table of 256 rows indexed by class id; ids outside 0-255 (16-bit label files,
    negative ids) get zeros (stuff, black), where a cast to uint8 wrapped them onto real classes (259: Road)."""
    ids = np.asarray(labels)
    if ids.dtype == np.uint8:
        return table[ids]
    ids = ids.astype(np.int64)
    outside = (ids < 0) | (ids >= len(table))
    found = table[np.where(outside, 0, ids)]
    found[outside] = 0
    return found


@dataclass(frozen=True, eq=False)
class LabelSet:
    """A label set: ``class_names[i]`` is class id ``i``; ``kinds`` maps every class name to a kind.

    ``void_id``: the id of unlabelled pixels (its kind is ``stuff``), or None; it may be one of the classes
    (e.g. ``unlabelled``), which must then be of kind stuff (InputError otherwise).
    ``palette``: (len(class_names), 3) uint8 RGB colour per class.
    """

    name: str
    class_names: list[str]
    kinds: dict[str, str]
    void_id: int | None = None
    palette: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", [str(n) for n in self.class_names])
        kinds = {n: self.kinds.get(n, "stuff") for n in self.class_names}
        for n, k in kinds.items():
            if k not in KINDS:
                raise InputError(f"label set {self.name!r}: kind {k!r} of {n!r} is not one of {', '.join(KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        if self.void_id is not None and 0 <= self.void_id < len(self.class_names):
            void_name = self.class_names[self.void_id]
            if kinds[void_name] != "stuff":  # void is stuff: its pixels must not get a motion model
                raise InputError(f"label set {self.name!r}: void id {self.void_id} is class {void_name!r}, of kind"
                                 f" {kinds[void_name]}; void is stuff (give that class no kind, or another void id)")
        pal = np.asarray(self.palette, np.uint8).reshape(-1, 3)
        if len(pal) < len(self.class_names):
            pal = np.concatenate([pal, _fallback_palette(len(self.class_names))[len(pal):]])
        object.__setattr__(self, "palette", pal)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_id(self, name: str) -> int:
        """Id of the class called ``name`` (case-insensitive); InputError when there is none."""
        lower = [n.lower() for n in self.class_names]
        if name.lower() not in lower:
            meant = did_you_mean(name, self.class_names)
            raise InputError(f"unknown class {name!r}{meant} for label set {self.name!r}; classes:"
                             f" {', '.join(self.class_names)}")
        return lower.index(name.lower())

    def ids_of(self, kind: str) -> list[int]:
        """Class ids whose kind is ``kind``."""
        return [i for i, n in enumerate(self.class_names) if self.kinds[n] == kind]

    def kind_lut(self) -> np.ndarray:
        """(256,) uint8 lookup: class id -> kind code (:data:`KIND_CODES`); unknown ids and void -> stuff."""
        lut = np.full(256, KIND_CODES["stuff"], np.uint8)
        for i, n in enumerate(self.class_names[:256]):
            lut[i] = KIND_CODES[self.kinds[n]]
        return lut

    def kind_map(self, labels: np.ndarray) -> np.ndarray:
        """Kind code per pixel (H, W) uint8 of a label map (H, W)."""
        return look_up(self.kind_lut(), labels)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Label map (H, W) -> uint8 RGB (H, W, 3) in the set's colours; void and unknown ids are black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: min(self.num_classes, 256)] = self.palette[:256]
        if self.void_id is not None and 0 <= self.void_id < 256:
            lut[self.void_id] = 0
        return look_up(lut, labels)

    def with_kinds(self, override: str | Mapping[str, str] | None) -> LabelSet:
        """A copy with some classes' kinds replaced (``"Tree:plane,Car:thing"`` or a dict); this very set when
        nothing is replaced (a registered set is shared: treat it as read-only)."""
        parsed = parse_kinds(override)
        if not parsed:
            return self
        kinds = dict(self.kinds)
        for name, kind in parsed.items():
            kinds[self.class_names[self.class_id(name)]] = kind
        return replace(self, kinds=kinds)

    def to_json(self) -> dict:
        """The set as a JSON-able dict (the format :func:`get_label_set` reads from a file)."""
        return {"name": self.name, "class_names": list(self.class_names), "kinds": dict(self.kinds),
                "void_id": self.void_id, "palette": self.palette.tolist()}


def check_labels(labels: np.ndarray, label_set: LabelSet, shape: tuple[int, int], *,
                 source: str = "segmentation") -> np.ndarray:
    """``labels`` as uint8 (H, W), with clear errors for a wrong size, type or unknown class ids."""
    arr = np.asarray(labels)
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and (arr[..., :1] == arr[..., :3]).all():
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{source}: expected a single-channel label map of class ids, got shape {arr.shape}")
    if arr.shape != tuple(shape):
        raise InputError(f"{source}: size {arr.shape[1]}x{arr.shape[0]} differs from the frames'"
                         f" {shape[1]}x{shape[0]}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{source}: label map must hold integer class ids, got dtype {arr.dtype}")
    known = set(range(label_set.num_classes)) | ({label_set.void_id} if label_set.void_id is not None else set())
    unknown = [int(i) for i in np.unique(arr) if int(i) not in known]
    if unknown:
        shown = ", ".join(str(i) for i in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise InputError(f"{source}: unknown class ids {shown} for label set {label_set.name!r}"
                         f" (ids 0-{label_set.num_classes - 1}"
                         f"{'' if label_set.void_id is None else f', void {label_set.void_id}'})")
    return arr.astype(np.uint8)


def parse_kinds(override: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"Tree:plane, Car:thing"`` or a dict -> {class name: kind}; a bad item, or a class given two kinds,
    is an InputError. The kind follows the last colon, so a class name may hold colons; it may hold commas
    too (``"windowpane, window:plane"``): a piece without a colon belongs to the item after it."""
    if override is None or override == "":
        return {}
    if isinstance(override, Mapping):
        items = [(str(k), str(v)) for k, v in override.items()]
    else:
        items = []
        pending = ""  # pieces of a class name that holds commas
        for part in str(override).split(","):
            if not part.strip() and not pending:
                continue
            if ":" not in part:
                pending += part + ","
                continue
            name, _, kind = (pending + part).rpartition(":")  # the kind is last: a name may hold a colon
            pending = ""
            if not name.strip():
                raise InputError(f"{KINDS_SAID}: expected CLASS:KIND items separated by commas, got {part.strip()!r}")
            items.append((name.strip(), kind.strip()))
        if pending.strip(", "):
            raise InputError(f"{KINDS_SAID}: expected CLASS:KIND items separated by commas, got "
                             f"{pending.strip(', ')!r}")
    out = {}
    for name, kind in items:
        if kind.lower() not in KINDS:
            meant = did_you_mean(kind, KINDS, cutoff=0.6)
            raise InputError(f"{KINDS_SAID}: unknown kind {kind!r}{meant} for {name!r}; use thing, plane or stuff")
        if out.get(name, kind.lower()) != kind.lower():
            raise InputError(f"{KINDS_SAID}: {name!r} is given two kinds, {out[name]} and {kind.lower()}")
        out[name] = kind.lower()
    return out


def _fallback_palette(n: int) -> np.ndarray:
    """Distinct fixed colours for sets without a palette (seeded, so they never change)."""
    return np.random.default_rng(7).integers(40, 256, size=(max(n, 0), 3)).astype(np.uint8)


def _voc_palette(n: int = 21) -> np.ndarray:
    """PASCAL VOC's bit-interleaved colour map."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


CAMVID = LabelSet(
    name="camvid",
    class_names=["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                 "Pedestrian", "Bicyclist"],
    kinds={"Sky": "plane", "Road": "plane", "Pavement": "plane", "Car": "thing", "Pedestrian": "thing",
           "Bicyclist": "thing"},
    void_id=11,
    palette=np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                      (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                      (0, 128, 192)], np.uint8),
)

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor"]
# Things move on their own (or carry someone who does); furniture, bottles and plants are stuff.
VOC = LabelSet(
    name="voc",
    class_names=VOC_CLASSES,
    kinds={n: "thing" for n in ["aeroplane", "bicycle", "bird", "boat", "bus", "car", "cat", "cow", "dog",
                                "horse", "motorbike", "person", "sheep", "train"]},
    void_id=255,
    palette=_voc_palette(21),
)

_REGISTRY: dict[str, LabelSet] = {"camvid": CAMVID, "voc": VOC}


def register_label_set(label_set: LabelSet) -> None:
    """Make ``label_set`` known to :func:`get_label_set` under its name."""
    _REGISTRY[label_set.name.lower()] = label_set


def list_label_sets() -> list[str]:
    return sorted(_REGISTRY)


def get_label_set(spec: str | os.PathLike | LabelSet, kinds_override: str | Mapping[str, str] | None = None
                  ) -> LabelSet:
    """A label set by name (``camvid``, ``voc``) or from a JSON file, with optional kind overrides."""
    if isinstance(spec, LabelSet):
        return spec.with_kinds(kinds_override)
    key = str(spec)
    if key.lower() in _REGISTRY:
        return _REGISTRY[key.lower()].with_kinds(kinds_override)
    path = Path(key)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise InputError(f"{path}: no such label-set file")
        try:
            data = loads_untrusted(path.read_text(encoding="utf-8"))
        except OSError as exc:  # (unreadable: not a question of what it holds)
            raise InputError(f"{path}: cannot read the label-set file: {exc.strerror}") from None
        except ValueError as exc:
            raise InputError(f"{path}: not a label-set JSON file ({exc.__class__.__name__}: {exc})") from None
        _check_label_set_json(data, path)
        try:
            ls = LabelSet(name=str(data.get("name", path.stem)), class_names=list(data["class_names"]),
                          kinds=dict(data.get("kinds", {})), void_id=data.get("void_id"),
                          palette=np.asarray(data.get("palette", np.zeros((0, 3))), np.uint8))
        except InputError as exc:  # (a kind that is none, a void class given a kind): name the file
            raise InputError(f"{path}: {exc}") from None
        unknown = set(data.get("kinds", {})) - set(ls.class_names)
        if unknown:
            raise InputError(f"{path}: kinds name classes the set lacks: {', '.join(sorted(unknown))}")
        return ls.with_kinds(kinds_override)
    raise InputError(f"unknown label set {key!r}; known: {', '.join(list_label_sets())}, or a .json file")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_label_set_json(data: object, path: Path) -> None:
    """InputError naming ``path`` and the field unless ``data`` is a label set as :func:`get_label_set` reads it."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: a label set must be a JSON object with \"class_names\", not {type(data).__name__}")
    if "name" in data and not isinstance(data["name"], str):
        raise InputError(f"{path}: \"name\" must be a string")
    names = data.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"{path}: \"class_names\" must be a non-empty list of strings")
    if len(names) > 256 or len({n.strip().lower() for n in names}) < len(names) or not all(n.strip() for n in names):
        raise InputError(f"{path}: \"class_names\" must be at most 256 different names, not empty and not"
                         " differing only in case (label maps are uint8; --kinds names classes in any case)")
    kinds = data.get("kinds", {})
    if not isinstance(kinds, dict) or not all(isinstance(k, str) for k in kinds.values()):
        raise InputError(f"{path}: \"kinds\" must be an object of class name -> thing, plane or stuff")
    void = data.get("void_id")
    if void is not None and not (_is_int(void) and 0 <= void <= 255):
        raise InputError(f"{path}: \"void_id\" must be a class id from 0 to 255 or null, not {void!r}")
    palette = data.get("palette", [])
    if not isinstance(palette, list) or len(palette) > len(names) or not all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c) for c in palette):
        raise InputError(f"{path}: \"palette\" must be a list of [r, g, b] colours (0-255), at most one per class")
