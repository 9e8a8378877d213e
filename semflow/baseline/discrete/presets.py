"""Named parameter sets for :class:`~semflow.baseline.discrete.DiscreteFlow`: speed against accuracy."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """Parameters of one DiscreteFlow run. Distances are in pixels of the full-size frames.

    stride: grid spacing of the matched points. coarse_stride: grid spacing on the
    coarser levels of the search. dims: descriptor size after PCA. k: candidates per point. levels: pyramid levels above
    full size used by the coarse-to-fine search. finest: the finest level matched (0 = full size).
    radius: search window half-size. local: inherited candidates that get a +-1 px search per level.
    sweeps: block-coordinate-descent sweeps of the CRF. lam, tau: CRF smoothness weight and
    truncation (tau in pixels); unary_trunc: truncation of the matching cost. fb_threshold: the
    forward-backward error (pixels) above which a match is dropped; min_segment: smallest kept
    segment (grid points); ncc_min: the smallest normalised cross-correlation of a
    match's ``check_patch`` x ``check_patch`` windows (after sub-pixel refinement) that is kept. interpolator: "epic" or "ric". refine_iterations, refine_scales:
    variational refinement.
    """

    stride: int = 5
    coarse_stride: int = 8
    dims: int = 32
    k: int = 12
    levels: int = 3
    finest: int = 0
    radius: int = 256
    local: int = 2
    sweeps: int = 2
    lam: float = 0.05
    tau: float = 4.0
    unary_trunc: float = 0.8
    fb_threshold: float = 2.0
    min_segment: int = 8
    ncc_min: float = 0.7
    check_patch: int = 5
    interpolator: str = "epic"
    refine_iterations: int = 5
    refine_scales: int = 2

    def with_options(self, **options) -> Preset:
        """A copy with some fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


PRESETS: dict[str, Preset] = {
    "fast": Preset(stride=8, coarse_stride=16, k=8, finest=1, local=1, sweeps=1),
    "balanced": Preset(),
    "accurate": Preset(stride=4, coarse_stride=4, k=16, local=4, sweeps=3),
}
DEFAULT_PRESET = "balanced"
