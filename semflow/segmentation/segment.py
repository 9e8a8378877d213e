"""``semflow segment``: label maps (and colour overlays) for images, folders of images and videos.

For an image ``x.png`` it writes ``OUT/x.png``, a uint8 label map in the backend's label set; for a
video, ``OUT/NNNNNN.png`` per frame (``OUT/<video stem>/NNNNNN.png`` when several videos are given).
A video is segmented in video mode by default: each frame's class probabilities are filtered along the
optical flow with the previous frames' (:mod:`.temporal`), so labels do not flicker; ``temporal=False``
segments every frame on its own.
``max_side`` shrinks images and frames so their longer side is at most that many pixels before they
are segmented (the label maps and overlays then have the shrunk size, as ``run``'s flows do).
With ``overlay``, images also get ``OUT/overlay/x.png`` and a video ``OUT/overlay.mp4``
(``OUT/<video stem>/overlay.mp4``): the label colours blended on the image, with the label set's colour key
(in the lower left corner; on a strip under an image too small for it); a segmenter with the CLIP prior writes its decisions the same way,
to ``OUT/prior/`` (``OUT/<video stem>/prior/``). Frames are read and written one at a time.

Every output is checked before any work (no two inputs write one file, none is an input, including
the given masks, none goes through a link in ``OUT``), and so is the memory that the largest image and
the largest video frame need (:func:`semflow.memory.check_segmenter_memory`, before the model is built);
everything is written to a fresh folder inside ``OUT`` first and moved into place only when the whole
command has succeeded: a failed command leaves ``OUT`` as it was.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from semflow.errors import InputError, counted, signals_held, warn
from semflow.io.files import is_video_path, missing, name_key
from semflow.io.frame_folder import camera_raws_note, folder_images, raws_skipped_note
from semflow.io.images import image_size, is_image_path, read_image, write_image
from semflow.io.outputs import check_outputs, output_staging, refuse_inputs_as_outputs, refuse_link
from semflow.io.video import max_side_size, resize_max_side
from semflow.memory import check_segmenter_memory, measured_segmenter
from semflow.segmentation.base import Segmenter
from semflow.segmentation.masks import MaskSegmenter

_FRAME_NAME = re.compile(r"(\d{6})\.png")
"""A video's label map: ``NNNNNN.png``, NNNNNN its frame index."""


@dataclass
class _Job:
    kind: str  # "image" or "video"
    path: Path
    out: Path  # label PNG (image) or folder (video)


def _plan(inputs: Sequence[str | os.PathLike], out_dir: Path, max_frames: int | None = None) -> list[_Job]:
    """The jobs for ``inputs``: a folder gives its first ``max_frames`` images (natural order; all when None)."""
    images: list[Path] = []
    videos: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise missing(p)
        if p.is_dir():
            found = sorted(folder_images(p, frames=False)[:max_frames])  # (then in name order, as always here)
            if not found:  # (a folder of videos is batch's: here each video is named)
                raise InputError(f"{p}: folder holds no images" + (camera_raws_note(p) or (
                    " (name its videos themselves: DIR/*.mp4)" if any(map(is_video_path, p.iterdir())) else "")))
            images.extend(found)
        elif is_image_path(p):
            images.append(p)
        else:
            videos.append(p)
    jobs: list[_Job] = []
    seen: dict[str, Path] = {}  # (by name, case-folded where the output folder ignores case)
    key = name_key(out_dir)
    for img in images:
        out = out_dir / f"{img.stem}.png"
        if key(out) in seen:
            raise InputError(f"{img} and {seen[key(out)]} would both be written to {out}")
        seen[key(out)] = img
        jobs.append(_Job("image", img, out))
    for vid in videos:
        # (a stem '..' or '.', of '...mp4' or '..mp4', names no folder of its own: the whole name does)
        folder = out_dir / (vid.stem if vid.stem not in (".", "..") else vid.name) if len(videos) > 1 else out_dir
        if key(folder) in seen:
            raise InputError(f"{vid} and {seen[key(folder)]} would both be written to {folder}")
        seen[key(folder)] = vid
        jobs.append(_Job("video", vid, folder))
    return jobs


def overlays_of(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                max_frames: int | None = None) -> list[Path]:
    """Where :func:`segment_inputs` with ``overlay`` puts the overlays of ``inputs``: the folder
    ``OUT/overlay`` (the images' ones) when there are images, then each video's ``overlay.mp4``."""
    jobs = _plan([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs, Path(out_dir), max_frames)
    images = [Path(out_dir) / "overlay"] if any(job.kind == "image" for job in jobs) else []
    return images + [job.out / "overlay.mp4" for job in jobs if job.kind == "video"]


def _outputs(jobs: list[_Job], counts: Mapping[Path, int], out_dir: Path,
             overlay: bool) -> tuple[dict[Path, Path], list[Path]]:
    """The files the jobs write but a video's frames (images' label maps and overlays, videos'
    ``overlay.mp4``), each with the input it comes from, and the folders everything goes to. Two inputs
    written to one file is an InputError, a video's frame (``NNNNNN.png`` in its folder, below the count
    it declares) included; the frames themselves are not listed (a video may have millions)."""
    files: dict[Path, Path] = {}
    written: dict[str, Path] = {}  # (the same files by name, case-folded where the folder ignores case)
    key = name_key(out_dir)
    folders = [out_dir]
    videos = {key(job.out): job for job in jobs if job.kind == "video"}
    for job in jobs:
        if job.kind == "image":
            names = [job.out, *([out_dir / "overlay" / job.out.name] if overlay else [])]
            folders += [out_dir / "overlay"] if overlay else []
        else:
            names = [job.out / "overlay.mp4"] if overlay else []
            folders.append(job.out)
        for name in names:
            video = videos.get(key(name.parent))
            if key(name) in written or (video is not None and _frame_index(name, counts[video.path]) is not None):
                raise InputError(f"{job.path} and {written.get(key(name), video.path if video else job.path)} would"
                                 f" both be written to {name}")
            files[name], written[key(name)] = job.path, job.path
    return files, list(dict.fromkeys(folders))


def _frame_index(path: Path, count: int) -> int | None:
    """The frame ``path`` is (``NNNNNN.png``, below ``count``) in a video's folder, else None."""
    match = _FRAME_NAME.fullmatch(path.name)
    return int(match.group(1)) if match and int(match.group(1)) < count else None


def _given_masks(backend: str | Segmenter) -> Path | None:
    """The folder or PNG of given masks (``masks:PATH``, or a mask segmenter, behind a prior or not)."""
    if isinstance(backend, str):
        kind, _, arg = backend.partition(":")
        return Path(arg) if kind.lower() == "masks" and arg else None
    backbone = getattr(backend, "segmenter", backend)
    return backbone.source if isinstance(backbone, MaskSegmenter) else None


def _backend_inputs(backend: str | Segmenter, label_set: str | None) -> list[Path]:
    """What the backend reads that an output might be: its ``:PATH``, the given masks (the folder and
    its PNGs), a label-set file."""
    paths: list[Path] = []
    if isinstance(backend, str) and backend.partition(":")[2]:
        paths.append(Path(backend.partition(":")[2]))
    masks = _given_masks(backend)
    if masks is not None:
        paths += [masks, *(sorted(masks.glob("*.png")) if masks.is_dir() else [])]
    if label_set and Path(label_set).suffix.lower() == ".json":
        paths.append(Path(label_set))
    return paths


def _refuse_frames_as_inputs(inputs: Sequence[str | os.PathLike], videos: Mapping[Path, int]) -> None:
    """:func:`refuse_inputs_as_outputs` for an input that is one of the frames a video writes (``videos``:
    its folder and frame count), which the plan does not list one by one."""
    folders = {os.path.realpath(folder): (folder, count) for folder, count in videos.items()}
    for path in inputs:
        folder, count = folders.get(os.path.realpath(Path(path).parent), (None, 0))
        if folder is not None and _frame_index(Path(path), count) is not None:
            refuse_inputs_as_outputs([path], [folder / Path(path).name])


def _move_into(stage: Path, out_dir: Path) -> None:
    """Move every file written in ``stage`` to the same place in ``out_dir`` (no link on the way); Ctrl-C or
    SIGTERM meanwhile is acted on once all are moved (it left a mix of new and earlier outputs)."""
    files = [Path(base, name).relative_to(stage) for base, _, names in os.walk(stage) for name in names]
    for rel in files:
        refuse_link(out_dir / rel, out_dir)
    with signals_held():
        for rel in files:
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out_dir / rel)


def segment_inputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   backend: str | Segmenter = "camvid", overlay: bool = False, progress: bool | None = None,
                   device: str = "cpu", kinds_override: str | Mapping[str, str] | None = None,
                   label_set: str | None = None, max_frames: int | None = None,
                   temporal: bool = True, max_side: int | None = None) -> list[Path]:
    """Segment images, folders of images and videos (``inputs``: a list of paths, or one); return the
    label maps written.

    ``backend``: a spec for :func:`get_segmenter` or a segmenter. ``progress``: a bar on stderr
    (None: only on a terminal). ``max_frames`` limits every input: the frames of each video and the
    images taken from each folder (its first ones, in natural name order). ``temporal``: filter a
    video's labels along the flow (False: every frame on its own). ``max_side`` (px): shrink images and
    frames so their longer side is at most this first (the label maps have the shrunk size).
    """
    from semflow.io.video import FrameSource

    out_dir = Path(out_dir)
    if isinstance(inputs, (str, os.PathLike)):  # one path, not a list of its characters
        inputs = [inputs]
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max frames (--max-frames) must be at least 1, got {max_frames}")
    if max_side is not None and max_side < 16:  # (as run's --max-side)
        raise InputError(f"max side (--max-side) must be at least 16 px, got {max_side}")
    jobs = _plan(inputs, out_dir, max_frames)
    if not jobs:
        raise InputError("nothing to segment: give images, folders of images or videos")
    masks = _given_masks(backend)
    if masks is not None and masks.is_dir() and sum(j.kind == "video" for j in jobs) > 1:
        raise InputError(f"masks:{masks}: a folder of NNNNNN.png holds one video's masks, and "
                         f"{sum(j.kind == 'video' for j in jobs)} videos were given; segment them one at a time")
    sources = {j.path: FrameSource(j.path, max_frames=max_frames, max_side=max_side) for j in jobs if j.kind == "video"}
    files, folders = _outputs(jobs, {p: len(s) for p, s in sources.items()}, out_dir, overlay)
    explain = getattr(backend, "explain_dir", None)  # the CLIP prior's OUT/prior/
    explain = Path(explain) if explain is not None and Path(explain).parent == out_dir else None
    if explain is not None:  # OUT/prior/ for images and one video, OUT/<video stem>/prior/ for several
        folders += list(dict.fromkeys(_explain_folder(job, out_dir, explain.name) for job in jobs))
    for path in [*folders, *files]:
        refuse_link(path, out_dir)
    check_outputs(folders=folders)  # first: "OUT/overlay: not a folder" says more than its files would
    check_outputs(files=list(files))
    read = [*inputs, *(j.path for j in jobs), *_backend_inputs(backend, label_set)]
    _refuse_frames_as_inputs(read, {j.out: len(sources[j.path]) for j in jobs if j.kind == "video"})
    refuse_inputs_as_outputs(read, [*folders, *files])
    _check_memory(jobs, sources, backend, max_side)
    for note in filter(None, (raws_skipped_note(p) for p in dict.fromkeys(map(Path, inputs)) if p.is_dir())):
        warn(note)  # (here, not in _plan: overlays_of plans too)

    try:  # OUT locked: a second segment or run into it would mix their outputs
        with output_staging(out_dir, ".segment-", lock=True) as stage:
            written = _segment(jobs, sources, files, out_dir, stage, backend=backend, overlay=overlay,
                               progress=progress, device=device, kinds_override=kinds_override,
                               label_set=label_set, temporal=temporal, max_side=max_side,
                               explain_name=explain.name if explain is not None else None)
            _move_into(stage, out_dir)
        _warn_of_leftovers(jobs, written)
    finally:
        if explain is not None:
            backend.explain_dir = explain
    return written


def _image_size(path: Path, max_side: int | None) -> tuple[int, int]:
    """(H, W) of the image at ``path`` as it is segmented (upright, shrunk by ``max_side``), from its header
    where the header says (else from the image)."""
    try:
        height, width = image_size(path)
    except (OSError, ValueError, Image.DecompressionBombError):
        height, width = read_image(path).shape[:2]
    return max_side_size(height, width, max_side)


def _check_memory(jobs: Sequence[_Job], sources: Mapping[Path, object], backend: str | Segmenter,
                  max_side: int | None) -> None:
    """Refuse, in one line and before the model loads, the largest image or video frame (after ``max_side``)
    when segmenting it needs more memory than is available."""
    kind, name = measured_segmenter(backend)
    for video in (False, True):
        sizes = [sources[j.path].frame_size() if video else _image_size(j.path, max_side)
                 for j in jobs if (j.kind == "video") == video]
        if sizes:
            height, width = max(sizes, key=lambda size: size[0] * size[1])
            check_segmenter_memory(name, height, width, video=video, hint="use --max-side {side} (or smaller)",
                                   label=kind if kind == name else f"{kind}, counted as {name}")


def _warn_of_leftovers(jobs: Sequence[_Job], written: Sequence[Path]) -> None:
    """Warn of label maps ``NNNNNN.png`` beside a video's that this command did not write (an earlier, longer
    video's): read with these, they would seem its frames. They are the user's to remove, not deleted here."""
    mine = set(written)
    for job in jobs:
        if job.kind != "video" or not job.out.is_dir():
            continue
        left = sorted(p.name for p in job.out.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png") if p not in mine)
        if left:
            warn(f"{job.out}: {counted(len(left), 'label map')} beside this video's {'is' if len(left) == 1 else 'are'}"
                 f" not from it ({left[0]}{f'-{left[-1]}' if len(left) > 1 else ''}; left by an earlier semflow segment?)")


def _explain_folder(job: _Job, out_dir: Path, name: str) -> Path:
    """Where the CLIP prior's decisions for ``job`` go: ``OUT/<name>/`` for an image, ``<video folder>/<name>/``
    for a video (its frames' decisions are named by frame index, so each video needs its own)."""
    return (out_dir if job.kind == "image" else job.out) / name


def _segment(jobs: list[_Job], sources: Mapping[Path, object], files: Mapping[Path, Path], out_dir: Path,
             stage: Path, *, backend: str | Segmenter, overlay: bool, progress: bool | None, device: str,
             kinds_override: str | Mapping[str, str] | None, label_set: str | None,
             temporal: bool, max_side: int | None = None, explain_name: str | None = None) -> list[Path]:
    """Write every job's outputs to ``stage`` (at their places relative to ``out_dir``); return the
    label maps' final paths. ``explain_name``: the folder name for the prior's decisions (``backend``
    is then a segmenter with ``explain_dir``)."""
    from semflow.progress import progress_bar

    segmenter = _lazy_segmenter(backend, device=device, kinds_override=kinds_override, label_set=label_set)

    def staged(path: Path) -> Path:
        return stage / path.relative_to(out_dir)

    total = sum(1 for j in jobs if j.kind == "image") + sum(len(s) for s in sources.values())
    written: list[Path] = []
    with progress_bar(total or None, "segment", enabled=progress) as bar:
        for job in jobs:
            if explain_name is not None:
                backend.explain_dir = staged(_explain_folder(job, out_dir, explain_name))
            if job.kind == "image":
                _segment_image(job, segmenter, staged, out_dir, written, bar.advance, overlay=overlay,
                               max_side=max_side)
            else:
                _segment_video(job, sources[job.path], files, segmenter, staged, written, bar.advance,
                               overlay=overlay, temporal=temporal)
    return written


def _lazy_segmenter(backend: str | Segmenter, *, device: str, kinds_override: str | Mapping[str, str] | None,
                    label_set: str | None) -> Callable[[], Segmenter]:
    """A function that returns ``backend`` as a segmenter, built on its first call and kept."""
    # Built when the first frame is in hand: an unreadable first input fails in one line without
    # loading the model (torch, weights: seconds).
    @functools.cache
    def segmenter() -> Segmenter:
        from semflow.segmentation.backends import get_segmenter

        return backend if isinstance(backend, Segmenter) else get_segmenter(
            backend, device=device, kinds_override=kinds_override, label_set=label_set)

    return segmenter


def _segment_image(job: _Job, segmenter: Callable[[], Segmenter], staged: Callable[[Path], Path], out_dir: Path,
                   written: list[Path], advance: Callable[[], None], *, overlay: bool, max_side: int | None) -> None:
    """Write an image job's label map (and overlay) to its ``staged`` place; add the label map's final
    path to ``written`` and call ``advance`` (the progress bar's step) once."""
    from semflow.render import with_class_key

    image = resize_max_side(read_image(job.path), max_side)
    result = segmenter().predict(image, key=job.path.stem)
    write_image(staged(job.out), result.labels)
    written.append(job.out)
    if overlay:
        write_image(staged(out_dir / "overlay" / job.out.name),
                    with_class_key(result.overlay(image), result.label_set))
    del image, result  # (the next image's probabilities would be made beside these: 44 B/px more)
    advance()


def _segment_video(job: _Job, source: object, files: Mapping[Path, Path], segmenter: Callable[[], Segmenter],
                   staged: Callable[[Path], Path], written: list[Path], advance: Callable[[], None], *, overlay: bool,
                   temporal: bool) -> None:
    """Write a video job's label maps, one per frame of ``source`` (and ``overlay.mp4``), to their
    ``staged`` places; add the label maps' final paths to ``written`` and call ``advance`` once per frame.
    A frame another input writes too (``files``) is an InputError; the overlay video is then discarded."""
    from semflow.io.video import VideoWriter
    from semflow.render import with_class_key
    from semflow.segmentation.temporal import TemporalSegmentation

    writer = VideoWriter(staged(job.out / "overlay.mp4"), fps=source.fps, name=job.out / "overlay.mp4") if overlay else None
    backbone = getattr(segmenter(), "segmenter", segmenter())  # (the masks a CLIP prior relabels)
    given_masks = isinstance(backbone, MaskSegmenter)  # given masks are not filtered over time
    fusion = TemporalSegmentation() if temporal and not given_masks else None
    try:
        for index, frame in enumerate(source):
            result = segmenter().predict(frame, key=index)
            if fusion is not None:
                result = fusion.update(frame, result)
            path = job.out / f"{index:06d}.png"
            if files.get(path, job.path) != job.path:  # a frame past the count the video declared
                raise InputError(f"{job.path} and {files[path]} would both be written to {path}")
            write_image(staged(path), result.labels)
            written.append(path)
            if writer is not None:
                writer.write(with_class_key(result.overlay(frame), result.label_set))
            del result  # (--pairwise: not beside the next frame's)
            advance()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
