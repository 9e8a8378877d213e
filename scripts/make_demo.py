"""Make the demo clips in ``assets/`` (sources and licences: assets/LICENSE.md).

``assets/street.mp4`` (the README's demo): a short cut of OpenCV's sample video ``vtest.avi``
(pedestrians on a campus road, fixed camera), a scene the shipped road-scene segmenter understands and
where semantic flow visibly helps (walking people keep their own motion, without the baseline's halo).
It is taken from Debian's ``opencv-doc`` package (Apache-2.0 AND BSD-3-Clause), never from a copy
elsewhere: give the installed file, or the downloaded ``.deb``, which is unpacked to a temporary folder::

    apt-get download opencv-doc                                  # or: apt-get install opencv-doc
    python scripts/make_demo.py street --source opencv-doc_*.deb  # or the installed
                                                                 # /usr/share/doc/opencv-doc/examples/data/vtest.avi

``assets/demo.mp4``: the synthetic clip. The background is scikit-image's ``rocket`` (public domain,
SpaceX) panned and slowly zoomed; in front of it an elliptic cut-out of ``chelsea`` (CC0, Stefan van
der Walt) walks the other way. Both images ship inside the scikit-image package that semflow installs::

    python scripts/make_demo.py            # writes assets/demo.mp4 (same as `make_demo.py synthetic`)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from semflow.io.video import VideoWriter
from semflow.synthetic import SceneObject, render_sequence

ASSETS = Path(__file__).resolve().parents[1] / "assets"
INSTALLED_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_IN_DEB = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
COPYRIGHT_IN_DEB = "./usr/share/doc/opencv-doc/copyright"


def _vtest_from(source: Path, tmp: Path) -> tuple[Path, Path]:
    """(vtest.avi, the package's copyright file): installed ones beside ``source``, or unpacked from an
    opencv-doc ``.deb`` into ``tmp``."""
    if source.suffix != ".deb":
        return source, source.parents[2] / "copyright"
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(source)], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp), VTEST_IN_DEB, COPYRIGHT_IN_DEB], input=tar, check=True)
    return tmp / VTEST_IN_DEB, tmp / COPYRIGHT_IN_DEB


def make_street(source: Path, out: Path, *, start: int, frames: int, width: int) -> None:
    """Frames ``start`` .. ``start + frames - 1`` of vtest.avi, shrunk to ``width`` px wide, as H.264;
    beside it ``<out stem>-COPYRIGHT.txt``, the opencv-doc package's copyright and licence file."""
    from semflow.io.video import FrameSource

    if not source.exists():
        sys.exit(f"{source}: not found; get it with `apt-get download opencv-doc` (then pass the .deb) "
                 f"or `apt-get install opencv-doc` ({INSTALLED_VTEST})")
    with tempfile.TemporaryDirectory() as tmp:
        vtest, copyright_file = _vtest_from(source, Path(tmp))
        out.with_name(f"{out.stem}-COPYRIGHT.txt").write_text(
            f"{out.name}: frames {start}-{start + frames - 1} of vtest.avi from Debian's opencv-doc package, whose"
            " copyright file follows (vtest.avi falls under 'Files: *').\n\n" + copyright_file.read_text())
        video = FrameSource(vtest, max_frames=start + frames)
        with VideoWriter(out, fps=video.fps) as writer:
            for index, frame in enumerate(video):
                if index >= start:
                    height = round(frame.shape[0] * width / frame.shape[1] / 2) * 2
                    writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    print(f"{out}: {writer.frames} frames, {width}x{height}, {out.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", choices=("synthetic", "street"), default="synthetic")
    parser.add_argument("--out", type=Path, default=None, help="default: assets/demo.mp4 or assets/street.mp4")
    parser.add_argument("--source", type=Path, default=INSTALLED_VTEST, help="street: vtest.avi or opencv-doc .deb")
    parser.add_argument("--start", type=int, default=300, help="street: first frame of the cut")
    parser.add_argument("--frames", type=int, default=None, help="default: 24 (synthetic), 25 (street)")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=320, help="synthetic only (street keeps its aspect)")
    args = parser.parse_args()
    if args.clip == "street":
        make_street(args.source, args.out or ASSETS / "street.mp4", start=args.start, frames=args.frames or 25,
                    width=args.width)
        return
    args.out = args.out or ASSETS / "demo.mp4"
    args.frames = args.frames or 24

    w, h = args.width, args.height
    background = cv2.resize(skimage.data.rocket(), (int(w * 1.6), int(h * 1.6)), interpolation=cv2.INTER_AREA)
    # Camera: pan 3 px/frame to the right (scene moves left) with a 0.4% zoom per frame about the centre.
    zoom = 1.004
    c = np.array([w / 2, h / 2])
    camera = np.array([[zoom, 0, (1 - zoom) * c[0] - 3.0], [0, zoom, (1 - zoom) * c[1]], [0, 0, 1]])
    cat = skimage.data.chelsea()
    center = (w * 0.3, h * 0.62)
    axes = (w * 0.13, h * 0.2)
    cat_tex = np.zeros((h, w, 3), np.uint8)
    crop = cv2.resize(cat[40:260, 120:330], (int(2 * axes[0]) + 8, int(2 * axes[1]) + 8))
    x0, y0 = int(center[0] - axes[0]) - 4, int(center[1] - axes[1]) - 4
    cat_tex[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    walk = cv2.getRotationMatrix2D(center, 0.6, 1.0)
    walk[:, 2] += (5.0, -0.8)
    frames = render_sequence(background, camera, [(SceneObject(center, axes, walk), cat_tex)],
                             frames=args.frames, height=h, width=w, origin=(w * 0.3, h * 0.3))
    with VideoWriter(args.out, fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    print(f"{args.out}: {len(frames)} frames, {w}x{h}")


if __name__ == "__main__":
    main()
