"""Temporal metrics, synthetic sequences, temporally filtered segmentation, the run plot and panel legends."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow.class_legend import add_class_legend
from semflow.segmentation.backends import Segmentation
from semflow.segmentation.labels import CAMVID
from semflow.segmentation.temporal import TemporalSegmentation
from semflow.synthetic import random_texture, to_uint8
from semflow.synthetic_video import camera_sequence, make_sequence
from semflow.temporal import (
    TemporalMeter,
    carry_forward,
    flicker,
    label_flip_rate,
    largest_jump,
    mean_photometric_error,
    metric_stride,
    warped_flicker,
)
from semflow.viz import add_legend, label_image, legend_text_box

# --- metrics ------------------------------------------------------------------------------------------


def test_photometric_error_of_large_frames_is_measured_on_a_sample_that_agrees_with_the_whole():
    assert metric_stride((480, 360)) == 1 and metric_stride((540, 960)) == 2 and metric_stride((1080, 1920)) == 3
    rng = np.random.default_rng(4)
    image1 = random_texture(540, 960, rng).astype(np.uint8)
    flow = np.zeros((540, 960, 2), np.float32) + (4.0, -1.0)
    image2 = np.roll(image1, (-1, 2), axis=(0, 1))  # moved by (2, -1): the flow is 2 px off in x
    noisy = np.clip(image2.astype(np.int16) + rng.integers(-6, 7, image2.shape), 0, 255).astype(np.uint8)
    whole = mean_photometric_error(image1, noisy, flow)
    sampled = mean_photometric_error(image1, noisy, flow, stride=2)
    assert whole > 1.0 and sampled == pytest.approx(whole, rel=0.02)
    assert mean_photometric_error(image1, noisy, flow - (2.0, 0.0), stride=2) < 0.9 * sampled  # the right flow scores better


def test_flicker_of_constant_flows():
    a = np.zeros((20, 30, 2), np.float32) + (3.0, 1.0)
    b = np.zeros((20, 30, 2), np.float32) + (3.0, 5.0)
    assert flicker(a, a) == 0.0 and warped_flicker(a, a) == pytest.approx(0.0, abs=1e-6)
    assert flicker(b, a) == pytest.approx(4.0)


def test_warped_flicker_follows_a_moving_object():
    """A block moving 6 px right: its flow in pair t sits 6 px further right than in pair t-1, so plain
    flicker sees two changed strips, the flow carried along itself sees none."""
    prev = np.zeros((40, 60, 2), np.float32)
    prev[10:20, 10:20] = (6.0, 0.0)
    cur = np.zeros_like(prev)
    cur[10:20, 16:26] = (6.0, 0.0)
    carried, valid = carry_forward(prev)
    assert not valid[10:20, 10:16].any() and valid.mean() > 0.95  # the strip the block uncovers is unknown
    np.testing.assert_array_equal(carried[10:20, 16:26], np.broadcast_to(np.float32([6, 0]), (10, 10, 2)))
    assert flicker(cur, prev) > 0.2
    assert warped_flicker(cur, prev) < 0.25 * flicker(cur, prev)


def test_photometric_error_and_flips_on_an_exact_sequence():
    seq = make_sequence(4, 96, 128, seed=5)
    for k in range(3):
        exact = mean_photometric_error(seq.frames[k], seq.frames[k + 1], seq.flows[k])
        zero = mean_photometric_error(seq.frames[k], seq.frames[k + 1], np.zeros_like(seq.flows[k]))
        assert exact < 4.0 and zero > 2.5 * exact
    # labels moved by an integer shift: every label "flips" somewhere, none after motion compensation
    labels = (np.indices((40, 50)).sum(0) // 7 % 3).astype(np.uint8)
    moved = np.roll(labels, 3, axis=1)
    shift = np.zeros((40, 50, 2), np.float32) + (3.0, 0.0)
    assert label_flip_rate(labels, moved) > 0.2
    assert label_flip_rate(labels, moved, shift) == 0.0
    colours = CAMVID.colorize(labels)
    assert label_flip_rate(colours, CAMVID.colorize(moved)) == pytest.approx(label_flip_rate(labels, moved))


def test_meter_pair_by_pair_and_largest_jump():
    seq = make_sequence(5, 64, 80, seed=2)
    meter = TemporalMeter()
    for k in range(4):
        row = meter.add(seq.frames[k], seq.frames[k + 1], seq.flows[k], labels=seq.labels[k], seconds=0.5)
        assert (row["flicker"] is None) == (k == 0) and (row["label_flip_rate"] is None) == (k == 0)
    summary = meter.summary()
    assert len(meter.pairs) == 4 and summary["magnitude_min"] <= summary["magnitude_max"]
    assert summary["flicker"] < 1.0 and summary["photometric_error"] < 4.0
    assert summary["largest_magnitude_jump"] < 1.5  # smooth motion
    assert [meter.pairs[k]["flicker"] is None for k in range(4)] == [True, False, False, False]
    rows = [{"magnitude": m, "image_change": c} for m, c in ((2.0, 5.0), (2.2, 5.0), (9.0, 5.1), (3.0, 5.0))]
    jump = largest_jump(rows)
    assert jump["jump_pair"] == 2 and jump["largest_magnitude_jump"] == pytest.approx(9.0 / 2.2)
    assert jump["jump_image_change_ratio"] < 1.05  # the images did not change to match: a suspicious jump


# --- synthetic sequences ---------------------------------------------------------------------------------


def test_sequence_flows_are_exact_and_smooth():
    seq = make_sequence(6, 120, 160, seed=1, num_objects=2)
    assert len(seq) == 6 and len(seq.flows) == len(seq.occluded) == 5
    h, w = 120, 160
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for k, flow in enumerate(seq.flows):
        back = cv2.remap(seq.frames[k + 1].astype(np.float32), x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR)
        err = np.abs(back - seq.frames[k]).mean(axis=2)
        visible = ~seq.occluded[k]
        assert err[visible].mean() < 2.0 and visible.mean() > 0.8
        assert set(np.unique(seq.labels[k])) <= {3, 8} and (seq.instances[k] > 0).any()
    np.testing.assert_allclose(seq.camera[0], np.eye(3), atol=1e-12)
    steps = [flicker(seq.flows[k + 1], seq.flows[k]) for k in range(4)]
    mags = [np.linalg.norm(f, axis=2).mean() for f in seq.flows]
    assert max(steps) < 0.5 * max(mags)  # smooth motion: the flow changes far less than its size


def test_camera_sequence_labels_follow_the_flow():
    rng = np.random.default_rng(0)
    image = to_uint8(random_texture(60, 80, rng))
    labels = (np.indices((60, 80))[1] // 20).astype(np.uint8)
    frames, labs, flows = camera_sequence(image, labels, frames=4, zoom=0.02, pan=(1.5, 0.5))
    assert len(frames) == len(labs) == 4 and len(flows) == 3
    assert np.array_equal(labs[0], labels) and (labs[3] == 255).any()  # the camera sees past the border
    inner = (slice(10, 50), slice(10, 70))
    assert label_flip_rate(labs[1][inner], labs[2][inner], flows[1][inner]) < 0.05


# --- temporally filtered segmentation -----------------------------------------------------------------------


def _seg(probs: np.ndarray) -> Segmentation:
    return Segmentation(probs.astype(np.float32), probs.argmax(2).astype(np.uint8), CAMVID)


def _two_class_probs(p0: np.ndarray) -> np.ndarray:
    probs = np.full((*p0.shape, 11), 1e-3, np.float32)
    probs[..., 0], probs[..., 3] = p0, 1.0 - p0
    return probs / probs.sum(2, keepdims=True)


def test_fusion_steadies_flip_flopping_evidence():
    """A still frame whose segmenter output hovers around 60:40 for class 0 with per-frame noise: each
    frame alone calls about 30% of the pixels class 3, and other pixels every frame; fused, the labels
    settle on class 0 and stop flipping."""
    rng = np.random.default_rng(0)
    frame = to_uint8(random_texture(48, 64, rng))
    fusion = TemporalSegmentation()
    single, fused = [], []
    for _ in range(10):
        probs = _two_class_probs(np.clip(0.6 + 0.25 * rng.uniform(-1, 1, (48, 64)), 0.01, 0.99))
        single.append(probs.argmax(2))
        fused.append(fusion.update(frame, _seg(probs)).labels)
    assert fusion.trust is not None and fusion.trust.mean() > 0.95
    flips_single = np.mean([label_flip_rate(a, b) for a, b in zip(single[4:], single[5:])])
    flips_fused = np.mean([label_flip_rate(a, b) for a, b in zip(fused[4:], fused[5:])])
    assert flips_single > 0.2 and flips_fused < 0.25 * flips_single
    assert (fused[-1] == 0).mean() > 0.97 and (single[-1] == 0).mean() < 0.8


def test_fusion_keeps_labels_decided_beyond_the_probabilities():
    """A CLIP prior labels a whole region (here class 9, "Pedestrian") where its pixels' probabilities still
    favour class 0: the video filter replaced every label by the fused argmax, so a video's label maps no
    longer matched the prior's decisions (21 % of the pixels agreed). Now the frame's labels stay where the
    filter does not change the decision its probabilities make."""
    rng = np.random.default_rng(0)
    frame = to_uint8(random_texture(48, 64, rng))
    probs = _two_class_probs(np.full((48, 64), 0.8))
    decided = np.zeros((48, 64), np.uint8)
    decided[10:30, 20:40] = 9  # the region's decision
    fusion = TemporalSegmentation()
    for _ in range(4):
        out = fusion.update(frame, Segmentation(probs, decided, CAMVID))
    assert fusion.trust is not None and fusion.trust.mean() > 0.95
    np.testing.assert_array_equal(out.labels, decided)


def test_fusion_follows_motion_and_forgets_after_a_cut():
    """A textured scene moving 3 px per frame with a moving class boundary: fused labels move with it
    (no lag); after a cut to an unrelated frame the flow is not trusted and the new frame's labels win."""
    rng = np.random.default_rng(1)
    texture = to_uint8(random_texture(60, 120, rng))
    fusion = TemporalSegmentation()
    for k in range(6):
        frame = np.ascontiguousarray(texture[:, 30 - 3 * k:110 - 3 * k])
        truth = np.zeros((60, 80), np.int64)
        truth[:, 40 + 3 * k - 10:] = 3  # boundary at texture column 60, moving right 3 px per frame
        probs = _two_class_probs(np.where(truth == 0, 0.8, 0.2))
        out = fusion.update(frame, _seg(probs))
        assert (out.labels == truth).mean() > 0.98
    other = to_uint8(random_texture(60, 80, np.random.default_rng(7)))
    probs = _two_class_probs(np.full((60, 80), 0.3))  # the new shot says class 3 everywhere
    out = fusion.update(other, _seg(probs))
    assert fusion.trust.mean() < 0.3 and (out.labels == 3).mean() > 0.95


def test_fusion_first_frame_and_settings():
    probs = _two_class_probs(np.full((8, 8), 0.7))
    seg = _seg(probs)
    assert TemporalSegmentation().update(np.zeros((8, 8, 3), np.uint8), seg) is seg
    with pytest.raises(ValueError):
        TemporalSegmentation(switch=0.0)


# --- pictures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(32, 40), (40, 48), (48, 40), (30, 120), (64, 64), (100, 80), (240, 320), (576, 768)])
@pytest.mark.parametrize("max_flow", [1.0, 123.4, 12345.6])
def test_legend_label_stays_inside_the_tile(size, max_flow):
    h, w = size
    text, scale, x, y, bw, bh = legend_text_box(h, w, max_flow)
    assert 0 <= x and x + bw <= w and 0 <= y and y + bh <= h and scale >= 0.25
    assert (f"{max_flow:.0f}" in text or f"{max_flow:.1f}" in text) and (w < 100 or text.startswith("max "))
    out = add_legend(np.full((h, w, 3), 255, np.uint8), max_flow)
    assert out.shape == (h, w, 3) and (out[y:y + bh, x:x + bw] < 128).any()  # dark box behind the text


def test_titles_readable_on_white_and_class_legend():
    white = np.full((120, 160, 3), 255, np.uint8)
    titled = label_image(white, "a rather long title for this small tile")
    assert titled[:8].mean() < 160 and (titled[:16] > 200).all(axis=2).any()  # dark bar, white text on it
    assert (titled[40:] == 255).all()
    seg = CAMVID.colorize(np.full((240, 320), 3, np.uint8))
    keyed = add_class_legend(seg, CAMVID.class_names, CAMVID.palette)
    for colour in CAMVID.palette[:11]:
        assert (keyed == colour).all(axis=2).any(), colour


def test_run_summary_has_temporal_metrics_and_plot(make_frames, tmp_path: Path):
    from semflow.pipeline import RunOptions, run_video

    frames = make_frames(5, 48, 64, shift=(2, 1))
    out = tmp_path / "out"
    run_video(frames, out, RunOptions(method="dis-medium"))
    temporal = json.loads((out / "summary.json").read_text())["temporal"]
    assert temporal["flicker"] < 0.5 and temporal["warped_flicker"] < 0.5
    assert temporal["photometric_error"] < temporal["image_change"]
    assert temporal["label_flip_rate"] is None  # dis-medium has no segmentation
    assert 1.8 < temporal["magnitude_min"] <= temporal["magnitude_max"] < 2.8
    plot = cv2.imread(str(out / "plot.png"))
    assert plot is not None and plot.shape[0] > 300 and plot.shape[1] > 400


def test_segment_video_mode_and_pairwise(tmp_path: Path):
    """`semflow segment` on a video filters labels along the flow by default; --pairwise writes each
    frame's own labels, exactly what the segmenter gives for that frame."""
    from click.testing import CliRunner

    from semflow.cli import main
    from semflow.segmentation import get_segmenter
    from semflow.segmentation.backends import default_weights_path

    if not default_weights_path().is_file():
        pytest.skip("shipped segmenter weights are missing")
    from semflow.io.video import FrameSource, VideoWriter

    rng = np.random.default_rng(3)
    base = np.clip(random_texture(72, 96, rng) + 0.5, 0, 255)
    video = tmp_path / "still.mp4"
    with VideoWriter(video, 5) as writer:
        for _ in range(5):  # a still scene with sensor noise: every label change is a flicker
            writer.write(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    runner = CliRunner()
    for args, out in (([], "video"), (["--pairwise"], "pairwise")):
        result = runner.invoke(main, ["segment", str(video), "--out", str(tmp_path / out), *args])
        assert result.exit_code == 0, result.output
    seg = get_segmenter("camvid")
    frames = list(FrameSource(video))
    flips = {}
    for out in ("video", "pairwise"):
        labels = [cv2.imread(str(tmp_path / out / f"{k:06d}.png"), cv2.IMREAD_UNCHANGED) for k in range(5)]
        flips[out] = np.mean([label_flip_rate(a, b) for a, b in zip(labels, labels[1:])])
        if out == "pairwise":
            for k in range(5):
                assert np.array_equal(labels[k], seg.predict(frames[k]).labels)
    assert flips["video"] <= flips["pairwise"]


def test_meter_rows_read_back_as_added_and_stay_small() -> None:
    """The meter held a dict of 7 numbers a pair (about 430 bytes; 46 MB an hour of 30 fps): columns now."""
    import tracemalloc

    rng = np.random.default_rng(3)
    rows = [{"magnitude": float(m), "flicker": None if k == 0 else float(f), "warped_flicker": float(f) / 2,
             "photometric_error": float(e), "image_change": 1.5, "label_flip_rate": None, "seconds": 0.25}
            for k, (m, f, e) in enumerate(rng.uniform(0, 9, (5000, 3)))]
    meter = TemporalMeter()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for row in rows:
            meter.pairs.append(dict(row))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(rows) < 120  # 7 float64 a pair, with the arrays' spare room
    assert len(meter.pairs) == 5000 and meter.pairs[17] == rows[17] and meter.pairs[-1] == rows[-1]
    assert meter.pairs[:2] == rows[:2] and meter.pairs.column("flicker")[:2] == [None, rows[1]["flicker"]]
    assert meter.pairs == rows and meter.pairs != rows[:-1]
    with pytest.raises(ValueError, match="unknown keys \\['speed'\\]"):
        meter.pairs.append({"magnitude": 1.0, "speed": 2.0})  # (it would be dropped without a word)
    meter.pairs.set_column("seconds", [1.0, None])
    assert meter.pairs[0]["seconds"] == 1.0 and meter.pairs[1]["seconds"] is None and meter.pairs[2]["seconds"] == 0.25
    summary = meter.summary()
    assert summary["flicker"] == pytest.approx(np.mean([r["flicker"] for r in rows[1:]]))
    assert summary["label_flip_rate"] is None and summary["magnitude_max"] == max(r["magnitude"] for r in rows)


def test_a_pair_without_a_number_leaves_a_gap_in_the_plot() -> None:
    """A NaN (a warped flicker with nothing landing) was drawn as a gap; the meter's columns joined its
    neighbours across it for a while."""
    from semflow.plots import plot_figure

    meter = TemporalMeter()
    for k in range(6):
        meter.pairs.append({"magnitude": 1.0 + k, "flicker": None if k == 0 else 0.5,
                            "warped_flicker": float("nan") if k == 3 else 0.25, "seconds": 0.1})
    for pairs in (meter.pairs, list(meter.pairs)):
        flicker, warped = (line.get_ydata() for line in plot_figure(pairs).axes[1].lines)
        assert len(warped) == 6 and np.isnan(warped[3]) and warped[4] == 0.25 and np.isnan(flicker[0])


# --- metrics on hand-made numbers (known answers) -------------------------------------------------------


def test_image_change_is_the_mean_absolute_difference():
    """Half the pixels get 40 grey levels brighter, half 40 darker: the frames changed by 40 on average
    (the signed changes cancel; their magnitudes do not)."""
    from semflow.temporal import image_change

    img1 = np.full((4, 6, 3), 100, np.uint8)
    img2 = img1.copy()
    img2[:2] += 40
    img2[2:] -= 40
    assert image_change(img1, img2) == pytest.approx(40.0)


def test_photometric_error_averages_the_colour_channels():
    """Frame 2 is frame 1 with its red channel 30 grey levels up: the error is 30 / 3 = 10 at every pixel."""
    img1 = np.full((5, 7, 3), 100, np.uint8)
    img2 = img1.copy()
    img2[..., 0] += 30
    zero = np.zeros((5, 7, 2), np.float32)
    assert mean_photometric_error(img1, img2, zero) == pytest.approx(10.0)
    assert mean_photometric_error(img1, img2, zero, stride=2) == pytest.approx(10.0)


def test_motion_compensated_flips_read_the_nearest_pixel():
    """Labels moved one column right, flow 0.6 px right: x + 0.6 rounds to x + 1, where each label went."""
    labels = (np.arange(12)[None, :] // 3 % 2 * np.ones((4, 1), int)).astype(np.uint8)
    moved = np.roll(labels, 1, axis=1)
    flow = np.zeros((4, 12, 2), np.float32)
    flow[..., 0] = 0.6
    assert label_flip_rate(labels, moved, flow) == 0.0


def test_motion_compensated_flips_leave_out_a_flow_of_nan_quietly():
    """A pixel whose flow is NaN (or beyond any frame) lands nowhere, as in carry_forward: it is left out,
    without numpy's "invalid value encountered in cast" (NaN cast to int64 is undefined: INT64_MIN on x86,
    0, inside the frame, on ARM)."""
    labels = np.zeros((4, 6), np.uint8)
    moved = labels.copy()
    moved[0, 0] = 1  # only the pixels that land on (0, 0) would flip
    flow = np.zeros((4, 6, 2), np.float32)
    flow[1:, :, 0] = np.nan
    flow[0, 1:, 0] = 1e30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert label_flip_rate(labels, moved, flow) == 1.0  # (0, 0) alone lands, on its flipped label
        flow[0, 0] = np.nan
        assert np.isnan(label_flip_rate(labels, moved, flow))  # none lands


def test_metric_stride_is_1_up_to_a_quarter_million_pixels_inclusive():
    """``METRIC_PIXELS`` is 2**18 = 512 x 512: a 512x512 frame is measured whole, one row more is sampled."""
    assert metric_stride((512, 512)) == 1
    assert metric_stride((513, 512)) == 2


def test_summary_means_leave_out_pairs_without_a_value():
    """A pair whose flow carries every pixel out of the frame has no photometric error (NaN): the clip's
    mean is that of the other pair, not NaN."""
    img = np.full((6, 8, 3), 100, np.uint8)
    brighter = img + np.uint8(9)  # every channel 9 grey levels up: an error of 9 under zero flow
    meter = TemporalMeter()
    meter.add(img, brighter, np.full((6, 8, 2), 50.0, np.float32))
    meter.add(img, brighter, np.zeros((6, 8, 2), np.float32))
    assert meter.pairs[0]["photometric_error"] is None  # (a NaN reads back as no value)
    assert meter.summary()["photometric_error"] == pytest.approx(9.0)


def test_a_drop_in_magnitude_is_a_jump_as_a_rise_is():
    """Magnitudes 9 -> 2 -> 2.2: the largest jump is the drop (9 / 2 = 4.5) at pair 1; the images' own change
    there fell from 6 to 3: a ratio of 2, whichever way it went."""
    rows = [{"magnitude": m, "image_change": c} for m, c in ((9.0, 6.0), (2.0, 3.0), (2.2, 3.0))]
    jump = largest_jump(rows)
    assert jump["jump_pair"] == 1 and jump["largest_magnitude_jump"] == pytest.approx(4.5)
    assert jump["jump_image_change_ratio"] == pytest.approx(2.0)


def test_summary_magnitude_range_is_the_smallest_and_largest_pair():
    img = np.full((6, 8, 3), 100, np.uint8)
    meter = TemporalMeter()
    for u in (3.0, 1.0, 4.0, 2.0):
        meter.add(img, img, np.full((6, 8, 2), (u, 0.0), np.float32))
    summary = meter.summary()
    assert summary["magnitude_min"] == pytest.approx(1.0) and summary["magnitude_max"] == pytest.approx(4.0)


def test_the_meter_compares_labels_as_they_are_not_along_the_flow():
    """Labels that stay put while the flow says 3 px right (the flow of pair t is no motion between frames
    t - 1 and t, whose labels the rate compares): no pixel flips."""
    img = np.full((10, 12, 3), 100, np.uint8)
    labels = (np.arange(12)[None, :] // 2 % 3 * np.ones((10, 1), int)).astype(np.uint8)
    flow = np.full((10, 12, 2), (3.0, 0.0), np.float32)
    meter = TemporalMeter()
    meter.add(img, img, flow, labels=labels)
    assert meter.add(img, img, flow, labels=labels.copy())["label_flip_rate"] == 0.0


def _meter_of(rows: list[dict]) -> TemporalMeter:
    meter = TemporalMeter()
    for row in rows:
        meter.pairs.append(row)
    return meter


def test_the_clip_summary_makes_no_list_of_the_pairs_numbers() -> None:
    """summary() made a list of Python floats of each metric (about 40 bytes a pair at the end of a run, where
    its memory peaks): it reads them one at a time now."""
    import tracemalloc

    pairs = 20000
    rng = np.random.default_rng(0)
    meter = _meter_of([{"magnitude": float(m), "flicker": float(f), "warped_flicker": float(f),
                        "photometric_error": float(m), "image_change": float(f), "seconds": 0.01}
                       for m, f in rng.random((pairs, 2))])
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        summary = meter.summary()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert summary["magnitude_max"] is not None
    assert peak < 2 * pairs, f"{peak / pairs:.1f} bytes a pair"


@pytest.mark.parametrize("seed", range(4))
def test_the_clip_summary_is_the_exact_mean_and_range_of_the_numbers_it_has(seed: int) -> None:
    """Means are fsum over the count of the finite numbers (a NaN or an infinity is left out), the magnitude
    range min and max of those that are not NaN, None where none are: as statistics.fmean of lists gave."""
    import statistics

    rng = np.random.default_rng(seed)
    special = [np.nan, np.inf, -np.inf, None, 0.0, 1e300, 1e-300]

    def number() -> float | None:
        return special[rng.integers(len(special))] if rng.random() < 0.3 else float(rng.normal(0, 10.0 ** rng.integers(-3, 4)))

    rows = [{"magnitude": number(), "flicker": number(), "image_change": number()} for _ in range(int(rng.integers(0, 60)))]
    summary = _meter_of(rows).summary()
    for key in ("flicker", "image_change", "photometric_error"):
        finite = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        assert summary[key] == (statistics.fmean(finite) if finite else None)
    mags = [r["magnitude"] for r in rows if r["magnitude"] is not None and r["magnitude"] == r["magnitude"]]
    assert (summary["magnitude_min"], summary["magnitude_max"]) == ((min(mags), max(mags)) if mags else (None, None))


def test_a_clip_without_pairs_has_no_summary_numbers() -> None:
    summary = TemporalMeter().summary()
    assert summary and all(value is None for value in summary.values()), summary


def test_write_plot_takes_the_seconds_of_the_pairs_it_has(monkeypatch, tmp_path: Path) -> None:
    """Seconds for more pairs than the meter measured (an array of the run's records) are cut to its pairs."""
    import semflow.plots

    drawn = []
    monkeypatch.setattr(semflow.plots, "write_plot", lambda path, pairs, title: drawn.append(pairs.column("seconds")))
    meter = _meter_of([{"magnitude": 1.0}, {"magnitude": 2.0}])
    meter.write_plot(tmp_path / "plot.png", "clip", np.array([0.5, 0.25, 9.0]))
    assert drawn == [[0.5, 0.25]]


def test_measure_video_mode_reports_flicker_as_the_run_does(tmp_path: Path, monkeypatch) -> None:
    """scripts/measure_video_mode.py (BENCHMARKS.md sections video-mode-quick, video-sharpen) says flicker is
    mean_x |F_t(x) - F_{t-1}(x)|, as summary.json's: the length of the change, not the mean of |du| and |dv|
    (which read 1.6x low on solidWhiteRight.mp4)."""
    import importlib.util
    import sys

    from semflow.io.images import write_image
    from semflow.methods import get_method

    spec = importlib.util.spec_from_file_location(
        "measure_video_mode", Path(__file__).resolve().parents[1] / "scripts" / "measure_video_mode.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seq = make_sequence(4, 48, 64, seed=3)
    for k, frame in enumerate(seq.frames):
        write_image(tmp_path / "frames" / f"{k:06d}.png", frame)
    monkeypatch.setattr(sys, "argv", ["measure_video_mode.py", str(tmp_path / "frames"), "--pairs", "3",
                                      "--methods", "dis-medium", "--memory-pairs", "0", "--out", str(tmp_path / "o.json")])
    script.main()
    method = get_method("dis-medium")
    flows = [method.estimate(a, b).flow for a, b in zip(seq.frames, seq.frames[1:])]
    expected = np.mean([flicker(b, a) for a, b in zip(flows, flows[1:])])
    assert json.loads((tmp_path / "o.json").read_text())["dis-medium"]["flicker_px"] == pytest.approx(expected, rel=1e-6)


def test_fusion_sees_a_float_frame_as_the_segmenters_do():
    """Segmenters take float [0, 1] frames (converted to uint8); the filter cast them to uint8 as they were:
    every frame black, so after a cut the old labels were carried on as if nothing had moved."""
    first, other = (to_uint8(random_texture(60, 80, np.random.default_rng(s))) for s in (1, 7))
    old, new = _two_class_probs(np.full((60, 80), 0.8)), _two_class_probs(np.full((60, 80), 0.3))
    outs = []
    for scale in (None, np.float32(255)):
        fusion = TemporalSegmentation()
        for frame, probs in ((first, old), (first, old), (other, new)):
            out = fusion.update(frame if scale is None else frame / scale, _seg(probs))
        outs.append((out.labels, fusion.trust.mean()))
    assert outs[1][1] == pytest.approx(outs[0][1]) and np.array_equal(outs[1][0], outs[0][0])
