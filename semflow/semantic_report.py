"""What one pair of ``semantic`` reports: its motion instances, its per-region decisions and its extras.

:class:`~semflow.semantic.SemanticFlow` builds these last, from the pair's segmentation, layer fits and
composition (the extras are described in :mod:`semflow.semantic`'s docstring).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.compose import MODEL_LEGEND, Composition
from semflow.layers.planes import PlaneFit
from semflow.layers.things import ThingFit
from semflow.segmentation import KIND_CODES, Box, LabelSet


def number_motion_instances(things: list[ThingFit], shape: tuple[int, int]) -> np.ndarray:
    """The motion instance of each pixel, (H, W) = ``shape`` uint16: one id per (thing, motion), 1, 2...
    over the accepted things that have motion labels (in the order of their boxes' lower edges, y1), 0
    where none. Each motion of ``things[].motions`` gets its ``id``: the report lists each id's affine."""
    motion_ids = np.zeros(shape, np.uint16)
    next_id = 1
    for t in sorted((t for t in things if t.accepted and t.motion_labels is not None), key=lambda t: t.box[1]):
        y0, y1, x0, x1 = t.box
        for m in t.motions:
            m["id"] = next_id
            motion_ids[y0:y1, x0:x1][t.motion_labels == m["motion"]] = next_id
            next_id += 1
    return motion_ids


def pair_report(baseline: FlowMethod, table: LabelSet, planes: list[PlaneFit], things: list[ThingFit],
                seconds: dict[str, float], track_ids: tuple[list[int], list[int]] | None) -> dict[str, Any]:
    """The pair's report (``report_json``; ``explain.json`` adds to it): baseline and label set, each plane's
    and thing's class, box, decision and evidence (the things' motions numbered first:
    :func:`number_motion_instances`), the legends, ``seconds`` per stage; with a ``--sharpen`` baseline its
    regions; in video mode ``track_ids`` (the planes' ids, the things' by instance) give each one's track."""
    report = {
        "baseline": baseline.name,
        "label_set": table.name,
        "planes": [{"class": table.class_names[p.region.class_id], "box": Box(*p.region.box).xyxy(),
                    "accepted": p.accepted, "reason": p.reason, "inlier_share": round(p.inlier_share, 3),
                    "model_error": round(p.model_error, 3), "baseline_error": round(p.baseline_error, 3)}
                   for p in planes],
        "things": [{"class": table.class_names[t.region.class_id], "instance": t.instance_id,
                    "box": Box(*t.box).xyxy(), "accepted": t.accepted, "reason": t.reason,
                    "object_inlier_share": round(t.fg_inlier_share, 3),
                    "background_inlier_share": round(t.bg_inlier_share, 3),
                    "model_error": round(t.model_error, 3), "baseline_error": round(t.baseline_error, 3),
                    "motion_instances": t.motions}
                   for t in things],
        "model_legend": {str(k): v for k, v in MODEL_LEGEND.items()},
        "kind_codes": KIND_CODES,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
    }
    sharpened = getattr(baseline, "last_reports", None)  # a --sharpen baseline's regions
    if sharpened is not None:
        from semflow.sharpen import report_entries
        report["sharpen"] = report_entries(sharpened)
    if track_ids is not None:  # video mode: ids that stay the same from frame to frame
        plane_ids, thing_ids = track_ids
        for entry, tid in zip(report["planes"], plane_ids):
            entry["track"] = tid
        for entry, thing in zip(report["things"], things):
            entry["track"] = thing_ids[thing.instance_id - 1]
    return report


def pair_extras(labels: np.ndarray, table: LabelSet, instance_map: np.ndarray, planes: list[PlaneFit],
                comp: Composition, motion_ids: np.ndarray, base: FlowResult, report: dict[str, Any]
                ) -> dict[str, np.ndarray]:
    """The extras of a semantic result (listed in :mod:`semflow.semantic`), from frame 1's ``labels`` (H, W)
    of ``table``, the thing ``instance_map``, the plane fits, the composition, the motion ids, the baseline's
    result and the report (stored as JSON)."""
    plane_regions = np.zeros(labels.shape, np.uint8)  # the plane regions given a homography, kept or not
    for plane in planes:
        plane_regions[plane.region.slices][plane.region.mask] = 1
    return {
        "labels": labels,
        "segmentation_rgb": table.colorize(labels),
        "kinds": table.kind_map(labels),
        "instances": instance_map,
        "plane_regions": plane_regions,
        "model_map": comp.model_map,
        "motion_ids": motion_ids,
        "occlusion": comp.occluded.astype(np.uint8),
        "baseline_flow": base.flow,
        **{f"baseline_{key}": flow for key, flow in base.extras.items() if key == "unsharpened_flow"},
        **{f"layer_{name}": flow for name, flow in comp.layer_flows.items()},
        "report_json": np.array(json.dumps(report)),
    }
