"""What a batch runs on: command-line inputs expanded into a list of named clips.

An input is a video file, a folder of frames (a folder holding images), a folder of videos (each video
in it is a clip), a glob pattern (``'clips/*.mp4'``), or a manifest: a ``.txt`` file with one path a line
or a ``.csv`` file with columns ``input[,name]`` (relative paths are taken from the manifest's folder;
empty lines and lines starting with ``#`` are skipped). Each clip gets a unique output name, its file
or folder name, with ``-2``, ``-3``... when two clips share one.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from semflow.errors import InputError
from semflow.io.images import is_image_path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
MANIFEST_EXTENSIONS = (".txt", ".csv")


@dataclass(frozen=True)
class BatchInput:
    """One clip of a batch: ``path`` (a video file or a folder of frames) and the ``name`` of its output
    folder under the batch's output folder."""

    path: Path
    name: str


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video file extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _manifest(path: Path) -> list[tuple[Path, str | None]]:
    rows: list[tuple[Path, str | None]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")  # names' bytes kept as the file system's
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if path.suffix.lower() == ".csv":
        records = list(csv.reader(lines))
        if records and records[0] and records[0][0].strip().lower() in ("input", "path", "video"):
            records = records[1:]
    else:
        records = [[line] for line in lines]
    for record in records:
        if not record or not record[0].strip():
            continue
        entry = Path(record[0].strip()).expanduser()
        name = record[1].strip() if len(record) > 1 and record[1].strip() else None
        rows.append((entry if entry.is_absolute() else path.parent / entry, name))
    return rows


def _expand_one(item: str | os.PathLike) -> list[tuple[Path, str | None]]:
    text = str(item)
    path = Path(text).expanduser()
    if not path.exists() and any(ch in text for ch in "*?["):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise InputError(f"{text}: no file matches this pattern")
        return [entry for match in matches for entry in _expand_one(match)]
    if path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
        return _manifest(path)
    if path.is_dir():
        children = [p for p in path.iterdir() if p.is_file()]
        if not any(is_image_path(p) for p in children):
            videos = sorted(p for p in children if is_video_path(p))
            if videos:
                return [(p, None) for p in videos]
    return [(path, None)]  # a video, a folder of frames, or something the run will report as unusable


def folder_name(name: str) -> str:
    """``name`` as one visible folder name below the batch's: path separators and control characters
    become ``_``, ``.`` and ``..`` parts are dropped (a manifest could name the batch folder itself or the
    one above it) and leading dots too (no hidden folders); ``"clip"`` when nothing is left."""
    name = "".join(c if c.isprintable() else "_" for c in name)
    parts = [part for part in name.replace(os.sep, "/").split("/") if part not in ("", ".", "..")]
    return "_".join(parts).lstrip(".") or "clip"


def expand_inputs(items: Iterable[str | os.PathLike | BatchInput]) -> list[BatchInput]:
    """The clips named by ``items`` (see the module docstring; one path or glob alone counts as a list of
    it, never as its characters), each with a unique output name."""
    if isinstance(items, (str, os.PathLike, BatchInput)):
        items = [items]
    entries: list[tuple[Path, str | None]] = []
    for item in items:
        if isinstance(item, BatchInput):
            entries.append((item.path, item.name))
        else:
            entries.extend(_expand_one(item))
    if not entries:
        raise InputError("no inputs given")
    used: set[str] = {"batch.json"}  # the batch's own file beside the clips' folders
    result = []
    for path, name in entries:
        base = folder_name(name or (path.stem if path.suffix else path.name))
        unique, k = base, 2
        while unique in used:
            unique, k = f"{base}-{k}", k + 1
        used.add(unique)
        result.append(BatchInput(path, unique))
    return result
