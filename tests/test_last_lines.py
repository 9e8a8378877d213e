"""Each command's last line says where it wrote what it wrote, as ``run`` and ``batch`` do (``-> DIR``):
``flow --explain DIR`` names the folder and ``segment --overlay`` the overlays (a folder for images, an
``overlay.mp4`` per video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from semflow.cli import main
from semflow.io.images import write_image


def last_line(*args: str | Path) -> str:
    """The last line ``semflow ARGS`` prints on stdout (it must succeed)."""
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_flow_explain_names_its_folder_and_how_many_files_it_wrote(pair, tmp_path: Path) -> None:
    explain = tmp_path / "ex"
    line = last_line("flow", *pair, "-o", tmp_path / "ab.flo", "--method", "dis-fast", "--explain", explain)
    written = sorted(explain.iterdir())
    assert written and f"; {explain}/ ({len(written)} files)" in line, line


def test_segment_overlay_names_the_overlay_folder_and_each_videos_mp4(pair, make_video, tmp_path: Path) -> None:
    write_image(tmp_path / "lbl.png", np.full((48, 64), 3, np.uint8))  # given masks: no model to load
    make_video(2, name="v.mp4")
    make_video(2, name="w.mp4", seed=1)
    masks = ("--backend", f"masks:{tmp_path / 'lbl.png'}")
    out = tmp_path / "out"
    line = last_line("segment", pair[0], "--out", out, "--overlay", *masks)
    assert line.endswith(f"; overlays: {out / 'overlay'}/") and (out / "overlay" / "a.png").is_file(), line
    line = last_line("segment", tmp_path / "v.mp4", tmp_path / "w.mp4", "--out", out, "--overlay", *masks)
    mp4s = [out / "v" / "overlay.mp4", out / "w" / "overlay.mp4"]
    assert line.endswith(f"; overlays: {mp4s[0]}, {mp4s[1]}") and all(p.is_file() for p in mp4s), line
    assert "overlays" not in last_line("segment", pair[0], "--out", tmp_path / "plain", *masks)


def test_segment_overlay_names_where_the_run_it_planned_put_them(pair, tmp_path: Path, monkeypatch) -> None:
    """segment --overlay planned its inputs again after the run to name the overlays' places: an input gone
    meanwhile (moved away once segmented) failed the finished run with "no such file" and no last line."""
    import shutil

    import semflow.segmentation.segment as segment

    write_image(tmp_path / "lbl.png", np.full((48, 64), 3, np.uint8))
    image, out, segment_inputs = shutil.copy(pair[0], tmp_path / "taken.png"), tmp_path / "out", segment.segment_inputs

    def then_moved_away(*args, **kwargs):
        written = segment_inputs(*args, **kwargs)
        Path(image).unlink()
        return written

    monkeypatch.setattr(segment, "segment_inputs", then_moved_away)
    line = last_line("segment", image, "--out", out, "--overlay", "--backend", f"masks:{tmp_path / 'lbl.png'}")
    assert line.endswith(f"; overlays: {out / 'overlay'}/") and (out / "overlay" / "taken.png").is_file(), line
