"""Benchmark the semantic method beside its baselines; writes the ``semantic`` section of BENCHMARKS.md.

    python scripts/bench_semantic.py /work/shared/data [--baselines dis-medium discrete] [--synthetic 8]

1. Synthetic layered scenes (written fresh by ``semflow.synthetic.write_dataset`` with seed 1000, not
   the seeds used during development) with their given masks: EPE / Fl-all overall and per region kind
   (things, planes), occluded pixels separately, for each baseline and semantic on top of it.
2. Real data with the default segmenter (``camvid``): the KITTI pair, Sintel alley_1 (clean and final),
   Middlebury; splits by the *predicted* kinds (things = fg, the rest = bg) since these sets have no labels.
3. Cost: where semantic's time goes beyond its baseline (segmentation, planes, things, composer, and the
   ring refit of its fused flow where a model was kept: 0 in the median where most pairs keep none), per
   pair at Sintel's 1024x436.

Each baseline runs once per pair; semantic reuses that flow (a memo keyed by the frames), so its extra
time is measured separately from its baseline's.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, today, write_section  # noqa: E402

from semflow.baseline.base import FlowMethod, FlowResult  # noqa: E402
from semflow.evaluation import SampleResult, format_table, score, summarize  # noqa: E402
from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.memory import PeakMemory  # noqa: E402
from semflow.methods import get_method  # noqa: E402
from semflow.metrics import epe, fl_all  # noqa: E402
from semflow.segmentation import get_segmenter  # noqa: E402
from semflow.semantic import SemanticFlow  # noqa: E402
from semflow.synthetic import write_dataset  # noqa: E402


class Memo(FlowMethod):
    """A baseline whose result for a frame pair is computed once and then reused."""

    def __init__(self, method: FlowMethod) -> None:
        self.inner = method
        self.name = method.name
        self.ring_width_for = getattr(method, "ring_width_for", lambda **_: 0)  # (semantic takes its baseline's ring
        self.superpixels_of = getattr(method, "superpixels_of", lambda _: None)  # step and superpixels, as without)
        self.memo: dict[str, FlowResult] = {}
        self.seconds: dict[str, float] = {}

    @staticmethod
    def key(a: np.ndarray, b: np.ndarray) -> str:
        return hashlib.blake2b(a.tobytes() + b.tobytes(), digest_size=16).hexdigest()

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **_: object) -> FlowResult:
        k = self.key(img1, img2)
        if k not in self.memo:
            start = time.perf_counter()
            self.memo[k] = self.inner.estimate(img1, img2)
            self.seconds[k] = time.perf_counter() - start
        r = self.memo[k]
        return FlowResult(r.flow.copy(), None if r.confidence is None else r.confidence.copy(), dict(r.extras))


PEAK_NOTE = ("Peak MB here is the resident memory of the one process every method runs in, at its highest while "
             "the method ran: it includes what the methods before it left resident (section flow measures each "
             "method in a process of its own: dis-medium alone 63-95 MB).")


def kind_regions(result: FlowResult) -> dict[str, np.ndarray]:
    """Regions by the semantic result's own (predicted) kinds: things (fg) / planes / stuff, bg."""
    kinds = result.extras["kinds"]
    return {"things(pred)": kinds == 2, "planes(pred)": kinds == 1, "stuff(pred)": kinds == 0,
            "bg(pred)": kinds != 2}


def run_dataset(dataset: str, root: Path, baselines: list[str], *, given_labels: bool,
                costs: list[dict[str, float]], segmenter: object = None) -> list[SampleResult]:
    results: list[SampleResult] = []
    memos = {b: Memo(get_method(b)) for b in baselines}
    semantics = {b: SemanticFlow(baseline=memos[b], segmenter=segmenter) for b in baselines}
    for ref in load_dataset(dataset, root):
        sample = ref.load()
        labels = sample.labels if given_labels else None
        for b in baselines:
            with PeakMemory() as mem:
                base = memos[b].estimate(sample.img1, sample.img2)
            base_seconds = memos[b].seconds[Memo.key(sample.img1, sample.img2)]
            with PeakMemory() as mem_s:
                sem = semantics[b].estimate(sample.img1, sample.img2, labels=labels)
            extra = {k: v for k, v in semantics[b].last_timings.items() if k != "baseline"}
            extra_total = sum(extra.values())
            costs.append({"dataset": dataset, "sample": sample.name, "baseline": b, "size": sample.img1.shape[:2],
                          "baseline_s": base_seconds, **extra, "extra_s": extra_total})
            for name, flow, seconds, peak in ((b, base.flow, base_seconds, mem.peak_mb),
                                              (f"semantic[{b}]", sem.flow, base_seconds + extra_total,
                                               max(mem.peak_mb, mem_s.peak_mb))):
                e, f, regions = score(flow, sample)
                if not given_labels:
                    for rname, mask in kind_regions(sem).items():
                        regions[rname] = {"epe": epe(flow, sample.flow, sample.valid, mask),
                                          "fl_all": fl_all(flow, sample.flow, sample.valid, mask),
                                          "pixels": int((mask & sample.valid).sum())}
                results.append(SampleResult(name, dataset, sample.name, e, f, seconds, peak, regions))
            print(f"{dataset} {sample.name} {b}: EPE {results[-2].epe:.3f} -> {results[-1].epe:.3f}, "
                  f"Fl {100 * results[-2].fl_all:.2f} -> {100 * results[-1].fl_all:.2f} %, "
                  f"baseline {base_seconds:.2f} s + semantic {extra_total:.2f} s", flush=True)
    return results


def cost_table(costs: list[dict], baselines: list[str]) -> str:
    parts = ("segmentation", "regions", "planes", "things", "compose", "rings")
    lines = ["| baseline | pairs | size | baseline s | semantic extra s | extra % | " + " | ".join(parts) + " |",
             "|" + "---|" * (6 + len(parts))]
    for b in baselines:
        for size in sorted({c["size"] for c in costs if c["baseline"] == b}, reverse=True):
            group = [c for c in costs if c["baseline"] == b and c["size"] == size]
            med = {k: statistics.median(c.get(k, 0.0) for c in group) for k in ("baseline_s", "extra_s", *parts)}
            lines.append(f"| {b} | {len(group)} | {size[1]}x{size[0]} | {med['baseline_s']:.2f} | {med['extra_s']:.2f} | "
                         f"{100 * med['extra_s'] / med['baseline_s']:.0f} | "
                         + " | ".join(f"{med[p]:.2f}" for p in parts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (middlebury/, sintel/, kitti/)")
    parser.add_argument("--baselines", nargs="+", default=["dis-medium", "discrete"])
    parser.add_argument("--synthetic", type=int, default=8, help="number of synthetic scenes")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()

    costs: list[dict] = []
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, args.synthetic, seed=1000)
        syn = run_dataset("synthetic", Path(tmp), args.baselines, given_labels=True, costs=costs)
    tables.append(("Synthetic layered scenes, given masks", syn))
    if not args.skip_real:
        segmenter = get_segmenter("camvid")  # the default segmenter (the shipped CamVid weights)
        for dataset in ("kitti", "sintel", "middlebury"):
            res = run_dataset(dataset, args.data / dataset, args.baselines, given_labels=False, costs=costs,
                              segmenter=segmenter)
            tables.append((f"{dataset}, default segmenter (camvid)", res))

    command = "python scripts/bench_semantic.py " + " ".join(sys.argv[1:])
    body = [f"## Semantic flow beside its baselines (semantic)\n\n`{command}` on {today()}; {machine()}.\n",
            "EPE in px, Fl-all and Fl per region in % (KITTI's outlier rule on every dataset). "
            "`semantic[B]` is semantic flow on top of baseline B; its s/pair includes B's time. "
            "Synthetic scenes come with exact masks (things = Car, planes = Road); on real data the regions "
            "marked (pred) are the segmenter's own predicted kinds: things(pred) is the Fl-fg-style split, "
            "bg(pred) the Fl-bg-style one. " + PEAK_NOTE + "\n"]
    for title, res in tables:
        body.append(f"### {title}\n\n{format_table(summarize(res), markdown=True)}\n")
    body.append("### Cost: where semantic's time goes (median seconds per pair)\n\n" + cost_table(costs, args.baselines)
                + "\n\nThe segmentation is the shipped CamVid network on the CPU (none with given masks); "
                  "planes = RANSAC + photometric Gauss-Newton per plane region; things = per-instance two-layer "
                  "model (sequential RANSAC, refinement, residual solve, assignment, occlusion).\n")
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("semantic", text)


if __name__ == "__main__":
    main()
