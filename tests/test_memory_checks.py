"""The memory checks of ``segment`` and of ``run``'s videos: frames too large for the memory available
are refused in one line, before any work, with a ``--max-side`` that fits (``$SEMFLOW_MEMORY_MB`` sets
what is available, so nothing here allocates more than small frames need)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from semflow.errors import ResourceError
from semflow.io.images import read_image, write_image
from semflow.memory import memory_needed_mb


def _image(path: Path, height: int, width: int) -> Path:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[::7, ::5] = 200
    write_image(path, frame)
    return path


def _side(line: str) -> int:
    return int(re.search(r"use --max-side (\d+) \(or smaller\)", line).group(1))


# --- segment --------------------------------------------------------------------------------------


def test_segment_refuses_an_image_too_large_in_one_line(cli_fails, tmp_path: Path, monkeypatch) -> None:
    """``segment`` had no memory check: one 8K frame peaked at 5.35 GB with 1000 MB "available". Now the
    largest image is refused in one line before any work, with a --max-side at which it fits."""
    _image(tmp_path / "small.png", 30, 40)
    _image(tmp_path / "large.png", 600, 800)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "300")  # (below what the model alone takes)
    line = cli_fails("segment", "small.png", "--out", "seg", match="it does not fit even at a small size: free memory")
    # camvid is the lightest segmenter measured: it was told to "use a lighter segmenter" (and before, "method")
    assert line.endswith("free memory") and "lighter" not in line

    from semflow.memory import segmenter_needed_mb

    budget = segmenter_needed_mb("camvid", 300, 400, video=False)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{budget:.1f}")
    line = cli_fails("segment", "small.png", "large.png", "--out", "seg", match="segment (camvid) needs about")
    assert "for 800x600 frames" in line and "is available" in line  # (the larger image's)
    side = _side(line)
    assert segmenter_needed_mb("camvid", round(600 * side / 800), side, video=False) <= budget
    larger = round(side * 9 / 8)
    assert segmenter_needed_mb("camvid", round(600 * larger / 800), larger, video=False) > budget


def test_segment_refuses_a_video_too_large_in_one_line(cli_fails, make_video, monkeypatch) -> None:
    make_video(3, 120, 160)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "300")
    cli_fails("segment", "clip.mp4", "--out", "seg", "--overlay", match="segment (camvid, video mode) needs about")

    from semflow.memory import segmenter_needed_mb

    budget = segmenter_needed_mb("camvid", 60, 80, video=True)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{budget:.1f}")
    line = cli_fails("segment", "clip.mp4", "--out", "seg", "--overlay", match="segment (camvid, video mode) needs")
    assert "for 160x120 frames" in line and 60 <= _side(line) <= 80
    cli_fails("segment", "clip.mp4", "--out", "seg", "--max-side", "100", match="for 100x75 frames")


def test_segment_checks_before_the_model_loads(tmp_path: Path, monkeypatch) -> None:
    """The API refuses too (``segment_inputs``), before it builds the segmenter (torch, weights: seconds)."""
    import semflow.segmentation.backends as backends
    from semflow.segmentation.segment import segment_inputs

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the memory check")

    monkeypatch.setattr(backends, "get_segmenter", no_model)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "5")
    with pytest.raises(ResourceError, match=r"segment \(camvid\) needs about .* for 64x48 frames.*5 MB is available"):
        segment_inputs([_image(tmp_path / "a.png", 48, 64)], tmp_path / "seg")
    assert not (tmp_path / "seg").exists()


def test_segment_max_side_shrinks_images_and_frames(run_cli, tmp_path: Path, make_video, monkeypatch) -> None:
    """``--max-side`` (listed among every command's common options) was "No such option" for segment. (The
    segmenting runs in this process: a process of its own would load torch and the model again, twice.)"""
    from click.testing import CliRunner

    from semflow.cli import main

    _image(tmp_path / "a.png", 60, 100)
    make_video(3, 48, 64)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["segment", "a.png", "--out", "seg", "--max-side", "32", "--overlay",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "seg" / "a.png").shape[:2] == (19, 32)  # (600/100 * 32 = 19.2)
    assert read_image(tmp_path / "seg" / "overlay" / "a.png").shape[1] == 32 * 8  # (enlarged 8x for its key)
    result = CliRunner().invoke(main, ["segment", "clip.mp4", "--out", "segv", "--max-side", "32", "--no-progress"])
    assert result.exit_code == 0, result.output
    frames = sorted((tmp_path / "segv").glob("*.png"))
    assert len(frames) == 3 and {read_image(p).shape[:2] for p in frames} == {(24, 32)}
    assert "shrunk size" in " ".join(run_cli("segment", "--help").stdout.split())


def test_segment_max_side_below_16_is_refused(tmp_path: Path) -> None:
    from semflow.errors import InputError
    from semflow.segmentation.segment import segment_inputs

    with pytest.raises(InputError, match="at least 16 px"):
        segment_inputs([_image(tmp_path / "a.png", 48, 64)], tmp_path / "seg", max_side=8)


# --- run: the flow and drawing the videos --------------------------------------------------------


def test_run_counts_drawing_the_videos(cli_fails, run_cli, make_frames, monkeypatch) -> None:
    """``run``'s check counted the flow method alone: dis-ultrafast at 8K passed at an estimated 712 MB and
    peaked at 2.07 GB drawing its videos. A budget that holds the flow but not the drawing is refused now,
    naming both; the --max-side it offers runs under that budget."""
    frames = make_frames(2, 240, 320)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{memory_needed_mb('dis-ultrafast', 240, 320) + 1:.1f}")  # the flow fits
    line = cli_fails("run", frames, "--out", "out", "--method", "dis-ultrafast",
                     match="dis-ultrafast and drawing its videos need about")
    assert "for 320x240 frames (flow " in line and ", videos " in line

    from semflow.memory import drawing_needed_mb

    budget = memory_needed_mb("dis-ultrafast", 240, 320) + drawing_needed_mb(120, 160)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{budget:.1f}")
    line = cli_fails("run", frames, "--out", "out", "--method", "dis-ultrafast", match="use --max-side")
    side = _side(line)
    assert 160 <= side < 320
    result = run_cli("run", frames, "--out", "out", "--method", "dis-ultrafast", "--max-side", str(side))
    assert result.rc == 0, result.stderr


def test_the_measurements_say_when_they_were_made() -> None:
    """The segmenters' and the drawing's entries were measured apart from the methods': each keeps its date."""
    import json

    from semflow.memory import NEEDS_FILE

    document = json.loads(NEEDS_FILE.read_text())
    entries = [document["drawing"]["run"], *document["segmenters"].values()]
    assert {"camvid", "torchvision"} <= set(document["segmenters"])
    for entry in entries:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["date"]) and entry["sizes"] and entry["machine"]
def test_peak_memory_without_proc_reads_getrusage_in_its_own_units(monkeypatch) -> None:
    """A portability review: without /proc (macOS) the peak was ru_maxrss * 1024 (macOS gives bytes: 1000x
    too much in `compare`'s peak MB), taken once at the start (the block's own peak missed), and a thread
    woke every 5 ms to sample zeros."""
    import threading
    from types import SimpleNamespace

    import semflow.memory as memory

    held = {"bytes": 300 * 2**20}
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: 0)
    monkeypatch.setattr(memory, "peak_rss_bytes", lambda: 0)
    monkeypatch.setattr(memory, "_reset_peak_rss", lambda: False)
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    monkeypatch.setattr(memory.resource, "getrusage", lambda who: SimpleNamespace(ru_maxrss=held["bytes"]))
    threads = threading.active_count()
    with memory.PeakMemory() as peak:
        assert threading.active_count() == threads  # no sampler of zeros
        held["bytes"] = 500 * 2**20  # the block took the process to a new peak
    assert peak.peak_mb == pytest.approx(500.0) and peak.delta_mb == pytest.approx(200.0)
    monkeypatch.setattr(memory.sys, "platform", "linux")  # kB there
    assert memory.lifetime_peak_rss_bytes() == 500 * 2**30


def test_without_proc_the_machines_memory_is_the_ceiling(monkeypatch) -> None:
    """A portability review: without /proc/meminfo and a cgroup (macOS) nothing was known, so no run was ever
    refused before it started; the machine's physical memory is at least a ceiling."""
    from pathlib import Path

    import semflow.memory as memory

    real = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self).startswith(("/proc/", "/sys/")):
            raise FileNotFoundError(str(self))
        return real(self, *args, **kwargs)

    monkeypatch.delenv(memory.MEMORY_ENV, raising=False)
    monkeypatch.setattr(Path, "read_text", no_proc)
    sizes = {"SC_PHYS_PAGES": 4 * 2**20, "SC_PAGE_SIZE": 4096}  # 16 GiB
    monkeypatch.setattr(memory.os, "sysconf", lambda name: sizes[name])
    assert memory.available_memory_mb() == 16 * 1024


# --- semantic with a segmenter other than the one it was measured with ----------------------------


def test_semantic_counts_a_torchvision_segmenter(cli_fails, make_frames, tmp_path: Path, monkeypatch) -> None:
    """semantic's figures are with the camvid segmenter: with torchvision:PATH (DeepLabV3-ResNet101) it
    peaked at 1289 MB at 320x240 against an estimate of 696 MB, so a budget between the two passed the check
    and the run met the OOM killer. The torchvision segmenter's extra need is counted now; camvid's is not.
    (The weights file is never read: the check comes before the segmenter is built.)"""
    from semflow.memory import check_memory, method_needed_mb, segmenter_needed_mb
    from semflow.methods import get_method

    weights = tmp_path / "tv.pt"
    weights.write_bytes(b"")
    camvid, torchvision = get_method("semantic"), get_method("semantic", segmenter=f"torchvision:{weights}")
    extra = segmenter_needed_mb("torchvision", 240, 320, video=False) - segmenter_needed_mb("camvid", 240, 320,
                                                                                            video=False)
    assert method_needed_mb(camvid, 240, 320) == pytest.approx(memory_needed_mb("semantic", 240, 320))
    assert method_needed_mb(torchvision, 240, 320) == pytest.approx(memory_needed_mb("semantic", 240, 320) + extra)
    assert method_needed_mb(torchvision, 240, 320) > 1289  # (the peak measured)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{memory_needed_mb('semantic', 240, 320) + extra / 2:.1f}")
    check_memory(camvid, 240, 320, hint="use --max-side {side}")  # fits
    with pytest.raises(ResourceError, match=r"semantic \(with the torchvision segmenter\) needs about .* for 320x240"):
        check_memory(torchvision, 240, 320, hint="use --max-side {side}")
    with pytest.raises(ResourceError, match="torchvision segmenter"):  # (the API's own check, before any work)
        torchvision.estimate(np.zeros((240, 320, 3), np.uint8), np.zeros((240, 320, 3), np.uint8))
    _image(tmp_path / "a.png", 240, 320)
    _image(tmp_path / "b.png", 240, 320)
    cli_fails("flow", "a.png", "b.png", "-o", "ab.flo", "--method", "semantic", "--segmenter", f"torchvision:{weights}",
              match="semantic (with the torchvision segmenter) needs about")
    from semflow.memory import drawing_needed_mb

    frames = make_frames(2, 240, 320)
    budget = memory_needed_mb("semantic", 240, 320) + drawing_needed_mb(240, 320) + extra / 2  # (camvid's fits)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{budget:.1f}")
    cli_fails("run", frames, "--out", "out", "--segmenter", f"torchvision:{weights}",
              match="semantic (with the torchvision segmenter) and drawing its videos need about")


def test_where_no_size_fits_semantic_with_torchvision_is_advised_a_lighter_segmenter(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """When even the smallest frames do not fit, the advice was "use a lighter method" for every method;
    semantic with the torchvision segmenter (named in the message) is told to use a lighter segmenter, in
    the flow check and in run's (with its videos drawn); with camvid's it is still a lighter method, and so
    it is with torchvision's where camvid's would not fit either (it said "a lighter segmenter" there too)."""
    from semflow.memory import check_memory
    from semflow.methods import get_method

    weights = tmp_path / "tv.pt"
    weights.write_bytes(b"")
    torchvision = get_method("semantic", segmenter=f"torchvision:{weights}")
    for drawing in (False, True):
        monkeypatch.setenv("SEMFLOW_MEMORY_MB", "1000")  # (camvid's semantic fits, with its videos: 875 MB)
        check_memory(get_method("semantic"), 240, 320, hint="use --max-side {side}", drawing=drawing)
        with pytest.raises(ResourceError, match="torchvision segmenter.*; it does not fit even at a small size: "
                                                "free memory, or use a lighter segmenter$"):
            check_memory(torchvision, 240, 320, hint="use --max-side {side}", drawing=drawing)
        # where semantic with camvid's segmenter would not fit either, a lighter segmenter would not help
        monkeypatch.setenv("SEMFLOW_MEMORY_MB", "1")
        for method in (torchvision, get_method("semantic")):
            with pytest.raises(ResourceError, match="or use a lighter method$"):
                check_memory(method, 240, 320, hint="use --max-side {side}", drawing=drawing)


def test_segment_with_torchvision_is_advised_a_lighter_segmenter_only_where_camvid_fits(
        cli_fails, tmp_path: Path, monkeypatch) -> None:
    """Where no size fits ``segment --segmenter torchvision:PATH``, camvid's segmenter is the lighter one: it is
    advised where camvid's fits at some size (images, and a video's frames), and not where it would not."""
    from semflow.memory import check_segmenter_memory, segmenter_needed_mb

    for video in (False, True):
        camvid = segmenter_needed_mb("camvid", 30, 40, video=video)
        monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{camvid + 50:.1f}")  # (torchvision's base alone needs more)
        with pytest.raises(ResourceError, match="free memory, or use a lighter segmenter$"):
            check_segmenter_memory("torchvision", 30, 40, video=video, hint="use --max-side {side}")
        monkeypatch.setenv("SEMFLOW_MEMORY_MB", "1")
        with pytest.raises(ResourceError, match="it does not fit even at a small size: free memory$"):
            check_segmenter_memory("torchvision", 30, 40, video=video, hint="use --max-side {side}")
    _image(tmp_path / "small.png", 30, 40)
    weights = tmp_path / "tv.pt"
    weights.write_bytes(b"")
    line = cli_fails("segment", "small.png", "--out", "seg", "--segmenter", f"torchvision:{weights}",
                     match="segment (torchvision) needs about")
    assert line.endswith("free memory")
