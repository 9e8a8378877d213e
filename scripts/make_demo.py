"""Make the demo clip ``assets/demo.mp4`` from two scikit-image sample photos.

The background is scikit-image's ``rocket`` (public domain, SpaceX) panned and slowly zoomed; in front
of it an elliptic cut-out of ``chelsea`` (CC0, Stefan van der Walt) walks the other way. Both images
ship inside the scikit-image package that semflow installs; see assets/LICENSE.md.

    python scripts/make_demo.py            # writes assets/demo.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from semflow.io.video import VideoWriter
from semflow.synthetic import SceneObject, render_sequence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "demo.mp4")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=320)
    args = parser.parse_args()

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
