"""Run flow methods side by side on a dataset with ground truth: ``semflow compare``.

For every sample and method: mean EPE and Fl-all over valid pixels, the same split into occluded /
non-occluded pixels and into region kinds (things / planes / stuff) where the dataset has masks or
labels, seconds for the pair and the method's peak memory. With ``isolate`` (the CLI's way) each method
runs in a child process of its own (:mod:`semflow.isolation`), one pair at a time, so its peak memory
is its own (not what the methods before it left behind).

A sample whose ground truth has no valid pixel cannot be scored: it is left out, with a warning. The
comparison images (``out_dir``) are named once the dataset is listed (:func:`image_names`), checked
before any method runs, and written to a staging folder: they reach ``out_dir`` only when the whole
comparison has succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from semflow.errors import InputError, signals_held, warn
from semflow.io.atomic import TEMP_MARK, cut_name, move_into_place
from semflow.io.datasets import FlowSample, LoadedSample, load_dataset
from semflow.io.images import image_size, write_image
from semflow.io.jsonfile import finite_or_none
from semflow.io.outputs import check_outputs, output_staging
from semflow.io.video import shrunk_to
from semflow.isolation import IsolatedMethod
from semflow.memory import PeakMemory
from semflow.methods import get_method, route_options
from semflow.metrics import BAND_WIDTH, endpoint_error, epe, fl_all, inner_band
from semflow.progress import progress_bar
from semflow.viz import (
    add_error_scale,
    add_legend,
    error_to_color,
    flow_to_color,
    label_image,
    max_flow_of,
    tile,
)

IMAGE_SUFFIX = ".png"
MAX_STEM_BYTES = 255 - len("..") - len(TEMP_MARK) - 8 - len(IMAGE_SUFFIX)
"""The longest image name stem (bytes) that leaves room, in a 255-byte file name, for the temporary
name an atomic write gives it beside the image (``.<stem>.semflow-XXXXXXXX.png``, io.atomic.temp_path_beside)."""


@dataclass
class SampleResult:
    """One method on one sample. EPE in pixels, Fl-all a fraction in [0, 1], seconds per pair."""

    method: str
    dataset: str
    sample: str
    epe: float
    fl_all: float
    seconds: float
    peak_mb: float
    regions: dict[str, dict[str, float]] = field(default_factory=dict)


def sample_regions(sample: LoadedSample, kinds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Named pixel masks to report separately: occluded / non-occluded where the dataset has occlusion
    masks, and things / planes / stuff from the dataset's CamVid labels or else from ``kinds`` (H, W)
    (KIND_CODES, e.g. a semantic method's predicted kinds: then named ``things(pred)``, ``planes(pred)``,
    ``stuff(pred)``, as they are no ground truth). With given labels also ``thing-band``, the
    pixels of things less than 5 px inside their outlines (between touching instances too, where the
    dataset has them), and ``thing-inner``, the rest of the things."""
    from semflow.segmentation import KIND_CODES, get_label_set

    regions: dict[str, np.ndarray] = {}
    if sample.occluded is not None:
        regions["occluded"] = sample.occluded
        regions["non-occluded"] = ~sample.occluded
    given = sample.labels is not None
    if given:
        kinds = get_label_set("camvid").kind_map(sample.labels)
    if kinds is not None:
        for kind, plural in (("thing", "things"), ("plane", "planes"), ("stuff", "stuff")):
            regions[plural if given else f"{plural}(pred)"] = kinds == KIND_CODES[kind]
    if given and regions["things"].any():
        # Given masks: the band just inside object outlines (where motion jumps), and the rest.
        band = inner_band(regions["things"], BAND_WIDTH, sample.instances)
        regions["thing-band"] = band
        regions["thing-inner"] = regions["things"] & ~band
    return regions


def score(flow: np.ndarray, sample: LoadedSample, kinds: np.ndarray | None = None
          ) -> tuple[float, float, dict[str, dict[str, float]]]:
    """EPE, Fl-all and per-region EPE / Fl-all of ``flow`` against the sample's ground truth
    (regions as in :func:`sample_regions`)."""
    per_region = {
        name: {"epe": epe(flow, sample.flow, sample.valid, mask),
               "fl_all": fl_all(flow, sample.flow, sample.valid, mask),
               "pixels": int((mask & sample.valid).sum())}
        for name, mask in sample_regions(sample, kinds).items()
    }
    return epe(flow, sample.flow, sample.valid), fl_all(flow, sample.flow, sample.valid), per_region


def compare(dataset: str, root: str | os.PathLike, methods: Sequence[str], *,
            method_options: dict[str, Any] | None = None, out_dir: str | os.PathLike | None = None,
            max_samples: int | None = None, use_labels: bool = True,
            progress: bool | None = None, isolate: bool = False,
            outputs: Iterable[str | os.PathLike | None] = ()) -> CompareResults:
    """Run each method on each sample of ``dataset`` under ``root``; optionally draw
    ``out_dir/<dataset>_<sample>.png`` (named by :func:`image_names`).

    Every image name is checked (:func:`~semflow.io.outputs.check_outputs`, with ``outputs``: the
    caller's other output files, which may not be one of them) before any method runs; the images are
    moved into ``out_dir`` only once every sample is done (a failure leaves none). A sample whose ground
    truth has no valid pixel is left out with a warning (and named in the result's ``left_out``; its image
    from an earlier comparison, if any, is left as it was, with a warning); InputError when no sample has one.

    ``method_options`` (device, preset...) go to every method that declares them, ``NAME.option`` to
    method NAME only (:func:`semflow.methods.route_options`); one that no method takes is an error. ``use_labels`` passes
    the dataset's label maps to methods that use a given segmentation. Where the dataset has no labels
    but a method reports the region kinds it saw (``extras["kinds"]``, as ``semantic`` does), every
    method on that sample is scored per kind on those same pixels (regions ``things(pred)`` and so on:
    the first such method's prediction, so they appear only when such a method is compared).

    ``isolate=True`` (what ``semflow compare`` does) runs each method in a child process of its own
    (:mod:`semflow.isolation`): ``peak_mb`` is then the peak resident memory of a process that ran only
    that method (Python, its libraries and model included; started with ``spawn``, so a script that
    calls this must keep its top-level code under ``if __name__ == "__main__":``, as for any
    multiprocessing). The default runs every method in this
    process (methods or models registered at run time are only known here); ``peak_mb`` is then this
    process's peak while the method ran, which includes whatever ran before.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)  # (a str was compared letter by letter)
    if not methods or not all(isinstance(m, str) for m in methods):  # (an instance: its results named by repr)
        raise InputError(f"compare takes one or more method names (see `semflow methods`), got {methods!r:.80}")
    if max_samples is not None and (not isinstance(max_samples, numbers.Integral) or isinstance(max_samples, bool)
                                    or max_samples < 1):  # (-1 dropped the last sample; 0 blamed the data)
        raise InputError(f"max_samples must be a whole number of at least 1 (or None), got {max_samples!r}")
    samples = load_dataset(dataset, root)[:max_samples]
    options = route_options(methods, method_options or {})
    check_given_segmentation(samples, options, use_labels)
    images: list[Path] = []
    if out_dir is not None:
        images = [Path(out_dir) / (stem + IMAGE_SUFFIX) for stem in image_names(dataset, [s.name for s in samples])]
        check_outputs(files=[*images, *outputs], folders=[out_dir])
    with contextlib.ExitStack() as stack:
        stage = stack.enter_context(output_staging(Path(out_dir), ".compare-", lock=True)) if out_dir is not None else None
        if isolate:
            built = {name: stack.enter_context(IsolatedMethod(name, opts)) for name, opts in options.items()}
        else:
            built = {name: _InProcess(get_method(name, **opts)) for name, opts in options.items()}
        staged = [stage / p.name for p in images] if stage is not None else None
        results = _compare_samples(dataset, samples, built, staged, use_labels, progress)
        if not results:
            raise InputError(f"{root}: no {dataset} sample has a valid ground-truth pixel; nothing to compare")
        earlier = [p.name for t, p in zip(staged or (), images) if not t.exists() and os.path.lexists(p)]
        with signals_held():  # (Ctrl-C meanwhile is acted on after the last: no mix of two comparisons)
            for tmp, path in zip(staged or (), images):
                if tmp.exists():  # (not for a sample left out)
                    move_into_place(tmp, path)
        if earlier:  # (never deleted: compare keeps no record of what it wrote, and deletes nothing else)
            one = len(earlier) == 1
            warn(f"{out_dir}: {', '.join(earlier[:3])}{', ...' if len(earlier) > 3 else ''} "
                 f"({'a sample' if one else f'{len(earlier)} samples'} left out) {'is' if one else 'are'} from an "
                 f"earlier comparison, left as {'it was' if one else 'they were'}")
        return results


def check_given_segmentation(samples: Sequence[FlowSample], options: dict[str, dict[str, Any]],
                             use_labels: bool = True) -> None:
    """Before any work: InputError when one label map given for every sample (a method's ``segmentation``
    option naming a file) does not fit a sample's frame 1 (its size, or a size it is shrunk to), naming
    the first that differs. Sizes come from the image headers; samples whose own labels a method is
    given (``use_labels``) are not checked, nor a folder of maps or a header Pillow cannot read (loading
    the sample says why)."""
    for given in dict.fromkeys(str(o["segmentation"]) for o in options.values()
                               if isinstance(o.get("segmentation"), (str, os.PathLike))):
        if not Path(given).is_file():
            continue
        size = _header_size(Path(given))
        for sample in samples if size is not None else ():
            frame = None if use_labels and sample.labels is not None else _header_size(sample.frame1)
            if frame is not None and frame != size and not shrunk_to(size, frame):
                raise InputError(f"{given}: {size[1]}x{size[0]}, but {sample.dataset} sample {sample.name} is "
                                 f"{frame[1]}x{frame[0]} ({sample.frame1.name}); one label map for every "
                                 "sample needs samples of its size")


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of an image file from its header (:func:`image_size`); None where Pillow cannot read it or it
    declares too many pixels (reading the file says why, in one line)."""
    try:
        return image_size(path)
    except (OSError, ValueError, Image.DecompressionBombError):  # (a header declaring a bomb: a traceback)
        return None


def image_names(dataset: str, samples: Sequence[str]) -> list[str]:
    """The file name stem of each sample's comparison image: ``<dataset>_<sample>`` with ``/`` and every
    character that is not printable (a newline, a name's undecodable bytes) as ``_``; a stem too long
    for a file name (:data:`MAX_STEM_BYTES`), or one that two samples would share, is cut and ends in
    ``~`` and 8 hex digits of a hash of the sample name, so that each sample has its own."""
    safe = ["".join(c if c.isprintable() and c != "/" else "_" for c in f"{dataset}_{name}") for name in samples]
    counts = Counter(safe)
    stems = []
    for name, stem in zip(samples, safe):
        if counts[stem] > 1 or len(os.fsencode(stem)) > MAX_STEM_BYTES:
            tag = "~" + hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
            stem = cut_name(stem, MAX_STEM_BYTES - len(tag)) + tag
        stems.append(stem)
    return stems


class _InProcess:
    """A method run in this process, with the interface of :class:`IsolatedMethod`."""

    def __init__(self, method: Any) -> None:
        self.method = method

    def estimate(self, img1: np.ndarray, img2: np.ndarray, labels: np.ndarray | None = None,
                 index: int | None = None) -> tuple[Any, float, float]:
        if index is not None and hasattr(self.method, "seek"):
            self.method.seek(index)
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = self.method.estimate(img1, img2, labels=labels)
            seconds = time.perf_counter() - start
        return result, seconds, memory.peak_mb


def _compare_samples(dataset: str, samples: Sequence[Any], built: dict[str, Any], images: list[Path] | None,
                     use_labels: bool, progress: bool | None) -> CompareResults:
    """Every method on every sample (``images``: where each sample's comparison image goes, or None)."""
    results = CompareResults()
    with progress_bar(len(samples) * len(built), f"compare {dataset}", enabled=progress) as bar:
        for k, ref in enumerate(samples):
            sample = ref.load()
            if not sample.valid.any():
                warn(f"{dataset} sample {sample.name}: no valid ground-truth pixel; left out of the comparison")
                results.left_out.append(sample.name)
                bar.advance(len(built))
                continue
            flows, costs, kinds = {}, {}, None
            for name, method in built.items():
                labels = sample.labels if use_labels else None
                # (the sample's place: a method reading a file per pair reads this sample's, not the
                #  next in turn, which a sample left out above would have shifted by one)
                result, seconds, peak_mb = method.estimate(sample.img1, sample.img2, labels=labels, index=k)
                flows[name], costs[name] = result.flow, (seconds, peak_mb)
                if kinds is None and "kinds" in result.extras:
                    kinds = result.extras["kinds"]
                bar.advance()
            for name, flow in flows.items():
                e, f, regions = score(flow, sample, kinds)
                results.append(SampleResult(name, dataset, sample.name, e, f, *costs[name], regions))
            if images is not None:
                write_image(images[k], comparison_image(sample, flows))
    return results


def comparison_image(sample: LoadedSample, flows: dict[str, np.ndarray], *, tile_width: int = 480,
                     max_error: float = 5.0) -> np.ndarray:
    """Frame, ground truth and each method's flow under one normaliser (top row); frame 2, the valid
    mask and each method's endpoint-error map, saturating at ``max_error`` px (bottom row). Tiles are
    scaled to ``tile_width`` px at most before their titles, legend and error scale are drawn."""
    h, w = sample.img1.shape[:2]
    scale = min(1.0, tile_width / w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))

    def shrunk(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    max_flow = max_flow_of(sample.flow, valid=[sample.valid])
    top = [label_image(shrunk(sample.img1), sample.name),
           label_image(add_legend(shrunk(flow_to_color(sample.flow, max_flow, valid=sample.valid)), max_flow),
                       "ground truth")]
    valid_img = np.repeat((sample.valid.astype(np.uint8) * 255)[..., None], 3, axis=2)
    bottom = [label_image(shrunk(sample.img2), "frame 2"), label_image(shrunk(valid_img), "valid")]
    for name, flow in flows.items():
        top.append(label_image(shrunk(flow_to_color(flow, max_flow)), name))
        err = error_to_color(endpoint_error(flow, sample.flow), max_error, valid=sample.valid)
        bottom.append(label_image(add_error_scale(shrunk(err), max_error),
                                  f"EPE {epe(flow, sample.flow, sample.valid):.2f}"))
    return tile(top + bottom, columns=len(top))


def summarize(results: Sequence[SampleResult]) -> list[dict[str, Any]]:
    """One row per (dataset, method): ``samples`` (the table's n: the samples scored, which
    :func:`compare` limits to those with valid ground truth), the mean over them of each sample's EPE and
    Fl-all (per image, as Middlebury's table; KITTI's and Sintel's official figures pool the pixels of all
    images instead: the same where the samples share size and mask), per-region means (``n_<region>``: the
    samples each covers, fewer than ``samples`` where the region is empty in some), median seconds, peak
    memory."""
    rows = []
    keys = list(dict.fromkeys((r.dataset, r.method) for r in results))
    for dataset, method in keys:
        group = [r for r in results if r.dataset == dataset and r.method == method]
        row: dict[str, Any] = {
            "dataset": dataset, "method": method, "samples": len(group),
            "epe": _nanmean(r.epe for r in group),
            "fl_all": _nanmean(r.fl_all for r in group),
            "seconds": statistics.median(r.seconds for r in group),
            "peak_mb": max(r.peak_mb for r in group),
        }
        for region in dict.fromkeys(k for r in group for k in r.regions):
            scored = [r.regions[region] for r in group if region in r.regions]
            row[f"epe_{region}"] = _nanmean(m["epe"] for m in scored)
            row[f"fl_{region}"] = _nanmean(m["fl_all"] for m in scored)
            row[f"n_{region}"] = sum(1 for m in scored if m["epe"] == m["epe"])  # (NaN: no pixel there)
        rows.append(row)
    return rows


def _nanmean(values) -> float:
    vals = [v for v in values if v == v]
    return float(np.mean(vals)) if vals else float("nan")


class CompareResults(list):
    """What :func:`compare` returns: the :class:`SampleResult` of every method on every sample scored, and
    ``left_out``: the samples not scored (no valid ground-truth pixel), by name."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.left_out: list[str] = []


def results_json(results: Sequence[SampleResult]) -> dict[str, Any]:
    """The ``--json`` document: every sample result plus the per-method summary, and the samples left out
    (``left_out``: names; they were missing from the file, with only a warning line to tell).

    A metric with no pixels to measure (NaN, e.g. an empty region) becomes ``null``: NaN is not JSON.
    """
    return finite_or_none({"results": [asdict(r) for r in results], "summary": summarize(results),
                           "left_out": list(getattr(results, "left_out", []))})


def format_table(rows: Sequence[dict[str, Any]], *, markdown: bool = False) -> str:
    """A plain-text (or Markdown) table of :func:`summarize` rows."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith(("epe_", "fl_")) and k != "fl_all"]
    headers = ["dataset", "method", "n", "EPE", "Fl-all %"] + [_header(k) for k in extra] + ["s/pair", "peak MB"]
    lines = []
    for r in rows:
        cells = [r["dataset"], r["method"], str(r["samples"]), f"{r['epe']:.3f}", f"{100 * r['fl_all']:.2f}"]
        for k in extra:
            v, n = r.get(k, float("nan")), r.get("n_" + k.split("_", 1)[1], r["samples"])
            cells.append("-" if v != v else (f"{100 * v:.2f}" if k.startswith("fl_") else f"{v:.3f}")
                         + ("" if n == r["samples"] else f" (n={n})"))  # (a mean over fewer samples than n)
        cells += [f"{r['seconds']:.3f}", f"{r['peak_mb']:.0f}"]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max([len(h)] + [len(c[i]) for c in lines]) for i, h in enumerate(headers)]  # (no rows: the header)
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(c) for c in lines)])


def _header(key: str) -> str:
    metric, region = key.split("_", 1)
    return f"EPE {region}" if metric == "epe" else f"Fl {region} %"
