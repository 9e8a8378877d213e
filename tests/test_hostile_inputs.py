"""Issue 14's hostile and careless inputs, each through the real CLI: one clean stderr line and a
non-zero exit for a bad file (no traceback, no libpng/OpenCV/FFmpeg lines before it), a clear note for
a truncated video, and NaN/inf treated the same in every flow format."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from semflow.io.flow import FLO_TAG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _flo(flow: np.ndarray) -> bytes:
    return struct.pack("<fii", FLO_TAG, flow.shape[1], flow.shape[0]) + flow.astype("<f4").tobytes()


def test_png_whose_header_says_100000x100000(cli_fails, pair, tmp_path: Path) -> None:
    """Was an OpenCV traceback (CV_IO_MAX_IMAGE_PIXELS) in both `flow` and `visualize`."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))
    (tmp_path / "huge.png").write_bytes(data)
    cli_fails("flow", "huge.png", pair[1], "-o", "o.flo", match="pixels")
    cli_fails("visualize", "huge.png", "-o", "v.png", match="huge.png")


def test_png_with_a_corrupt_chunk_prints_no_libpng_line(cli_fails, pair, tmp_path: Path) -> None:
    """libpng's own "libpng error: ..." line used to come before semflow's."""
    data = bytearray(pair[0].read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # inside the compressed data: a CRC error for libpng
    (tmp_path / "bad.png").write_bytes(bytes(data))
    cli_fails("flow", "bad.png", pair[1], "-o", "o.flo", match="bad.png")
    cut = pair[0].read_bytes()
    (tmp_path / "cut.png").write_bytes(cut[:len(cut) // 2])
    cli_fails("flow", "cut.png", pair[1], "-o", "o.flo", match="truncated")


def test_jpeg_cut_in_half_is_an_error(cli_fails, pair, tmp_path: Path) -> None:
    """Was exit 0 with half the image gray and only libjpeg's "Premature end of JPEG file" on stderr."""
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(pair[0])))
    assert ok
    (tmp_path / "half.jpg").write_bytes(buf.tobytes()[:len(buf) // 2])
    cli_fails("flow", "half.jpg", pair[1], "-o", "o.flo", match="truncated")


@pytest.mark.parametrize("shape", [(0, 8, 2), (8, 0, 2)])
def test_empty_npy_flow(cli_fails, tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """Was a traceback in putText."""
    np.save(tmp_path / "e.npy", np.zeros(shape, np.float32))
    cli_fails("visualize", "e.npy", "-o", "v.png", match="empty")


def test_npz_under_a_npy_name(cli_fails, tmp_path: Path) -> None:
    """Was an AttributeError."""
    with open(tmp_path / "z.npy", "wb") as fh:
        np.savez(fh, flow=np.zeros((4, 4, 2), np.float32))
    cli_fails("visualize", "z.npy", "-o", "v.png", match=".npz archive")


def test_npy_with_a_malformed_header(cli_fails, tmp_path: Path) -> None:
    """Was tokenize.TokenError: an unclosed bracket in the header dictionary."""
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4, 2"
    text += b" " * (63 - len(text) % 64) + b"\n"
    (tmp_path / "h.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\0" * 128)
    cli_fails("visualize", "h.npy", "-o", "v.png", match="corrupt header")


def test_npy_header_declaring_75_gib_with_32_bytes(cli_fails, tmp_path: Path) -> None:
    """Was numpy's _ArrayMemoryError (74.5 GiB): the declared size is now checked against the file first."""
    buf = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 2), np.float32))
    header["shape"] = (100_000, 100_000, 2)
    np.lib.format.write_array_header_1_0(buf, header)
    (tmp_path / "big.npy").write_bytes(buf.getvalue() + b"\0" * 32)
    cli_fails("visualize", "big.npy", "-o", "v.png", match="holds 32")


def test_values_of_3e38_are_unknown_flow_not_a_crash(run_cli, tmp_path: Path) -> None:
    """Was "max_flow must be positive, got nan" (the magnitude overflowed float32)."""
    flow = np.ones((8, 8, 2), np.float32)
    flow[2:4, 2:4] = 3e38
    np.save(tmp_path / "f.npy", flow)
    (tmp_path / "f.flo").write_bytes(_flo(flow))
    for name in ("f.npy", "f.flo"):
        result = run_cli("visualize", name, "-o", "v.png", "--no-legend")
        assert result.rc == 0 and result.stderr == "", result.stderr
        assert "max flow 1.41 px" in result.stdout
        img = cv2.imread(str(tmp_path / "v.png"))
        assert (img[2:4, 2:4] == 0).all() and (img[5:, 5:] > 0).any()  # unknown pixels drawn black


@pytest.mark.parametrize("ext", [".flo", ".npy"])
def test_nan_in_any_flow_format_is_an_error(cli_fails, tmp_path: Path, ext: str) -> None:
    """NaN in a .flo was accepted and drawn black while NaN in a .npy was an error: one rule now."""
    flow = np.ones((8, 8, 2), np.float32)
    flow[3, 3, 1] = np.nan
    if ext == ".flo":
        (tmp_path / "f.flo").write_bytes(_flo(flow))
    else:
        np.save(tmp_path / "f.npy", flow)
    cli_fails("visualize", f"f{ext}", "-o", "v.png", match="NaN or inf")


def test_truncated_mp4_says_frames_read_vs_expected(run_cli, make_video, tmp_path: Path) -> None:
    """Was exit 0 with fewer pairs and no word about it."""
    video = make_video(40, 48, 64)
    faststart = tmp_path / "fs.mp4"  # the index (moov) first, as streamed files have it: a cut file still opens
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-c", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True)
    data = faststart.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:int(len(data) * 0.7)])
    result = run_cli("run", "cut.mp4", "--out", "out", "--method", "dis-ultrafast")
    assert result.rc == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("semflow: warning: "), result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames_expected"] == 40 and summary["frames"] < 40
    assert f"read {summary['frames']} of the 40 frames" in lines[0]
    assert summary["truncated"] is True
    whole = run_cli("run", video, "--out", "whole", "--method", "dis-ultrafast")
    assert whole.rc == 0 and whole.stderr == ""
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["truncated"] is False


@pytest.mark.parametrize("seed", range(3))
def test_corrupted_files_through_the_cli_give_one_line_or_a_result(run_cli, pair, tmp_path: Path, seed: int) -> None:
    """A few randomly corrupted files of each kind through the real CLI: exit 0 with no stderr, or exit 1
    with exactly one `semflow: error:` line (the in-process property tests run hundreds per reader)."""
    rng = np.random.default_rng(seed)
    flow = rng.standard_normal((12, 16, 2)).astype(np.float32)
    np.save(tmp_path / "seed.npy", flow)
    ok, jpg = cv2.imencode(".jpg", cv2.imread(str(pair[0])))
    sources = {"f.flo": _flo(flow), "f.npy": (tmp_path / "seed.npy").read_bytes(),
               "i.png": pair[0].read_bytes(), "i.jpg": jpg.tobytes()}
    for name, data in sources.items():
        buf = bytearray(data)
        if rng.random() < 0.5:
            buf = buf[:int(len(buf) * rng.uniform(0.1, 0.95))]
        for _ in range(int(rng.integers(1, 6))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        (tmp_path / f"bad_{name}").write_bytes(bytes(buf))
        if name.startswith("f."):
            result = run_cli("visualize", f"bad_{name}", "-o", "v.png")
        else:
            result = run_cli("flow", f"bad_{name}", pair[1], "-o", "o.flo", "--method", "dis-ultrafast")
        assert "Traceback" not in result.stderr, result.stderr
        if result.rc == 0:
            assert result.stderr == "", (name, result.stderr)
        else:
            lines = result.stderr.splitlines()
            assert result.rc == 1 and len(lines) == 1 and lines[0].startswith("semflow: error: "), (name, result.stderr)


def test_a_misspelt_device_is_one_line_for_every_command(cli_fails, pair, make_frames) -> None:
    """Was accepted without a word by the methods with no torch part (`--device banana --method dis-medium`)."""
    frames = make_frames(2)
    message = "unknown device 'banana'; use cpu, cuda, cuda:N or auto"
    cli_fails("flow", *pair, "-o", "o.flo", "--method", "dis-medium", "--device", "banana", match=message)
    cli_fails("run", frames, "--out", "o", "--method", "farneback", "--device", "banana", match=message)
    cli_fails("segment", pair[0], "--out", "o", "--device", "banana", match=message)


def test_a_device_index_torch_cannot_parse_is_one_line(cli_fails, pair) -> None:
    """`--device cuda:01` passed the name check, then torch.device refused it: a RuntimeError traceback."""
    cli_fails("flow", *pair, "-o", "o.flo", "--method", "discrete", "--device", "cuda:01", match="cuda:1")


def test_a_dataset_file_of_another_size_is_one_line(cli_fails, tmp_path: Path) -> None:
    """Ground truth of another size than the frames was a traceback in `compare` (metrics' shape check)."""
    from semflow.errors import InputError
    from semflow.io.datasets import load_dataset
    from semflow.io.flow import read_flow, write_flow
    from semflow.synthetic import write_dataset

    for part in ("flow.flo", "frame2.png", "occlusion.png", "labels.png", "instances.png"):
        scene = write_dataset(tmp_path / part, count=1, height=40, width=48, seed=3)[0]
        path = scene / part
        if part.endswith(".flo"):
            write_flow(path, read_flow(path)[:30])
        else:
            cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:30])
        with pytest.raises(InputError, match=f"{part}: 48x30, but the frame frame1.png is 48x40$"):
            load_dataset("synthetic", tmp_path / part)[0].load()
    cli_fails("compare", "flow.flo", "--dataset", "synthetic", "--methods", "dis-fast",
              match="flow.flo: 48x30, but the frame frame1.png is 48x40")


def test_a_normaliser_that_is_no_positive_number_is_one_line(cli_fails, make_frames, tmp_path: Path) -> None:
    """`--max-flow nan` passed click's FloatRange and was a traceback ("max_flow must be positive, got
    nan") in `run` and `visualize`; `inf` drew every flow white."""
    import click

    from semflow.cli_options import MAX_FLOW

    for value in ("nan", "inf", "-inf", "0", "-2", "x"):
        with pytest.raises(click.BadParameter):
            MAX_FLOW.convert(value, None, None)
    assert MAX_FLOW.convert("2.5", None, None) == 2.5
    np.save(tmp_path / "f.npy", np.ones((8, 8, 2), np.float32))
    cli_fails("visualize", "f.npy", "-o", "v.png", "--max-flow", "nan", match="'nan' is not a finite number")
    cli_fails("run", make_frames(2), "--out", "o", "--method", "dis-fast", "--max-flow", "inf",
              match="'inf' is not a finite number")


def test_a_normaliser_outside_its_limits_is_refused(make_frames, tmp_path: Path) -> None:
    """`visualize --max-flow 5e-324` was a traceback (an IndexError in the wheel: the flow divided by it
    overflowed to NaN), 1e-30 drew NaN colours with numpy warnings, 1e300 printed a 300-digit legend."""
    import click

    from semflow.cli_options import MAX_FLOW
    from semflow.errors import InputError
    from semflow.pipeline import RunOptions, run_video
    from semflow.viz import flow_to_color

    for value in ("5e-324", "1e-30", "0.0009", "1e300", "1000001"):
        with pytest.raises(click.BadParameter, match="is not between 0.001 and 1e"):
            MAX_FLOW.convert(value, None, None)
    assert MAX_FLOW.convert("0.001", None, None) == 0.001 and MAX_FLOW.convert("1e6", None, None) == 1e6
    with pytest.raises(InputError, match=r"max flow \(--max-flow\) must be between 0.001 and 1e\+06 px, got 1e-30"):
        run_video(make_frames(2), tmp_path / "o", RunOptions(method="dis-fast", max_flow=1e-30))
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="must be between 0.001 and"):
        flow_to_color(np.ones((4, 4, 2), np.float32), 5e-324)


def test_a_method_option_that_is_no_finite_number_is_one_line(cli_fails, pair) -> None:
    cli_fails("flow", *pair, "-o", "o.flo", "--method", "semantic", "--prior-weight", "nan",
              match="'--prior-weight': 'nan' is not a finite number")


def test_compare_writes_nothing_into_its_dataset(cli_fails, tmp_path: Path) -> None:
    """`compare --json data/scene_000/frame1.png` replaced a frame of the dataset with the results."""
    from semflow.synthetic import write_dataset

    write_dataset(tmp_path / "data", count=1, height=40, width=48, seed=3)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    frame = (tmp_path / "data" / "scene_000" / "frame1.png").read_bytes()
    for output in (["--json", "data/scene_000/frame1.png"], ["--json", "data/r.json"], ["--out", "data/cmp"],
                   ["--json", "link/r.json"]):
        cli_fails("compare", "data", "--dataset", "synthetic", "--methods", "dis-fast", *output,
                  match="which this command reads")
    assert (tmp_path / "data" / "scene_000" / "frame1.png").read_bytes() == frame


def test_one_file_named_for_two_outputs_is_one_line(cli_fails, pair) -> None:
    """`flow -o x.png --viz x.png` wrote the colour picture over the KITTI flow it had just written."""
    cli_fails("flow", *pair, "-o", "x.png", "--viz", "./x.png", "--method", "dis-fast", match="named for two outputs")


def test_explain_into_a_folder_holding_a_folder_of_a_name_it_writes(cli_fails, pair, tmp_path: Path) -> None:
    """Was "DIR/.explain-XXXX/flow.png: Is a directory" after flow.npy had been moved into DIR."""
    (tmp_path / "ex" / "flow.png").mkdir(parents=True)
    cli_fails("flow", *pair, "-o", "f.flo", "--method", "dis-fast", "--explain", "ex",
              match="ex/flow.png: is a folder, where --explain writes a file")
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["flow.png"]


def test_a_file_name_with_a_newline_gives_one_line(cli_fails, pair) -> None:
    """The name was printed as it is: two stderr lines."""
    line = cli_fails("flow", "nope\nmissing.png", pair[1], "-o", "z.flo", match="no such file")
    assert line.startswith("semflow: error: nope\\nmissing.png: ")


def test_a_result_line_naming_a_file_with_a_newline_is_one_line(run_cli, pair, tmp_path: Path) -> None:
    """The success line printed the output's name as it is: two stdout lines."""
    result = run_cli("flow", *pair, "-o", "o\nx.flo", "--method", "dis-fast")
    assert result.rc == 0 and (tmp_path / "o\nx.flo").is_file()
    assert result.stdout.splitlines() == [result.stdout.strip()] and result.stdout.startswith("o\\nx.flo (")


@pytest.mark.parametrize("claimed", [1, 2**31 - 1])
def test_a_video_whose_header_lies_about_its_frame_count(run_cli, tmp_path: Path, claimed: int) -> None:
    """An AVI of 12 frames whose header says 2**31 - 1 made `run` size its intermediate for that many
    pairs: an FFmpeg bit rate of 36 bps, FFmpeg's lines and "Broken pipe". One that says 1 was refused
    as "need at least 2 frames ... got 1", then ran every pair with summary.json's frames_expected 1."""
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur((rng.random((48, 64, 3)) * 255).astype(np.uint8), (0, 0), 2)
    writer = cv2.VideoWriter(str(tmp_path / "ok.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(12):
        writer.write(np.roll(frame, 2 * k, axis=1))
    writer.release()
    data = bytearray((tmp_path / "ok.avi").read_bytes())
    for tag, offset in ((b"avih", 24), (b"strh", 40)):  # dwTotalFrames, the stream's dwLength
        at = data.find(tag) + offset
        data[at:at + 4] = struct.pack("<I", claimed)
    (tmp_path / "lie.avi").write_bytes(bytes(data))
    result = run_cli("run", "lie.avi", "--out", "out", "--method", "dis-fast")
    assert result.rc == 0 and result.stdout.startswith("11 pairs"), result.stderr
    lines = result.stderr.splitlines()
    assert lines == ([] if claimed == 1 else [f"semflow: warning: lie.avi: read 12 of the {claimed} frames its"
                                               " container declares (the file is truncated or corrupt); the outputs"
                                               " cover the frames read"])
    # summary.json's frames_expected is the count the warning quotes (it was the count capped by the file's
    # size), so batch's note for the clip, made from summary.json, says what run said
    from semflow.batch.clips import clip_notes

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    if claimed != 1:
        assert summary["frames_expected"] == claimed and summary["truncated"] is True
    else:  # (it recorded frames_expected 1 beside frames 12: a header that under-counts is not what is expected)
        assert (summary["frames"], summary["frames_expected"], summary["truncated"]) == (12, 12, False)
        assert [f"semflow: warning: {note}" for note in clip_notes(summary)] == lines


def test_explain_refuses_to_write_over_the_commands_other_outputs(tmp_path: Path) -> None:
    """`flow -o DIR/flow.png --explain DIR` exited 0 with DIR/flow.png the KITTI flow: the explanation's
    colour flow.png was written, then replaced by -o without a word (as `-o x.png --viz x.png` is refused)."""
    from semflow.errors import OutputError
    from semflow.explain import write_explain
    from semflow.methods import get_method
    from semflow.synthetic import translation_scene

    scene = translation_scene(32, 48, shift=(2.0, 1.0), seed=1)
    method = get_method("dis-fast")
    result = method.estimate(scene.img1, scene.img2)
    with pytest.raises(OutputError, match="ex/deeper/flow.png: --explain writes a file of that name too"):
        write_explain(method, result, tmp_path / "ex" / "deeper", outputs=[tmp_path / "ex" / "deeper" / "flow.png"])
    assert not (tmp_path / "ex").exists()  # nothing written, and the folders it created are gone again
    assert write_explain(method, result, tmp_path / "ex", outputs=[tmp_path / "ex" / "flow.flo"])
    (tmp_path / "ex" / "flow.png").unlink()  # a folder that was there stays, with what it held
    with pytest.raises(OutputError, match="--explain writes a file of that name too"):
        write_explain(method, result, tmp_path / "ex", outputs=[tmp_path / "ex" / "flow.png"])
    assert (tmp_path / "ex" / "flow.npy").is_file() and not (tmp_path / "ex" / "flow.png").exists()


def test_flow_warns_when_a_kitti_png_cannot_hold_the_flow(pair, tmp_path: Path) -> None:
    """KITTI's 16-bit PNG holds -512..512 px: beyond, the writer clipped the flow and kept it valid; now
    those pixels are written as unknown and `flow` says so in one warning line."""
    from click.testing import CliRunner

    from semflow.cli import main
    from semflow.io.flow import read_flow_valid, write_flo
    from semflow.io.images import write_image

    big = np.zeros((48, 64, 2), np.float32)
    big[:10, :, 0] = 1000.0
    write_flo(tmp_path / "big.flo", big)
    write_image(tmp_path / "road.png", np.full((48, 64), 3, np.uint8))  # given masks: no model to load
    result = CliRunner().invoke(main, ["flow", *map(str, pair), "-o", str(tmp_path / "k.png"), "--method", "semantic",
                                       "--baseline-flow", str(tmp_path / "big.flo"),
                                       "--segmentation", str(tmp_path / "road.png")])
    assert result.exit_code == 0, result.output
    assert "semflow: warning: " in result.output and "640 pixel(s) moved beyond the KITTI format" in result.output
    flow, valid = read_flow_valid(tmp_path / "k.png")
    assert not valid[:10].any() and valid[10:].all()


def test_visualize_checks_memory_from_the_headers_before_reading(monkeypatch, tmp_path: Path) -> None:
    """A 574 KB KITTI PNG of 8000x8000 took 2.2 GB to draw, with no check (the methods have one): the
    flows' sizes come from their headers, and drawing more than the memory available is one line."""
    from click.testing import CliRunner

    from semflow.cli import main
    from semflow.io.flow import flow_file_pixels, write_flow

    flow = np.ones((300, 400, 2), np.float32)
    for name in ("f.flo", "f.png", "f.npy"):
        write_flow(tmp_path / name, flow)
        assert flow_file_pixels(tmp_path / name) == 120_000
    (tmp_path / "short.flo").write_bytes((tmp_path / "f.flo").read_bytes()[:-8])
    assert flow_file_pixels(tmp_path / "short.flo") is None  # its reader says why
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "5")  # 3 x 120000 px need about 9 MB
    args = ["visualize", *(str(tmp_path / n) for n in ("f.flo", "f.png", "f.npy")), "-o", str(tmp_path / "v.png")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not (tmp_path / "v.png").exists()
    assert result.output.splitlines() == ["semflow: error: drawing 3 flow(s) of 0.4 Mpx needs about 9 MB, and 5 MB"
                                          " is available; draw fewer at a time"]
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "50")
    assert CliRunner().invoke(main, args).exit_code == 0
    for bad in ("nan", "-5", "inf", "lots"):  # nan read "and nan MB is available", -5 "and 0 MB"
        monkeypatch.setenv("SEMFLOW_MEMORY_MB", bad)
        assert CliRunner().invoke(main, args).output.splitlines() == [
            f"semflow: error: $SEMFLOW_MEMORY_MB must be a number of MB (0 or more), got {bad!r}"]


def test_sigterm_unwinds_like_ctrl_c(make_video, tmp_path: Path) -> None:
    """SIGTERM (timeout, a scheduler, docker stop) killed `segment` where it stood: its staging folder
    (OUT/.segment-XXXXXXXX, label maps and a partial overlay) stayed. Now it unwinds as Ctrl-C does."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import _cli_env

    from semflow.io.images import write_image

    video = make_video(400, 32, 48, shift=(0, 0))
    write_image(tmp_path / "road.png", np.full((32, 48), 3, np.uint8))  # given masks: no model to load
    child = subprocess.Popen([sys.executable, "-m", "semflow", "segment", str(video), "--out", "sg", "--overlay",
                              "--backend", "masks:road.png"], cwd=tmp_path, env=_cli_env(), stderr=subprocess.PIPE,
                             text=True)
    for _ in range(600):  # until it is writing label maps
        if any((tmp_path / "sg").glob(".segment-*/*.png")) or child.poll() is not None:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    # (an FFmpeg writer stopped while it was opening its file may add a line of its own after this one)
    assert child.returncode == 143 and stderr.startswith("semflow: terminated\n")
    assert not (tmp_path / "sg").exists()  # the folder it created, staging and all, is gone


def test_a_label_set_the_segmenter_cannot_use_is_refused(tmp_path: Path) -> None:
    """`segment x.png --label-set voc` (the camvid backend) exited 0 with CamVid ids, the set ignored, and a
    set file that does not exist was never looked at; semantic's --label-set never reached masks:PATH."""
    from semflow.errors import InputError
    from semflow.io.images import write_image
    from semflow.methods import get_method
    from semflow.segmentation import get_segmenter
    from semflow.segmentation.labels import get_label_set

    for label_set in ("voc", str(tmp_path / "missing.json")):
        with pytest.raises(InputError, match="the camvid segmenter labels in CamVid's classes, not in label set"):
            get_segmenter("camvid", label_set=label_set)
    write_image(tmp_path / "m.png", np.full((8, 8), 15, np.uint8))  # VOC's person
    method = get_method("semantic", baseline="dis-fast", segmenter=f"masks:{tmp_path / 'm.png'}", label_set="voc")
    assert method.segmenter().label_set.name == get_label_set("voc").name


@pytest.mark.parametrize("command", [("visualize", "pipe.flo", "-o", "out.png"), ("visualize", "pipe.npy", "-o", "out.png"),
                                     ("visualize", "pipe.png", "-o", "out.png"), ("segment", "pipe.png", "--out", "labels"),
                                     ("run", "pipe.mp4", "--out", "run", "--method", "dis-fast"),
                                     ("segment", "pipe.mp4", "--out", "labels")])
def test_a_fifo_given_as_an_input_file_is_refused_not_waited_on(cli_fails, tmp_path: Path, command) -> None:
    """visualize read a .flo/.npy/.png header to size its memory and segment an image's header to size its
    model's, before the reader's own checks; run and segment opened a video with OpenCV: each waited for a
    writer for good (run's OpenCV wait was deaf to Ctrl-C and SIGTERM)."""
    import os

    os.mkfifo(tmp_path / command[1])
    cli_fails(*command, match=f"{command[1]}: not a", timeout=60)


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_a_link_to_nothing_is_named_as_such(cli_fails, pair, tmp_path: Path, link: str) -> None:
    """A link in a loop, or to a file that is gone, was 'no such file' (the link itself is there to see)."""
    (tmp_path / "a.mp4").symlink_to("gone.mp4" if link == "dangling" else "b.mp4")
    if link == "loop":
        (tmp_path / "b.mp4").symlink_to("a.mp4")
    said = "a symbolic link to nothing (no file or folder at gone.mp4)" if link == "dangling" else \
        "a symbolic link in a loop (no file or folder at its end)"
    assert cli_fails("run", "a.mp4", "--out", "out", "--method", "dis-fast").endswith(f"a.mp4: {said}")
    assert cli_fails("flow", "a.mp4", pair[1], "-o", "x.flo").endswith(f"a.mp4: {said.replace(' or folder', '')}")
