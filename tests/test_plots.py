"""``semflow.plots.write_plot``: the per-pair plot of ``semflow run``."""

from __future__ import annotations

import warnings
from pathlib import Path

from semflow.io.images import read_image
from semflow.plots import write_plot


def test_a_clip_name_the_font_cannot_draw_gives_no_warning_on_stderr(tmp_path: Path) -> None:
    # A folder named "uni é 🚗" made matplotlib print a two-line UserWarning under the run's result line.
    pairs = [{"magnitude": 1.0 + i, "flicker": 0.1 * i, "seconds": 0.5} for i in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = write_plot(tmp_path / "plot.png", pairs, title="semantic, uni é 🚗")
    assert [str(w.message) for w in caught] == []
    image = read_image(written)
    assert image.shape == (520, 640, 3) and image.std() > 0  # drawn: not a blank page


def test_a_clip_name_that_is_not_utf8_is_drawn(tmp_path: Path) -> None:
    """A folder named b"bad\\xff" (a surrogate in Python's str) was a matplotlib TypeError: `run` ended in a
    traceback with its flow videos written and no plot.png, summary.json or clean work folder."""
    pairs = [{"magnitude": 1.0 + i, "flicker": 0.1 * i, "seconds": 0.5} for i in range(3)]
    written = write_plot(tmp_path / "plot.png", pairs, title="dis-fast, bad\udcff")
    assert read_image(written).std() > 0


def test_a_config_folder_matplotlib_cannot_write_leaves_the_terminal_quiet(tmp_path: Path) -> None:
    """As a service user (HOME=/nonexistent) importing matplotlib printed "mkdir -p failed ..." and "Matplotlib
    created a temporary cache directory ..." above `run`'s result line; the plot itself was fine."""
    import os
    import subprocess
    import sys

    blocked = tmp_path / "file"
    blocked.write_text("")  # a folder under a file cannot be made, even by root
    code = ("from semflow.plots import write_plot; "
            f"write_plot({str(tmp_path / 'plot.png')!r}, [{{'magnitude': 1.0, 'seconds': 0.5}}] * 3)")
    env = {**os.environ, "MPLCONFIGDIR": str(blocked / "mpl"), "HOME": str(blocked), "XDG_CONFIG_HOME": str(blocked),
           "XDG_CACHE_HOME": str(blocked)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert read_image(tmp_path / "plot.png").std() > 0


def test_one_pair_has_whole_pair_numbers_and_a_long_title_wraps() -> None:
    """One pair's plot read pair numbers -0.04 .. 0.04; a long clip name was cut at both ends; the flicker
    legend sat upper right over the last pairs' points."""
    from semflow.plots import plot_figure

    for count in (1, 2, 7):
        fig = plot_figure([{"magnitude": 1.0 + i, "flicker": 0.1 * i, "seconds": 0.5} for i in range(count)])
        fig.canvas.draw()
        low, high = fig.axes[-1].get_xlim()
        shown = [t for t in fig.axes[-1].get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown) and 0 in shown, (count, shown)
    title = "semantic, " + "a-very-long-clip-name-" * 8
    fig = plot_figure([{"magnitude": 1.0, "seconds": 0.5}] * 3, title=title)
    text = fig._suptitle.get_text()
    assert "\n" in text and all(len(line) <= 70 for line in text.split("\n"))
    assert "".join(text.split()) == "".join(title.split())  # every character kept


def test_a_cjk_clip_name_is_drawn_in_a_font_that_has_it_or_as_ascii_escapes_not_boxes() -> None:
    """A clip named 東京の街 drew four boxes in plot.png's title (DejaVu Sans has no CJK; no installed font
    here has all four), with a "Glyph missing" warning whoever saved the figure. Its title now reads
    \\u6771... where no font has the characters, and a character another font has (⌚, in matplotlib's own
    STIXGeneral) is drawn in that font."""
    import io

    from semflow.plots import plot_figure

    pairs = [{"magnitude": 1.0 + i, "flicker": 0.1 * i, "seconds": 0.5} for i in range(3)]
    for title in ("semantic, 東京の街 café.mp4", "semantic, clock ⌚ café.mp4"):
        fig = plot_figure(pairs, title=title)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no filter of write_plot's here: the figure itself draws cleanly)
            fig.savefig(io.BytesIO(), format="png")
    from semflow.plots import drawable_title

    text, families = drawable_title("semantic, 東京の街 café.mp4")
    assert text == "semantic, \\u6771\\u4eac\\u306e\\u8857 café.mp4"  # (é kept)
    text, families = drawable_title("semantic, clock ⌚ café.mp4")
    assert text == "semantic, clock ⌚ café.mp4" and families[1:] == ["STIXGeneral"]


def test_a_title_the_default_font_draws_keeps_that_font_alone_and_its_control_characters() -> None:
    """A title with no character missing from the default font is drawn in it alone (no other font asked);
    a tab or a bell, which no font draws, is left for the layout as it is, not written as an escape."""
    from semflow.plots import drawable_title

    text, families = drawable_title("dis-fast, clip 1")
    assert text == "dis-fast, clip 1" and len(families) == 1
    assert drawable_title("a\tb\x07c") == ("a\tb\x07c", families)


def test_write_plot_hides_the_missing_glyph_warning_only(monkeypatch, tmp_path: Path) -> None:
    """A glyph no font has (a control character in a clip's name) gives no warning on a run's terminal;
    any other warning matplotlib gives while saving still reaches the caller."""
    import semflow.plots

    pairs = [{"magnitude": 1.0 + i, "seconds": 0.5} for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_plot(tmp_path / "bell.png", pairs, title="clip\x07name")

    class Figure:
        def savefig(self, path, format: str) -> None:
            warnings.warn("something else went wrong", UserWarning, stacklevel=1)
            Path(path).write_bytes(b"png")

    monkeypatch.setattr(semflow.plots, "plot_figure", lambda pairs, title: Figure())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_plot(tmp_path / "other.png", pairs)
    assert [str(w.message) for w in caught] == ["something else went wrong"]


def test_a_clip_name_with_dollar_signs_is_its_title_as_written_not_mathtext(tmp_path: Path) -> None:
    """matplotlib reads text between two $ as mathtext: a clip named clip$_$.mp4 made `semflow run` end, its
    pairs computed and its videos written, in a ValueError traceback from the parser; a$b$.mp4 lost its $."""
    from semflow.plots import plot_figure

    for name in ("clip$_$.mp4", "x$\\frac$.mp4", "a$b$.mp4"):
        write_plot(tmp_path / "plot.png", [{"magnitude": 1.0, "seconds": 0.5}] * 2, title=f"dis-fast, {name}")
        fig = plot_figure([{"magnitude": 1.0, "seconds": 0.5}] * 2, title=f"dis-fast, {name}")
        title = fig._suptitle
        assert title.get_text() == f"dis-fast, {name}" and not title._preprocess_math(title.get_text())[1]  # (not math)


def test_an_empty_panel_says_why_it_is_empty() -> None:
    """An empty panel read "n/a (resumed or one pair)", but a resumed run measures every pair: only a clip of
    one pair has no flicker; a caller's pairs without a number (no seconds) leave that panel unmeasured."""
    from semflow.plots import plot_figure

    def empty_text(pairs: list[dict], panel: int) -> str:
        return " ".join(t.get_text() for t in plot_figure(pairs).axes[panel].texts)

    assert empty_text([{"magnitude": 1.0, "seconds": 0.5}], 1) == "n/a (one pair)"
    assert empty_text([{"magnitude": 1.0, "seconds": 0.5}] * 3, 1) == "n/a (not measured)"
    assert empty_text([{"magnitude": 1.0, "flicker": 0.1}] * 3, 2) == "n/a (not measured)"
    assert empty_text([{"magnitude": 1.0, "flicker": 0.1, "seconds": 0.5}] * 3, 1) == ""
