"""What the driver of a batch keeps and writes, free of Ray: each clip's state and preparation, its
:class:`InputResult`, and the batch's own output folder with its ``batch.json``.

A clip's status is ``pending`` until its result is known, then ``ok`` or ``failed`` (with a one-line
error); a clip whose batch stopped first (``break``, an exception, Ctrl-C) is ``interrupted``: its
finished pairs are kept, and a batch with ``resume`` finishes it. Each clip is checked once, when the
batch's run first sees it (:func:`check_clip`: a fresh batch clears its folder then, as ``semflow run``
does, and no file is kept open), and its folder opened and locked once, when its first task is due
(:func:`open_clip`: opening it again would clear the outputs it finished). The lock is held until the
clip's result is known and none of its tasks runs, so the driver keeps files open for the clips being
worked on, not for every clip of the batch (a batch of thousands of clips ran out of file descriptors).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semflow.batch.inputs import BatchInput
from semflow.batch.work import Chunk, Prepared, chunks_left, prepare_clip
from semflow.errors import InputError, OutputError, SemflowWarning
from semflow.io.files import out_of_descriptors, too_many_open_files
from semflow.io.jsonfile import loads_untrusted
from semflow.io.outputs import (
    MANIFEST_NAME,
    OutputFolder,
    check_outputs,
    lock_folder,
    refuse_inputs_as_outputs,
    refuse_link,
)
from semflow.io.video import shortfall_note
from semflow.pipeline import RunOptions, check_video
from semflow.run_summary import STAGES
from semflow.runstore import RUN_OUTPUTS, WORK_DIR, finished_summary

BATCH_JSON = "batch.json"
"""The batch's own file in its output folder, beside the clips' folders."""

INTERRUPTED = "the batch stopped before this clip was done; its finished pairs are kept for resume"
SUMMARY_SECONDS = 10.0
"""How often (at most) a running batch writes batch.json as it stands, its clips not done ``pending``."""


@dataclass
class InputResult:
    """How one clip of a batch went: ``status`` is ``ok``, ``failed`` (with a one-line ``error``) or, in
    ``batch.json`` of a batch left early, ``interrupted`` (``pending`` until then, as batch.json holds it
    while the batch runs); ``summary`` is its ``summary.json`` when ok.
    ``wall_seconds``: worker seconds spent on it in this batch; ``computed_pairs``: pairs computed in this
    batch (the rest were finished before); both count the tasks that came back: in a batch stopped early
    (Ctrl-C) not the pairs, nor the seconds, of the chunks it stopped (their finished pairs are kept, and
    ``--resume`` counts them as finished before); ``warnings``: what ``semflow run`` would warn about it (a
    truncated video, gaps in a folder's frame numbers)."""

    name: str
    input: str
    out_dir: str
    status: str = "pending"
    error: str | None = None
    pairs: int = 0
    computed_pairs: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The entry of this clip in ``batch.json`` (without its full summary)."""
        return {"name": self.name, "input": self.input, "out_dir": self.out_dir, "status": self.status,
                "error": self.error, "pairs": self.pairs, "computed_pairs": self.computed_pairs,
                "wall_seconds": self.wall_seconds, "stage_seconds": self.stage_seconds,
                "wall_seconds_per_pair": self.wall_seconds / self.computed_pairs if self.computed_pairs else None,
                "max_flow_px": self.summary["max_flow_px"] if self.summary else None,
                "truncated": self.summary.get("truncated") if self.summary else None,
                "warnings": list(self.warnings)}


def clip_notes(summary: dict[str, Any]) -> list[str]:
    """The warnings ``semflow run`` prints for a clip, from its ``summary.json``: a video that ended
    before the frame count its container declares, a folder whose frame numbers skip, a video whose
    keyframes decode damaged."""
    notes = []
    if summary.get("truncated"):
        notes.append(shortfall_note(summary.get("video"), summary.get("frames"), summary.get("frames_expected"),
                                    (summary.get("settings") or {}).get("max_frames")))
    notes += [str(summary[key]) for key in ("frame_gaps", "damaged_keyframes") if summary.get(key)]
    return notes


def batch_summary(results: list[InputResult], **head: Any) -> dict[str, Any]:
    """The content of ``batch.json``: ``head`` (method, workers, address, startup and wall seconds), the
    totals, the clips by status (``truncated`` names the clips whose video ended early) and every clip's
    entry."""
    computed = sum(r.computed_pairs for r in results)
    wall = head.get("wall_seconds", 0.0)
    return {
        **head,
        "pairs": sum(r.pairs for r in results),
        "computed_pairs": computed,
        "pairs_per_second": computed / wall if wall > 0 else None,
        "ok": sum(r.status == "ok" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "interrupted": sum(r.status == "interrupted" for r in results),
        "pending": sum(r.status == "pending" for r in results),
        "truncated": [r.name for r in results if r.summary and r.summary.get("truncated")],
        "inputs": [r.as_json() for r in results],
    }


@dataclass
class ClipState:
    """What the driver keeps about one clip while its batch runs."""

    item: BatchInput
    result: InputResult
    order: int = 0
    """Its place among the batch's clips (the order of its tasks)."""
    retried: set[Chunk] = field(default_factory=set)
    """Its chunks sent again once after their worker died (a second death fails the clip)."""
    chunks: collections.deque = field(default_factory=collections.deque)
    running: int = 0
    single_pass: bool = False
    drawing: bool = False
    prepared: bool = False
    """Checked (:func:`check_clip`): done once per clip."""
    opened: bool = False
    """Its folder opened (:func:`open_clip`), or tried: done once per clip (a second time would clear what
    it finished)."""
    estimate: int = 0
    """Its pairs, as checked: what it adds to the pairs bar's total."""
    counted: int = 0
    """Its pairs the pairs bar has counted done (:func:`semflow.batch.answers.count_pairs`)."""
    planned: int = 0
    """Its chunks left to compute, as checked: what it asks of the workers before it is opened."""
    folder: OutputFolder | None = None
    """The clip's output folder, locked by the driver from its opening until its result is known and none
    of its tasks runs."""
    created: bool = False
    """Its output folder was made by this batch (it did not exist when the clip was checked)."""

    def release(self) -> None:
        """Unlock the clip's output folder (its result is known and none of its tasks runs, or the batch
        stopped). A folder this batch made for a clip that failed or was interrupted before any of its work
        was written, with none of its tasks running, goes again (an interrupted batch left one, empty but for
        its work folder's manifest, for every clip it had not started)."""
        if self.folder is not None:
            self.folder.__exit__(None, None, None)
            self.folder = None
        if self.created and self.result.status in ("failed", "interrupted") and not self.running:
            self.created = False
            remove_if_untouched(Path(self.result.out_dir))


def remove_if_untouched(out: Path) -> None:
    """Delete ``out`` when it holds only its work folder and that only the manifest: a clip's folder that
    nothing was written to. Under the folder's lock (one another command holds is left alone), through
    descriptors that follow no link."""
    try:
        if out.is_symlink():
            return
        fd = lock_folder(out)
    except (OutputError, OSError):
        return
    try:
        work = os.open(WORK_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        try:
            if os.listdir(fd) != [WORK_DIR] or os.listdir(work) != [MANIFEST_NAME]:
                return
            os.unlink(MANIFEST_NAME, dir_fd=work)
        finally:
            os.close(work)
        os.rmdir(WORK_DIR, dir_fd=fd)
        os.rmdir(out)
    except OSError:
        pass  # (something came in meanwhile, or cannot be removed: left as it is)
    finally:
        os.close(fd)


def check_clip(clip: ClipState, root: Path, options: RunOptions, chunk_pairs: int) -> Prepared:
    """Check the clip and its output folder below ``root``, keeping no file open: its finished summary
    (``resume``), or its estimated pairs and the chunks still to compute (with ``resume`` as its work
    folder says, read unlocked: :func:`open_clip` settles them). Raises SemflowError or OSError for a clip
    that cannot be run."""
    out, done = _finished_or_allowed(clip, root, options)
    if done is not None:
        return done
    with descriptors_named(clip.item.path):
        source, _ = check_video(clip.item.path, options)  # a bad clip leaves no folder behind
        clip.created = clip.created or not os.path.lexists(out)
        # Locked and let go at once: a folder another command holds, or a link in it, is refused now; a
        # fresh batch clears what the previous run there listed now (a batch stopped early leaves no
        # earlier outputs that a resumed one would take for an earlier run's), as it always did.
        with OutputFolder(out, fresh=not options.resume, work=WORK_DIR, reserved=RUN_OUTPUTS):
            pass
    estimate = max(len(source) - 1, 1)
    if options.max_flow is not None:
        return Prepared([Chunk(0, None)], estimate, single_pass=True)
    return Prepared(chunks_left(out, options, estimate, chunk_pairs), estimate)


def open_clip(clip: ClipState, root: Path, options: RunOptions, chunk_pairs: int, warmup: int = 0) -> Prepared:
    """Check the clip again and open its output folder below ``root`` (``clip.folder``, locked), or find
    it finished (``resume``); the chunks still to compute (of ``chunk_pairs`` pairs, each after ``warmup``).
    Raises SemflowError or OSError for a clip that cannot be run."""
    # Locked and link-checked as `semflow run` does: a fresh batch first deletes only what the
    # previous run or batch there listed; another run into the folder is refused meanwhile.
    out, done = _finished_or_allowed(clip, root, options)
    if done is not None:
        return done
    with descriptors_named(clip.item.path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SemflowWarning)  # (check_clip said the video's; not the store's below)
            checked = check_video(clip.item.path, options)
        clip.folder = OutputFolder(out, fresh=not options.resume, work=WORK_DIR, reserved=RUN_OUTPUTS)
        clip.folder.__enter__()
        return prepare_clip(clip.item.path, out, options, chunk_pairs, clip.folder, checked, warmup)


def _finished_or_allowed(clip: ClipState, root: Path, options: RunOptions) -> tuple[Path, Prepared | None]:
    """The clip's output folder, never a link, and with ``resume`` its finished summary as a Prepared with
    nothing left to do (checked before any lock, which starts a work folder); else the folder's path checked:
    not the clip itself. (The link first: looking for a finished run deletes what a killed one left.)"""
    out = Path(clip.result.out_dir)
    refuse_link(out, root)  # DIR/NAME is the batch's to make: never a link someone left there
    done = finished_summary(out, options.fingerprint(clip.item.path)) if options.resume else None
    if done is not None:
        return out, Prepared([], done["pairs"], done)
    refuse_inputs_as_outputs([clip.item.path], [out])  # a clip's folder named as its own output
    return out, None


@contextlib.contextmanager
def descriptors_named(path: Path) -> Iterator[None]:
    """A failure in the block that came of the process's limit of open files is a ResourceError saying so
    (OpenCV cannot tell a video it had no descriptor for from an unreadable one: "not a readable video")."""
    try:
        yield
    except (InputError, OSError) as exc:
        if getattr(exc, "errno", None) != errno.EMFILE and not (isinstance(exc, InputError) and out_of_descriptors()):
            raise
        raise too_many_open_files(path) from exc


class BatchFolder:
    """A batch's output folder: its own outputs checked before any work, and locked while the batch is
    open, as ``semflow run`` locks its folder, so that a second batch into it is refused in one line
    instead of racing this one over batch.json. The clips' folders below are locked on their own (other
    folders: the two locks never wait on each other)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._created = False

    def check(self) -> None:
        """OutputError unless the folder can be a folder and batch.json a file (a folder in its place
        failed only after every clip had been computed)."""
        check_outputs(folders=[self.path])
        check_outputs(files=[self.path / BATCH_JSON])

    def lock(self) -> None:
        """Create the folder where missing and lock it (again after :meth:`unlock`); OutputError when
        another semflow command holds it."""
        if self._fd is None:
            self._created = not os.path.lexists(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                self._fd = lock_folder(self.path)
            except BaseException:
                self.unlock()
                raise

    def unlock(self) -> None:
        """Release the lock; a folder this created and left empty (the batch stopped first) goes again."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
        if self._created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # (only when empty)
            self._created = False


MAX_RECORD_BYTES = 1 << 20
"""A clip's state.json or summary.json larger than this is not read for its video's name (not semflow's)."""


def earlier_names(out_dir: Path) -> dict[str, str]:
    """The clip folders an earlier run or batch left in ``out_dir``, by the clip they hold (the resolved
    path its work folder's state or its summary records): a resumed batch gives each clip its own folder
    again, whatever order its inputs come in now (two clips named ``clip`` took ``clip`` and ``clip-2`` in
    the order given)."""
    names: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for folder in sorted(out_dir.iterdir()):
            if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
                continue
            for record, keys in ((folder / WORK_DIR / "state.json", ("fingerprint", "video")),
                                 (folder / "summary.json", ("settings", "video"))):
                video = _recorded(record, keys)
                if video is not None:
                    names.setdefault(video, folder.name)
                    break
    return names


def _recorded(path: Path, keys: tuple[str, str]) -> str | None:
    """``data[keys[0]][keys[1]]`` of the JSON file ``path`` when it is a string, else None."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_RECORD_BYTES:
            return None
        data = loads_untrusted(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    value = data.get(keys[0]) if isinstance(data, dict) else None
    value = value.get(keys[1]) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None
