"""Loading a user's CLIP checkpoint into an open_clip architecture, offline and without running its code.

``open_clip`` (the optional extra ``semflow[clip]``) is imported only when a model is loaded. The
weights file is the user's: an OpenAI TorchScript ``.pt`` (its tensors are read by a restricted
unpickler, :func:`semflow.io.weights.read_torchscript_state`; its code is never run) or an OpenCLIP
state dict ``.pt``/``.bin``/``.safetensors``. The architecture is open_clip's built-in config of that
name (or a config JSON file), and only models with CLIP's bundled BPE tokenizer are accepted
(HuggingFace text towers and tokenizers would be fetched from the Hub).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from semflow.device import resolve_device
from semflow.errors import InputError, SemflowError, WeightsError
from semflow.io.files import FTYP_READ, media_kind
from semflow.io.weights import (
    PICKLED_CODE,
    is_torchscript_archive,
    read_torchscript_state,
    refuse_zip_bomb,
    refused_as_code,
    torch_load_quietly,
)

INSTALL_HINT = "pip install 'semflow[clip]' (it installs open_clip_torch)"
# CLIP clamps its learned temperature at 100 during training; the same bound is applied here.
MAX_LOGIT_SCALE = 100.0
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def import_open_clip() -> Any:
    """Import ``open_clip`` or raise a SemflowError saying how to install it."""
    try:
        import open_clip
    except ImportError as exc:
        raise SemflowError(f"the CLIP prior needs the optional extra: {INSTALL_HINT}") from exc
    return open_clip


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
def quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's 'initialized randomly' warning: the weights are loaded right after."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def needs_hub(config: dict | None) -> bool:
    """Whether an open_clip model config's text side is a Hugging Face tower or tokenizer (fetched from the Hub)."""
    text_cfg = (config or {}).get("text_cfg", {})
    return "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg


def resolve_model_name(open_clip: Any, model_name: str) -> str:
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
        known = ", ".join(n for n in open_clip.list_models()
                          if n.startswith(("ViT-B", "ViT-L", "RN")) and not needs_hub(open_clip.get_model_config(n)))
        raise InputError(f"unknown CLIP model {model_name!r}; known architectures include {known}")
    if needs_hub(config):
        raise InputError(f"CLIP model {model_name!r} needs a HuggingFace text tower or tokenizer, which would be "
                         "downloaded; use a model with CLIP's own tokenizer (ViT-B-32, ViT-B-16, ViT-L-14, RN50...)")
    return model_name


def published_normalisation(open_clip: Any, model_name: str) -> dict[str, tuple[float, ...]]:
    """``{"mean": ..., "std": ...}`` that every checkpoint open_clip lists for architecture ``model_name`` was
    trained with, where they all agree; else ``{}``. open_clip keeps the normalisation with each published
    checkpoint, not with the architecture, and builds a model without one with OpenAI's, which fed CLIP wrong
    inputs where its checkpoints take another (MobileCLIP's: RGB in [0, 1] as it is; PE-Core's: 0.5 and 0.5)."""
    found = set()
    for tag in open_clip.list_pretrained_tags_by_model(model_name):
        cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
        found.add((tuple(cfg.get("mean", OPENAI_MEAN)), tuple(cfg.get("std", OPENAI_STD))))
    if len(found) != 1:
        return {}
    mean, std = found.pop()
    return {"mean": mean, "std": std}


def read_state_dict(path: Path, openai_format: bool) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, without running anything it contains.

    A TorchScript archive (OpenAI's format) is read by :func:`semflow.io.weights.read_torchscript_state`
    (never by ``torch.jit.load``, which runs the archive's code); a safetensors file by safetensors;
    anything else by ``torch.load(weights_only=True)``.
    """
    try:
        if openai_format:
            state = read_torchscript_state(path)
            for key in ("input_resolution", "context_length", "vocab_size"):
                state.pop(key, None)
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            refuse_zip_bomb(path)
            state = torch_load_quietly(path)
    except WeightsError as exc:
        raise WeightsError(f"{path} is not a readable CLIP checkpoint ({str(exc).removeprefix(f'{path}: ')})") from None
    except Exception as exc:  # unpickling, zip and safetensors errors have no common base class
        raise WeightsError(f"{path} is not a readable CLIP checkpoint ({unreadable_reason(path, exc)})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no CLIP state dict (expected a dict of tensors)")
    if next(iter(state)).startswith("module."):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


WEIGHTS_HINT = "--clip-weights takes a CLIP checkpoint file: OpenAI's .pt, or OpenCLIP's .bin, .pt or .safetensors"


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why ``path`` could not be read as a checkpoint (``exc``: what the reader raised), in words a user can
    act on; never the reader's own text (torch's "pop from empty list", an opcode number)."""
    try:
        with open(path, "rb") as file:
            head = file.read(FTYP_READ)
    except OSError as error:
        return f"cannot read it: {error.strerror or type(error).__name__}"
    text = str(exc)
    if not head:
        return "the file is empty; download the checkpoint again"
    seen = media_kind(head)
    if seen is not None:
        return f"it is {seen}, not a checkpoint; {WEIGHTS_HINT}"
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or "central directory" in text:
        return "the file is truncated or corrupt; download the checkpoint again"
    pickled = head[:1] == b"\x80"  # a pickle's PROTO opcode (a plain pickle, or torch's legacy format)
    if refused_as_code(exc) and (pickled or "Unsupported operand" not in text):  # (else no pickle at all)
        return f"not a torch weights file: {PICKLED_CODE}"
    if type(exc).__module__.startswith("safetensors"):
        return "not a safetensors file, or one cut short; download the checkpoint again"
    return f"neither a torch weights file nor a safetensors file; {WEIGHTS_HINT}"


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, model_name: str) -> None:
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

    OpenAI TorchScript archives are detected (their models use QuickGELU, which is switched on) and
    their tensors read without running their code; any other file is read with
    ``torch.load(weights_only=True)`` (or safetensors) as an OpenCLIP or OpenAI state dict. Nothing is
    downloaded and nothing in the file is executed. Raises SemflowError (extra not installed), InputError
    (unknown or unsupported model name) or WeightsError (no file, unreadable file, wrong architecture).
    """
    if weights is None or str(weights) == "":
        raise InputError("the CLIP prior needs --clip-weights PATH, a CLIP checkpoint file you downloaded "
                         "(OpenAI .pt or OpenCLIP .bin/.safetensors); semflow never downloads one (see docs/clip.md, 'CLIP as a semantic prior')")
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsError(f"{path}: no such CLIP weights file")
    if not path.is_file():  # (a folder said "not found")
        raise WeightsError(f"{path}: not a file (--clip-weights names a CLIP checkpoint file)")
    open_clip = import_open_clip()
    model_name = resolve_model_name(open_clip, model_name)
    openai_format = is_torchscript_archive(path)
    state = read_state_dict(path, openai_format)
    with quiet_open_clip(), torch.random.fork_rng(devices=[]):  # (random init, replaced: the caller's stream kept)
        model = open_clip.create_model(model_name, pretrained=None, pretrained_image=False, pretrained_text=False,
                                       force_quick_gelu=openai_format, device="cpu")
    load_into(model, state, path, model_name)
    device = resolve_device(str(device))
    model = model.to(device).eval().requires_grad_(False)
    cfg = {**(getattr(model.visual, "preprocess_cfg", {}) or {}), **published_normalisation(open_clip, model_name)}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return ClipModel(
        name=model_name, weights=path.resolve(), weights_sha256=file_sha256(path), model=model,
        tokenizer=open_clip.get_tokenizer(model_name), image_size=(int(size[0]), int(size[1])),
        mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)),
        logit_scale=float(min(model.logit_scale.exp().item(), MAX_LOGIT_SCALE)), device=device,
        openai_format=openai_format,
    )
