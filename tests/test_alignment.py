"""Outputs must not depend on where numpy puts a buffer (the alignment probe): OpenCV's magnitude picks a
SIMD or a scalar path by its output's alignment (mod 32 bytes), and the two round some values apart."""

from __future__ import annotations

import re
from pathlib import Path

import semflow

_CALL = re.compile(r"cv2\.magnitude\(")


def test_no_cv2_magnitude_call() -> None:
    """cv2.magnitude made two identical runs differ (flowvideo's decoded flows); warp.length is its exact
    replacement. A call brought back (not a mention in a docstring) fails here."""
    root = Path(semflow.__file__).parent
    calls = [f"{path.relative_to(root)}:{number}" for path in sorted(root.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if _CALL.search(line)]
    assert not calls, f"cv2.magnitude's last bit depends on its buffers' alignment; use semflow.warp.length: {calls}"
