"""The interface every flow method implements, and the checks it runs on its input."""

from __future__ import annotations

import abc
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from semflow.errors import InputError, warn
from semflow.io.files import missing, require_file
from semflow.io.flow import check_flow, flow_file_shape, read_flow_valid, resize_flow
from semflow.io.images import to_rgb_uint8
from semflow.io.video import shrunk_to
from semflow.memory import check_memory
from semflow.options import MethodOptions
from semflow.video_state import VideoState, scene_cut


@dataclass
class FlowResult:
    """What a flow method returns for one frame pair.

    flow: float32 (H, W, 2), u then v in pixels, frame t -> t+1.
    confidence: optional float32 (H, W) in [0, 1]; higher means more trustworthy.
    extras: named intermediate maps (segmentation, model map, per-layer flows...) for ``--explain``.
    state: in video mode, the state to hand to the next pair (see :mod:`semflow.video_state`); None
      in pair mode.
    """

    flow: np.ndarray
    confidence: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    state: VideoState | None = None


def check_pair(img1: np.ndarray, img2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert both frames to uint8 RGB and check they have the same size."""
    a = to_rgb_uint8(img1, name="frame 1")
    b = to_rgb_uint8(img2, name="frame 2")
    if a.shape != b.shape:
        raise InputError(
            f"frame sizes differ: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}"
        )
    return a, b


class FlowMethod(abc.ABC):
    """A dense optical flow estimator: two uint8 RGB frames in, a :class:`FlowResult` out.

    Subclasses implement :meth:`_estimate`, which receives frames already checked by
    :func:`check_pair` (uint8 RGB, same size). A method that can use a given segmentation of frame 1
    sets ``uses_labels = True`` and takes ``labels`` (H, W) uint8 in :meth:`_estimate`; other methods
    ignore labels.

    Video mode: ``estimate(..., state=VideoState())`` for a video's first pair, then the returned
    ``result.state`` for the next. A method that carries work or memory from pair to pair overrides
    :meth:`_estimate_video`; the default computes the pair as in pair mode and carries only the flow.
    A pair that is a cut (:func:`~semflow.video_state.scene_cut`) starts from an empty state.
    """

    name: ClassVar[str] = ""
    uses_labels: ClassVar[bool] = False
    options: MethodOptions | None = None
    """The options it was built with, when :func:`semflow.methods.get_method` built it."""

    def estimate(self, img1: np.ndarray, img2: np.ndarray, *, labels: np.ndarray | None = None,
                 state: VideoState | None = None) -> FlowResult:
        """Flow from ``img1`` to ``img2`` (uint8 RGB or convertible, same size).

        ``labels``: an optional given segmentation of ``img1`` (H, W), used by methods that take one.
        ``state``: video mode (see the class docstring); None is pair mode.
        """
        a, b = check_pair(img1, img2)
        if state is None or (isinstance(state, VideoState) and state.pairs == 0):
            # Before a pair or a video's first pair, as the CLI does: frames too large for the memory
            # were killed by the OOM killer without an exception. (Not on later pairs: what the process
            # holds by then is not "available", and would refuse a video mid-way.)
            check_memory(self, *a.shape[:2], hint="give frames whose longer side is {side} px or less")
        kwargs = {}
        if labels is not None and self.uses_labels:
            labels = np.asarray(labels)
            if labels.ndim != 2:
                raise InputError(f"segmentation must be a label map (H, W) of class ids, got shape {labels.shape}")
            if labels.shape != a.shape[:2]:
                raise InputError(
                    f"segmentation size {labels.shape[1]}x{labels.shape[0]} differs from the frames'"
                    f" {a.shape[1]}x{a.shape[0]}"
                )
            kwargs["labels"] = labels
        if state is not None:
            if not isinstance(state, VideoState):  # ({} was "'dict' object has no attribute 'pairs'")
                raise InputError(f"state must be a VideoState (or None for pair mode), not {type(state).__name__}")
            cut = scene_cut(a, b)  # (a video's first pair too: a fade in from black carried its flow on)
            result = self._estimate_video(a, b, VideoState() if cut else state, **kwargs)
            if result.state is None:
                raise RuntimeError(f"{self.name}: video mode returned no state")
            result.state.cut = cut
        else:
            result = self._estimate(a, b, **kwargs)
        if result.flow.shape != (*a.shape[:2], 2):
            raise RuntimeError(f"{self.name}: returned flow of shape {result.flow.shape} for {a.shape}")
        result.flow = result.flow.astype(np.float32, copy=False)
        return result

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) float32 from ``img1`` to ``img2``."""
        return self.estimate(img1, img2).flow

    @abc.abstractmethod
    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult: ...

    def state_parts(self) -> dict[str, Any]:
        """Part name -> class of the memory this method keeps in a :class:`VideoState` (for resume)."""
        return {}

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState, **kwargs) -> FlowResult:
        """One pair of a video: by default the pair method, carrying only the frame and the flow."""
        result = self._estimate(img1, img2, **kwargs)
        result.state = state.advance(img2, result.flow.astype(np.float32, copy=False))
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def read_dense_flow(path: str | os.PathLike) -> np.ndarray:
    """A flow file (.flo, KITTI .png, .npy) as float32 (H, W, 2) px, for use as a baseline: every pixel
    must have a flow. NaN, inf, a corrupt file or unknown pixels (a sparse flow: .flo values beyond
    1e9, KITTI's valid bit 0) are an :class:`InputError` naming the path."""
    flow, valid = read_flow_valid(path)
    if not valid.all():
        raise InputError(f"{path}: {int((~valid).sum())} of {valid.size} pixels have no flow (unknown); a baseline "
                         "flow must be dense")
    return flow


class GivenFlow(FlowMethod):
    """A "method" that returns a flow computed already: semantic flow over a flow from elsewhere
    (``SemanticFlow(GivenFlow(read_flow("raft.flo")), ...)``), or a stored result used again.

    ``flow``: float32 (H, W, 2) px, frame t -> t+1 (checked: NaN, inf or a bad shape is an
    :class:`InputError`), or a :class:`FlowResult`, whose confidence and extras come along. ``name``: the
    name it reports; settings chosen by baseline name follow it (``thing_params_for("discrete")``).
    Every call returns a copy, for any frames of the flow's size; other sizes are an :class:`InputError`.
    """

    def __init__(self, flow: np.ndarray | FlowResult, *, name: str = "given") -> None:
        given = flow if isinstance(flow, FlowResult) else FlowResult(flow)
        confidence = None if given.confidence is None else np.array(given.confidence, copy=True)
        # Copies: the caller's arrays changed afterwards (NaN written into them) would bypass the check.
        self.result = FlowResult(check_flow(given.flow, name="given flow").copy(), confidence, dict(given.extras))
        self.name = name  # type: ignore[misc]  # an instance's name: the one it stands in for

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, frame_size: tuple[int, int],
                  size: tuple[int, int] | None = None, name: str = "given") -> GivenFlow:
        """The flow in ``path`` (.flo, KITTI .png, .npy) of the frames as given, ``frame_size`` (H, W), resampled
        to ``size`` (H, W) when the frames were shrunk (vectors scaled with them); or one of that shrunk size
        already (as :class:`GivenFlows` takes them: a flow computed at the same --max-side)."""
        size = tuple(size or frame_size)

        def refuse_unless_fits(shape: tuple[int, ...]) -> None:
            if shape[:2] not in (tuple(frame_size), size):
                shrunk = f" (or {size[1]}x{size[0]}, as shrunk)" if size != tuple(frame_size) else ""
                raise InputError(f"{path}: the flow is {shape[1]}x{shape[0]}, "
                                 f"the frames {frame_size[1]}x{frame_size[0]}{shrunk}")

        refuse_unless_fits(flow_file_shape(path) or size)  # its header first: another size is not decoded
        flow = read_dense_flow(path)
        refuse_unless_fits(flow.shape)
        return cls(resize_flow(flow, *size) if flow.shape[:2] != size else flow, name=name)

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **_: Any) -> FlowResult:
        r = self.result
        if img1.shape[:2] != r.flow.shape[:2]:
            h, w = img1.shape[:2]
            raise InputError(f"{self.name}: the given flow is {r.flow.shape[1]}x{r.flow.shape[0]}, the frames {w}x{h}")
        confidence = None if r.confidence is None else r.confidence.copy()
        return FlowResult(r.flow.copy(), confidence, dict(r.extras))


FLOW_SUFFIXES = (".flo", ".png", ".npy")
"""The flow files :class:`GivenFlows` reads, in the order it looks for them (then the same in capitals)."""
_NAMED_SUFFIXES = (*FLOW_SUFFIXES, *(suffix.upper() for suffix in FLOW_SUFFIXES))


class GivenFlows(FlowMethod):
    """A video's flows computed already, one file per pair: ``folder/NNNNNN.flo`` (or ``.png``, ``.npy``; in
    capitals too) for the pair that starts at frame NNNNNN, as ``semflow run --save-flo`` writes them; semantic flow
    over a whole video of flows from elsewhere (``--baseline-flows DIR``).

    The run says which pair comes next (:meth:`seek`); without it, pairs are taken in turn from 0, one per
    call that succeeds (a call that raises takes none: the same pair can be asked again). The count is
    the instance's: a second video, or a second pass, with the same instance starts with ``seek(0)`` (a
    fresh :class:`VideoState` does not say frame 0: a batch's chunk starts with one mid-video). A
    flow of the frames as given fits frames that ``--max-side`` shrank: it is resized with them
    (vectors scaled). A missing file, a corrupt one, NaN or inf, a flow of another size, or two files for
    one pair (``000000.flo`` and ``000000.npy``: checked for the whole folder at the start) is an
    :class:`InputError` naming the files; a pair missing before the folder's last is warned about at the
    start. ``name``: as :class:`GivenFlow`'s.
    """

    def __init__(self, folder: str | os.PathLike, *, name: str = "given") -> None:
        self.folder = Path(folder)
        if self.folder.is_file():
            raise InputError(f"{self.folder}: a file, not a folder: --baseline-flows takes a folder of flows, one a pair"
                             " (NNNNNN.flo, .png or .npy, as run --save-flo writes them in OUT/flo); for one image"
                             " pair, flow --baseline-flow FILE")
        if not self.folder.is_dir():
            raise missing(self.folder, "folder of flows") if not self.folder.exists() else InputError(
                f"{self.folder}: not a folder of flows")
        self.name = name  # type: ignore[misc]  # an instance's name: the one it stands in for
        self._index = 0
        try:
            with os.scandir(self.folder) as entries:
                names = [entry.name for entry in entries if entry.is_file()]
        except OSError as exc:
            raise InputError(f"{self.folder}: cannot list the folder of flows ({exc.strerror})") from None
        stems = Counter(name[:-4] for name in names if name[-4:] in _NAMED_SUFFIXES
                        and name[:-4].isascii() and name[:-4].isdigit() and name[:-4] == f"{int(name[:-4]):06d}")
        doubled = [int(stem) for stem, count in stems.items() if count > 1]
        if doubled:
            self.path_for(min(doubled))  # raises, naming the files
        held = sorted(int(stem) for stem in stems)  # (gaps counted, not listed: 99999999999999.flo is one file)
        if held and held[-1] >= len(held):  # said now, not hours in
            first = next(i for i, stem in enumerate(held) if stem != i)
            warn(f"{self.folder}: no flow for the pair at frame {first} ({held[-1] + 1 - len(held)} missing before"
                 f" {held[-1]:06d}, the last): a run stops there, to be resumed once it is added")

    def seek(self, frame_index: int) -> None:
        """Say which video frame the next pair starts at."""
        self._index = int(frame_index)

    def tell(self) -> int:
        """The video frame the next pair starts at."""
        return self._index

    def path_for(self, index: int) -> Path:
        """The flow file of the pair that starts at frame ``index``; two or more of them are an error."""
        paths = [self.folder / f"{index:06d}{suffix}" for suffix in _NAMED_SUFFIXES]
        if odd := [path for path in paths if os.path.lexists(path) and not path.is_file()]:
            require_file(odd[0])  # raises: names what it is (no such file: a dangling link; not a file)
        # One file each: on a folder that ignores case, 000000.flo and 000000.FLO are the same file.
        paths = list({(info.st_dev, info.st_ino): path for path in paths if path.is_file()
                      for info in [path.stat()]}.values())
        if len(paths) > 1:
            names = [path.name for path in paths]
            both = f"both {names[0]} and {names[1]}" if len(names) == 2 else f"{', '.join(names[:-1])} and {names[-1]}"
            raise InputError(f"{self.folder}: holds {both} for the pair at frame {index}; keep one")
        if paths:
            return paths[0]
        raise InputError(f"{self.folder}: no flow for the pair at frame {index} (expected {index:06d}.flo, "
                         ".png or .npy)")

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **_: Any) -> FlowResult:
        path = self.path_for(self._index)
        height, width = img1.shape[:2]

        def refuse_unless_fits(shape: tuple[int, ...]) -> None:
            if shape[:2] != (height, width) and not shrunk_to(shape, (height, width)):
                raise InputError(f"{path}: the flow is {shape[1]}x{shape[0]}, the frames {width}x{height}")

        refuse_unless_fits(flow_file_shape(path) or (height, width))  # its header first: another size is not decoded
        flow = read_dense_flow(path)
        refuse_unless_fits(flow.shape)
        flow = resize_flow(flow, height, width)  # (itself when it has the frames' size)
        self._index += 1  # only now: a call that raises takes no pair
        return FlowResult(flow)

    def __repr__(self) -> str:
        return f"GivenFlows({str(self.folder)!r})"


@contextmanager
def rewound_on_error(method: FlowMethod) -> Iterator[None]:
    """Run the block; if it raises, seek ``method`` back to the pair it was at when the block began, when it
    reads its pairs in call order (has ``tell`` and ``seek``, as :class:`GivenFlows`): a method that runs it
    and then fails consumes no pair of it."""
    at = method.tell() if hasattr(method, "tell") and hasattr(method, "seek") else None
    try:
        yield
    except BaseException:
        if at is not None:
            method.seek(at)
        raise
