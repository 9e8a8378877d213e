"""What a video run keeps on disk between computing its pairs and drawing them.

A run draws every frame of its videos under one colour normaliser, the largest of the pairs' 99th
magnitude percentiles (``viz.max_flow_of`` of each flow, and of the baseline flow a semantic method
reports). That number is known exactly after pass 1 from a small record per pair, computed from the
float32 flow the method returned; so a resumed run, or a batch that computed the pairs in chunks on
several machines, gets the very same normaliser as one uninterrupted run.

Drawing needs the flows themselves once more. Where they come from (:attr:`RunStore.render_from`):

- ``cache``: the exact float32 flows (and the panel's extras) kept in the work folder, when the whole
  clip fits ``CACHE_BUDGET_BYTES`` in the worst case (decided once, before pass 1, from the frame size
  and the clip's frame count, and kept on resume): the frames are then exactly those of the flows;
- ``intermediate``: for a longer clip, the flows coded without a normaliser in short H.264 videos
  (:mod:`semflow.flowvideo`) whose bit rate is the same budget over the clip's pairs, so the work folder
  stays under it; drawing decodes them, computing nothing again (colours within a few grey levels of exact drawing,
  up to 64 where flow as long as the normaliser rounds past it, darker by a quarter: 0.1-0.2 % of pixels);
- ``flo``: the ``DIR/flo/NNNNNN.flo`` files the user asked for (``--save-flo``), when the method reports
  no extras (exact);
- ``recompute``: the fallback: the method runs again on the pair while it is drawn (a pair the cache
  or the intermediate could not hold: a clip longer than its frame count said, a budget spent, a
  budget of 0).

Layout of ``DIR/.semflow-work``: ``state.json`` (the settings, the render source),
``pairs/*.jsonl`` (the pair records, :mod:`semflow.pair_records`: one JSON line a finished pair, appended
after its cache entries and before its .flo file; one file a writer, so a record costs its size, a few
hundred bytes, not a file-system block), ``video_state.npz`` and ``checkpoint/`` (the video state:
:mod:`semflow.video_run`), ``end.json`` (the number of pairs and the last frame's timestamp once the end of the video was seen), ``cache/`` (flows,
baseline flows, segmentations), ``intermediate/`` (segment videos of up to ``SEGMENT_PAIRS`` pairs,
each under its final name once complete; a pair kept in a segment that was never completed, by an
interrupted run, is not finished and is computed again).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from semflow import flowvideo
from semflow.errors import InputError, warn
from semflow.flow_segments import Segments
from semflow.io.atomic import discard_folder, discard_leftovers, write_text_atomic
from semflow.io.flow import read_flo, save_npy, write_flo
from semflow.io.images import read_image
from semflow.io.jsonfile import loads_untrusted
from semflow.io.outputs import RUN_NAMES, OutputFolder
from semflow.pair_records import PairRecord, RecordLog, RecordTable, flo_whole, normaliser, read_cached
from semflow.run_outputs_check import missing_output, refuse_other_chunks, refuse_other_settings

__all__ = ["CACHE_BUDGET_BYTES", "RUN_OUTPUTS", "WORK_DIR", "PairRecord", "RecordTable", "RunStore", "cache_pairs", "finished_summary",
           "normaliser", "open_store", "pair_name", "reopen_store"]

WORK_DIR = ".semflow-work"
RUN_OUTPUTS = ("flo", "flow.mp4", "panel.mp4", "plot.png", "summary.json")
"""What a run writes below its output folder besides its work folder: checked for links before any work."""
CACHE_BUDGET_BYTES = 512 << 20
"""Most bytes the flows a clip keeps for drawing may take (exact cache, else the intermediate)."""
MIN_INTERMEDIATE_BYTES = 256
"""A clip whose intermediate would get fewer bytes a pair than this keeps no flows (pass 2 computes them
again, as with ``--cache-mb 0``): a container claiming 2**31 frames had FFmpeg asked for 36 bits a second."""
INTERMEDIATE_SHARE = 0.9
"""The share of the budget the intermediate may take: the rest is meant for the pair records' and the
video state's files, which are not held to it (an hour of 1080p, measured by ``scripts/bench_batch.py --disk-only``: 0.48 GB
intermediate + 0.03-0.05 GB records (240-440 bytes a pair) + 0.05-0.18 GB video states (3 files of
17 MB for dis-medium, 58 MB for semantic) = 0.56-0.70 GB, under 1 GB)."""
CACHE_BYTES_PER_PIXEL = 8 + 8 + 3
"""Worst case per pixel and pair: the flow and a baseline flow in float32, a segmentation in RGB."""
RENDER_SOURCES = ("cache", "intermediate", "flo", "recompute")
"""Where a pair drawn takes its flows (:attr:`RunStore.render_from`), in the order named."""


def pair_name(index: int) -> str:
    """``NNNNNN``: the file stem of pair ``index`` (frames index -> index + 1)."""
    return f"{index:06d}"


def cache_pairs(frame_shape: tuple[int, ...], budget: int = CACHE_BUDGET_BYTES) -> int:
    """How many pairs of frames of ``frame_shape`` (H, W, ...) the cache budget (bytes) holds, worst case."""
    return int(budget // (frame_shape[0] * frame_shape[1] * CACHE_BYTES_PER_PIXEL))


class RunStore:
    """The work folder of one output folder: pair records, the end marker, the flow cache and the intermediate
    (``per_pair``: its byte budget per pair; 0: none); ``frame_shape``: the video's frames' (None: not known)."""

    def __init__(self, out_dir: str | Path, save_flo: bool, cache_pairs: int, folder: OutputFolder | None = None,
                 *, per_pair: float = 0.0, budget: int = 0, frame_shape: tuple[int, ...] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.work = self.out_dir / WORK_DIR
        self.save_flo = save_flo
        self.cache_pairs = cache_pairs
        self.per_pair, self.budget, self.frame_shape = per_pair, budget, frame_shape
        self.palette: np.ndarray | None = None
        """Colours a decoded segmentation is snapped to (the segmenter's palette), when known."""
        self._segments = Segments(self.work / "intermediate")
        self._records = RecordLog(self.work / "pairs")
        self._writer: flowvideo.SegmentWriter | None = None
        self._drawn_from: set[str] = set()  # where load() took the flows (render_from)
        self.flo_dir = self.out_dir / "flo"
        self.folder = folder
        """The locked :class:`~semflow.io.outputs.OutputFolder` of a ``semflow run`` (None in a batch,
        whose chunks write one folder from several workers): what the run writes is claimed in it."""
        if folder is not None and save_flo and not self.flo_dir.exists():
            folder.claim("flo/")

    def written(self, pairs: int) -> list[str]:
        """What the run wrote, as its output folder's manifest lists it; for a batch clip (no folder: its
        chunks are written by several workers) what a run of it writes, in the order a run writes it."""
        return self.folder.written() if self.folder is not None else self.outputs(pairs)

    def outputs(self, pairs: int) -> list[str]:
        """What a run of a clip of ``pairs`` pairs writes, in the order a run writes it."""
        flo = ["flo/", *(f"flo/{pair_name(i)}.flo" for i in range(pairs))] if self.save_flo else []
        return [*flo, "flow.mp4", "panel.mp4", "plot.png", "summary.json"]

    def claim(self, relative: str) -> Path:
        """The path of output ``relative``, recorded in the run's manifest first when there is one."""
        return self.folder.claim(relative) if self.folder is not None else self.out_dir / relative

    # --- pass 1 ---------------------------------------------------------------------------------

    def has(self, index: int) -> bool:
        """Whether pair ``index`` is finished: its record is there, with ``save_flo`` its .flo file (written last,
        so that every .flo file belongs to a finished pair; one whose header does not fit its size or declares
        another size than ``frame_shape``: damaged), and a pair kept in the intermediate is in a completed segment."""
        record = self._records.get(index)
        if record is None or (self.save_flo and not flo_whole(self._flo_path(index), self.frame_shape)):
            return False
        # (a pair kept elsewhere is not looked for: each miss lists the intermediate's folder again)
        return record.kept != "intermediate" or not self.per_pair or index < self.cache_pairs \
            or self._segments.find(index) is not None

    def save_flows(self, index: int, flow: np.ndarray, extras: dict[str, np.ndarray]) -> str:
        """Keep pair ``index``'s flows for drawing: in the cache (one of the first ``cache_pairs``), else
        in the intermediate's open segment (while the budget holds it). Returns where (``cache``,
        ``flo``, ``intermediate`` or ``none``: it will be computed again to be drawn)."""
        if index < self.cache_pairs:
            self._save_npy(self._cache_path(index, "flow", ".npy"), flow)
            if "baseline_flow" in extras:
                self._save_npy(self._cache_path(index, "baseline", ".npy"), extras["baseline_flow"])
            if "segmentation_rgb" in extras:  # raw: a PNG costs 10 ms a pair to write and read at 960x540
                save_npy(self._cache_path(index, "segmentation", ".npy"), np.asarray(extras["segmentation_rgb"], np.uint8))
            return "cache"
        if self.save_flo and not extras:
            return "flo"
        if not self.per_pair:
            return "none"
        flows = (flow, extras.get("segmentation_rgb"), extras.get("baseline_flow"))
        writer = self._writer
        if writer is not None and (index != writer.first + writer.count or writer.tiles != flowvideo.layout(flows)
                                   or writer.shape != flow.shape[:2]):
            self.close_segment()
        if self._writer is None:
            coded = flowvideo.pair_bytes(flow.shape[:2], flowvideo.layout(flows), self.per_pair)
            limit = flowvideo.segment_pairs(self.budget - self._segments.bytes(), coded)
            if not limit:
                return "none"  # the budget is spent: this pair is computed again to be drawn
            self._writer = flowvideo.SegmentWriter(self._segments.folder, index, flow.shape[:2],
                                                   flowvideo.layout(flows), self.per_pair, limit)
        self._writer.add(flows)
        if self._writer.written() > flowvideo.segment_worst_bytes(self._writer.limit, self._writer.per_pair):
            self._writer.limit = self._writer.count  # outgrowing its share (content the codec cannot shrink)
        return "intermediate"

    def segment_full(self) -> bool:
        """Whether the open segment is full (time to :meth:`close_segment`)."""
        return self._writer is not None and self._writer.count >= self._writer.limit

    def open_segment_last(self) -> int | None:
        """The last pair in the open segment, or None when none is open."""
        return None if self._writer is None else self._writer.first + self._writer.count - 1

    def close_segment(self) -> bool:
        """Complete the open segment (its pairs become finished); returns whether one was open."""
        writer, self._writer = self._writer, None
        if writer is None:
            return False
        others = self._segments.bytes()  # the finished segments, before this one joins them
        path = writer.close()
        if others + path.stat().st_size > self.budget:
            self._segments.remove(path)  # over the budget after all: its pairs are computed again to be drawn
            return False
        self._segments.add(path)
        return True

    @contextlib.contextmanager
    def pass_scope(self, checkpoint: Callable[[int], None]) -> Iterator[None]:
        """Around a pass 1: when it ends, complete the intermediate's open segment (then ``checkpoint(last
        pair)``: keep the video state there), when it fails drop it; either way close its record file."""
        try:
            yield
        except BaseException:
            self.abandon_segment()
            raise
        finally:
            self.end_pass()
        last = self.open_segment_last()
        if self.close_segment() and last is not None:
            checkpoint(last)

    def abandon_segment(self) -> None:
        """Drop the open segment (an interrupted pass: its pairs are computed again on resume)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abandon()

    def save_record(self, record: PairRecord, flow: np.ndarray) -> None:
        """Write the record of a pair whose cache entries are kept, then its .flo file (``save_flo``):
        from now on the pair counts as finished."""
        self._records.append(record)
        if self.save_flo:
            write_flo(self.claim(f"flo/{pair_name(record.index)}.flo"), flow)

    def record(self, index: int) -> PairRecord:
        """The record of a finished pair."""
        record = self._records.get(index, refresh=True)
        if record is None:
            raise InputError(f"{self.out_dir}: the record of pair {index} is missing or damaged")
        return record

    def recorded(self) -> list[int]:
        """The pairs that have a record (finished, or kept in a segment that is not complete yet)."""
        return self._records.indices()

    def end_pass(self) -> None:
        """Close this pass's record file (what it appended stays; a later pass writes its own)."""
        self._records.close()

    def records(self, pairs: int) -> RecordTable:
        """The records of pairs ``0 .. pairs - 1``, all of which must be finished."""
        table = self._records.table(pairs)
        if isinstance(table, int):
            raise InputError(f"{self.out_dir}: the record of pair {table} is missing or damaged")
        return table

    def mark_end(self, pairs: int, seconds: float | None = None) -> None:
        """Note that the video has ``pairs`` pairs (its last frame was read; ``seconds``: that frame's timestamp)."""
        write_text_atomic(self.work / "end.json", json.dumps({"pairs": pairs, "seconds": seconds}))

    def end(self) -> tuple[int | None, float | None]:
        """(the number of pairs, the timestamp in seconds of the last frame) once some pass has read the video to
        its end (the timestamp None where it was not told); else (None, None)."""
        try:  # a damaged marker counts as missing: pass 1 reads the video to its end again
            marker = loads_untrusted((self.work / "end.json").read_text())
            pairs, seconds = marker["pairs"], marker.get("seconds")
        except (OSError, ValueError, TypeError, KeyError):
            return None, None
        seconds = float(seconds) if type(seconds) in (int, float) and math.isfinite(seconds) else None
        return (pairs, seconds) if type(pairs) is int and pairs >= 0 else (None, None)

    # --- pass 2 ---------------------------------------------------------------------------------

    @property
    def render_from(self) -> str:
        """Where :meth:`load` took the flows drawn so far: ``cache``, ``intermediate``, ``flo`` or ``recompute``
        (see the module docstring), ``A+B`` when pairs came from several."""
        return "+".join(source for source in RENDER_SOURCES if source in self._drawn_from) or "recompute"

    def load(self, record: PairRecord, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
        """(flow, segmentation RGB or None, baseline flow or None) of a finished pair of frames of ``shape`` (H, W, ...), or None
        (computed again): not kept, or not of that size (damaged). The intermediate's are decoded, asked for in order."""
        index, kept, source = record.index, None, "recompute"
        if index >= self.cache_pairs and not (self.save_flo and not record.extras) and self.per_pair:
            if record.kept != "none":  # (none: the intermediate had no room for it)
                kept, source = self._segments.read(index, self.palette), "intermediate"
        elif index < self.cache_pairs and (kept := self._cached(record)) is not None:
            source = "cache"
        elif self.save_flo and not record.extras:  # (a pair with extras: its .flo file holds the flow alone)
            kept, source = (read_flo(self._flo_path(index))[0], None, None), "flo"
        kept = kept if kept is not None and kept[0].shape[:2] == tuple(shape[:2]) else None  # (another size: damaged)
        self._drawn_from.add(source if kept is not None else "recompute")
        return kept

    def _cached(self, record: PairRecord) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
        """The cache entries of a pair, or None when one it needs is missing or damaged (the pair is then
        read from its .flo file or computed again, as an uninterrupted run computed it)."""
        seg_path = self._cache_path(record.index, "segmentation", ".npy")
        old_seg = seg_path.with_suffix(".png")  # the cache of a run made before 2026-11-30
        base_path = self._cache_path(record.index, "baseline", ".npy")
        try:
            flow = read_cached(self._cache_path(record.index, "flow", ".npy"), np.float32, 2)
            seg = read_cached(seg_path, np.uint8, 3) if seg_path.exists() else read_image(old_seg) if old_seg.exists() else None
            base = read_cached(base_path, np.float32, 2) if base_path.exists() else None
        except (OSError, ValueError, EOFError, InputError):
            return None
        needed = [("segmentation_rgb" in record.extras, seg), ("baseline_flow" in record.extras, base)]
        ok = all((a is not None or not want) and (a is None or a.shape[:2] == flow.shape[:2]) for want, a in needed)
        return (flow, seg, base) if ok else None

    def cleanup(self) -> None:
        """Delete the work folder (after the outputs are written), never through a link, as one step
        (:func:`~semflow.io.atomic.discard_folder`): a run killed meanwhile is finished, or resumable as it was."""
        self._segments.stop()
        self._records.close()
        if self.folder is not None:
            self.folder.remove_tree(WORK_DIR)
        else:
            discard_folder(self.work)

    # --- paths ----------------------------------------------------------------------------------

    def _flo_path(self, index: int) -> Path:
        return self.flo_dir / f"{pair_name(index)}.flo"

    def _cache_path(self, index: int, key: str, ext: str) -> Path:
        return self.work / "cache" / key / f"{pair_name(index)}{ext}"

    @staticmethod
    def _save_npy(path: Path, array: np.ndarray) -> None:
        save_npy(path, np.asarray(array, np.float32))  # (a full disk: one line naming the file)


def _read_state(out_dir: Path) -> dict[str, Any]:
    """The ``state.json`` of ``out_dir``'s work folder, checked; InputError when it is damaged (it holds the
    settings the kept pairs were computed with, so they cannot be trusted without it)."""
    try:
        state = loads_untrusted((out_dir / WORK_DIR / "state.json").read_text())
        numbers = [state.get(key, 0) for key in ("cache_pairs", "budget", "intermediate_per_pair")]
    except PermissionError as exc:  # (not damaged: running it again without --resume would lose the pairs)
        raise InputError(f"{exc.filename}: cannot read the work folder's state: {exc.strerror}") from None
    except (OSError, ValueError, AttributeError):
        state, numbers = None, []
    if not (numbers and isinstance(state.get("fingerprint", {}), dict) and type(numbers[2]) in (int, float)
            and all(type(n) is int for n in numbers[:2]) and all(math.isfinite(n) and n >= 0 for n in numbers)):
        raise InputError(f"{out_dir}: cannot resume, its work folder is damaged ({WORK_DIR}/state.json);"
                         " run it again without --resume")
    return state


def _remove_pair_flos(flo_dir: Path) -> None:
    """Delete the ``NNNNNN.flo`` files an earlier run wrote; anything else the user keeps there stays."""
    if not flo_dir.is_dir():
        return
    for path in flo_dir.iterdir():
        if RUN_NAMES.match(f"flo/{path.name}") and path.is_file():
            path.unlink()
    with contextlib.suppress(OSError):
        flo_dir.rmdir()  # only if now empty


def open_store(out_dir: str | Path, fingerprint: dict[str, Any], *, resume: bool, save_flo: bool,
               frame_shape: tuple[int, ...], single_pass: bool = False,
               cache_budget: int = CACHE_BUDGET_BYTES, folder: OutputFolder | None = None,
               pairs_estimate: int = 0, chunks: list[int] | None = None) -> RunStore:
    """The store of ``out_dir`` for a run with ``fingerprint`` (the settings a resumed run must share).

    A fresh run forgets what an earlier one left (work folder, ``NNNNNN.flo``); a resumed one keeps it,
    refuses other settings and keeps the cache size it chose. ``frame_shape`` and ``cache_budget`` decide
    how many pairs are cached; a clip of more pairs (``pairs_estimate``, from its frame count) keeps all
    its pairs in the intermediate instead, ``INTERMEDIATE_SHARE * cache_budget / pairs_estimate`` bytes a pair; a
    ``single_pass`` run (``--max-flow``) keeps nothing. ``chunks``: a batch's ``[chunk_pairs, warmup_pairs]`` in
    video mode (None: one pass), kept, and compared when resumed (:func:`refuse_other_chunks`).
    """
    out_dir = Path(out_dir)
    state_path = out_dir / WORK_DIR / "state.json"
    if resume and not state_path.exists() and (out_dir / WORK_DIR / "pairs").is_dir():
        _read_state(out_dir)  # pairs kept without the settings they were computed with: damaged
    if resume and state_path.exists():
        previous = _read_state(out_dir)
        refuse_other_settings(out_dir, previous.get("fingerprint", {}), fingerprint)
        refuse_other_chunks(out_dir, previous.get("chunks"), chunks, pairs_estimate)
        if previous.get("budget") not in (None, int(INTERMEDIATE_SHARE * cache_budget)):  # (ignored silently)
            warn(f"{out_dir}: --cache-mb differs from the run this continues; its budget is kept"
                 f" ({previous['budget'] / INTERMEDIATE_SHARE / 2**20:.0f} MiB)")
        return reopen_store(out_dir, save_flo, folder, frame_shape)
    if not resume and folder is None:  # a locked folder has already removed what its previous run listed
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
        _remove_pair_flos(out_dir / "flo")
    cached = 0 if single_pass else cache_pairs(frame_shape, cache_budget)
    per_pair = 0.0
    if not single_pass and pairs_estimate > cached and cache_budget > 0:  # too long to cache: the intermediate
        cached, per_pair = 0, INTERMEDIATE_SHARE * cache_budget / pairs_estimate
        if per_pair < MIN_INTERMEDIATE_BYTES:  # no encoder codes a pair in so little: keep none, recompute
            least = math.ceil(MIN_INTERMEDIATE_BYTES * pairs_estimate / INTERMEDIATE_SHARE / 2**20)
            warn(f"{out_dir}: {cache_budget / 2**20:.4g} MiB (--cache-mb) over {pairs_estimate} pairs is {per_pair:.0f}"
                 f" bytes a pair, too few to keep the flows: drawing computes every pair again (--cache-mb {least}"
                 " keeps them; --max-flow draws in one pass)")
            per_pair = 0.0
    state = {"fingerprint": fingerprint, "cache_pairs": cached, "intermediate_per_pair": per_pair,
             "budget": int(INTERMEDIATE_SHARE * cache_budget), "chunks": chunks}
    write_text_atomic(state_path, json.dumps(state, indent=2))
    return RunStore(out_dir, save_flo, cached, folder, per_pair=per_pair, budget=state["budget"], frame_shape=frame_shape)


def reopen_store(out_dir: str | Path, save_flo: bool, folder: OutputFolder | None = None,
                 frame_shape: tuple[int, ...] | None = None) -> RunStore:
    """The store of ``out_dir`` as :func:`open_store` set it up (a batch worker's, a resumed run's)."""
    state = _read_state(Path(out_dir))
    return RunStore(out_dir, save_flo, int(state.get("cache_pairs", 0)), folder, frame_shape=frame_shape,
                    per_pair=float(state.get("intermediate_per_pair", 0.0)), budget=int(state.get("budget", 0)))


def finished_summary(out_dir: str | Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a run with ``fingerprint`` that already finished in ``out_dir`` (no work folder is
    left, every output it lists is there: :mod:`semflow.run_outputs_check`), else None: resuming it
    has nothing to do. One missing is warned about (the run is made again); a link in its place refused;
    other settings or a replaced video refused as for an interrupted run."""
    out_dir, path = Path(out_dir), Path(out_dir) / "summary.json"
    discard_leftovers(out_dir / WORK_DIR)  # (the work folder of a run killed while it deleted it)
    if (out_dir / WORK_DIR).exists() or not path.is_file():
        return None
    try:
        summary = loads_untrusted(path.read_text())
    except ValueError:
        return None
    outputs = summary.get("outputs") if isinstance(summary, dict) else None
    if not isinstance(outputs, dict):  # not semflow's
        return None
    refuse_other_settings(out_dir, summary.get("settings"), fingerprint)  # (it was made again afresh, silently)
    missing = missing_output(out_dir, summary)  # (a link in place of an output is refused here, before any work)
    if missing is not None:
        warn(f"{out_dir / missing}: missing or damaged; the finished run is computed again to write it")
    return summary if missing is None else None
