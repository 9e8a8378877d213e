"""Check and time FrameSource.frames(start) seeking (semflow/io/seek.py) on the public videos.

    python scripts/bench_seek.py ../shared/data

1. Equality: for each video under ``DATA/videos`` (``*.mp4``, ``*.avi``) and starts 0, 37, 100, 150 and
   len - 3, every frame ``FrameSource(video).frames(start)`` gives equals frame ``start + i`` of a full
   pass (compared by a digest of its bytes); says whether the start was reached by a seek. Exits 1 on a
   difference.
2. Timing: the frames of every chunk of a batch (chunks of 10 and 50 pairs, ``CHUNK_PAIRS``: a chunk at pair ``s``
   reads frames ``s .. s + pairs``, each from a fresh FrameSource as a batch worker does), decoded from
   frame 0 (seeking off) and with seeking, in one run, side by side; and one full pass (``semflow run``).
   Prints a Markdown table. ``--loop K`` adds the first mp4 played K times over (FFmpeg's stream copy,
   no re-encoding: the same keyframes), chunks of 50 pairs only: how the two grow with a clip's length.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import invoked, machine, today, write_section  # noqa: E402

import semflow.io.seek as seek  # noqa: E402
from semflow.io.video import FrameSource  # noqa: E402

CHUNK_PAIRS = (10, 50)


def digest(frame) -> str:
    return hashlib.blake2b(frame.tobytes(), digest_size=16).hexdigest() + str(frame.shape)


def check_equal(video: Path) -> tuple[int, bool]:
    """(frames, whether all starts matched), printing one line a start."""
    full = [digest(f) for f in FrameSource(video).frames(0)]
    n, good = len(full), True
    for start in sorted({0, 37, 100, 150, n - 3}):
        source = FrameSource(video)
        got = [digest(f) for f in source.frames(start)]
        same = got == full[start:]
        good &= same
        how = "seek" if source.seeked else "grab from 0"
        print(f"{video.name}: start {start:4d} ({how}): {len(got)} frames, "
              f"{'equal to the full pass' if same else 'DIFFERENT from the full pass'}")
    return n, good


def chunk_seconds(video: Path, frames: int, pairs: int, seeking: bool) -> tuple[float, int]:
    """(seconds to read every chunk's frames, chunks that seeked)."""
    saved = seek.SEEK_AFTER
    seek.SEEK_AFTER = saved if seeking else sys.maxsize
    seeked = 0
    try:
        started = time.perf_counter()
        for start in range(0, frames - 1, pairs):
            source = FrameSource(video)
            stream = source.frames(start)
            for _ in itertools.islice(stream, pairs + 1):
                pass
            stream.close()
            seeked += bool(source.seeked)
        return time.perf_counter() - started, seeked
    finally:
        seek.SEEK_AFTER = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the public data folder (with videos/)")
    parser.add_argument("--loop", type=int, default=5, help="also the first mp4 this many times over (0: not)")
    args = parser.parse_args()
    videos = sorted([*args.data.glob("videos/*.mp4"), *args.data.glob("videos/*.avi")])
    if not videos:
        print(f"no videos under {args.data / 'videos'}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        mp4 = [v for v in videos if v.suffix == ".mp4"]
        if args.loop > 1 and mp4:
            looped = Path(tmp) / f"{mp4[0].stem}_x{args.loop}.mp4"
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", str(args.loop - 1),
                            "-i", str(mp4[0]), "-map", "0:v:0", "-c", "copy", str(looped)], check=True)
            videos.append(looped)
        return report(videos, args.loop)


def report(videos: list[Path], loop: int) -> int:
    counts, good = {}, True
    for video in videos:
        counts[video], same = check_equal(video)
        good &= same
    lines = ["### Reaching a chunk's first frame: decoding from frame 0 vs a proven seek (batch-seek)", "",
             f"`{invoked()}`, {today()}, {machine()}. Both ways in one"
             " run, side by side; the machine is shared with other jobs: read ratios, not absolute times."
             f" Every start checked gave the full pass's frames ({'all equal' if good else 'NOT ALL EQUAL'}).", "",
             f"Seek from frame {seek.SEEK_AFTER} on (semflow.io.seek.SEEK_AFTER); seconds to read the frames of"
             " every chunk, each from a fresh FrameSource as a batch worker does:", "",
             "| video | frames | chunk pairs | chunks | grab from 0 s | seek s | speed-up | chunks that seeked |"
             " one full pass s |", "|---|---|---|---|---|---|---|---|---|"]
    for video in videos:
        frames = counts[video]
        started = time.perf_counter()
        for _ in FrameSource(video).frames(0):
            pass
        full = time.perf_counter() - started
        for pairs in CHUNK_PAIRS if "_x" not in video.stem else CHUNK_PAIRS[-1:]:
            chunks = len(range(0, frames - 1, pairs))
            grab, _ = chunk_seconds(video, frames, pairs, seeking=False)
            sought, seeked = chunk_seconds(video, frames, pairs, seeking=True)
            lines.append(f"| {video.name} | {frames} | {pairs} | {chunks} | {grab:.2f} | {sought:.2f} |"
                         f" {grab / sought:.1f}x | {seeked} | {full:.2f} |")
            print(lines[-1], flush=True)
    if not good:
        print("\nsome seeks gave frames other than the full pass's", file=sys.stderr)
        return 1
    write_section("batch-seek", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
