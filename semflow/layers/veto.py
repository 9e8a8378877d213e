"""The one rule for "keep the baseline here": where a fitted model (a plane's homography, a thing's
layers) is accepted but a pixel should still take the baseline's flow.

A pixel keeps the baseline when

- the baseline explains the frames there clearly better: its local photometric error is lower than
  the model's by more than ``margin`` grey levels (and, if ``disagreement`` is set, the two flows
  differ there by more than that many px); or
- the baseline is confident there (``trust_confidence``), differs from the model by more than
  ``trust_disagreement`` px, and the model is not locally better by ``trust_margin`` grey levels:
  a model that photometry cannot show better does not overrule a confident baseline (a non-rigid
  object's affine layer, a plane label over a moving object).

Each model kind carries its own :class:`VetoParams` (``PlaneParams.veto``, ``ThingParams.veto``) and
stores the result as the ``veto`` map of its fit; the composer feathers it out of the model's weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VetoParams:
    """Settings of :func:`baseline_veto`. Errors in grey levels (0-255), distances in pixels."""

    window: int
    """Local errors are means over ``window`` x ``window`` pixels."""
    margin: float
    """The baseline keeps a pixel where its local error is lower than the model's by more than this..."""
    disagreement: float | None = None
    """...and the flows differ by more than this (px; None: wherever they differ or not)."""
    trust_confidence: float = 0.5
    """A baseline this confident keeps a pixel where it differs from the model..."""
    trust_disagreement: float = 1.0
    """...by more than this (px)..."""
    trust_margin: float = 3.0
    """...unless the model's local error is lower than the baseline's by this much."""


def baseline_veto(model_error: np.ndarray, baseline_error: np.ndarray | float, difference: np.ndarray,
                  confidence: np.ndarray, params: VetoParams) -> np.ndarray:
    """Pixels (h, w) bool where the baseline should stay instead of the model (see the module docstring).

    ``model_error``, ``baseline_error``: local (``params.window`` mean) photometric errors (h, w) of
    the model and of the baseline; or ``model_error`` the local mean of the model's excess error over
    the baseline's and ``baseline_error`` 0. ``difference`` (h, w): |model flow - baseline flow| (px);
    ``confidence`` (h, w): the baseline's confidence in [0, 1].
    """
    keep = baseline_error + params.margin < model_error
    if params.disagreement is not None:
        keep = (difference > params.disagreement) & keep
    trusted = confidence >= params.trust_confidence
    keep |= trusted & (difference > params.trust_disagreement) & (model_error > baseline_error - params.trust_margin)
    return keep
