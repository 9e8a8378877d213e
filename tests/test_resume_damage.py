"""``semflow run --resume`` after its work folder was damaged, and video mode on very thin frames.

A damaged file that can be made again (a cache entry, the saved video state, a kept .flo file) counts
as missing: the resumed run writes byte for byte what an uninterrupted run writes. A damaged
``state.json`` (the settings the kept pairs were computed with) is one error line: run again afresh.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import failing_at_pair, moving_frames

import semflow.state_chain as state_chain
from semflow.errors import InputError
from semflow.io.images import write_image
from semflow.pipeline import WORK_DIR, RunOptions, run_video
from semflow.video_state import VideoState, scene_cut

OUTPUTS = ["flow.mp4", "panel.mp4"] + [f"flo/{i:06d}.flo" for i in range(6)]


def interrupted(make_frames, tmp_path: Path, name: str = "dis-fast", **options) -> tuple[Path, Path, Path]:
    """(frames, an uninterrupted run's folder, a run's folder interrupted at pair 4) of 7 frames."""
    folder = make_frames(7, 40, 56)
    run_video(folder, tmp_path / "full", RunOptions(method=name, save_flo=True, method_options=options))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="pair 4"):
        run_video(folder, out, RunOptions(method=name, save_flo=True, method_options=options),
                  method=failing_at_pair(4, name, **options))
    return folder, tmp_path / "full", out


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _npy_declaring(path: Path, shape: tuple[int, ...]) -> None:
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path.write_bytes(header.getvalue() + bytes(64))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "cache-truncated": lambda out: _truncate(out / WORK_DIR / "cache/flow/000002.npy"),
    "cache-overwritten": lambda out: (out / WORK_DIR / "cache/flow/000002.npy").write_bytes(b"garbage!" * 20),
    "cache-deleted": lambda out: (out / WORK_DIR / "cache/flow/000002.npy").unlink(),
    # a header that declares 7 TiB of flow (numpy sized the array by it: a MemoryError traceback)
    "cache-huge-header": lambda out: _npy_declaring(out / WORK_DIR / "cache/flow/000002.npy", (10**6, 10**6, 2)),
    "flo-overwritten": lambda out: (out / "flo/000002.flo").write_bytes(b"12345678"),
    "flo-truncated": lambda out: _truncate(out / "flo/000002.flo"),
    # a whole cached flow of 20x28 frames (the video's are 40x56): drawn as it was, a ValueError traceback
    "cache-cropped": lambda out: _cropped_npy(out / WORK_DIR / "cache/flow/000002.npy", 20, 28),
    # a whole .flo file of 20x28 frames: the pair counted as finished, and the file stayed so
    "flo-cropped": lambda out: _cropped_flo(out / "flo/000002.flo", 20, 28),
}


def _cropped_npy(path: Path, height: int, width: int) -> None:
    np.save(path, np.ascontiguousarray(np.load(path)[:height, :width]))


def _cropped_flo(path: Path, height: int, width: int) -> None:
    from semflow.io.flow import read_flo, write_flo

    write_flo(path, np.ascontiguousarray(read_flo(path)[0][:height, :width]))


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_cache_entry_or_flo_file_is_computed_again(make_frames, tmp_path: Path, damage: str) -> None:
    folder, full, out = interrupted(make_frames, tmp_path)
    DAMAGES[damage](out)
    summary = run_video(folder, out, RunOptions(method="dis-fast", save_flo=True, resume=True))
    assert summary["pairs"] == 6
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


def test_a_kept_flo_file_of_another_size_is_computed_again(make_frames, tmp_path: Path) -> None:
    """Without a cache (--cache-mb 0) the drawing reads a pair's flow back from its .flo file (untrusted):
    one of 20x28 frames (the video's are 40x56), whole, was drawn as it was: a ValueError traceback;
    and the pair counted as finished, its .flo file left so."""
    folder = make_frames(7, 40, 56)
    options = {"method": "dis-fast", "save_flo": True, "cache_budget": 0}
    run_video(folder, tmp_path / "full", RunOptions(**options))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="pair 4"):
        run_video(folder, out, RunOptions(**options), method=failing_at_pair(4, "dis-fast"))
    _cropped_flo(out / "flo/000002.flo", 20, 28)
    summary = run_video(folder, out, RunOptions(**options, resume=True))
    assert summary["resumed_pairs"] == 3 and summary["render_from"] == "flo"
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "flipped"])
def test_a_damaged_video_state_is_warmed_up_again(make_frames, tmp_path: Path, monkeypatch, damage) -> None:
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    folder, full, out = interrupted(make_frames, tmp_path, "discrete", preset="fast")
    damage(out / WORK_DIR / "video_state.npz")
    options = RunOptions(method="discrete", save_flo=True, resume=True, method_options={"preset": "fast"})
    assert run_video(folder, out, options)["resumed_pairs"] == 4
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


@pytest.mark.parametrize("state", ["[", '{"fingerprint": {}, "cache_pairs": "many"}', '{"cache_pairs": -3}',
                                   '{"intermediate_per_pair": NaN}', None])
def test_a_damaged_state_file_is_one_error_line(make_frames, tmp_path: Path, run_cli, state: str | None) -> None:
    folder, _, out = interrupted(make_frames, tmp_path)
    path = out / WORK_DIR / "state.json"
    path.write_text(state) if state is not None else path.unlink()
    result = run_cli("run", folder, "--out", out, "--method", "dis-fast", "--save-flo", "--resume")
    assert result.rc == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [f"semflow: error: {out}: cannot resume, its work folder is damaged"
                                          f" ({WORK_DIR}/state.json); run it again without --resume"]
    with pytest.raises(InputError, match="work folder is damaged"):
        run_video(folder, out, RunOptions(method="dis-fast", save_flo=True, resume=True))
    assert run_video(folder, out, RunOptions(method="dis-fast", save_flo=True))["pairs"] == 6  # afresh: fine


@pytest.mark.parametrize("shape", [(10, 500), (500, 10), (2, 300)])
def test_very_thin_frames_run_in_video_mode(tmp_path: Path, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "thin" / f"{i:06d}.png", rng.integers(0, 255, (*shape, 3), np.uint8))
    summary = run_video(tmp_path / "thin", tmp_path / "r", RunOptions(method="dis-ultrafast"))
    assert summary["pairs"] == 2 and summary["mode"] == "video"


@pytest.mark.parametrize("shape", [(10, 500), (500, 10), (6, 400)])
def test_scene_cuts_of_thin_frames_are_still_told_apart(shape: tuple[int, int]) -> None:
    for seed in range(5):
        clip = moving_frames(2, *shape, shift=(2, 0) if shape[0] < shape[1] else (0, 2), seed=seed)
        other = moving_frames(1, *shape, seed=seed + 100)[0]
        assert not scene_cut(clip[0], clip[1]), seed
        assert scene_cut(clip[1], other), seed


def test_json_a_user_can_change_is_never_a_traceback(make_frames, tmp_path: Path) -> None:
    """summary.json of another shape ([1, 2]: AttributeError) or nested too deep for the parser
    (RecursionError), the same in state.json, a pair record or a label-set file: tracebacks before."""
    from semflow.pair_records import PairRecord
    from semflow.segmentation.labels import get_label_set

    deep = "[" * 100_000 + "]" * 100_000
    folder = make_frames(3)
    for k, text in enumerate((deep, "[1, 2]", '{"outputs": [1]}')):
        out = tmp_path / f"out{k}"
        out.mkdir()
        (out / "summary.json").write_text(text)  # not one semflow wrote: it is left alone, the run goes on
        assert run_video(folder, out, RunOptions(method="dis-fast", resume=True))["pairs"] == 2
    out = tmp_path / "state"
    (out / WORK_DIR).mkdir(parents=True)
    (out / WORK_DIR / "state.json").write_text(deep)
    with pytest.raises(InputError, match="work folder is damaged"):
        run_video(folder, out, RunOptions(method="dis-fast", resume=True))
    assert PairRecord.parse(deep.encode()) is None
    (tmp_path / "set.json").write_text(deep)
    with pytest.raises(InputError, match="not a label-set JSON file .*nested too deeply"):
        get_label_set(str(tmp_path / "set.json"))


class _Part:
    """A video state part that saves one number."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"value": np.array(self.value)}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray]) -> _Part:
        return cls(float(arrays["value"]))


def test_a_saved_state_of_other_parts_does_not_shadow_an_older_good_one(tmp_path: Path) -> None:
    """The newest saved state was taken whenever it read, even when it restored to nothing (parts of another
    method): the resumed run then warmed up from frame 0 though the checkpoint held a good older state."""
    from semflow.video_run import VideoStateStore
    from semflow.video_state import VideoState

    latest, checkpoint = VideoStateStore(tmp_path), VideoStateStore(tmp_path / "checkpoint")
    latest.save(5, VideoState(pairs=6, parts={"other": _Part()}))
    checkpoint.save(3, VideoState(pairs=4, parts={"mine": _Part(2.0)}))
    found = state_chain._Latest(latest, checkpoint, 7, {"mine": _Part}).load()
    assert found is not None and found[0] == 3 and float(found[1]["mine/value"]) == 2.0


def _tracks_meta(arrays: dict, change) -> None:
    meta = json.loads(str(arrays["semantic/meta"]))
    change(meta)
    arrays["semantic/meta"] = np.array(json.dumps(meta))


TRACK_DAMAGES: dict[str, Callable[[dict], None]] = {
    # Each was read as it was, and the run went on with it: a traceback later, outputs that differ from
    # an uninterrupted run's, or gigabytes of mask for a few bytes of file.
    "history-text": lambda a: _tracks_meta(a, lambda m: [t.update(history="on") for t in m["tracks"]]),
    "box-negative": lambda a: a.update({"semantic/box0": np.array([-8, 4, 0, 4])}),
    "box-huge": lambda a: a.update({"semantic/shape0": np.array([40000, 40000]),
                                    "semantic/box0": np.array([0, 40000, 0, 40000])}),
    # well formed, but of 20x28 frames (the video's are 40x56): the masks matched against the frame's regions
    "cropped": lambda a: _cropped_tracks(a, 20, 28),
}


def _cropped_tracks(arrays: dict, height: int, width: int) -> None:
    """The saved tracks' masks, prior and flow cropped to ``height`` x ``width`` (each consistent with the others)."""
    from semflow.layers.footprint import Footprint, unpacked

    for k in range(len(json.loads(str(arrays["semantic/meta"]))["tracks"])):
        whole = unpacked(arrays[f"semantic/mask{k}"], arrays[f"semantic/box{k}"], arrays[f"semantic/shape{k}"]).full()
        arrays.update({f"semantic/{key}{k}": value
                       for key, value in Footprint.of(whole[:height, :width]).packed().items()})
    for key in ("flow", "semantic/prior"):
        if key in arrays:
            arrays[key] = np.ascontiguousarray(arrays[key][:height, :width])


@pytest.mark.parametrize("damage", list(TRACK_DAMAGES))
def test_a_video_state_with_malformed_tracks_is_warmed_up_again(tmp_path: Path, monkeypatch, damage: str) -> None:
    """The saved tracks of ``semantic`` (read on --resume from the run's folder) are checked as they are
    read: a malformed but readable state counts as missing (warmed up again from an earlier point) as an
    unreadable one does; the resumed run writes what an uninterrupted run writes."""
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    for k, frame in enumerate(moving_frames(7, 40, 56)):
        write_image(frames / f"{k:06d}.png", frame)
        labels = np.full((40, 56), 3, np.uint8)  # Road, and a Car box moving right
        labels[8:24, 8 + k:24 + k] = 8
        write_image(masks / f"{k:06d}.png", labels)
    options = {"baseline": "dis-fast", "segmentation": str(masks)}
    full, out = tmp_path / "full", tmp_path / "out"
    run_video(frames, full, RunOptions(method="semantic", save_flo=True, method_options=options))
    with pytest.raises(RuntimeError, match="pair 4"):
        run_video(frames, out, RunOptions(method="semantic", save_flo=True, method_options=options),
                  method=failing_at_pair(4, "semantic", **options))
    path = out / WORK_DIR / "video_state.npz"
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    assert any(t["kind"] == "thing" for t in json.loads(str(arrays["semantic/meta"]))["tracks"])
    TRACK_DAMAGES[damage](arrays)
    np.savez(path, **arrays)
    _resumes_as_uninterrupted(frames, out, full, RunOptions(method="semantic", save_flo=True,
                                                            method_options=options, resume=True))


def _resumes_as_uninterrupted(frames, out: Path, full: Path, options: RunOptions) -> None:
    """Resuming the run in ``out`` on ``frames`` with ``options`` resumes 4 pairs, peaks under 100 MB of
    Python allocations, and writes what the uninterrupted run in ``full`` wrote."""
    tracemalloc.start()
    try:
        summary = run_video(frames, out, options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["resumed_pairs"] == 4 and peak < 100_000_000
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


def _set(key: str, value) -> Callable[[dict], None]:
    return lambda arrays: arrays.update({key: value})


STATE_DAMAGES: dict[str, Callable[[dict], None]] = {
    # Each was read as it was: the resumed run went on without the carried work (pairs 0, a cut), with
    # a NaN or mis-sized carried flow (other outputs; an IndexError), or with a frame of another size.
    "pairs-zero": _set("pairs", np.array(0)),
    "cut-text": _set("cut", np.array("no")),
    "flow-nan": lambda a: a["discrete/flow"].__setitem__((5, 5, 0), np.nan),
    "flow-small": _set("discrete/flow", np.zeros((8, 8, 2), np.float32)),
    "gray-small": lambda a: a.update({"discrete/gray": a["discrete/gray"][:20]}),
    # gray, carried flow and flow all of 20x28 frames (consistent with each other; the video's are 40x56)
    "all-cropped": lambda a: a.update({key: np.ascontiguousarray(a[key][:20, :28])
                                       for key in ("discrete/gray", "discrete/flow", "flow")}),
}


def test_a_video_state_with_malformed_arrays_is_warmed_up_again(make_frames, tmp_path: Path, monkeypatch) -> None:
    """The saved state's own arrays and ``discrete``'s frame work are checked as they are read (as the
    tracks are, above): the resumed run writes what an uninterrupted run writes."""
    import shutil

    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    folder, full, out = interrupted(make_frames, tmp_path, "discrete", preset="fast")
    with np.load(out / WORK_DIR / "video_state.npz") as data:
        arrays = {key: data[key] for key in data.files}
    options = RunOptions(method="discrete", save_flo=True, resume=True, method_options={"preset": "fast"})
    for damage, change in STATE_DAMAGES.items():
        copy = tmp_path / damage
        shutil.copytree(out, copy)
        damaged = {key: value.copy() for key, value in arrays.items()}
        change(damaged)
        np.savez(copy / WORK_DIR / "video_state.npz", **damaged)
        assert run_video(folder, copy, options)["resumed_pairs"] == 4, damage
        for name in OUTPUTS:
            assert (copy / name).read_bytes() == (full / name).read_bytes(), (damage, name)


@pytest.mark.parametrize("key, value", [("flow", np.array("x")), ("flow", np.zeros((4, 4, 2))),
                                        ("discrete/searched_share", np.array(np.nan)),
                                        ("discrete/since_full", np.array(-3)), ("discrete/projection", np.array("x")),
                                        ("discrete/shrink", np.array(np.inf))])
def test_restore_refuses_arrays_a_snapshot_does_not_write(key: str, value: np.ndarray) -> None:
    from semflow.baseline.discrete.temporal import FrameWork
    from semflow.video_state import restore, snapshot

    work = FrameWork(np.zeros((4, 4), np.uint8), [], [], None, np.ones((8, 2), np.float32), 0, 0, None,
                     flow=np.zeros((4, 4, 2), np.float32), valid_share=0.5, searched_share=0.5)
    arrays = snapshot(VideoState(pairs=2, flow=np.zeros((4, 4, 2), np.float32), parts={"discrete": work}))
    assert restore(arrays, None, {"discrete": FrameWork}) is not None
    arrays[key] = value
    with pytest.raises(ValueError, match="saved video state: malformed"):
        restore(arrays, None, {"discrete": FrameWork})


def _npz_with_extra(path: Path, deflated: bool, extra_header: dict, extra_bytes: int) -> None:
    """Rewrite the saved state ``path`` with its arrays (deflated or stored) and one more entry,
    ``discrete/extra``: a .npy header ``extra_header`` and ``extra_bytes`` zero bytes (written in chunks)."""
    import io
    import zipfile

    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    kind = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", kind, compresslevel=9 if deflated else None) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            archive.writestr(key + ".npy", buffer.getvalue())
        with archive.open("discrete/extra.npy", "w", force_zip64=True) as entry:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, extra_header)
            entry.write(header.getvalue())
            chunk = bytes(1 << 20)
            for start in range(0, extra_bytes, len(chunk)):
                entry.write(chunk[:extra_bytes - start])


NPZ_BOMBS = {  # (deflated, header, bytes held): np.load read each into an array far larger than the file
    "deflated": (True, {"descr": "<f4", "fortran_order": False, "shape": (32 << 20,)}, 128 << 20),
    "declared-larger": (False, {"descr": "<f4", "fortran_order": False, "shape": (16000, 16000, 2)}, 64),
}


@pytest.mark.parametrize("bomb", list(NPZ_BOMBS))
def test_a_saved_state_that_unpacks_far_larger_than_its_file_is_warmed_up_again(
        make_frames, tmp_path: Path, monkeypatch, bomb: str) -> None:
    """The saved state is read as np.savez writes it (stored entries, each exactly as large as its header
    declares): a deflated one (128 MB of array in a 125 KB file) or one whose header declares 2 GB it does
    not hold counts as damaged, before any of it is allocated; the resumed run writes what an uninterrupted
    run writes."""
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    folder, full, out = interrupted(make_frames, tmp_path, "discrete", preset="fast")
    path = out / WORK_DIR / "video_state.npz"
    _npz_with_extra(path, *NPZ_BOMBS[bomb])
    assert path.stat().st_size < 1_000_000
    options = RunOptions(method="discrete", save_flo=True, resume=True, method_options={"preset": "fast"})
    _resumes_as_uninterrupted(folder, out, full, options)


@pytest.mark.parametrize("shape", [(40, 56), (12, 70), (70, 12)])
def test_a_restored_state_fits_the_frames_it_was_saved_from_only(shape: tuple[int, int]) -> None:
    """A state restored from a file is checked against the frame it continues from (frames under 32 px a
    side: ``discrete`` holds them padded): its own frames' size fits, another size does not."""
    from semflow.methods import get_method
    from semflow.video_state import fits, restore, snapshot

    method = get_method("discrete", preset="fast")
    frames = moving_frames(3, *shape)
    state = VideoState()
    for a, b in zip(frames, frames[1:]):
        state = method.estimate(a, b, state=state).state
    restored = restore(snapshot(state), None, method.state_parts())
    assert restored is not None and fits(restored, frames[-1])
    h, w = shape
    for other in [(h + 1, w), (h, w - 1), (max(h, 32), max(w, 32))]:
        if other != shape:
            assert not fits(restored, np.zeros((*other, 3), np.uint8)), other
