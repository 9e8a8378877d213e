"""The operating system's limits on a process (``ulimit``) as a user meets them on shared machines,
clusters and containers: a failure one of them caused becomes one line that names the limit.

An address-space limit (``ulimit -v``) makes a library fail to load ("failed to map segment from shared
object"), an allocation fail (:class:`MemoryError`) or a thread fail to start; a limit on processes
(``ulimit -u``) makes a thread or a child process fail to start (``EAGAIN``); a file-size limit
(``ulimit -f``) makes a write fail with ``EFBIG``. :func:`limit_message` says which, with the limit in
force, or ``None`` for a failure none of them explains.
"""

from __future__ import annotations

import errno
import os
import re

try:
    import resource
except ImportError:  # (not on Windows: no limits to name)
    resource = None  # type: ignore[assignment]

_LIMITS = {  # resource name -> (the ulimit option, its unit in ulimit's terms, bytes in one unit)
    "RLIMIT_AS": ("-v", "KiB", 1024),
    "RLIMIT_NPROC": ("-u", "processes", 1),
    "RLIMIT_FSIZE": ("-f", "KiB", 1024),
    "RLIMIT_NOFILE": ("-n", "files", 1),
}


FEW_PROCESSES_LEFT = 64
"""Fewer more processes and threads than this left to the user: ``ulimit -u`` may be what stopped one from
starting (with more left, the system's default, e.g. 96369, is named as the cause of every failure)."""
FEW_FILES = 1024
"""A limit on open files below this may be what stopped Ray (its GCS did not start under ``ulimit -n 32``;
64 worked; 1024 is the usual default, named as the cause of every failure otherwise)."""


def limit_in_force(name: str) -> str | None:
    """``ulimit -v 600000 KiB`` for the resource ``name`` (``RLIMIT_AS``, ...) when it may be the cause of a
    failure, else None: when it is limited (:func:`limit_text`), ``ulimit -u`` only where it binds
    (:func:`process_limit_binds`), ``ulimit -n`` only under :data:`FEW_FILES`."""
    said = limit_text(name)
    if said and (name == "RLIMIT_NPROC" and not process_limit_binds()
                 or name == "RLIMIT_NOFILE" and resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= FEW_FILES):
        return None
    return said


def limit_text(name: str) -> str | None:
    """``ulimit -v 600000 KiB`` for the resource ``name`` when it is limited at all, else None."""
    if resource is None or not hasattr(resource, name):
        return None
    try:
        soft, _ = resource.getrlimit(getattr(resource, name))
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    option, unit, size = _LIMITS[name]
    return f"ulimit {option} {soft // size} {unit}"


def limits_in_force(*names: str) -> str:
    """Those of the resources ``names`` that may be the cause of a failure (:func:`limit_in_force`: limited,
    ``ulimit -u`` where it binds, ``ulimit -n`` under :data:`FEW_FILES`), as ``ulimit -u 12 processes, ulimit -v ...``."""
    said = [text for text in (limit_in_force(name) for name in names) if text]
    return ", ".join(said)


def _thread_failed(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc) or \
        isinstance(exc, OSError) and exc.errno == errno.EAGAIN and exc.filename is None  # (fork, clone)


_ALLOCATION = re.compile(r"can't allocate memory|cannot allocate memory|std::bad_alloc|insufficient memory|"
                         r"failed to allocate", re.IGNORECASE)


_UNMAPPED = re.compile(r"failed to map segment|cannot allocate memory|cannot map zero-fill pages", re.IGNORECASE)
"""What the loader says of a library it had no address space for (an ImportError's text)."""


def says_out_of_memory(text: str) -> bool:
    """Whether ``text`` (an error's line, e.g. one a Ray worker sent back) says memory or address space ran
    out: an allocation (:data:`_ALLOCATION`) or a library's loading (:data:`_UNMAPPED`)."""
    return bool(_ALLOCATION.search(text) or _UNMAPPED.search(text))


def _allocation_failed(exc: BaseException) -> bool:
    """torch's "DefaultCPUAllocator: can't allocate memory" (a RuntimeError), OpenCV's "Insufficient memory"
    (a ``cv2.error``), a C++ ``std::bad_alloc`` that came through as a RuntimeError."""
    return (isinstance(exc, RuntimeError) or type(exc).__module__.startswith("cv2")) and \
        bool(_ALLOCATION.search(str(exc)))


def limit_message(exc: BaseException, resumable: bool = False) -> str | None:
    """One line for a failure ``exc`` that a process limit explains (naming the limit in force, when one
    is), or None. ``resumable``: the command can continue with ``--resume`` once the limit is raised."""
    def again(it: str = "it") -> str:
        return f"; raise {it} and run again (with --resume: what was finished is kept)" if resumable else f"; raise {it}"

    if isinstance(exc, MemoryError) or _allocation_failed(exc):
        limit = limits_in_force("RLIMIT_AS")
        said = f" (the address-space limit is {limit}{again()})" if limit else ""
        return f"out of memory{said}; try smaller frames (run: --max-side)"
    if isinstance(exc, ImportError) and _UNMAPPED.search(str(exc)):
        library = str(exc).split(":")[0].strip()
        limit = limits_in_force("RLIMIT_AS")
        said = f": the address-space limit is {limit}{again()}" if limit else ""
        return f"out of memory while loading {library}{said}"
    if _thread_failed(exc):
        limit = limits_in_force("RLIMIT_NPROC", "RLIMIT_AS")
        said = f" (limits in force: {limit}){again('them' if ',' in limit else 'it')}" if limit else \
            " (the system's limit on processes and threads, or its memory)"
        return f"cannot start a thread or process{said}"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        where = f"{exc.filename}: " if exc.filename else ""
        limit = limits_in_force("RLIMIT_FSIZE")
        said = f": the file-size limit is {limit}{again()}" if limit else " for the file system"
        return f"{where}file too large{said}"
    return None


def tasks_of_user(uid: int) -> int | None:
    """The processes and threads the real user ``uid`` runs now (what ``ulimit -u`` counts), or None where
    ``/proc`` does not tell (not Linux)."""
    if not os.path.isdir("/proc/self/task"):
        return None
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError, IndexError):  # (a process that ended meanwhile)
            continue
    return count


UID_MAP = "/proc/self/uid_map"
"""This process's user namespace's user ids: ``inside outside count`` lines (``0 0 4294967295``: the system's own)."""

NPROC_PER_NAMESPACE = (5, 14)
"""The Linux release from which ``ulimit -u`` counts a user's processes per user namespace. Since 5.17 (and
stable kernels that took that fix) only root of the initial namespace is exempt; 5.14-5.16 still exempted a
real uid that is uid 0 outside, as older kernels do: semflow takes the stricter rule from 5.14 on, since
a limit wrongly thought not to bind can leave a local Ray hanging, while one wrongly thought to bind only
gets named in a message or refused with one."""


def exempt_from_process_limit() -> bool:
    """Whether the kernel exempts this process from ``ulimit -u``: root of the initial user namespace (its map:
    ``0 0 4294967295``) is. Root of a namespace of its own is not from Linux 5.14 on (:data:`NPROC_PER_NAMESPACE`),
    even where its map keeps 0 as 0 (``0 0 65536``); before 5.14 a real uid that is uid 0 outside its namespace
    is exempt too. Root of a rootless container (uid 0 mapped to another user outside) never is."""
    uid = os.getuid()
    try:
        with open(UID_MAP, encoding="ascii") as uid_map:
            lines = [line.split() for line in uid_map]
    except OSError:  # (no /proc, not Linux: no user namespaces)
        return uid == 0
    if lines == [["0", "0", "4294967295"]]:  # the initial user namespace (or one mapping all of it as it is)
        return uid == 0
    if _linux_release() >= NPROC_PER_NAMESPACE:
        return False
    for fields in lines:
        try:
            inside, outside, count = (int(field) for field in fields)
        except ValueError:  # (not three numbers: not a line of the kernel's)
            continue
        if inside <= uid < inside + count:
            return outside + (uid - inside) == 0
    return False


def _linux_release() -> tuple[int, int]:
    """(major, minor) of the running kernel's release (``6.8.0-45-generic``: (6, 8)); a release of another
    form reads as a recent one."""
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(found[1]), int(found[2])) if found else (999, 0)


def processes_left() -> int | None:
    """How many more processes and threads this user may start under ``ulimit -u`` now, or None where
    there is no such limit, it is not enforced (the system's root) or the running ones cannot be counted."""
    if resource is None or not hasattr(resource, "RLIMIT_NPROC") or exempt_from_process_limit():
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    running = tasks_of_user(os.getuid()) if soft != resource.RLIM_INFINITY else None
    return None if running is None else soft - running


def process_limit_binds() -> bool:
    """Whether ``ulimit -u`` may be what stopped a process or thread from starting: never for the system's root
    (:func:`exempt_from_process_limit`), nor with :data:`FEW_PROCESSES_LEFT` or more left to this user; where
    the running ones cannot be counted (not Linux), it may."""
    if exempt_from_process_limit():
        return False
    left = processes_left()
    return left is None or left < FEW_PROCESSES_LEFT


def thread_refusal(spare: int = 2) -> str | None:
    """The line of :func:`limit_message` when this process cannot start ``spare`` more threads now (``ulimit
    -u``; a decoder that could not start its threads says only that it read nothing), else None."""
    import threading

    release = threading.Event()
    started: list[threading.Thread] = []
    try:
        for _ in range(spare):
            thread = threading.Thread(target=release.wait, name="semflow-thread-probe", daemon=True)
            thread.start()
            started.append(thread)
    except RuntimeError as exc:
        return limit_message(exc)
    finally:
        release.set()
        for thread in started:
            thread.join()
    return None
