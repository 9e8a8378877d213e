"""The ``semflow`` command line, run as a real subprocess: good paths and every bad input of the issue.

Every bad input must give exactly one stderr line ``semflow: error: ...``, a non-zero exit code, no
traceback and no output or partial file left behind (see the ``cli_fails`` fixture in conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow.errors import InputError
from semflow.io.flow import FLO_TAG, read_flow, read_flow_valid, write_flow
from semflow.io.images import read_image, write_image
from semflow.methods import list_methods
from semflow.pipeline import RunOptions, run_video
from semflow.synthetic import write_dataset
from semflow.viz import flow_to_color, legend_text_box


def median_inner(flow: np.ndarray) -> np.ndarray:
    return np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0)


# --- flow ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".flo", ".png", ".npy"])
def test_flow_writes_each_format(run_cli, pair, tmp_path: Path, ext: str) -> None:
    out = tmp_path / "out" / f"f{ext}"
    result = run_cli("flow", *pair, "-o", out, "--method", "dis-fast")
    assert result.rc == 0, result.stderr
    assert result.stderr == ""
    assert str(out) in result.stdout and "64x48" in result.stdout and "dis-fast" in result.stdout
    flow = read_flow(out)
    assert flow.shape == (48, 64, 2)
    np.testing.assert_allclose(median_inner(flow), (3.0, 2.0), atol=0.3)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_flow_max_side_shrinks_the_images_first(run_cli, pair, tmp_path: Path) -> None:
    out = tmp_path / "half.flo"
    result = run_cli("flow", *pair, "-o", out, "--method", "dis-fast", "--max-side", "32")
    assert result.rc == 0, result.stderr
    assert "32x24" in result.stdout
    flow = read_flow(out)
    assert flow.shape == (24, 32, 2)  # the shrunk images' flow, in their pixels: half the motion
    np.testing.assert_allclose(median_inner(flow), (1.5, 1.0), atol=0.3)


def test_flow_with_viz_png(run_cli, pair, tmp_path: Path) -> None:
    result = run_cli("flow", *pair, "-o", tmp_path / "f.flo", "--viz", tmp_path / "f.png", "--max-flow", "4")
    assert result.rc == 0, result.stderr
    assert result.stdout.rstrip().endswith("; " + str(tmp_path / "f.png") + " (max flow 4.00 px)")  # (a newcomer probe)
    viz = read_image(tmp_path / "f.png")
    assert viz.shape == (48, 64, 3)
    # Motion right and down: between red and yellow on the Middlebury wheel, away from the legend (its
    # text box moves with the font's metrics: OpenCV 5.1 draws it 4 px wider than 5.0; the wheel is in
    # the lower right corner).
    _, _, x, y, bw, bh = legend_text_box(48, 64, 4.0)
    row, col = next((r, c) for r, c in ((40, 5), (10, 5), (20, 5)) if not (y <= r < y + bh and x <= c < x + bw))
    r, g, b = viz[row, col].astype(int)
    assert r > 200 and r > g > b


def test_flow_accepts_gray_rgba_and_16bit_images(run_cli, pair, tmp_path: Path) -> None:
    img1, img2 = read_image(pair[0]), read_image(pair[1])
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(img2, cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(tmp_path / "deep.png"), img2[..., ::-1].astype(np.uint16) * 257)
    for first, second in (("gray.png", "rgba.png"), ("gray.png", "deep.png")):
        result = run_cli("flow", first, second, "-o", f"{first}-{second}.flo", "--method", "dis-medium")
        assert result.rc == 0, result.stderr
        np.testing.assert_allclose(median_inner(read_flow(tmp_path / f"{first}-{second}.flo")), (3.0, 2.0), atol=0.3)


def test_pictures_of_rgba_frames_are_written_as_jpeg(run_cli, pair, tmp_path: Path) -> None:
    """write_image refuses RGBA to JPEG (it dropped the alpha without a word); the command line's pictures are RGB
    whatever its frames (RGBA ones are read as RGB), so `flow --viz x.jpg` of RGBA frames and `visualize -o x.jpg`
    still write them (a guard of its callers, passing before the refusal too)."""
    for path in pair:
        cv2.imwrite(str(path.with_suffix(".rgba.png")), cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGRA))
    result = run_cli("flow", "a.rgba.png", "b.rgba.png", "-o", "f.flo", "--viz", "f.jpg", "--method", "dis-fast")
    assert result.rc == 0, result.stderr
    result = run_cli("visualize", "f.flo", "f.flo", "-o", "v.jpg")
    assert result.rc == 0, result.stderr
    assert cv2.imread(str(tmp_path / "f.jpg"), cv2.IMREAD_UNCHANGED).shape == (48, 64, 3)
    assert cv2.imread(str(tmp_path / "v.jpg"), cv2.IMREAD_UNCHANGED).shape[2] == 3


def test_flow_missing_file(cli_fails, pair) -> None:
    cli_fails("flow", "nope.png", "b.png", "-o", "f.flo", match="nope.png: no such file")


def test_flow_unreadable_image(cli_fails, pair, tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("not an image")
    cli_fails("flow", "a.png", "fake.png", "-o", "f.flo", match="cannot decode")


def test_flow_given_a_video_points_at_run(cli_fails, pair, make_video, tmp_path: Path) -> None:
    """`flow clip.mp4 ...` said only "cannot decode as an image": a video, told by its name or (renamed) by its
    first bytes, now names the command that computes its flows; a broken image gets no such hint."""
    hint = "cannot decode as an image (it is a video: `semflow run VIDEO` computes a video's flows)"
    make_video(2)
    cli_fails("flow", "clip.mp4", "b.png", "-o", "f.flo", match=f"clip.mp4: {hint}")
    (tmp_path / "clip.dat").write_bytes((tmp_path / "clip.mp4").read_bytes())
    with pytest.raises(InputError, match=r"clip\.dat: cannot decode as an image \(it is a video"):
        read_image(tmp_path / "clip.dat")
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(InputError, match=r"fake\.png: cannot decode as an image \(it does not start as any image format semflow reads\)$"):
        read_image(tmp_path / "fake.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_flow_and_run_unreadable_files(cli_fails, pair, make_video, tmp_path: Path) -> None:
    (tmp_path / "a.png").chmod(0)
    make_video(3).chmod(0)
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", match="a.png: not readable")
    cli_fails("run", "clip.mp4", "--out", "out", match="clip.mp4: not readable")


def test_flow_folder_instead_of_image(cli_fails, pair, tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    cli_fails("flow", "dir.png", "b.png", "-o", "f.flo", match="not a file")


def test_flow_mismatched_frame_sizes(cli_fails, pair, tmp_path: Path) -> None:
    write_image(tmp_path / "small.png", np.zeros((40, 64, 3), np.uint8))
    # (it said "frame sizes differ: 64x48 vs 64x40": no file named)
    cli_fails("flow", "a.png", "small.png", "-o", "f.flo", match="small.png is 64x40, a.png 64x48: the two images must be"
                                                               " the same size")


def test_flow_refuses_what_it_would_ignore_or_misname(cli_fails, pair, tmp_path: Path) -> None:
    """From an audit of the messages: `-o DIR` said "unknown flow format"; `--max-flow` without --viz was
    ignored without a word."""
    (tmp_path / "out").mkdir()
    cli_fails("flow", "a.png", "b.png", "-o", "out", match="out: a folder, where a file is to be written; name a file")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--max-flow", "3",
              match="--max-flow is the colour normaliser of --viz's picture: give it with --viz")


def test_flow_semantic_over_a_flow_from_elsewhere(run_cli, tmp_path: Path) -> None:
    # --baseline-flow: any method's flow as semantic's baseline; with the scene's masks the layers mend
    # a flow that is the exact one plus 0.5 px noise, and under --max-side the flow is shrunk with the frames.
    from semflow.io.flow import resize_flow
    from semflow.metrics import epe
    from semflow.synthetic import make_scene

    scene = make_scene(seed=3)  # 240x320
    noisy = scene.flow + np.random.default_rng(0).normal(0.0, 0.5, scene.flow.shape).astype(np.float32)
    for name, image in (("a.png", scene.img1), ("b.png", scene.img2), ("labels.png", scene.labels)):
        write_image(tmp_path / name, image)
    write_flow(tmp_path / "noisy.flo", noisy)
    given = ("--method", "semantic", "--baseline-flow", "noisy.flo", "--segmentation", "labels.png",
             "--label-set", "camvid")
    result = run_cli("flow", "a.png", "b.png", "-o", "s.flo", *given)
    assert result.rc == 0, result.stderr
    assert epe(read_flow(tmp_path / "s.flo"), scene.flow) < 0.3 * epe(noisy, scene.flow)
    # the masks of the frames as given are shrunk with them
    result = run_cli("flow", "a.png", "b.png", "-o", "half.flo", "--max-side", "160", *given)
    assert result.rc == 0, result.stderr
    half = read_flow(tmp_path / "half.flo")
    assert half.shape == (120, 160, 2)
    assert epe(half, resize_flow(scene.flow, 120, 160)) < 0.5 * epe(resize_flow(noisy, 120, 160), resize_flow(scene.flow, 120, 160))


def test_flow_baseline_flow_errors(cli_fails, pair, tmp_path: Path) -> None:
    write_flow(tmp_path / "wrong.flo", np.zeros((40, 64, 2), np.float32))
    write_flow(tmp_path / "right.flo", np.zeros((48, 64, 2), np.float32))
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "semantic", "--baseline-flow", "wrong.flo",
              match="wrong.flo: the flow is 64x40, the frames 64x48")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--baseline-flow", "right.flo",
              match="--baseline-flow is the baseline of --method semantic")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "semantic", "--baseline", "dis-fast",
              "--baseline-flow", "right.flo", match="give it or --baseline, not both")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "semantic", "--baseline-flow", "none.flo",
              match="none.flo: no such file")
    (tmp_path / "corrupt.flo").write_bytes(np.float32(FLO_TAG).tobytes() + b"\x00" * 5)
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "semantic", "--baseline-flow", "corrupt.flo",
              match="corrupt.flo")


def test_flow_unknown_output_format(cli_fails, pair) -> None:
    cli_fails("flow", "a.png", "b.png", "-o", "f.txt", match="unknown flow format")


def test_flow_bad_viz_extension_writes_no_flow(cli_fails, pair) -> None:
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--viz", "f.gif", match="f.gif")


def test_flow_unknown_method_lists_known_ones(cli_fails, pair) -> None:
    line = cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "raft", match="unknown method 'raft'")
    assert all(name in line for name in list_methods())


def test_flow_option_a_method_does_not_take(cli_fails, pair) -> None:
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "farneback", "--preset", "fast",
              match="--preset does not go with --method farneback; it takes --device, --sharpen")
    # (named as typed, among this command's options: it read "takes no option 'prior'; its options: device,
    # sharpen" for a method, and for discrete listed some 60 fields the command line does not have)
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "dis-medium", "--prior", "clip",
              match="--prior does not go with --method dis-medium; it takes --device, --sharpen")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "discrete", "--baseline", "dis-fast",
              match="--baseline does not go with --method discrete; it takes --device, --sharpen, --preset")
    cli_fails("flow", "a.png", "b.png", "-o", "f.flo", "--method", "discrete", "--preset", "turbo",
              match="invalid value for '--preset'")


# --- visualize ----------------------------------------------------------------------------------


def flo_file(path: Path, width: int, height: int, body: bytes | None = None, tag: float = FLO_TAG) -> Path:
    header = np.array([tag], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    path.write_bytes(header + (body if body is not None else b"\0" * (8 * width * height)))
    return path


def test_visualize_one_flow_without_legend_is_the_colour_wheel(run_cli, tmp_path: Path) -> None:
    flow = np.zeros((30, 40, 2), np.float32)
    flow[..., 0] = np.linspace(-5, 5, 40)[None, :]
    flow[..., 1] = np.linspace(-2, 2, 30)[:, None]
    valid = np.ones((30, 40), bool)
    valid[0, 0] = False
    write_flow(tmp_path / "f.flo", flow, valid)
    result = run_cli("visualize", "f.flo", "-o", "v.png", "--no-legend", "--max-flow", "8")
    assert result.rc == 0, result.stderr
    assert "max flow 8.00 px" in result.stdout
    np.testing.assert_array_equal(read_image(tmp_path / "v.png"), flow_to_color(flow, 8.0, valid=valid))


def test_visualize_several_flows_share_one_normaliser(run_cli, tmp_path: Path) -> None:
    small = np.zeros((30, 40, 2), np.float32)
    small[..., 0] = 2.0
    write_flow(tmp_path / "small.flo", small)
    write_flow(tmp_path / "big.npy", small * 3)
    valid = np.ones((30, 40), bool)
    write_flow(tmp_path / "kitti.png", small * 2, valid)
    result = run_cli("visualize", "small.flo", "big.npy", "kitti.png", "-o", "v.png", "--no-legend")
    assert result.rc == 0, result.stderr
    assert "max flow 6.00 px" in result.stdout  # the largest over all inputs
    img = read_image(tmp_path / "v.png")
    assert img.shape[1] == 3 * 40 + 2 * 4  # tiled in one row with 4 px gaps (their names, cut at 40 px, listed below)
    # Same direction, growing magnitude under one normaliser: less white (lower min channel) left to right.
    whiteness = [int(img[20, x].min()) for x in (20, 44 + 20, 88 + 20)]
    assert whiteness[0] > whiteness[2] > whiteness[1]
    grid = run_cli("visualize", "small.flo", "big.npy", "kitti.png", "-o", "g.png", "--columns", "2")
    assert grid.rc == 0 and read_image(tmp_path / "g.png").shape[1] == 2 * 40 + 4
    assert (read_image(tmp_path / "g.png")[2 * 30 + 4:2 * 30 + 8] == 255).all()  # (a white gap: two rows of tiles)


def test_visualize_lists_the_names_its_tiles_cut_in_full_below_them(run_cli, tmp_path: Path) -> None:
    """A file name wider than its tile was cut at the tile's edge ("a_rather_long_flow_file_name_from_raf"):
    two files that differ at their end could not be told apart. Each tile is then titled by its number and
    the names are listed whole under the tiles, a name wider than the picture broken over lines; names that
    fit leave the picture as it was."""
    from semflow.viz import label_image, max_flow_of, tile

    flow = np.ones((120, 160, 2), np.float32)
    names = ["sintel_alley_1_frame_0010_raft_things_finetuned.flo", "sintel_alley_1_frame_0010_pwcnet.flo"]
    for name in names:
        write_flow(tmp_path / name, flow)
    assert run_cli("visualize", *names, "-o", "v.png", "--no-legend").rc == 0
    img = read_image(tmp_path / "v.png")
    tiles = img[:120]
    assert img.shape[0] > 120 + 2 * 12 and img.shape[1] == 2 * 160 + 4  # (was (120, 324): no key)
    from semflow.tile_titles import name_key

    key = img[124:]
    text_rows = np.flatnonzero((key < 100).all(axis=2).any(axis=1))
    bands = 1 + int((np.diff(text_rows) > 1).sum())  # (lines of text: runs of rows with dark pixels)
    assert bands >= 2 and (key[:, -3:] == 255).all()  # (every name's line, none running off the right edge)
    assert (key == name_key(img.shape[1], [f"{i}: {n}" for i, n in enumerate(names, 1)])).all()
    drawn = flow_to_color(flow, max_flow_of(flow))
    np.testing.assert_array_equal(tiles, tile([label_image(drawn, f"{i}: {n}") for i, n in enumerate(names, 1)]))
    narrow = name_key(60, ["1: " + names[0]])
    assert narrow.shape[0] > 3 * 12 and (narrow[:, -3:] == 255).all()  # (broken over lines within 60 px)
    write_flow(tmp_path / "a.flo", flow)
    write_flow(tmp_path / "b.flo", flow)
    assert run_cli("visualize", "a.flo", "b.flo", "-o", "short.png", "--no-legend").rc == 0
    expected = tile([label_image(drawn, "a.flo"), label_image(drawn, "b.flo")])
    np.testing.assert_array_equal(read_image(tmp_path / "short.png"), expected)


def test_visualize_titles_each_tile_by_its_file(monkeypatch, tmp_path: Path) -> None:
    """Tiles were titled by stem: f.flo, f.png and f.npy all read "f"."""
    from click.testing import CliRunner

    import semflow.tile_titles as tile_titles
    from semflow.cli import main

    flow = np.ones((30, 40, 2), np.float32)
    for name in ("f.flo", "f.npy", "a/g.flo", "b/g.flo"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_flow(tmp_path / name, flow)
    titles: list[str] = []
    real = tile_titles.label_image
    monkeypatch.setattr(tile_titles, "label_image", lambda image, label: titles.append(label) or real(image, label))
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["visualize", "f.flo", "f.npy", "-o", "v.png"]).exit_code == 0
    assert CliRunner().invoke(main, ["visualize", "a/g.flo", "b/g.flo", "-o", "w.png"]).exit_code == 0
    assert titles == ["f.flo", "f.npy", "a/g.flo", "b/g.flo"]


def test_visualize_legend_is_drawn(run_cli, tmp_path: Path) -> None:
    write_flow(tmp_path / "f.flo", np.ones((120, 160, 2), np.float32))
    assert run_cli("visualize", "f.flo", "-o", "with.png").rc == 0
    assert run_cli("visualize", "f.flo", "-o", "without.png", "--no-legend").rc == 0
    diff = (read_image(tmp_path / "with.png") != read_image(tmp_path / "without.png")).any(axis=2)
    assert diff[60:, 80:].sum() > 100 and diff[:50, :80].sum() == 0


@pytest.mark.parametrize(
    ("name", "make", "match"),
    [
        ("tag.flo", lambda p: flo_file(p, 4, 3, tag=1.0), "not the tag b'pieh'"),
        ("short.flo", lambda p: flo_file(p, 4, 3, b"\0" * 50), "corrupt .flo file"),
        ("absurd.flo", lambda p: flo_file(p, 10**8, 10**8, b"\0" * 96), "corrupt .flo header"),
        ("empty.flo", lambda p: p.write_bytes(b""), "not a .flo file"),
        ("k8.png", lambda p: cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8)), "an 8-bit png is a picture, not a flow"),
        ("folder.flo", lambda p: p.mkdir(), "folder.flo: a folder, not a flow file (.flo, .png, .npy)"),
        ("k16gray.png", lambda p: cv2.imwrite(str(p), np.zeros((4, 4), np.uint16)), "not a KITTI flow PNG"),
        ("nan.npy", lambda p: np.save(p, np.full((4, 4, 2), np.nan, np.float32)), "NaN or inf"),
        ("inf.npy", lambda p: np.save(p, np.full((4, 4, 2), -np.inf, np.float32)), "NaN or inf"),
        ("missing.flo", lambda p: None, "no such file"),
        ("f.txt", lambda p: p.write_text("1 2"), "unknown flow format"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else None,
)
def test_visualize_bad_inputs(cli_fails, tmp_path: Path, name: str, make, match: str) -> None:
    make(tmp_path / name)
    cli_fails("visualize", name, "-o", "v.png", match=match)


def test_visualize_bad_output_and_mixed_sizes(cli_fails, tmp_path: Path) -> None:
    write_flow(tmp_path / "a.flo", np.zeros((4, 5, 2), np.float32))
    write_flow(tmp_path / "b.flo", np.zeros((5, 4, 2), np.float32))
    cli_fails("visualize", "a.flo", "-o", "v.xyz", match="unknown image format")
    (tmp_path / "taken.png").mkdir()
    cli_fails("visualize", "a.flo", "-o", "taken.png", match="semflow: error: taken.png: a folder, where a file is to be written")
    # each file's size in the order given (they were sorted by height: 4x5 read as the second file's)
    write_flow(tmp_path / "c.flo", np.zeros((4, 5, 2), np.float32))
    cli_fails("visualize", "b.flo", "a.flo", "c.flo", "-o", "v.png",
              match="differ in size (b.flo 4x5, a.flo 5x4, c.flo 5x4); cannot tile them")


# --- run ----------------------------------------------------------------------------------------


def test_run_end_to_end(run_cli, make_video, tmp_path: Path) -> None:
    video = make_video(5, 48, 64, shift=(2, 1))
    result = run_cli("run", video, "--out", "out", "--method", "dis-medium", "--save-flo", "--max-frames", "4")
    assert result.rc == 0, result.stderr
    assert result.stderr == ""
    assert "3 pairs" in result.stdout and "dis-medium" in result.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["flo", "flow.mp4", "panel.mp4", "plot.png", "summary.json"]
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000000.flo", "000001.flo", "000002.flo"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "dis-medium" and summary["frames"] == 4
    assert summary["seconds_per_pair"]["median"] > 0
    assert 1.5 < summary["flow_magnitude_px"]["mean"] < 3.0
    assert set(summary["flow_magnitude_px"]) >= {"mean", "max"}
    assert sorted(summary["outputs"]["written"]) == ["flo/", "flo/000000.flo", "flo/000001.flo", "flo/000002.flo",
                                                     "flow.mp4", "panel.mp4", "plot.png", "summary.json"]


def test_run_semantic_over_a_folder_of_flows_from_elsewhere(run_cli, make_video, tmp_path: Path) -> None:
    # --baseline-flows: a video's flows from another run (or tool) as semantic's baseline, pair by pair;
    # over dis-medium's own flows it gives what semantic on dis-medium gives. A missing flow stops the
    # run in one line, the pairs done are kept and --resume does the rest.
    video = make_video(4, 48, 64, shift=(2, 1))
    assert run_cli("run", video, "--out", "base", "--method", "dis-medium", "--save-flo").rc == 0
    last = tmp_path / "base" / "flo" / "000002.flo"
    kept = last.rename(tmp_path / "kept.flo")
    short = run_cli("run", video, "--out", "given", "--baseline-flows", "base/flo", "--save-flo")
    assert short.rc == 1 and short.stderr.strip().splitlines() == [
        f"semflow: error: base{os.sep}flo: no flow for the pair at frame 2 (expected 000002.flo, .png or .npy)"]
    assert sorted(p.name for p in (tmp_path / "given" / "flo").iterdir()) == ["000000.flo", "000001.flo"]
    kept.rename(last)
    resumed = run_cli("run", video, "--out", "given", "--baseline-flows", "base/flo", "--save-flo", "--resume")
    assert resumed.rc == 0, resumed.stderr
    assert run_cli("run", video, "--out", "own", "--baseline", "dis-medium", "--save-flo").rc == 0
    for i in range(3):
        a, b = (read_flow(tmp_path / run / "flo" / f"{i:06d}.flo") for run in ("given", "own"))
        assert np.array_equal(a, b)


def test_run_max_side(run_cli, make_frames, tmp_path: Path) -> None:
    frames = make_frames(3, 48, 64)
    result = run_cli("run", frames, "--out", "out", "--max-side", "32", "--method", "dis-ultrafast")
    assert result.rc == 0, result.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["resolution"] == [32, 24]


def test_run_missing_video(cli_fails) -> None:
    cli_fails("run", "missing.mp4", "--out", "out", match="missing.mp4: no such file")


def test_run_not_a_video(cli_fails, tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_text("this is text, not a video")
    cli_fails("run", "clip.mp4", "--out", "out", match="not a readable video")


def test_run_empty_file(cli_fails, tmp_path: Path) -> None:
    (tmp_path / "empty.avi").write_bytes(b"")
    cli_fails("run", "empty.avi", "--out", "out", match="not a readable video (the file is empty)")


def test_an_empty_file_given_as_an_image_is_said_to_be_empty(cli_fails, make_frames, tmp_path: Path) -> None:
    """A file of 0 bytes (a copy or download cut short) is named empty, not a file of no known format, and
    one named like a video gets no hint to run it: there is nothing to run."""
    frames = make_frames(2, 16, 16)
    good = sorted(frames.iterdir())[0]
    for name in ("empty.png", "empty.mp4"):
        (tmp_path / name).write_bytes(b"")
        line = cli_fails("flow", name, good, "-o", "x.flo")
        assert line == f"semflow: error: {name}: cannot decode as an image (the file is empty)"
        (tmp_path / name).unlink()


def test_run_zero_frames(cli_fails, make_video, tmp_path: Path) -> None:
    make_video(3)
    # (--max-frames 0 or 1 is a usage error, as --max-side 15 is: the help said x>=0 and each failed later)
    cli_fails("run", "clip.mp4", "--out", "out", "--max-frames", "0", match="'--max-frames': 0 is not in the range x>=2")
    (tmp_path / "noimages").mkdir()
    (tmp_path / "noimages" / "a.txt").write_text("x")
    cli_fails("run", "noimages", "--out", "out", match="holds no images")


def test_run_one_frame_video(cli_fails, make_video) -> None:
    make_video(1, name="one.mp4")
    cli_fails("run", "one.mp4", "--out", "out", match="at least 2 frames to compute flow, got 1")


def test_run_one_frame_folder(cli_fails, make_frames) -> None:
    make_frames(1, name="one")
    line = cli_fails("run", "one", "--out", "out", match="at least 2 frames to compute flow, got 1")
    assert line.endswith("got 1")  # a folder: no pointer at `semflow flow`
    make_frames(3, name="three")
    cli_fails("run", "three", "--out", "out", "--max-frames", "1", match="'--max-frames': 1 is not in the range x>=2")
    cli_fails("segment", "three", "--out", "seg", "--max-frames", "0", match="'--max-frames': 0 is not in the range x>=1")


def test_run_frame_of_another_size_names_the_frame(run_cli, make_frames, tmp_path: Path) -> None:
    folder = make_frames(4, 48, 64)
    write_image(folder / "0002.png", np.zeros((40, 64, 3), np.uint8))
    result = run_cli("run", folder, "--out", "out")
    assert result.rc == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"semflow: error: {folder}/0002.png is 64x40, the frames before it 64x48"]


def test_run_unknown_method(cli_fails, make_frames) -> None:
    make_frames(3)
    line = cli_fails("run", "frames", "--out", "out", "--method", "flownet", match="unknown method 'flownet'")
    assert all(name in line for name in list_methods())


def test_run_accepts_gray_rgba_and_16bit_frames(run_cli, make_frames, tmp_path: Path) -> None:
    folder = make_frames(3, 48, 64)
    imgs = [read_image(folder / f"{k:04d}.png") for k in range(3)]
    cv2.imwrite(str(folder / "0000.png"), cv2.cvtColor(imgs[0], cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(folder / "0001.png"), cv2.cvtColor(imgs[1], cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(folder / "0002.png"), imgs[2][..., ::-1].astype(np.uint16) * 257)
    result = run_cli("run", folder, "--out", "out", "--save-flo")
    assert result.rc == 0, result.stderr
    flow = read_flow(tmp_path / "out" / "flo" / "000001.flo")
    np.testing.assert_allclose(median_inner(flow), (2.0, 1.0), atol=0.3)


def test_run_failing_mid_way_keeps_finished_pairs_and_resumes(run_cli, make_frames, tmp_path: Path) -> None:
    """A frame that cannot be read stops the run with one line; finished pairs stay; --resume finishes."""
    folder = make_frames(6, 48, 64)
    good = (folder / "0004.png").read_bytes()
    (folder / "0004.png").write_bytes(b"corrupt")
    first = run_cli("run", folder, "--out", "out", "--save-flo")
    assert first.rc == 1 and "Traceback" not in first.stderr
    assert first.stderr.splitlines() == [f"semflow: error: {folder / '0004.png'}: cannot decode as an image (it does"
                                        " not start as any image format semflow reads)"]
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000000.flo", "000001.flo", "000002.flo"]
    assert not (out / "flow.mp4").exists() and not (out / "summary.json").exists()
    kept = {p.name: p.read_bytes() for p in (out / "flo").iterdir()}
    for name in kept:
        assert read_flow_valid(out / "flo" / name)[1].all()  # whole files, not partial ones

    (folder / "0004.png").write_bytes(good)
    with pytest.raises(InputError, match="cannot resume, the earlier run used other settings .*--max-side"):
        run_video(folder, out, RunOptions(save_flo=True, resume=True, max_side=32))  # (what the command runs)

    second = run_cli("run", folder, "--out", "out", "--save-flo", "--resume")
    assert second.rc == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_pairs"] == 3 and summary["pairs"] == 5
    assert sorted(p.name for p in (out / "flo").iterdir()) == [f"{i:06d}.flo" for i in range(5)]
    assert all((out / "flo" / name).read_bytes() == data for name, data in kept.items())
    assert not [p for p in out.rglob(".*")]


def test_run_ctrl_c_keeps_finished_pairs_and_resumes(make_frames, cli_env: dict[str, str], tmp_path: Path) -> None:
    """SIGINT in the middle of a run: exit code 130, one line, finished pairs whole, --resume completes."""
    folder = make_frames(16, 96, 128, shift=(1, 1))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "semflow", "run", str(folder), "--out", str(out), "--save-flo",
           "--method", "deepflow"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
    deadline = time.monotonic() + 60
    while not (out / "flo" / "000001.flo").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted (machine too fast)")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1 and "--resume" in stderr
    done = sorted(p.name for p in (out / "flo").iterdir())
    assert 2 <= len(done) < 15 and done == [f"{i:06d}.flo" for i in range(len(done))]
    for name in done:
        assert read_flow_valid(out / "flo" / name)[0].shape == (96, 128, 2)
    assert not (out / "flow.mp4").exists()

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120, env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_pairs"] == len(done) and summary["pairs"] == 15


# --- compare ------------------------------------------------------------------------------------


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "syn", count=2, height=48, width=64)
    return tmp_path / "syn"


def test_compare_table_json_and_images(run_cli, synthetic_root: Path, tmp_path: Path) -> None:
    result = run_cli("compare", synthetic_root, "--dataset", "synthetic", "--methods", "dis-ultrafast,dis-medium",
                     "--out", "cmp", "--json", "r.json")
    assert result.rc == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "EPE" in lines[0] and any("dis-ultrafast" in x for x in lines) and any("dis-medium" in x for x in lines)
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert len(doc["results"]) == 4
    for row in doc["results"]:
        assert {"method", "dataset", "sample", "epe", "fl_all", "seconds"} <= set(row)
        assert row["dataset"] == "synthetic" and row["method"] in ("dis-ultrafast", "dis-medium")
        assert row["epe"] > 0 and 0 <= row["fl_all"] <= 1 and row["seconds"] > 0
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["synthetic_scene_000.png", "synthetic_scene_001.png"]


def test_compare_middlebury_two_samples(run_cli, shared_file, tmp_path: Path) -> None:
    root = shared_file("middlebury")
    result = run_cli("compare", root, "--dataset", "middlebury", "--methods", "dis-medium", "--max-samples", "2",
                     "--json", "m.json", "--markdown")
    assert result.rc == 0, result.stderr
    assert result.stdout.startswith("| dataset | method")
    rows = json.loads((tmp_path / "m.json").read_text())["results"]
    assert [r["sample"] for r in rows] == ["Dimetrodon", "Grove2"]
    assert all(0.05 < r["epe"] < 1.0 and 0 <= r["fl_all"] <= 1 for r in rows)


def test_compare_bad_inputs(cli_fails, synthetic_root: Path, tmp_path: Path) -> None:
    cli_fails("compare", "missing", "--dataset", "middlebury", match="missing: no such folder")
    cli_fails("compare", "syn", "--dataset", "kitti", "--json", "r.json", match="not a KITTI folder")
    cli_fails("compare", "syn", "--dataset", "middlebury", "--json", "r.json", match="no middlebury samples")
    line = cli_fails("compare", "syn", "--dataset", "synthetic", "--methods", "dis-medium,pwc", "--json", "r.json",
                     match="unknown method 'pwc'; known methods: dis-ultrafast")
    assert all(name in line for name in list_methods())
    cli_fails("compare", "syn", "--dataset", "synthetic", "--methods", ",", match="(none given)")


def test_compare_unknown_dataset_is_a_usage_error(run_cli, synthetic_root: Path) -> None:
    result = run_cli("compare", synthetic_root, "--dataset", "imagenet")
    assert result.rc == 2 and "Traceback" not in result.stderr and "imagenet" in result.stderr


# --- methods, version, help ---------------------------------------------------------------------


def test_methods_lists_every_method_with_a_description(run_cli) -> None:
    result = run_cli("methods")
    assert result.rc == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list_methods()
    assert all(len(line.split()) > 2 for line in lines)


def test_version_and_help(run_cli) -> None:
    import semflow

    version = run_cli("--version")
    assert version.rc == 0 and semflow.__version__ in version.stdout
    helptext = run_cli("--help")
    assert helptext.rc == 0
    for command in ("run", "flow", "visualize", "compare", "methods"):
        assert command in helptext.stdout


@pytest.mark.parametrize("args", [["--version"], ["methods"], ["run", "missing.mp4", "--out", "o"],
                                  ["run", "one", "--out", "o"], ["segment", "bad.png", "--out", "o"],
                                  ["run", "two", "--out", "o", "--device", "cuda;0"]])
def test_the_command_line_answers_without_importing_torch(args, cli_env, make_frames, tmp_path: Path) -> None:
    # torch takes ~2 s to import, scipy.signal ~1 s: `semflow --help`, the listing of methods and every
    # bad-input error answer without them (the steps that use them import what they need themselves).
    make_frames(1, name="one")  # a video too short to run
    make_frames(2, name="two")
    (tmp_path / "bad.png").write_text("not an image")
    code = ("import sys\nfrom semflow.cli import main\ntry:\n    main(sys.argv[1:], prog_name='semflow')\n"
            "except SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'scipy.signal', 'scipy.stats') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=cli_env,
                          cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_paths_are_checked_by_semflow_not_by_click(pair, tmp_path: Path, monkeypatch) -> None:
    """click checked an existing path's readability first (os.access): an unreadable image was a usage
    error, exit 2, "Invalid value for 'IMAGE1': Path 'a.png' is not readable. (see --help)", and an output
    file that exists but is not readable was refused the same way. semflow's own checks now say it (exit 1).
    (Root reads whatever the mode: here os.access is made to deny reading these paths.)"""
    from click.testing import CliRunner

    from semflow.cli import main

    denied: set[Path] = set()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (mode & os.R_OK and Path(path).absolute() in denied)
                        and real_access(path, mode, **kw))
    monkeypatch.chdir(tmp_path)
    denied.add(pair[0].absolute())
    result = CliRunner().invoke(main, ["flow", str(pair[0]), str(pair[1]), "-o", "out.flo", "--method", "dis-fast"])
    assert result.exit_code == 1 and result.output == f"semflow: error: {pair[0]}: not readable\n", result.output
    denied.clear()
    (tmp_path / "out.flo").write_bytes(b"")  # an output that exists and cannot be read: it is replaced
    denied.add((tmp_path / "out.flo").absolute())
    result = CliRunner().invoke(main, ["flow", str(pair[0]), str(pair[1]), "-o", "out.flo", "--method", "dis-fast"])
    assert result.exit_code == 0 and (tmp_path / "out.flo").stat().st_size > 12, result.output


@pytest.mark.parametrize("args", [["run", "-", "--out", "o"], ["flow", "a.png", "b.png", "-o", "-"],
                                  ["segment", "-", "--out", "s"], ["visualize", "-", "-o", "v.png"],
                                  ["batch", "a.mp4", "-", "--out", "b"]])
def test_a_dash_for_standard_input_or_output_is_refused_as_such(args, tmp_path: Path, monkeypatch) -> None:
    """`semflow run - < clip.mp4` said "-: no such file or folder"; `visualize -` "-: unknown flow format"."""
    from click.testing import CliRunner

    from semflow.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "'-' (standard input or output) is not supported; name a file" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_on_a_single_image_points_at_flow(cli_fails, make_frames) -> None:
    """`run a.png` said only "need at least 2 frames to compute flow, got 1": a user who meant the flow
    between two images, or the sequence the image is a frame of, is told how."""
    make_frames(1, name="one")
    cli_fails("run", "one/0000.png", "--out", "out",
              match="got 1; for the flow between two images use `semflow flow IMAGE1 IMAGE2`, for a sequence give"
                    " the folder of its frames")


def test_run_on_a_single_image_ffmpeg_cannot_decode_points_at_flow_too(cli_fails, tmp_path: Path) -> None:
    """`run x.tif` on a float TIFF (FFmpeg decodes none; semflow reads it) said "not a readable video (no frame
    could be decoded)", with none of a PNG's hint; a PNG cut short said so too, for "cannot decode as an image"."""
    from PIL import Image

    Image.fromarray(np.full((12, 16), 0.5, np.float32)).save(tmp_path / "x.tif")
    assert read_image(tmp_path / "x.tif").shape == (12, 16, 3)  # (an image semflow reads: one frame)
    cli_fails("run", "x.tif", "--out", "out",
              match="x.tif: need at least 2 frames to compute flow, got 1; for the flow between two images use"
                    " `semflow flow IMAGE1 IMAGE2`, for a sequence give the folder of its frames")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    line = cli_fails("run", "cut.png", "--out", "out", match="cut.png: cannot decode as an image")
    assert "video" not in line


def test_a_sound_file_with_cover_art_says_so(cli_fails, tmp_path: Path) -> None:
    """A song with cover art reads as a video of one frame: "need at least 2 frames ..., got 1" alone left the
    user wondering which frame."""
    import subprocess

    import imageio_ffmpeg

    picture = tmp_path / "cover.png"
    cv2.imwrite(str(picture), np.full((32, 32, 3), 90, np.uint8))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5",
                    "-i", str(picture), "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "png", "-disposition:v",
                    "attached_pic", str(tmp_path / "song.m4a")], check=True)
    cli_fails("run", str(tmp_path / "song.m4a"), "--out", str(tmp_path / "out"),
              match="song.m4a: need at least 2 frames to compute flow, got 1 (a sound file: its one picture is its"
                    " cover art)")


def test_a_masks_segmenter_without_a_path_names_the_option_to_use(cli_fails, make_frames) -> None:
    """`--segmenter masks` said "masks backend needs a folder or PNG: --backend masks:PATH": run and flow
    have no --backend."""
    make_frames(3)
    cli_fails("run", "frames", "--out", "out", "--segmenter", "masks",
              match="the masks segmenter needs a label PNG or a folder of them: --segmenter masks:PATH")


def test_segment_refuses_a_label_set_in_its_own_options(cli_fails, make_frames) -> None:
    """`segment --label-set voc` (the camvid segmenter) said --label-set names the classes of "given masks
    (--segmentation, masks:PATH)": segment has no --segmentation. run's message (which has it) is unchanged."""
    make_frames(3)
    line = cli_fails("segment", "frames", "--out", "out", "--label-set", "voc",
                     match="not in label set 'voc': --label-set names the classes of --segmenter masks:PATH or"
                           " torchvision:PATH")
    assert "--segmentation" not in line
    cli_fails("run", "frames", "--out", "out", "--method", "semantic", "--label-set", "voc",
              match="--label-set names the classes of given masks (--segmentation, masks:PATH)")


def test_help_offers_only_what_each_command_takes(run_cli) -> None:
    """batch's help offered `--device cuda:N` and `--segmentation` "a folder of NNNNNN.png", both of which it
    refuses."""
    text = " ".join(run_cli("batch", "--help").stdout.split())
    assert "--device TEXT Where torch parts run: cpu, cuda (each worker gets its GPU from Ray) or auto." in text
    assert "cuda:N" not in text and "folder of NNNNNN.png" not in text
    assert "one label PNG, used for every frame of every clip" in text
    assert "cuda:N" in " ".join(run_cli("run", "--help").stdout.split())  # (run's own help is unchanged)


def test_compare_reads_baseline_flows_in_the_datasets_sample_order(run_cli, synthetic_root: Path, tmp_path: Path) -> None:
    """compare --baseline-flows takes 000000.* for the first sample it lists, 000001.* for the second (README)."""
    truths = [read_flow(synthetic_root / f"scene_{i:03d}" / "flow.flo") for i in range(2)]
    epes = {}
    for order in ("right", "swapped"):
        folder = tmp_path / order
        folder.mkdir()
        for k, flow in enumerate(truths if order == "right" else truths[::-1]):
            write_flow(folder / f"{k:06d}.flo", flow)
        result = run_cli("compare", synthetic_root, "--dataset", "synthetic", "--methods", "semantic",
                         "--baseline-flows", order, "--json", f"{order}.json")
        assert result.rc == 0, result.stderr
        epes[order] = [row["epe"] for row in json.loads((tmp_path / f"{order}.json").read_text())["results"]]
    assert all(right < 0.5 < swapped for right, swapped in zip(epes["right"], epes["swapped"])), epes


def test_one_pair_is_said_in_the_singular(run_cli, make_frames) -> None:
    """An audit of the messages: a two-frame run said "1 pairs, ..."."""
    result = run_cli("run", make_frames(2), "--out", "out", "--method", "dis-fast")
    assert result.rc == 0 and result.stdout.startswith("1 pair, "), result.stdout


def test_a_normaliser_at_its_floor_says_so(run_cli, tmp_path: Path) -> None:
    """A still flow drawn at the 1 px floor read "max flow 1.00 px", as if the flow reached 1 px."""
    still = np.full((30, 40, 2), 0.05, np.float32)
    write_flow(tmp_path / "s.flo", still)
    result = run_cli("visualize", "s.flo", "-o", "v.png")
    assert result.rc == 0, result.stderr
    assert result.stdout.rstrip().endswith("(max flow 1.00 px, the floor: the flow is no larger)")
    one = np.zeros((30, 40, 2), np.float32)
    one[..., 0] = 1.0  # a shift of exactly 1 px: at the floor, and not smaller than it
    write_flow(tmp_path / "one.flo", one)
    result = run_cli("visualize", "one.flo", "-o", "o.png")
    assert result.rc == 0 and "smaller" not in result.stdout and "the floor" in result.stdout, result.stdout
    given = run_cli("visualize", "s.flo", "-o", "w.png", "--max-flow", "1")  # (asked for: no floor)
    assert given.stdout.rstrip().endswith("(max flow 1.00 px)")
    image = (tmp_path / "f10.png", tmp_path / "f11.png")
    for path in image:
        write_image(path, np.full((32, 32, 3), 128, np.uint8))
    result = run_cli("flow", *map(str, image), "-o", "f.flo", "--viz", "f.png", "--method", "dis-fast")
    assert result.rc == 0 and result.stdout.rstrip().endswith("px, the floor: the flow is no larger)"), result
