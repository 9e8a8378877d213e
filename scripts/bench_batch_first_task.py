"""Time from a batch's start to its first task, while its driver checks many small clips.

    python scripts/bench_batch_first_task.py ../shared/data [--clips 200 1000] [--workers 2] [--against OLD_TREE [--label TEXT]]

Makes the small clips of ``bench_batch_checks.py`` (3-10 frames at 192x144, mp4v), then runs a batch of them
(``dis-ultrafast`` on a local Ray with ``--workers`` workers, in a fresh process each) and notes, in seconds
from ``results()``'s call (Ray already started): the first task sent to a worker, the last clip's check, and
the clips done by then; the batch is stopped at its first result after the last check. ``--against``: a
source tree of another semflow (the code before a change) timed the same way, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch_checks import make_clips  # noqa: E402
from benchlib import invoked, machine, today, write_section  # noqa: E402

RUN = """
import json, sys, time
from pathlib import Path
from semflow.batch import BatchOptions, runner
clips, workers = sorted(Path(sys.argv[1]).glob("*.mp4")), int(sys.argv[3])
marks = {}
checking = runner.check_clip
def check(*args):
    try:
        return checking(*args)
    finally:
        marks["checked"] = time.perf_counter()
runner.check_clip = check
def first(send):
    def sent(*args):
        marks.setdefault("first_task", time.perf_counter())
        return send(*args)
    return sent
if hasattr(runner, "send"):
    runner.send = first(runner.send)
else:  # (the driver before tasks went out during its checks)
    runner.Batch._send = first(runner.Batch._send)
options = BatchOptions(method="dis-ultrafast", workers=workers, progress=False, max_side=160)
with runner.Batch(sys.argv[2], options) as batch:
    batch.submit(clips)
    start, done = time.perf_counter(), 0
    for result in batch.results():
        if "last" not in marks and marks.get("checked", 0) and len(batch.clips) == sum(c.prepared for c in batch.clips):
            marks["last"], marks["done_by_last"] = marks["checked"], done
        done += 1
        if "last" in marks:
            break
print(json.dumps({"first_task": marks["first_task"] - start, "last_check": marks["last"] - start,
                  "done_by_last_check": marks["done_by_last"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--clips", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--against", type=Path, help="a source tree of the semflow to compare with")
    parser.add_argument("--label", help="what --against is, for the table (e.g. 'before (0bea858)')")
    args = parser.parse_args()
    trees = {"this": Path(__file__).resolve().parents[1], **({"against": args.against.resolve()} if args.against else {})}
    rows = []
    for count in args.clips:
        with tempfile.TemporaryDirectory(prefix="semflow-first-task-") as tmp:
            folder = Path(tmp) / "clips"
            folder.mkdir()
            make_clips(args.data / "videos" / "vtest.avi", folder, count)
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                done = subprocess.run([sys.executable, "-c", RUN, str(folder), str(Path(tmp) / f"out-{name}"),
                                       str(args.workers)], check=True, capture_output=True, text=True, env=env,
                                      cwd=tmp)  # (not the repository: its semflow would come first on sys.path)
                got = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(f"| {count} | {name if name == 'this' else args.label or args.against} | {got['first_task']:.2f} |"
                            f" {got['last_check']:.2f} | {got['done_by_last_check']} |")
                print(rows[-1], flush=True)
    body = "\n".join([
        "### A batch's first task while its driver checks small clips (batch-first-task)",
        "",
        f"`{invoked()}`, {today()}, {machine()}. dis-ultrafast, {args.workers} workers on a local Ray (started"
        " before the clock); clips of 3-10 frames (192x144, mp4v) from vtest.avi. Seconds from `results()`'s"
        " call; one run each. The driver's checks share the machine's cores with the workers (on a cluster the"
        " workers are elsewhere), so the last check comes later than with every check first.",
        "",
        "| clips | code | first task s | last clip checked s | clips done by then |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    write_section("batch-first-task", body)


if __name__ == "__main__":
    main()
