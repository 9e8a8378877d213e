"""What a ``semantic`` result is made of, written as files: ``semflow flow --explain DIR`` for ``semantic``.

:func:`write_semantic_explain` draws the extra maps of a :class:`~semflow.semantic.SemanticFlow` result
(segmentation, kinds, model map, layers, occlusion) and writes its report as ``explain.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semflow.baseline.base import FlowResult
from semflow.compose import MODEL_COLORS, MODEL_LEGEND, model_map_to_color
from semflow.errors import InputError
from semflow.segmentation import KIND_CODES

SMALL_THING = 3
"""``kinds.png``'s code (not a region kind) for a thing's pixels in no instance: a region smaller than
``ThingParams.min_area`` (150 px), which gets no layer and keeps the baseline."""
SMALL_PLANE = 4
"""``kinds.png``'s code (not a region kind) for a plane's pixels in no fitted region (``extras["plane_regions"]``
0): a region smaller than ``PlaneParams.min_area`` (400 px), which gets no homography and keeps the baseline."""
KIND_COLORS = {0: (160, 160, 160), 1: (70, 110, 230), 2: (230, 70, 50), SMALL_THING: (240, 180, 170),
               SMALL_PLANE: (175, 195, 245)}
"""The colour of each region kind (KIND_CODES) in ``kinds.png``: stuff grey, plane blue, thing red; a thing
too small for a layer (:data:`SMALL_THING`) pale red, a plane too small for a homography (:data:`SMALL_PLANE`)
pale blue."""
KIND_NAMES = {0: "stuff: the baseline", 1: "plane: homography", 2: "thing: layered motion",
              SMALL_THING: "thing too small for a layer: the baseline",
              SMALL_PLANE: "plane too small for a homography: the baseline"}
"""The name of each region kind in ``kinds.png``'s key."""


def with_colour_key(image: np.ndarray, legend: dict[int, str], colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """``image`` (H, W, 3) uint8, a map drawn in ``colors`` (code -> RGB), with a key strip below naming each
    colour (``legend``: code -> name; :func:`~semflow.class_legend.class_key_strip`). The key is at least as
    wide as its longest name needs; a narrower map is padded white on its right."""
    from semflow.class_legend import class_key_column_width, class_key_strip

    names = list(legend.values())
    h, w = image.shape[:2]
    width = max(w, class_key_column_width(names))
    key = class_key_strip(width, names, np.array([colors[code] for code in legend], np.uint8))
    out = np.full((h + key.shape[0], width, 3), 255, np.uint8)
    out[:h, :w] = image
    out[h:] = key
    return out


def write_semantic_explain(result: FlowResult, out_dir: str | os.PathLike) -> None:
    """Write what a semantic result is made of to ``out_dir``.

    Files: ``segmentation.png`` (colour) and ``labels.png`` (class ids), ``kinds.png`` and
    ``model_map.png`` (colour, each with a key of its colours below), ``model_map_ids.png`` (codes),
    ``motion_ids.png`` (16-bit: each thing pixel's motion instance, ids as in ``explain.json``'s
    ``motion_instances``, 0 none), ``flow``, ``baseline`` (and ``baseline_unsharpened`` with ``--sharpen``;
    ``explain.json``'s ``sharpen`` lists its regions) and each ``layer_*`` as ``.flo`` plus colour-wheel
    ``.png`` under one normaliser (layers: unknown outside their support), ``occlusion.png`` and
    ``confidence.png`` (grey, a key below) and ``explain.json`` (legends, per-region decisions, timings).
    """
    from semflow.grey_key import grey_levels, grey_with_key
    from semflow.io.atomic import write_text_atomic
    from semflow.io.flow import write_flo
    from semflow.io.images import write_image
    from semflow.io.jsonfile import dumps_strict, loads_untrusted
    from semflow.viz import add_legend, flow_to_color, label_image, max_flow_of

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ex = result.extras
    if "model_map" not in ex:
        raise InputError("this result has no semantic layers to explain (was it made by 'semantic'?)")
    flows = {"flow": result.flow, "baseline": ex["baseline_flow"]}
    if "baseline_unsharpened_flow" in ex:  # --sharpen: the baseline before the step
        flows["baseline_unsharpened"] = ex["baseline_unsharpened_flow"]
    flows.update({k: v for k, v in ex.items() if k.startswith("layer_")})
    max_flow = max_flow_of([result.flow, ex["baseline_flow"]])
    for name, flow in flows.items():
        valid = np.isfinite(flow).all(axis=2)
        clean = np.where(valid[..., None], flow, 0).astype(np.float32)
        write_flo(out / f"{name}.flo", clean, valid)
        write_image(out / f"{name}.png", label_image(add_legend(flow_to_color(clean, max_flow, valid=valid),
                                                               max_flow), name))
    write_image(out / "segmentation.png", ex["segmentation_rgb"])
    write_image(out / "labels.png", ex["labels"])
    codes = np.asarray(ex["kinds"]).copy()
    if "plane_regions" in ex:  # (a plane region too small for a homography keeps the baseline)
        codes[(codes == KIND_CODES["plane"]) & (np.asarray(ex["plane_regions"]) == 0)] = SMALL_PLANE
    if "instances" in ex:  # (a thing's pixels in no instance were drawn "layered motion": they keep the baseline)
        instances = np.asarray(ex["instances"])
        codes[(codes == KIND_CODES["thing"]) & (instances == 0)] = SMALL_THING
        codes[instances > 0] = KIND_CODES["thing"]  # (another class a thing encloses joins its layer: holes filled)
    kinds = np.zeros((*codes.shape, 3), np.uint8)
    for code, color in KIND_COLORS.items():
        kinds[codes == code] = color
    write_image(out / "kinds.png", with_colour_key(kinds, KIND_NAMES, KIND_COLORS))
    write_image(out / "model_map.png", with_colour_key(model_map_to_color(ex["model_map"]), MODEL_LEGEND, MODEL_COLORS))
    write_image(out / "model_map_ids.png", ex["model_map"])
    if "motion_ids" in ex:
        write_image(out / "motion_ids.png", ex["motion_ids"])
    occluded = (np.asarray(ex["occlusion"]) > 0).astype(np.uint8) * 255
    write_image(out / "occlusion.png", grey_with_key(occluded, "occlusion (hidden in frame t+1)", "0 no", "1 yes"))
    if result.confidence is not None:
        write_image(out / "confidence.png", grey_with_key(grey_levels(result.confidence), "confidence", "0", "1"))
    report = loads_untrusted(str(ex["report_json"])) if "report_json" in ex else {}
    report["max_flow_px"] = max_flow
    report["model_colors"] = {str(k): v for k, v in MODEL_COLORS.items()}
    # Strict JSON: an undefined number (a thing model's error on no valid pixels) is null, not NaN.
    write_text_atomic(out / "explain.json", dumps_strict(report, indent=2))
