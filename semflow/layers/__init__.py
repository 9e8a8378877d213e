"""Motion models per region kind: things (local two-layer model), planes (homography); stuff keeps the baseline.

The data flow of one frame pair, as :class:`semflow.semantic.SemanticFlow` runs it:

    ctx = PairContext.build(img1, img2, baseline_flow, confidence, thing_pixels=...)   # .context
    planes = fit_planes(plane_regions, ctx, PlaneParams())                            # .planes
    things = fit_things(instances, instance_map, ctx, ThingParams(), plane_flow=...)  # .things
    composition = semflow.compose.compose(ctx, planes, things)

Regions are :class:`semflow.segmentation.regions.Region` (plane regions from ``find_regions``, thing
instances from ``extract_instances``). Fits are frozen dataclasses (:class:`PlaneFit`, :class:`ThingFit`);
each accepted fit carries a ``veto`` map where the baseline stays, by the one rule of :mod:`.veto`.
Shared pieces (photometric error, morphology, warp refinement) are in :mod:`.common`.
"""

from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit, PlaneParams, fit_planes
from semflow.layers.things import ThingFit, ThingParams, fit_things
from semflow.layers.veto import VetoParams, baseline_veto

__all__ = [
    "PairContext", "PlaneFit", "PlaneParams", "ThingFit", "ThingParams", "VetoParams",
    "baseline_veto", "fit_planes", "fit_things",
]
