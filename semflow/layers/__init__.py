"""Motion models per region kind: things (local two-layer model), planes (homography), stuff (baseline)."""

from semflow.layers.common import Region, find_regions
from semflow.layers.planes import PlaneFit, PlaneParams, fit_planes
from semflow.layers.stuff import stuff_flow
from semflow.layers.things import ThingFit, ThingParams, fit_things

__all__ = [
    "PlaneFit", "PlaneParams", "Region", "ThingFit", "ThingParams",
    "find_regions", "fit_planes", "fit_things", "stuff_flow",
]
