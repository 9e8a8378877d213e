"""A small PNG plot of a clip's per-pair numbers: mean flow magnitude, flicker and seconds per pair.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works on
machines without a display and does not disturb a caller's own matplotlib settings.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semflow.errors import signals_held
from semflow.io.atomic import atomic_path


@contextlib.contextmanager
def _quiet_matplotlib_import() -> Iterator[None]:
    """Importing matplotlib logs warnings to stderr when its config folder cannot be written (a service user's
    HOME=/nonexistent: "mkdir -p failed ...", "Matplotlib created a temporary cache directory ..."); it
    then works from a temporary folder, so they are kept off a run's terminal. The logger's level is put back."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _series(pairs: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pair's index and its ``key``, NaN where it has none (a gap in the line)."""
    # A TemporalMeter's rows give a column at once (no dict, no Python number made for each pair).
    if hasattr(pairs, "array"):
        values = pairs.array(key)
    else:
        values = np.array([np.nan if row.get(key) is None else float(row[key]) for row in pairs], np.float64)
    return np.arange(len(values)), values


def write_plot(path: str | os.PathLike, pairs: Sequence[dict], *, title: str = "") -> Path:
    """Write ``path`` (PNG, about 640x520 px): one panel each for ``magnitude`` (px), ``flicker`` and
    ``warped_flicker`` (px) and ``seconds`` per pair, over the pair index. ``pairs``: one dict per pair
    as :class:`semflow.temporal.TemporalMeter` collects them; missing values are left out."""
    fig = plot_figure(pairs, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # (a glyph no installed font has, in a label or the legend: a box, not a warning on a run's terminal)
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
        fig.savefig(tmp, format="png")
    return path


def plot_figure(pairs: Sequence[dict], *, title: str = "") -> Any:
    """The matplotlib Figure :func:`write_plot` draws (Agg canvas). The x axis holds the pairs' whole
    numbers only (one pair: 0); a panel's legend goes where it hides the fewest points; a long title wraps."""
    with _quiet_matplotlib_import(), signals_held():  # (a signal inside its C extensions' loading aborted Python)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 5.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    panels = (
        (axes[0], [("magnitude", "mean |F|", "tab:blue")], "magnitude, px"),
        (axes[1], [("flicker", "|F_t - F_t-1|", "tab:red"), ("warped_flicker", "after carrying F_t-1", "tab:orange")],
         "flicker, px"),
        (axes[2], [("seconds", "compute", "tab:green")], "s / pair"),
    )
    for ax, lines, ylabel in panels:
        drawn = False
        for key, label, color in lines:
            xs, ys = _series(pairs, key)
            if np.isfinite(ys).any():
                ax.plot(xs, ys, marker="." if len(xs) < 60 else None, color=color, label=label, linewidth=1.2)
                drawn = True
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if drawn and len(lines) > 1:
            ax.legend(fontsize="small", loc="best")  # (upper right hid the last pairs' points)
        if not drawn:  # (flicker compares a pair with the one before: none for a clip of one pair)
            why = "one pair" if len(pairs) < 2 and lines[0][0] == "flicker" else "not measured"
            ax.text(0.5, 0.5, f"n/a ({why})", ha="center", va="center", transform=ax.transAxes, color="gray")
    axes[-1].set_xlabel("pair (frame t -> t+1)")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes[-1].set_xlim(-0.5, max(len(pairs), 1) - 0.5)  # (one pair had ticks at -0.04 .. 0.04)
    if title:  # (a name's bytes that are not UTF-8, surrogates here, shown as the replacement character)
        text, families = drawable_title(title.encode("utf-8", "replace").decode("utf-8"))
        fig.suptitle(textwrap.fill(text, 70, break_long_words=True), fontsize="medium",  # (a long one was cut)
                     fontfamily=families, parse_math=False)  # (clip$_$.mp4: mathtext's ValueError, at the run's end)
    return fig


def drawable_title(title: str) -> tuple[str, list[str]]:
    """``title`` as plot.png can draw it, and the font families to draw it in: matplotlib's default font, then,
    where it lacks characters of ``title`` (DejaVu Sans has no CJK), the first installed font that has them
    all; where none has, those characters written as their ASCII escapes (``\\u6771``), not as boxes (with
    matplotlib's "Glyph missing" warning)."""
    default, default_chars = _default_font()
    missing = {char for char in title if ord(char) not in default_chars and char.isprintable()}
    if not missing:
        return title, [default]
    covering = next((name for name, chars in _other_fonts() if all(ord(c) in chars for c in missing)), None)
    if covering is not None:
        return title, [default, covering]
    return "".join(c.encode("ascii", "backslashreplace").decode("ascii") if c in missing else c for c in title), [default]


def font_file_with(chars: frozenset[str]) -> str | None:
    """The file of the font :func:`drawable_title` draws ``chars`` in: matplotlib's default font where it has them
    all, else the first installed font that has; None where none has (pictures drawn with OpenCV use it for text
    OpenCV's own font lacks characters of: :mod:`semflow.text`)."""
    with _quiet_matplotlib_import(), signals_held():
        from matplotlib import font_manager
    codes = {ord(char) for char in chars}
    default, default_chars = _default_font()
    family = default if codes <= default_chars else next(
        (name for name, found in _other_fonts() if codes <= found), None)
    if family is None:
        return None
    try:
        return str(font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False))
    except ValueError:
        return None


@functools.lru_cache(maxsize=1)
def _default_font() -> tuple[str, frozenset[int]]:
    """(family, code points it has) of the font matplotlib draws text in by default."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    return font.family_name, frozenset(font.get_charmap())


@functools.lru_cache(maxsize=1)
def _other_fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, code points it has) of every other font matplotlib knows, by name (read once: about 0.2 s for
    its own 70); "Last Resort" fonts, which draw every code point as a box, left out."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    chars: dict[str, set[int]] = {}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda entry: (entry.name, entry.fname)):
        if not entry.name.startswith("Last Resort"):
            with contextlib.suppress(Exception):  # (a font file it cannot read: left out)
                chars.setdefault(entry.name, set()).update(FT2Font(entry.fname).get_charmap())
    return tuple((name, frozenset(found)) for name, found in chars.items())
