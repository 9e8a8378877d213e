"""Named parameter sets for :class:`~semflow.baseline.discrete.DiscreteFlow`: speed against accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass, replace

from semflow.baseline.discrete.keypoints import MAX_KEYPOINTS
from semflow.errors import InputError
from semflow.options import SharpenOptions, option

_AT_LEAST_ONE = ("stride", "coarse_stride", "dims", "k", "levels", "radius", "local", "sweeps", "check_patch",
                 "keypoint_max", "refine_scales", "video_radius", "video_stride", "video_k", "video_coarse_stride",
                 "video_dims", "video_narrow_coarse_stride", "video_keypoint_max")
_AT_LEAST_ZERO = ("finest", "search_pixels", "keypoint_radius", "keypoint_count", "lam", "tau", "unary_trunc",
                  "crf_check", "fb_threshold", "fb_relative", "min_segment", "local_k", "motion_edges",
                  "median_radius", "ring_width", "video_ring_width", "boundary_radius", "boundary_matches", "refine_iterations", "refresh_every",
                  "refresh_share", "video_local", "video_prior")
_AT_MOST_ONE = ("keypoint_ratio", "ncc_min", "refresh_share", "video_prior")  # (shares and a correlation)
INTERPOLATORS = ("epic", "ric")


@dataclass(frozen=True)
class Preset:
    """Parameters of one DiscreteFlow run. Distances are in pixels of the full-size frames.

    Search: ``stride`` grid spacing of the matched points (``coarse_stride`` on the coarser levels);
    ``dims`` descriptor size after PCA; ``k`` candidates per point; ``levels`` pyramid levels above
    full size; ``finest`` the finest level matched (0 = full size); ``radius`` search window half-size;
    ``local`` inherited candidates that get a +-1 px search per level; ``shrink`` (a factor < 1; None
    or 1 is off): a match also costs its descriptor distance against either frame shrunk by this factor,
    for surfaces that grow or shrink between the frames; ``search_pixels``: levels with at most this
    many pixels also get the exhaustive windowed search (small fast objects).
    Keypoints (``keypoints.py``): ``keypoint_radius`` (px; 0: off): each grid point of the finest level
    is also offered the flows of its ``keypoint_count`` nearest SIFT keypoint matches within this
    distance (keypoints with contrast threshold ``keypoint_contrast``, matched mutually with Lowe's
    ratio ``keypoint_ratio``; at most ``keypoint_max`` a frame, the strongest): small things that move
    against their surroundings, which no coarse level sees. In video mode too unless ``video_keypoints``
    is off (each frame's keypoints are found once, as the second frame of one pair, and kept for the
    next; without them video mode misses cars passing at 15-30 px a frame that pair mode finds,
    BENCHMARKS.md, section video-hard), at most ``video_keypoint_max`` a frame there: the matching
    grows with the square of their number (vtest.avi has 8000 a frame at full count).
    CRF: ``sweeps`` block-coordinate-descent sweeps; ``lam``, ``tau`` smoothness weight and truncation;
    ``unary_trunc`` truncation of the matching cost (squared descriptor distance); ``crf_check`` (px):
    when > 0, each point keeps its best match, and the CRF's smooth labelling only checks it: a match
    more than this far from the CRF's choice is dropped (and interpolated over); 0 takes the CRF's
    choice as the match, as DiscreteFlow does.
    Filtering: ``fb_threshold`` largest forward-backward error kept (pixels), or ``fb_relative`` times
    the match's length where that is more (0.14 ~ sqrt(0.02): the relative part of the usual
    ``|f + b|^2 < 0.01 (|f|^2 + |b|^2) + c`` occlusion test with ``|b| ~ |f|``); ``min_segment`` smallest kept
    segment (grid points); ``ncc_min`` smallest normalised cross-correlation of a match's
    ``check_patch`` x ``check_patch`` windows after sub-pixel refinement.
    Boundary matches: ``boundary_matches`` (px; 0: off; 15 measured): a first, half-size interpolation,
    then the rejected grid points near its motion discontinuities get as a match the best-fitting flow
    from this far on either side (``boundary.boundary_matches``; about 1.25 times the time).
    Densification: ``interpolator`` "epic" or "ric"; ``local_k`` (0: off): EPIC again with this many
    nearest matches per local fit (the first uses 128), taken in the regions where a cluster of matches
    that the first outvoted agrees with it and it explains the frames clearly better
    (``densify.follow_outvoted_matches``: small things moving against their surroundings, whose own
    matches are a minority of 128; BENCHMARKS.md, section photo-scenes); ``motion_edges`` (0: off): a second interpolation
    whose edge costs are ``1 + motion_edges`` times stronger near the first one's motion boundaries
    (see ``densify.motion_edge_map``); ``refine_iterations``, ``refine_scales`` variational refinement;
    ``median_radius`` (px; 0: off; 15 measured): after refinement, a colour-weighted median of the flow
    over windows of this radius puts motion boundaries back on colour edges, near the flow's jumps only
    (``densify.weighted_median``, ``flow_jumps.near_jumps``; BENCHMARKS.md, section median);
    ``ring_width`` (px; 0: off; 6 in the balanced and accurate presets): last, after ``--sharpen`` where that
    is on, rigid moving regions found in the flow (superpixels whose affine fits agree) take their affine on
    their outer ``ring_width`` px where it moves the flow by at most 1 px, after a guarded vote that gives a
    few stray superpixels near them their motion (``rings.refit_rings``; docs/methods.md, section rings);
    off in the fast preset (about +0.3 s a 1024x436 pair: past its 1 s) and in video mode unless ``video_ring_width``.
    ``boundary_radius`` (0: off): after refinement, pixels near motion discontinuities take the
    best-matching flow found this many px away on either side (``boundary.reassign_boundaries``).
    ``missed_motions`` (on by default since 2026-12-02): last, blobs of pixels that the flow leaves
    fitting frame t+1 badly are searched again with small colour patches; where most of them agree on
    an affine motion that differs from the flow by 6 px or more, the blob's pixels choose between it and
    the flow by a graph cut on their colour errors, those hidden in frame t+1 by colour
    (``missed.follow_missed_motions``: a thin or half-hidden thing that no grid match saw, such as a car
    seen as a strip above the parked car in front of it; BENCHMARKS.md, section missed-motions). On the
    real datasets no blob qualifies and it changes nothing; with ``--sharpen`` after it (the registry's
    ``discrete`` has both) ``semantic`` gains from it on every set measured (section sharpen).
    Video mode (the last flow carried forward joins the candidates): ``video_radius`` the coarse
    search's half-size then; a full search every ``refresh_every`` pairs (0: only when triggered), and
    again on a pair whose share of kept matches falls below ``refresh_share`` times the last full one's.
    With good carried candidates fewer points and candidates do: video mode matches at least every
    ``video_stride`` px (``video_coarse_stride`` px on the coarser levels) with at most ``video_k``
    candidates, ``video_local`` of them searched +-1 px, and descriptors of at most ``video_dims``
    (PCA) dimensions (:meth:`for_video`); between full searches the coarser levels match only every
    ``video_narrow_coarse_stride`` px (the carried candidates come at every point of every level), and
    the scale-tolerant costs (``shrink``) are off unless ``video_narrow_scales`` (the carried flow
    already holds the expansion it was found with; on synthetic sequences with zooming objects
    ``video_narrow_scales=True`` lowers discrete's video EPE by about 5 % and its error along moving
    outlines by 6 %, below pair mode's, at +0.065 s a pair at 960x540, +25 %: off for speed).
    ``refresh_every`` and ``refresh_share`` are read from the preset itself, not from :meth:`for_video`.
    ``video_ring_width`` is ``ring_width`` in video mode (0: off; its cost and flicker there not measured). ``video_prior``: the largest pull of the
    interpolated flow toward the last flow carried forward where no matches back it (0: off; see
    ``temporal_prior``).
    """

    stride: int = 5
    coarse_stride: int = 8
    dims: int = 32
    k: int = 12
    levels: int = 3
    finest: int = 0
    radius: int = 256
    shrink: float | None = None
    search_pixels: int = 0
    keypoint_radius: float = 0.0
    keypoint_count: int = 2
    keypoint_contrast: float = 0.01
    keypoint_ratio: float = 0.8
    keypoint_max: int = MAX_KEYPOINTS
    local: int = 2
    sweeps: int = 2
    lam: float = 0.05
    tau: float = 4.0
    unary_trunc: float = 0.8
    crf_check: float = 0.0
    fb_threshold: float = 2.0
    fb_relative: float = 0.14
    min_segment: int = 8
    ncc_min: float = 0.7
    check_patch: int = 5
    interpolator: str = "epic"
    local_k: int = 32
    motion_edges: float = 0.0
    median_radius: int = 0
    ring_width: int = 0
    video_ring_width: int = 0
    boundary_radius: int = 0
    boundary_matches: int = 0
    missed_motions: bool = True
    refine_iterations: int = 5
    refine_scales: int = 2
    video_radius: int = 64
    refresh_every: int = 10
    refresh_share: float = 0.7
    video_stride: int = 8
    video_k: int = 8
    video_local: int = 2
    video_coarse_stride: int = 16
    video_dims: int = 16
    video_narrow_coarse_stride: int = 32
    video_narrow_scales: bool = False
    video_keypoints: bool = True
    video_keypoint_max: int = 3000
    video_prior: float = 0.85

    def __post_init__(self) -> None:
        for name in _AT_LEAST_ONE + _AT_LEAST_ZERO:  # (0 or less made a torch reshape error, a division by 0)
            value, least = getattr(self, name), 1 if name in _AT_LEAST_ONE else 0
            if value is not None and not value >= least:
                raise InputError(f"discrete: {name} must be at least {least}, got {value}")
        for name in _AT_MOST_ONE:  # (video_prior 2 pulled the flow to twice the last one)
            if not getattr(self, name) <= 1:
                raise InputError(f"discrete: {name} must be at most 1, got {getattr(self, name)}")
        if self.interpolator not in INTERPOLATORS:  # (else a ValueError at the first pair's densification)
            raise InputError(f"discrete: interpolator must be one of {', '.join(INTERPOLATORS)}, got {self.interpolator!r}")
        if self.shrink is not None and not 0 < self.shrink <= 1:
            raise InputError(f"discrete: shrink must be in (0, 1] (or None), got {self.shrink}")
        if self.boundary_matches > 0 and self.motion_edges > 0:
            raise InputError("discrete: boundary_matches and motion_edges both redo the interpolation near motion"
                             " boundaries and cannot be combined; set one of them to 0")

    def for_video(self) -> Preset:
        """The parameters video mode uses (sparser grid, fewer candidates, smaller descriptors; see the
        class docstring)."""
        return replace(self, stride=max(self.stride, self.video_stride), k=min(self.k, self.video_k),
                       local=min(self.local, self.video_local),
                       coarse_stride=max(self.coarse_stride, self.video_coarse_stride),
                       dims=self.dims if self.dims is None else min(self.dims, self.video_dims),
                       keypoint_radius=self.keypoint_radius if self.video_keypoints else 0.0,
                       keypoint_max=min(self.keypoint_max, self.video_keypoint_max), ring_width=self.video_ring_width)

    def with_options(self, **options) -> Preset:
        """A copy with some fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


SHRINK = 2 ** -0.25
"""A quarter octave: the scale step of the scale-tolerant matching costs."""

PRESETS: dict[str, Preset] = {
    # Its half-resolution matches are coarser: the plain 2 px forward-backward test suits it better.
    "fast": Preset(stride=8, coarse_stride=16, k=8, finest=1, local=1, sweeps=1, fb_relative=0.0),
    # Coarsest search at 1/16 size where the frames allow (>= 24 px).
    # The CRF checks the best matches (crf_check) with a stronger smoothness (lam).
    # Keypoint matches within 12 px (about 2.5 grid steps) of each finest grid point.
    # Rigid outlines refitted on their outer 6 px (rings.py): not in fast, whose 1 s target it would break.
    "balanced": Preset(levels=4, local=4, shrink=SHRINK, search_pixels=8000, lam=0.1, crf_check=3.0,
                       keypoint_radius=12.0, ring_width=6),
    "accurate": Preset(stride=4, coarse_stride=4, k=16, local=4, sweeps=3, shrink=SHRINK, search_pixels=8000,
                       lam=0.1, crf_check=3.0, keypoint_radius=12.0, ring_width=6),
}
DEFAULT_PRESET = "balanced"


DESCRIPTOR_NAMES = ("sift", "daisy", "kornia-sift")
"""The dense descriptors ``discrete`` can match (see ``descriptors.DESCRIPTORS``)."""


@dataclass(frozen=True)
class _DiscreteStages(SharpenOptions):
    sharpen: bool = option(True, "Redo the flow where it jumps by local motion layers (on by default for "
                           "discrete: BENCHMARKS.md, section sharpen).")
    preset: str = option(DEFAULT_PRESET, "Speed/quality preset of discrete: fast, balanced or accurate.",
                         choices=tuple(PRESETS))
    descriptor: str = option("sift", "Dense descriptor: sift (fast SIFT-like), daisy or kornia-sift.",
                             cli=False, choices=DESCRIPTOR_NAMES)
    propagation: bool = option(True, "Candidates from neighbours and from a coarse DIS flow (off: ablation).",
                               cli=False)
    crf: bool = option(True, "The discrete CRF (off: each point keeps its best match, unchecked).", cli=False)
    refine: bool = option(True, "Variational refinement of the dense flow.", cli=False)
    subpixel: bool = option(True, "Sub-pixel refinement of the matches.", cli=False)


DiscreteOptions = make_dataclass(
    "DiscreteOptions",
    [(f.name, f"{f.type} | None", field(default=None, metadata={
        "help": f"Override the preset's {f.name} (see Preset).", "cli": False, "choices": None}))
     for f in fields(Preset)],
    bases=(_DiscreteStages,), frozen=True, namespace={"__module__": __name__},
)
DiscreteOptions.__doc__ = """Options of ``discrete``: the preset, the stages switched on, and any :class:`Preset`
field as an override of the preset's value (None keeps the preset's)."""
