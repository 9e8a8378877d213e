"""``semflow segment`` keeps the output promises: no writing through links, no two inputs to one file,
never over its own inputs (given masks included), nothing left behind by a failed command, and a
malformed label-set JSON is one clear line. Given masks (``--backend masks:PATH``) keep these fast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from semflow.errors import InputError
from semflow.io.images import write_image
from semflow.segmentation.labels import get_label_set

H, W = 48, 64


@pytest.fixture
def seg(tmp_path: Path, pair: tuple[Path, Path]) -> Path:
    """``a.png`` (an image, from ``pair``) and ``lbl.png`` (a label map of all 3s, CamVid's Road) in tmp_path."""
    write_image(tmp_path / "lbl.png", np.full((H, W), 3, np.uint8))
    return tmp_path


MASKS = ("--backend", "masks:lbl.png")


def test_overlay_folder_that_is_a_link_is_refused(seg, cli_fails):
    (seg / "victim").mkdir()
    (seg / "ov").mkdir()
    (seg / "ov" / "overlay").symlink_to("../victim")
    cli_fails("segment", "a.png", "--out", "ov", "--overlay", *MASKS, match="ov/overlay: is a symbolic link")
    assert not any((seg / "victim").iterdir())


def test_video_folder_that_is_a_link_is_refused(seg, cli_fails, make_video):
    make_video(3, name="v.mp4")
    make_video(3, name="w.mp4", seed=1)
    (seg / "victim").mkdir()
    (seg / "out").mkdir()
    (seg / "out" / "v").symlink_to("../victim")
    cli_fails("segment", "v.mp4", "w.mp4", "--out", "out", *MASKS, match="out/v: is a symbolic link")
    assert not any((seg / "victim").iterdir())


def test_a_frame_and_an_image_of_the_same_name_are_refused(seg, cli_fails, make_video):
    make_video(3, name="v.mp4")
    write_image(seg / "uniq" / "000001.png", np.zeros((H, W, 3), np.uint8))
    cli_fails("segment", "v.mp4", "uniq/000001.png", "--out", "out", *MASKS,
              match="would both be written to out/000001.png")


def test_given_masks_are_never_written_over(seg, cli_fails, make_video):
    write_image(seg / "mk" / "a.png", np.full((H, W), 3, np.uint8))
    before = (seg / "mk" / "a.png").read_bytes()
    cli_fails("segment", "a.png", "--out", "mk", "--backend", "masks:mk/a.png", match="mk/a.png: is also an input")
    assert (seg / "mk" / "a.png").read_bytes() == before
    make_video(3, name="v.mp4")
    for i in range(3):
        write_image(seg / "mk2" / f"{i:06d}.png", np.full((H, W), 3, np.uint8))
    cli_fails("segment", "v.mp4", "--out", "mk2", "--backend", "masks:mk2", match="mk2/000000.png: is also an input")


def test_a_folder_of_one_videos_masks_is_refused_for_several_videos(seg, cli_fails, make_video):
    """Each video's frame N read the same NNNNNN.png, without a word; one PNG for every frame stays allowed."""
    make_video(3, name="v.mp4")
    make_video(3, name="w.mp4", seed=1)
    for i in range(3):
        write_image(seg / "mk" / f"{i:06d}.png", np.full((H, W), 3, np.uint8))
    cli_fails("segment", "v.mp4", "w.mp4", "--out", "out", "--backend", "masks:mk",
              match="holds one video's masks, and 2 videos were given")
    assert not (seg / "out").exists()
    from semflow.segmentation.segment import segment_inputs

    assert len(segment_inputs([seg / "v.mp4"], seg / "one", backend=f"masks:{seg / 'mk'}", progress=False)) == 3
    assert len(segment_inputs([seg / "v.mp4", seg / "w.mp4"], seg / "two", backend=f"masks:{seg / 'lbl.png'}",
                              progress=False)) == 6


def test_label_maps_left_from_a_longer_video_are_warned_about(seg, make_video):
    """A shorter video segmented into a folder left the longer one's last maps among its own, without a word."""
    from semflow.errors import SemflowWarning
    from semflow.segmentation.segment import segment_inputs

    make_video(5, name="long.mp4")
    make_video(3, name="short.mp4", seed=1)
    masks = f"masks:{seg / 'lbl.png'}"
    assert len(segment_inputs([seg / "long.mp4"], seg / "out", backend=masks, progress=False)) == 5
    with pytest.warns(SemflowWarning, match=r"2 label maps beside this video's are not from it \(000003.png-000004.png"):
        segment_inputs([seg / "short.mp4"], seg / "out", backend=masks, progress=False)
    assert (seg / "out" / "000004.png").exists()  # the user's to remove
    (seg / "out" / "000003.png").unlink()  # one left: "1 label map ... is" (it said "1 label map ... are")
    with pytest.warns(SemflowWarning, match=r"1 label map beside this video's is not from it \(000004.png; left by an"
                                            r" earlier semflow segment\?\)$"):
        segment_inputs([seg / "short.mp4"], seg / "out", backend=masks, progress=False)
    segment_inputs([seg / "long.mp4"], seg / "out", backend=masks, progress=False)  # all its own: no warning


def test_an_output_folder_that_is_a_file_fails_before_writing(seg, cli_fails):
    (seg / "ov").mkdir()
    (seg / "ov" / "overlay").write_text("x")
    cli_fails("segment", "a.png", "--out", "ov", "--overlay", *MASKS, match="ov/overlay: not a folder")


def test_a_failed_command_leaves_no_outputs(seg, cli_fails, make_video):
    (seg / "trunc.png").write_bytes((seg / "a.png").read_bytes()[:3000])
    cli_fails("segment", "a.png", "trunc.png", "--out", "new/out", *MASKS, match="trunc.png")  # nor new/
    # (from Python, the code the command runs) into a folder that already holds outputs: they stay as they
    # were, no staging folder is left; a video that fails after some frames were segmented (no mask for 2)
    from semflow.segmentation.segment import segment_inputs

    write_image(seg / "old" / "a.png", np.zeros((H, W), np.uint8))
    before = (seg / "old" / "a.png").read_bytes()
    with pytest.raises(InputError, match="trunc.png"):
        segment_inputs([seg / "a.png", seg / "trunc.png"], seg / "old", backend=f"masks:{seg / 'lbl.png'}")
    assert (seg / "old" / "a.png").read_bytes() == before and sorted(os.listdir(seg / "old")) == ["a.png"]
    make_video(3, name="v.mp4")
    for i in range(2):
        write_image(seg / "mk" / f"{i:06d}.png", np.full((H, W), 3, np.uint8))
    with pytest.raises(InputError, match="000002.png"):
        segment_inputs([seg / "v.mp4"], seg / "vout", backend=f"masks:{seg / 'mk'}", overlay=True)
    assert not (seg / "vout").exists()


def test_segment_still_writes_everything(seg, run_cli, make_video):
    from semflow.segmentation.segment import segment_inputs

    make_video(3, name="v.mp4")
    result = run_cli("segment", "a.png", "v.mp4", "--out", "out", "--overlay", *MASKS)
    assert result.rc == 0, result.stderr
    # again, from Python (the code the command runs): the second run replaces the first one's outputs
    segment_inputs([seg / "a.png", seg / "v.mp4"], seg / "out", backend=f"masks:{seg / 'lbl.png'}", overlay=True,
                   progress=False)
    names = sorted(str(p.relative_to(seg / "out")) for p in (seg / "out").rglob("*"))
    assert names == ["000000.png", "000001.png", "000002.png", "a.png", "overlay", "overlay.mp4", "overlay/a.png"]


BAD_LABEL_SETS = [
    ("[1, 2]", "JSON object"),
    ('{"kinds": {}}', '"class_names"'),
    ('{"class_names": "abc"}', '"class_names"'),
    ('{"class_names": ["a", "a"]}', '"class_names"'),
    ('{"class_names": ["Car", "car"]}', 'differing only in case'),  # --kinds could not tell them apart
    ('{"class_names": ["a", " "]}', 'not empty'),
    ('{"class_names": ["a"], "name": 3}', '"name"'),
    ('{"class_names": ["a"], "kinds": ["a"]}', '"kinds"'),
    ('{"class_names": ["a"], "void_id": "x"}', '"void_id"'),
    ('{"class_names": ["a"], "void_id": 300}', '"void_id"'),
    ('{"class_names": ["a", "b", "c", "d"], "palette": [[1000, -5, 3]]}', '"palette"'),
    ('{"class_names": ["a"], "palette": [[1, 2, 3], [4, 5, 6]]}', '"palette"'),
    ('{"class_names": ["a"], "palette": [[1, 2]]}', '"palette"'),
]


@pytest.mark.parametrize(("text", "field"), BAD_LABEL_SETS)
def test_malformed_label_set_json_names_the_field(tmp_path, text, field):
    path = tmp_path / "X.json"
    path.write_text(text)
    with pytest.raises(InputError, match=field) as info:
        get_label_set(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_malformed_label_set_on_the_cli(seg, cli_fails):  # (each malformation: the in-process test above)
    (seg / "X.json").write_text('{"class_names": ["a", "b", "c", "d"], "void_id": "x"}')
    cli_fails("segment", "a.png", "--out", "out", "--overlay", *MASKS, "--label-set", "X.json", match="X.json: ")


def test_a_video_claiming_millions_of_frames_is_planned_without_listing_them(seg, cli_fails, make_video,
                                                                               monkeypatch):
    # The plan checks a video's frames by their folder and count, not one path a frame: a container
    # that claims 10**8 frames costs nothing to check, and an image written where frame 5 goes is still
    # refused.
    import semflow.io.video as video

    make_video(3, name="v.mp4")
    monkeypatch.setattr(video.FrameSource, "__len__", lambda self: 10**8)
    from semflow.segmentation.segment import segment_inputs

    write_image(seg / "im" / "000005.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(InputError, match="would both be written to .*/out/000005.png$"):
        segment_inputs([seg / "v.mp4", seg / "im" / "000005.png"], seg / "out", backend=f"masks:{seg / 'lbl.png'}")
    assert not (seg / "out").exists()


def test_an_image_named_as_the_frame_after_a_videos_last_is_no_clash(seg, make_video):
    # A 3-frame video writes out/000000.png..000002.png: an image named 000002.png would overwrite its last
    # frame (refused), one named 000003.png lands beside them (written; the clash check stops at the count).
    from semflow.segmentation.segment import segment_inputs

    make_video(3, name="v.mp4")
    backend = f"masks:{seg / 'lbl.png'}"
    for k in (2, 3):
        write_image(seg / "im" / f"{k:06d}.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(InputError, match="would both be written to .*/out/000002.png$"):
        segment_inputs([seg / "v.mp4", seg / "im" / "000002.png"], seg / "out", backend=backend)
    segment_inputs([seg / "v.mp4", seg / "im" / "000003.png"], seg / "out", backend=backend)
    assert sorted(p.name for p in (seg / "out").glob("0*.png")) == [f"{k:06d}.png" for k in range(4)]


def test_a_killed_commands_staging_folder_is_removed_by_the_next(seg):
    """A `segment` killed (SIGKILL: no clean-up) left OUT/.segment-XXXXXXXX for good; the next command into
    OUT removes it, but never one a running command holds, a link, or a folder not so named. One left a moment
    ago goes too (the crash probe: a segment killed and run again at once kept it, as one "just made"; but
    the command holds OUT's lock: no other can be making one there)."""
    import fcntl
    import os
    import time

    from semflow.io.atomic import STALE_STAGING_SECONDS
    from semflow.segmentation.segment import segment_inputs

    out = seg / "out"
    stale, held, fresh, other = (out / name for name in (".segment-k1ll3d_0", ".segment-h3ld0000",
                                                         ".segment-fr3sh000", ".segment-mine"))
    for folder in (stale, held, fresh, other):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "x.png").write_bytes(b"x")
    (seg / "victim").mkdir()
    (seg / "victim" / "keep").write_bytes(b"k")
    link = out / ".segment-l1nk0000"
    link.symlink_to("../victim")
    old = time.time() - 2 * STALE_STAGING_SECONDS
    for path in (stale, held, other, link):
        os.utime(path, (old, old), follow_symlinks=False)
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another segment into OUT, still going
    try:
        segment_inputs([seg / "a.png"], out, backend=f"masks:{seg / 'lbl.png'}", progress=False)
    finally:
        os.close(fd)
    assert not stale.exists() and not fresh.exists() and (out / "a.png").is_file()
    assert all((folder / "sub" / "x.png").is_file() for folder in (held, other))
    assert link.is_symlink() and (seg / "victim" / "keep").is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted([".segment-h3ld0000", ".segment-l1nk0000", ".segment-mine",
                                                            "a.png"])


def test_one_path_given_as_a_string_is_one_input(seg):
    """segment_inputs("a.png", ...) took the string as a list of its characters ("a: no such file")."""
    from semflow.segmentation.segment import segment_inputs

    written = segment_inputs(str(seg / "a.png"), seg / "one", backend=f"masks:{seg / 'lbl.png'}", progress=False)
    assert written == [seg / "one" / "a.png"] and (seg / "one" / "a.png").is_file()
    with pytest.raises(InputError, match=r"max frames \(--max-frames\) must be at least 1, got 0"):
        segment_inputs([seg / "a.png"], seg / "none", backend=f"masks:{seg / 'lbl.png'}", max_frames=0)
    assert not (seg / "none").exists()  # it wrote "0 label map(s)" into a new empty folder


def test_a_folder_another_command_writes_to_is_refused(seg):
    """Two `segment` (or a `run` and a `segment`) into one OUT at once mixed their label maps."""
    import os

    from semflow.errors import OutputError
    from semflow.io.outputs import lock_folder
    from semflow.segmentation.segment import segment_inputs

    (seg / "busy").mkdir()
    held = lock_folder(seg / "busy")  # as a running `run --out busy` holds it
    try:
        with pytest.raises(OutputError, match="busy: another semflow command is writing to this folder"):
            segment_inputs([seg / "a.png"], seg / "busy", backend=f"masks:{seg / 'lbl.png'}", progress=False)
    finally:
        os.close(held)
    assert list((seg / "busy").iterdir()) == []
    assert segment_inputs([seg / "a.png"], seg / "busy", backend=f"masks:{seg / 'lbl.png'}", progress=False)


def test_max_frames_limits_the_images_of_a_folder(seg, run_cli):
    """--max-frames was silently ignored for a folder (all its images were segmented)."""
    from semflow.segmentation.segment import segment_inputs

    for k in (1, 2, 3, 10, 11, 12):  # natural order: frame10 after frame3
        write_image(seg / "imgs" / f"frame{k}.png", np.zeros((H, W, 3), np.uint8))
    written = segment_inputs([seg / "imgs", seg / "a.png"], seg / "s", backend=f"masks:{seg / 'lbl.png'}",
                             progress=False, max_frames=3)
    assert sorted(p.name for p in written) == ["a.png", "frame1.png", "frame2.png", "frame3.png"]
    result = run_cli("segment", "imgs", "--out", "cli", "--max-frames", "4", "--no-progress", *MASKS)
    assert result.rc == 0, result.stderr
    assert sorted(p.name for p in (seg / "cli").iterdir()) == ["frame1.png", "frame10.png", "frame2.png", "frame3.png"]


def test_a_mask_is_found_by_the_images_whole_stem_and_a_tilde_path_is_expanded(tmp_path: Path, monkeypatch) -> None:
    """Images cam.left.png and cam.right.png with only cam.png in the masks folder both got cam.png (exit 0):
    the stem fallback cut ".left". And masks:~/m (the shell leaves "~" after "masks:") was no such folder."""
    from semflow.segmentation import get_segmenter

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m").mkdir()
    write_image(tmp_path / "m" / "cam.png", np.full((8, 10), 3, np.uint8))
    masks = get_segmenter("masks:~/m")
    image = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(InputError, match=r"no label map for 'cam\.left' \(expected cam\.left\.png\)"):
        masks.predict(image, key="cam.left")
    assert (masks.predict(image, key="cam").labels == 3).all()
    assert (masks.predict(image, key="cam.jpg").labels == 3).all()  # (a file name: its stem's map)


def test_torchscript_given_as_segmenter_weights_says_what_to_save(tmp_path: Path) -> None:
    import warnings

    import torch

    from semflow.errors import WeightsError
    from semflow.segmentation.torch_backends import load_camvid_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (TorchScript's deprecation warning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "ts.pt"))
    with pytest.raises(WeightsError, match=r"a TorchScript archive, not weights: save the model's state_dict\(\)"):
        load_camvid_model(tmp_path / "ts.pt")


def test_a_folder_of_videos_says_to_name_them(seg, cli_fails, make_video):
    """A newcomer probe: `segment clips/` (as `batch clips/` takes it) said only "folder holds no images"."""
    (seg / "clips").mkdir()
    make_video(3, name="clips/v.mp4")
    cli_fails("segment", "clips", "--out", "out", *MASKS,
              match="clips: folder holds no images (name its videos themselves: DIR/*.mp4)")


@pytest.mark.parametrize("folded", [True, False])
def test_names_that_differ_only_in_case_clash_where_case_is_ignored(seg, monkeypatch, folded: bool):
    """A.png and a.png were written to OUT/A.png and OUT/a.png: one file where the file system ignores case
    (macOS, Windows), the second label map over the first without a word. There they are refused; where
    case tells names apart both are written."""
    import semflow.io.files as files
    import semflow.segmentation.segment as segment
    from semflow.io.files import ignores_case

    assert not ignores_case(seg / "out")  # (this machine's file system tells them apart: the other case is made up)
    (seg / "Case").mkdir()
    (seg / "cASE").symlink_to(seg / "Case")  # (as a folder that ignores case answers: the same folder)
    assert ignores_case(seg / "Case" / "out")
    monkeypatch.setattr(files, "ignores_case", lambda folder: folded)
    for name in ("A.png", "a.png"):
        write_image(seg / "im" / name, np.zeros((H, W, 3), np.uint8))
    def run() -> None:
        segment.segment_inputs([seg / "im"], seg / "out", backend=f"masks:{seg / 'lbl.png'}")

    if folded:
        with pytest.raises(InputError, match=r"a.png and .*A.png would both be written to .*/out/a.png$"):
            run()
        assert not (seg / "out").exists()
    else:
        run()
        assert sorted(p.name for p in (seg / "out").iterdir()) == ["A.png", "a.png"]
