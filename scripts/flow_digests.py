"""Digests of every method's flow on the evaluation pairs: a check that a refactor changed nothing.

    python scripts/flow_digests.py ../shared/data --out before.json     # on the old tree
    python scripts/flow_digests.py ../shared/data --out after.json --against before.json
    python scripts/flow_digests.py ../shared/data --load after.json --against before.json --section refactor-check

For each dataset sample (Middlebury, Sintel, KITTI, FlyingChairs, the 8 synthetic scenes of the
benchmarks) and each method, a BLAKE2 digest of the flow's bytes and of the extra maps a method
returns (semantic: labels, model map, occlusion...). ``--against`` lists every digest that differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib

from semflow.io.datasets import load_dataset
from semflow.methods import get_method
from semflow.synthetic import write_dataset

DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}
METHODS = {
    "dis-medium": ("dis-medium", {}),
    "deepflow": ("deepflow", {}),
    "discrete": ("discrete", {}),
    "discrete-fast": ("discrete", {"preset": "fast"}),
    "semantic": ("semantic", {}),
    "semantic-dis": ("semantic", {"baseline": "dis-medium"}),
}


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.blake2b(array.tobytes(), digest_size=12).hexdigest() + f"{array.dtype}{array.shape}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--against", type=Path, default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--load", type=Path, default=None, help="compare digests computed earlier instead")
    parser.add_argument("--section", default=None, help="also write the comparison to this BENCHMARKS.md section")
    args = parser.parse_args()
    if args.load:
        compare(json.loads(args.load.read_text()), args)
        return
    synthetic = Path(tempfile.mkdtemp(prefix="semflow-digests-"))
    write_dataset(synthetic, count=8, seed=7)
    roots = {name: args.data / folder for name, folder in DATASETS.items()} | {"synthetic": synthetic}
    built = {key: get_method(METHODS[key][0], **METHODS[key][1]) for key in args.methods.split(",")}
    out: dict[str, dict[str, str]] = {}
    for dataset, root in roots.items():
        for ref in load_dataset(dataset, root):
            sample = ref.load()
            for key, method in built.items():
                result = method.estimate(sample.img1, sample.img2, labels=sample.labels)
                entry = {"flow": digest(result.flow)}
                for name, extra in sorted(result.extras.items()):
                    if name != "report_json":
                        entry[name] = digest(np.asarray(extra))
                out[f"{dataset}/{sample.name}/{key}"] = entry
                print(dataset, sample.name, key, entry["flow"], flush=True)
    args.out.write_text(json.dumps(out, indent=1, sort_keys=True))
    if args.against:
        compare(out, args)


def compare(out: dict[str, dict[str, str]], args: argparse.Namespace) -> None:
    """Print (and with --section write) which digests differ from ``--against``; exit 1 if any does."""
    before = json.loads(args.against.read_text())
    differ = [f"{k}:{name}" for k, entry in out.items() for name, value in entry.items()
              if before.get(k, {}).get(name) != value]
    methods = sorted({k.rsplit("/", 1)[1] for k in out})
    missing = [k for k in before if k not in out and k.rsplit("/", 1)[1] in methods]
    maps = sum(len(entry) for entry in out.values())
    summary = (f"{len(out)} results ({len(methods)} methods: {', '.join(methods)}; {maps} arrays: flows and extra "
               f"maps), {len(differ)} digests differ, {len(missing)} missing")
    print(summary)
    for line in differ + missing:
        print("  ", line)
    if args.section:
        from benchlib import today, write_section

        command = "python scripts/flow_digests.py " + " ".join(sys.argv[1:])
        write_section(args.section, "\n".join([
            "## Refactor check: flows bit-identical", "",
            f"`{command}` on {today()}, against digests made from the code before the change. Every method's "
            "flow and extra maps (semantic: labels, kinds, instances, model map, occlusion, layers, baseline "
            "flow) on the 22 evaluation pairs (Middlebury 8, Sintel clean+final 2, KITTI 1, Chairs 3, "
            "synthetic 8):", "", f"**{summary}**.", *(f"- {line}" for line in differ + missing)]))
    sys.exit(1 if differ or missing else 0)


if __name__ == "__main__":
    main()
