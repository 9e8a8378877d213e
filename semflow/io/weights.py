"""Reading weight files without running anything they contain.

Weight files are untrusted input. Ordinary checkpoints go through ``torch.load(weights_only=True)``
(:func:`load_torch_file`), which rebuilds tensors and plain containers only. TorchScript archives (how
OpenAI ships CLIP) are never given to ``torch.jit.load``, which runs the archive's TorchScript code
(a module's ``__setstate__``) while loading: :func:`read_torchscript_state` reads the archive's
``data.pkl`` with a restricted unpickler that rebuilds tensors from the archive's ``data/`` records and
records every scripted object as plain attributes, so nothing in the file is executed.

A TorchScript archive is a zip with one top folder ``<name>/``: ``data.pkl`` (the module tree, pickled),
``data/<key>`` (raw tensor storages), ``code/**.py`` (the classes as TorchScript source, which says
which attributes of each module class are parameters and buffers), ``constants.pkl``, ``version``.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import io
import lzma
import os
import pickle
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from semflow.errors import WeightsError, reason
from semflow.io.files import FTYP_READ, media_kind
from semflow.limits import limits_in_force, says_out_of_memory

# Storage classes a TorchScript pickle names for each tensor's storage, and their element types.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_CLASS_HEADER = re.compile(r"^class (\w+)\(Module\):\n((?:  .*\n)*)", re.MULTILINE)
_DECLARATION = re.compile(r"^  (__parameters__|__buffers__) = (\[.*\])$", re.MULTILINE)
EXPANDED_LIMIT = 64 << 20
"""Most bytes the compressed entries of a TorchScript archive may expand to, all together. torch compresses
only an archive's code (kilobytes) and stores tensors as they are, so more is a zip bomb, refused before a
byte of it is decompressed (a stored entry's bytes are in the file: it holds no more than the file's size)."""


PICKLED_CODE = "semflow loads tensors only, never pickled code"
"""Why a file that ``torch.load(weights_only=True)`` refused is not read (see :func:`refused_as_code`)."""


def refused_as_code(exc: BaseException) -> bool:
    """True when ``torch.load(weights_only=True)`` refused a file because it is not plain tensors (pickled
    objects, code)."""
    return "Weights only load failed" in str(exc) or isinstance(exc, pickle.UnpicklingError)


def torch_load_quietly(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with the warnings torch prints about a file
    (e.g. "Detected pickle protocol 4") kept off stderr: a bad file gets one line, the error semflow
    makes of it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


_FOREIGN_FILE_ERRORS = (RuntimeError, pickle.UnpicklingError, ValueError, OSError, AttributeError, IndexError, KeyError)
"""What torch raises for a file that may be no torch file at all (:func:`load_torch_file` says which it is); any
other error is a torch file's corruption (the legacy loader's struct.error on a file cut short, AssertionError on
corrupt storage keys, TypeError on a tensor record of the wrong arguments, EOFError, BadZipFile, or any other)."""


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line WeightsErrors for missing,
    truncated or foreign files. ``what`` names the file in messages ("segmenter weights")."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such {what} file")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    try:
        open(path, "rb").close()
    except OSError as exc:  # (torch's own error for it read "not a torch weights file")
        raise WeightsError(f"{path}: cannot read {what}: {exc.strerror}") from None
    refuse_zip_bomb(path, what)
    try:
        return torch_load_quietly(path)
    except Exception as exc:  # (any type at all on a corrupt file, see _FOREIGN_FILE_ERRORS; but memory running out)
        if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and says_out_of_memory(str(exc))):
            limit = limits_in_force("RLIMIT_AS")
            raise WeightsError(f"{path}: cannot read {what}: out of memory while loading it"
                               + (f" (the address-space limit is {limit}; raise it)" if limit else "")) from None
        if type(exc).__module__.startswith("safetensors"):  # torch hands a .safetensors file to safetensors
            raise WeightsError(f"{path}: cannot read {what}: the file is truncated or corrupt (safetensors: "
                               f"{reason(exc, 80)})") from None
        text = str(exc).strip()
        head = b"?"  # (unreadable now: say what torch's error says below)
        with contextlib.suppress(OSError), open(path, "rb") as file:
            head = file.read(FTYP_READ)
        seen = media_kind(head)
        if not head:
            why = "the file is empty"
        elif seen is not None:  # (torch said "pop from empty list" for a video, "never pickled code" for a PNG)
            why = f"not a torch weights file: it is {seen}"
        elif ("central directory" in text or not isinstance(exc, _FOREIGN_FILE_ERRORS)
              or (head.startswith(b"PK\x03\x04") and not _is_zip(path))):  # (a torch zip cut short)
            why = "the file is truncated or corrupt"
        elif refused_as_code(exc):
            why = f"not a torch weights file ({PICKLED_CODE})"
        elif isinstance(exc, KeyError) or "invalid load key" in text.lower():  # no pickle: torch read a byte as a key
            why = "not a torch weights file"
        elif _torchscript(path):
            why = "a TorchScript archive, not weights: save the model's state_dict() (torch.save(model.state_dict(), PATH))"
        elif "inline_container" in text or "PytorchStreamReader" in text:
            why = "not a torch weights file (a zip archive of something else)"
        else:  # (never torch's own text, such as "pop from empty list")
            why = "not a torch weights file"
        raise WeightsError(f"{path}: cannot read {what}: {why}") from None


def refuse_zip_bomb(path: Path, what: str | None = None) -> None:
    """A one-line WeightsError where the compressed entries of the zip ``path`` expand beyond
    :data:`EXPANDED_LIMIT` together: ``torch.load`` inflates an entry whole before checking its size, and
    ``torch.save`` stores tensors as they are (a 523 KB file inflated to 512 MB before torch raised).
    ``what`` names the file in the message ("cannot read WHAT: ..."; None: the reason alone)."""
    if (expanded := _compressed_bytes(path)) > EXPANDED_LIMIT:
        said = "" if what is None else f"cannot read {what}: "
        raise WeightsError(f"{path}: {said}its compressed entries expand to {expanded} bytes, over the"
                           f" {EXPANDED_LIMIT >> 20} MiB semflow inflates: a zip bomb, or a checkpoint zipped again"
                           " with compression (torch.save stores tensors uncompressed)")


def _compressed_bytes(path: Path) -> int:
    """What the compressed entries of the zip ``path`` expand to together, bytes (0 for no zip or one that
    Python cannot read: torch then says why)."""
    if not _is_zip(path):
        return 0
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(i.file_size for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError, OSError):
        return 0


def _is_zip(path: str | os.PathLike) -> bool:
    """``zipfile.is_zipfile``, False where its check raises (BadZipFile for an end record of a multi-disk zip)."""
    try:
        return zipfile.is_zipfile(path)
    except (zipfile.BadZipFile, ValueError):
        return False


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """True for a TorchScript zip (``<name>/constants.pkl`` and ``<name>/code/``), False otherwise (a zip that
    Python's zipfile cannot read included: the reader given it says why)."""
    if not _is_zip(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError):  # ("zip file version 25.5"...)
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _torchscript(path: str | os.PathLike) -> bool:
    """:func:`is_torchscript_archive`, False for a file it cannot read."""
    try:
        return is_torchscript_archive(path)
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


class ScriptObject:
    """A scripted object as data: its TorchScript class name and the state the archive holds for it.

    ``state`` is the attribute dict of an ordinary module, or whatever the class's own
    ``__getstate__`` returned when it was saved (that class's ``__setstate__`` is never run).
    """

    qualified_name: str = ""

    def __init__(self, *args: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _script_class(qualified_name: str) -> type[ScriptObject]:
    return type(qualified_name.rsplit(".", 1)[-1], (ScriptObject,), {"qualified_name": qualified_name})


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_ignored: Any) -> torch.Tensor:
    """A tensor viewing ``storage`` (a flat tensor of the right dtype); bounds are checked by torch."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor without a storage record")
    return storage.as_strided(tuple(size), tuple(stride), int(offset))


def _first(value: Any, *_ignored: Any) -> Any:
    return value


class _Entries:
    """Reads entries of a zip, no more bytes than each says it holds (zipfile stops there), refusing compressed
    ones that expand beyond :data:`EXPANDED_LIMIT` together before decompressing them."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive, self.expanded = archive, 0

    def info(self, name: str) -> zipfile.ZipInfo:
        return self.archive.getinfo(name)

    def read(self, name: str, most: int | None = None) -> bytes:
        """The entry's bytes, at most ``most`` of them (None: all it says it holds)."""
        info = self.archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            self.expanded += info.file_size
            if self.expanded > EXPANDED_LIMIT:
                raise pickle.UnpicklingError(f"{name} expands to {info.file_size} bytes compressed in "
                                             f"{info.compress_size}: a zip bomb, not torch's")
        with self.archive.open(info) as entry:
            return entry.read(info.file_size if most is None else min(most, info.file_size))


class _Unpickler(pickle.Unpickler):
    """Rebuilds tensors, containers and scripted objects as data; refuses every other global."""

    def __init__(self, data: bytes, archive: _Entries, root: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.root = archive, root
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _first
        if module == "torch.jit._pickle" and (name.startswith("build_") or name == "restore_type_tag"):
            return _first  # typed-list builders and type tags: the value itself
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: not tensor data")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        """A storage record ``('storage', dtype, key, location, numel)`` as a flat tensor (read once)."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unknown persistent record")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype) or not isinstance(key, str) or not key.isdigit():
            raise pickle.UnpicklingError(f"bad storage record {key!r}")
        if key not in self.storages:  # (its size is checked before a byte is read; torch writes exactly the
            name = f"{self.root}/data/{key}"  # storage's bytes, which views of it share: only those are read)
            held = self.archive.info(name).file_size
            size = torch.empty(0, dtype=dtype).element_size()
            if not isinstance(numel, int) or numel < 0 or held < numel * size:
                raise pickle.UnpicklingError(f"storage {key} holds {held} bytes, not {numel} elements")
            raw = bytearray(self.archive.read(name, numel * size))
            if len(raw) != numel * size:
                raise EOFError(f"storage {key} is cut short")
            flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self.storages[key] = flat.view(dtype)
        return self.storages[key]


def _declared_tensors(archive: _Entries, root: str) -> dict[str, tuple[list[str], list[str]]]:
    """Qualified class name -> (parameter names, buffer names), read as text from ``code/**.py``."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    prefix = f"{root}/code/"
    for name in archive.archive.namelist():
        if not (name.startswith(prefix) and name.endswith(".py")):
            continue
        module = name[len(prefix):-3].replace("/", ".")
        text = archive.read(name).decode("utf-8", errors="replace")
        for match in _CLASS_HEADER.finditer(text):
            lists = {kind: ast.literal_eval(value) for kind, value in _DECLARATION.findall(match.group(2))}
            params, buffers = ([n for n in lists.get(kind, []) if isinstance(n, str)]  # (names only: a list or
                               for kind in ("__parameters__", "__buffers__"))     # a number names nothing)
            out[f"{module}.{match.group(1)}"] = (params, buffers)
    return out


def _collect(obj: ScriptObject, declared: dict[str, tuple[list[str], list[str]]], prefix: str,
             out: dict[str, torch.Tensor], path: tuple[int, ...]) -> None:
    """Parameters, then buffers, then submodules' tensors of ``obj``, as ``nn.Module.state_dict`` orders them."""
    if not isinstance(obj.state, dict):
        raise WeightsError(f"module {prefix or '(top)'} of class {obj.qualified_name} keeps its state through "
                           "its own __setstate__ code, which semflow never runs")
    params, buffers = declared.get(obj.qualified_name, ([], []))
    for key in (*params, *buffers):
        value = obj.state.get(key)
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
    for key, value in obj.state.items():
        if isinstance(value, ScriptObject) and value.qualified_name in declared and id(value) not in path:
            _collect(value, declared, f"{prefix}{key}.", out, (*path, id(value)))


def read_torchscript_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive's module, keyed as its ``state_dict()``
    would be, read without executing anything in the file (CPU tensors).

    Raises WeightsError for a file that is not a TorchScript archive, one whose pickle names anything
    but tensors, containers and scripted classes, and one whose module (or a submodule) keeps its state
    through its own ``__setstate__`` code.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zipped:
            archive = _Entries(zipped)
            roots = {n.split("/", 1)[0] for n in zipped.namelist() if n.endswith("/data.pkl") and n.count("/") == 1}
            if len(roots) != 1:
                raise WeightsError(f"{path}: not a TorchScript archive (no <name>/data.pkl)")
            root = roots.pop()
            if root + "/byteorder" in zipped.namelist() and archive.read(root + "/byteorder").strip() != b"little":
                raise WeightsError(f"{path}: a big-endian TorchScript archive; semflow reads little-endian ones")
            declared = _declared_tensors(archive, root)
            top = _Unpickler(archive.read(f"{root}/data.pkl"), archive, root).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, ValueError, TypeError, RuntimeError,
            SyntaxError, OSError, IndexError, AttributeError, RecursionError, zlib.error, lzma.LZMAError) as exc:
        raise WeightsError(f"{path}: not a readable TorchScript archive ({reason(exc)})") from None
    if not isinstance(top, ScriptObject):
        raise WeightsError(f"{path}: the TorchScript archive holds no module")
    state: dict[str, torch.Tensor] = {}
    try:
        _collect(top, declared, "", state, (id(top),))
    except RecursionError:
        raise WeightsError(f"{path}: modules nested too deeply to be a model") from None
    return state
