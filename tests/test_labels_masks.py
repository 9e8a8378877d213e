"""segmentation.labels and segmentation.masks at the edges the pipeline tests do not reach: a void id
among the classes, a label map given as three equal channels."""

from __future__ import annotations

import numpy as np

from semflow.segmentation.labels import LabelSet, check_labels


def test_a_void_id_among_the_classes_is_coloured_black() -> None:
    ls = LabelSet("v", ["unlabelled", "car", "road"], {"car": "thing"}, void_id=0,
                  palette=np.uint8([[200, 10, 10], [10, 200, 10], [10, 10, 200]]))
    out = ls.colorize(np.uint8([[0, 1, 2]]))
    assert out.tolist() == [[[0, 0, 0], [10, 200, 10], [10, 10, 200]]]


def test_check_labels_takes_three_equal_channels_as_one() -> None:
    ls = LabelSet("s", ["a", "b", "c"], {})
    labels = np.uint8([[0, 1], [2, 1]])
    out = check_labels(np.repeat(labels[..., None], 3, axis=2), ls, (2, 2))
    assert out.dtype == np.uint8 and np.array_equal(out, labels)


def test_voc_palette_is_pascals_bit_interleaved_colour_map() -> None:
    from semflow.segmentation import VOC

    assert VOC.palette[[0, 1, 2, 3, 4, 7, 15]].tolist() == [
        [0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 128, 128], [192, 128, 128]]


def test_given_masks_shrunk_with_the_frames_keep_class_ids_only(tmp_path) -> None:
    # Columns alternate Road (3) and Car (8): shrinking by half must pick classes, never blend them.
    import cv2

    from semflow.segmentation.masks import MaskSegmenter

    labels = np.zeros((30, 40), np.uint8)
    labels[:, 0::2], labels[:, 1::2] = 3, 8
    cv2.imwrite(str(tmp_path / "a.png"), labels)
    out = MaskSegmenter(tmp_path).predict(np.zeros((15, 20, 3), np.uint8), key="a").labels
    assert out.shape == (15, 20) and set(np.unique(out)) <= {3, 8}


def test_given_masks_are_found_by_stem_and_file_name_and_refuse_ids_past_the_classes(tmp_path) -> None:
    import cv2
    import pytest

    from semflow.errors import InputError
    from semflow.segmentation.masks import MaskSegmenter

    labels = np.zeros((6, 8), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), labels)
    cv2.imwrite(str(tmp_path / "cam.png"), labels)
    seg = MaskSegmenter(tmp_path)
    assert seg.path_for("a.jpg") == tmp_path / "a.png"  # an image's file name: its stem's map
    assert seg.path_for("a") == tmp_path / "a.png"
    with pytest.raises(InputError, match="no label map"):
        seg.path_for("cam.left")  # a stem with a dot that is no image suffix: its own map only
    labels[2, 2] = 21  # one past VOC's classes (void is 255)
    cv2.imwrite(str(tmp_path / "v.png"), labels)
    with pytest.raises(InputError, match="unknown class ids 21"):
        MaskSegmenter(tmp_path, label_set="voc").predict(np.zeros((6, 8, 3), np.uint8), key="v")


def test_given_masks_shrunk_with_the_frames_stay_on_the_shrunk_frames_pixels(tmp_path) -> None:
    # A Car square on rows and columns 31-60 of a 90x90 map; the frames shrunk to 30x30 (by 3, INTER_AREA):
    # each small pixel is the 3x3 block around full pixel 3i+1, so the car covers small pixels 10-19 (the
    # blocks with 2 or 3 car rows). Nearest-neighbour without pixel centres took full pixel 3i and moved the
    # car down and right by one small pixel (rows and columns 11-20).
    import cv2

    from semflow.io.video import resize_max_side
    from semflow.segmentation.masks import MaskSegmenter

    labels = np.full((90, 90), 3, np.uint8)
    labels[31:61, 31:61] = 8
    cv2.imwrite(str(tmp_path / "a.png"), labels)
    frame = resize_max_side(np.where(labels[..., None] == 8, 255, 0).astype(np.uint8).repeat(3, 2), 30)
    out = MaskSegmenter(tmp_path).predict(frame, key="a").labels
    expected = np.full((30, 30), 3, np.uint8)
    expected[10:20, 10:20] = 8
    assert np.array_equal(out, expected)
    assert (frame[10:20, 10:20, 0] >= 113).all() and (frame[out == 3, 0] <= 85).all()  # where the frame shows it


def test_a_label_set_file_whose_void_class_is_a_thing_or_plane_is_refused(tmp_path) -> None:
    # Void is stuff (the docs): a void id that is a class of kind thing gave void pixels that kind.
    import json

    import pytest

    from semflow.errors import InputError
    from semflow.segmentation.labels import get_label_set

    path = tmp_path / "v.json"
    path.write_text(json.dumps({"class_names": ["unlabelled", "car", "road"],
                                "kinds": {"unlabelled": "thing", "car": "thing"}, "void_id": 0}))
    with pytest.raises(InputError, match=r"void id 0 is class 'unlabelled', of kind thing") as info:
        get_label_set(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_kinds_that_make_the_void_class_a_plane_are_refused_and_stuff_is_kept() -> None:
    import pytest

    from semflow.errors import InputError

    ls = LabelSet("v", ["unlabelled", "car", "road"], {"car": "thing"}, void_id=0)
    assert ls.kind_map(np.uint8([[0, 1, 2]])).tolist() == [[0, 2, 0]]  # a stuff void class stays allowed
    with pytest.raises(InputError, match=r"void id 0 is class 'unlabelled', of kind plane"):
        ls.with_kinds("unlabelled:plane")
