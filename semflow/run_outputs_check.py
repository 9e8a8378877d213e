"""What ``run --resume`` (and ``batch --resume``) checks of the earlier run in a folder: that it had the
same settings and video (:func:`refuse_other_settings`, for a finished or an interrupted run), and the
same chunks for an interrupted batch's clip (:func:`refuse_other_chunks`); and, before it calls a finished
run done and does nothing, that its outputs are all still there.

A finished run's ``summary.json`` lists what it wrote (``outputs.written``: ``flo/`` and its
``NNNNNN.flo`` files, the videos, ``plot.png``, the summary). Each must still be a regular file
(``flo/`` a folder); a .flo file must have a header that fits its size. One that is missing or damaged
makes the run unfinished: resuming it computes the pairs again (a finished run keeps no work folder)
and writes every output anew. A link, or anything else that is not a regular file, in place of a
listed output is refused before any work, as for an interrupted run: nothing is written through it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from semflow.build_identity import build_difference
from semflow.errors import InputError, OutputError
from semflow.io.outputs import RUN_NAMES, refuse_link
from semflow.pair_records import flo_whole

__all__ = ["chunk_starts", "listed_outputs", "missing_output", "refuse_other_chunks", "refuse_other_settings"]



def listed_outputs(summary: dict[str, Any]) -> list[str]:
    """The outputs a finished run's ``summary`` lists (relative names, each once, in its order):
    ``outputs.written``, the videos and the plot (all an older semflow's summary lists)."""
    outputs = summary.get("outputs")  # (only the names a run writes: a summary listing ../x gets nothing checked)
    if not isinstance(outputs, dict):
        return []
    written = outputs.get("written")
    names = [*(written if isinstance(written, list) else []),  # every run writes the videos
             *(outputs.get(key) for key in ("flow_video", "panel_video", "plot")), "flow.mp4", "panel.mp4"]
    return [name for name in dict.fromkeys(n for n in names if isinstance(n, str)) if RUN_NAMES.match(name)]


def missing_output(out_dir: Path, summary: dict[str, Any]) -> str | None:
    """The first output ``summary`` lists that is missing from ``out_dir`` or damaged (a .flo file whose
    header does not fit its size, or declares another size than the summary's ``resolution``), else None. :class:`OutputError` when a listed output is a link (or
    below one) or not a regular file (``flo/``: not a folder), whichever comes first, before any work."""
    missing, size = None, summary.get("resolution")  # ([w, h]; not as a run writes it: not compared)
    shape = size[::-1] if isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size) else None
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
        if missing is None and name.endswith(".flo") and not flo_whole(path, shape):
            missing = name
    return missing


def refuse_other_settings(out_dir: Path, before: Any, fingerprint: dict[str, Any]) -> None:
    """InputError, saying what differs, unless the earlier run in ``out_dir`` had ``fingerprint`` too."""
    before = before if isinstance(before, dict) else {}
    if before == fingerprint:
        return
    if "build" in fingerprint and "build" not in before:  # (and so every setting it did not record)
        raise InputError(f"{out_dir}: cannot resume, the earlier run was made by an older semflow (it did not record"
                         " the build that computed its flows); run it afresh, without --resume")
    if "build" in fingerprint and before["build"] != fingerprint["build"]:
        raise InputError(f"{out_dir}: cannot resume, the earlier run was made by another build ("
                         + build_difference(before["build"], fingerprint["build"]) + "): its flows may differ from this"
                         " one's; run it afresh, without --resume")
    changed = sorted(k for k in fingerprint if before.get(k) != fingerprint[k])
    if changed == ["video_identity"] and before.get("video_identity") is not None:
        raise InputError(f"{out_dir}: cannot resume, {fingerprint.get('video')} changed since the earlier run"
                         " (its size or modification time); run it afresh, without --resume")
    earlier = before.get("inputs") if isinstance(before.get("inputs"), dict) else {}
    gone = [f"--{k.replace('_', '-')} {v[0]}" for k, v in sorted(earlier.items())
            if isinstance(v, list) and v and isinstance(v[0], str) and not os.path.exists(v[0])]
    if gone:
        raise InputError(f"{out_dir}: cannot resume, {', '.join(gone)}, which the earlier run read, is gone;"
                         " run it afresh, without --resume")
    names = sorted(k for k, v in fingerprint.get("inputs", {}).items() if earlier.get(k) != v)
    if changed == ["inputs"] and isinstance(before.get("inputs"), dict) and names:
        files = ", ".join(f"--{k.replace('_', '-')} {fingerprint['inputs'][k][0]}" for k in names)
        raise InputError(f"{out_dir}: cannot resume, {files} changed since the earlier run (its size or"
                         " modification time); run it afresh, without --resume")
    if changed and all(key not in before for key in changed):  # settings this semflow records and that one did not
        raise InputError(f"{out_dir}: cannot resume, the earlier run was made by an older semflow"
                         " (it did not record " + ", ".join(changed) + "); run it afresh, without --resume")
    if extra := sorted(key for key in before if key not in fingerprint):  # (it said "did not record " of none)
        raise InputError(f"{out_dir}: cannot resume, the earlier run was made by a newer semflow (it recorded"
                         f" {', '.join(map(str, extra[:4]))}, which this one does not); run it afresh, without --resume")
    if "video" in changed:  # (its size and time are the video's: not said beside it)
        changed = [key for key in changed if key != "video_identity"]
    if "method_options" in changed:  # (a method option's file: said once, as the option)
        changed = [key for key in changed if key != "inputs"]
    said = ", ".join(_change(key, before.get(key), fingerprint[key]) for key in changed) or "format"
    raise InputError(f"{out_dir}: cannot resume, the earlier run used other settings ({said}); give the same"
                     " ones, or run it afresh without --resume")


def _change(key: str, before: Any, now: Any, *, options: bool = False) -> str:
    """The option ``key`` stands for and what it was and is (the method's options and input files each by its
    own), where that is short: ``--max-side 240 -> (none)``, ``--save-flo on -> off``."""
    if key in ("method_options", "inputs") and isinstance(before, dict) and isinstance(now, dict):
        keys = [k for k in {**before, **now} if before.get(k) != now.get(k)]
        return ", ".join(_change(k, before.get(k), now.get(k), options=True) for k in keys[:4])
    names = {"video": "the video", "video_identity": "the video's size or modification time"}
    name = names.get(key, "--" + key.replace("_", "-")) if not options else "--" + key.replace("_", "-")
    if key == "video_identity" or not all(v is None or isinstance(v, (bool, int, float, str)) for v in (before, now)):
        return name  # (a file's stamp, a table: named only)
    shown = ["(none)" if v is None else ("on" if v else "off") if isinstance(v, bool) else v if isinstance(v, str)
             else str(v) for v in (before, now)]
    return name if max(map(len, shown)) > 40 else f"{name} {shown[0]} -> {shown[1]}"


def chunk_starts(pairs: int, chunks: list[int] | None) -> np.ndarray:
    """For each of a clip's ``pairs`` (estimated) pairs, the pair at which the video state that computes it
    starts afresh: with ``chunks`` ``[chunk_pairs, warmup_pairs]`` (a batch's) its chunk's first pair less the
    warm-up (:func:`semflow.batch.work.chunk_origins`), with None (``semflow run``'s one pass) frame 0."""
    index = np.arange(max(pairs, 1))
    if chunks is None:
        return np.zeros_like(index)
    return np.maximum(index // chunks[0] * chunks[0] - chunks[1], 0)


def refuse_other_chunks(out_dir: Path, before: Any, now: list[int] | None, pairs: int) -> None:
    """InputError unless the pairs kept in ``out_dir``, computed in ``before``'s chunks (``[chunk_pairs,
    warmup_pairs]`` of a batch, None: one pass, a run's), start their video states where ``now``'s would for
    each of the clip's ``pairs``: in video mode the rest of the clip, and the pairs its drawing computes again,
    follow ``now``, and would mix two plans (a pair drawn other than it was computed and kept)."""
    if before is not None and not (isinstance(before, list) and len(before) == 2 and all(type(n) is int for n in before)
                                   and before[0] >= 1 and before[1] >= 0):
        raise InputError(f"{out_dir}: cannot resume, its work folder is damaged (.semflow-work/state.json);"
                         " run it again without --resume")
    if np.array_equal(chunk_starts(pairs, before), chunk_starts(pairs, now)):
        return

    def plan(chunks: list[int]) -> str:
        return f"--chunk-pairs {chunks[0]} --warmup-pairs {chunks[1]}"

    if before is None:
        said = (f"its pairs were computed in one pass, as `semflow run` computes them, and this batch's chunks"
                f" ({plan(now)}) start their video states elsewhere; resume it with `semflow run --resume`")
    elif now is None:
        said = (f"a batch computed its pairs in chunks ({plan(before)}), each starting its video state afresh;"
                " resume it with `semflow batch --resume` and those options")
    else:
        said = (f"the earlier batch computed its pairs with {plan(before)}, not {plan(now)}, and a chunk starts its"
                " video state afresh; give the same ones")
    raise InputError(f"{out_dir}: cannot resume, {said}, or run it afresh without --resume")
