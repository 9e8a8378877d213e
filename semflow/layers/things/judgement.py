"""Whether a thing's layered model replaces the baseline at all: one verdict from the photometric
errors of both flows on the pixels the model is judged on (visible, away from its outline, where it
changes the flow; :func:`~semflow.layers.things.layered.judged_pixels` picks them).

Two rules, both on medians (occlusions by things no model here knows about leave a minority of
pixels with meaningless, large errors):

- the model's per-pixel error minus the baseline's has a median no higher than
  ``ThingParams.error_slack``;
- where the model leaves most of those pixels unexplained (its median error at least
  ``ThingParams.unexplained_error``), its median error is also below the baseline's: a tie among pixels
  that neither flow explains is no evidence for the model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from semflow.layers.things.params import ThingParams


class Judgement(NamedTuple):
    """The verdict on a model: medians in grey levels, and why it is rejected ("" when it is not)."""

    model_error: float
    baseline_error: float
    excess: float
    """Median of the model's per-pixel error minus the baseline's."""
    objection: str


def judge_model(model_errors: np.ndarray, baseline_errors: np.ndarray, params: ThingParams) -> Judgement:
    """The verdict for per-pixel photometric errors (N,) of the model and of the baseline (grey levels)
    on the same N >= 1 judged pixels."""
    model_error, baseline_error = float(np.median(model_errors)), float(np.median(baseline_errors))
    excess = float(np.median(model_errors - baseline_errors))
    if excess > params.error_slack:
        return Judgement(model_error, baseline_error, excess, f"median photometric error {excess:.2f} above the baseline's")
    if 0 < params.unexplained_error <= model_error and model_error >= baseline_error:
        return Judgement(model_error, baseline_error, excess,
                         f"most judged pixels unexplained (median error {model_error:.1f}, "
                         f"the baseline's {baseline_error:.1f})")
    return Judgement(model_error, baseline_error, excess, "")
