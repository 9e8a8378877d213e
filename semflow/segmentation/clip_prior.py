"""CLIP as an optional semantic prior: zero-shot labels per region, fused with the backbone's.

The segmentation backbone knows a fixed label set (CamVid's 11 classes, say) and is unsure of what it
never saw (an animal, a boat). CLIP (Radford et al. 2021, run through ``open_clip``, the optional
extra ``semflow[clip]``) scores each region of the backbone's label map against a class list of the
user's choosing, and the two opinions are fused per region, which decides the region's kind (thing,
plane, stuff) and so which motion model it gets.

Steps for one frame:

1. Regions: connected components of the backbone's label map (8-connected, one label each), at least
   ``min_area`` pixels; the ``max_regions`` largest are scored, the others keep the backbone's label.
2. CLIP probabilities per region: the region's pixels are cut out on a square canvas filled with
   CLIP's mean colour (a masked crop), encoded by the image tower, compared by cosine with one text
   embedding per class (prompt ensembling over :data:`~semflow.segmentation.prompts.PROMPT_TEMPLATES`:
   mean of the normalised embeddings of each template filled with the class name, normalised again)
   and turned into probabilities by a softmax at CLIP's learned temperature (``logit_scale``).
   Text embeddings are cached on disk, keyed by model name, weights sha256, class names and templates,
   so a video (and every later run) pays for them once.
3. Fusion, per region r (:func:`fuse_region`). Classes of the backbone and of the prior that name the
   same thing (``car`` and ``Car``, ``person`` and CamVid's ``Pedestrian`` by alias) share one entry
   of a joint class list, and a shared class keeps the backbone's kind. With ``p_b`` the backbone's
   probabilities averaged over r, ``v`` their mass on the void class (what the backbone says it does
   not know), ``p_c`` CLIP's probabilities and ``w`` the prior's weight (default 0.5)::

       p_f(u | r) = (1 - w) * p_b(u | r) + (w + (1 - w) * v) * p_c(u | r)   for every joint class u
       p_f(k | r) = sum of p_f(u | r) over the classes u of kind k
       kind*      = argmax_k p_f(k | r)    (ties keep the backbone's kind)
       label*     = the backbone's label l, if l is not void, kind(l) = kind* and p_b(l | r) >= tau;
                    else argmax of p_f(u | r) over the classes u of kind*
       (a void region stays void, kind stuff, unless CLIP's best class has p_c >= tau)

   so a region the backbone calls stuff becomes a thing (its own layer) when CLIP's thing mass
   outweighs the backbone's stuff mass, and the backbone's label survives wherever it is confident
   (``tau`` = ``backbone_confidence``, default 0.5) and its kind is kept. ``w = 0`` turns the prior
   off; ``w = 1`` lets CLIP decide alone.

Nothing is ever downloaded: the weights file is the user's (``--clip-weights PATH``: an OpenAI
TorchScript ``.pt`` or an OpenCLIP state dict ``.pt``/``.bin``/``.safetensors``), the architecture is
open_clip's built-in config of that name (or a config JSON file), and only models with CLIP's bundled
BPE tokenizer are accepted (HuggingFace text towers and tokenizers would be fetched from the Hub).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from semflow.errors import InputError, SemflowError, WeightsError
from semflow.io.atomic import atomic_path
from semflow.segmentation.prompts import (
    DEFAULT_PRIOR_CLASSES,
    KINDS,
    PROMPT_TEMPLATES,
    PriorClass,
    parse_prior_classes,
)

INSTALL_HINT = "pip install 'semflow[clip]' (it installs open_clip_torch)"
CACHE_ENV = "SEMFLOW_CLIP_CACHE"
# CLIP clamps its learned temperature at 100 during training; the same bound is applied here.
MAX_LOGIT_SCALE = 100.0
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------
# Loading a user's checkpoint


def import_open_clip() -> Any:
    """Import ``open_clip`` or raise a SemflowError saying how to install it."""
    try:
        import open_clip
    except ImportError as exc:
        raise SemflowError(f"the CLIP prior needs the optional extra: {INSTALL_HINT}") from exc
    return open_clip


def default_cache_dir() -> Path:
    """``$SEMFLOW_CLIP_CACHE``, else ``$XDG_CACHE_HOME/semflow/clip``, else ``~/.cache/semflow/clip``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "semflow" / "clip"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """True for a TorchScript zip (how OpenAI ships CLIP: ``ViT-B-32.pt``), False for anything else."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


@dataclass
class ClipModel:
    """A loaded CLIP model with what the prior needs to use it.

    ``image_size`` (H, W) and ``mean``/``std`` (RGB in [0, 1]) describe the image tower's input;
    ``logit_scale`` is CLIP's learned inverse temperature (exp of the stored parameter, <= 100).
    """

    name: str
    weights: Path
    weights_sha256: str
    model: torch.nn.Module
    tokenizer: Any
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logit_scale: float
    device: torch.device
    openai_format: bool = False

    @torch.inference_mode()
    def encode_images(self, batch: torch.Tensor, *, chunk: int = 32) -> torch.Tensor:
        """Normalised image embeddings (N, D) of a normalised image batch (N, 3, H, W)."""
        out = [self.model.encode_image(batch[i:i + chunk].to(self.device)) for i in range(0, len(batch), chunk)]
        return F.normalize(torch.cat(out).float(), dim=-1).cpu()

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], *, chunk: int = 64) -> torch.Tensor:
        """Normalised text embeddings (N, D) of N strings."""
        out = []
        for i in range(0, len(texts), chunk):
            tokens = self.tokenizer(list(texts[i:i + chunk])).to(self.device)
            out.append(self.model.encode_text(tokens))
        return F.normalize(torch.cat(out).float(), dim=-1).cpu()


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's 'initialized randomly' warning: the weights are loaded right after."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _resolve_model_name(open_clip: Any, model_name: str) -> str:
    """A built-in open_clip architecture name, or the stem of a config JSON file (registered here)."""
    if model_name.startswith(("hf-hub:", "local-dir:")):
        raise InputError(f"CLIP model {model_name!r}: semflow loads no models by schema; name an architecture "
                         "(ViT-B-32, ViT-B-16, ViT-L-14, RN50...) and pass the weights file with --clip-weights")
    path = Path(model_name)
    if path.suffix == ".json":
        if not path.is_file():
            raise InputError(f"CLIP model config not found: {path}")
        open_clip.add_model_config(path)
        model_name = path.stem
    config = open_clip.get_model_config(model_name)
    if config is None:
        known = ", ".join(n for n in open_clip.list_models() if n.startswith(("ViT-B", "ViT-L", "RN")))
        raise InputError(f"unknown CLIP model {model_name!r}; known architectures include {known}")
    text_cfg = config.get("text_cfg", {})
    if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
        raise InputError(f"CLIP model {model_name!r} needs a HuggingFace text tower or tokenizer, which would be "
                         "downloaded; use a model with CLIP's own tokenizer (ViT-B-32, ViT-B-16, ViT-L-14, RN50...)")
    return model_name


def _read_state_dict(path: Path, openai_format: bool) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, without running any pickled code (weights_only)."""
    try:
        if openai_format:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            for key in ("input_resolution", "context_length", "vocab_size"):
                state.pop(key, None)
            return dict(state)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and TorchScript errors have no common base class
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a readable CLIP checkpoint ({reason})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no CLIP state dict (expected a dict of tensors)")
    if next(iter(state)).startswith("module."):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, model_name: str) -> None:
    """Load ``state`` into ``model`` strictly, after open_clip's format conversions; one-line errors."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    try:  # open_clip's conversions assert (rather than raise) when the file is for another architecture
        state = convert_state_dict(model, state)
        if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
            state = convert_to_custom_text_state_dict(state)
        if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
            state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
        if getattr(model, "logit_bias", None) is not None and "logit_bias" not in state:
            state["logit_bias"] = torch.zeros_like(model.logit_bias)
        resize_pos_embed(state, model)
        resize_text_pos_embed(state, model)
    except (AssertionError, RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path} does not fit CLIP model {model_name!r} ({exc or type(exc).__name__})") from None
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}  # non-persistent ones (attn_mask) sit in TorchScript files
    state = {k: v for k, v in state.items() if k in expected or k not in buffers}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        details = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)):
            if keys:
                details.append(f"{len(keys)} keys {what} (e.g. {keys[0]})")
        raise WeightsError(f"{path} does not fit CLIP model {model_name!r}: {'; '.join(details)}")
    model.load_state_dict(state, strict=True)


def load_clip_model(model_name: str, weights: str | os.PathLike | None, *, device: str | torch.device = "cpu"
                    ) -> ClipModel:
    """Build open_clip architecture ``model_name`` and load the user's checkpoint file ``weights``.

    OpenAI TorchScript archives are detected (their models use QuickGELU, which is switched on);
    any other file is read with ``torch.load(weights_only=True)`` (or safetensors) as an OpenCLIP or
    OpenAI state dict. Nothing is downloaded. Raises SemflowError (extra not installed), InputError
    (unknown or unsupported model name) or WeightsError (no file, unreadable file, wrong architecture).
    """
    if weights is None or str(weights) == "":
        raise InputError("the CLIP prior needs --clip-weights PATH, a CLIP checkpoint file you downloaded "
                         "(OpenAI .pt or OpenCLIP .bin/.safetensors); semflow never downloads one (see the README, 'CLIP as a semantic prior')")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"CLIP weights file not found: {path}")
    open_clip = import_open_clip()
    model_name = _resolve_model_name(open_clip, model_name)
    openai_format = is_torchscript_archive(path)
    state = _read_state_dict(path, openai_format)
    with _quiet_open_clip():
        model = open_clip.create_model(model_name, pretrained=None, pretrained_image=False, pretrained_text=False,
                                       force_quick_gelu=openai_format, device="cpu")
    _load_into(model, state, path, model_name)
    from semflow.segmentation.backends import resolve_device

    device = resolve_device(str(device))
    model = model.to(device).eval().requires_grad_(False)
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return ClipModel(
        name=model_name, weights=path.resolve(), weights_sha256=file_sha256(path), model=model,
        tokenizer=open_clip.get_tokenizer(model_name), image_size=(int(size[0]), int(size[1])),
        mean=tuple(cfg.get("mean", _OPENAI_MEAN)), std=tuple(cfg.get("std", _OPENAI_STD)),
        logit_scale=float(min(model.logit_scale.exp().item(), MAX_LOGIT_SCALE)), device=device,
        openai_format=openai_format,
    )


# ---------------------------------------------------------------------------------------------
# Text embeddings, cached on disk


def text_cache_key(clip: ClipModel, class_names: Sequence[str], templates: Sequence[str]) -> str:
    """sha256 of (model name, weights sha256, class names, templates): the cache file's name."""
    payload = json.dumps({"model": clip.name, "weights": clip.weights_sha256, "quick_gelu": clip.openai_format,
                          "classes": list(class_names), "templates": list(templates)}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def class_text_embeddings(clip: ClipModel, class_names: Sequence[str], *,
                          templates: Sequence[str] = PROMPT_TEMPLATES,
                          cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Unit text embeddings (K, D) float32, one per class, ensembled over ``templates``.

    Read from ``cache_dir`` (default :func:`default_cache_dir`) when present, else computed and written
    there atomically as ``<key>.npz`` (:func:`text_cache_key`). An unwritable cache only costs time.
    """
    if not templates or any("{}" not in t for t in templates):
        raise InputError("every prompt template must contain '{}' where the class name goes")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"{text_cache_key(clip, class_names, templates)}.npz"
    if file.is_file():
        with contextlib.suppress(Exception), np.load(file) as data:
            if list(data["classes"]) == list(class_names):
                return data["embeddings"].astype(np.float32)
    prompts = [t.format(name) for name in class_names for t in templates]
    per_prompt = clip.encode_texts(prompts).view(len(class_names), len(templates), -1)
    embeddings = F.normalize(per_prompt.mean(dim=1), dim=-1).numpy().astype(np.float32)
    with contextlib.suppress(OSError), atomic_path(file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, embeddings=embeddings, classes=np.array(list(class_names)))
    return embeddings


# ---------------------------------------------------------------------------------------------
# Regions and masked crops


@dataclass
class Region:
    """One connected component of one label. ``box`` is (x0, y0, x1, y1), exclusive ends;
    ``mask`` (y1 - y0, x1 - x0) bool marks the region's pixels inside the box."""

    label: int
    box: tuple[int, int, int, int]
    area: int
    mask: np.ndarray

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The region as a bool (H, W) mask of the whole image."""
        out = np.zeros(shape, bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


def find_regions(labels: np.ndarray, *, min_area: int = 0, max_regions: int | None = None,
                 skip: Sequence[int] = ()) -> list[Region]:
    """Connected components (8-connected) of each label in ``labels`` (H, W), largest first.

    Components smaller than ``min_area`` pixels and labels in ``skip`` are left out; at most
    ``max_regions`` are returned.
    """
    if labels.ndim != 2:
        raise InputError(f"labels must be (H, W), got shape {labels.shape}")
    regions: list[Region] = []
    for value in np.unique(labels):
        if int(value) in skip:
            continue
        count, comp, stats, _ = cv2.connectedComponentsWithStats((labels == value).view(np.uint8), connectivity=8)
        for i in range(1, count):
            x, y, w, h, area = (int(s) for s in stats[i])
            if area >= max(min_area, 1):
                regions.append(Region(int(value), (x, y, x + w, y + h), area, comp[y:y + h, x:x + w] == i))
    regions.sort(key=lambda r: -r.area)
    return regions if max_regions is None else regions[:max_regions]


def masked_crops(image: np.ndarray, regions: Sequence[Region], *, size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], margin: float = 0.1) -> torch.Tensor:
    """CLIP inputs (R, 3, H, W) float32, normalised: each region on a square canvas of CLIP's mean colour.

    The canvas is the region's box grown by ``margin`` on each side and made square; pixels outside
    the region (and outside the image) take the mean colour, which normalises to zero.
    """
    fill = np.asarray(mean, np.float32) * 255.0
    crops = np.empty((len(regions), size[0], size[1], 3), np.float32)
    for i, region in enumerate(regions):
        x0, y0, x1, y1 = region.box
        side = int(np.ceil(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin))) + 1
        ox, oy = (side - (x1 - x0)) // 2, (side - (y1 - y0)) // 2
        canvas = np.empty((side, side, 3), np.float32)
        canvas[:] = fill
        patch = canvas[oy:oy + y1 - y0, ox:ox + x1 - x0]
        patch[region.mask] = image[y0:y1, x0:x1][region.mask]
        interp = cv2.INTER_AREA if side > max(size) else cv2.INTER_CUBIC
        crops[i] = cv2.resize(canvas, (size[1], size[0]), interpolation=interp)
    batch = torch.from_numpy(crops).permute(0, 3, 1, 2).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - m) / s


# ---------------------------------------------------------------------------------------------
# Fusion


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
    num_backbone: int
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
        return cls(tuple(names), tuple(kinds), np.array(mapping, np.int64), len(backbone_names), void_id)


@dataclass(frozen=True)
class RegionDecision:
    """What the prior decided for one region (scores are probabilities in [0, 1])."""

    box: tuple[int, int, int, int]
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
        x0, y0, x1, y1 = self.box
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


# ---------------------------------------------------------------------------------------------
# The prior


@dataclass
class PriorResult:
    """Fused output of :meth:`ClipPrior.apply`.

    labels: uint8 (H, W) joint class ids. probs: float32 (H, W, J) (the backbone's, padded with zeros
    for new classes; in scored regions (1 - w) * backbone + w_r * CLIP, as in the rule). kinds: the
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
        """The per-region decisions as JSON-ready dicts (scores rounded to 3 decimals)."""
        out = []
        for r in self.regions:
            out.append({"box": list(r.box), "area": r.area, "backbone": r.backbone_label,
                        "backbone_score": round(r.backbone_score, 3), "clip": r.clip_label,
                        "clip_score": round(r.clip_score, 3), "label": r.label, "kind": r.kind,
                        "kind_probs": {k: round(v, 3) for k, v in r.kind_probs.items()}, "changed": r.changed})
        return out


class ClipPrior:
    """Zero-shot CLIP labels per region, fused with a backbone's probabilities.

    model_name: an open_clip architecture (``ViT-B-32``) or config JSON path; weights: the user's
    checkpoint file. classes: :class:`PriorClass` list, spec string or file (default: common things,
    planes and stuff). weight: ``w`` of the fusion rule; backbone_confidence: ``tau``. min_area,
    max_regions: which regions are scored (min_area None: 0.2% of the image). cache_dir: where text
    embeddings are cached (default :func:`default_cache_dir`).
    """

    def __init__(self, model_name: str = "ViT-B-32", weights: str | os.PathLike | None = None, *,
                 classes: str | os.PathLike | Sequence[PriorClass] | None = None,
                 templates: Sequence[str] = PROMPT_TEMPLATES, weight: float = 0.5,
                 backbone_confidence: float = 0.5, min_area: int | None = None, max_regions: int = 24,
                 margin: float = 0.1, device: str | torch.device = "cpu",
                 cache_dir: str | os.PathLike | None = None, clip: ClipModel | None = None):
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"prior weight must be in [0, 1], got {weight}")
        self.classes = DEFAULT_PRIOR_CLASSES if classes is None else parse_prior_classes(classes)
        self.templates = tuple(templates)
        self.weight = float(weight)
        self.backbone_confidence = float(backbone_confidence)
        self.min_area = min_area
        self.max_regions = int(max_regions)
        self.margin = float(margin)
        self.clip = clip if clip is not None else load_clip_model(model_name, weights, device=device)
        self.text = torch.from_numpy(class_text_embeddings(
            self.clip, [c.name for c in self.classes], templates=self.templates, cache_dir=cache_dir))

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def classify(self, image: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
        """CLIP's probabilities (R, K) float32 over the prior classes for each region of ``image``."""
        if not regions:
            return np.zeros((0, len(self.classes)), np.float32)
        batch = masked_crops(image, regions, size=self.clip.image_size, mean=self.clip.mean, std=self.clip.std,
                             margin=self.margin)
        features = self.clip.encode_images(batch)
        logits = self.clip.logit_scale * features @ self.text.T
        return torch.softmax(logits, dim=-1).numpy().astype(np.float32)

    def apply(self, image: np.ndarray, probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
              kinds: dict[str, str], void_id: int | None = None) -> PriorResult:
        """Fuse CLIP's opinion into a backbone's segmentation of ``image`` (uint8 RGB (H, W, 3)).

        probs: (H, W, C) float32 backbone probabilities; labels: (H, W) backbone ids; class_names,
        kinds, void_id: the backbone's label set. Returns labels and probs over the joint classes.
        """
        h, w = labels.shape
        if image.shape[:2] != (h, w) or probs.shape[:2] != (h, w):
            raise InputError(f"image {image.shape[:2]}, probs {probs.shape[:2]} and labels {labels.shape} differ in size")
        if probs.shape[2] < len(class_names) - (1 if void_id == len(class_names) - 1 else 0):
            raise InputError(f"probs have {probs.shape[2]} channels for {len(class_names)} classes")
        joint = JointClasses.build(class_names, kinds, void_id, self.classes)
        min_area = self.min_area if self.min_area is not None else max(1, int(0.002 * h * w))
        regions = find_regions(labels, min_area=min_area, max_regions=self.max_regions)
        p_clip = self.classify(image, regions)
        out_labels = labels.astype(np.uint8, copy=True)
        out_probs = np.zeros((h, w, len(joint.names)), np.float32)
        out_probs[..., :probs.shape[2]] = probs
        decisions = []
        for region, pc in zip(regions, p_clip, strict=True):
            x0, y0, x1, y1 = region.box
            p_pixels = probs[y0:y1, x0:x1][region.mask]
            pb = p_pixels.mean(axis=0)
            label, kind, fused, kind_probs = fuse_region(pb, pc, joint, region.label, weight=self.weight,
                                                         backbone_confidence=self.backbone_confidence)
            void_mass = float(pb[joint.void_id]) if joint.void_id is not None and joint.void_id < len(pb) else 0.0
            w_r = self.weight + (1.0 - self.weight) * void_mass
            clip_joint = np.zeros(len(joint.names), np.float32)
            np.add.at(clip_joint, joint.clip_to_joint, pc)
            view = out_probs[y0:y1, x0:x1]
            view[region.mask] = (1.0 - self.weight) * view[region.mask] + w_r * clip_joint
            out_labels[y0:y1, x0:x1][region.mask] = label
            top = int(np.argmax(pc))
            is_void = joint.void_id is not None and region.label == joint.void_id
            backbone_name = "void" if is_void or region.label >= len(joint.names) else joint.names[region.label]
            decisions.append(RegionDecision(
                box=region.box, area=region.area, backbone_label=backbone_name,
                backbone_score=float(pb[region.label]) if region.label < len(pb) else 0.0,
                clip_label=self.classes[top].name, clip_score=float(pc[top]), label=joint.names[label], kind=kind,
                kind_probs=kind_probs, changed=label != region.label, label_id=label, backbone_id=region.label,
            ))
        return PriorResult(out_labels, out_probs, joint, decisions)


def replace_fields(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for dataclasses, else a shallow copy with attributes set."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **changes)
    import copy

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


def _prior_segmenter_base() -> type:
    """semflow's Segmenter base class (so that ``segment_inputs`` takes a PriorSegmenter as a backend)."""
    try:
        from semflow.segmentation.backends import Segmenter
    except ImportError:  # pragma: no cover - the backends module is part of the package
        return object
    return Segmenter


class PriorSegmenter(_prior_segmenter_base()):  # type: ignore[misc]
    """A segmenter whose predictions pass through a :class:`ClipPrior`.

    Composes with any segmenter whose ``predict(image[, key])`` returns a segmentation with ``probs``
    (H, W, C), ``labels`` (H, W) and ``label_set`` (``name``, ``class_names``, ``kinds``, ``void_id``,
    ``palette``). The fused segmentation has the same type, with labels and probs over the joint
    classes, a label set ``<name>+clip`` that adds the prior classes the backbone lacks, and the
    per-region decisions in its attribute ``prior`` (a :class:`PriorResult`; also :attr:`last_result`).
    ``explain_dir``: if set, each prediction also writes ``<explain_dir>/<key>.json`` (the decisions;
    ``key`` as given to :meth:`predict`, a frame index written as ``NNNNNN``).
    """

    def __init__(self, segmenter: Any, prior: ClipPrior, *, explain_dir: str | os.PathLike | None = None):
        self.segmenter = segmenter
        self.prior = prior
        self.explain_dir = Path(explain_dir) if explain_dir is not None else None
        self.last_result: PriorResult | None = None
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
        """Backbone segmentation of ``image`` (uint8 RGB (H, W, 3)), fused with CLIP's region labels."""
        seg = self.segmenter.predict(image) if key is None else self.segmenter.predict(image, key=key)
        ls = seg.label_set
        result = self.prior.apply(image, seg.probs, seg.labels, list(ls.class_names), dict(ls.kinds),
                                  getattr(ls, "void_id", None))
        self.last_result = result
        fused = replace_fields(seg, labels=result.labels, probs=result.probs, label_set=self._fused_label_set(ls))
        refresh = getattr(fused, "refresh_instances", None)
        if callable(refresh):
            refresh()
        with contextlib.suppress(AttributeError, TypeError):  # a class with __slots__ cannot carry it
            object.__setattr__(fused, "prior", result)
        if self.explain_dir is not None and key is not None:
            name = f"{key:06d}" if isinstance(key, int) else str(key)
            text = json.dumps({"label_set": f"{ls.name}+clip", "regions": result.to_json()}, indent=1)
            with atomic_path(self.explain_dir / f"{name}.json") as tmp:
                tmp.write_text(text, encoding="utf-8")
        return fused


def make_prior(prior: str | None, *, clip_model: str = "ViT-B-32", clip_weights: str | os.PathLike | None = None,
               prior_classes: str | os.PathLike | None = None, prior_weight: float = 0.5,
               device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None) -> ClipPrior | None:
    """The prior the command-line options name: ``None``/``"none"`` -> None, ``"clip"`` -> :class:`ClipPrior`."""
    if prior is None or prior == "none":
        return None
    if prior != "clip":
        raise InputError(f"unknown prior {prior!r}; use none or clip")
    return ClipPrior(clip_model, clip_weights, classes=prior_classes, weight=prior_weight, device=device,
                     cache_dir=cache_dir)


def with_prior(segmenter: Any, prior: ClipPrior | None, *, device: str = "cpu",
               kinds_override: dict[str, str] | None = None) -> Any:
    """``segmenter`` (a name for ``get_segmenter`` or an object with ``predict``) behind ``prior``.

    With no prior the segmenter is returned as given (a name stays a name).
    """
    if prior is None:
        return segmenter
    if isinstance(segmenter, str):
        try:
            from semflow.segmentation import get_segmenter  # type: ignore[attr-defined]
        except ImportError:
            raise InputError(f"segmenter {segmenter!r} is not available") from None
        segmenter = get_segmenter(segmenter, device=device, kinds_override=kinds_override)
    return PriorSegmenter(segmenter, prior)
