"""A run over a video gives the same bytes every time and plans its cache from the clip's true length:
the intermediate's segments coded the same run to run, a video without a declared frame count counted,
and a resumed run told when its --cache-mb is not the one it continues with."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import failing_at_pair

from semflow import flowvideo
from semflow.errors import SemflowWarning
from semflow.io.video import FrameSource
from semflow.pipeline import RunOptions, run_video
from semflow.synthetic import make_scene


def _coded(tmp_path: Path, flows: list[np.ndarray], shape: tuple[int, int], per_pair: float) -> str:
    """A digest of what a segment of ``flows`` decodes to."""
    writer = flowvideo.SegmentWriter(tmp_path, 0, shape, "f", per_pair)
    for flow in flows:
        writer.add((flow, None, None))
    path = writer.close()
    decoded = list(flowvideo.read_segment(path, shape, "f", None, writer.coded))
    path.unlink()
    return hashlib.sha1(b"".join(flow.tobytes() for flow, _, _ in decoded)).hexdigest()


def test_a_segment_of_the_intermediate_is_coded_the_same_every_time(tmp_path: Path) -> None:
    """x264 with two frame threads and a rate cap coded the same pairs differently run to run (a probe:
    6 encodes, 6 outputs), so a resumed run drawn from the intermediate was not byte for byte the
    uninterrupted one, as docs/command-line.md promises."""
    scene = make_scene(120, 160, seed=1)
    rng = np.random.default_rng(0)
    flows = [(scene.flow * (1 + 0.05 * k) + rng.normal(0, 0.3, scene.flow.shape)).astype(np.float32)
             for k in range(30)]
    digests = {_coded(tmp_path, flows, (120, 160), 800.0) for _ in range(4)}
    assert len(digests) == 1


def _raw_h264(tmp_path: Path, frames: int) -> Path:
    """An H.264 elementary stream (no container, so no frame count), ``frames`` frames of 64x48."""
    path = tmp_path / "clip.h264"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=64x48:rate=10", "-frames:v", str(frames), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-f", "h264", str(path)], check=True, timeout=60)
    return path


def test_a_video_without_a_declared_frame_count_is_counted(tmp_path: Path) -> None:
    """OpenCV gives a raw .h264 (or a webm written to a pipe) a negative frame count: it was kept, so the run
    took the clip for a short one (frames_expected 0, no intermediate) and computed every pair beyond its
    cache a second time to draw it."""
    path = _raw_h264(tmp_path, 40)
    source = FrameSource(path)
    assert len(source) == 40 and source.declared is None
    assert len(FrameSource(path, max_frames=6)) == 6
    summary = run_video(path, tmp_path / "out", RunOptions(method="dis-ultrafast", progress=False,
                                                           cache_budget=40_000))
    assert summary["frames_expected"] == 40 and summary["pairs"] == 39
    assert summary["render_from"] == "intermediate" and summary["truncated"] is False


def test_resume_with_another_cache_budget_says_the_first_is_kept(tmp_path: Path, make_frames) -> None:
    """`--resume --cache-mb N` over a run made with another budget was accepted without a word, and N ignored."""
    frames = make_frames(6)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="interrupted at pair 3"):
        run_video(frames, out, RunOptions(method="dis-fast", progress=False), method=failing_at_pair(3))
    with pytest.warns(SemflowWarning) as said:
        run_video(frames, out, RunOptions(method="dis-fast", progress=False, resume=True, cache_budget=2**20))
    assert [str(w.message) for w in said] == [f"{out}: --cache-mb differs from the run this continues; its budget"
                                              " is kept (512 MiB)"]
    assert json.loads((out / "summary.json").read_text())["pairs"] == 5


@pytest.mark.parametrize("mode", ["video", "pair"])
def test_a_resumed_run_reads_its_finished_frames_only_to_draw_them(tmp_path: Path, make_frames, monkeypatch,
                                                                     mode: str) -> None:
    """Resumed, pass 1 decoded every finished frame from frame 0 (and video mode's warm-up from frame 0
    again) only to skip the pairs: an hour of 1080p resumed near its end read for about 15 min first."""
    import semflow.io.video as video

    frames = make_frames(12)
    out = tmp_path / "out"
    options = RunOptions(method="dis-fast", progress=False, pairwise=mode == "pair")
    with pytest.raises(RuntimeError, match="interrupted at pair 8"):
        run_video(frames, out, options, method=failing_at_pair(8))
    reads = []
    real = video.read_image
    monkeypatch.setattr(video, "read_image", lambda path, *a, **k: reads.append(path.name) or real(path, *a, **k))
    resumed = run_video(frames, out, RunOptions(method="dis-fast", progress=False, pairwise=mode == "pair",
                                                resume=True))
    assert resumed["resumed_pairs"] == 8 and resumed["pairs"] == 11
    # Frame 3 of the 8 finished pairs: drawn in pass 2, and in video mode read once more by the warm-up
    # from the saved state (after pair 0) to pair 8; pass 1 itself starts at frame 8.
    assert reads.count("0003.png") == (2 if mode == "video" else 1), reads
    assert reads.count("0009.png") == 2  # pass 1 and pass 2
    fresh = run_video(frames, tmp_path / "fresh", RunOptions(method="dis-fast", progress=False,
                                                             pairwise=mode == "pair", save_flo=False))
    assert fresh["pairs"] == 11
    assert (out / "flow.mp4").read_bytes() == (tmp_path / "fresh" / "flow.mp4").read_bytes()
