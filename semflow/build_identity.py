"""What a run's flows are made by: semflow's own code and the libraries that compute them.

A resumed run must be made by the build that made the run it continues (:func:`build_identity` is part of
:meth:`~semflow.run_options.RunOptions.fingerprint`): two builds' flows may differ (a change to how DIS pads
small frames moved their flows by up to 0.15 px), and a resume would join them in one clip without a word.
``__version__`` does not change with every change, so the code is named by a digest of the package's files.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

FLOW_LIBRARIES = ("numpy", "opencv-contrib-python-headless", "pillow", "torch", "torchvision", "kornia", "scipy",
                  "scikit-image", "PyMaxflow", "flow_vis")
"""The libraries whose versions decide a run's flows (decoding, computing, drawing)."""


@functools.cache
def build_identity() -> dict[str, str]:
    """``{"semflow": "VERSION+DIGEST", LIBRARY: VERSION, ...}``: semflow's version and a digest (16 hex
    digits of SHA-256) of its package's ``.py`` and ``.json`` files, and each of :data:`FLOW_LIBRARIES`'
    installed version (``none`` when it is not installed). Once a process (a few milliseconds)."""
    from semflow import __version__

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".json") and "__pycache__" not in path.parts and path.is_file():
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    identity = {"semflow": f"{__version__}+{digest.hexdigest()[:16]}"}
    for name in FLOW_LIBRARIES:
        try:
            identity[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            identity[name] = "none"
    return identity


def build_difference(before: object, now: dict[str, str]) -> str:
    """What differs between the build ``before`` (as recorded) and ``now``, in a few words."""
    if not isinstance(before, dict):
        return "not recorded as this semflow records it"
    names = [name for name in now if before.get(name) != now[name]] + [name for name in before if name not in now]
    return ", ".join(f"{name} {before.get(name, 'none')} -> {now.get(name, 'none')}" for name in names[:4]) + \
        (f", and {len(names) - 4} more" if len(names) > 4 else "")
