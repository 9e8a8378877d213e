"""Whether a finished run's outputs are all still there: what ``run --resume`` (and ``batch --resume``)
checks before it calls a run finished and does nothing.

A finished run's ``summary.json`` lists what it wrote (``outputs.written``: ``flo/`` and its
``NNNNNN.flo`` files, the videos, ``plot.png``, the summary). Each must still be a regular file
(``flo/`` a folder); a .flo file must have a header that fits its size. One that is missing or damaged
makes the run unfinished: resuming it computes the pairs again (a finished run keeps no work folder)
and writes every output anew. A link, or anything else that is not a regular file, in place of a
listed output is refused before any work, as for an interrupted run: nothing is written through it.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

from semflow.errors import OutputError
from semflow.io.outputs import refuse_link
from semflow.pair_records import flo_whole

__all__ = ["listed_outputs", "missing_output"]

RUN_NAMES = re.compile(r"^(summary\.json|flow\.mp4|panel\.mp4|plot\.png|flo/|flo/\d{6}\.flo)$")
"""The names a run writes in its output folder: a summary listing others (``../x``) gets nothing checked
outside the folder."""


def listed_outputs(summary: dict[str, Any]) -> list[str]:
    """The outputs a finished run's ``summary`` lists (relative names, each once, in its order):
    ``outputs.written``, the videos and the plot (all an older semflow's summary lists)."""
    outputs = summary.get("outputs")
    if not isinstance(outputs, dict):
        return []
    written = outputs.get("written")
    names = [*(written if isinstance(written, list) else []),  # every run writes the videos
             *(outputs.get(key) for key in ("flow_video", "panel_video", "plot")), "flow.mp4", "panel.mp4"]
    return [name for name in dict.fromkeys(n for n in names if isinstance(n, str)) if RUN_NAMES.match(name)]


def missing_output(out_dir: Path, summary: dict[str, Any]) -> str | None:
    """The first output ``summary`` lists that is missing from ``out_dir`` or damaged (a .flo file whose
    header does not fit its size), else None. :class:`OutputError` when a listed output is a link (or
    below one) or not a regular file (``flo/``: not a folder), whichever comes first, before any work."""
    missing = None
    for name in listed_outputs(summary):
        path = out_dir / name
        refuse_link(path, out_dir)
        try:
            mode = path.lstat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            missing = missing or name
            continue
        folder = name.endswith("/")
        if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
            raise OutputError(f"{path}: is not a {'folder' if folder else 'regular file'}, where the finished run"
                              " wrote one; semflow does not replace it (remove it or choose another --out)")
        if missing is None and name.endswith(".flo") and not flo_whole(path):
            missing = name
    return missing
