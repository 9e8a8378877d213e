"""``semflow flow --explain DIR``: what a method exposes about how it got its flow, written to a folder.

The method's own writer when it has one (``semantic``: segmentation, model map, layers, decisions),
else each extra map as PNG (flows on the colour wheel, a small one such as a grid's enlarged for its legend;
other maps in grey with a key below) plus the raw ``.npy``; with ``--sharpen``, ``sharpen.json`` (the
regions looked at). Everything is written to a fresh folder inside
DIR first and moved into DIR only when it is all there, and never over one of the command's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semflow.errors import OutputError, signals_held
from semflow.io.outputs import output_staging, refuse_inputs_as_outputs

if TYPE_CHECKING:
    from semflow.baseline.base import FlowMethod, FlowResult


def write_explain(estimator: FlowMethod, result: FlowResult, out_dir: str | os.PathLike, *,
                  protect: Iterable[str | os.PathLike | None] = (),
                  outputs: Iterable[str | os.PathLike | None] = ()) -> list[Path]:
    """Write the explanation of ``result`` (what ``estimator`` computed) to ``out_dir``; return the files.

    ``protect``: the command's inputs; ``outputs``: its other outputs (``-o``, ``--viz``). A name the
    explanation writes that is one of them (say an input ``baseline.png`` in DIR, or ``-o DIR/flow.png``),
    or a folder in DIR where it writes a file, is an :class:`~semflow.errors.OutputError` before any file
    in DIR changes."""
    out_dir = Path(out_dir)
    with output_staging(out_dir, ".explain-", lock=True) as stage:  # (a folder it creates goes again when it fails)
        _write(estimator, result, stage)
        names = sorted(p.name for p in stage.iterdir())
        refuse_inputs_as_outputs(protect, [out_dir / name for name in names])
        others = {os.path.realpath(path): path for path in outputs if path is not None}
        for name in names:
            if (other := others.get(os.path.realpath(out_dir / name))) is not None:
                raise OutputError(f"{other}: --explain writes a file of that name too; one would be written"
                                  " over the other: choose another name or --explain folder")
        for name in names:  # all checked before the first move: a failure leaves DIR as it was
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                raise OutputError(f"{target}: is a folder, where --explain writes a file; remove it or choose"
                                  " another folder")
        with signals_held():  # (Ctrl-C meanwhile is acted on after the last: no mix of two runs' maps)
            for name in names:
                os.replace(stage / name, out_dir / name)
    return [out_dir / name for name in names]


def _write(estimator: FlowMethod, result: FlowResult, out_dir: Path) -> None:
    from semflow.grey_key import grey_with_key
    from semflow.io.atomic import write_text_atomic
    from semflow.io.flow import save_npy
    from semflow.io.images import write_image
    from semflow.viz import add_legend, flow_to_color, max_flow_of

    reports = getattr(estimator, "last_reports", None)  # --sharpen: the regions it looked at
    if reports is not None:
        from semflow.io.jsonfile import dumps_strict
        from semflow.sharpen import report_entries

        write_text_atomic(out_dir / "sharpen.json", dumps_strict({"regions": report_entries(reports)}, indent=2))
    own = getattr(estimator, "write_explain", None)
    if callable(own):
        own(result, out_dir)
        return
    maps = {"flow": result.flow, **result.extras}
    if result.confidence is not None:
        maps["confidence"] = result.confidence
    flows = {name: m for name, m in maps.items() if m.ndim == 3 and m.shape[2] == 2}
    valid = {name: _valid_of(name, maps) for name in flows}  # (grid_flow: grid_valid)
    max_flow = max_flow_of(list(flows.values()), valid=list(valid.values()))
    for name, arr in maps.items():
        save_npy(out_dir / f"{name}.npy", arr)
        if name in flows:
            write_image(out_dir / f"{name}.png",
                        add_legend(enlarged_for_legend(flow_to_color(arr, max_flow, valid=valid[name])), max_flow))
        elif arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            write_image(out_dir / f"{name}.png", arr)
        elif arr.ndim == 2:
            write_image(out_dir / f"{name}.png", grey_with_key(*grey_preview(name, arr)))


LEGEND_MIN_SIDE = 120
"""A flow picture whose shorter side is under this (px) is enlarged for its legend (:func:`enlarged_for_legend`):
the legend's colour wheel is at least 24 px, a fifth of this; on ``discrete``'s 32x24 grid of a 160x120 frame
the wheel and ``max N px`` covered most of the picture."""
LEGEND_MAX_SIDE = 1920
"""The longest side (px) :func:`enlarged_for_legend` enlarges a picture to."""


def enlarged_for_legend(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) enlarged by the smallest whole factor that makes its shorter side at least
    :data:`LEGEND_MIN_SIDE`, each pixel a square block (its longer side at most :data:`LEGEND_MAX_SIDE`);
    ``image`` itself when it is that large already."""
    from semflow.viz import enlarged_in_blocks

    return enlarged_in_blocks(image, min(image.shape[:2]), LEGEND_MIN_SIDE, LEGEND_MAX_SIDE)


def _valid_of(name: str, maps: dict[str, np.ndarray]) -> np.ndarray | None:
    """The mask a flow map ``<stem>_flow`` has beside it as ``<stem>_valid`` (its unknown points drawn black)."""
    mask = maps.get(name.removesuffix("_flow") + "_valid") if name.endswith("_flow") else None
    return mask.astype(bool) if mask is not None and mask.shape == maps[name].shape[:2] else None


MAP_UNITS = {"grid_fb_error": "px", "grid_cost": "matching cost"}
"""The unit a grey map's key names after its name (a map not listed has none: a share, a mask). A map
listed is a measure, drawn on its own range even within [0, 1] (:func:`grey_preview`)."""


def grey_preview(name: str, arr: np.ndarray) -> tuple[np.ndarray, str, str, str]:
    """A 2-D map ``name`` as (grey uint8 (H, W), key title, what black stands for, what white stands for),
    for :func:`~semflow.grey_key.grey_with_key`: values within [0, 1] (confidences, shares, masks) as they
    are, 0 black and 1 white, so that one grey means one value whatever the map; any other map, and a map
    with a unit (:data:`MAP_UNITS`: an error in px, a matching cost), stretched from its smallest to its
    largest finite value, which the key's ends name (the ``.npy`` beside it holds the values); what is not
    finite black, which the title then says."""
    from semflow.grey_key import grey_levels, value_text

    values = arr.astype(np.result_type(arr.dtype, np.float32))  # (float64 kept: 1e39 is not float32's inf)
    finite = np.isfinite(values)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    if name in MAP_UNITS or not (low >= 0.0 and high <= 1.0):  # (a cost of 0 to 0.07 is not a share)
        values = (values - low) / ((high - low) or 1.0)
    else:
        low, high = 0.0, 1.0
    grey = grey_levels(np.where(finite, values, 0.0))
    title = f"{name}, {MAP_UNITS[name]}" if name in MAP_UNITS else name
    if not finite.all():
        title += " (black also: no value)"
    if arr.dtype == bool:
        return grey, title, "0 no", "1 yes"
    return grey, title, value_text(low), value_text(high)
