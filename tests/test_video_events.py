"""Video mode on footage where carrying the last pair's state can mislead (a probe's findings): a camera
shake (one pair's motion unlike the last's) and a clip that fades in from black. Video mode must be no
worse than pair mode on such pairs."""

from __future__ import annotations

import numpy as np

from semflow.methods import get_method
from semflow.synthetic import random_texture
from semflow.video_state import VideoState


def pan(offsets: list[tuple[int, int]], height: int = 120, width: int = 160, seed: int = 3):
    """Crops of one texture at ``offsets`` (x, y) px: frames (uint8 RGB) and the true flow of each pair
    (uniform: the content moves by minus the crop's step, out-of-frame pixels included)."""
    pad = 40
    texture = random_texture(height + 2 * pad, width + 2 * pad, np.random.default_rng(seed)).astype(np.uint8)
    frames = [np.ascontiguousarray(texture[pad + y:pad + y + height, pad + x:pad + x + width]) for x, y in offsets]
    truth = [(-(b[0] - a[0]), -(b[1] - a[1])) for a, b in zip(offsets, offsets[1:])]
    return frames, truth


def mean_epe(flow: np.ndarray, truth: tuple[int, int]) -> float:
    return float(np.hypot(flow[..., 0] - truth[0], flow[..., 1] - truth[1]).mean())


def test_a_camera_shake_is_no_worse_in_video_mode_than_in_pair_mode() -> None:
    """On a one-pair jump the carried flow was let in wherever a flow left the frame: pixels leaving it took
    the last pair's motion (EPE 0.6 and 1.2 px on a 240x180 jump and back, against 0.001 in pair mode)."""
    offsets = [(0, 0), (1, 0), (2, 0), (3, 0), (19, 6), (20, 6), (21, 6)]  # +1 px a frame, a (+16, +6) jump
    frames, truth = pan(offsets)
    method = get_method("discrete")
    state = VideoState()
    for k, (a, b) in enumerate(zip(frames, frames[1:])):
        video = method.estimate(a, b, state=state)
        state = video.state
        if k in (3, 4):  # the jump, and the steady pair after it
            pair = method.estimate(a, b).flow
            assert mean_epe(video.flow, truth[k]) <= mean_epe(pair, truth[k]) + 0.05, (k, truth[k])


def test_a_video_that_fades_in_from_black_does_not_carry_its_first_flow() -> None:
    """The first pair was never checked for a cut: black -> picture gave a meaningless flow that the next
    pairs leaned on (EPE 0.44 px on the next pair against 0.02 in pair mode)."""
    frames, _ = pan([(0, 0), (1, 0), (2, 0)])
    black = np.zeros_like(frames[0])
    first = get_method("dis-fast").estimate(black, frames[0], state=VideoState())
    assert first.state.cut  # the next pair starts afresh
    steady = get_method("dis-fast").estimate(frames[0], frames[1], state=VideoState())
    assert not steady.state.cut


def test_a_global_change_of_brightness_is_matched_before_models_compare_errors() -> None:
    """On a dim pair (0.15 -> 0.35 of full brightness) photometric errors in grey levels favoured a wrong
    model that warped onto matching brightness: semantic's flow was 8x too large (EPE 15 px, discrete's 0.02)."""
    from semflow.layers.context import PairContext, match_brightness

    frames, truth = pan([(0, 0), (2, 0)])
    dim1 = (frames[0] * 0.15).astype(np.uint8)
    dim2 = (frames[1] * 0.35).astype(np.uint8)
    flow = np.zeros((*dim1.shape[:2], 2), np.float32)
    flow[..., 0], flow[..., 1] = truth[0]
    inside = (slice(4, -4), slice(4, -4))
    context = PairContext.build(dim1, dim2, flow)
    assert float(context.baseline_error[inside].mean()) < 1.5  # the true flow explains the pair (was ~19)
    matched = match_brightness(dim1, dim2, flow)
    assert np.abs(matched.reshape(-1, 3).mean(0) - dim1.reshape(-1, 3).mean(0)).max() < 0.5
    slightly = (frames[1] * 1.05).clip(0, 255).astype(np.uint8)  # within the tolerance: left as it is
    assert match_brightness(frames[0], slightly, flow) is slightly
    # Content that comes, not light: a white object over 40 % of an unmoved frame moves the means, not the gain.
    entering = frames[0].copy()
    entering[:, :64] = 255
    still = np.zeros_like(flow)
    assert match_brightness(frames[0], entering, still) is entering
    assert match_brightness(frames[0], np.zeros_like(frames[0]), still) is not None  # (black: left as it is)
    assert (match_brightness(frames[0], np.zeros_like(frames[0]), still) == 0).all()
