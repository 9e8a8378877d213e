"""discrete's ring refit (option ``ring_width``, semflow.baseline.discrete.rings)."""

import cv2
import numpy as np
import pytest

from semflow.baseline.discrete import rings
from semflow.errors import InputError
from semflow.methods import get_method
from semflow.video_state import VideoState

H, W = 120, 160


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured reddish disc over a bluish textured background: frame t, the disc's mask, its true flow (the disc
    under an affine motion, the background shifted)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (H, W)).astype(np.float32), (0, 0), 1.5)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    disc = (xx - 80) ** 2 + (yy - 60) ** 2 < 35 ** 2
    img = np.where(disc[..., None], np.stack([200 + 0.2 * texture, 60 + 0.3 * texture, 40 + 0.2 * texture], -1),
                   np.stack([40 + 0.2 * texture, 80 + 0.3 * texture, 180 + 0.2 * texture], -1))
    flow = np.where(disc[..., None], np.stack([3 + 0.02 * (xx - 80), -2 + 0.01 * (yy - 60)], -1),
                    np.stack([-1 + 0 * xx, 0.5 + 0 * yy], -1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), disc, flow


def _outer_ring(mask: np.ndarray, width: int) -> np.ndarray:
    return mask & ~rings.erode(mask, width)


def test_the_ring_of_a_rigid_thing_takes_its_affine_back():
    img, disc, truth = _scene()
    ring = _outer_ring(disc, 3)
    drifted = truth.copy()
    drifted[ring] += np.float32([0.4, -0.3])  # sub-pixel drift just inside the outline
    out = rings.refit_rings(img, img, drifted, width=6)
    before = np.hypot(*(drifted - truth)[ring].T).mean()
    after = np.hypot(*(out - truth)[ring].T).mean()
    assert before == pytest.approx(0.5, abs=1e-5)
    assert after < 0.25 * before
    inside = disc & ~_outer_ring(disc, 8)
    assert np.abs(out - truth)[inside].max() < 0.05  # the core is left as it was (it fits the affine)


def test_a_non_affine_flow_is_left_as_it_is():
    img, _, _ = _scene(1)
    rng = np.random.default_rng(1)
    smooth = np.stack([cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 4) for _ in range(2)], -1)
    flow = (smooth * 60).astype(np.float32)  # a few px, bending every ~10 px: no superpixel fits an affine
    assert np.array_equal(rings.refit_rings(img, img, flow, width=6), flow)


def test_width_zero_returns_the_flow_itself():
    img, _, truth = _scene()
    assert rings.refit_rings(img, img, truth, width=0) is truth


@pytest.fixture
def recorded(monkeypatch):
    """rings.refit_rings (discrete's, and semantic's import of it) replaced by one that records the width and
    flow it gets and returns the flow plus 1 px."""
    from semflow import semantic

    seen = []

    def fake(img1, img2, flow, *, width, labels=None):
        seen.append((width, flow.copy()))
        return flow + 1

    monkeypatch.setattr(rings, "refit_rings", fake)
    monkeypatch.setattr(semantic, "refit_rings", fake)
    return seen


def _frames() -> tuple[np.ndarray, np.ndarray]:
    img, _, _ = _scene(2)
    return img[:64, :96], np.roll(img, (1, 2), (0, 1))[:64, :96]


@pytest.mark.parametrize("sharpen", [True, False])
@pytest.mark.parametrize("video", [False, True])
def test_discrete_refits_rings_last_and_only_when_asked(recorded, sharpen, video):
    a, b = _frames()
    option = "video_ring_width" if video else "ring_width"  # (video mode has a width of its own)
    run = lambda **kw: get_method("discrete", preset="fast", sharpen=sharpen, **kw).estimate(  # noqa: E731
        a, b, state=VideoState() if video else None)
    plain = run().flow
    assert recorded == []  # off in the fast preset
    method = get_method("discrete", preset="fast", sharpen=sharpen, **{option: 6})
    result = method.estimate(a, b, state=VideoState() if video else None)
    assert len(recorded) == 1 and recorded[0][0] == 6
    assert np.array_equal(recorded[0][1], plain)  # the final (sharpened) flow goes in
    assert np.array_equal(result.flow, plain + 1)  # and what comes out is the result
    assert list(method.last_timings)[-1] == "rings"  # the last lap, as run (after sharpen's)
    assert np.array_equal(run(**{option: 0}).flow, plain) and len(recorded) == 1


@pytest.mark.parametrize("video", [False, True])
def test_each_mode_reads_its_own_width(recorded, video):
    a, b = _frames()
    other = "ring_width" if video else "video_ring_width"
    get_method("discrete", preset="fast", **{other: 6}).estimate(a, b, state=VideoState() if video else None)
    assert recorded == []


@pytest.mark.parametrize("preset", ["balanced", "accurate"])
def test_the_slower_presets_refit_rings_in_pair_mode_only(preset):
    params = get_method("discrete", preset=preset).params
    assert (params.ring_width, params.video_ring_width, params.for_video().ring_width) == (6, 0, 0)
    assert get_method("discrete", preset="fast").params.ring_width == 0
    assert get_method("discrete", preset=preset, video_ring_width=4).params.for_video().ring_width == 4


def test_a_negative_ring_width_is_refused_in_one_line():
    with pytest.raises(InputError, match="^discrete: ring_width must be at least 0, got -1$"):
        get_method("discrete", ring_width=-1)


def test_superpixel_pairs_stay_right_past_46341_superpixels():
    # the pair keys (low label * n + high label) were int32 like SLIC's labels and wrapped past 46341
    # superpixels (a 4K frame at 10 px): pairs came out negative or wrong
    from semflow.baseline.discrete.rings import Superpixels

    labels = np.arange(2 * 25000, dtype=np.int32).reshape(2, 25000)  # each pixel its own superpixel
    segs = Superpixels(labels)
    expected = {(int(a), int(a) + 1) for a in labels.ravel() if (a + 1) % 25000} | {(int(a), int(a) + 25000) for a in labels[0]}
    assert segs.n == 50000
    assert {(int(a), int(b)) for a, b in segs.pairs} == expected


# --- semantic's ring step on its final flow -------------------------------------------------------


def test_semantic_refits_rings_as_its_baseline_does_unless_told():
    from semflow.baseline.base import GivenFlow

    def width(video, **kw):
        return get_method("semantic", segmenter=None, **kw).ring_width_for(video=video)

    assert (width(False), width(True)) == (6, 0)  # discrete (balanced): 6 in pair mode, off in video mode
    assert width(False, baseline=get_method("discrete", ring_width=0)) == 0
    assert width(True, baseline=get_method("discrete", video_ring_width=4)) == 4
    assert (width(False, baseline="dis-medium"), width(False, baseline="dis-medium", ring_width=5)) == (0, 5)
    assert width(False, baseline=GivenFlow(np.zeros((4, 4, 2), np.float32)), ring_width=0) == 0
    for wrong in (-1, True, 2.5):
        with pytest.raises(InputError, match="^method 'semantic': option 'ring_width' takes "):
            get_method("semantic", segmenter=None, ring_width=wrong)


@pytest.mark.parametrize("video", [False, True])
def test_semantic_refits_rings_last_on_its_composed_flow(recorded, video):
    from semflow.baseline.base import GivenFlow

    seen = recorded
    img, disc, truth = _scene(3)
    labels = np.where(disc, 8, 0).astype(np.uint8)  # a Car (CamVid 8) in the Sky (a plane, 0)
    run = lambda **kw: get_method("semantic", baseline=GivenFlow(truth), segmenter=None, **kw).estimate(  # noqa: E731
        img, img, labels=labels, state=VideoState() if video else None)
    plain = run().flow  # a given flow's baseline has no ring step of its own
    assert seen == []
    method = get_method("semantic", baseline=GivenFlow(truth), segmenter=None, ring_width=3)
    result = method.estimate(img, img, labels=labels, state=VideoState() if video else None)
    assert len(seen) == 1 and seen[0][0] == 3 and np.array_equal(seen[0][1], plain)
    assert np.array_equal(result.flow, plain + 1) and "rings" in method.last_timings
    stuff = np.ones_like(labels)  # Building (stuff) only, nothing to model: the baseline's flow, not refitted
    again = method.estimate(img, img, labels=stuff, state=VideoState() if video else None)
    assert len(seen) == 1 and np.array_equal(again.flow, truth) and "rings" not in method.last_timings


# --- frame 1's superpixels computed on a thread while the pair's other work runs -------------------


@pytest.mark.parametrize("video", [False, True])
def test_superpixels_started_early_give_the_step_its_own_flow(video):
    a, b = _frames()
    option = "video_ring_width" if video else "ring_width"
    state = (lambda: VideoState()) if video else (lambda: None)  # noqa: E731
    plain = get_method("discrete", preset="fast", **{option: 0}).estimate(a, b, state=state()).flow
    ringed = get_method("discrete", preset="fast", **{option: 6}).estimate(a, b, state=state()).flow
    assert np.array_equal(ringed, rings.refit_rings(a, b, plain, width=6))


def test_pending_superpixels_answer_for_their_own_frame_only():
    img, _, _ = _scene(4)
    pending = rings.PendingSuperpixels(img)
    assert pending.labels_for(img.copy()) is None  # another array, even with the same pixels
    assert np.array_equal(pending.labels_for(img), rings.superpixels(img, params=rings.RingParams()))
    with pytest.raises(cv2.error):  # an error on the thread is raised where the labels are asked for
        broken = np.zeros((8, 8), np.uint8)  # (not RGB)
        rings.PendingSuperpixels(broken).labels_for(broken)


def test_a_method_holding_started_superpixels_still_pickles():
    import pickle

    a, b = _frames()
    method = get_method("discrete", preset="fast", ring_width=6)
    method.base._estimate(a, b, finish=False)  # (as the sharpen step does: superpixels started, not yet used)
    assert method.base._superpixels is not None
    copy = pickle.loads(pickle.dumps(method))
    assert copy.base._superpixels is None and np.array_equal(copy.estimate(a, b).flow, method.estimate(a, b).flow)


@pytest.mark.parametrize("video", [False, True])
def test_a_sharpened_flow_wrapped_twice_finishes_once_after_both(recorded, video):
    from semflow.baseline.discrete import DiscreteFlow
    from semflow.sharpen import SharpenedFlow

    a, b = _frames()
    option = "video_ring_width" if video else "ring_width"
    twice = lambda **kw: SharpenedFlow(SharpenedFlow(DiscreteFlow(preset="fast", **kw)))  # noqa: E731
    plain = twice(**{option: 0}).estimate(a, b, state=VideoState() if video else None).flow  # (was a TypeError)
    result = twice(**{option: 6}).estimate(a, b, state=VideoState() if video else None)
    assert len(recorded) == 1 and np.array_equal(recorded[0][1], plain)  # the ring step once, on the final flow
    assert np.array_equal(result.flow, plain + 1)


def test_semantic_refits_with_the_superpixels_its_baseline_made(monkeypatch):
    from semflow import semantic

    img, disc, _ = _scene(5)
    moved = np.roll(img, (1, 2), (0, 1))
    given = []
    monkeypatch.setattr(semantic, "refit_rings", lambda *a, width, labels=None: given.append(labels) or a[2])
    method = get_method("semantic", baseline=get_method("discrete", preset="fast", ring_width=6), segmenter=None)
    method.estimate(img, moved, labels=np.where(disc, 8, 0).astype(np.uint8))
    assert len(given) == 1 and np.array_equal(given[0], rings.superpixels(img, params=rings.RingParams()))
    base = method.baseline
    assert base.superpixels_of(img.copy()) is given[0]  # the same pixels in another array
    assert base.superpixels_of(moved) is None and base.superpixels_of(img[:60]) is None
    import pickle

    assert pickle.loads(pickle.dumps(base)).superpixels_of(img) is None  # (the last frame does not travel)
