"""discrete's second, local interpolation where a small thing's matches were outvoted (local_k)."""

from __future__ import annotations

import numpy as np

from semflow.baseline.discrete import densify
from semflow.synthetic import moving_patch_scene

H, W = 160, 224
BACKGROUND, THING = (1.0, 0.5), (20.0, -2.0)


def _scene(thing: tuple[slice, slice]):
    """A textured thing moving THING px over a textured background moving BACKGROUND px: frames, the
    true flow, the thing's mask, and the true flow's matches on a 5 px grid."""
    mask = np.zeros((H, W), bool)
    mask[thing] = True
    img1, img2, flow, _ = moving_patch_scene(mask, BACKGROUND, THING, seed=3)
    ys, xs = np.mgrid[0:H:5, 0:W:5]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    return img1, img2, flow, mask, points, flow[ys.ravel(), xs.ravel()]


def _both(img1, img2, points, matches):
    wide = densify.interpolate(img1, img2, points, matches)
    return wide, densify.interpolate(img1, img2, points, matches, k=32)


def test_a_small_things_outvoted_matches_get_their_local_flow() -> None:
    img1, img2, flow, mask, points, matches = _scene((slice(60, 80), slice(90, 120)))  # 24 of ~1400 matches
    wide, local = _both(img1, img2, points, matches)
    error = lambda f: float(np.linalg.norm(f - flow, axis=-1)[mask].mean())  # noqa: E731
    assert error(wide) > 10.0  # 128 neighbours: the background's matches outvote the thing's
    out, taken = densify.follow_outvoted_matches(img1, img2, points, matches, wide, local)
    assert taken == 1 and error(out) < 2.0
    assert np.linalg.norm(out - flow, axis=-1).mean() < np.linalg.norm(wide - flow, axis=-1).mean()
    np.testing.assert_array_equal(out[~mask & (np.linalg.norm(local - wide, axis=-1) <= 3.0)],
                                  wide[~mask & (np.linalg.norm(local - wide, axis=-1) <= 3.0)])


def test_matches_wrong_together_do_not_pass_the_photometric_test() -> None:
    # 16 matches in a 20 x 20 px block of the background all 15 px off: the local flow follows them (they
    # agree with it and not with the wide one), but it explains frame t+1 worse there: not taken.
    img1, img2, flow, _, points, matches = _scene((slice(0, 0), slice(0, 0)))
    block = (points[:, 1] >= 100) & (points[:, 1] < 120) & (points[:, 0] >= 40) & (points[:, 0] < 60)
    matches = matches.copy()
    matches[block] += (15.0, 0.0)
    wide, local = _both(img1, img2, points, matches)
    region = np.zeros((H, W), bool)
    region[100:120, 40:60] = True
    assert np.linalg.norm(local - flow, axis=-1)[region].mean() > 2.0  # the local flow followed them
    out, taken = densify.follow_outvoted_matches(img1, img2, points, matches, wide, local)
    assert taken == 0 and np.array_equal(out, wide)
