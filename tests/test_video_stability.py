"""Video mode's stability (issue 12, items 3-4): carried and smoothed plane models, the thing gate's
memory, and the segmentation filtered over time inside ``semantic``.

Exact synthetic pairs (a texture warped by a known homography) for the plane model; a scripted
segmenter whose evidence flip-flops on a patch for the segmentation fusion.
"""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
from conftest import texture

import semflow.layers.thing_tracks as thing_tracks
import semflow.layers.tracking as tracking
from semflow.baseline.base import FlowMethod, FlowResult
from semflow.layers.context import PairContext
from semflow.layers.plane_motion import blend_homographies
from semflow.layers.planes import PlaneParams, fit_planes
from semflow.layers.things import ThingParams
from semflow.layers.tracking import Track, Tracks, advance_tracks, gate_planes
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.segmentation import get_label_set
from semflow.segmentation.base import Segmentation, Segmenter
from semflow.segmentation.regions import Region
from semflow.segmentation.temporal import carry_belief, fuse_with_prior, invert_flow
from semflow.semantic import SemanticFlow
from semflow.synthetic_video import make_sequence
from semflow.temporal import label_flip_rate
from semflow.video_state import VideoState, restore, snapshot

ROAD, SKY, CAR = 3, 0, 8  # CamVid ids


def homography_pair(h: np.ndarray, height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames 1, 2 and the exact flow of a texture moved by ``h`` (frame-1 pixels -> frame 2)."""
    img1 = texture(height, width)
    img2 = cv2.warpPerspective(img1, h, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    p = np.stack([xs, ys, np.ones_like(xs)], axis=2) @ h.T
    flow = np.stack([p[..., 0] / p[..., 2] - xs, p[..., 1] / p[..., 2] - ys], axis=2).astype(np.float32)
    return img1, img2, flow


def zoom(scale: float, cx: float = 64.0, cy: float = 80.0, dx: float = 0.0) -> np.ndarray:
    return np.array([[scale, 0, cx * (1 - scale) + dx], [0, scale, cy * (1 - scale)], [0, 0, 1]], np.float64)


# --- planes: the model carried from pair to pair --------------------------------------------------


def test_blended_homography_moves_points_by_the_weighted_motion() -> None:
    a, b = zoom(1.0, dx=2.0), zoom(1.04)
    blended = blend_homographies(a, b, 0.25, (0, 96, 0, 128))

    def move(h: np.ndarray, x: float, y: float) -> np.ndarray:
        p = h @ [x, y, 1.0]
        return p[:2] / p[2]

    for x, y in [(10.0, 10.0), (100.0, 50.0), (64.0, 90.0)]:
        np.testing.assert_allclose(move(blended, x, y), 0.75 * move(a, x, y) + 0.25 * move(b, x, y), atol=1e-3)


def test_carried_plane_model_is_smoothed_unless_the_new_fit_is_clearly_better() -> None:
    truth = zoom(1.03)
    img1, img2, flow = homography_pair(truth)
    region = Region(ROAD, (0, 96, 0, 128), np.ones((96, 128), bool))
    ctx = PairContext.build(img1, img2, flow)
    params = PlaneParams()
    fit = fit_planes([region], ctx, params)[0]
    assert fit.accepted and fit.inlier_share >= tracking.PRECISE_SHARE
    mask = np.ones((96, 128), bool)
    history = [True] * tracking.HISTORY  # an old track: no running-mean weight
    # A precise fit (exact matches) that the smoothed model cannot beat photometrically: taken as it is.
    near = zoom(1.03, dx=0.15)
    precise = gate_planes([fit], [Track(1, "plane", ROAD, mask, near, list(history))], ctx, params)[0]
    assert precise.accepted and "precise" in precise.reason
    np.testing.assert_array_equal(precise.homography, fit.homography)
    # A fit the baseline's matches support, but not precisely: the carried model and the fit averaged.
    supported = replace(fit, inlier_share=params.min_inlier_share + tracking.SHARE_MARGIN + 0.05)
    smooth = gate_planes([supported], [Track(1, "plane", ROAD, mask, near, list(history))], ctx, params)[0]
    assert smooth.accepted and "smoothed" in smooth.reason
    np.testing.assert_allclose(smooth.homography, blend_homographies(near, fit.homography, tracking.SMOOTHING,
                                                                     region.box), atol=1e-6)
    # ...one the gate takes only just: a smaller step; and a young track averages its fits.
    weak = replace(fit, inlier_share=params.min_inlier_share + 0.05)
    smooth = gate_planes([weak], [Track(1, "plane", ROAD, mask, near, list(history))], ctx, params)[0]
    np.testing.assert_allclose(smooth.homography, blend_homographies(
        near, fit.homography, max(tracking.WEAK_SMOOTHING, 1 / (1 + tracking.HISTORY)), region.box), atol=1e-6)
    young = gate_planes([weak], [Track(1, "plane", ROAD, mask, near, [True])], ctx, params)[0]
    np.testing.assert_allclose(young.homography, blend_homographies(near, fit.homography, 0.5, region.box), atol=1e-6)
    # A carried model the new pair clearly contradicts (the motion changed), with the baseline's matches
    # clearly behind the new fit: the model moves towards the new fit by CHANGE_WEIGHT (no jump).
    far = zoom(1.0, dx=4.0)
    direct = gate_planes([supported], [Track(1, "plane", ROAD, mask, far, list(history))], ctx, params)[0]
    assert direct.accepted and "changed" in direct.reason
    np.testing.assert_allclose(direct.homography, blend_homographies(far, fit.homography, tracking.CHANGE_WEIGHT,
                                                                      region.box), atol=1e-6)
    # With matches that support the new fit only marginally, one pair of photometric evidence is not
    # enough (the model is smoothed and the new fit kept pending); confirmed by the next pair, the model
    # moves towards the new fit by CHANGE_WEIGHT.
    track = Track(1, "plane", ROAD, mask, far, list(history))
    first = gate_planes([weak], [track], ctx, params)[0]
    assert "smoothed" in first.reason and track.pending is not None
    changed = gate_planes([weak], [track], ctx, params)[0]
    assert changed.accepted and "changed" in changed.reason and track.pending is None
    np.testing.assert_allclose(changed.homography, blend_homographies(far, fit.homography, tracking.CHANGE_WEIGHT,
                                                                       region.box), atol=1e-6)
    # A pair whose fit failed keeps the carried model when that still explains the region.
    failed = gate_planes([fit.__class__(region=region, accepted=False, reason="no homography found",
                                        baseline_error=fit.baseline_error)],
                         [Track(1, "plane", ROAD, mask, truth, [True])], ctx, params)[0]
    assert failed.accepted and "last pair's homography" in failed.reason


def shift(dx: float, dy: float = 0.0) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def test_accelerating_plane_is_predicted_by_constant_velocity() -> None:
    """A plane that speeds up by 1.5 px per pair (3 px, 4.5 px, now 6 px): the constant-velocity
    prediction from the last two models is this pair's motion, the carried model lags by 1.5 px, and the
    model video mode uses from an imprecise fit follows the prediction, not the carried model."""
    box = (0, 96, 0, 128)
    track = Track(1, "plane", ROAD, np.ones((96, 128), bool), shift(4.5, 1.5), [True] * tracking.HISTORY,
                  previous=shift(3.0, 1.0))
    np.testing.assert_allclose(tracking.predict_plane(track, box), shift(6.0, 2.0), atol=1e-6)
    truth = shift(6.0, 2.0)
    img1, img2, flow = homography_pair(truth)
    region = Region(ROAD, box, np.ones((96, 128), bool))
    ctx = PairContext.build(img1, img2, flow)
    params = PlaneParams()
    # A fit that the gate takes only just, and 1 px off: smoothed with the prediction, the result is
    # close to the truth; smoothed with the carried model, it would lag.
    fit = replace(fit_planes([region], ctx, params)[0], inlier_share=params.min_inlier_share + 0.05)
    off = shift(7.0, 2.0)
    fit = replace(fit, homography=off)
    used = gate_planes([fit], [track], ctx, params)[0]
    weight = max(tracking.WEAK_SMOOTHING, 1 / (1 + tracking.HISTORY))
    lagging = blend_homographies(track.model, off, weight, box)

    def error(h: np.ndarray) -> float:  # px, at the box's centre
        p = h @ [64.0, 48.0, 1.0]
        return float(np.hypot(p[0] / p[2] - 70.0, p[1] / p[2] - 50.0))

    assert error(used.homography) < 0.25 < 1.0 < error(lagging)
    assert "constant-velocity prediction" in used.reason
    # The next pair's track remembers this pair's model and the one before it.
    memory, _, _ = advance_tracks(Tracks([track], 2), [used], [track], [], [], [], flow)
    np.testing.assert_allclose(memory.tracks[0].previous, shift(4.5, 1.5))
    back = Tracks.restore(memory.snapshot())
    np.testing.assert_allclose(back.tracks[0].previous, shift(4.5, 1.5))


def test_plane_model_stays_on_and_smooth_over_a_noisy_sequence() -> None:
    """A plane whose baseline flow is noisy from pair to pair: video mode keeps the plane on for every
    pair, and its model changes less from pair to pair than the per-pair fits do."""
    truth = zoom(1.03)
    img1, img2, flow = homography_pair(truth)
    region = Region(ROAD, (0, 96, 0, 128), np.ones((96, 128), bool))
    params = PlaneParams()
    rng = np.random.default_rng(3)
    track, pair_fits, video_fits = None, [], []
    memory = Tracks()
    for _ in range(6):
        noisy = flow + rng.normal(0, 0.35, 2).astype(np.float32)  # a global bias that changes every pair
        ctx = PairContext.build(img1, img2, noisy)
        fit = fit_planes([region], ctx, params)[0]
        pair_fits.append(fit)
        tracks = memory.match([region], "plane", (96, 128))
        gated = gate_planes([fit], tracks, ctx, params)
        video_fits.append(gated[0])
        memory, ids, _ = advance_tracks(memory, gated, tracks, [], [], [], np.zeros((96, 128, 2), np.float32))
        track = ids[0] if track is None else track
        assert ids == [track]
    assert all(f.accepted for f in video_fits)

    def jitter(fits: list) -> float:
        flows = [f.flow for f in fits]
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(flows, flows[1:])]))

    assert jitter(video_fits) < 0.8 * jitter(pair_fits), (jitter(video_fits), jitter(pair_fits))


# --- things: the gate with memory ------------------------------------------------------------------


def test_thing_gate_margin_follows_the_last_decision(monkeypatch) -> None:
    seen = []

    def fake_fit_thing(region, instance_map, ctx, params, rng, plane_flow, carried=None):
        seen.append(params.error_slack)
        accepted = params.error_slack >= ThingParams().error_slack  # the decision the margin leads to here
        return type("Fit", (), {"accepted": accepted, "reason": "ok", "instance_id": region.id})()

    monkeypatch.setattr(thing_tracks, "fit_thing", fake_fit_thing)
    params = ThingParams()
    mask = np.ones((40, 40), bool)
    regions = [Region(CAR, (0, 40, 0, 40), mask, id=k + 1) for k in range(3)]
    tracks = [Track(1, "thing", CAR, mask, history=[True]), Track(2, "thing", CAR, mask, history=[False]), None]
    thing_tracks.fit_tracked_things(regions, np.ones((40, 40), np.int32), None, params, tracks)
    base = params.error_slack
    assert seen == [base + thing_tracks.THING_MARGIN, base - thing_tracks.THING_MARGIN, base]


def test_thing_tracks_remember_their_decisions() -> None:
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True
    region = Region(CAR, (5, 15, 5, 15), np.ones((10, 10), bool), id=1)
    fit = type("Fit", (), {"accepted": False, "instance_id": 1})()
    old = Track(4, "thing", CAR, mask, history=[True, True])
    memory, _, ids = advance_tracks(Tracks([old], 5), [], [], [region], [old], [fit],
                                    np.zeros((40, 40, 2), np.float32))
    assert ids == [4] and memory.tracks[0].history == [True, True, False] and memory.tracks[0].was_on is False


# --- the segmentation filtered over time ----------------------------------------------------------


def test_flow_inverse_and_carried_belief_follow_a_shift() -> None:
    h, w = 48, 64
    forward = np.zeros((h, w, 2), np.float32)
    forward[...] = (3.0, 0.0)
    back, converged = invert_flow(forward)
    np.testing.assert_allclose(back, -forward)
    assert converged.all()
    img0 = texture(h, w)
    img1 = np.roll(img0, 3, axis=1)
    belief = np.full((h, w, 2), 0.1, np.float32)
    belief[:, 20:30, 1] = 0.9
    belief[..., 0] = 1 - belief[..., 1]
    prior = carry_belief(belief, img0, img1, forward, switch=0.05)
    assert (prior[:, 24:32, 1] > 0.8).all() and (prior[:, 36:, 1] < 0.2).all()
    assert np.allclose(prior[:, :3], 0.5)  # came from outside frame t-1: no belief
    labels, fused = fuse_with_prior(belief.argmax(2).astype(np.uint8), belief, None)
    assert fused is belief or np.array_equal(fused, belief)


def test_the_inverse_of_a_zoom_converges_though_its_first_steps_move_it_a_lot() -> None:
    # A 30 % zoom about the centre, f(x) = 0.3 (x - c): the fixed point b(x) = -f(x + b(x)) is
    # -0.3 / 1.3 (x - c). From b = -f each step moves b by 0.3 times the step before: up to 4.5 px at the
    # first step (at the corners, 50 px from c), 0.4 px at the third and last. Converged is judged on the last.
    h, w = 60, 80
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    forward = 0.3 * np.stack([x - 40, y - 30], axis=2)
    back, converged = invert_flow(forward)
    exact = -0.3 / 1.3 * np.stack([x - 40, y - 30], axis=2)
    np.testing.assert_allclose(back, exact, atol=0.1)
    assert converged.all()


class FlipFlop(Segmenter):
    """A road scene whose middle patch is weakly 'Sky' on even calls and weakly 'Road' on odd ones."""

    name = "flipflop"

    def __init__(self) -> None:
        self.label_set = get_label_set("camvid")
        self.calls = 0

    def predict(self, image: np.ndarray, key=None) -> Segmentation:
        h, w = image.shape[:2]
        probs = np.full((h, w, self.label_set.num_classes), 0.01, np.float32)
        probs[..., ROAD] = 0.9
        patch = (slice(h // 3, 2 * h // 3), slice(w // 3, 2 * w // 3))
        weak = SKY if self.calls % 2 == 0 else ROAD
        probs[patch] = 0.01
        probs[patch + (weak,)] = 0.5
        probs[patch + (SKY + ROAD - weak,)] = 0.4
        self.calls += 1
        probs /= probs.sum(axis=2, keepdims=True)
        return Segmentation(probs, probs.argmax(2).astype(np.uint8), self.label_set)


def test_semantic_video_mode_filters_the_segmentation_over_time() -> None:
    frames = [np.roll(texture(96, 128, 5), 2 * k, axis=1) for k in range(6)]
    runs = {}
    for mode in ("pair", "video"):
        method = get_method("semantic", baseline="dis-medium", segmenter=FlipFlop())
        state = VideoState() if mode == "video" else None
        labels = []
        for a, b in zip(frames, frames[1:]):
            result = method.estimate(a, b, state=state)
            state = result.state
            labels.append(result.extras["labels"])
            json.loads(str(result.extras["report_json"]))
        runs[mode] = labels
    flips = {mode: np.mean([label_flip_rate(a, b) for a, b in zip(labs, labs[1:])]) for mode, labs in runs.items()}
    assert flips["pair"] > 0.05  # the patch flips every frame in pair mode
    assert flips["video"] < 0.2 * flips["pair"], flips
    # The belief is carried in the state and survives a snapshot (resume).
    memory = state.parts["semantic"]
    assert memory.prior is not None and memory.prior.dtype == np.float16
    back = restore(snapshot(state), frames[-1], get_method("semantic", baseline="dis-medium",
                                                           segmenter=FlipFlop()).state_parts())
    np.testing.assert_array_equal(back.parts["semantic"].prior, memory.prior)


def test_pending_plane_model_survives_a_snapshot() -> None:
    mask = np.ones((8, 8), bool)
    tracks = Tracks([Track(3, "plane", ROAD, mask, zoom(1.01), [True], zoom(1.02))], next_id=4)
    back = Tracks.restore(tracks.snapshot())
    np.testing.assert_allclose(back.tracks[0].pending, zoom(1.02))
    np.testing.assert_allclose(back.tracks[0].model, zoom(1.01))


def test_semantic_video_mode_forgets_at_a_cut() -> None:
    """Two unrelated clips back to back: the pair across the cut and the pair after it carry nothing of
    the first clip (no segmentation prior, new plane tracks judged by the plain gate)."""
    first = [np.roll(texture(96, 128, 5), 2 * k, axis=1) for k in range(3)]
    second = [np.roll(texture(96, 128, 9)[::-1], -3 * k, axis=0) for k in range(3)]
    method = get_method("semantic", baseline="dis-medium", segmenter=FlipFlop())
    state, results = VideoState(), []
    for a, b in zip(first + second, (first + second)[1:]):
        result = method.estimate(a, b, state=state)
        state = result.state
        results.append(result)
    cut = len(first) - 1
    assert results[cut].state.cut and not results[cut + 1].state.cut
    across = json.loads(str(results[cut].extras["report_json"]))["planes"]
    assert across and all("smoothed" not in p["reason"] and "last pair" not in p["reason"] for p in across)
    assert sorted(p["track"] for p in across) == list(range(1, len(across) + 1))  # numbered afresh
    # The labels of the pair across the cut are that frame's own (no belief carried over the cut).
    own = FlipFlop()
    own.calls = cut  # the segmenter is called once per pair
    np.testing.assert_array_equal(results[cut].extras["labels"], own.predict(first[-1]).labels)


def test_semantic_video_mode_is_as_accurate_as_pair_mode_on_an_accelerating_camera() -> None:
    """Issue 12: over a synthetic sequence (a textured road seen by a camera that pans with acceleration,
    zooms, rolls) the video mode's temporal filter of the plane model costs no accuracy: its EPE over the
    sequence is at most pair mode's (same baseline, given masks), and the plane is used in every pair."""
    seq = make_sequence(8, 96, 128, seed=1, num_objects=0, camera_speed=4.0)
    errors = {}
    for mode in ("video", "pair"):
        method = get_method("semantic", baseline="dis-medium", segmenter=None)
        state = VideoState() if mode == "video" else None
        errors[mode] = []
        for k in range(len(seq) - 1):
            result = method.estimate(seq.frames[k], seq.frames[k + 1], labels=seq.labels[k], state=state)
            state = result.state
            if mode == "video":
                assert all(p["accepted"] for p in json.loads(str(result.extras["report_json"]))["planes"])
            errors[mode].append(float(np.hypot(*np.moveaxis(result.flow - seq.flows[k], 2, 0)).mean()))
    assert np.mean(errors["video"]) <= np.mean(errors["pair"]) + 1e-4
    assert max(errors["video"]) < 0.05  # px: the plane's model, not a lagging one


def _object_errors_with_a_failing_baseline(offset: float, things: ThingParams | None = None
                                           ) -> tuple[list[float], list[str]]:
    """Semantic video mode (thing settings ``things``) on a one-object sequence whose baseline is exact on
    the first pair and off by ``offset`` px on the object in the next ones (confidently nowhere there):
    the object's EPE per pair and the thing's reason in the explain report."""
    seq = make_sequence(4, 160, 224, seed=11, num_objects=1)

    class Scripted(FlowMethod):
        name = "scripted"

        def __init__(self) -> None:
            self.pair = 0

        def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
            flow = seq.flows[self.pair].copy()
            if self.pair >= 1:
                flow[seq.instances[self.pair] > 0] += (offset, 0.0)
            self.pair += 1
            return FlowResult(flow)

    sem = SemanticFlow(Scripted(), segmentation=seq.labels[0], things=things)
    state, errors, reasons = VideoState(), [], []
    for k in range(3):
        result = sem.estimate(seq.frames[k], seq.frames[k + 1], labels=seq.labels[k], state=state)
        state = result.state
        errors.append(epe(result.flow, seq.flows[k], None, seq.instances[k] > 0))
        reasons.append(json.loads(str(result.extras["report_json"]))["things"][0]["reason"])
    return errors, reasons


def test_a_thing_keeps_its_motion_where_the_baseline_loses_it(monkeypatch) -> None:
    # The tracked thing's last affine is a candidate for its motion: where the baseline's matches on
    # the object are wrong (8 px) and unconfident, the carried motion, refined photometrically, is taken.
    # (Without the search of the object itself, which would find it too: checked last.)
    no_search = ThingParams(search_missed=False)
    with_carry, reasons = _object_errors_with_a_failing_baseline(8.0, no_search)
    searched, searched_reasons = _object_errors_with_a_failing_baseline(8.0)
    monkeypatch.setattr(tracking, "thing_motion", lambda fit: None)  # tracks that carry no motion
    without, _ = _object_errors_with_a_failing_baseline(8.0, no_search)
    assert with_carry[0] < 0.1 and without[0] < 0.1  # the first pair: the baseline is exact
    assert max(with_carry[1:]) < 0.3
    assert min(without[1:]) > 4.0
    assert reasons[0] == "ok" and all("carried from the last pair" in r for r in reasons[1:])  # explain says so
    # With the search on (the default), the carried motion still comes first; with no track to carry
    # it, matching the object itself finds its motion.
    assert max(searched[1:]) < 0.3 and all("carried from the last pair" in r for r in searched_reasons[1:])
    found, found_reasons = _object_errors_with_a_failing_baseline(8.0)
    assert max(found[1:]) < 0.3 and all("matching the object itself" in r for r in found_reasons[1:])


def test_a_thing_split_into_several_motions_is_split_again_in_the_next_pair(monkeypatch) -> None:
    # Two touching objects of one class moving apart (one thing region): once a pair's model is a
    # motion split, the track carries its motions; the next pairs try the split first, with them among
    # the fit's hypotheses, and the explain report says so. The carried motions survive a snapshot.
    import semflow.layers.things.fit as thing_fit

    seen: list[np.ndarray | None] = []
    split = thing_fit.split_object_motions

    def spy(*args, hypotheses=None, **kwargs):
        seen.append(hypotheses)
        return split(*args, hypotheses=hypotheses, **kwargs)

    monkeypatch.setattr(thing_fit, "split_object_motions", spy)
    # Whether a pair's model becomes a split at all depends on the random draws of the test that looks
    # for a compromise motion and on the judgement (seeds 0 and 2 of 4 found it, in pair 1 or 2; in a
    # fresh install on 2026-12-03, the same code, seed 2 alone): the test is about what follows, so it
    # takes the first seed whose draws find it.
    seq = make_sequence(5, 240, 320, seed=7031)

    def run(seed: int) -> tuple[VideoState, list[str], list[int], list]:
        method = get_method("semantic", baseline="dis-medium", segmenter=None, things=ThingParams(seed=seed))
        state, reasons, motions, handed = VideoState(), [], [], []
        for k in range(4):
            seen.clear()
            result = method.estimate(seq.frames[k], seq.frames[k + 1], labels=seq.labels[k], state=state)
            state = result.state
            thing = json.loads(str(result.extras["report_json"]))["things"][0]
            assert thing["accepted"]
            reasons.append(thing["reason"])
            motions.append(len(thing["motion_instances"]))
            handed.append(None if not seen or seen[0] is None else seen[0].shape)
        return state, reasons, motions, handed

    runs = (run(seed) for seed in range(4))
    state, reasons, motions, handed = next((r for r in runs if any(x.startswith("ok; motion split") for x in r[1])),
                                           (None, [], [], []))
    assert reasons, "no seed of 4 split the thing"
    first = next(k for k, r in enumerate(reasons) if r.startswith("ok; motion split"))
    assert first < 3 and handed[first] is None
    for k in range(first + 1, 4):  # the last pair's affines were handed to the split, which was kept
        assert handed[k] == (motions[k - 1], 2, 3)
        assert reasons[k] == "ok; several motions, as in the last pair" and motions[k] >= 2
    track = next(t for t in state.parts["semantic"].tracks if t.kind == "thing")
    assert track.model.shape == (motions[-1], 3, 3)
    back = Tracks.restore(state.parts["semantic"].snapshot())
    np.testing.assert_array_equal(next(t for t in back.tracks if t.kind == "thing").model, track.model)
