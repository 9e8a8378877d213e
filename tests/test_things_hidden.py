"""Background hidden behind a thing in frame t+1, inside the thing's own region (hidden_behind):
a parked car that a passing car covers takes the background's motion, not the passing car's."""

from __future__ import annotations

import numpy as np
import pytest

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.layers.things import ThingParams
from semflow.layers.things.assignment import hidden_behind
from semflow.metrics import epe
from semflow.segmentation.regions import Box
from semflow.semantic import SemanticFlow
from semflow.synthetic import SceneObject, random_homography, render_scene
from semflow.synthetic_hard import local_affine

PASSING = -28.0  # px, the passing car's motion along x relative to the background


def _street(seed: int = 1):
    """A parked car (instance 1, 26 px wide) touching a passing car (instance 2, in front) that moves
    PASSING px over it: in frame t+1 the parked car is hidden whole. Both are cars: one thing region."""
    rng = np.random.default_rng(seed)
    homography = random_homography(320, 240, rng, shift=4.0)
    parked = SceneObject(center=(148.0, 120.0), axes=(13.0, 22.0), affine=local_affine(homography, (148.0, 120.0)),
                         power=4.0)
    affine = local_affine(homography, (200.0, 120.0)).copy()
    affine[0, 2] += PASSING
    passing = SceneObject(center=(201.0, 120.0), axes=(40.0, 25.0), affine=affine, power=4.0)
    return render_scene(240, 320, homography, [parked, passing], seed=seed)


class SmearsThePassingCar(FlowMethod):
    """The true flow, except over the hidden parked car, which gets the passing car's (the smear an
    interpolation leaves where nothing matches)."""

    name = "smears-the-passing-car"

    def __init__(self, scene) -> None:
        self.scene = scene

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        flow = self.scene.flow.copy()
        parked, passing = self.scene.instances == 1, self.scene.instances == 2
        flow[parked] = np.median(flow[passing], axis=0)
        return FlowResult(flow)


def test_the_scene_hides_the_parked_car_whole():
    scene = _street()
    parked = scene.instances == 1
    assert parked.sum() > 800
    assert scene.occluded[parked].mean() > 0.95
    assert np.ptp(scene.labels[scene.instances > 0]) == 0  # one class: one thing region


@pytest.mark.parametrize("on", [True, False])
def test_a_hidden_parked_car_takes_the_background_motion(on):
    scene = _street()
    parked, passing = scene.instances == 1, scene.instances == 2
    method = SemanticFlow(SmearsThePassingCar(scene), segmentation=scene.labels,
                          things=ThingParams(hidden_behind=on))
    result = method.estimate(scene.img1, scene.img2, labels=scene.labels)
    parked_epe = epe(result.flow, scene.flow, None, parked)
    assert epe(result.flow, scene.flow, None, passing) < 0.5  # the passing car keeps its motion
    if on:
        assert parked_epe < 5.0, parked_epe  # the background's motion, carried under the passing car (28 px off)
        assert result.extras["occlusion"][parked].mean() > 0.8
    else:
        assert parked_epe > 20.0, parked_epe  # the passing car's motion, as the baseline had it


def _strip_case():
    """Maps over a 60 x 120 box: an object (x 50..99) moving 20 px left over a static background; the
    hidden strip x 30..49 belongs to the object's region; errors high there and low on the object."""
    h, w = 60, 120
    foreground = np.zeros((h, w), bool)
    foreground[10:50, 30:100] = True
    fg_flow = np.zeros((h, w, 2), np.float32)
    fg_flow[..., 0] = -20.0
    bg_flow = np.zeros((h, w, 2), np.float32)
    err_fg = np.full((h, w), 2.0, np.float32)
    err_bg = np.full((h, w), 2.0, np.float32)
    err_fg[:, 30:50] = err_bg[:, 30:50] = 30.0
    return foreground, fg_flow, bg_flow, err_fg, err_bg, Box(0, h, 0, w), (h, w)


def _hidden(case, *, landed: np.ndarray | None = None, reach: float = 40.0) -> np.ndarray:
    """``hidden_behind`` on a ``_strip_case`` (the object as its own region; everything lands unless
    ``landed`` says otherwise)."""
    foreground, fg_flow, bg_flow, err_fg, err_bg, box, shape = case
    landed = np.ones(shape, bool) if landed is None else landed
    return hidden_behind(foreground, foreground, fg_flow, bg_flow, err_fg, err_bg, landed, box, shape,
                         unexplained=15.0, reach=reach)


def test_hidden_behind_finds_the_strip_the_object_covers():
    case = _strip_case()
    hidden = _hidden(case)
    strip = case[0].copy()
    strip[:, 50:] = False
    assert (hidden & strip).sum() > 0.9 * strip.sum()
    assert not (hidden & ~strip).any()
    # A pixel that leaves the frame under the object's motion is not hidden; nor where the motions differ
    # by more than the reach.
    assert not _hidden(case, landed=np.zeros(case[-1], bool)).any()
    assert not _hidden(case, reach=10.0).any()


def test_hidden_behind_leaves_a_misfit_inside_the_object():
    """Badly explained pixels in the middle of the object land among its other pixels under its own
    motion: they are the object's (its motion misfits them), not background it hides."""
    case = _strip_case()
    err_fg, err_bg = case[3], case[4]
    err_fg[:], err_bg[:] = 2.0, 2.0
    err_fg[20:40, 70:80] = err_bg[20:40, 70:80] = 30.0
    assert not _hidden(case).any()
