"""The examples of README.md and of its reference pages, docs/*.md, tested so that the documentation cannot
drift from the code. Every check below reads every page of :data:`PAGES` (README.md and each docs/*.md but
those :data:`NOT_CHECKED` names), and says where it found a problem by page and line (``docs/batch.md:12``).

- Every ```python block runs, on small inputs made here: the blocks of one section of a page run in order
  in one namespace (the Python API's second block uses the first one's ``method``), in a fresh folder that holds
  the files the block names (a video, frames, a .flo: synthetic, with the names the README gives them);
  what the README says a block gives is asserted afterwards (a shape, a type, a file written).
  Where a block names something the user brings that cannot be made small, it is replaced by
  :data:`SUBSTITUTES` (each a visible text replacement that must match the page): the CLIP checkpoint
  ``~/models/ViT-B-32.pt`` becomes a tiny OpenCLIP model with random weights, saved as a checkpoint.
  ``../shared/data/middlebury`` is a small synthetic dataset in Middlebury's layout at that path.
- Every ``semflow ...`` command line (in ```bash blocks and in inline code) names a command of
  :data:`semflow.cli.main`, and every option it uses is an option of that command (click's own parser);
  choice values are valid choices, typed values convert, method names are registered; a complete example
  (a bash block's, or an inline one with a positional argument) has every required argument. The
  synopsis under "Command line" is checked against each command: its options, choice lists, defaults,
  which options are required, and that it lists every command.
  Every inline ``--option`` is an option of some command (or of a named other tool), its ``a|b`` values valid.
- Every name the README gives as ``semflow.x.y`` (in backticks or in a python block) or imports with
  ``from semflow... import ...`` exists; inline Python that uses a name without its module
  (`ThingParams.search_missed`, `make_scene(seed=0)`, `get_method("discrete", median_radius=15)`) names
  attributes, keywords and method options that exist; the pip extras it names are declared.

Each kind of check has a test that feeds it a broken text and sees it fail.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import importlib
import json
import re
import shlex
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
from conftest import moving_frames

from semflow.cli import main as semflow_group
from semflow.io.flow import read_flow, write_flow
from semflow.io.images import write_image
from semflow.io.video import VideoWriter
from semflow.methods import list_methods
from semflow.synthetic import translation_scene

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOT_CHECKED = {"docs/design-notes.md": "the history of each rule: no example to run, no fenced block"}
"""docs/ pages these checks leave alone, and why (a test sees that each still holds no fenced block)."""


# --- reading the README -------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, the line its code starts on, its section heading, its code and
    the page it is on (README.md, docs/x.md)."""

    language: str
    line: int
    section: str
    code: str
    page: str = ""


def fenced_blocks(text: str, page: str = "") -> list[Block]:
    """Every fenced block of a Markdown text (indented fences too, their indent removed)."""
    blocks, section, lines = [], "", text.splitlines()
    k = 0
    while k < len(lines):
        heading = re.match(r"#{1,6} (.+?)\s*$", lines[k])
        if heading:
            section = heading.group(1)
        fence = re.match(r"( *)```(\w*)\s*$", lines[k])
        if fence:
            indent, language, start = len(fence.group(1)), fence.group(2), k + 1
            k += 1
            while not re.match(r" *```\s*$", lines[k]):
                k += 1
            blocks.append(Block(language, start + 1, section, "\n".join(line[indent:] for line in lines[start:k]), page))
        k += 1
    return blocks


def prose(text: str) -> str:
    """The text outside fenced blocks (each block's lines blanked, so that line numbers stay)."""
    return re.sub(r"^ *```.*?^ *```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)


def inline_code(text: str) -> list[tuple[int, str]]:
    """(line, code) of every inline code span outside fenced blocks; a span that wraps onto the next line
    has its line break read as a space."""
    outside = prose(text)
    return [(outside.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()))
            for m in re.finditer(r"`([^`]+)`", outside)]


def checked_pages() -> dict[str, str]:
    """{name: text} of README.md and every docs/*.md but :data:`NOT_CHECKED`'s, names relative to the
    repository."""
    paths = [README, *sorted((ROOT / "docs").glob("*.md"))]
    return {name: path.read_text(encoding="utf-8") for path in paths
            if (name := path.relative_to(ROOT).as_posix()) not in NOT_CHECKED}


PAGES = checked_pages()
BLOCKS = [block for page, text in PAGES.items() for block in fenced_blocks(text, page)]
PYTHON_SECTIONS: dict[tuple[str, str], list[Block]] = {}
for _block in BLOCKS:
    if _block.language == "python":
        PYTHON_SECTIONS.setdefault((_block.page, _block.section), []).append(_block)


def test_the_pages_are_read_as_they_are_written() -> None:
    """The block reader sees the pages' blocks (a reader that found none would pass everything below)."""
    languages = [block.language for block in BLOCKS]
    assert languages.count("python") >= 8 and languages.count("bash") >= 10
    assert fenced_blocks("# A\n```python\nx = 1\n```\n  ```bash\n  semflow methods\n  ```\n", "p.md") == [
        Block("python", 3, "A", "x = 1", "p.md"), Block("bash", 6, "A", "semflow methods", "p.md")]
    assert inline_code("a `semflow run\nx` b\n```\n`no`\n```\n`c`") == [(1, "semflow run x"), (6, "c")]


def test_every_docs_page_is_checked_or_has_nothing_to_check() -> None:
    """A new docs/*.md is checked as README.md is; a page left alone holds no fenced block (an example added
    to it would go untested)."""
    assert "README.md" in PAGES
    for path in sorted((ROOT / "docs").glob("*.md")):
        name = path.relative_to(ROOT).as_posix()
        if name in NOT_CHECKED:
            assert fenced_blocks(path.read_text(encoding="utf-8")) == [], f"{name} has blocks: check it"
        else:
            assert name in PAGES


# --- 1. every python block runs -----------------------------------------------------------------

TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
"""A tiny OpenCLIP architecture (2-layer towers) that stands in for the README's ViT-B-32 checkpoint."""

API_CLIP = [('prior="clip", clip_weights="~/models/ViT-B-32.pt"',
             'prior="clip", clip_model=TINY_CLIP_MODEL, clip_weights=TINY_CLIP_WEIGHTS')]
SUBSTITUTES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("README.md", "Python API"): API_CLIP,
    ("docs/python-api.md", "Python API"): API_CLIP,
    ("docs/clip.md", "3. Run"): [('ClipPriorSpec("ViT-B-32", "~/models/ViT-B-32.pt",', "ClipPriorSpec(TINY_CLIP_MODEL, TINY_CLIP_WEIGHTS,")],
}
"""Per (page, section), (the page's text, what runs instead): a CLIP checkpoint of 340 MB, which the user downloads,
becomes a tiny model of the same format (the same loading code runs)."""


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[str, str]:
    """(model config path, checkpoint path) of a tiny OpenCLIP model with random weights."""
    open_clip = pytest.importorskip("open_clip", reason="the CLIP prior's extra is not installed")
    import torch

    folder = tmp_path_factory.mktemp("clip")
    config = folder / "readme-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model("readme-tiny-clip", pretrained=None)
    weights = folder / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, weights)
    return str(config), str(weights)


def write_pair(folder: Path, first: str, second: str, shift=(3.0, 2.0), height: int = 48, width: int = 64,
               seed: int = 4) -> np.ndarray:
    """Two frames of a textured plane moving by ``shift`` px, written as ``folder/first`` and ``folder/second``;
    their exact flow (H, W, 2)."""
    scene = translation_scene(height, width, shift=shift, seed=seed)
    write_image(folder / first, scene.img1)
    write_image(folder / second, scene.img2)
    return scene.flow.astype(np.float32)


def write_clip(path: Path, count: int, height: int = 40, width: int = 56) -> Path:
    """A small H.264 clip of a textured plane moving 2 px right and 1 down a frame."""
    with VideoWriter(path, 5) as writer:
        for frame in moving_frames(count, height, width):
            writer.write(frame)
    return path


def setup_batch(work: Path, names: dict) -> None:
    """``clips/*.mp4`` (two videos) and ``frames/`` (a folder of frames): the inputs the block submits."""
    (work / "clips").mkdir()
    for name in ("a", "b"):
        write_clip(work / "clips" / f"{name}.mp4", 3)
    for k, frame in enumerate(moving_frames(3, 40, 56)):
        write_image(work / "frames" / f"{k:04d}.png", frame)


def check_batch(work: Path, names: dict, printed: str) -> None:
    lines = printed.splitlines()
    assert sorted(lines[:-1]) == ["a ok None", "b ok None", "frames ok None"]  # name, status, error per clip
    assert float(lines[-1]) > 0  # pairs per second
    assert (work / "out" / "batch.json").is_file()
    for clip in ("a", "b", "frames"):  # save_flo=True: each clip's flows
        assert sorted(p.name for p in (work / "out" / clip / "flo").iterdir()) == ["000000.flo", "000001.flo"]


def setup_pair_arrays(work: Path, names: dict) -> None:
    """``img1``, ``img2``: the block's frames (uint8 RGB), a plane moving 3 px right and 2 down."""
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    names.update(img1=scene.img1, img2=scene.img2, true_flow=scene.flow)


def check_median(work: Path, names: dict, printed: str) -> None:
    from semflow.baseline.base import FlowMethod

    flow = names["flow"]
    assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
    assert np.abs(flow - names["true_flow"]).mean() < 0.5
    assert isinstance(names["semantic"], FlowMethod) and names["semantic"].name == "semantic"


def setup_street_frame(work: Path, names: dict) -> None:
    """``image``: the first frame of the shipped street clip (uint8 RGB), shrunk to 240x180."""
    from semflow.io.video import FrameSource

    names["image"] = next(iter(FrameSource(ROOT / "assets" / "street.mp4", max_side=240)))


def check_segmentation(work: Path, names: dict, printed: str) -> None:
    seg, (height, width) = names["seg"], names["image"].shape[:2]
    assert seg.probs.shape == (height, width, seg.label_set.num_classes)
    assert seg.labels.shape == (height, width)
    assert set(np.unique(seg.kind_map())) <= {0, 1, 2}  # stuff 0, plane 1, thing 2
    assert isinstance(seg.instances, list)


def setup_clip_prior(work: Path, names: dict) -> None:
    setup_street_frame(work, names)


def check_clip_prior(work: Path, names: dict, printed: str) -> None:
    from semflow.segmentation.base import Segmentation

    assert isinstance(names["seg"], Segmentation) and names["seg"].labels.shape == names["image"].shape[:2]
    lines = printed.splitlines()
    assert lines and all(line.startswith("region [") for line in lines)  # one line per scored region


def setup_python_api(work: Path, names: dict) -> None:
    """frame10.png and frame11.png (a pair), raft.flo (its flow, "computed elsewhere"), raft/ (a video's
    flows), clip.mp4, frames/0000.png to 0009.png, and a two-sequence Middlebury layout at
    ../shared/data/middlebury."""
    write_flow(work / "raft.flo", write_pair(work, "frame10.png", "frame11.png"))
    (work / "raft").mkdir()
    write_flow(work / "raft" / "000000.flo", read_flow(work / "raft.flo"))
    write_clip(work / "clip.mp4", 4)
    for k, frame in enumerate(moving_frames(10, 40, 56)):
        write_image(work / "frames" / f"{k:04d}.png", frame)
    middlebury = work.parent / "shared" / "data" / "middlebury"
    for seed, sequence in enumerate(("Grove", "Urban")):
        (middlebury / sequence).mkdir(parents=True)
        flow = write_pair(middlebury / sequence, "frame10.png", "frame11.png", shift=(2.0, -1.0), seed=seed)
        write_flow(middlebury / sequence / "flow10.flo", flow)


def check_python_api_first(work: Path, names: dict, printed: str) -> None:
    """The Python API's first example (README.md keeps it): a pair's flow, written and drawn, methods built,
    a dataset measured."""
    import semflow
    from semflow.baseline.discrete import DiscreteFlow
    from semflow.sharpen import SharpenedFlow

    flow = names["flow"]
    assert flow.shape == (48, 64, 2) and flow.dtype == np.float32  # float32 (H, W, 2)
    assert np.array_equal(semflow.read_flow(work / "flow.flo"), flow)
    assert names["rgb"].shape == (48, 64, 3) and names["rgb"].dtype == np.uint8
    assert isinstance(names["discrete"], SharpenedFlow) and isinstance(names["plain"], DiscreteFlow)
    assert {"name", "default", "help"} <= set(vars(semflow.methods.method_options("discrete")[0]))
    assert max(names["frame"].shape[:2]) <= 640
    epes = dict(line.split() for line in printed.splitlines())  # one line per sample: name, EPE
    assert sorted(epes) == ["Grove", "Urban"] and all(0 <= float(e) < 1 for e in epes.values())


def check_python_api(work: Path, names: dict, printed: str) -> None:
    """The whole Python API page: the first example, then video mode."""
    from semflow.video_state import VideoState

    check_python_api_first(work, names, printed)
    assert isinstance(names["state"], VideoState) and names["result"].flow.shape == (40, 56, 2)


def check_options_class(work: Path, names: dict, printed: str) -> None:
    import dataclasses

    from semflow.options import MethodOptions, options_dict

    options = names["BlurOptions"]()
    assert isinstance(options, MethodOptions) and options_dict(options)["sigma"] == 1.0
    assert "device" in options_dict(options)  # MethodOptions brings it
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.sigma = 2.0


SectionChecks = tuple[Callable[[Path, dict], None] | None, Callable[[Path, dict, str], None]]
SECTIONS: dict[tuple[str, str], SectionChecks] = {
    ("README.md", "Python API"): (setup_python_api, check_python_api_first),
    ("docs/batch.md", "Many clips and clusters"): (setup_batch, check_batch),
    ("docs/methods.md", "A weighted median after `discrete`'s refinement (option `median_radius`, Python)"):
        (setup_pair_arrays, check_median),
    ("docs/segmentation.md", "Segmentation"): (setup_street_frame, check_segmentation),
    ("docs/clip.md", "3. Run"): (setup_clip_prior, check_clip_prior),
    ("docs/python-api.md", "Python API"): (setup_python_api, check_python_api),
    ("docs/adding-a-method.md", "How to add a flow method"): (None, check_options_class),
}
"""Per (page, section) with python blocks: what its folder and namespace hold first (None: nothing), and
what the page says its blocks give, checked after they ran."""


def test_every_python_section_has_a_setup_and_a_check() -> None:
    assert sorted(PYTHON_SECTIONS) == sorted(SECTIONS), "a section of a page with python blocks and no test here"
    assert sum(len(blocks) for blocks in PYTHON_SECTIONS.values()) >= 8


def substituted(section: tuple[str, str], blocks: list[Block]) -> list[str]:
    """The code of a (page, section)'s blocks with its :data:`SUBSTITUTES` applied, each found once in the
    page's text, every block given its line numbers on the page (a traceback names the page's line)."""
    codes = [block.code for block in blocks]
    for said, runs in SUBSTITUTES.get(section, []):
        found = sum(code.count(said) for code in codes)
        assert found == 1, f"{section[0]} section {section[1]!r} says {said!r} {found} times, not once: update SUBSTITUTES"
        codes = [code.replace(said, runs) for code in codes]
    return ["\n" * (block.line - 1) + code for block, code in zip(blocks, codes)]


@pytest.mark.parametrize("section", sorted(PYTHON_SECTIONS), ids=": ".join)
def test_python_blocks_run(section: tuple[str, str], tmp_path: Path, monkeypatch, capsys, request) -> None:
    if section[1] == "Many clips and clusters":
        pytest.importorskip("ray", reason="the batch extra is not installed")
    setup, check = SECTIONS[section]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SEMFLOW_CLIP_CACHE", str(tmp_path / "clip-cache"))  # (not the user's cache)
    module = types.ModuleType("readme_example")  # (a dataclass defined in a block looks its module up)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    names = module.__dict__
    if setup is not None:
        setup(work, names)
    blocks = PYTHON_SECTIONS[section]
    if any(said for said, _ in SUBSTITUTES.get(section, []) if "ViT-B-32" in said):
        names["TINY_CLIP_MODEL"], names["TINY_CLIP_WEIGHTS"] = request.getfixturevalue("tiny_clip")
    capsys.readouterr()
    for source in substituted(section, blocks):
        code = compile(source, str(ROOT / section[0]), "exec", dont_inherit=True)  # (not this file's __future__)
        exec(code, names)  # noqa: S102 (the page's own example)
    check(work, names, capsys.readouterr().out)


# --- 2. every `semflow ...` command line names real commands and options --------------------------

IMAGINED = {"blur-dis": {"--sigma"}}
"""Methods the README imagines (How to add a flow method: ``blur-dis``) and the options they declare there."""

PARTIAL = {"..."}
"""Tokens that stand for arguments left out (``semflow batch ... --out /shared/out``)."""


@dataclass(frozen=True)
class CommandLine:
    """A ``semflow`` command line found on a page: where (page:line), its words after ``semflow``, and whether it is
    a complete example (every required argument must be there) or a mention of some of its options."""

    where: str
    words: tuple[str, ...]
    complete: bool


def commands_in_shell(code: str) -> Iterator[list[str]]:
    """The words of each ``semflow`` (or ``.venv/bin/semflow``) command in a bash block, after ``semflow``:
    continuation lines joined, comments dropped, ``&&`` / ``;`` / ``|`` lists split."""
    words = shlex.split(code.replace("\\\n", " "), comments=True)
    command: list[str] = []
    for word in [*words, "&&"]:
        if word in ("&&", ";", "|", "||"):
            if command and Path(command[0]).name == "semflow":
                yield command[1:]
            command = []
        else:
            command.append(word)


SYNOPSES = [block for block in BLOCKS if block.section == "Command line" and block.language == "bash"]
"""The synopsis (`semflow CMD ARG --required VALUE [--option NAME (default)] ...` a line) under "Command line":
checked against the commands (section 2 below), not as command lines."""


def bash_commands(blocks: list[Block]) -> list[CommandLine]:
    """The ``semflow`` command lines of the bash blocks (but the synopsis), each a complete example unless
    it holds ``...``."""
    found = []
    for block in blocks:
        if block.language == "bash" and block not in SYNOPSES:
            for number, line in enumerate(block.code.replace("\\\n", "  ").splitlines()):
                for words in commands_in_shell(line):
                    found.append(CommandLine(f"{block.page}:{block.line + number}", tuple(words),
                                             complete=not PARTIAL & set(words)))
    return found


def inline_commands(pages: dict[str, str]) -> list[CommandLine]:
    """``semflow CMD ...`` in inline code; one that gives a command an argument (and has no ``...``) is a
    complete example, one of options alone (`semflow run --resume`) a mention of them. A span that starts
    with a command's name and holds an option (`flow -o ok.flo --viz ro/v.png`, `run --out DIR`) is a
    mention too."""
    found = []
    for page, line, code in ((page, line, code) for page, text in pages.items() for line, code in inline_code(text)):
        if re.match(r"(\.venv/bin/)?semflow [a-z-]", code):
            words = tuple(shlex.split(code)[1:])
            probe = without_imagined(words[:-1] if words[-1].startswith("-") else words)  # (`compare --json`)
            try:
                command, values, _ = parse(probe)
                given = any(isinstance(p, click.Argument) and was_given(values.get(p.name)) for p in command.params)
            except click.UsageError:
                given = True  # (checked as complete: the error shows)
            found.append(CommandLine(f"{page}:{line}", words, complete=given and not PARTIAL & set(words)))
        elif code.split()[0] in semflow_group.commands and " -" in code:
            found.append(CommandLine(f"{page}:{line}", tuple(shlex.split(code)), complete=False))
    return found


def was_given(value: object) -> bool:
    """Whether click's parser gave a parameter a value (click 8.3 marks one not given with an enum sentinel,
    UNSET; earlier versions with None, or () for nargs=-1)."""
    return value is not None and value != () and not isinstance(value, enum.Enum)


def without_imagined(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words without the options of :data:`IMAGINED` methods (and their values) where one is named."""
    imagined = {option for name, options in IMAGINED.items() if name in " ".join(words) for option in options}
    kept: list[str] = []
    for word in words:
        if kept and kept[-1] in imagined and not word.startswith("-"):
            kept.pop()
        elif word.split("=")[0] not in imagined or "=" not in word:
            kept.append(word)
    return tuple(word for word in kept if word not in imagined)


def parse(words: tuple[str, ...]) -> tuple[click.Command, dict, list[str]]:
    """The command the words name, the values click's parser gives its parameters (unconverted; no callback
    runs), and what was left over. Raises click.UsageError (an unknown command or option, a missing value)."""
    context = click.Context(semflow_group, info_name="semflow")
    if not words or words[0].startswith("-"):
        return semflow_group, dict(semflow_group.make_parser(context).parse_args(list(words))[0]), []
    command = semflow_group.get_command(context, words[0])
    if command is None:
        raise click.UsageError(f"no such command {words[0]!r}; semflow has {sorted(semflow_group.commands)}")
    inner = click.Context(command, info_name=words[0], parent=context)
    values, left, _ = command.make_parser(inner).parse_args([w for w in words[1:] if w not in PARTIAL])
    return command, values, left


def check_command_line(words: tuple[str, ...], complete: bool) -> list[str]:
    """What is wrong with a command line of a page (nothing: [])."""
    words = without_imagined(words)
    if not complete and len(words) > 1 and words[-1].startswith("-"):  # (a mention: `semflow compare --json`)
        words, mentioned = words[:-1], words[-1]
        if not any(mentioned in p.opts + p.secondary_opts for p in parse(words)[0].params):
            return [f"No such option: {mentioned}"]
    try:
        command, values, left = parse(words)
    except click.UsageError as exc:
        return [exc.format_message()]
    wrong = [f"unexpected arguments {left}"] if left else []
    context = click.Context(command, info_name=words[0] if words else "semflow")
    known = set(list_methods()) | set(IMAGINED)
    for param in command.params:
        value = values.get(param.name)
        if not was_given(value):
            if complete and param.required:
                wrong.append(f"missing {max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name}")
            continue
        if not isinstance(param.type, click.Path):  # (a path is checked when the command runs)
            try:
                param.type_cast_value(context, value)
            except click.BadParameter as exc:
                wrong.append(f"{param.opts[0]}: {exc.format_message()}")
        if param.name in ("method", "methods", "baseline"):
            wrong += [f"{param.opts[0]}: no method {name!r}" for name in str(value).split(",") if name not in known]
    return wrong


COMMAND_LINES = bash_commands(BLOCKS) + inline_commands(PAGES)


@pytest.mark.parametrize("line", COMMAND_LINES, ids=lambda c: f"{c.where} semflow {' '.join(c.words)[:60]}")
def test_command_line_parses(line: CommandLine) -> None:
    assert check_command_line(line.words, line.complete) == []


def test_the_command_line_check_can_fail() -> None:
    """Each kind of drift is caught: a renamed option, a bad choice, a missing required argument, an unknown
    command or method, an untyped value."""
    assert check_command_line(("run", "v.mp4", "--out", "o"), True) == []
    assert "No such option" in check_command_line(("run", "v.mp4", "--outdir", "o"), True)[0]
    assert "missing --out" in check_command_line(("run", "v.mp4"), True)
    assert check_command_line(("run", "--resume"), False) == []
    assert "missing IMAGE2" in check_command_line(("flow", "a.png", "-o", "x.flo"), True)
    assert "is not one of" in check_command_line(("compare", "d", "--dataset", "middleburry"), True)[0]
    assert "no such command" in check_command_line(("runs", "v.mp4"), True)[0]
    assert check_command_line(("run", "v", "--out", "o", "--method", "dis-mediun"), True) == [
        "--method: no method 'dis-mediun'"]
    assert "not a valid integer" in check_command_line(("run", "v", "--out", "o", "--max-side", "big"), True)[0]
    assert "requires an argument" in check_command_line(("run", "v", "--out"), True)[0]


OTHER_TOOLS_OPTIONS = {"--num-cpus": "ray start", "--head": "ray start", "--port": "ray start",
                       "--disk-only": "scripts/bench_batch.py", "--help": "every command (click's own)"}
"""Options the pages name in inline code that belong to another program."""


def option_mentions(pages: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """(page:line, option, values) of every inline code span that is an option (`--cache-mb`, `--cache-mb 0`,
    `--device cpu|cuda|auto`, `--progress/--no-progress`): each option, with the values it shows."""
    found = []
    for page, text in pages.items():
        for line, code in inline_code(text):
            if re.match(r"--[a-z]|-[a-z]( |$)", code):
                option, _, value = code.partition(" ")
                for name in option.split("/"):
                    found.append((f"{page}:{line}", name.split("=")[0], value.split("|") if "|" in value else []))
    return found


def option_problems(mentions: list[tuple[str, str, list[str]]]) -> list[str]:
    """What is wrong with the options mentioned: one no semflow command (nor :data:`OTHER_TOOLS_OPTIONS`'s
    program) has, a value that is none of its choices."""
    params = [p for command in semflow_group.commands.values() for p in command.params]
    wrong = []
    for where, name, values in mentions:
        offering = [p for p in params if name in p.opts + p.secondary_opts]
        if not offering:
            if name not in OTHER_TOOLS_OPTIONS:
                wrong.append(f"{where}: {name} is an option of no semflow command")
            continue
        for value in values:
            choices = {c for p in offering if isinstance(p.type, click.Choice) for c in p.type.choices}
            if choices and value not in choices:
                wrong.append(f"{where}: {name} {value}: not one of {sorted(choices)}")
    return wrong


def test_every_option_mentioned_is_an_option_of_a_command() -> None:
    """`--cache-mb` in the prose names an option some semflow command has; `--device cpu|cuda|auto` shows
    valid values of it."""
    mentions = option_mentions(PAGES)
    assert len(mentions) > 100
    assert option_problems(mentions) == []


def test_a_broken_docs_page_fails() -> None:
    """The checks read a docs page as they read README.md, and name its file and line: an option renamed in
    its prose, a command line of its bash block or its inline code that no longer parses."""
    page = {"docs/x.md": "# X\n\nUse `--cache-mib 0`, or `--preset fast|fastest`.\n\n```bash\nsemflow run v.mp4 --outdir o\n```\n"
                         "then `semflow flow a.png b.png --vizz v.png`.\n"}
    assert option_problems(option_mentions(page)) == [
        "docs/x.md:3: --cache-mib is an option of no semflow command",
        "docs/x.md:3: --preset fastest: not one of ['accurate', 'balanced', 'fast']"]
    lines = bash_commands(fenced_blocks(page["docs/x.md"], "docs/x.md")) + inline_commands(page)
    assert [line.where for line in lines] == ["docs/x.md:6", "docs/x.md:8"]
    assert ["No such option" in check_command_line(line.words, line.complete)[0] for line in lines] == [True, True]


def synopsis_problems(synopsis: str) -> list[str]:
    """What the synopsis (`semflow CMD ARG --required VALUE [--option NAME (default)] ...` a line) says
    wrongly of the commands: an option a command lacks, a required option or argument shown optional or
    left out, a choice list or default that differs, a command it leaves out."""
    wrong, listed = [], set()
    for line in synopsis.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "semflow" or words[1].startswith("-"):
            continue
        name, rest = words[1], " ".join(words[2:])
        command = semflow_group.commands.get(name)
        listed.add(name)
        if command is None:
            wrong.append(f"{name}: no such command")
            continue
        by_flag = {flag: p for p in command.params for flag in p.opts + p.secondary_opts}
        optional = re.findall(r"\[([^\]]*)\]", rest)
        required = re.sub(r"\[[^\]]*\]", " ", rest).split()
        for part in optional:
            flags = re.findall(r"(?<![\w-])--?[a-z][\w-]*", part)
            wrong += [f"{name} {flag}: no such option" for flag in flags if flag not in by_flag]
            default = re.search(r"\(([^)]*)\)\s*$", part)
            if flags and flags[0] in by_flag and default and str(by_flag[flags[0]].default) != default.group(1):
                wrong.append(f"{name} {flags[0]}: default {by_flag[flags[0]].default!r}, not {default.group(1)!r}")
        arguments, k = [], 0
        while k < len(required):
            word = required[k]
            if word.startswith("-"):
                param = by_flag.get(word)
                if param is None:
                    wrong.append(f"{name} {word}: no such option")
                elif not param.required:
                    wrong.append(f"{name} {word}: shown required, is optional")
                elif isinstance(param.type, click.Choice) and k + 1 < len(required) and "|" in required[k + 1]:
                    if required[k + 1].split("|") != list(param.type.choices):
                        wrong.append(f"{name} {word}: choices {list(param.type.choices)}, not {required[k + 1]}")
                k += 1 if param is not None and param.is_flag else 2
            else:
                arguments.append(word)
                k += 1
        expected = [p for p in command.params if isinstance(p, click.Argument)]
        shown = [(w.rstrip(".") != w) for w in arguments]  # (INPUTS...: any number)
        if shown != [p.nargs == -1 for p in expected]:
            wrong.append(f"{name}: arguments {arguments}, the command takes {[p.human_readable_name for p in expected]}")
        for param in command.params:
            if isinstance(param, click.Option) and param.required and not set(param.opts) & set(required):
                wrong.append(f"{name} {param.opts[-1]}: required, shown optional or not at all")
    wrong += [f"{name}: not in the synopsis" for name in sorted(set(semflow_group.commands) - listed)]
    return wrong


SYNOPSIS = SYNOPSES[0].code if SYNOPSES else ""


def test_the_synopsis_matches_the_commands() -> None:
    assert len(SYNOPSES) == 1, "one synopsis, the bash block under a page's \"Command line\""
    assert synopsis_problems(SYNOPSIS) == []


def test_the_synopsis_check_can_fail() -> None:
    assert synopsis_problems(SYNOPSIS.replace("[--columns N]", "[--cols N]")) == ["visualize --cols: no such option"]
    assert synopsis_problems(SYNOPSIS.replace("(dis-medium)]", "(deepflow)]")) == [
        "flow --method: default 'dis-medium', not 'deepflow'"]
    assert synopsis_problems(SYNOPSIS.replace("|chairs|", "|")) == [
        "compare --dataset: choices ['middlebury', 'sintel', 'kitti', 'chairs', 'synthetic'], not middlebury|sintel|kitti|synthetic"]
    assert "compare --dataset: required, shown optional or not at all" in synopsis_problems(
        SYNOPSIS.replace("ROOT --dataset", "ROOT [--dataset]"))
    assert synopsis_problems(SYNOPSIS.replace("IMG1 IMG2", "IMG1")) == [
        "flow: arguments ['IMG1'], the command takes ['IMAGE1', 'IMAGE2']"]
    assert synopsis_problems(SYNOPSIS.replace("semflow methods\n", "")) == ["methods: not in the synopsis"]


# --- 3. every semflow name the pages give exists ----------------------------------------------


def names_in_python(code: str) -> set[str]:
    """``semflow.x.y`` chains and ``from semflow.x import y`` names of a python block (as dotted names)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "semflow":
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "semflow"}
        elif isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain, inner = [inner.attr, *chain], inner.value
            if isinstance(inner, ast.Name) and inner.id == "semflow":
                found.add(".".join(["semflow", *chain]))
    return found


def names_in_prose(text: str) -> set[str]:
    """``semflow.x.y`` (up to a bracket: `semflow.synthetic_video.make_sequence()`) and ``from semflow.x import
    a, b`` in a page's inline code."""
    found = set()
    for _, code in inline_code(text):
        for module, imported in re.findall(r"from (semflow[\w.]*) import ([\w, ]+)", code):
            found |= {f"{module}.{name.strip()}" for name in imported.split(",") if name.strip()}
        found |= set(re.findall(r"(?<![\w/.-])semflow(?:\.[A-Za-z_]\w*)+", code))
    return found


def resolve(dotted: str) -> object:
    """The object a dotted name names: its longest importable module, then attributes. Raises ImportError or
    AttributeError."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name != ".".join(parts[:cut]):
                raise
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(dotted)


README_NAMES = sorted({name for text in PAGES.values() for name in names_in_prose(text)} | {name for block in BLOCKS if block.language == "python"
                                             for name in names_in_python(block.code)})


def test_names_are_found() -> None:
    assert len(README_NAMES) >= 40
    assert names_in_python("import semflow\nfrom semflow.a import b, c\nsemflow.x.y(semflow.z)") == {
        "semflow", "semflow.a.b", "semflow.a.c", "semflow.x.y", "semflow.x", "semflow.z"}
    assert names_in_prose("`semflow.a.b()` and `from semflow.c import d, e`, not `semflow/x.py` or `semflow[clip]`") == {
        "semflow.a.b", "semflow.c", "semflow.c.d", "semflow.c.e"}


@pytest.mark.parametrize("name", README_NAMES)
def test_named_on_a_page_and_importable(name: str) -> None:
    resolve(name)


def test_a_name_that_is_not_there_fails() -> None:
    with pytest.raises(AttributeError):
        resolve("semflow.temporal.TemporalMetre")
    with pytest.raises(AttributeError):
        resolve("semflow.layers.nonesuch")


SHORT_NAMES = {
    "ThingParams": "semflow.layers.things.ThingParams", "MotionParams": "semflow.fitting.motion_fit.MotionParams",
    "ClipPriorSpec": "semflow.segmentation.ClipPriorSpec", "make_scene": "semflow.synthetic.make_scene",
    "write_dataset": "semflow.synthetic.write_dataset", "make_hard_scene": "semflow.synthetic_hard.make_hard_scene",
    "write_hard_dataset": "semflow.synthetic_hard.write_hard_dataset",
    "make_street_sequence": "semflow.synthetic_video.make_street_sequence",
    "read_flow_valid": "semflow.io.flow.read_flow_valid", "evaluation.compare": "semflow.evaluation.compare",
    "register_method": "semflow.methods.register_method", "thing_params_for": "semflow.layers.things.params.thing_params_for",
    "TemporalSegmentation": "semflow.segmentation.temporal.TemporalSegmentation",
}
"""Names the pages' prose uses without their module, and where they live."""


def short_name_problems(text: str, page: str = "README.md") -> list[str]:
    """What is wrong with a page's inline Python that uses :data:`SHORT_NAMES` or ``get_method``: a
    keyword the function or dataclass does not take, an attribute (`ThingParams.search_missed`) it lacks,
    a method option ``get_method("NAME", option=...)`` the method does not declare."""
    from semflow.methods import method_options

    wrong = []
    for line, code in inline_code(text):
        for name in re.findall(r"(?<![\w.])[A-Za-z_][\w.]*", code):
            if name in SHORT_NAMES:
                resolve(SHORT_NAMES[name])
        with contextlib.suppress(SyntaxError):
            tree = ast.parse(code.replace("(...)", "()"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = ast.unparse(node.func)
                    keywords = [k.arg for k in node.keywords if k.arg]
                    if name == "get_method" and node.args and isinstance(node.args[0], ast.Constant):
                        method = node.args[0].value
                        declared = IMAGINED.get(method) and {o[2:] for o in IMAGINED[method]} or {
                            info.name for info in method_options(method)}
                        wrong += [f"{page}:{line}: {method} has no option {k}" for k in keywords if k not in declared]
                    elif name in SHORT_NAMES:
                        import inspect

                        taken = inspect.signature(resolve(SHORT_NAMES[name])).parameters
                        wrong += [f"{page}:{line}: {name} takes no {k}" for k in keywords if k not in taken]
                elif isinstance(node, ast.Attribute) and ast.unparse(node.value) in ("ThingParams", "MotionParams"):
                    if not hasattr(resolve(SHORT_NAMES[ast.unparse(node.value)]), node.attr):
                        wrong.append(f"{page}:{line}: {ast.unparse(node.value)} has no {node.attr}")
    return wrong


def test_inline_python_calls_take_the_keywords_shown() -> None:
    assert [problem for page, text in PAGES.items() for problem in short_name_problems(text, page)] == []


def test_the_inline_python_check_can_fail() -> None:
    assert short_name_problems("`ThingParams.search_mised` and `make_scene(seeds=0)`, `ThingParams(motion_split=1)`") == [
        "README.md:1: ThingParams has no search_mised", "README.md:1: make_scene takes no seeds"]
    assert short_name_problems('`get_method("discrete", median=15)`') == ["README.md:1: discrete has no option median"]


def extras_named(text: str) -> set[str]:
    """The pip extras a page installs or names: `semflow[clip]`, `".[dev,clip]"`."""
    return {extra for group in re.findall(r"(?:semflow|\.)\[([a-z,]+)\]", text) for extra in group.split(",")}


def test_every_extra_named_is_declared() -> None:
    # Python 3.10 has no tomllib; pytest needs its forerunner tomli there, so it is installed.
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert extras_named("`pip install 'semflow[clip]'`, `pip install -e \".[dev,gpu]\"`") == {"clip", "dev", "gpu"}
    named = {extra for text in PAGES.values() for extra in extras_named(text)}
    assert len(named) >= 4 and named - declared == set()
