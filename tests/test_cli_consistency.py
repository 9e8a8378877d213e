"""The command line as a user meets it across commands (a probe's findings): every error one line, SIGTERM
inside Ray's wait as SIGTERM elsewhere, a batch's result lines not drawn over by its bars, and a baseline
given twice refused."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from semflow.cli import main
from semflow.cli_group import SemflowGroup, Terminated


def test_usage_errors_of_the_group_itself_are_one_line() -> None:
    """`semflow --bogus` was click's four-line usage text; a missing choice option read "\\n\\t" escapes."""
    result = CliRunner().invoke(main, ["--bogus"], prog_name="semflow")
    assert result.exit_code == 2
    assert result.output.splitlines() in (["semflow: error: No such option '--bogus'. (see `semflow --help`)"],
                                          ["semflow: error: No such option: --bogus (see `semflow --help`)"])  # click < 8.4
    result = CliRunner().invoke(main, ["compare", "somewhere", "--methods", "dis-fast"], prog_name="semflow")
    assert result.exit_code == 2
    assert result.output.splitlines() == ["semflow: error: Missing option '--dataset'. Choose from: middlebury, sintel,"
                                          " kitti, chairs, synthetic (see `semflow compare --help`)"]
    assert "Usage: semflow" in CliRunner().invoke(main, [], prog_name="semflow").output  # (alone: the help)


def test_sigterm_inside_a_wrapped_wait_is_sigterm() -> None:
    """SIGTERM while `batch` waited in Ray's Cython wait: Ray wrapped what the handler raised in a SystemError,
    and the batch ended in a 40-line traceback with exit 1 instead of `semflow: terminated` and 143."""

    @click.group(cls=SemflowGroup)
    def group() -> None:
        pass

    @group.command()
    @click.option("--resume", is_flag=True)
    def waits(resume: bool) -> None:
        try:
            raise Terminated
        except Terminated as exc:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc

    @group.command()
    def broken() -> None:
        raise SystemError("a real one")

    result = CliRunner().invoke(group, ["waits"])
    assert result.exit_code == 143
    assert result.output.splitlines() == ["semflow: terminated (what it finished is kept: the same command with"
                                          " --resume continues)"]
    result = CliRunner().invoke(group, ["broken"])
    assert isinstance(result.exception, SystemError)  # (anything else is not ours to hide)


def test_a_batch_pauses_its_bars_while_a_result_is_printed(monkeypatch) -> None:
    """On a terminal, `batch`'s per-clip lines (`bad: failed: why`) were drawn over by the running bars."""
    import semflow.batch.progress as progress_module

    buffer = io.StringIO()
    monkeypatch.setattr(progress_module, "quiet_console", lambda: Console(file=buffer, force_terminal=True, width=80))
    with progress_module.BatchProgress(2, enabled=True) as progress:
        live = progress._progress.live
        assert live.is_started
        with progress.paused():
            assert not live.is_started
        assert live.is_started
    assert not live.is_started


def test_baseline_flows_and_a_baseline_method_are_not_both_taken(run_cli, pair, tmp_path) -> None:
    """`--baseline-flows DIR --baseline farneback` was accepted and --baseline silently ignored (the singular
    `--baseline-flow FILE --baseline X` was refused)."""
    import semflow

    (tmp_path / "flows").mkdir()
    semflow.write_flow(tmp_path / "flows" / "000000.flo", np.zeros((48, 64, 2), np.float32))
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, image in enumerate(pair):
        (frames / f"{k:04d}.png").write_bytes(Path(image).read_bytes())
    result = run_cli("run", frames, "--out", "out", "--method", "semantic", "--baseline-flows", "flows",
                     "--baseline", "farneback")
    assert result.rc == 1 and not (tmp_path / "out").exists()
    assert result.stderr.splitlines() == ["semflow: error: --baseline-flows are the baseline's flows: give them"
                                          " without --baseline"]


def test_flow_takes_a_pairs_baseline_flow_not_a_videos_folder(run_cli, pair, tmp_path) -> None:
    """`flow --baseline-flows DIR` (a video's folder, for `run`) was accepted and silently took DIR/000000.flo."""
    result = run_cli("flow", *pair, "-o", "o.flo", "--method", "semantic", "--baseline-flows", "flows")
    assert result.rc != 0 and not (tmp_path / "o.flo").exists() and "Traceback" not in result.stderr
    assert "--baseline-flows" in result.stderr and "--baseline-flow" in run_cli("flow", "--help").stdout


def test_given_masks_and_a_segmenter_or_prior_are_not_both_taken(run_cli, pair, tmp_path) -> None:
    """`--segmentation MASK` with `--segmenter torchvision:PATH` or the CLIP prior was accepted, the segmenter
    and prior silently ignored (a weights file that did not exist too) and recorded as used."""
    import semflow

    semflow.write_image(tmp_path / "mask.png", np.full((48, 64), 3, np.uint8))
    for extra in (["--segmenter", "torchvision:nope.pth"], ["--prior", "clip", "--clip-weights", "nope.pt"]):
        result = run_cli("flow", *pair, "-o", "o.flo", "--method", "semantic", "--baseline", "dis-fast",
                         "--segmentation", "mask.png", *extra)
        assert result.rc == 1 and not (tmp_path / "o.flo").exists()
        assert result.stderr.splitlines() == ["semflow: error: 'semantic' takes given masks (--segmentation) or a"
                                              " segmenter (--segmenter, --prior), not both"]
    assert run_cli("flow", *pair, "-o", "o.flo", "--method", "semantic", "--baseline", "dis-fast",
                   "--segmentation", "mask.png", "--segmenter", "camvid").rc == 0  # the default, said aloud


def test_segment_kinds_without_the_prior_is_refused(run_cli, pair, tmp_path) -> None:
    """`segment --kinds` changed nothing without --prior clip (label maps hold classes, not kinds), silently."""
    result = run_cli("segment", pair[0], "--out", "seg", "--kinds", "Tree:plane")
    assert result.rc == 1 and not (tmp_path / "seg").exists()
    assert result.stderr.splitlines() == ["semflow: error: --kinds acts only with --prior clip"]


@pytest.mark.parametrize("given", ["full", "shrunk"])
def test_a_baseline_flow_file_fits_the_frames_as_given_or_as_shrunk(run_cli, tmp_path, given: str) -> None:
    """`--baseline-flow FILE` took only a flow of the frames as given; the same flow in a `--baseline-flows`
    folder was also taken at the size --max-side shrinks them to."""
    import semflow
    from semflow.synthetic import translation_scene

    scene = translation_scene(96, 128, shift=(2.0, 1.0), seed=5)
    semflow.write_image(tmp_path / "a.png", scene.img1)
    semflow.write_image(tmp_path / "b.png", scene.img2)
    size = (96, 128) if given == "full" else (48, 64)
    semflow.write_flow(tmp_path / "base.flo", np.zeros((*size, 2), np.float32))
    result = run_cli("flow", "a.png", "b.png", "-o", "o.flo", "--method", "semantic", "--baseline-flow", "base.flo",
                     "--max-side", "64")
    assert result.rc == 0, result.stderr
    assert semflow.read_flow(tmp_path / "o.flo").shape == (48, 64, 2)


def test_flow_viz_takes_max_flow(run_cli, pair, tmp_path) -> None:
    """README: every picture takes --max-flow; `flow --viz` had no such option (a usage error)."""
    import semflow
    from semflow.viz import add_legend, flow_to_color

    result = run_cli("flow", *pair, "-o", "o.flo", "--viz", "v.png", "--max-flow", "5")
    assert result.rc == 0, result.stderr
    flow = semflow.read_flow(tmp_path / "o.flo")
    assert np.array_equal(semflow.read_image(tmp_path / "v.png"), add_legend(flow_to_color(flow, 5.0), 5.0))


def test_options_a_command_cannot_use_are_not_offered_and_one_name_serves_one_thing(run_cli, pair, tmp_path) -> None:
    """`batch --help` offered --baseline-flows, which every batch refused; `segment` called the segmenter
    `--backend` where run, batch, flow and compare say `--segmenter`."""
    help_text = CliRunner().invoke(main, ["batch", "--help"]).output
    assert "--baseline-flows" not in help_text and "--baseline " in help_text
    result = run_cli("segment", pair[0], "--out", "seg", "--segmenter", "camvid")
    assert result.rc == 0, result.stderr
    assert (tmp_path / "seg" / "a.png").is_file()


@pytest.mark.parametrize("at_pair", [0, 2])
def test_an_interrupted_run_says_whether_it_kept_anything(make_frames, monkeypatch, tmp_path: Path, at_pair: int) -> None:
    """A newcomer probe: Ctrl-C before the first pair removed the folder the run made, and the line still said
    "finished outputs are kept; `run` can continue with --resume"."""
    from conftest import failing_at_pair

    import semflow.cli as cli

    frames = make_frames(5)
    failing = failing_at_pair(at_pair)
    estimate = failing.estimate

    def interrupted(*args, **kwargs):
        try:
            return estimate(*args, **kwargs)
        except RuntimeError:
            raise KeyboardInterrupt from None

    failing.estimate = interrupted
    monkeypatch.setattr(cli, "_build_method", lambda method, settings: (failing, {}))
    result = CliRunner().invoke(main, ["run", str(frames), "--out", str(tmp_path / "out"), "--method", "dis-fast"])
    assert result.exit_code == 130 and (tmp_path / "out").exists() == (at_pair > 0)
    said = "the output folder it made is removed" if at_pair == 0 else "what it finished is kept: the same command with --resume continues"
    assert said in result.output.splitlines()[-1]


def test_the_shared_run_options_bound_and_default_as_run_options_do() -> None:
    """`run` and `batch`'s shared options: --max-frames below 2 (no pair) and --max-side below 16 are usage
    errors; --cache-mb and --progress default to RunOptions' own defaults; a path argument refuses `-`; batch's
    --save-flo names the clip folders."""
    from semflow.cli_options import PATH, shared_run_options
    from semflow.run_options import RunOptions

    seen: dict = {}

    @click.command()
    @shared_run_options(per_clip=False)
    def command(**kwargs) -> None:
        seen.update(kwargs)

    runner = CliRunner()
    assert runner.invoke(command, []).exit_code == 0
    defaults = RunOptions()
    assert seen["cache_mb"] << 20 == defaults.cache_budget and seen["progress"] is defaults.progress is None
    for args, ok in [(["--max-frames", "1"], False), (["--max-frames", "2"], True),
                     (["--max-side", "15"], False), (["--max-side", "16"], True)]:
        assert (runner.invoke(command, args).exit_code == 0) is ok, args
    with pytest.raises(click.BadParameter, match="standard input"):
        PATH.convert("-", None, None)

    @click.command()
    @shared_run_options(per_clip=True)
    def batch(**kwargs) -> None:
        pass

    assert "DIR/NAME/flo/NNNNNN.flo" in runner.invoke(batch, ["--help"]).output  # (a batch's clip folders)
