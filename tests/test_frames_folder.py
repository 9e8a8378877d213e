"""A folder of frames read as a video: a gap in its numbering is warned about (once), an image of another
size is named by its file, and hidden files (macOS's ``._x.png`` copies) are skipped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from semflow.errors import InputError, SemflowWarning
from semflow.io.frame_folder import folder_images
from semflow.io.images import write_image
from semflow.io.video import FrameSource


def frames_named(folder: Path, names: list[str], size: tuple[int, int] = (12, 16)) -> Path:
    """``folder`` holding one small uint8 RGB image (``size``: H, W) per name, each of its own grey."""
    for k, name in enumerate(names):
        write_image(folder / name, np.full((*size, 3), 10 * k, np.uint8))
    return folder


def warnings_of(recorded: pytest.WarningsRecorder) -> list[str]:
    """The SemflowWarnings raised since the last call (the API warns; the command line says each as a line)."""
    found = [str(w.message) for w in recorded if issubclass(w.category, SemflowWarning)]
    recorded.clear()
    return found


# --- gaps in the numbering ----------------------------------------------------------------------


def test_a_gap_in_the_numbering_is_warned_once_naming_the_first(tmp_path: Path, recwarn) -> None:
    # It was joined silently: pair 1 was 000002 -> 000005, three steps saved as one.
    folder = frames_named(tmp_path / "gap", [f"{k:06d}.png" for k in (1, 2, 5, 6, 9)])
    source = FrameSource(folder)
    assert [f[0, 0, 0] for f in source] == [0, 10, 20, 30, 40]  # not refused: every frame as listed
    (line,) = warnings_of(recwarn)
    assert "000002.png to 000005.png (2 missing; 2 gaps in all, 4 frames missing)" in line
    assert line.startswith(f"{folder}: frame numbers skip")


@pytest.mark.parametrize("names", [
    ["frame_0007.png", "frame_0008.png", "frame_0009.png"],  # consecutive
    ["a.png", "b.png", "c.png"],  # no numbers
    ["left_1.png", "right_3.png", "left_5.png"],  # two patterns: not one numbering
    ["000001.png", "000002.jpg", "000005.png"],  # two suffixes
])
def test_no_warning_without_a_gap_in_one_numbering(tmp_path: Path, recwarn, names: list[str]) -> None:
    list(FrameSource(frames_named(tmp_path / "f", names)))
    assert warnings_of(recwarn) == []


def test_a_gap_past_max_frames_is_not_warned_about(tmp_path: Path, recwarn) -> None:
    folder = frames_named(tmp_path / "f", ["frame1.png", "frame2.png", "frame3.png", "frame9.png"])
    FrameSource(folder, max_frames=3)
    assert warnings_of(recwarn) == []
    FrameSource(folder)
    assert "frame3.png to frame9.png (5 missing)" in warnings_of(recwarn)[0]


def test_a_folder_of_images_to_segment_is_not_warned_about(tmp_path: Path, recwarn) -> None:
    from semflow.segmentation.segment import segment_inputs

    folder = frames_named(tmp_path / "f", ["000001.png", "000004.png"])
    write_image(tmp_path / "lbl.png", np.full((12, 16), 3, np.uint8))
    segment_inputs([folder], tmp_path / "s", backend=f"masks:{tmp_path / 'lbl.png'}", progress=False)
    assert warnings_of(recwarn) == []


def test_run_warns_about_a_gap(tmp_path: Path, run_cli, make_frames) -> None:
    folder = make_frames(4)
    (folder / "0002.png").rename(folder / "0005.png")  # 0000 0001 0003 0005
    result = run_cli("run", folder, "--out", "out", "--method", "dis-fast", "--no-progress")
    assert result.rc == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "warning" in x]
    assert "frame numbers skip from 0001.png to 0003.png (1 missing; 2 gaps in all, 2 frames missing)" in line
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frame_gaps"] == line.removeprefix("semflow: warning: ")  # kept with the outputs


# --- sizes ----------------------------------------------------------------------------------------


def test_an_image_of_another_size_is_named_by_its_file(tmp_path: Path) -> None:
    # Was "mixed: frame 3 is 150x110, the frames before it 160x120" (from the pipeline, no file named).
    folder = frames_named(tmp_path / "mixed", [f"{k:06d}.png" for k in (1, 2, 3)], size=(120, 160))
    frames_named(folder, ["000004.png"], size=(110, 150))
    source = FrameSource(folder)
    frames = source.frames()
    assert len([next(frames) for _ in range(3)]) == 3
    with pytest.raises(InputError, match=r"^\S*mixed/000004\.png is 150x110, the frames before it 160x120$"):
        next(frames)
    with pytest.raises(InputError, match="000004.png is 150x110"):  # from a later start too
        list(FrameSource(folder, max_side=80).frames(2))


def test_images_of_one_size_after_max_side_are_accepted(tmp_path: Path) -> None:
    # 160x120 and 162x121 both shrink to 80x60: the frames the pipeline pairs are of one size, as before.
    folder = frames_named(tmp_path / "f", ["1.png"], size=(120, 160))
    frames_named(folder, ["2.png"], size=(121, 162))
    assert [f.shape for f in FrameSource(folder, max_side=80)] == [(60, 80, 3)] * 2


# --- hidden files ---------------------------------------------------------------------------------


def test_hidden_files_are_skipped(tmp_path: Path) -> None:
    # macOS's AppleDouble copies have an image's extension: "._000002.png: cannot decode as an image".
    folder = frames_named(tmp_path / "junk", ["000001.png", "000002.png", "000003.png"])
    (folder / "._000002.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / ".hidden.png").symlink_to(tmp_path / "missing.png")  # hidden, so skipped though a bad link
    assert [p.name for p in folder_images(folder)] == ["000001.png", "000002.png", "000003.png"]
    assert len(list(FrameSource(folder))) == 3


def test_a_visible_bad_link_is_still_named(tmp_path: Path) -> None:
    folder = frames_named(tmp_path / "f", ["000001.png", "000003.png"])
    (folder / "000002.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(InputError, match="000002.png: not a regular file"):
        folder_images(folder)


def test_an_image_of_a_format_semflow_does_not_read_is_named_not_skipped(tmp_path: Path) -> None:
    """A GIF among PNG frames was left out without a word: its neighbours made one pair (twice the motion;
    a warning only where the names are numbered); a folder of GIFs alone was 'holds no images'."""
    from PIL import Image

    folder = frames_named(tmp_path / "f", ["frame_a.png", "frame_c.png"])
    (folder / "notes.txt").write_text("not a frame")
    Image.new("RGB", (16, 12)).save(folder / "frame_b.GIF")
    with pytest.raises(InputError, match=r"frame_b\.GIF: a GIF image, which semflow does not read as a frame \(1 in"):
        FrameSource(folder)
    (folder / "frame_b.GIF").unlink()
    assert [p.name for p in folder_images(folder)] == ["frame_a.png", "frame_c.png"]  # other files: no frames


def test_a_cameras_raw_plus_jpeg_folder_reads_its_jpegs(tmp_path: Path) -> None:
    """A camera's RAW+JPEG folder (IMG_0001.CR2 beside IMG_0001.JPG) was refused where one raw was a DNG
    ("a DNG image, which semflow does not read as a frame"), while CR2s, NEFs... beside JPEGs were skipped:
    now every camera raw with an image of its name beside it is skipped, that image being the frame."""
    folder = frames_named(tmp_path / "shots", ["IMG_0001.JPG", "IMG_0002.jpg", "IMG_0003.JPG"])
    for name in ("IMG_0001.CR2", "IMG_0002.dng", "IMG_0003.NEF"):
        (folder / name).write_bytes(b"II*\x00" + bytes(60))
    assert [p.name for p in folder_images(folder)] == ["IMG_0001.JPG", "IMG_0002.jpg", "IMG_0003.JPG"]
    with pytest.warns(SemflowWarning, match=r"skipped 3 camera raw files beside the images of their names"):
        assert len(list(FrameSource(folder))) == 3


def test_raws_skipped_beside_their_jpegs_are_said_once_a_run(tmp_path: Path, run_cli) -> None:
    """The raws of a RAW+JPEG folder were skipped without a word: `run` and `segment` (and the API's FrameSource:
    a SemflowWarning) now say how many, once (run lists the folder twice: its identity, its frames), in one line;
    a folder with no raw beside its images says nothing."""
    folder = frames_named(tmp_path / "shots", [f"IMG_{k:04d}.JPG" for k in (1, 2, 3)], size=(48, 64))
    for name in ("IMG_0001.CR2", "IMG_0002.CR2", "IMG_0003.dng"):
        (folder / name).write_bytes(b"II*\x00" + bytes(60))
    said = ("semflow: warning: shots: skipped 3 camera raw files beside the images of their names (such as"
            " IMG_0001.CR2 beside IMG_0001.JPG), which are read as the frames")
    write_image(tmp_path / "lbl.png", np.full((48, 64), 3, np.uint8))
    for args in (("run", "shots", "--out", "out", "--method", "dis-fast"),
                 ("segment", "shots", "--out", "seg", "--backend", "masks:lbl.png", "--overlay")):
        result = run_cli(*args, "--no-progress")
        assert result.rc == 0, result.stderr
        assert [line for line in result.stderr.splitlines() if "warning" in line] == [said], args[0]
    for name in ("IMG_0001.CR2", "IMG_0002.CR2", "IMG_0003.dng"):
        (folder / name).unlink()
    list(FrameSource(folder))  # (a SemflowWarning fails a test)


def test_a_camera_raw_with_no_image_of_its_name_is_named_not_skipped(tmp_path: Path, cli_fails) -> None:
    """IMG_0002.CR2 among JPEGs of other shots was left out without a word (IMG_0001.JPG and IMG_0003.JPG
    made one pair: twice the motion), a DNG refused: `run`, `segment` (and batch's clips) now name it."""
    folder = frames_named(tmp_path / "shots", ["IMG_0001.JPG", "IMG_0003.JPG"])
    (folder / "IMG_0001.CR2").write_bytes(b"II*\x00" + bytes(60))
    (folder / "IMG_0002.CR2").write_bytes(b"II*\x00" + bytes(60))
    said = ("IMG_0002.CR2: a camera raw image with no JPEG or other image of its name beside it (1 in the folder),"
            " which semflow does not read as a frame: convert them with a raw converter to RGB PNGs or TIFFs,"
            " or move them out")
    with pytest.raises(InputError, match=re.escape(said)):
        folder_images(folder)
    cli_fails("run", "shots", "--method", "farneback", "--out", "out", match=said)
    cli_fails("segment", "shots", "--out", "out", match=said)


def test_frames_numbered_without_leading_zeros_are_in_number_order(tmp_path: Path) -> None:
    for name in ("frame10.png", "frame2.png", "frame1.png"):
        write_image(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    assert [p.name for p in folder_images(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png"]


# --- one frame under two names --------------------------------------------------------------------


def test_a_frame_under_two_kinds_of_file_is_named_not_read_twice(tmp_path: Path, cli_fails) -> None:
    """0001.jpg beside 0001.png (every frame as both) was read as twice the frames, each paired with its own
    copy (zero flow, silently): now one line names two files of one frame and says to keep one kind, for
    `run` and the API (batch's clips: tests/test_batch_hardening.py)."""
    folder = frames_named(tmp_path / "twice", [f"{k:04d}.{ext}" for k in (1, 2, 3) for ext in ("jpg", "png")])
    said = (f"{folder / '0001.jpg'} and 0001.png are one frame under two names (3 frames in the folder have more"
            " than one file): keep one kind of file (move the .jpg or the .png files out)")
    with pytest.raises(InputError, match=re.escape(said)):
        folder_images(folder)
    with pytest.raises(InputError, match=re.escape(said)):
        FrameSource(folder)
    cli_fails("run", "twice", "--method", "farneback", "--out", "out", match=said.replace(str(folder), "twice"))
    # segment labels each image on its own (A.png beside a.png: two images), its outputs named by stem: one each
    cli_fails("segment", "twice", "--out", "out", match="twice/0001.png and twice/0001.jpg would both be written to")


def test_names_of_one_number_are_named_not_read_in_the_listings_order(tmp_path: Path) -> None:
    """1.png and 01.png sort as equals: they came in whatever order the file system listed them."""
    folder = frames_named(tmp_path / "f", ["1.png", "01.png", "2.png", "3.png"])
    with pytest.raises(InputError, match=r"/f/01\.png and 1\.png are one frame under two names \(1 frame"
                                         r" in the folder has more than one file\): rename or move one of them out$"):
        folder_images(folder)


def test_a_raw_plus_jpeg_pair_and_numbered_names_of_other_frames_are_no_clash(tmp_path: Path) -> None:
    folder = frames_named(tmp_path / "f", ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0010.JPG", "IMG_0001_edit.JPG"])
    (folder / "IMG_0001.CR2").write_bytes(b"II*\x00" + bytes(60))
    assert [p.name for p in folder_images(folder)] == ["IMG_0001.JPG", "IMG_0001_edit.JPG", "IMG_0002.JPG",
                                                       "IMG_0010.JPG"]
