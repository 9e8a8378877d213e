"""The JSON keys the pages promise to list in full, read against the files semflow writes: every key of a
run's ``summary.json`` (docs/video-metrics.md: "every key of summary.json", README.md's table of pages) and of
``flow --explain``'s ``explain.json`` (docs/semantic.md: its boxes, then "Its other keys") is named on its page
in backticks, so that a key added to a file does not go unsaid."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import moving_frames

from semflow.io.images import write_image
from semflow.methods import get_method
from semflow.pipeline import RunOptions, run_video
from semflow.semantic_explain import write_semantic_explain
from semflow.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]
DESCRIBED = {"settings", "sharpen", "kind_codes", "model_legend", "model_colors", "seconds"}
"""Keys whose insides a page describes in words, not key by key: ``summary.json``'s ``settings`` (what
``--resume`` compares: every option, the build's versions), ``explain.json``'s ``sharpen`` (the regions of
``sharpen.json``, listed in docs/methods.md), and its maps of values to names, colours or seconds (``kind_codes``,
``model_legend``, ``model_colors``, ``seconds``: their keys are codes and stages, not fields)."""


def named_in_backticks(page: str) -> set[str]:
    """Every word in inline code on a page (`flicker`, `outputs` ... `"temporal"`), fenced blocks left out."""
    text = re.sub(r"^ *```.*?^ *```", "", (ROOT / page).read_text(encoding="utf-8"), flags=re.S | re.M)
    return {word for code in re.findall(r"`([^`]+)`", text) for word in re.findall(r"[A-Za-z_][\w-]*", code)}


def keys(value: object, skip: set[str] = frozenset()) -> set[str]:
    """The keys of a JSON value's objects, at every depth (lists looked into), but the insides of ``skip``'s."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            if key not in skip:
                found |= keys(inner, skip)
    elif isinstance(value, list):
        for inner in value:
            found |= keys(inner, skip)
    return found


def unsaid(written: set[str], page: str) -> set[str]:
    return {key for key in written if not key.isdigit()} - named_in_backticks(page)


def test_every_key_of_summary_json_is_on_its_page(tmp_path: Path) -> None:
    for k, frame in enumerate(moving_frames(3, 40, 56)):
        write_image(tmp_path / "frames" / f"{k:06d}.png", frame)
    run_video(tmp_path / "frames", tmp_path / "out", RunOptions(method="dis-fast", save_flo=True))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    written = keys(summary, DESCRIBED)
    assert {"temporal", "flicker", "outputs", "written", "settings", "stage_seconds_per_pair"} <= written
    assert unsaid(written, "docs/video-metrics.md") == set()


def test_every_key_of_explain_json_is_on_its_page(tmp_path: Path) -> None:
    scene = make_scene(96, 128, seed=2, num_objects=1, object_shift=6.0)
    result = get_method("semantic", baseline="dis-medium", sharpen=True).estimate(scene.img1, scene.img2,
                                                                                 labels=scene.labels)
    write_semantic_explain(result, tmp_path)
    written = keys(json.loads((tmp_path / "explain.json").read_text()), DESCRIBED)
    assert {"planes", "things", "motion_instances", "sharpen", "model_legend"} <= written
    assert unsaid(written, "docs/semantic.md") == set()


def test_a_key_left_unsaid_is_found() -> None:
    assert keys({"a": [{"b": 1}], "settings": {"c": {"d": 2}}}, {"c"}) == {"a", "b", "settings", "c"}
    assert unsaid({"flicker", "mode", "0", "a_new_key"}, "docs/video-metrics.md") == {"a_new_key"}
