"""What ``semflow CMD --help`` calls each option's value, and the line a value of the wrong kind gets (a probe
of the command line as a new user meets it)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from semflow.cli import main


def help_of(command: str) -> str:
    result = CliRunner().invoke(main, [command, "--help"], prog_name="semflow")
    assert result.exit_code == 0
    return result.output


# Each help's own text names these values (run's "DIR/flow.mp4", flow's "written to OUTPUT", compare's "Run
# METHODS", "at most PX", "the first N samples", "Disk (MiB)"), and docs/command-line.md's synopsis too; the
# options showed PATH, TEXT and INTEGER RANGE (which read as if a range such as 1-10 were asked for).
NAMED = {
    "run": ["--out DIR", "--method NAME", "--max-frames N", "--max-side PX", "--max-flow PX", "--cache-mb MB"],
    "batch": ["--out DIR", "--workers N", "--chunk-pairs N", "--warmup-pairs N", "--max-frames N", "--max-side PX",
              "--max-flow PX", "--cache-mb MB"],
    "flow": ["-o, --output OUTPUT", "--method NAME", "--viz FILE", "--max-flow PX", "--explain DIR", "--max-side PX",
             "--baseline-flow FILE"],
    "visualize": ["-o, --output FILE", "--max-flow PX", "--columns N"],
    "compare": ["--methods METHODS", "--out DIR", "--json FILE", "--max-samples N"],
    "segment": ["--out OUT", "--segmenter, --backend NAME", "--max-frames N", "--max-side PX"],
}


@pytest.mark.parametrize("command", sorted(NAMED))
def test_help_names_each_value_as_its_own_text_does(command: str) -> None:
    text = help_of(command)
    assert "INTEGER RANGE" not in text
    for shown in NAMED[command]:
        assert re.search(rf"^  {re.escape(shown)}\s", text, re.M), f"{command}: {shown!r} not in its help"


@pytest.mark.parametrize("args", [
    ["flow", "a.png", "b.png", "-o", "x.flo", "--max-side", "abc"],
    ["run", "clip.mp4", "--out", "o", "--max-frames", "1.5"],
    ["run", "clip.mp4", "--out", "o", "--cache-mb", "lots"],
    ["visualize", "f.flo", "-o", "v.png", "--columns", "two"],
    ["compare", "root", "--dataset", "middlebury", "--max-samples", "x"],
    ["segment", "a.png", "--out", "o", "--max-frames", "ten"],
    ["batch", "clip.mp4", "--out", "o", "--chunk-pairs", "5k"],
])
def test_a_count_that_is_no_whole_number_says_so(args: list[str]) -> None:
    """It read "'abc' is not a valid integer range": a range was never asked for."""
    result = CliRunner().invoke(main, args, prog_name="semflow")
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert re.fullmatch(rf"semflow: error: Invalid value for '--[a-z-]+': '{re.escape(args[-1])}' is not a valid"
                        rf" integer\. \(see `semflow {args[0]} --help`\)", line), line


def test_compare_says_how_it_reads_a_folder_of_per_pair_inputs() -> None:
    """compare's --baseline-flows and --segmentation showed run's text ("for the pair that starts at frame NNNNNN,
    as run --save-flo writes them"), where compare reads such a folder by each sample's place in the dataset's
    sorted listing (docs/command-line.md, compare)."""
    text = " ".join(help_of("compare").split())
    for option in ("--baseline-flows TEXT", "--segmentation TEXT"):
        own = text.split(option, 1)[1].split(" --", 1)[0]
        assert "place in the dataset's sorted listing" in own, own
        assert "starts at frame" not in own and "run --save-flo" not in own, own


def test_methods_lists_the_options_each_method_takes() -> None:
    """`semflow methods` gave a name and a description only: which of a command's many method options a method
    takes was found by trial (`--preset does not go with --method dis-medium; it takes --device, --sharpen`)."""
    result = CliRunner().invoke(main, ["methods"], prog_name="semflow")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["dis-medium"].endswith("OpenCV DIS, medium preset; options: --device, --sharpen")
    assert lines["discrete"].endswith("; options: --device, --sharpen, --preset")
    assert "--baseline, " in lines["semantic"] and "--prior-weight" in lines["semantic"]
    assert "--preset" not in lines["semantic"]


def test_sharpen_help_names_the_baseline_flows_option_of_its_own_command() -> None:
    """--sharpen's help, written once for every command, said "semantic on --baseline-flows": flow calls its
    option --baseline-flow, and batch has none."""
    def wide_help(command: str) -> str:  # (one line an option: click breaks "--baseline-flows" at its hyphen)
        result = CliRunner().invoke(main, [command, "--help"], prog_name="semflow", terminal_width=1000,
                                    max_content_width=1000)
        assert result.exit_code == 0
        return result.output

    def sharpen_text(command: str) -> str:
        text = " ".join(wide_help(command).split())
        start = text.index("--sharpen / --no-sharpen ") + len("--sharpen / --no-sharpen ")
        return text[start:].split(" [", 1)[0]  # (up to the methods that take it)

    assert "(and semantic on one of them or on --baseline-flow)." in sharpen_text("flow")
    assert "--baseline-flows" not in wide_help("flow") and "--baseline-flows" not in wide_help("batch")
    assert "(and semantic on one of them)." in sharpen_text("batch")
    for command in ("run", "compare"):  # (they have --baseline-flows)
        assert "(and semantic on one of them or on --baseline-flows)." in sharpen_text(command)
