"""Where semflow writes: every output location checked before the work starts, and a run's folder
owned by the run.

- :func:`check_outputs` is the one pre-check every command calls before it reads or computes
  anything: each output file's folder exists or can be created and is writable, no output file is a
  folder, no output folder is a file. A command that cannot write its results fails at once, having
  written nothing.
- :class:`OutputFolder` is ``semflow run``'s ``--out``: locked while a run writes to it (a second run
  into the same folder stops with a one-line error), with a manifest of every file the run writes
  there (in the work folder while it runs, in ``summary.json`` once it is done). A fresh run first
  removes what the previous run listed (so an interrupted run never leaves old and new outputs side
  by side) and never touches anything else: a file semflow did not write stays. semflow never writes or deletes through a symbolic link it did not
  create: a link in place of ``flo/`` or ``.semflow-work`` (or inside the work folder) is refused.

Overwriting, the same in every command: the files a command is asked to write (``-o``, ``--viz``,
``--json``, the documented names inside ``--out`` and ``--explain``) are replaced, atomically; nothing
else is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from semflow.errors import OutputError
from semflow.io.atomic import (
    STALE_STAGING_SECONDS,
    TEMP_MARK,
    discard_folder,
    discard_leftovers,
    staging_folder,
    stream_link,
)
from semflow.io.claimed import ClaimedNames
from semflow.io.files import name_key
from semflow.io.jsonfile import loads_untrusted

MANIFEST_NAME = "manifest"
"""The file in a run's work folder that lists what the run wrote."""
_MANIFEST_HEADER = "# files this semflow run wrote in its output folder (relative paths)\n"
RUN_NAMES = re.compile(r"^(summary\.json|flow\.mp4|panel\.mp4|plot\.png|flo/|flo/(\d{6}|[1-9]\d{6,})\.flo)$")
"""The only names a manifest may make semflow delete: what `semflow run` writes (a pair's .flo file as
``runstore.pair_name`` names it: six digits, more past pair 999999). A manifest is a file in a folder the user
controls; an entry such as ../../x must never become a deletion."""
# The temporary file a writer of one of those makes beside it (io.atomic.temp_path_beside:
# .<stem>.semflow-XXXXXXXX<ext>, videos .<stem>.semflow-XXXXXXXX.partial.mp4); one is left behind only by a run
# that was killed outright (SIGKILL). The mark keeps a user's hidden .flow.mybackup.mp4 out of it.
_TEMP = re.compile(rf"^\.(?P<stem>[^/]+)\.{re.escape(TEMP_MARK)}[a-z0-9_]{{8}}(?:\.partial)?(?P<ext>\.[a-z0-9]+)$")
_RUN_FILES = ("flow.mp4", "panel.mp4", "plot.png")
"""The files a run writes in its folder besides its summary (what a fresh run replaces)."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a dangling link counts as existing)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_creatable_folder(folder: Path, label: str) -> None:
    """``folder`` is a writable folder, or can be created inside one."""
    existing = _nearest_existing(folder)
    if not existing.exists():
        said = "a link to nothing" if existing == Path(os.path.abspath(folder)) else f"{existing} is a link to nothing"
        raise OutputError(f"{label}: {said}")
    if not existing.is_dir():
        raise OutputError(f"{label}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: folder {existing} is not writable")


def check_output_file(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless a file can be written at ``path`` (checked, nothing created)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: a folder, where a file is to be written; name a file")
    if path.exists() and not path.is_file():  # (following a link: /dev/stdout is one to a terminal or pipe)
        raise OutputError(f"{path}: is a device, pipe or socket, not a file; semflow writes a file and renames it"
                          " into place, which would replace it: name a file")
    stream = stream_link(path)
    if stream:  # /dev/stdout with stdout sent to a file: that file passes the test above, the link would go
        raise OutputError(f"{path}: is {stream}, not a file; semflow writes a file and renames it into place,"
                          " which would replace it: name a file")
    _check_creatable_folder(path.parent, str(path))
    refuse_anothers_file(path)


def refuse_anothers_file(path: Path) -> None:
    """:class:`OutputError` when ``path`` is another user's file in a sticky folder (a shared one, as /tmp):
    only its owner, the folder's owner or root may replace it, and a run found that out at its very end."""
    try:
        st, folder = os.lstat(path), os.stat(path.parent)
    except OSError:  # (not there: nothing to replace)
        return
    me = os.geteuid()
    if folder.st_mode & stat.S_ISVTX and me != 0 and me not in (st.st_uid, folder.st_uid):
        raise OutputError(f"{path}: another user's file in a shared (sticky) folder; only they can replace it:"
                          " choose another name or folder")


def check_output_folder(path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: not a folder")
    _check_creatable_folder(path, str(path))


def refuse_inputs_as_outputs(inputs: Iterable[str | os.PathLike | None],
                             outputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise :class:`OutputError` when one of ``outputs`` (files or folders) is one of ``inputs``, by any
    path or link: semflow never writes over what it reads (``None`` entries are options not given). Each
    path is looked at once, so a folder of thousands of inputs against thousands of outputs is quick."""
    given: dict[tuple[int, int], Path] = {}  # each input by its file identity (what os.path.samefile compares)
    for path in filter(None, inputs):
        with contextlib.suppress(OSError):
            st = os.stat(path)
            given.setdefault((st.st_dev, st.st_ino), Path(path))
    for out in filter(None, outputs):
        try:
            st = os.stat(out)
        except OSError:  # not there yet
            continue
        path = given.get((st.st_dev, st.st_ino))
        if path is not None:
            alias = "" if os.path.abspath(out) == os.path.abspath(path) else f" (as {path})"
            raise OutputError(f"{out}: is also an input{alias}; semflow does not write over what it reads:"
                              " choose another output")


def refuse_outputs_inside(folder: str | os.PathLike, outputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise :class:`OutputError` when one of ``outputs`` is inside the input ``folder`` (by any path or
    link): a command that reads a whole folder (``compare``'s dataset) writes nothing into it."""
    inside = os.path.realpath(folder)
    key = name_key(inside)  # (Data/x.json is inside data where the file system ignores case)
    for out in outputs:
        if out is not None and os.path.commonpath([key(inside), key(os.path.realpath(out))]) == key(inside):
            raise OutputError(f"{out}: is inside {folder}, which this command reads; semflow does not write"
                              " into what it reads: choose another output")


def check_outputs(files: Iterable[str | os.PathLike | None] = (),
                  folders: Iterable[str | os.PathLike | None] = (),
                  inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """The pre-check every command runs before its work: each of ``files`` can be written and each of
    ``folders`` is or can become a writable folder, no file is named twice, and none of them is one of
    ``inputs`` (``None`` entries are options not given)."""
    files, folders = list(files), list(folders)
    seen: set[str] = set()
    keys: dict[str, Callable[[str], str]] = {}  # (name_key of each folder, asked once: a segment lists thousands)

    def same_name(real: str) -> str:
        parent = os.path.dirname(real)
        if parent not in keys:
            keys[parent] = name_key(parent)
        return keys[parent](real)

    for file in files:
        if file is not None:
            check_output_file(file)
            name = same_name(os.path.realpath(file))
            if name in seen:
                raise OutputError(f"{file}: named for two outputs; one would be written over the other:"
                                  " choose another name for one of them")
            seen.add(name)
    for folder in folders:
        if folder is not None:
            check_output_folder(folder)
            real = Path(os.path.realpath(folder))
            for place in (real, *real.parents):  # a file's name as this folder, or a folder above it
                if same_name(str(place)) in seen:  # (the folder itself is named once, as given)
                    what = f"{folder}: named as an output file and as the output folder" if place == real else \
                        f"{place}: named as an output file and as a folder above the output folder {folder}"
                    raise OutputError(f"{what}; choose another name for one of them")
    refuse_inputs_as_outputs(inputs, [*files, *folders])


def refuse_link(path: Path, root: Path) -> None:
    """Raise :class:`OutputError` if ``path`` or a folder between ``root`` and it is a symbolic link."""
    relative = path.relative_to(root)
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise OutputError(f"{current}: is a symbolic link; semflow does not write or delete through links"
                              " it did not create (remove it or choose another --out)")


def lock_folder(folder: Path) -> int:
    """Lock the existing ``folder`` for this command (``fcntl.flock`` on the folder itself: released when
    the returned descriptor is closed or the process dies; no lock file). OutputError when another semflow
    command holds it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"{folder}: another semflow command is writing to this folder; wait for it or choose"
                          " another output folder") from None
    return fd


@contextlib.contextmanager
def output_staging(out_dir: Path, prefix: str, *, lock: bool = False) -> Iterator[Path]:
    """Create ``out_dir`` (and the folders above it) where missing, lock it with ``lock``
    (:func:`lock_folder`), and yield a fresh staging folder in it (:func:`~semflow.io.atomic.staging_folder`,
    named ``<prefix>XXXXXXXX``) for a command to write into before it moves its outputs in place. When the
    block fails, the folders this created are removed again (when nothing else is in them); an OSError
    naming a staged file (a full disk) is raised naming the output it stands for in ``out_dir``. With ``lock``
    the staging folders a killed command left go whatever their age (no other command can be making one)."""
    created = []  # deepest first
    for folder in (out_dir, *out_dir.parents):
        if os.path.lexists(folder):
            break
        created.append(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = lock_folder(out_dir) if lock else None
    try:
        with staging_folder(out_dir, prefix, stale_seconds=0.0 if lock else STALE_STAGING_SECONDS) as stage:
            try:
                yield stage
            except OSError as exc:  # (a full disk) named by the output it stands for, not the staged file
                staged = Path(exc.filename) if isinstance(exc.filename, str) else None
                if exc.errno is None or staged is None or not staged.is_relative_to(stage):
                    raise
                raise OSError(exc.errno, exc.strerror, str(out_dir / staged.relative_to(stage))) from None
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when nothing else is in it
        raise
    finally:
        if fd is not None:
            os.close(fd)


class OutputFolder:
    """``semflow run``'s output folder: locked, with a manifest of what the run wrote.

    Use as a context manager (``with OutputFolder(path, fresh=True, work="…", reserved=[...])``). On entry
    the folder is created and locked (``fcntl.flock`` on the folder itself: released when the run ends
    or its process dies, and no lock file is left behind). ``work`` is the run's own work folder; while
    the run goes, the manifest is ``work/manifest``; a finished run lists what it wrote in
    ``summary.json`` (``outputs.written``, from :meth:`written`) and deletes its work folder. A fresh
    run first deletes what the previous run listed in either place, then starts a new work folder; a
    resumed run keeps both. ``reserved`` are what the run creates below the root (``flo``, ``flow.mp4``):
    they and the work folder may not be links, nor contain any (checked on entry, before any work).
    """

    def __init__(self, path: str | os.PathLike, *, fresh: bool, work: str, summary: str = "summary.json",
                 reserved: Iterable[str] = ()) -> None:
        self.root = Path(path)
        self.fresh = fresh
        self.work = work
        self.summary = summary
        self.reserved = [*reserved, work]
        self.manifest = self.root / work / MANIFEST_NAME
        self._fd: int | None = None
        self._claimed = ClaimedNames()  # (a long --save-flo run's names: one bit a pair, not 225 bytes)

    # --- lock -------------------------------------------------------------------------------------

    def __enter__(self) -> OutputFolder:
        check_output_folder(self.root)
        for name in (self.summary, *_RUN_FILES):
            refuse_anothers_file(self.root / name)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fd = lock_folder(self.root)
        try:
            for name in self.reserved:
                refuse_link(self.root / name, self.root)
                self._refuse_links_below(self.root / name)
            self._remove_leftover_temps()
            discard_leftovers(self.root / self.work)
            previous = self._listed()
            if self.fresh:
                self._check_removable(previous)
                self._remove(previous)
                self.remove_tree(self.work, strict=True)
            else:
                self._claimed = ClaimedNames(previous)
            refuse_link(self.manifest, self.root)
            self.manifest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.manifest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(_MANIFEST_HEADER + "".join(entry + "\n" for entry in self._claimed))
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    # --- manifest ---------------------------------------------------------------------------------

    def _listed(self) -> list[str]:
        """What the previous run listed: its work manifest (interrupted) and its summary (finished)."""
        entries: list[str] = []
        if self.manifest.is_file() and not self.manifest.is_symlink():
            lines = self.manifest.read_text(encoding="utf-8", errors="replace").splitlines()
            entries += [line for line in lines if line and not line.startswith("#")]
        summary = self.root / self.summary
        if summary.is_file() and not summary.is_symlink():
            with contextlib.suppress(ValueError, TypeError, AttributeError, OSError):
                written = loads_untrusted(summary.read_text(encoding="utf-8"))["outputs"]["written"]
                entries += [e for e in written if isinstance(e, str)]
        return list(dict.fromkeys(entries))

    def claim(self, relative: str) -> Path:
        """Record ``relative`` (``"flo/000003.flo"``, or ``"flo/"`` for a folder the run creates) in the
        manifest before the run writes it; return its path. Refuses a path that goes through a link."""
        path = self.root / relative
        refuse_link(path, self.root)
        if relative not in self._claimed:
            fd = os.open(self.manifest, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(relative + "\n")
            self._claimed.add(relative)
        return path

    def written(self) -> list[str]:
        """Everything this run (with the runs it resumed) wrote, in the order it was claimed."""
        return list(self._claimed)

    def _check_removable(self, entries: list[str]) -> None:
        """:class:`OutputError`, before anything is deleted, when a folder that holds the previous run's files
        (or its work folder) is not writable: a fresh run could not replace them, and they would later pass
        for its own (a --resume took such a folder's old .flo files for finished pairs)."""
        folders = {self.root}
        for entry in entries:
            path = self.root / entry
            if RUN_NAMES.match(entry) and not entry.endswith("/") and os.path.lexists(path):
                folders.add(path.parent)
        work = self.root / self.work
        if work.is_dir() and not work.is_symlink():
            folders.update(Path(folder) for folder, _, _ in os.walk(work))  # (links are not followed)
        for folder in sorted(folders):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise OutputError(f"{folder}: not writable: the previous run's files in it cannot be replaced")

    def _remove(self, entries: list[str]) -> None:
        """Delete the listed regular files the previous run wrote, then its listed folders if empty."""
        entries = [e for e in entries if RUN_NAMES.match(e)]
        for entry in entries:
            path = self.root / entry
            if entry.endswith("/") or not os.path.lexists(path):
                continue
            refuse_link(path, self.root)
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise OutputError(f"{path}: cannot remove the previous run's file: {exc.strerror}") from None
        for entry in entries:
            if entry.endswith("/") and not (self.root / entry).is_symlink():
                with contextlib.suppress(OSError):
                    (self.root / entry).rmdir()  # only when nothing else is left in it

    def _remove_leftover_temps(self) -> None:
        """Delete the temporary files a killed run left beside the files it writes (a partial flow.mp4 is
        as large as the video). Regular files only; this run holds the lock, so no writer of them runs."""
        for sub in ("", "flo/"):
            folder = self.root / sub
            if folder.is_symlink() or not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                found = _TEMP.match(entry.name)
                if found and RUN_NAMES.match(sub + found["stem"] + found["ext"]) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def _refuse_links_below(self, folder: Path) -> None:
        if not folder.is_dir() or folder.is_symlink():
            return
        for base, dirs, files in os.walk(folder):
            for name in dirs + files:
                if os.path.islink(os.path.join(base, name)):
                    raise OutputError(f"{os.path.join(base, name)}: is a symbolic link; semflow does not write"
                                      " or delete through links it did not create")

    def discard(self) -> None:
        """Delete the work folder, then the folder itself if that leaves it empty: for a run that
        created the folder and failed before it finished anything."""
        self.remove_tree(self.work)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when nothing else is in it

    def remove_tree(self, name: str, *, strict: bool = False) -> None:
        """Delete the folder ``name`` the run owns (its work folder), never following links; with ``strict``
        what cannot be deleted is an :class:`OutputError` (a fresh run: old records would pass for its own),
        else it is left."""
        path = self.root / name
        refuse_link(path, self.root)
        if not path.is_dir():
            return
        try:  # (not strict: all it can, past what it cannot delete)
            discard_folder(path, strict=strict)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"{exc.filename or path}: cannot remove the previous run's work files: "
                              f"{exc.strerror}") from None
