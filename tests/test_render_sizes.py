"""The videos are previews that H.264 level 6.2 decoders play: flow.mp4 and panel.mp4 (and any video
:class:`~semflow.io.video.VideoWriter` writes) are scaled down, keeping their aspect, when a frame would have
a side over 8192 px or more than 139264 macroblocks; frames that fit are encoded as they always were.

Before, a frame wider than 8190 px made a panel x264 refuses (over 16384 px): ``semflow run`` computed every
pair, then failed. Thin frames (16 px high) keep these tests small.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow import render
from semflow.io.video import VideoWriter
from semflow.segmentation import CAMVID
from semflow.viz import add_legend, color_wheel, flow_to_color, label_image

SIDE, MACROBLOCKS = 8192, 139264  # H.264 level 6.2: the widest frame, the most 16x16 blocks in one


def _video(path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of the video at ``path``, decoded (every frame has one size)."""
    cap = cv2.VideoCapture(str(path))
    sizes = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            sizes.append(frame.shape[:2])
    finally:
        cap.release()
    assert len(set(sizes)) == 1, set(sizes)
    return len(sizes), *sizes[0]


def _playable(height: int, width: int) -> bool:
    return (max(height, width) <= SIDE and height % 2 == 0 and width % 2 == 0
            and -(-height // 16) * -(-width // 16) <= MACROBLOCKS)


def _flows_for(semantic: bool):
    def flows_for(index: int, a: np.ndarray, b: np.ndarray):
        h, w = a.shape[:2]
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 0] = np.linspace(-3, 3, w, dtype=np.float32)
        if not semantic:
            return flow, None, None
        labels = (np.arange(w)[None] * 11 // w).repeat(h, 0).astype(np.uint8)
        return flow, CAMVID.colorize(labels), -flow
    return flows_for


@pytest.mark.parametrize(("height", "width", "semantic"), [
    (16, 8400, False),  # frame | flow: 16804 px wide
    (16, 8400, True),  # 2x2 grid and the class key below it
    (9000, 16, True),  # a 2x2 grid 18004 px high
    (16, 16500, False),  # flow.mp4 itself over x264's 16384
])
def test_videos_of_frames_too_large_for_h264_are_scaled_down_to_fit(tmp_path, height, width, semantic):
    frames = [np.full((height, width, 3), 60 * k, np.uint8) for k in range(3)]
    drawn = render.render_clip(iter(frames), None, tmp_path, 5.0, 4.0, "m", _flows_for(semantic),
                               progress=False, label_set=CAMVID if semantic else None)
    assert drawn == 2
    for name in ("flow.mp4", "panel.mp4"):
        count, h, w = _video(tmp_path / name)
        assert count == 2 and _playable(h, w), (name, h, w)
        assert max(h, w) >= SIDE - 16, (name, h, w)  # as large as it may be, not smaller
        if name == "flow.mp4":  # its aspect kept (to even pixels)
            assert abs(min(height, width) * max(h, w) / max(height, width) - min(h, w)) <= 2, (h, w)


def test_a_4k_and_8k_panel_is_planned_within_level_6_2():
    """A 7680x4320 frame's panel was 15364x4320 (259k macroblocks); an 8192x4096 frame's 16388 px wide."""
    from semflow.io.video import video_size

    for height, width in ((4320, 7680), (4096, 8192), (8192, 8192)):
        for tiles in (2, 3, 4):
            th, tw = render.panel_tile_size(height, width, tiles)
            columns = 2 if tiles == 4 else tiles
            rows = -(-tiles // columns)
            panel = (rows * th + (rows - 1) * 4, columns * tw + (columns - 1) * 4)
            assert _playable(*(side + side % 2 for side in panel)), (height, width, tiles, panel)
            assert abs(tw / th - width / height) < 0.01
        assert _playable(*video_size(height, width))
    assert video_size(4320, 8192) == (4320, 8192)  # level 6.2's own largest 16:9 frame: unchanged
    assert video_size(4320, 7680) == (4320, 7680)


def test_frames_that_fit_keep_their_exact_size_and_pixels(tmp_path):
    frame = np.full((37, 51, 3), 90, np.uint8)
    flow = np.dstack([np.full((37, 51), 2.0, np.float32), np.zeros((37, 51), np.float32)])
    color, panel = render.draw_pair(frame, 3, (flow, None, None), 4.0, "m")
    expected = add_legend(flow_to_color(flow, 4.0), 4.0)
    assert np.array_equal(color, expected)
    assert np.array_equal(panel[:, 55:], label_image(expected, "m")) and panel.shape == (37, 106, 3)
    render.render_clip(iter([frame, frame, frame]), None, tmp_path, 5.0, 4.0, "m",
                       lambda i, a, b: (flow, None, None), progress=False)
    assert _video(tmp_path / "flow.mp4") == (2, 38, 52)  # odd sides padded by one pixel, as before
    assert _video(tmp_path / "panel.mp4") == (2, 38, 106)
    with VideoWriter(tmp_path / "big.mp4") as writer:  # level 6.2's largest 16:9 frame, thin: untouched
        writer.write(np.zeros((16, 8192, 3), np.uint8))
    assert _video(tmp_path / "big.mp4") == (1, 16, 8192)


def test_any_video_writer_scales_a_frame_too_wide_for_x264(tmp_path):
    """The segment command's overlay.mp4 goes through the same writer."""
    with VideoWriter(tmp_path / "wide.mp4") as writer:
        for _ in range(2):
            writer.write(np.zeros((20, 17001, 3), np.uint8))
    count, h, w = _video(tmp_path / "wide.mp4")
    assert count == 2 and _playable(h, w) and w == SIDE


def test_a_scaled_panels_legend_is_drawn_at_its_size_not_shrunk_with_it():
    """The colour wheel in the method's tile is a whole, sharp wheel of the tile's legend size (a panel
    shrunk after drawing would blur it), and the flow tile keeps the frame's aspect."""
    height, width = 300, 8400
    frame = np.zeros((height, width, 3), np.uint8)
    flow = np.zeros((height, width, 2), np.float32)
    color, panel = render.draw_pair(frame, 0, (flow, None, None), 4.0, "m")
    assert _playable(*panel.shape[:2]) and _playable(*color.shape[:2])
    tw = (panel.shape[1] - 4) // 2
    tile = panel[:, -tw:]
    assert abs(tw / panel.shape[0] - width / height) < 0.05
    for image in (tile, color):
        size = int(np.clip(min(image.shape[:2]) // 5, 24, 128))
        r = (size - 1) / 2
        yy, xx = np.mgrid[0:size, 0:size]
        disc = (xx - r) ** 2 + (yy - r) ** 2 <= r * r
        corner = image[-size - 4:-4, -size - 4:-4]
        assert np.array_equal(corner[disc], color_wheel(size)[disc])
