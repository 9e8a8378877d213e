"""segmentation.temporal's filter by its formulas, on tiny constant frames and hand-made flows: the
prior where the flow is trusted and where it is not, the trust checks' tolerances, the belief carried
at its own size, the fusion size."""

from __future__ import annotations

import numpy as np

from semflow.segmentation.temporal import TemporalSegmentation, carry_belief, flow_trust, fusion_size


def grey(value: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def test_fuse_is_the_tempered_evidence_times_the_carried_prior_or_a_uniform_one() -> None:
    classes, switch, observation = 4, 0.05, 0.5
    zero = np.zeros((24, 32, 2), np.float32)
    first = np.zeros((24, 32, classes), np.float32)
    first[..., 0] = 1.0
    evidence = np.broadcast_to(np.float32([0.5, 0.3, 0.1, 0.1]), (24, 32, classes))
    frame2 = grey(100)
    frame2[8:20, 16:30] = 220  # the grey levels disagree: the flow is not trusted there
    temporal = TemporalSegmentation(switch=switch, observation=observation)
    temporal.fuse(grey(100), first)
    out = temporal.fuse(frame2, evidence, backward_flow=zero, forward_flow=zero)
    prior = (1 - switch) * np.float32([1, 0, 0, 0]) + switch / classes
    trusted = np.float32([0.5, 0.3, 0.1, 0.1]) ** observation * prior
    untrusted = np.float32([0.5, 0.3, 0.1, 0.1]) ** observation
    assert temporal.trust[2, 2] and not temporal.trust[14, 23]
    np.testing.assert_allclose(out[2, 2], trusted / trusted.sum(), rtol=1e-5)
    np.testing.assert_allclose(out[14, 23], untrusted / untrusted.sum(), rtol=1e-5)


def test_flow_trust_allows_a_round_trip_of_1_px_plus_5_percent_of_the_motion() -> None:
    gray = np.full((20, 60), 90, np.uint8)
    backward = np.zeros((20, 60, 2), np.float32)
    backward[..., 0] = -20.0
    forward = np.zeros_like(backward)
    forward[..., 0] = 21.9  # round trip 1.9 px <= 1 + 0.05 * 20
    assert flow_trust(gray, gray, backward, forward)[:, 25:55].all()
    forward[..., 0] = 22.1
    assert not flow_trust(gray, gray, backward, forward)[:, 25:55].any()
    # Grey levels that differ by more than photo_tolerance: not trusted, whatever the flows.
    assert not flow_trust(gray, gray + 30, np.zeros_like(backward), np.zeros_like(backward)).any()


def test_a_belief_at_half_size_moves_by_half_the_flow() -> None:
    belief = np.zeros((20, 40, 2), np.float32)
    belief[:, :20, 0] = 1.0
    belief[:, 20:, 1] = 1.0
    forward = np.zeros((40, 80, 2), np.float32)
    forward[..., 0] = 8.0  # full size: 4 px at the belief's size
    prior = carry_belief(belief, grey(100, (40, 80)), grey(100, (40, 80)), forward)
    assert prior.shape == belief.shape
    assert (prior[:, 21:24].argmax(axis=2) == 0).all() and (prior[:, 25:36].argmax(axis=2) == 1).all()
    np.testing.assert_allclose(prior[5, 10], [0.975, 0.025], rtol=1e-5)


def test_fusion_size_caps_the_longest_side_at_480() -> None:
    assert fusion_size(960, 1280) == (360, 480)
    assert fusion_size(1280, 960) == (480, 360)
    assert fusion_size(100, 50) == (100, 50)


def test_where_the_flow_has_no_inverse_the_carried_prior_is_uniform() -> None:
    # The right half moves 6 px right, the left half stays: frame t's columns 30-35 come from nowhere
    # (the fixed point for the inverse flow oscillates between 0 and -6 there).
    belief = np.zeros((10, 60, 2), np.float32)
    belief[..., 0] = 1.0
    forward = np.zeros((10, 60, 2), np.float32)
    forward[:, 30:, 0] = 6.0
    prior = carry_belief(belief, grey(100, (10, 60)), grey(100, (10, 60)), forward)
    np.testing.assert_allclose(prior[:, 31:35], 0.5)
    np.testing.assert_allclose(prior[:, 5:25, 0], 0.975, rtol=1e-5)
    np.testing.assert_allclose(prior[:, 40:55, 0], 0.975, rtol=1e-5)


def test_fused_labels_keep_full_size_detail_where_the_filter_changes_nothing() -> None:
    from semflow.segmentation.temporal import fuse_with_prior

    labels = np.zeros((8, 8), np.uint8)
    labels[1, 1] = 2  # a detail finer than the belief's grid
    probs = np.full((4, 4, 3), 0.2, np.float32)
    probs[..., 0] = 0.6
    prior = np.full((4, 4, 3), 1 / 3, np.float32)
    prior[3, 3] = [0.01, 0.98, 0.01]  # the filter changes one cell's decision
    fused_labels, _ = fuse_with_prior(labels, probs, prior)
    expected = labels.copy()
    expected[6:, 6:] = 1
    assert np.array_equal(fused_labels, expected)


def test_a_changed_decision_lands_on_the_full_size_pixels_whose_centres_lie_in_its_cell() -> None:
    # Belief 3 px wide for frames 8 px wide (as 1280 -> 480): belief column 2 covers full columns 5.33-8, so
    # full columns 5, 6 and 7 (centres 5.5-7.5) take its decision. Nearest-neighbour without pixel centres
    # (floor(x * 3 / 8)) gave full column 5 belief column 1's and shifted the change by a third of a cell.
    from semflow.segmentation.temporal import fuse_with_prior

    labels = np.zeros((3, 8), np.uint8)
    probs = np.full((3, 3, 3), 0.2, np.float32)
    probs[..., 0] = 0.6
    prior = np.full((3, 3, 3), 1 / 3, np.float32)
    prior[:, 2] = [0.01, 0.98, 0.01]  # the filter changes belief column 2's decision
    fused_labels, _ = fuse_with_prior(labels, probs, prior)
    expected = labels.copy()
    expected[:, 5:] = 1
    assert np.array_equal(fused_labels, expected)


def test_a_label_set_of_more_than_128_classes_is_filtered_too() -> None:
    # (an ADE20K model's 150 classes, or a CLIP prior's long list: OpenCV's Python binding warps and resizes
    # arrays of at most 128 channels, and the filter was a cv2.error traceback on the second frame)
    from semflow.segmentation.base import Segmenter
    from semflow.segmentation.labels import LabelSet
    from semflow.segmentation.temporal import fuse_with_prior

    classes, switch = 150, 0.05
    rng = np.random.default_rng(0)
    first = rng.dirichlet(np.ones(classes), (24, 32)).astype(np.float32)
    evidence = rng.dirichlet(np.ones(classes), (24, 32)).astype(np.float32)
    temporal = TemporalSegmentation(switch=switch)
    temporal.fuse(grey(100), first)
    zero = np.zeros((24, 32, 2), np.float32)
    out = temporal.fuse(grey(100), evidence, backward_flow=zero, forward_flow=zero)
    expected = np.maximum(evidence, 1e-6) ** 0.5 * ((1 - switch) * first + switch / classes)
    np.testing.assert_allclose(out, expected / expected.sum(2, keepdims=True), rtol=1e-4)
    prior = carry_belief(first[::2, ::2], grey(100), grey(100), zero)
    assert prior.shape == (12, 16, classes) and np.allclose(prior.sum(2), 1.0, atol=1e-4)
    assert fuse_with_prior(evidence.argmax(2).astype(np.uint8), evidence[::2, ::2], prior)[0].shape == (24, 32)

    class Fixed(Segmenter):  # a segmenter whose probabilities are made at full size (given masks, a CLIP prior)
        label_set = LabelSet("many", [f"c{i}" for i in range(classes)], {})

        def predict(self, image, key=None):
            from semflow.segmentation.base import Segmentation

            return Segmentation(evidence, evidence.argmax(2).astype(np.uint8), self.label_set)

    _, small, _ = Fixed().predict_small_probs(grey(100), (12, 16))
    assert small.shape == (12, 16, classes)
    np.testing.assert_allclose(small[3, 5], evidence[6:8, 10:12].mean((0, 1)), rtol=1e-4)
