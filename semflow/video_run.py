"""Video mode for ``semflow run``: the state carried through the pair loop, saved for ``--resume``.

After a pair that is finished on its own (its record written: kept in the exact cache, a .flo file,
or not at all) the state goes to ``.semflow-work/video_state.npz`` (only the newest; after the first
pair, then at most every :data:`~semflow.state_chain.STATE_INTERVAL` seconds); the pairs kept in
the intermediate are finished with their segment, whose last pair's state goes to
``.semflow-work/checkpoint/video_state.npz`` (:class:`semflow.state_chain.StateChain`), as does the state
before the first pair past the exact cache (a clip longer than its frame count said), which the drawing
computes again from it. The per-frame work that the frame alone gives back is left out (see
:mod:`semflow.video_state`). A resumed run that starts at pair m restores the state saved after pair m-1; when that file is missing or
older (the run stopped between writing a flow and its state), the pairs from the saved state (or from
the video's start) up to m-1 are computed again without writing anything: a warm-up that ends in the
very state the interrupted run had, so the resumed flows are those of an uninterrupted run.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from semflow.baseline.base import FlowMethod
from semflow.io.atomic import write_bytes_atomic
from semflow.io.npyfile import read_npz
from semflow.io.video import FrameSource
from semflow.video_state import VideoState, fits, restore, snapshot

STATE_FILE = "video_state.npz"


class VideoStateStore:
    """The saved state of a video run in ``work_dir`` (the run's work folder)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / STATE_FILE

    def save(self, index: int, state: VideoState) -> None:
        """Save the state after pair ``index`` (atomically; replaces the older one)."""
        arrays = snapshot(state)
        arrays["index"] = np.array(index)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, buffer.getbuffer())

    def load(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """(pair index, arrays) of the saved state, or None (no file, or one that cannot be read)."""
        if not self.path.is_file():
            return None
        try:
            arrays = read_npz(self.path)  # (only what np.savez writes: no deflated entry inflated)
            return int(arrays.pop("index")), arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None


def state_before(pair: int, method: FlowMethod, store: VideoStateStore | None, source: FrameSource,
                 origin: int = 0) -> VideoState:
    """The video state with which pair ``pair`` (frames ``pair``, ``pair + 1``) is computed by a chain that
    started afresh at pair ``origin`` (a run's: 0; a batch chunk's: its first pair less its warm-up): the
    empty state for pair ``origin``, else the saved one if it was saved after pair ``pair - 1``, else the
    one a warm-up from the saved state (or from frame ``origin``) reaches. ``store`` None: nothing saved. A
    saved state not of the size of the frame it ended on (:func:`~semflow.video_state.fits`) is damaged:
    the warm-up then starts at frame ``origin``."""
    state, start = VideoState(), origin
    saved = store.load() if pair > origin and store is not None else None
    if saved is not None and origin <= saved[0] < pair:
        restored = restore(saved[1], None, method.state_parts())
        if restored is not None:
            state, start = restored, saved[0] + 1
    if pair <= origin:
        return state
    previous = None
    for index, frame in enumerate(source.frames(start), start):  # (from the saved state's frame on)
        if index == start and state.pairs > 0:
            if not fits(state, frame):  # a saved state of other frames: damaged, warm up from the start
                return state_before(pair, method, None, source, origin)
            state.frame = frame  # the saved state ended on this frame
        elif start < index <= pair:
            if hasattr(method, "seek"):  # as the run does: methods that read given per-frame masks
                method.seek(index - 1)
            state = method.estimate(previous, frame, state=state).state
        if index >= pair:
            break
        previous = frame
    return state
