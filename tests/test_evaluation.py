"""Dataset readers and ``compare`` (``semflow compare``): scores, regions, JSON document, tables, images."""

from __future__ import annotations

import dataclasses
import json
import math
import mmap
import time
from pathlib import Path

import flow_vis
import numpy as np
import pytest

from semflow import evaluation
from semflow.errors import InputError
from semflow.io.datasets import DATASETS, LAYOUTS, LoadedSample, load_dataset, middlebury, synthetic
from semflow.methods import get_method
from semflow.metrics import epe, fl_all
from semflow.synthetic import write_dataset
from semflow.warp import warp_backward

SAMPLE_KEYS = {"method", "dataset", "sample", "epe", "fl_all", "seconds"}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, count=2, height=48, width=64, seed=7)
    return root


@pytest.fixture(scope="module")
def synthetic_results(synthetic_root: Path) -> list[evaluation.SampleResult]:
    return evaluation.compare("synthetic", synthetic_root, ["dis-ultrafast", "dis-medium"])


# --- readers ------------------------------------------------------------------------------------


def _files_of_layout(layout: str) -> list[str]:
    """The files a layout hint names (``training/image_2/NNNNNN_10.png, NNNNNN_11.png``: a name without a
    folder is in the previous one's), each numbered 1 and 2, a ``<name>`` as ``a``, ``{x,y}`` as ``x``."""
    import re

    files, folder = [], ""
    for entry in layout.split(", "):
        entry = re.sub(r"<\w+>", "a", re.sub(r"\{(\w+),[^}]*\}", r"\1", entry))
        folder, name = (entry.rsplit("/", 1) if "/" in entry else (folder, entry))
        for number in (1, 2):
            files.append(f"{folder}/" * bool(folder) + re.sub("N+", lambda m, n=number: f"{n:0{len(m[0])}d}", name))
    return files


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_layout_the_empty_dataset_error_names_is_what_its_reader_reads(tmp_path: Path, name: str) -> None:
    """'no <name> samples ... (it should hold <layout>)': files laid out as the hint says are a sample whose
    frames and ground truth are those files, so the hint cannot send a user to a layout that is not read."""
    for relative in _files_of_layout(LAYOUTS[name]):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    if name == "sintel":  # (frame_NNNN.flo: from frame NNNN to the next, so frames 1 and 2 have one flow)
        (tmp_path / "training/flow/a/frame_0002.flo").unlink()
    samples = load_dataset(name, tmp_path)
    assert samples and all(path.exists() for s in samples for path in (s.frame1, s.frame2, s.flow))
    # every file loading the sample reads (synthetic's masks too, which the hint once left out)
    optional = {"sintel": {"occlusion", "invalid"}, "kitti": {"flow_noc"}}.get(name, set())
    for field in ("occlusion", "invalid", "flow_noc", "labels", "instances"):
        assert all(getattr(s, field) is None or getattr(s, field).exists() for s in samples), field
        if field not in optional and any(getattr(s, field) is not None for s in samples):
            assert any(getattr(s, field).name in LAYOUTS[name] for s in samples), field


def test_load_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset 'nope'.*middlebury"):
        load_dataset("nope", tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        load_dataset("middlebury", tmp_path / "missing")
    with pytest.raises(InputError, match="no middlebury samples"):
        load_dataset("middlebury", tmp_path)
    sequence = tmp_path / "RubberWhale"  # one sequence given where its parent is meant: say the layout
    sequence.mkdir()
    (sequence / "flow10.flo").write_bytes(b"")
    with pytest.raises(InputError, match=r"RubberWhale: no middlebury samples .*\(it should hold <Seq>/frame10\.png"):
        load_dataset("middlebury", sequence)
    for name, child in (("sintel", "training"), ("kitti", "training"), ("chairs", "data")):
        with pytest.raises(InputError, match=f"^{tmp_path}: not a .* folder \\(it has no {child}/\\)$"):
            load_dataset(name, tmp_path)
    (tmp_path / "file").write_text("")
    for name in ("middlebury", "sintel", "synthetic"):  # said "missing file/" (of the file itself)
        with pytest.raises(InputError, match="file: not a folder$"):
            load_dataset(name, tmp_path / "file")
    for reader in (middlebury, synthetic):
        with pytest.raises(InputError, match="file: not a folder$"):
            reader(tmp_path / "file")


@pytest.mark.parametrize(
    ("name", "folder", "count", "shape"),
    [("middlebury", "middlebury", 8, None), ("sintel", "sintel", 2, (436, 1024)),
     ("kitti", "kitti", 1, (375, 1242)), ("chairs", "flyingchairs", 3, (384, 512))],
)
def test_real_dataset_readers(shared_data: Path, name: str, folder: str, count: int, shape) -> None:
    """Each reader finds its samples, and the GT it decodes explains the frames: warping frame 2 by it
    matches frame 1 better than no motion, or than the GT with u and v swapped."""
    if not (shared_data / folder).is_dir():
        pytest.skip(f"{folder} not in {shared_data}")
    samples = load_dataset(name, shared_data / folder)
    assert len(samples) == count
    s = samples[0].load()
    h, w = s.img1.shape[:2]
    if shape is not None:
        assert (h, w) == shape
    assert s.img1.dtype == np.uint8 and s.img2.shape == s.img1.shape and s.flow.shape == (h, w, 2)
    assert s.valid.shape == (h, w) and s.valid.dtype == bool and s.valid.mean() > 0.1
    g1, g2 = s.img1.astype(np.float32).mean(axis=2), s.img2.astype(np.float32).mean(axis=2)
    err_gt = np.median(np.abs(warp_backward(g2, s.flow)[0] - g1)[s.valid])
    err_zero = np.median(np.abs(g2 - g1)[s.valid])
    err_swapped = np.median(np.abs(warp_backward(g2, s.flow[..., ::-1].copy())[0] - g1)[s.valid])
    assert err_gt < 0.7 * err_zero and err_gt < 0.7 * err_swapped
    if name == "sintel":
        assert s.occluded is not None and 0.001 < s.occluded.mean() < 0.5
        assert {x.name.split("/")[0] for x in samples} == {"clean", "final"}


# --- compare on synthetic scenes ----------------------------------------------------------------


def test_compare_one_result_per_method_and_sample(synthetic_results) -> None:
    assert [(r.sample, r.method) for r in synthetic_results] == [
        ("scene_000", "dis-ultrafast"), ("scene_000", "dis-medium"),
        ("scene_001", "dis-ultrafast"), ("scene_001", "dis-medium"),
    ]
    for r in synthetic_results:
        assert r.dataset == "synthetic"
        assert 0 < r.epe < 10 and 0 <= r.fl_all <= 1 and r.seconds > 0 and r.peak_mb > 0
        assert {"occluded", "non-occluded", "things", "planes", "stuff", "thing-band", "thing-inner"} <= set(r.regions)


def test_compare_scores_match_the_metrics(synthetic_root: Path, synthetic_results) -> None:
    sample = load_dataset("synthetic", synthetic_root)[1].load()
    flow = get_method("dis-medium")(sample.img1, sample.img2)  # deterministic
    r = next(x for x in synthetic_results if x.sample == "scene_001" and x.method == "dis-medium")
    assert r.epe == pytest.approx(epe(flow, sample.flow, sample.valid), rel=1e-6)
    assert r.fl_all == pytest.approx(fl_all(flow, sample.flow, sample.valid), rel=1e-6)
    occ = r.regions["occluded"]
    assert occ["pixels"] == int(sample.occluded.sum())
    assert occ["epe"] == pytest.approx(epe(flow, sample.flow, sample.valid, sample.occluded), rel=1e-6)
    assert occ["pixels"] + r.regions["non-occluded"]["pixels"] == sample.valid.sum()
    kinds = [r.regions[k]["pixels"] for k in ("things", "planes", "stuff")]
    assert sum(kinds) == sample.valid.sum() and kinds[0] > 0 and kinds[1] > 0 and kinds[2] == 0
    assert math.isnan(r.regions["stuff"]["epe"])  # no pixels: NaN, not 0


def test_score_of_zero_flow_is_the_mean_gt_magnitude(synthetic_root: Path) -> None:
    sample = load_dataset("synthetic", synthetic_root)[0].load()
    e, f, regions = evaluation.score(np.zeros_like(sample.flow), sample)
    assert e == pytest.approx(float(np.linalg.norm(sample.flow, axis=2).mean()), rel=1e-5)
    assert 0 <= f <= 1 and regions["things"]["epe"] > 0
    e_gt, f_gt, _ = evaluation.score(sample.flow, sample)
    assert e_gt == 0.0 and f_gt == 0.0


def test_kinds_a_method_predicted_are_named_as_predictions(synthetic_root: Path) -> None:
    """On a dataset without labels the per-kind regions come from a method's segmentation: they were
    named "things" etc. as if they were ground truth."""
    sample = load_dataset("synthetic", synthetic_root)[0].load()
    kinds = np.zeros(sample.flow.shape[:2], np.uint8)
    kinds[:, :20] = 2  # things (KIND_CODES)
    given = evaluation.sample_regions(sample, kinds)
    assert {"things", "planes", "stuff", "thing-band"} <= set(given)  # the dataset's labels win
    unlabelled = dataclasses.replace(sample, labels=None, instances=None)
    predicted = evaluation.sample_regions(unlabelled, kinds)
    assert set(predicted) == {"things(pred)", "planes(pred)", "stuff(pred)"} | ({"occluded", "non-occluded"}
                                                                              & set(given))
    assert (predicted["things(pred)"] == (kinds == 2)).all()
    rows = evaluation.summarize([evaluation.SampleResult("m", "d", "s", 1.0, 0.0, 0.1, 1.0,
                                                         evaluation.score(sample.flow, unlabelled, kinds)[2])])
    assert "EPE things(pred)" in evaluation.format_table(rows).splitlines()[0]


def test_medium_beats_ultrafast_on_average(synthetic_results) -> None:
    """A sanity check of the whole path (not a benchmark): the stronger preset is not worse on average."""
    rows = {r["method"]: r for r in evaluation.summarize(synthetic_results)}
    assert rows["dis-medium"]["epe"] <= rows["dis-ultrafast"]["epe"] * 1.1


def test_summarize_averages_over_samples(synthetic_results) -> None:
    rows = evaluation.summarize(synthetic_results)
    assert [(r["dataset"], r["method"], r["samples"]) for r in rows] == [
        ("synthetic", "dis-ultrafast", 2), ("synthetic", "dis-medium", 2)]
    mine = [r for r in synthetic_results if r.method == "dis-medium"]
    assert rows[1]["epe"] == pytest.approx(np.mean([r.epe for r in mine]))
    assert rows[1]["fl_all"] == pytest.approx(np.mean([r.fl_all for r in mine]))
    assert math.isnan(rows[1]["epe_stuff"]) and rows[1]["epe_things"] > 0


def test_results_json_is_strict_json_with_the_documented_schema(synthetic_results) -> None:
    doc = evaluation.results_json(synthetic_results)
    text = json.dumps(doc, allow_nan=False)  # NaN (empty regions) must have become null
    back = json.loads(text)
    assert len(back["results"]) == 4
    for row in back["results"]:
        assert SAMPLE_KEYS <= set(row)
        assert isinstance(row["method"], str) and isinstance(row["sample"], str)
        assert row["epe"] >= 0 and 0 <= row["fl_all"] <= 1 and row["seconds"] > 0
        assert row["regions"]["stuff"]["epe"] is None
    assert back["summary"][0]["epe_stuff"] is None


def test_format_table_plain_and_markdown(synthetic_results) -> None:
    rows = evaluation.summarize(synthetic_results)
    plain = evaluation.format_table(rows)
    lines = plain.splitlines()
    assert len(lines) == 4 and "EPE" in lines[0] and "Fl-all %" in lines[0]
    assert lines[2].startswith("synthetic") and "dis-ultrafast" in lines[2]
    assert f"{rows[1]['epe']:.3f}" in lines[3]
    md = evaluation.format_table(rows, markdown=True).splitlines()
    assert md[0].startswith("| dataset | method") and set(md[1]) <= {"|", "-"} and len(md) == 4


def test_compare_writes_one_comparison_image_per_sample(synthetic_root: Path, tmp_path: Path) -> None:
    from semflow.io.images import read_image

    evaluation.compare("synthetic", synthetic_root, ["dis-ultrafast"], out_dir=tmp_path, max_samples=1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["synthetic_scene_000.png"]
    img = read_image(tmp_path / files[0])
    # Two rows (frame / GT / method, frame 2 / valid / error) of 64x48 tiles with 4 px gaps.
    assert img.shape == (2 * 48 + 4, 3 * 64 + 2 * 4, 3)


def test_compare_rejects_unknown_methods_and_options(synthetic_root: Path) -> None:
    with pytest.raises(InputError, match="unknown method 'nope'; known methods: dis-ultrafast"):
        evaluation.compare("synthetic", synthetic_root, ["nope"])
    # Options go only to methods that declare them ("device": all); one that none declares is an error.
    res = evaluation.compare("synthetic", synthetic_root, ["dis-ultrafast"], max_samples=1,
                             method_options={"device": "cpu"})
    assert len(res) == 1
    with pytest.raises(InputError, match="no method among dis-ultrafast takes option 'preset'"):
        evaluation.compare("synthetic", synthetic_root, ["dis-ultrafast"], method_options={"preset": "fast"})


def test_datasets_registry_names() -> None:
    assert set(DATASETS) >= {"middlebury", "sintel", "kitti", "chairs", "synthetic"}


def test_middlebury_compare_is_in_a_sane_band(shared_file) -> None:
    root = shared_file("middlebury").resolve()
    results = evaluation.compare("middlebury", root, ["dis-medium"], max_samples=2)
    assert [r.sample for r in results] == ["Dimetrodon", "Grove2"]
    for r in results:
        # DIS-medium on these small-motion pairs: well under 1 px, but not suspiciously perfect.
        assert 0.05 < r.epe < 1.0, r
        assert 0 <= r.fl_all < 0.1
    json.dumps(evaluation.results_json(results), allow_nan=False)


def _touch(mb: int) -> mmap.mmap:
    """``mb`` MB of fresh pages, touched (resident): straight from the kernel, as the allocator may hand
    numpy memory it freed earlier and still holds resident (then RSS would not grow)."""
    block = mmap.mmap(-1, mb * 2**20)
    np.frombuffer(block, np.uint8)[:] = 1  # (in place: no second copy of the block)
    return block


def test_peak_memory_sees_an_allocation() -> None:
    from semflow.memory import PeakMemory, current_rss_bytes

    assert current_rss_bytes() > 0
    with PeakMemory(interval=0.001) as memory:
        block = _touch(80)
        time.sleep(0.05)  # let a sampling thread, where there is one, see it
        block.close()
    assert memory.delta_mb > 50 and memory.peak_mb >= memory.delta_mb


def test_peak_memory_on_linux_runs_no_thread_and_nests(monkeypatch) -> None:
    import threading

    from semflow import memory as mem

    if not mem._reset_peak_rss():
        pytest.skip("no resettable high-water mark (/proc/self/clear_refs) here")
    threads = threading.active_count()
    with mem.PeakMemory() as outer:
        first = _touch(60)
        first.close()  # freed before the inner block starts: only the outer block saw it
        with mem.PeakMemory() as inner:
            assert threading.active_count() == threads  # nothing samples beside the block
            second = _touch(30)
            second.close()
        third = _touch(10)
        third.close()
    assert 25 < inner.delta_mb < 55
    assert outer.delta_mb > 55  # the 60 MB, which the inner block's reset of the mark did not lose
    # Where the mark cannot be reset, a thread samples instead, and sees the same.
    monkeypatch.setattr(mem, "_reset_peak_rss", lambda: False)
    with mem.PeakMemory(interval=0.001) as sampled:
        assert threading.active_count() == threads + 1
        block = _touch(40)
        time.sleep(0.05)
        block.close()
    assert sampled.delta_mb > 30


def test_compare_peak_memory_is_each_methods_own(synthetic_root: Path) -> None:
    """compare's peak MB included what ran before in the same process (issue 14: dis-medium 892 MB
    after discrete, 85 MB alone). With isolate (as `semflow compare` runs) each method runs in a child
    process of its own: memory this process holds (here 300 MB of ballast) is not counted."""
    ballast = np.ones(300 * 2**20 // 8)
    results = evaluation.compare("synthetic", synthetic_root, ["dis-ultrafast", "dis-medium"], max_samples=1,
                                 isolate=True)
    assert ballast.sum() > 0
    for r in results:
        assert 20 < r.peak_mb < 280, (r.method, r.peak_mb)


def test_peak_memory_samples_when_the_kernel_keeps_the_old_mark(monkeypatch) -> None:
    import threading

    from semflow import memory as mem

    if not mem._reset_peak_rss():
        pytest.skip("no resettable high-water mark (/proc/self/clear_refs) here")
    # A kernel that takes the write but keeps an old, higher mark would charge the block with it.
    monkeypatch.setattr(mem, "peak_rss_bytes", lambda: mem.current_rss_bytes() + 500 * 2**20)
    assert not mem._reset_peak_rss()
    threads = threading.active_count()
    with mem.PeakMemory(interval=0.001) as memory:
        assert threading.active_count() == threads + 1  # the sampler instead
    assert memory.delta_mb < 100


def test_an_isolated_methods_process_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed by SIGTERM (a job scheduler, `timeout`) never closes its pool: the child that
    holds the method (about 1 GB for discrete) lived on. It now watches its parent and exits."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "import numpy as np\n"
        "from semflow.isolation import IsolatedMethod\n"
        "if __name__ == '__main__':  # (spawn imports this file again in the child)\n"
        "    method = IsolatedMethod('dis-ultrafast', {})\n"
        "    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)\n"
        "    method.estimate(img, img)\n"
        "    print(*method._pool._processes, flush=True)\n"
        "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline().split()[0])
        os.kill(child, 0)  # alive while its parent is
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the isolated method's process outlived its parent")
    finally:
        parent.kill()


@pytest.mark.parametrize("width", [128, 1242])
def test_comparison_images_error_maps_carry_their_scale(width: int) -> None:
    """compare's error maps had no scale: nothing said that their colours run from 0 to 5 px. Each now shows
    the ramp (drawn after the tiles are scaled down, so its colours are exact) from 0 to max_error."""
    from semflow.io.datasets import LoadedSample
    from semflow.viz import error_to_color

    h = width * 3 // 8
    rng = np.random.default_rng(0)
    img = (rng.random((h, width, 3)) * 255).astype(np.uint8)
    gt = np.full((h, width, 2), 2.0, np.float32)
    sample = LoadedSample("synthetic", "s", img, img, gt, np.ones((h, width), bool))
    for max_error in (5.0, 2.0):
        image = evaluation.comparison_image(sample, {"exact": gt.copy()}, max_error=max_error)
        tile_w = min(width, 480)
        tile_h = (image.shape[0] - 4) // 2
        error_tile = image[tile_h + 4:, 2 * (tile_w + 4):]
        hottest = error_to_color(np.array([[max_error]], np.float32), max_error)[0, 0]
        assert (error_tile == hottest).all(axis=2).sum() >= 4  # the ramp's end (no pixel of the map is in error)
        assert (error_tile[-tile_h // 3:] == error_to_color(np.zeros((1, 1), np.float32), max_error)[0, 0]).all(
            axis=2).any()  # and its start, in the lower part


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_compare_refuses_a_max_samples_that_is_no_count(synthetic_root: Path, bad) -> None:
    """-1 left the last sample out without a word, 0 blamed the data ("no synthetic sample has a valid
    ground-truth pixel"), 1.5 was a TypeError (a public API probe)."""
    with pytest.raises(InputError, match="max_samples must be a whole number of at least 1"):
        evaluation.compare("synthetic", synthetic_root, ["dis-fast"], max_samples=bad, progress=False)


def test_format_table_of_no_rows_is_its_header() -> None:
    """The plain table of no rows was a TypeError ('int' object is not iterable); Markdown gave the header."""
    plain = evaluation.format_table([]).splitlines()
    assert len(plain) == 2 and plain[0].split()[:3] == ["dataset", "method", "n"] and set(plain[1]) <= {"-", " "}
    assert len(evaluation.format_table([], markdown=True).splitlines()) == 2


# --- scores on hand-made samples: known answers -----------------------------------------------------


def _hand_sample(flow: np.ndarray, valid: np.ndarray, **fields) -> LoadedSample:
    h, w = valid.shape
    frame = np.zeros((h, w, 3), np.uint8)
    return LoadedSample("hand", "s", frame, frame, flow, valid, **fields)


def test_score_leaves_invalid_pixels_out_overall_and_in_every_region() -> None:
    """Ground truth 10 px right on a 4x5 image whose last row is invalid; the estimate is exact but 4 px
    off at one valid pixel (an outlier: > 3 px and > 5 % of 10 px) and 50 px off on the invalid row.
    Over the 15 valid pixels: EPE 4/15, Fl-all 1/15; the occluded column 0 has 3 valid pixels, none off."""
    gt = np.zeros((4, 5, 2), np.float32)
    gt[..., 0] = 10.0
    valid = np.ones((4, 5), bool)
    valid[3] = False
    occluded = np.zeros((4, 5), bool)
    occluded[:, 0] = True
    flow = gt.copy()
    flow[0, 1, 1] = 4.0
    flow[3, :, 0] += 50.0
    e, f, regions = evaluation.score(flow, _hand_sample(gt, valid, occluded=occluded))
    assert e == pytest.approx(4 / 15) and f == pytest.approx(1 / 15)
    assert regions["occluded"] == {"epe": 0.0, "fl_all": 0.0, "pixels": 3}
    assert regions["non-occluded"]["epe"] == pytest.approx(4 / 12)
    assert regions["non-occluded"]["fl_all"] == pytest.approx(1 / 12)
    assert regions["non-occluded"]["pixels"] == 12


def test_thing_regions_split_the_things_into_band_and_inner() -> None:
    """A 20x40 car (CamVid id 8) on building (1): ``thing-band`` is the car's pixels less than 5 px inside its
    outline, ``thing-inner`` the 10x30 rest; together they are the car, and they do not overlap."""
    labels = np.full((40, 60), 1, np.uint8)
    labels[10:30, 10:50] = 8
    car = labels == 8
    regions = evaluation.sample_regions(_hand_sample(np.zeros((40, 60, 2), np.float32), np.ones((40, 60), bool),
                                                     labels=labels))
    assert (regions["things"] == car).all() and not regions["planes"].any() and regions["stuff"].sum() == 40 * 60 - 800
    inner, band = regions["thing-inner"], regions["thing-band"]
    assert inner.sum() == 10 * 30 and inner[15:25, 15:45].all()
    assert ((inner | band) == car).all() and not (inner & band).any()


def _result(seconds: float, peak: float, epe_value: float, fl: float, occluded: tuple[float, float]
            ) -> evaluation.SampleResult:
    regions = {"occluded": {"epe": occluded[0], "fl_all": occluded[1], "pixels": 1}}
    return evaluation.SampleResult("m", "d", f"s{seconds}", epe_value, fl, seconds, peak, regions)


def test_summarize_takes_median_seconds_largest_peak_and_means_that_skip_empty_regions() -> None:
    """Three samples: seconds 1, 2 and 6 (median 2, mean 3), peaks 100, 300, 200 MB; a region whose
    metrics are NaN in one sample (no pixels there) is averaged over the other two."""
    nan = float("nan")
    results = [_result(1.0, 100.0, 1.0, 0.1, (1.0, 0.1)), _result(2.0, 300.0, 2.0, 0.2, (nan, nan)),
               _result(6.0, 200.0, 3.0, 0.45, (3.0, 0.3))]
    [row] = evaluation.summarize(results)
    assert row["samples"] == 3 and row["seconds"] == 2.0 and row["peak_mb"] == 300.0
    assert row["epe"] == pytest.approx(2.0) and row["fl_all"] == pytest.approx(0.25)
    assert row["epe_occluded"] == pytest.approx(2.0) and row["fl_occluded"] == pytest.approx(0.2)


def test_format_table_writes_fl_columns_in_percent_and_epe_in_px() -> None:
    nan = float("nan")
    results = [_result(1.0, 100.0, 1.0, 0.1, (1.0, 0.1)), _result(2.0, 300.0, 2.0, 0.2, (nan, nan)),
               _result(6.0, 200.0, 3.0, 0.45, (3.0, 0.3))]
    header, _, line = evaluation.format_table(evaluation.summarize(results)).splitlines()
    assert header.split() == ["dataset", "method", "n", "EPE", "Fl-all", "%", "EPE", "occluded", "Fl", "occluded",
                              "%", "s/pair", "peak", "MB"]
    assert line.split() == ["d", "m", "3", "2.000", "25.00", "2.000", "(n=2)", "20.00", "(n=2)", "2.000", "300"]


def test_a_region_mean_over_fewer_samples_than_n_says_how_many() -> None:
    """A sample whose region is empty (NaN) is left out of that region's mean, so the mean covers fewer
    samples than the table's n: nothing said so. Now the summary row has ``n_<region>`` (the JSON's too), and
    the table's cells of that region say ``(n=K)``, only where K differs from n."""
    nan = float("nan")
    results = [_result(1.0, 100.0, 1.0, 0.1, (1.0, 0.1)), _result(2.0, 300.0, 2.0, 0.2, (nan, nan)),
               _result(6.0, 200.0, 3.0, 0.45, (3.0, 0.3))]
    results[2].regions["things"] = {"epe": 4.0, "fl_all": 0.5, "pixels": 1}  # (in one sample only)
    for r in results:
        r.regions["stuff"] = {"epe": 1.0, "fl_all": 0.0, "pixels": 1}  # (in every sample)
    [row] = evaluation.summarize(results)
    assert (row["samples"], row["n_occluded"], row["n_things"], row["n_stuff"]) == (3, 2, 1, 3)
    assert evaluation.results_json(results)["summary"][0]["n_occluded"] == 2
    header, _, line = evaluation.format_table([row]).splitlines()
    cells = dict(zip([h.strip() for h in header.split("  ") if h.strip()],
                     [c.strip() for c in line.split("  ") if c.strip()]))
    assert cells["EPE occluded"] == "2.000 (n=2)" and cells["Fl occluded %"] == "20.00 (n=2)"
    assert cells["EPE things"] == "4.000 (n=1)" and cells["EPE stuff"] == "1.000" and cells["n"] == "3"
    md = evaluation.format_table([row], markdown=True).splitlines()[2]
    assert "| 2.000 (n=2) |" in md and "| 1.000 |" in md


def test_comparison_image_normalises_by_valid_ground_truth_and_blacks_out_invalid_errors() -> None:
    """Sintel's invalid pixels keep a flow value (30 px here) that is no ground truth: the normaliser is
    the valid pixels' 3 px, so a valid ground-truth pixel is the wheel's colour at full scale to the right
    (flow_vis at u = 1, v = 0); the error map of an estimate of zero is black on the invalid half."""
    h, w = 60, 80
    gt = np.zeros((h, w, 2), np.float32)
    gt[..., 0] = 3.0
    gt[:, w // 2:, 0] = 30.0
    valid = np.ones((h, w), bool)
    valid[:, w // 2:] = False
    image = evaluation.comparison_image(_hand_sample(gt, valid), {"zero": np.zeros_like(gt)})
    full_right = flow_vis.flow_uv_to_colors(np.ones((1, 1)), np.zeros((1, 1)))[0, 0]
    gt_tile = image[:h, w + 4:2 * w + 4]
    assert (gt_tile[25:35, 5:30] == full_right).all()
    band = image[h + 4:, 2 * (w + 4):][20:25]  # the error tile's rows between its title and its scale
    assert (band[:, w // 2:] == 0).all()
    assert (band[:, :w // 2] != 0).any(axis=2).all()  # 3 px of error where valid: not black


def test_compare_scores_every_method_on_the_first_methods_predicted_kinds(tmp_path: Path) -> None:
    """On a dataset without labels (Middlebury) two methods report the kinds they saw: one all things,
    the next all stuff. Every method is scored on the first one's kinds (its docstring), so each result
    has all 64 pixels under ``things(pred)`` and none under ``stuff(pred)``."""
    from semflow.baseline.base import FlowMethod, FlowResult
    from semflow.io.flow import write_flow
    from semflow.io.images import write_image
    from semflow.methods import register_method, unregister_method
    from semflow.segmentation import KIND_CODES

    seq = tmp_path / "Hand"
    frame = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    write_image(seq / "frame10.png", frame)
    write_image(seq / "frame11.png", frame)
    write_flow(seq / "flow10.flo", np.zeros((8, 8, 2), np.float32))

    class Kinds(FlowMethod):
        def __init__(self, kind: str) -> None:
            self.kind = kind

        def _estimate(self, img1, img2, **kwargs):
            kinds = np.full(img1.shape[:2], KIND_CODES[self.kind], np.uint8)
            return FlowResult(np.zeros((*img1.shape[:2], 2), np.float32), extras={"kinds": kinds})

    register_method("kinds-thing", "all things", lambda options: Kinds("thing"), torch=False)
    register_method("kinds-stuff", "all stuff", lambda options: Kinds("stuff"), torch=False)
    try:
        results = evaluation.compare("middlebury", tmp_path, ["kinds-thing", "kinds-stuff"], progress=False)
    finally:
        unregister_method("kinds-thing")
        unregister_method("kinds-stuff")
    assert [r.method for r in results] == ["kinds-thing", "kinds-stuff"]
    for r in results:
        assert r.regions["things(pred)"]["pixels"] == 64 and r.regions["stuff(pred)"]["pixels"] == 0


def test_a_synthetic_palette_or_rgb_label_map_gives_its_ids(synthetic_root: Path, tmp_path: Path) -> None:
    """A synthetic scene's labels.png (and instances.png) re-saved as a palette PNG (mode "P", as many tools
    write label maps) was read by OpenCV as its palette's colours (H, W, 3): the sample's labels were no label
    map (its things region came out 3-D, and compare crashed scoring it); one saved as RGB grey was (H, W, 3)
    too. They are read as ``--segmenter masks:`` reads them now: palette indices (or the grey) are the ids."""
    import shutil

    from PIL import Image

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root / "scene_000", root / "scene_000")
    (reference,) = [s.load() for s in synthetic(synthetic_root)[:1]]
    assert reference.labels.ndim == 2 and (reference.labels > 0).any()
    colours = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
    for name, ids in (("labels.png", reference.labels), ("instances.png", reference.instances.astype(np.uint8))):
        palette = Image.fromarray(ids, mode="P")
        palette.putpalette(colours.tobytes())
        palette.save(root / "scene_000" / name)
    (sample,) = [s.load() for s in synthetic(root)]
    assert np.array_equal(sample.labels, reference.labels) and np.array_equal(sample.instances, reference.instances)
    Image.fromarray(np.repeat(reference.labels[..., None], 3, axis=2), mode="RGB").save(root / "scene_000" / "labels.png")
    (sample,) = [s.load() for s in synthetic(root)]
    assert np.array_equal(sample.labels, reference.labels)
    (result,) = evaluation.compare("synthetic", root, ["dis-ultrafast"])
    assert result.regions["things"]["pixels"] > 0
    coded = colours[reference.labels]  # a colour-coded label image: refused, naming the file
    Image.fromarray(coded, mode="RGB").save(root / "scene_000" / "labels.png")
    with pytest.raises(InputError, match=r"labels\.png: a colour image, not a label map"):
        synthetic(root)[0].load()
