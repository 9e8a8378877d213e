"""Weight files are untrusted input: nothing in one is ever executed (issue 14, Security).

A TorchScript archive given as CLIP weights is read by a restricted unpickler (semflow.io.weights),
never by torch.jit.load, which runs a scripted module's ``__setstate__`` while loading. The malicious
archives are built here: a scripted module whose ``__setstate__`` writes a file (through
``torch.from_file``, as in the report), and a hand-made archive whose pickle calls ``os.system``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import semflow
from semflow.errors import WeightsError
from semflow.io.weights import is_torchscript_archive, load_torch_file, read_torchscript_state

ROOT = Path(__file__).resolve().parents[1]


class _Writer(torch.nn.Module):
    """Scripted, its ``__setstate__`` creates the file named in its state (torch.from_file, shared)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.marker = torch.zeros(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.target, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.target = state[0]
        self.weight = state[1]
        self.training = state[2]
        written = torch.from_file(self.target, True, 8, dtype=torch.uint8)
        written.fill_(65)
        self.marker = written[:1].float()


def _malicious_archive(tmp_path: Path) -> tuple[Path, Path]:
    """(archive, the file its __setstate__ writes), checked to be malicious for torch.jit.load."""
    target = tmp_path / "written-by-setstate"
    archive = tmp_path / "ViT-B-32.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation warnings
        torch.jit.script(_Writer(str(target))).save(str(archive))
        torch.jit.load(str(archive))  # what the old loader did: the archive's code runs...
    assert target.is_file()  # ... and writes the file: the archive is a real attack
    target.unlink()
    return archive, target


def test_torchscript_setstate_code_is_not_run(tmp_path):
    archive, target = _malicious_archive(tmp_path)
    assert is_torchscript_archive(archive)
    with pytest.raises(WeightsError, match="its own __setstate__ code, which semflow never runs"):
        read_torchscript_state(archive)
    assert not target.exists()


def test_malicious_torchscript_clip_weights_write_nothing(tmp_path):
    pytest.importorskip("open_clip", reason="the CLIP prior's extra is not installed: pip install 'semflow[clip]'")
    from semflow.segmentation.clip.loading import load_clip_model

    archive, target = _malicious_archive(tmp_path)
    with pytest.raises(WeightsError, match=r"is not a readable CLIP checkpoint .*never runs"):
        load_clip_model("ViT-B-32", archive)
    assert not target.exists()


def test_cli_with_malicious_torchscript_clip_weights_is_one_line_error(tmp_path, make_frames):
    pytest.importorskip("open_clip", reason="the CLIP prior's extra is not installed: pip install 'semflow[clip]'")
    from click.testing import CliRunner

    from semflow.cli import main

    archive, target = _malicious_archive(tmp_path)
    frames = make_frames(count=2, height=32, width=48)
    result = CliRunner().invoke(main, ["segment", str(frames / "0000.png"), "--out", str(tmp_path / "seg"),
                                       "--prior", "clip", "--clip-weights", str(archive)])
    assert result.exit_code == 1 and "never runs" in result.output and "Traceback" not in result.output
    assert not target.exists()


def _archive(path: Path, data_pkl: bytes, records: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", data_pkl)
        z.writestr("m/constants.pkl", pickle.dumps(()))
        z.writestr("m/code/__torch__.py", "class M(Module):\n  __parameters__ = [\"w\", ]\n  __buffers__ = []\n")
        for name, raw in (records or {}).items():
            z.writestr(f"m/data/{name}", raw)
    return path


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_torchscript_pickle_naming_other_globals_is_refused(tmp_path):
    marker = tmp_path / "touched"
    archive = _archive(tmp_path / "evil.pt", pickle.dumps(_System(f"touch {marker}"), protocol=2))
    assert is_torchscript_archive(archive)
    with pytest.raises(WeightsError, match=r"refused to load (posix|nt|os)\.system"):
        read_torchscript_state(archive)
    assert not marker.exists()


def test_torchscript_storage_records_are_checked(tmp_path):
    class Record:  # a persistent id naming storage "0" with more elements than its bytes hold
        def __init__(self, key: str, numel: int) -> None:
            self.key, self.numel = key, numel

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, Record) else None

    def data_pkl(key: str, numel: int) -> bytes:
        import io

        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(Record(key, numel))
        return buffer.getvalue()

    with pytest.raises(WeightsError, match="holds 8 bytes, not 4 elements"):
        read_torchscript_state(_archive(tmp_path / "short.pt", data_pkl("0", 4), {"0": bytes(8)}))
    with pytest.raises(WeightsError, match="bad storage record"):
        read_torchscript_state(_archive(tmp_path / "path.pt", data_pkl("../0", 1), {"0": bytes(8)}))
    with pytest.raises(WeightsError, match="holds no module"):
        read_torchscript_state(_archive(tmp_path / "bare.pt", data_pkl("0", 2), {"0": bytes(8)}))


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.register_buffer("scale", torch.tensor([2.0, 3.0], dtype=torch.float16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x)) * self.scale.float().sum()


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.Sequential(_Block(), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        self.bias = torch.nn.Parameter(torch.randn(2))
        self.register_buffer("steps", torch.arange(5))
        self.register_buffer("cache", torch.ones(2), persistent=False)
        self.plain = torch.full((2,), 7.0)  # an attribute, not a parameter or buffer: not in state_dict
        self.count = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) + self.bias + self.cache + self.plain + self.count


@pytest.mark.parametrize("how", ["script", "trace"])
def test_genuine_torchscript_state_loads_exactly(tmp_path, how):
    torch.manual_seed(0)
    net = _Net().eval()
    archive = tmp_path / f"{how}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.script(net) if how == "script" else torch.jit.trace(net, torch.ones(1, 3))
        module.save(str(archive))
        expected = torch.jit.load(str(archive)).state_dict()
    state = read_torchscript_state(archive)
    assert list(state) == list(expected) and "plain" not in state
    for key, value in expected.items():
        assert state[key].dtype == value.dtype and state[key].shape == value.shape
        assert torch.equal(state[key], value), key
    assert state["blocks.0.scale"].dtype == torch.float16 and state["steps"].dtype == torch.int64
    assert torch.equal(state["blocks.2.weight"], net.blocks[2].weight.detach())


def test_torch_load_refuses_pickled_code(tmp_path):
    marker = tmp_path / "touched"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": _System(f"touch {marker}")}, evil)
    with pytest.raises(WeightsError, match="never pickled code"):
        load_torch_file(evil, "segmenter weights")
    assert not marker.exists()


def _train_script():
    spec = importlib.util.spec_from_file_location("train_segmenter", ROOT / "scripts" / "train_segmenter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_segmenter_resume_checkpoint_loads_with_weights_only(tmp_path):
    train = _train_script()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    path = tmp_path / "last.pt"
    train.save_checkpoint(path, model, opt, gen, it=7, total=None, best=0.25, history=[{"it": 7, "miou": 0.25}])
    ck = train.load_checkpoint(path)
    assert (ck["it"], ck["total"], ck["best"], ck["history"]) == (7, None, 0.25, [{"it": 7, "miou": 0.25}])
    assert torch.equal(ck["gen"], gen.get_state()) and torch.equal(ck["rng"], torch.get_rng_state())
    restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restored.load_state_dict(ck["opt"])
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    evil = tmp_path / "evil.pt"
    torch.save({"it": _System(f"touch {tmp_path / 'touched'}")}, evil)
    with pytest.raises(pickle.UnpicklingError):
        train.load_checkpoint(evil)
    assert not (tmp_path / "touched").exists()


def test_every_torch_load_is_weights_only():
    """No torch.load in the package or the scripts may unpickle code: weights_only=True, literally."""
    offenders = []
    for path in sorted([*(ROOT / "semflow").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "torch.jit.load"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if not safe or ast.unparse(node.func) == "torch.jit.load":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("option", [["--backend", "camvid:{}"], ["--backend", "torchvision:{}"],
                                    ["--prior", "clip", "--clip-weights", "{}"]])
def test_a_plain_pickle_as_weights_is_one_line_and_runs_nothing(cli_fails, make_frames, tmp_path, option):
    # A plain pickle (protocol 4, not torch.save's 2) made torch warn on stderr before semflow's error
    # line; the user must see that line alone. Its code must not run (no file appears: cli_fails checks).
    if "clip" in option:
        pytest.importorskip("open_clip", reason="the CLIP prior's extra is not installed: pip install 'semflow[clip]'")
    frames = make_frames(count=2, height=32, width=48)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _System(f"touch {tmp_path / 'touched'}")}, protocol=4))
    args = [a.format(evil) for a in option]
    line = cli_fails("segment", frames / "0000.png", "--out", "seg", *args, match="never pickled code")
    assert "evil.pt" in line


def _shipped_with(tmp_path: Path, change: dict) -> Path:
    """The shipped segmenter weights with ``change`` made to their header, saved as ``tmp_path/w.pt``."""
    from semflow.segmentation.torch_backends import default_weights_path

    if not default_weights_path().is_file():
        pytest.skip("the shipped segmenter weights (models/camvid_lite0_fpn.pt) are not here")
    payload = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    torch.save({**payload, **change}, tmp_path / "w.pt")
    return tmp_path / "w.pt"


@pytest.mark.parametrize(("change", "message"), [
    ({"num_classes": -3}, "num_classes -3 is not a class count"),                        # was a traceback
    ({"num_classes": 0}, "num_classes 0 is not a class count"),                          # was a torch warning line
    ({"num_classes": "11"}, "num_classes '11' is not a class count"),
    ({"state_dict": [1, 2, 3]}, "its state_dict is not a mapping of names to tensors"),  # was a traceback
])
def test_a_shipped_weights_file_with_a_bad_header_is_refused(tmp_path, change, message):
    from semflow.segmentation.torch_backends import load_camvid_model

    with pytest.raises(WeightsError, match=f"w.pt: {message}"):
        load_camvid_model(_shipped_with(tmp_path, change))


def test_a_class_count_of_a_billion_is_one_line_before_the_model_is_built(cli_fails, pair, tmp_path):
    weights = _shipped_with(tmp_path, {"num_classes": 10**9})  # torch was asked for 384 GB
    cli_fails("segment", pair[0], "--out", "seg", "--backend", f"camvid:{weights}",
              match="num_classes 1000000000 is not a class count (1 to 256)")


def test_files_that_are_not_torch_files_say_so(tmp_path):
    (tmp_path / "text.pt").write_text("hello world\n")  # was "cannot read segmenter weights: 101"
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as archive:  # was "[enforce fail at inline_container.cc:180]"
        archive.writestr("a.txt", "x")
    with pytest.raises(WeightsError, match=r"text.pt: cannot read weights: not a torch weights file$"):
        load_torch_file(tmp_path / "text.pt", "weights")
    with pytest.raises(WeightsError, match=r"zip.pt: cannot read weights: not a torch weights file \(a zip archive"):
        load_torch_file(tmp_path / "zip.pt", "weights")
    # torch's own text came through: "pop from empty list" for a video, "never pickled code" for a PNG
    (tmp_path / "clip.avi").write_bytes(b"RIFF\x00\x01\x00\x00AVI LIST" + bytes(100))
    (tmp_path / "frame.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(300))
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, why in (("clip.avi", "not a torch weights file: it is an AVI video"),
                      ("frame.png", "not a torch weights file: it is a PNG image"),
                      ("clip.mp4", "not a torch weights file: it is an MP4 or MOV video"),
                      ("empty.pt", "the file is empty")):
        with pytest.raises(WeightsError, match=rf"{name}: cannot read weights: {why}$"):
            load_torch_file(tmp_path / name, "weights")


def test_a_file_given_for_weights_is_named_as_the_input_readers_sniff_it(tmp_path: Path) -> None:
    """What a file given for weights is was told by a list of its own that repeated the video sniffing, and
    called an AVIF photo "an MP4 or MOV video", a WebP one "an AVI video or another RIFF file", a Canon CR3 an
    MP4: they are named as io.files names them; a file that starts with two bytes of an image's signature by
    chance (a safetensors header's length, here "BM") is not called an image."""
    from semflow.io.files import media_kind

    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(100)
    assert media_kind(webp) == "a WebP image"
    assert media_kind(b"RIFF\x10\x00\x00\x00WAVEfmt ") == "a RIFF file (such as a WAV sound)"
    assert media_kind(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1miaf") == "an AVIF or HEIF image"
    assert media_kind(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom") == "a camera raw image (Canon CR3)"
    assert media_kind(b"II*\x00\x08\x00\x00\x00") == "a TIFF image" and media_kind(b"GIF89a") == "a GIF image"
    assert media_kind(b"\x1aE\xdf\xa3") == "a Matroska or WebM video" and media_kind(b"v/1\x01") == "an OpenEXR image"
    assert media_kind(b"BM\x00\x00\x00\x00\x00\x00{\"w\":") is None
    (tmp_path / "photo.pt").write_bytes(webp)
    with pytest.raises(WeightsError, match=r"photo\.pt: cannot read weights: not a torch weights file: it is a WebP image$"):
        load_torch_file(tmp_path / "photo.pt", "weights")


def test_a_jpeg_or_a_heif_of_another_major_brand_given_for_weights_is_named(tmp_path: Path) -> None:
    """A JPEG (a signature of three bytes: the shortest media_kind names) given for weights is "a JPEG image", as
    the list of its own named it; a HEIF still whose major brand is no image's (avci, with mif1 among its
    compatible brands past the file's first 12 bytes) is an image, not "an MP4 or MOV video"."""
    (tmp_path / "photo.pt").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200))
    (tmp_path / "still.pt").write_bytes(b"\x00\x00\x00\x1cftypavci\x00\x00\x00\x00mif1miafavci" + bytes(200))
    for name, seen in (("photo.pt", "a JPEG image"), ("still.pt", "an AVIF or HEIF image")):
        with pytest.raises(WeightsError, match=rf"{name}: cannot read weights: not a torch weights file: it is {seen}$"):
            load_torch_file(tmp_path / name, "weights")


@pytest.mark.parametrize("layout", ["target", "prefix"])
def test_shipped_weights_are_found_where_pip_install_target_prefix_or_user_puts_them(tmp_path, layout) -> None:
    """A wheel installed with --target, --prefix or --user puts the weights under <data>/share/semflow/models,
    where the lookup never looked (it tried <site-packages>/../models and sys.prefix alone): the default
    `semflow run` failed with "no such segmenter weights file" naming a path nothing was meant to be at."""
    import shutil
    import subprocess
    import sys

    site = tmp_path / ("tgt" if layout == "target" else "pfx/lib/python3.11/site-packages")
    data = tmp_path / ("tgt" if layout == "target" else "pfx")
    shutil.copytree(Path(semflow.__file__).parent, site / "semflow", ignore=shutil.ignore_patterns("__pycache__"))
    weights = data / "share" / "semflow" / "models" / "camvid_lite0_fpn.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    code = "from semflow.segmentation.torch_backends import default_weights_path as d; print(d())"
    env = {k: v for k, v in os.environ.items() if k != "SEMFLOW_MODELS"}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(site)}, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == weights
    if layout == "target":  # none anywhere: the error says where it looked and what to do
        weights.unlink()
        code = "from semflow.segmentation.torch_backends import load_camvid_model as m; m()"
        run = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(site), "HOME": str(tmp_path)},
                             cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode != 0 and "set SEMFLOW_MODELS to the folder that holds them" in run.stderr
        assert str(weights.parent) in run.stderr


def test_a_legacy_torch_file_cut_short_is_one_line(tmp_path):
    # torch's legacy (non-zip) loader raised struct.error on a file cut inside a length field: a traceback
    import io

    buffer = io.BytesIO()
    torch.save({"protocol_version": 1001, "w": torch.ones(3)}, buffer, _use_new_zipfile_serialization=False)
    whole = buffer.getvalue()
    for cut in (31, 52):
        (tmp_path / "cut.pt").write_bytes(whole[:cut])
        with pytest.raises(WeightsError, match=r"cut.pt: cannot read weights: the file is truncated or corrupt$"):
            load_torch_file(tmp_path / "cut.pt", "weights")



def _zip_needing_version(path: Path, version: int) -> Path:
    """A zip whose central directory says ``version`` is needed to extract its entry (zipfile: NotImplementedError)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", b"x")
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at + 6:at + 8] = version.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_zip_of_a_version_python_cannot_read_is_no_torchscript_archive(tmp_path):
    # zipfile's NotImplementedError ("zip file version 25.5") escaped is_torchscript_archive (--clip-weights
    # calls it first) and load_torch_file (raised while saying why torch failed)
    odd = _zip_needing_version(tmp_path / "odd.pt", 255)
    assert is_torchscript_archive(odd) is False
    with pytest.raises(WeightsError, match=r"odd.pt: cannot read weights: "):
        load_torch_file(odd, "weights")



def test_a_legacy_torch_file_with_corrupt_storage_keys_is_one_line(tmp_path):
    import io

    buffer = io.BytesIO()  # a legacy file whose list of storage keys names one its pickle has not: AssertionError
    torch.save({"w": torch.ones(3)}, buffer, _use_new_zipfile_serialization=False)
    data = bytearray(buffer.getvalue())
    at = data.rindex(b"]q\x00X") + 8  # (the key list's first key, after its 4-byte length)
    data[at] = ord("x")
    (tmp_path / "keys.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"keys.pt: cannot read weights: the file is truncated or corrupt$"):
        load_torch_file(tmp_path / "keys.pt", "weights")


def test_a_zip_whose_end_names_another_disk_is_no_torchscript_archive(tmp_path):
    import io

    buffer = io.BytesIO()  # a zip whose zip64 end locator names disk 1: zipfile.is_zipfile raised BadZipFile
    torch.save({"w": torch.ones(3)}, buffer)
    data = bytearray(buffer.getvalue())
    at = data.rindex(b"PK\x06\x07")
    data[at + 4] = 1
    (tmp_path / "disks.pt").write_bytes(bytes(data))
    assert is_torchscript_archive(tmp_path / "disks.pt") is False


def test_a_torchscript_archive_with_corrupt_compressed_data_is_one_line(tmp_path):
    # a deflated data.pkl whose stream is corrupt: zlib.error escaped read_torchscript_state
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        archive.writestr("m/code/__torch__.py", "")
    data = bytearray(path.read_bytes())
    start = data.index(b"m/data.pkl") + len("m/data.pkl")  # (the local header's name; its data follows)
    data[start] = 0xFF  # a deflate block of the reserved type
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"deflated.pt: not a readable TorchScript archive"):
        read_torchscript_state(path)



def test_torchscript_parameter_names_that_are_not_names_are_refused(tmp_path):
    # `__parameters__ = [["w"]]` in the archive's code: obj.state.get(["w"]) raised TypeError (unhashable)
    data_pkl = b"\x80\x02c__torch__\nM\n)\x81}X\x01\x00\x00\x00wK\x01sb."
    path = tmp_path / "names.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", data_pkl)
        archive.writestr("m/code/__torch__.py", "class M(Module):\n  __parameters__ = [[\"w\"], 1]\n  __buffers__ = []\n")
    assert read_torchscript_state(path) == {}


def test_a_legacy_torch_file_whose_tensor_lacks_arguments_is_one_line(tmp_path):
    # torch's legacy loader called _rebuild_tensor_v2 with the arguments the file gives: TypeError escaped
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue().replace(b"\x89ccollections\nOrderedDict\nq\n)Rq\x0bt", b"t")  # (requires_grad, hooks)
    (tmp_path / "args.pt").write_bytes(data)
    with pytest.raises(WeightsError, match=r"args.pt: cannot read weights: the file is truncated or corrupt$"):
        load_torch_file(tmp_path / "args.pt", "weights")


class _Storage:
    """A persistent id naming a storage record ``(key, numel)`` of float32 elements."""

    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _RecordPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, _Storage) else None


def _deflated_bomb(source: Path, path: Path, replace: str, megabytes: int, data_pkl: bytes | None = None) -> Path:
    """``source``'s entries in a new zip ``path``, with entry ``replace`` now ``megabytes`` MB of zeros, deflated
    (a few hundred KB on disk), and data.pkl replaced by ``data_pkl`` when given."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as out:
        for info in original.infolist():
            if info.filename == replace:
                bomb = zipfile.ZipInfo(info.filename)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                with out.open(bomb, "w", force_zip64=True) as entry:
                    chunk = bytes(1 << 20)
                    for _ in range(megabytes):
                        entry.write(chunk)
            elif data_pkl is not None and info.filename.endswith("/data.pkl"):
                out.writestr(info.filename, data_pkl)
            else:
                out.writestr(info, original.read(info))
    assert path.stat().st_size < 2 << 20  # the bomb is small on disk
    return path


@pytest.mark.parametrize("record", ["genuine", "saying the bomb's size"])
def test_a_torchscript_data_entry_that_is_a_zip_bomb_is_refused_unread(tmp_path, record):
    # read_torchscript_state decompressed a data/<key> entry whole before checking it against its record: a
    # deflated entry of 128 MB of zeros (about 130 KB on disk) took 128 MB, and a 10 GB one gigabytes
    import tracemalloc

    class One(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.w

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(One()).save(str(tmp_path / "one.pt"))
    megabytes = 128
    data_pkl = None
    if record != "genuine":  # a hand-made pickle whose storage record says the bomb's own element count
        buffer = __import__("io").BytesIO()
        _RecordPickler(buffer, protocol=2).dump(_Storage("0", megabytes << 18))
        data_pkl = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "one.pt") as original:
        root = original.namelist()[0].split("/")[0]
    bomb = _deflated_bomb(tmp_path / "one.pt", tmp_path / "bomb.pt", f"{root}/data/0", megabytes, data_pkl)
    tracemalloc.start()
    try:
        with pytest.raises(WeightsError) as caught:
            read_torchscript_state(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith(f"{bomb}: not a readable TorchScript archive (") and "\n" not in str(caught.value)
    assert peak < 50 << 20, peak


def test_any_error_torch_raises_on_a_corrupt_file_is_one_line(tmp_path, monkeypatch):
    # torch's legacy loader can raise any type on a corrupt file: one not listed in load_torch_file escaped
    import click.testing

    from semflow import cli
    from semflow.io import weights

    class Odd(Exception):
        pass

    def corrupt(path):
        raise Odd("unpack requires a buffer of 4 bytes")

    def short_of_memory(path):
        raise MemoryError

    path = tmp_path / "w.pt"
    path.write_bytes(b"\x80\x02corrupt")
    monkeypatch.setattr(weights, "torch_load_quietly", corrupt)
    with pytest.raises(WeightsError, match=r"w.pt: cannot read weights: the file is truncated or corrupt$"):
        load_torch_file(path, "weights")
    frame = tmp_path / "f.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(frame), np.zeros((16, 16, 3), np.uint8))
    result = click.testing.CliRunner().invoke(cli.main, ["segment", str(frame), "--out", str(tmp_path / "seg"),
                                                         "--backend", f"camvid:{path}"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.splitlines() if hasattr(result, "stderr") else result.output.splitlines()
    assert lines == [f"semflow: error: {path}: cannot read segmenter weights: the file is truncated or corrupt"], result.output
    monkeypatch.setattr(weights, "torch_load_quietly", short_of_memory)
    with pytest.raises(WeightsError, match=r"w.pt: cannot read weights: out of memory while loading it"):
        load_torch_file(path, "weights")


def _torch_save_bomb(tmp_path: Path, name: str) -> Path:
    """tmp_path / ``name``: ``torch.save`` of a small dict (also left as one.pt) with its data/0 made an 80 MB
    deflated bomb."""
    torch.save({"w": torch.zeros(4)}, tmp_path / "one.pt")
    with zipfile.ZipFile(tmp_path / "one.pt") as original:
        entry = next(n for n in original.namelist() if n.endswith("/data/0"))
    return _deflated_bomb(tmp_path / "one.pt", tmp_path / name, entry, 80)


def _torch_load_never(path):
    raise AssertionError("torch.load was reached")


def test_a_torch_save_file_that_is_a_zip_bomb_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    # torch.load inflated a deflated data/0 whole before its own size check (a 523 KB file grew the process by
    # 513 MB): load_torch_file refuses a zip whose compressed entries expand beyond EXPANDED_LIMIT first
    from semflow.io import weights

    bomb = _torch_save_bomb(tmp_path, "bomb.pt")

    monkeypatch.setattr(weights, "torch_load_quietly", _torch_load_never)
    with pytest.raises(WeightsError) as caught:
        weights.load_torch_file(bomb, "segmenter weights")
    message = str(caught.value)
    assert message.startswith(f"{bomb}: cannot read segmenter weights: its compressed entries expand to ")
    assert "zip bomb" in message and "\n" not in message
    monkeypatch.undo()
    assert weights.load_torch_file(tmp_path / "one.pt", "segmenter weights")["w"].shape == (4,)  # a real one loads


def test_a_clip_checkpoint_that_is_a_zip_bomb_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    # --clip-weights' OpenCLIP .pt/.bin files go to torch.load too (clip.loading.read_state_dict)
    from semflow.segmentation.clip import loading

    bomb = _torch_save_bomb(tmp_path, "bomb.bin")

    monkeypatch.setattr(loading, "torch_load_quietly", _torch_load_never)
    with pytest.raises(WeightsError) as caught:
        loading.read_state_dict(bomb, openai_format=False)
    assert str(caught.value).startswith(f"{bomb} is not a readable CLIP checkpoint (")
    assert "zip bomb" in str(caught.value) and "\n" not in str(caught.value)
