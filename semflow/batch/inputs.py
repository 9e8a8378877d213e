"""What a batch runs on: command-line inputs expanded into a list of named clips.

An input is a video file, a folder of frames (a folder holding images), a folder of videos (each video
in it is a clip), a glob pattern (``'clips/*.mp4'``), or a manifest: a ``.txt`` file with one path a line
or a ``.csv`` file with columns ``input[,name]`` (relative paths are taken from the manifest's folder;
empty lines and lines starting with ``#`` are skipped). Each clip gets a unique output name, its file
or folder name, with ``-2``, ``-3``... when two clips share one. Hidden files (``.x.mp4``, macOS's
``._x.mp4`` copies) in a folder are no one's clips. Given the batch's output folder, the inputs never
include it (a glob or a folder leaves it out) and it may not lie in a folder they read.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from semflow.errors import InputError, counted, warn
from semflow.io.files import is_video_path
from semflow.io.images import is_image_path
from semflow.io.outputs import refuse_outputs_inside

MANIFEST_EXTENSIONS = (".txt", ".csv")


@dataclass(frozen=True)
class BatchInput:
    """One clip of a batch: ``path`` (a video file or a folder of frames) and the ``name`` of its output
    folder under the batch's output folder."""

    path: Path
    name: str


def _manifest(path: Path) -> list[tuple[Path, str | None]]:
    rows: list[tuple[Path, str | None]] = []
    try:
        # utf-8-sig: a byte-order mark (Notepad, Excel's "CSV UTF-8") is dropped, not read into the first path;
        # surrogateescape: names' bytes kept as the file system's
        text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
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


def _text(item: object) -> str:
    """An input as text: a str, a path, or bytes (a file system name, decoded as the file system does)."""
    if isinstance(item, (str, bytes, os.PathLike)):
        text = os.fspath(item)
        return os.fsdecode(text) if isinstance(text, bytes) else text
    raise InputError(f"an input must be a path (str, bytes or os.PathLike), a glob or a manifest, got {item!r}")


def _inside(path: str | os.PathLike, folder: str | None) -> bool:
    """Whether ``path`` is the real folder ``folder`` or lies in it (by any path or link)."""
    return folder is not None and os.path.commonpath([folder, os.path.realpath(path)]) == folder


def _expand_one(item: str | os.PathLike, out: str | None, *, typed: bool = True) -> list[tuple[Path, str | None]]:
    """The clips of one input (``typed``: given as it is, not a glob's match)."""
    text = str(item)
    path = Path(text).expanduser()
    if not path.exists() and any(ch in text for ch in "*?["):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise InputError(f"{text}: no file matches this pattern")
        # the batch's own outputs are no input ('clips/*' with --out clips/out: its next run took out/ as a clip)
        return [entry for match in matches if not _inside(match, out) for entry in _expand_one(match, out, typed=False)]
    if path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
        return _manifest(path)
    if path.is_dir():
        # hidden files are no one's clips, nor frames (macOS leaves ._x.mp4 and ._cover.png beside a copy)
        children = [p for p in path.iterdir() if not p.name.startswith(".")]
        # a video that is a link to nothing is a clip too: its run says so (it was left out without a word)
        videos = sorted(p for p in children if is_video_path(p) and not p.is_dir())
        if any(is_image_path(p) and p.is_file() for p in children):
            if videos:
                warn(f"{path}: a folder of frames, read as one clip; {counted(len(videos), 'video file')} in it"
                     f" ({videos[0].name}{', ...' if len(videos) > 1 else ''}) {'is' if len(videos) == 1 else 'are'}"
                     " not read: name them to add them")
        elif videos:
            if out is not None:
                refuse_outputs_inside(path, [out])  # a folder of videos read is written into by no one
            return [(p, None) for p in videos]
        elif typed and (folders := [p for p in children if p.is_dir() and not _inside(p, out)]):  # (a glob's: fails)
            frames = any(is_image_path(q) for sub in folders[:20] for q in sub.iterdir())  # (Sintel's training/final)
            give = f"'{path}/*' (in quotes) for each folder of frames in it" if frames else \
                f"'{path}/**/*.mp4' (in quotes) for the videos below it"
            raise InputError(f"{path}: holds no images or videos at its top level; a batch does not look into its"
                             f" folders: give {give}")
    return [(path, None)]  # a video, a folder of frames, or something the run will report as unusable


def folder_name(name: str) -> str:
    """``name`` as one visible folder name below the batch's: path separators and control characters
    become ``_``, ``.`` and ``..`` parts are dropped (a manifest could name the batch folder itself or the
    one above it) and leading dots too (no hidden folders); ``"clip"`` when nothing is left."""
    name = "".join(c if c.isprintable() else "_" for c in name)
    parts = [part for part in name.replace(os.sep, "/").split("/") if part not in ("", ".", "..")]
    return "_".join(parts).lstrip(".") or "clip"


def expand_inputs(items: str | bytes | os.PathLike | BatchInput | Iterable[str | bytes | os.PathLike | BatchInput],
                  out: str | os.PathLike | None = None) -> list[BatchInput]:
    """The clips named by ``items`` (see the module docstring; one path or glob alone counts as a list of
    it, never as its characters), each with a unique output name. ``out``: the batch's output folder,
    left out of globs; OutputError when it is, or lies in, a folder of frames or of videos read."""
    if isinstance(items, (str, bytes, os.PathLike, BatchInput)):
        items = [items]
    try:
        items = list(items)
    except TypeError:
        raise InputError(f"inputs must be a list of paths, globs or manifests, got {items!r}") from None
    real_out = os.path.realpath(out) if out is not None else None
    entries: list[tuple[Path, str | None]] = []
    for item in items:
        if isinstance(item, BatchInput):
            if not isinstance(item.name, str):
                raise InputError(f"a BatchInput's name must be a str, got {item.name!r}")
            entries.append((Path(_text(item.path)), item.name))
        else:
            entries.extend(_expand_one(_text(item), real_out))
    if not entries:
        raise InputError("no inputs given")
    if out is not None:
        for path, _ in entries:
            if path.is_dir():  # a folder of frames: semflow does not write into what it reads
                refuse_outputs_inside(path, [out])
    used: set[str] = {"batch.json"}  # the batch's own file beside the clips' folders (names case-folded: a
    result, seen = [], {}            # file system that ignores case would give A.mp4 and a.mp4 one folder)
    for path, name in entries:
        base = folder_name(name or (path.stem if path.suffix else path.name))
        unique, k = base, 2
        while unique.casefold() in used:
            unique, k = f"{base}-{k}", k + 1
        used.add(unique.casefold())
        result.append(BatchInput(path, unique))
        real = os.path.realpath(path) if path.exists() else os.path.abspath(path)  # (links to nothing: each its own)
        if real in seen and (name is None or seen[real][1] is None):  # (a glob and its folder, say: a name given
            warn(f"{path}: given twice (as {seen[real][0]} and {unique}): it is computed twice")  # to each: chosen)
        seen.setdefault(real, (unique, name))
    return result


def named_after(folder: str, name: str) -> bool:
    """Whether ``folder`` and ``name`` are names one clip gets (``clip``, or ``clip-K`` beside others called
    so): not a name the user has changed since (a manifest's name column)."""
    def base(text: str) -> str:
        stem, _, number = text.rpartition("-")
        return stem if stem and number.isdecimal() else text
    return base(folder) == base(name)


def folder_names(items: list[BatchInput], taken: set[str], earlier: dict[str, str]) -> list[str]:
    """The output folder of each of ``items``: the folder ``earlier`` (real path -> folder) says it had,
    where that is not ``taken`` and still named after it, else its name, numbered (``clip-2``...) past the
    names taken (``taken`` is updated). Names are told apart regardless of case (``A.mp4`` and ``a.mp4``
    would share a folder where the file system ignores it: ``A`` and ``a-2``)."""
    folded = {name.casefold() for name in taken}

    def take(name: str) -> None:
        taken.add(name)
        folded.add(name.casefold())

    names: dict[int, str] = {}
    for k, item in enumerate(items):
        before = earlier.get(os.path.realpath(item.path))  # (as the fingerprint: a link loop does not raise)
        if before is not None and before.casefold() not in folded and named_after(before, item.name):
            names[k] = before
            take(before)
    folders = []
    for k, item in enumerate(items):
        name, n = names.get(k, item.name), 2
        while k not in names and name.casefold() in folded:
            name, n = f"{item.name}-{n}", n + 1
        take(name)
        folders.append(name)
    return folders
