"""Text embeddings of the prior's classes, cached on disk so a video (and every later run) pays once.

A class's embedding is the mean of the normalised embeddings of each prompt template filled with the
class name, normalised again (prompt ensembling). The cache file is ``<key>.npz``, keyed by model name,
weights sha256, class names and templates (:func:`text_cache_key`), in :func:`default_cache_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch.nn.functional as F

from semflow.errors import InputError
from semflow.io.atomic import atomic_path
from semflow.io.npyfile import read_npz
from semflow.segmentation.clip.loading import ClipModel
from semflow.segmentation.clip.prompts import PROMPT_TEMPLATES

CACHE_ENV = "SEMFLOW_CLIP_CACHE"


def default_cache_dir() -> Path | None:
    """``$SEMFLOW_CLIP_CACHE``, else ``$XDG_CACHE_HOME/semflow/clip``, else ``~/.cache/semflow/clip``; None
    when there is no home folder to find (HOME unset and no passwd entry, as in a container run as a bare
    uid): then nothing is cached."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "semflow" / "clip"
    try:
        return Path.home() / ".cache" / "semflow" / "clip"
    except (RuntimeError, KeyError):  # "Could not determine home directory"
        return None


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
    there atomically as ``<key>.npz`` (:func:`text_cache_key`). An unwritable cache only costs time; a
    cached entry that is not K unit vectors of the model's width (damaged, or made by hand) is computed again.
    """
    if not templates or any("{}" not in t for t in templates):
        raise InputError("every prompt template must contain '{}' where the class name goes")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = None if cache is None else cache / f"{text_cache_key(clip, class_names, templates)}.npz"
    if file is not None:
        # (a folder it may not look into, or an entry it may not read: computed, as without a cache; only
        # what np.savez writes is read, so a deflated entry is never inflated: see semflow/io/npyfile.py)
        with contextlib.suppress(Exception):
            data = read_npz(file)
            cached = np.asarray(data["embeddings"], np.float32)
            if list(data["classes"]) == list(class_names) and _fits(cached, clip, len(class_names)):
                return cached
    prompts = [t.format(name) for name in class_names for t in templates]
    per_prompt = clip.encode_texts(prompts).view(len(class_names), len(templates), -1)
    embeddings = F.normalize(per_prompt.mean(dim=1), dim=-1).numpy().astype(np.float32)
    if file is not None:
        with contextlib.suppress(OSError), atomic_path(file) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, embeddings=embeddings, classes=np.array(list(class_names)))
    return embeddings


def _fits(embeddings: np.ndarray, clip: ClipModel, count: int) -> bool:
    """Whether cached ``embeddings`` are ``count`` finite unit vectors as wide as ``clip``'s text embeddings
    (NaN ones scored every region NaN and labelled it the first class; another width was a traceback)."""
    if embeddings.ndim != 2 or embeddings.shape[0] != count or not np.isfinite(embeddings).all():
        return False
    if not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3):
        return False
    projection = getattr(clip.model, "text_projection", None)  # (D, or (width, D) as open_clip keeps it)
    width = getattr(projection, "shape", (None,))[-1] or getattr(getattr(clip.model, "visual", None), "output_dim", None)
    return width is None or embeddings.shape[1] == width
