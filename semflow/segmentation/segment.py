"""``semflow segment``: label maps (and colour overlays) for images, folders of images and videos.

For an image ``x.png`` it writes ``OUT/x.png``, a uint8 label map in the backend's label set; for a
video, ``OUT/NNNNNN.png`` per frame (``OUT/<video stem>/NNNNNN.png`` when several videos are given).
A video is segmented in video mode by default: each frame's class probabilities are filtered along the
optical flow with the previous frames' (:mod:`.temporal`), so labels do not flicker; ``temporal=False``
segments every frame on its own.
With ``overlay``, images also get ``OUT/overlay/x.png`` and a video ``OUT/overlay.mp4``
(``OUT/<video stem>/overlay.mp4``). Frames are read and written one at a time.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from semflow.errors import InputError
from semflow.io.images import is_image_path, read_image, write_image
from semflow.io.outputs import refuse_inputs_as_outputs
from semflow.io.video import folder_images
from semflow.segmentation.base import Segmenter
from semflow.segmentation.masks import MaskSegmenter


@dataclass
class _Job:
    kind: str  # "image" or "video"
    path: Path
    out: Path  # label PNG (image) or folder (video)


def _plan(inputs: Sequence[str | os.PathLike], out_dir: Path) -> list[_Job]:
    images: list[Path] = []
    videos: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            found = sorted(folder_images(p))  # (in name order, as always here)
            if not found:
                raise InputError(f"{p}: folder holds no images")
            images.extend(found)
        elif is_image_path(p):
            images.append(p)
        else:
            videos.append(p)
    jobs: list[_Job] = []
    seen: dict[Path, Path] = {}
    for img in images:
        out = out_dir / f"{img.stem}.png"
        if out in seen:
            raise InputError(f"{img} and {seen[out]} would both be written to {out}")
        seen[out] = img
        jobs.append(_Job("image", img, out))
    for vid in videos:
        folder = out_dir / vid.stem if len(videos) > 1 else out_dir
        if folder in seen:
            raise InputError(f"{vid} and {seen[folder]} would both be written to {folder}")
        seen[folder] = vid
        jobs.append(_Job("video", vid, folder))
    return jobs


def segment_inputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   backend: str | Segmenter = "camvid", overlay: bool = False, progress: bool | None = None,
                   device: str = "cpu", kinds_override: str | Mapping[str, str] | None = None,
                   label_set: str | None = None, max_frames: int | None = None,
                   temporal: bool = True) -> list[Path]:
    """Segment images, folders of images and videos; return the label maps written.

    ``backend``: a spec for :func:`get_segmenter` or a segmenter. ``progress``: a bar on stderr
    (None: only on a terminal). ``max_frames`` limits each video. ``temporal``: filter a video's
    labels along the flow (False: every frame on its own).
    """
    from semflow.io.video import FrameSource, VideoWriter
    from semflow.progress import progress_bar
    from semflow.segmentation.temporal import TemporalSegmentation

    out_dir = Path(out_dir)
    jobs = _plan(inputs, out_dir)
    if not jobs:
        raise InputError("nothing to segment: give images, folders of images or videos")
    outputs = [out_dir, *(j.out for j in jobs)]
    if overlay:
        outputs += [out_dir / "overlay" / j.out.name if j.kind == "image" else j.out / "overlay.mp4" for j in jobs]
    refuse_inputs_as_outputs([*inputs, *(j.path for j in jobs)], outputs)
    sources = {j.path: FrameSource(j.path, max_frames=max_frames) for j in jobs if j.kind == "video"}

    # Built when the first frame is in hand: an unreadable first input fails in one line without
    # loading the model (torch, weights: seconds).
    @functools.cache
    def segmenter() -> Segmenter:
        from semflow.segmentation.backends import get_segmenter

        return backend if isinstance(backend, Segmenter) else get_segmenter(
            backend, device=device, kinds_override=kinds_override, label_set=label_set)

    total = sum(1 for j in jobs if j.kind == "image") + sum(len(s) for s in sources.values())
    written: list[Path] = []
    with progress_bar(total or None, "segment", enabled=progress) as bar:
        for job in jobs:
            if job.kind == "image":
                image = read_image(job.path)
                result = segmenter().predict(image, key=job.path.stem)
                write_image(job.out, result.labels)
                written.append(job.out)
                if overlay:
                    write_image(out_dir / "overlay" / job.out.name, result.overlay(image))
                bar.advance()
                continue
            source = sources[job.path]
            writer = VideoWriter(job.out / "overlay.mp4", fps=source.fps) if overlay else None
            given_masks = isinstance(segmenter(), MaskSegmenter)  # given masks stay as given
            fusion = TemporalSegmentation() if temporal and not given_masks else None
            try:
                for index, frame in enumerate(source):
                    result = segmenter().predict(frame, key=index)
                    if fusion is not None:
                        result = fusion.update(frame, result)
                    path = job.out / f"{index:06d}.png"
                    write_image(path, result.labels)
                    written.append(path)
                    if writer is not None:
                        writer.write(result.overlay(frame))
                    bar.advance()
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            if writer is not None:
                writer.close()
    return written
