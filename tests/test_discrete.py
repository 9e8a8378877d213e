"""Tests of the DiscreteFlow-style baseline: each stage on exact synthetic cases, then the whole method."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semflow.baseline.discrete import PRESETS, DiscreteFlow, consistency, crf, densify, descriptors, proposals
from semflow.baseline.opencv import DISFlow
from semflow.errors import InputError
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.sharpen import SharpenedFlow
from semflow.synthetic import SceneObject, random_texture, render_scene, to_uint8, translation_scene

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


# --- CRF solver ------------------------------------------------------------------------------


def brute_force_chain(unary: np.ndarray, pairwise: np.ndarray) -> tuple[tuple[int, ...], float]:
    t_len, k = unary.shape
    best = (None, np.inf)
    for labels in itertools.product(range(k), repeat=t_len):
        e = sum(unary[t, labels[t]] for t in range(t_len))
        e += sum(pairwise[t, labels[t], labels[t + 1]] for t in range(t_len - 1))
        if e < best[1]:
            best = (labels, e)
    return best


def test_chain_dp_matches_brute_force_on_tiny_chains():
    rng = np.random.default_rng(0)
    n, t_len, k = 12, 5, 3
    unary = rng.uniform(0, 1, (n, t_len, k))
    pairwise = rng.uniform(0, 1, (n, t_len - 1, k, k))
    labels, energy = crf.chain_dp(torch.tensor(unary), torch.tensor(pairwise))
    for i in range(n):
        best_labels, best_energy = brute_force_chain(unary[i], pairwise[i])
        assert energy[i].item() == pytest.approx(best_energy, abs=1e-9)
        assert tuple(labels[i].tolist()) == best_labels


def test_bcd_lowers_energy_and_is_exact_on_a_single_row():
    rng = np.random.default_rng(1)
    h, w, k = 6, 7, 4
    unary = torch.tensor(rng.uniform(0, 1, (h, w, k)), dtype=torch.float32)
    flows = torch.tensor(rng.integers(-3, 4, (h, w, k, 2)), dtype=torch.float32)
    start = unary.argmin(2)
    e0 = crf.grid_energy(unary, flows, start, lam=0.3, tau=3.0)
    labels = crf.solve_bcd(unary, flows, lam=0.3, tau=3.0, sweeps=3)
    e1 = crf.grid_energy(unary, flows, labels, lam=0.3, tau=3.0)
    assert e1 < e0
    # One row is a single chain: BCD's row pass is the exact optimum there.
    row_u, row_f = unary[:1, :5, :3], flows[:1, :5, :3]
    row_labels = crf.solve_bcd(row_u, row_f, lam=0.3, tau=3.0, sweeps=1)
    best = min(itertools.product(range(3), repeat=5),
               key=lambda lab: crf.grid_energy(row_u, row_f, torch.tensor([lab]), lam=0.3, tau=3.0))
    assert crf.grid_energy(row_u, row_f, row_labels, lam=0.3, tau=3.0) == pytest.approx(
        crf.grid_energy(row_u, row_f, torch.tensor([best]), lam=0.3, tau=3.0), abs=1e-5)


def test_crf_overrules_a_lone_wrong_match():
    # Every point prefers flow (0, 0) except one, whose best (cheaper by 0.1) is a far outlier.
    h, w = 5, 5
    flows = torch.zeros(h, w, 2, 2)
    flows[..., 1, :] = torch.tensor([9.0, 9.0])
    unary = torch.tensor([0.0, 0.5]).repeat(h, w, 1)
    unary[2, 2] = torch.tensor([0.3, 0.2])
    labels = crf.solve_bcd(unary, flows, lam=0.05, tau=4.0, sweeps=2)
    assert labels.sum() == 0


# --- proposals -------------------------------------------------------------------------------


def test_keep_best_distinct_drops_copies_and_sorts():
    flows = torch.tensor([[[1, 0], [2, 0], [1, 0], [3, 3]]])
    costs = torch.tensor([[0.5, 0.2, 0.1, 0.9]])
    f, c = proposals.keep_best_distinct(flows, costs, 3)
    assert f[0].tolist() == [[1, 0], [2, 0], [3, 3]]
    assert c[0].tolist() == pytest.approx([0.1, 0.2, 0.9])


def test_descriptors_follow_the_image():
    scene = translation_scene(96, 128, shift=(7.0, 3.0), seed=3)
    d1 = descriptors.sift_like(gray(scene.img1))
    d2 = descriptors.sift_like(gray(scene.img2))
    assert d1.shape == (96, 128, 128)
    norms = np.linalg.norm(d1, axis=2)
    assert norms.max() <= 1.0 + 1e-5 and norms.mean() > 0.5
    # Interior pixels: the descriptor moves with the image (integer shift, same texture).
    same = d1[20:70, 20:100] - d2[23:73, 27:107]
    other = d1[20:70, 20:100] - d2[20:70, 20:100]
    assert np.abs(same).mean() < 0.1 * np.abs(other).mean()


def test_coarse_to_fine_search_finds_a_large_shift():
    scene = translation_scene(160, 224, shift=(45.0, -6.0), seed=5)
    pyr1, pyr2 = descriptors.descriptor_pyramids(gray(scene.img1), gray(scene.img2), 2, dims=32)
    pyr1, pyr2 = [torch.from_numpy(d) for d in pyr1], [torch.from_numpy(d) for d in pyr2]
    props = proposals.coarse_to_fine_proposals(pyr1, pyr2, stride=4, k=8, radius=64, finest=0)
    # Points whose 16x16 descriptor patch lies inside both frames (at the borders it is cut off).
    inside = ((props.xs[None, :] >= 16) & (props.xs[None, :] + 45 < 224 - 16)
              & (props.ys[:, None] - 6 >= 16) & (props.ys[:, None] < 160 - 16))
    best = props.flows[:, :, 0]
    correct = (best[..., 0] == 45) & (best[..., 1] == -6)
    assert correct[inside].float().mean() > 0.95


# --- consistency -----------------------------------------------------------------------------

def best_match_accuracy(props: proposals.Proposals, flow: np.ndarray, region: np.ndarray | None = None,
                        *, any_candidate: bool = False) -> float:
    """Share of grid points (inside ``region``) whose best (or any) candidate is within 1 px of ``flow``."""
    ys, xs = props.ys.numpy(), props.xs.numpy()
    error = np.linalg.norm(props.flows.numpy() - flow[ys][:, xs][:, :, None], axis=3)
    correct = (error <= 1.0).any(2) if any_candidate else error[..., 0] <= 1.0
    return float(correct.mean() if region is None else correct[region[ys][:, xs]].mean())


def test_scale_tolerant_costs_match_a_zoom():
    # Frame 2 is frame 1 zoomed by 1.3 about the centre: a fixed-size descriptor no longer matches.
    h, w, zoom = 192, 256, 1.3
    zoom_about_centre = np.array([[zoom, 0, (1 - zoom) * w / 2], [0, zoom, (1 - zoom) * h / 2], [0, 0, 1]])
    scene = render_scene(h, w, zoom_about_centre, [], seed=3)
    pyr1, pyr2, small1, small2 = ([torch.from_numpy(d) for d in pyr] for pyr in descriptors.descriptor_pyramids(
        gray(scene.img1), gray(scene.img2), 2, dims=32, shrink=0.84))
    assert [tuple(d.shape[:2]) for d in small2] == [(161, 215), (81, 108), (40, 54)]
    options = dict(stride=4, k=8, radius=64, finest=0)
    plain = proposals.coarse_to_fine_proposals(pyr1, pyr2, **options)
    scaled = [[(d1, 1.0, d2_small, 0.84)] for d1, d2_small in zip(pyr1, small2)]
    tolerant = proposals.coarse_to_fine_proposals(pyr1, pyr2, scaled=scaled, **options)
    # Matching frame 1 against frame 2 shrunk finds far more of the true (zooming) flow.
    assert best_match_accuracy(tolerant, scene.flow) > 1.5 * best_match_accuracy(plain, scene.flow) + 0.05
    # A flow costs the smaller of its distances, so no cost goes up.
    level = proposals.MatchLevel(pyr1[0], pyr2[0], scaled[0])
    flows = plain.flows
    assert torch.all(level.score(plain.ys, plain.xs, flows)
                     <= proposals.score(pyr1[0], pyr2[0], plain.ys, plain.xs, flows) + 1e-6)


@pytest.mark.parametrize("seed, radius, shift", [(1, 24, 40), (3, 20, 36), (5, 18, 40)])
def test_windowed_search_on_finer_levels_finds_a_small_fast_object(seed, radius, shift):
    # A small disc moving fast over a still background is lost at the coarsest level (a few pixels).
    disc = SceneObject(center=(70, 90), axes=(radius, radius), affine=np.array([[1, 0, shift], [0, 1, 0]], float))
    scene = render_scene(192, 256, np.eye(3), [disc], seed=seed)
    pyr1, pyr2 = ([torch.from_numpy(d) for d in pyr] for pyr in descriptors.descriptor_pyramids(
        gray(scene.img1), gray(scene.img2), 3, dims=32))
    visible_disc = (scene.instances == 1) & ~scene.occluded
    options = dict(stride=4, k=8, radius=64, coarse_stride=8)
    without = proposals.coarse_to_fine_proposals(pyr1, pyr2, **options)
    with_search = proposals.coarse_to_fine_proposals(pyr1, pyr2, search_pixels=8000, **options)
    assert best_match_accuracy(without, scene.flow, visible_disc, any_candidate=True) < 0.1
    assert best_match_accuracy(with_search, scene.flow, visible_disc, any_candidate=True) > 0.6


def test_scored_window_finds_what_the_exhaustive_search_finds_in_a_narrow_window():
    rng = np.random.default_rng(4)
    desc1 = torch.from_numpy(rng.normal(size=(20, 26, 8)).astype(np.float32))
    desc2 = torch.from_numpy(rng.normal(size=(20, 26, 8)).astype(np.float32))
    ys, xs = proposals.grid_coords(20, 26, 3)
    level = proposals.MatchLevel(desc1, desc2)
    exact = proposals.exhaustive_knn(desc1, desc2, ys, xs, k=5, radius=3)
    scored = proposals.scored_window(level, ys, xs, k=5, radius=3)
    assert proposals.window_flows(3).shape == (49, 2)
    assert scored.flows.shape == exact.flows.shape == (len(ys), len(xs), 5, 2)
    # Where the window lies inside frame 2: the same k best (random descriptors, no ties), the same
    # costs up to rounding.
    inside = ((ys[:, None] >= 3) & (ys[:, None] < 17)) & ((xs[None] >= 3) & (xs[None] < 23))
    assert inside.sum() >= 20
    assert torch.equal(scored.flows[inside], exact.flows[inside])
    torch.testing.assert_close(scored.costs[inside], exact.costs[inside], atol=1e-4, rtol=1e-4)
    # A window with fewer flows than k repeats the best.
    tiny = proposals.scored_window(level, ys, xs, k=12, radius=1)
    assert tiny.flows.shape[2] == 12 and torch.equal(tiny.flows[:, :, 9:], tiny.flows[:, :, :1].expand(-1, -1, 3, -1))


def test_forward_backward_error_flags_inconsistent_points():
    fwd = np.full((10, 12, 2), (4.0, 0.0), np.float32)
    bwd = -fwd.copy()
    bwd[4, 6] = (5.0, 5.0)  # the forward match of grid point (4, 5) lands on grid point (4, 6)
    err = consistency.forward_backward_error(fwd, bwd, 4, (40, 48))
    assert err[4, 5] > 5 and err[2, 2] == pytest.approx(0.0)
    assert np.isinf(err[:, -1]).all()  # x = 44 + 4 leaves the 48-pixel-wide frame


def test_small_segments_are_removed():
    flow = np.zeros((20, 20, 2), np.float32)
    flow[5:7, 5:7] = (10.0, 0.0)  # an island of 4 points with another motion
    flow[10:18, 10:18] = (-8.0, 2.0)  # a big segment with another motion
    valid = consistency.remove_small_segments(flow, np.ones((20, 20), bool), max_diff=1.0, min_size=8)
    assert not valid[5:7, 5:7].any()
    assert valid[10:18, 10:18].all() and valid[0, 0]


# --- densify ---------------------------------------------------------------------------------


def test_subpixel_refinement_recovers_fractional_shifts():
    scene = translation_scene(96, 128, shift=(6.4, -2.7), seed=2)
    ys, xs = np.mgrid[16:80:8, 16:100:8]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    rounded = np.tile(np.float32([6.0, -3.0]), (len(points), 1))
    refined, ncc, _ = densify.refine_matches(gray(scene.img1), gray(scene.img2), points, rounded)
    err = np.abs(refined - np.float32([6.4, -2.7]))
    assert np.median(err) < 0.08 and err.max() < 0.3
    assert np.median(ncc) > 0.95 and ncc.min() > 0.8
    # A wrong match is not moved far and its patches do not correlate.
    _, bad_ncc, _ = densify.refine_matches(gray(scene.img1), gray(scene.img2), points, rounded + 9.0)
    assert np.median(bad_ncc) < 0.5


# --- the method ------------------------------------------------------------------------------


def test_large_translation_that_dis_misses():
    scene = translation_scene(240, 320, shift=(48.0, 0.0), seed=0)
    visible = ~scene.occluded
    dis_epe = epe(DISFlow("medium")(scene.img1, scene.img2), scene.flow, visible)
    result = DiscreteFlow(preset="fast").estimate(scene.img1, scene.img2)
    ours = epe(result.flow, scene.flow, visible)
    assert dis_epe > 5.0  # the premise: DIS does not reach 48 px
    assert ours < 0.5
    assert result.confidence.shape == (240, 320) and result.confidence.dtype == np.float32
    assert 0.0 <= result.confidence.min() and result.confidence.max() <= 1.0


def two_motion_scene():
    """Background moving (+10, 0), a large ellipse moving (-12, 4) in front of it."""
    h, w = 192, 256
    background = np.array([[1, 0, 10.0], [0, 1, 0.0], [0, 0, 1]])
    obj = SceneObject((128.0, 96.0), (60.0, 44.0), np.array([[1, 0, -12.0], [0, 1, 4.0]]))
    return render_scene(h, w, background, [obj], seed=7)


def test_crf_keeps_the_motion_boundary():
    scene = two_motion_scene()
    inside = scene.instances == 1
    visible = ~scene.occluded
    # Points within 6 px of the object's outline: patches there straddle both motions.
    kernel = np.ones((13, 13), np.uint8)
    ring = (cv2.dilate(inside.astype(np.uint8), kernel) - cv2.erode(inside.astype(np.uint8), kernel)).astype(bool)

    def grid_accuracy(result, stride, region):
        grid = result.extras["grid_flow"]
        sub = (slice(0, grid.shape[0] * stride, stride), slice(0, grid.shape[1] * stride, stride))
        correct = np.linalg.norm(grid - scene.flow[sub], axis=2) <= 1.0
        return correct[region[sub]].mean()

    # crf_check=0: the CRF's labelling is the grid flow (as in DiscreteFlow).
    with_crf = DiscreteFlow(refine=False, crf_check=0).estimate(scene.img1, scene.img2)
    without = DiscreteFlow(refine=False, crf=False).estimate(scene.img1, scene.img2)
    stride = DiscreteFlow().params.stride
    # The CRF does not smooth the two motions into each other: it gets more boundary points right.
    assert grid_accuracy(with_crf, stride, ring & visible) > grid_accuracy(without, stride, ring & visible) + 0.05
    assert grid_accuracy(with_crf, stride, ~ring & visible) > 0.93
    # Dense flow: both motions recovered away from the outline, a sharp edge between them.
    assert epe(with_crf.flow, scene.flow, visible & inside & ~ring) < 0.2
    assert epe(with_crf.flow, scene.flow, visible & ~inside & ~ring) < 0.2
    # Occluded pixels (no true match) are the least trusted.
    assert with_crf.confidence[scene.occluded].mean() < with_crf.confidence[visible].mean() - 0.3


def periodic_scene(seed: int, *, period: int = 9, shift: tuple[int, int] = (11, 3)):
    """A textured plane translated by ``shift`` with a checkered stripe pattern (``period`` px) in its
    middle, where matches one period off cost as little as the true ones.

    Returns (img1, img2, flow (H, W, 2), the patterned region (H, W) bool)."""
    h, w = 160, 224
    tex = random_texture(h + 40, w + 40, np.random.default_rng(seed)).astype(np.uint8)
    yy, xx = np.mgrid[0:h + 40, 0:w + 40]
    stripes = 127 + 100 * np.sin(2 * np.pi * xx / period) * np.sign(np.sin(2 * np.pi * yy / period + 0.3))
    box = (slice(50, 150), slice(70, 200))
    tex[box] = stripes[box][..., None].astype(np.uint8)
    dx, dy = shift
    img1 = tex[20:20 + h, 20:20 + w].copy()
    img2 = tex[20 - dy:20 - dy + h, 20 - dx:20 - dx + w].copy()
    flow = np.broadcast_to(np.float32(shift), (h, w, 2)).copy()
    region = np.zeros((h, w), bool)
    region[box[0].start - 15:box[0].stop - 25, box[1].start - 15:box[1].stop - 25] = True
    return img1, img2, flow, region


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crf_check_flags_wrong_matches(seed):
    img1, img2, flow, region = periodic_scene(seed)
    method = DiscreteFlow(refine=False)
    assert method.params.crf_check > 0  # the default: the CRF checks each point's best match
    result = method.estimate(img1, img2)
    grid, agrees = result.extras["grid_flow"], result.extras["grid_crf_agrees"]
    stride = method.params.stride
    sub = (slice(0, grid.shape[0] * stride, stride), slice(0, grid.shape[1] * stride, stride))
    wrong = np.linalg.norm(grid - flow[sub], axis=2) > 1.0
    # The premise: many best matches in the pattern are a period off.
    assert wrong[region[sub]].mean() > 0.3
    # Where the smooth labelling disagrees with the best match, the match is almost always wrong;
    # those points are dropped before interpolation.
    assert (~agrees).sum() >= 50
    assert wrong[~agrees].mean() > 0.9
    assert wrong[agrees].mean() < 0.25
    assert not (result.extras["grid_valid"] & ~agrees).any()
    # Without the CRF nothing is flagged.
    unchecked = DiscreteFlow(refine=False, crf=False).estimate(img1, img2)
    assert unchecked.extras["grid_crf_agrees"].all()


def test_any_size_gray_or_colour():
    scene = translation_scene(61, 47, shift=(3.0, 1.0), seed=4)
    for img1, img2 in ((scene.img1, scene.img2), (gray(scene.img1), gray(scene.img2))):
        result = DiscreteFlow(preset="fast").estimate(img1, img2)
        assert result.flow.shape == (61, 47, 2) and result.confidence.shape == (61, 47)
        assert np.isfinite(result.flow).all()
    tiny = DiscreteFlow(preset="fast").estimate(scene.img1[:9, :11], scene.img2[:9, :11])
    assert tiny.flow.shape == (9, 11, 2) and np.isfinite(tiny.flow).all()



@pytest.mark.parametrize("preset", ["fast", "balanced"])
def test_a_frame_too_small_for_coarser_levels_places_its_matches_on_the_finest_grid(preset):
    # 40 px tall: balanced has no level above full size, fast none above its finest (half size). The
    # one level searched was gridded coarse_stride apart, but the matches were placed stride apart: the
    # points of the block moving 8 px right were put 3/8 of the way further left, and their flow with them.
    rng = np.random.default_rng(3)
    bg, fg = to_uint8(random_texture(40, 200, rng)), to_uint8(random_texture(40, 200, rng))
    img1, img2 = bg.copy(), bg.copy()
    img1[:, 100:160], img2[:, 108:168] = fg[:, 100:160], fg[:, 100:160]
    truth = np.zeros((40, 200, 2), np.float32)
    truth[:, 100:160, 0] = 8
    method = get_method("discrete", preset=preset, sharpen=False, missed_motions=False)
    result = method.estimate(img1, img2)
    stride = method.params.stride
    assert result.extras["grid_flow"].shape[:2] == (-(-40 // stride), -(-200 // stride))
    assert epe(result.flow, truth) < 1.0

def test_registry_options_and_errors():
    method = get_method("discrete", preset="fast", crf=False, k=4, sharpen=False)
    assert isinstance(method, DiscreteFlow) and method.params.k == 4 and not method.use_crf
    assert method.params.stride == PRESETS["fast"].stride
    # By default discrete is sharpened; the wrapper shows the base's own attributes.
    sharpened = get_method("discrete", preset="fast", k=4)
    assert isinstance(sharpened, SharpenedFlow) and isinstance(sharpened.base, DiscreteFlow)
    assert sharpened.params.k == 4 and sharpened.params.missed_motions
    with pytest.raises(InputError):
        get_method("discrete", preset="turbo")
    with pytest.raises(InputError):
        get_method("discrete", bogus=1)
    with pytest.raises(InputError):
        get_method("discrete", descriptor="surf")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_method("discrete", device="auto").device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(InputError):
            get_method("discrete", device="cuda")


@pytest.mark.skipif(not (DATA / "middlebury" / "Venus").is_dir(), reason="public data ../shared/data absent")
def test_beats_dis_on_a_middlebury_pair():
    from semflow.io.flow import read_flow_valid
    from semflow.io.images import read_image

    seq = DATA / "middlebury" / "Venus"
    img1, img2 = read_image(seq / "frame10.png"), read_image(seq / "frame11.png")
    gt, valid = read_flow_valid(seq / "flow10.flo")
    ours = epe(DiscreteFlow().estimate(img1, img2).flow, gt, valid)
    dis = epe(DISFlow("medium")(img1, img2), gt, valid)
    assert ours < dis


def test_edge_map_is_the_interpolators_own_and_motion_edges_boost_it_near_jumps() -> None:
    from semflow.baseline.discrete import densify
    from semflow.synthetic_hard import make_hard_scene

    scene = make_hard_scene(90, 120, seed=3)
    ys, xs = np.mgrid[2:90:6, 2:120:6]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    flows = scene.flow[ys.ravel(), xs.ravel()]
    own = densify.interpolate(scene.img1, scene.img2, points, flows)
    given = densify.interpolate(scene.img1, scene.img2, points, flows, cost_map=densify.edge_map(scene.img1))
    np.testing.assert_array_equal(own, given)
    # A flow with one vertical jump at x = 60: edges are boosted within 6 px of it, nowhere else.
    flow = np.zeros((90, 120, 2), np.float32)
    flow[:, 60:, 0] = 10.0
    boosted = densify.motion_edge_map(scene.img1, flow, boost=9.0)
    plain = densify.edge_map(scene.img1)
    np.testing.assert_allclose(boosted[:, 54:66], 10.0 * plain[:, 54:66], rtol=1e-5)
    np.testing.assert_array_equal(boosted[:, :50], plain[:, :50])
    np.testing.assert_array_equal(boosted[:, 70:], plain[:, 70:])


def test_sample_grid_flow_takes_more_than_32767_points() -> None:
    """cv2.remap refuses maps of 32767 rows or more: the points were laid out as one column, so frames
    above ~0.5 Mpx (at stride 4) stopped with an OpenCV assertion traceback (issue 14, huge inputs)."""
    rng = np.random.default_rng(3)
    grid = rng.standard_normal((60, 80, 2)).astype(np.float32)
    x = rng.uniform(0, 79 * 4, 40_000).astype(np.float32)
    y = rng.uniform(0, 59 * 4, 40_000).astype(np.float32)
    out = consistency.sample_grid_flow(grid, x, y, 4)
    gx, gy = x / 4, y / 4
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    x1, y1 = np.minimum(x0 + 1, 79), np.minimum(y0 + 1, 59)
    fx, fy = (gx - x0)[:, None], (gy - y0)[:, None]
    expected = ((1 - fx) * (1 - fy) * grid[y0, x0] + fx * (1 - fy) * grid[y0, x1]
                + (1 - fx) * fy * grid[y1, x0] + fx * fy * grid[y1, x1])
    assert out.shape == (40_000, 2)
    error = np.abs(out - expected)  # OpenCV interpolates with weights quantised to 1/32 px
    assert error.max() < 0.15 and error.mean() < 0.02, (error.max(), error.mean())


def test_interpolate_takes_more_than_32767_matches() -> None:
    """OpenCV's edge-aware interpolator asserts match_num < 32767: discrete stopped with a traceback on
    frames above ~0.5 Mpx (issue 14, huge inputs); an evenly spread subset is interpolated instead."""
    rng = np.random.default_rng(5)
    img = to_uint8(random_texture(220, 220, rng))
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    ys, xs = np.mgrid[5:205, 5:205].astype(np.float32)
    points = np.stack([xs.ravel(), ys.ravel()], 1)  # 40000 matches
    flows = np.tile(np.float32([3.0, -1.0]), (len(points), 1))
    dense = densify.interpolate(img, img, points, flows)
    assert dense.shape == (220, 220, 2)
    np.testing.assert_allclose(np.median(dense[10:200, 10:200].reshape(-1, 2), axis=0), (3.0, -1.0), atol=0.05)


def test_interpolating_fewer_matches_than_the_interpolators_neighbourhood() -> None:
    """OpenCV's EPIC takes the K = 128 nearest matches; given fewer, it read past the list and returned
    garbage that varied run to run (small frames). 25 matches of one translation must give that
    translation everywhere."""
    img1 = random_texture(48, 64, np.random.default_rng(3)).astype(np.uint8)
    img2 = np.roll(img1, (1, 2), axis=(0, 1))
    ys, xs = np.mgrid[6:44:9, 6:60:12]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    assert len(points) < 32
    flows = np.tile(np.float32([2.0, 1.0]), (len(points), 1))
    dense = densify.interpolate(img1, img2, points, flows)
    assert np.abs(dense - np.float32([2.0, 1.0])).max() < 0.1


def test_ric_interpolation_of_too_few_matches_falls_back_to_epic() -> None:
    """OpenCV's RIC stops with an assertion (a cv2.error traceback) when its superpixels get too few
    matches, as on a 48x64 frame with 25 matches: the interpolation is then EPIC's, still exact."""
    img1 = random_texture(48, 64, np.random.default_rng(3)).astype(np.uint8)
    img2 = np.roll(img1, (1, 2), axis=(0, 1))
    ys, xs = np.mgrid[6:44:9, 6:60:12]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    flows = np.tile(np.float32([2.0, 1.0]), (len(points), 1))
    with pytest.raises(cv2.error):  # OpenCV's own RIC, as called before the fallback
        cv2.ximgproc.createRICInterpolator().interpolate(img1, points, img2, points + flows)
    dense = densify.interpolate(img1, img2, points, flows, method="ric")
    assert np.abs(dense - np.float32([2.0, 1.0])).max() < 0.1
