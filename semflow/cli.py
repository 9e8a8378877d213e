"""The ``semflow`` command line: a thin layer over the Python API.

Every command turns a :class:`~semflow.errors.SemflowError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from semflow.cli_group import SemflowGroup
from semflow.cli_options import (
    BATCH_HELPS,
    COMPARE_HELPS,
    FLOW_HELPS,
    MAX_FLOW,
    PATH,
    RUN_SETTINGS,
    TEXT_PATH,
    Whole,
    check_segment_options,
    click_type,
    prior_options,
    shared_run_options,
)
from semflow.errors import InputError, SemflowError, Terminated, counted, one_line
from semflow.io.outputs import check_outputs, refuse_inputs_as_outputs, refuse_outputs_inside
from semflow.segmentation.clip import prior_from_options


def _say(text: str) -> None:
    """Print a command's result line on stdout, as one line (:func:`one_line`: a newline in a name escaped)."""
    _print(one_line(text))


def _max_flow_said(max_flow: float, given: bool) -> str:
    """``max flow N px`` as flow and visualize print it; the floor (:data:`~semflow.viz.MIN_MAX_FLOW`) says so."""
    from semflow.viz import MIN_MAX_FLOW, max_flow_text

    floor = not given and max_flow == MIN_MAX_FLOW
    return f"max flow {max_flow_text(max_flow)} px{', the floor: the flow is no larger' if floor else ''}"


def _print(text: str) -> None:
    """``click.echo`` on stdout; a failed write names stdout (a full disk read "semflow: error: No space left
    on device", as if an output file had failed). A closed pipe stays BrokenPipeError (nothing is said)."""
    try:
        click.echo(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, "stdout") from None


@click.group(cls=SemflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="semflow")
def main() -> None:
    """semflow: optical flow that knows what it is looking at."""


def _method_options(func=None, *, leave_out: tuple[str, ...] = (), helps: dict[str, str] | None = None):
    """The method options every flow-computing command offers (but ``leave_out``: what it could never use),
    derived from the methods' option dataclasses (each says which methods take it; ``helps``: this command's
    own text for an option); all default to "not given"."""
    from semflow.methods import cli_options, method_options

    if func is None:
        return lambda command: _method_options(command, leave_out=leave_out, helps=helps)
    offered = [(info, takers) for info, takers in cli_options() if info.name not in leave_out]
    defaults_of = {name: {i.name: repr(i.default) for i in method_options(name)}
                   for _, takers in offered for name in takers}  # each method's options read once
    for info, takers in reversed(offered):
        defaults = {defaults_of[name][info.name] for name in takers}
        default = f"; default: {info.default}" if info.default is not None else ""
        if len(defaults) > 1:  # --sharpen: on for discrete and semantic, off for the OpenCV methods
            default = "; default: per method"
        methods = "all methods" if info.name == "device" else ", ".join(takers)
        flag = f"--{info.name.replace('_', '-')}"
        kind = click_type(info)
        if kind is bool:  # a switch: --sharpen / --no-sharpen
            flag, kind = f"{flag}/--no-{flag[2:]}", None
        func = click.option(flag, info.name, default=None, type=kind,
                            help=f"{(helps or {}).get(info.name, info.help)} [{methods}{default}]")(func)
    return func


def _build_method(method: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The flow method named ``method`` with the options given on the command line, and the full set
    of options it was built with (what a resumed run must share)."""
    from semflow.methods import get_method, method_options
    from semflow.options import options_dict

    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None}
    if "baseline_flows" in given and "baseline" in given:  # (--baseline was ignored silently)
        raise InputError("--baseline-flows are the baseline's flows: give them without --baseline")
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    offered = [info.name for info in method_options(method) if info.cli]
    for key in given:  # (named as typed, among the options this command offers: not as Python fields)
        if key not in offered:
            raise InputError(f"{flag(key)} does not go with --method {method}; it takes"
                             f" {', '.join(map(flag, offered))}")
    estimator = get_method(method, **given)
    return estimator, options_dict(estimator.options)


# --- run ----------------------------------------------------------------------------------------

@main.command()
@click.argument("video", type=PATH)
@click.option("--out", "out_dir", required=True, type=PATH, metavar="DIR", help="Output folder.")
@shared_run_options(per_clip=False)
@_method_options
def run(video: Path, out_dir: Path, method: str, cache_mb: int, **settings: Any) -> None:
    """Flow for every consecutive frame pair of VIDEO (a video file or a folder of images).

    Writes DIR/flow.mp4 (colour wheel), DIR/panel.mp4 (each frame beside its flow; semantic: with its
    segmentation and the baseline flow), DIR/plot.png, DIR/summary.json and, with --save-flo,
    DIR/flo/NNNNNN.flo. Video mode (the default) carries each frame's work, the last
    flow and the tracked regions from one pair to the next; --pairwise computes each pair on its own.
    """
    from semflow.pipeline import RunOptions, check_video, run_video

    inputs = [video, settings.get("baseline_flows"), settings.get("segmentation")]
    check_outputs(folders=[out_dir])
    refuse_inputs_as_outputs(inputs, [out_dir, out_dir / "flo"])  # a fresh run clears flo/: no input there
    run_settings = {name: settings.pop(name) for name in RUN_SETTINGS}
    checked = check_video(video, RunOptions(**run_settings))  # a bad video fails before the method (and torch) loads
    estimator, described = _build_method(method, settings)
    options = RunOptions(method=method, method_options=described, cache_budget=cache_mb * 2 ** 20, **run_settings)
    try:
        summary = run_video(video, out_dir, options, method=estimator, checked=checked)
    except (KeyboardInterrupt, Terminated) as exc:
        exc.nothing_kept = not out_dir.exists()  # (stopped before its first pair: the folder it made is gone)
        raise
    if summary.get("resumed_pairs") == summary["pairs"]:  # (the earlier run's timings would read as this one's)
        _say(f"{counted(summary['pairs'], 'pair')}, all finished by the run this resumes: none computed ({summary['method']})"
             f" -> {out_dir}")
        return
    sec, wall = summary["seconds_per_pair"]["median"], summary.get("wall_seconds", {}).get("per_pair")
    resumed = f" ({summary['resumed_pairs']} of them resumed)" if summary.get("resumed_pairs") else ""
    _say(f"{counted(summary['pairs'], 'pair')}{resumed}, {sec:.3f} s/pair median compute, {wall:.3f} s/pair wall"
         f" ({summary['method']}) -> {out_dir}")


# --- batch --------------------------------------------------------------------------------------


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=TEXT_PATH)
@click.option("--out", "out_dir", required=True, type=PATH, metavar="DIR",
              help="Output folder: one folder per clip (the files `run` writes) and batch.json.")
@click.option("--workers", type=Whole(1, 1024), default=None, metavar="N",  # 1024: semflow.batch.work.MAX_WORKERS
              help="Ray workers, each holding one built method (default: the CPUs Ray sees); no more are started"
                   " than the clips' chunks can use at once.")
@click.option("--address", default=None, metavar="ADDRESS", help="Join this Ray cluster (e.g. HEAD_IP:6379 or auto) instead of starting one.")
@click.option("--chunk-pairs", type=Whole(min=1), default=50, metavar="N", show_default=True,
              help="Pairs per task: long clips are split into chunks computed in parallel.")
@click.option("--warmup-pairs", type=Whole(min=0), default=0, metavar="N", show_default=True,
              help="Pairs a chunk computes before its first one (for methods that carry state).")
@shared_run_options(per_clip=True)
@_method_options(leave_out=("baseline_flows",), helps=BATCH_HELPS)  # (one video's flows: not a batch's)
def batch(inputs: tuple[str, ...], out_dir: Path, method: str, workers: int | None, address: str | None,
          chunk_pairs: int, warmup_pairs: int, cache_mb: int, **settings: Any) -> None:
    """Flow for many clips on Ray: INPUTS are videos, folders of frames, folders of videos, glob patterns
    or manifests (.txt: a path a line; .csv: input[,name]).

    Each clip's outputs go to DIR/NAME/ as `semflow run` writes them; DIR/batch.json lists every clip
    with its status, one-line error, pairs and seconds. A clip that fails does not stop the others.
    """
    try:
        from semflow.batch import Batch, BatchOptions
    except ImportError as exc:
        raise SemflowError(f"semflow batch needs Ray ({exc}); install it with: pip install 'semflow[batch]'") from None

    # Built here once, so that a bad method or option fails in one line before Ray starts; each worker
    # then builds it by name with the same options.
    run_settings = {name: settings.pop(name) for name in RUN_SETTINGS}
    device = settings.get("device")  # the workers' GPUs, not this machine's: checked when Ray shares them out
    if device is not None:
        settings["device"] = "cpu"
    _, described = _build_method(method, settings)
    if device is not None:
        described["device"] = device
    options = BatchOptions(method=method, method_options=described, cache_budget=cache_mb * 2 ** 20, workers=workers,
                           address=address, chunk_pairs=chunk_pairs, warmup_pairs=warmup_pairs, **run_settings)
    with Batch(out_dir, options) as runner:
        runner.submit(inputs)
        for result in runner.results():
            if result.status == "ok":
                _say(f"{result.name}: ok, {counted(result.pairs, 'pair')} -> {result.out_dir}")
            else:
                _say(f"{result.name}: failed: {result.error}")
    summary = runner.summary
    rate = summary["pairs_per_second"]
    startup = f", after {summary['startup_seconds']:.1f} s starting Ray" if summary.get("startup_seconds") else ""
    _say(f"{summary['ok']} of {counted(len(summary['inputs']), 'clip')} ok, {counted(summary['computed_pairs'], 'pair')} computed"
         f" in {summary['wall_seconds']:.1f} s ({rate or 0:.2f} pairs/s{startup}) -> {out_dir / 'batch.json'}")
    if summary["failed"]:
        raise SemflowError(f"{summary['failed']} of {len(summary['inputs'])} clips failed (see {out_dir / 'batch.json'});"
                           " once what their errors name is fixed, the same command with --resume redoes only what"
                           " is missing")


# --- flow ---------------------------------------------------------------------------------------


@main.command()
@click.argument("image1", type=PATH)
@click.argument("image2", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, metavar="OUTPUT",
              help="Flow file: .flo, .png (KITTI 16-bit) or .npy.")
@click.option("--method", default="dis-medium", show_default=True, metavar="NAME", help="Flow method (see `semflow methods`).")
@click.option("--viz", type=PATH, default=None, metavar="FILE", help="Also write a colour-wheel PNG.")
@click.option("--max-flow", type=MAX_FLOW, default=None, metavar="PX",
              help="--viz's normaliser in px, 0.001 to 1e6 (default: the 99th percentile of the magnitudes).")
@click.option("--explain", type=PATH, default=None, metavar="DIR",
              help="Write the method's own maps to this folder (semantic: segmentation, model map, layers; others: their"
                   " extra maps, e.g. discrete's grid and confidence, and the flow).")
@click.option("--max-side", type=Whole(min=16), default=None, metavar="PX",
              help="Shrink both images so the longer side is at most PX first (the flow is then in their pixels).")
@click.option("--baseline-flow", type=PATH, default=None, metavar="FILE",
              help="With --method semantic: a flow file from IMAGE1 to IMAGE2 (any method's) as the baseline.")
@_method_options(leave_out=("baseline_flows",), helps=FLOW_HELPS)  # (a video's folder of flows: a pair's is --baseline-flow)
def flow(image1: Path, image2: Path, output: Path, method: str, viz: Path | None, max_flow: float | None,
         explain: Path | None, max_side: int | None, baseline_flow: Path | None, **method_options: Any) -> None:
    """Flow from IMAGE1 to IMAGE2, written to OUTPUT (format by extension)."""
    from semflow.baseline import GivenFlow
    from semflow.explain import write_explain
    from semflow.io.flow import FLOW_EXTENSIONS, write_flow
    from semflow.io.images import IMAGE_EXTENSIONS, is_image_path, read_image, write_image
    from semflow.memory import check_memory
    from semflow.viz import add_legend, flow_to_color, max_flow_of

    check_outputs(files=[output, viz], folders=[explain],  # (first: a folder named as a file says so, for each)
                  inputs=[image1, image2, baseline_flow, method_options.get("segmentation")])
    if output.suffix.lower() not in FLOW_EXTENSIONS:
        raise InputError(f"{output}: unknown flow format; use one of {', '.join(FLOW_EXTENSIONS)}")
    if viz is not None and not is_image_path(viz):
        raise InputError(f"{viz}: unknown image format for --viz; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if max_flow is not None and viz is None:  # (it was ignored without a word)
        raise InputError("--max-flow is the colour normaliser of --viz's picture: give it with --viz")
    if baseline_flow is not None and (method != "semantic" or method_options.get("baseline") is not None):
        raise InputError("--baseline-flow is the baseline of --method semantic" if method != "semantic" else
                         "--baseline-flow is semantic's baseline: give it or --baseline, not both")
    from semflow.io.video import resize_max_side

    full = [read_image(path) for path in (image1, image2)]
    if full[0].shape != full[1].shape:
        raise InputError(f"{image2} is {full[1].shape[1]}x{full[1].shape[0]}, {image1} {full[0].shape[1]}x"
                         f"{full[0].shape[0]}: the two images must be the same size")
    img1, img2 = (resize_max_side(image, max_side) for image in full)
    if baseline_flow is not None:
        method_options["baseline"] = GivenFlow.from_file(baseline_flow, frame_size=full[0].shape[:2], size=img1.shape[:2])
    estimator, _ = _build_method(method, method_options)
    check_memory(estimator, *img1.shape[:2], hint="use --max-side {side} (or smaller)")
    result = estimator.estimate(img1, img2)
    explained = []
    if explain is not None:  # first: it may refuse (a name it writes is an input), and then nothing is written
        explained = write_explain(estimator, result, explain, outputs=[output, viz],
                                  protect=[image1, image2, baseline_flow, method_options.get("segmentation")])
    write_flow(output, result.flow)
    given = max_flow is not None
    if viz is not None:
        max_flow = max_flow if given else max_flow_of(result.flow)
        write_image(viz, add_legend(flow_to_color(result.flow, max_flow), max_flow))
    drawn = "" if viz is None else f"; {viz} ({_max_flow_said(max_flow, given)})"  # (as visualize says it)
    drawn += "" if explain is None else f"; {explain}/ ({counted(len(explained), 'file')})"
    _say(f"{output} ({result.flow.shape[1]}x{result.flow.shape[0]}, {estimator.name}){drawn}")


# --- visualize ----------------------------------------------------------------------------------


@main.command()
@click.argument("flows", nargs=-1, required=True, type=PATH)
@click.option("-o", "--output", required=True, type=PATH, metavar="FILE", help="Picture to write (.png, .jpg, ...).")
@click.option("--max-flow", type=MAX_FLOW, default=None, metavar="PX",
              help="Normaliser in px, 0.001 to 1e6 (default: the 99th percentile of the valid magnitudes over all inputs).")
@click.option("--legend/--no-legend", default=True, show_default=True, help="Draw the colour wheel and scale.")
@click.option("--columns", type=Whole(min=1), default=None, metavar="N", help="Tiles per row (default: all in one row).")
def visualize(flows: tuple[Path, ...], output: Path, max_flow: float | None, legend: bool, columns: int | None) -> None:
    """Draw FLOWS (.flo, KITTI .png, .npy) on the Middlebury colour wheel under one normaliser."""
    from semflow.io.flow import flow_file_pixels, read_flow_valid
    from semflow.io.images import write_image
    from semflow.memory import check_drawing_memory
    from semflow.tile_titles import titled_tiles
    from semflow.viz import add_legend, flow_to_color, max_flow_of

    check_outputs(files=[output], inputs=flows)
    check_drawing_memory([n for n in map(flow_file_pixels, flows) if n])  # from the headers, before reading
    loaded = [read_flow_valid(path) for path in flows]
    if len({f.shape for f, _ in loaded}) > 1:  # each file's size, in the order given
        sizes = [f"{path.name} {f.shape[1]}x{f.shape[0]}" for path, (f, _) in zip(flows, loaded)]
        shown = ", ".join(sizes[:6]) + (f", ... ({len(sizes)} flows)" if len(sizes) > 6 else "")
        raise InputError(f"flows differ in size ({shown}); cannot tile them")
    given = max_flow is not None
    if not given:
        max_flow = max_flow_of([f for f, _ in loaded], valid=[v for _, v in loaded])
    titles = [path.name for path in flows]  # (the file's name; the path as given where two share one)
    titles = titles if len(set(titles)) == len(titles) else [str(path) for path in flows]
    images = []
    for f, valid in loaded:
        img = flow_to_color(f, max_flow, valid=valid)
        images.append(add_legend(img, max_flow) if legend else img)
    write_image(output, titled_tiles(images, titles, columns=columns) if len(flows) > 1 else images[0])
    _say(f"{output} ({_max_flow_said(max_flow, given)})")


# --- compare ------------------------------------------------------------------------------------


@main.command()
@click.argument("root", type=PATH)
@click.option("--dataset", required=True, type=click.Choice(["middlebury", "sintel", "kitti", "chairs", "synthetic"]),
              help="The layout of ROOT (README: Data and licences, the layouts).")
@click.option("--methods", default="dis-medium,deepflow", show_default=True, metavar="METHODS", help="Comma-separated method names.")
@click.option("--out", "out_dir", type=PATH, default=None, metavar="DIR", help="Write a comparison PNG per sample here.")
@click.option("--json", "json_path", type=PATH, default=None, metavar="FILE", help="Write all results as JSON.")
@click.option("--max-samples", type=Whole(min=1), default=None, metavar="N", help="Compare the first N samples (default: all).")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@_method_options(helps=COMPARE_HELPS)
def compare(root: Path, dataset: str, methods: str, out_dir: Path | None, json_path: Path | None,
            max_samples: int | None, markdown: bool, progress: bool | None, **method_options: Any) -> None:
    """Run METHODS side by side on a dataset with ground truth under ROOT and print a table."""
    from semflow import evaluation
    from semflow.io.atomic import write_text_atomic
    from semflow.io.jsonfile import dumps_strict
    from semflow.methods import names_of

    check_outputs(files=[json_path], folders=[out_dir], inputs=[root])
    refuse_outputs_inside(root, [json_path, out_dir])  # the dataset's own files (ground truth, frames)
    names = names_of(methods.split(","))
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in method_options.items() if v is not None}
    results = evaluation.compare(dataset, root, names, method_options=given, out_dir=out_dir,
                                 max_samples=max_samples, progress=progress, isolate=True, outputs=[json_path])
    _print(evaluation.format_table(evaluation.summarize(results), markdown=markdown))
    if json_path is not None:
        write_text_atomic(json_path, dumps_strict(evaluation.results_json(results), indent=2))


# --- methods ------------------------------------------------------------------------------------


@main.command("methods")
def methods_command() -> None:
    """List the flow methods: what each is and the options it takes."""
    from semflow.cli_options import methods_listing

    for line in methods_listing():
        _print(line)


# --- segment ------------------------------------------------------------------------------------


@main.command("segment")
@click.argument("inputs", nargs=-1, required=True, type=PATH)
@click.option("--out", "out_dir", required=True, type=PATH, metavar="OUT", help="Output folder.")
@click.option("--segmenter", "--backend", "backend", default="camvid", show_default=True, metavar="NAME",
              help="camvid (shipped model), camvid:PATH, torchvision:PATH (DeepLabV3/LRASPP/FCN weights), masks:PATH.")
@click.option("--overlay", is_flag=True, help="Also write colour overlays with a colour key (OUT/overlay/, overlay.mp4 for a video).")
@click.option("--label-set", default=None, help="Label set of masks:PATH or torchvision:PATH (camvid, voc or a .json"
              " file).")
@click.option("--kinds", default=None, help="With --prior clip: override the class -> kind table the prior's fusion"
              " uses, e.g. 'Tree:plane,Car:thing'.")
@click.option("--device", default="cpu", show_default=True, help="Where the model runs: cpu, cuda, cuda:N or auto.")
@click.option("--max-frames", type=Whole(min=1), default=None, metavar="N",
              help="Segment at most this many frames of each video and images of each folder (the first ones).")
@click.option("--max-side", type=Whole(min=16), default=None, metavar="PX",
              help="Shrink images and video frames so the longer side is at most PX before segmenting (the label"
                   " maps and overlays then have the shrunk size).")
@click.option("--pairwise", "--per-frame", "per_frame", is_flag=True,
              help="Segment every video frame on its own (default: a video's labels filtered along the optical"
              " flow; a folder's images are always segmented each on its own).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@prior_options
def segment(inputs: tuple[Path, ...], out_dir: Path, backend: str, overlay: bool, label_set: str | None,
            kinds: str | None, device: str, max_frames: int | None, max_side: int | None, per_frame: bool,
            progress: bool | None, prior: str, clip_model: str, clip_weights: Path | None, prior_classes: str | None,
            prior_weight: float) -> None:
    """Label maps for images, folders of images, and video files: OUT/x.png per image, OUT/NNNNNN.png per
    frame of one video (OUT/<video>/NNNNNN.png with several videos).

    A video's labels are filtered along the optical flow (steady from frame to frame); --pairwise
    segments each frame on its own. A folder's images are segmented each on its own (as images, not as
    the frames of a video).

    With --prior clip, OUT/prior/x.json (OUT/prior/NNNNNN.json; OUT/<video>/prior/ with several videos)
    holds each region's CLIP label and score. Images and frames too large for the memory available are
    refused in one line before any work, with a --max-side that fits (with --prior clip, after its models load).
    """
    from semflow.segmentation.segment import segment_inputs

    check_outputs(folders=[out_dir])
    spec = prior_from_options(prior, clip_model, clip_weights, prior_classes, prior_weight)
    check_segment_options(backend, label_set, kinds, spec)
    if spec is not None:
        from semflow.segmentation import get_segmenter

        backend = get_segmenter(backend, device=device, kinds_override=kinds, label_set=label_set, prior=spec)
        backend.explain_dir = out_dir / "prior"
    places = []  # (where the overlays go, OUT/overlay/ for images and an overlay.mp4 per video: planned before
    if overlay:  # the run, whose inputs may be gone after it)
        from semflow.segmentation.segment import overlays_of

        places = [f"{path}/" if path.suffix != ".mp4" else str(path)
                  for path in overlays_of(inputs, out_dir, max_frames=max_frames)]
    written = segment_inputs(inputs, out_dir, backend=backend, overlay=overlay, progress=progress, device=device,
                             kinds_override=kinds, label_set=label_set, max_frames=max_frames,
                             temporal=not per_frame, max_side=max_side)
    said = f"wrote {len(written)} label map(s) to {out_dir}"
    if places:
        shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
        said += f"; overlays: {shown}"
    _say(said)

