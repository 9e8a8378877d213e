"""A folder of frames: its image files in natural name order, and where their numbers skip.

:func:`folder_images` lists the frames of a folder (what :class:`~semflow.io.video.FrameSource` reads
from a folder, and ``semflow segment``); :func:`numbering_gaps` is the note a run keeps when the frame
numbers of those names skip.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from semflow.errors import InputError, counted
from semflow.io.images import is_image_path
from semflow.io.raw_tiff import CAMERA_RAW_EXTENSIONS


def natural_key(path: Path) -> list[str | int]:
    """Sort key that orders numbered names by their numbers: frame2.png before frame10.png."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", path.name)]


UNREAD_IMAGE_EXTENSIONS = (".gif", ".apng", ".avif", ".heic", ".heif", ".jxl", ".jp2", ".exr", ".psd")
"""Images a folder of frames may hold that semflow does not read: refused, not skipped. (Camera raws, DNG
included: :data:`~semflow.io.raw_tiff.CAMERA_RAW_EXTENSIONS`, are skipped beside an image of their name.)"""


def folder_images(folder: str | os.PathLike, *, frames: bool = True) -> list[Path]:
    """The image files of ``folder`` (not below it), in natural name order. A device, a FIFO or a dangling
    link named like an image is an :class:`InputError` naming it, not skipped (a frame left out would join
    its neighbours into one pair). Hidden names (``.x.png``, macOS's ``._x.png`` copies), links included,
    are skipped: no one's frames. So is an image of a format semflow does not read (``x.gif``), not
    skipped: :data:`UNREAD_IMAGE_EXTENSIONS`. A camera raw (``IMG_0001.CR2``, ``.NEF``, ``.DNG``...) beside an
    image of the same name (``IMG_0001.JPG``: a camera's RAW+JPEG pair) is skipped, that image being its
    frame; one with no such image is refused as those are (where the folder holds images; a folder of raws
    alone holds none: :func:`camera_raws_note`); :func:`raws_skipped_note` says how many were skipped. With
    ``frames`` (a video's), two images of one frame (``0001.jpg`` and ``0001.png``; ``1.png`` and ``01.png``:
    names whose sort keys, the extension aside, are equal) are an :class:`InputError` naming two of them: read,
    they were two frames, in the listing's order; without (``semflow segment``'s images, each on its own), not."""
    names, images = _listing(folder)
    unread = sorted((p for p in names if p.suffix.lower() in UNREAD_IMAGE_EXTENSIONS), key=natural_key)
    if unread:
        kind = unread[0].suffix.lower()[1:].upper()
        raise InputError(f"{unread[0]}: a {kind} image, which semflow does not read as a frame"
                         f" ({len(unread)} in the folder): convert them to PNG or move them out")
    if (alone := _camera_raws(names, images, beside_image=False)) and images:
        raise InputError(f"{alone[0]}: a camera raw image with no JPEG or other image of its name beside it"
                         f" ({len(alone)} in the folder), which semflow does not read as a frame: convert them"
                         " with a raw converter to RGB PNGs or TIFFs, or move them out")
    if frames and (twice := _one_frame_twice(images)):
        first, second = twice[0]
        do = (f"keep one kind of file (move the {first.suffix} or the {second.suffix} files out)"
              if first.suffix.lower() != second.suffix.lower() else "rename or move one of them out")
        raise InputError(f"{first} and {second.name} are one frame under two names ({counted(len(twice), 'frame')}"
                         f" in the folder {'has' if len(twice) == 1 else 'have'} more than one file): {do}")
    for image in images:
        if not image.is_file():
            raise InputError(f"{image}: not a regular file")
    return images


def camera_raws_note(folder: str | os.PathLike) -> str:
    """What to add to "folder holds no images" where ``folder`` holds camera raw images (their files skipped, as
    any other file not an image semflow reads: :data:`~semflow.io.raw_tiff.CAMERA_RAW_EXTENSIONS`); else ""."""
    raws = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in CAMERA_RAW_EXTENSIONS), key=natural_key)
    return (f" (it holds {len(raws)} camera raw images, such as {raws[0].name}, which semflow cannot read; convert"
            " them with a raw converter to RGB PNGs or TIFFs)" if raws else "")


def raws_skipped_note(folder: str | os.PathLike) -> str | None:
    """The one-line note that ``folder``'s camera raws beside an image of their name (a RAW+JPEG folder's) are
    skipped, those images being the frames (:func:`folder_images`), for a run to say once; None where none is."""
    names, images = _listing(folder)
    if not (raws := _camera_raws(names, images, beside_image=True)):
        return None
    image = next(p for p in images if p.stem.casefold() == raws[0].stem.casefold())
    return (f"{folder}: skipped {counted(len(raws), 'camera raw file')} beside the images of their names (such as"
            f" {raws[0].name} beside {image.name}), which are read as the frames")


def _listing(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``folder``'s files (not hidden, not folders) and the image files among them, in natural name order."""
    names = [p for p in Path(folder).iterdir() if not p.name.startswith(".") and not p.is_dir()]
    return names, sorted((p for p in names if is_image_path(p)), key=natural_key)


def _camera_raws(names: list[Path], images: list[Path], *, beside_image: bool) -> list[Path]:
    """The camera raws among ``names``, in natural name order, that have (``beside_image``) or lack an image of
    their name (case aside) among ``images``: a RAW+JPEG folder's skipped raws, or those refused."""
    stems = {p.stem.casefold() for p in images}
    return sorted((p for p in names if p.suffix.lower() in CAMERA_RAW_EXTENSIONS
                   and (p.stem.casefold() in stems) == beside_image), key=natural_key)


def _one_frame_twice(images: list[Path]) -> list[tuple[Path, Path]]:
    """For each frame of ``images`` (in natural name order) that more than one of them claims, two of those (in
    name order): names whose :func:`natural_key`, the extension aside, is one (``0001.jpg``, ``0001.PNG``;
    ``1.png``, ``01.png``)."""
    first: dict[tuple[str | int, ...], Path] = {}
    twice: dict[tuple[str | int, ...], tuple[Path, Path]] = {}
    for image in images:
        key = tuple(natural_key(Path(image.stem)))
        if key not in first:
            first[key] = image
        else:
            twice.setdefault(key, tuple(sorted((first[key], image))))  # (named in one order, however listed)
    return list(twice.values())


_NUMBERED = re.compile(r"(.*?)(\d+)(\D*)")
"""A numbered frame name: prefix, number, suffix (``frame_0001.png``: ``frame_``, ``0001``, ``.png``)."""


def numbering_gaps(images: list[Path]) -> str | None:
    """A one-line note on where the numbers of ``images`` (in their order) skip, when every name is one
    prefix, a number and one suffix (``000001.png``, ``frame_0001.png``); None when they run on or the
    names follow no one pattern."""
    matches = [_NUMBERED.fullmatch(p.name) for p in images]
    if not matches or not all(matches) or len({(m[1], m[3]) for m in matches}) > 1:
        return None
    numbers = [int(m[2]) for m in matches]
    gaps = [(i, b - a - 1) for i, (a, b) in enumerate(zip(numbers, numbers[1:])) if b - a > 1]
    if not gaps:
        return None
    i, missing = gaps[0]
    more = f"; {len(gaps)} gaps in all, {sum(n for _, n in gaps)} frames missing" if len(gaps) > 1 else ""
    return (f"{images[0].parent}: frame numbers skip from {images[i].name} to {images[i + 1].name}"
            f" ({missing} missing{more}); each pair joins the frames as listed")
