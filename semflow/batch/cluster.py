"""What a batch settles before it asks Ray for anything: that the cluster it is to join answers at all
(``ray.init`` retries an address nobody listens on for good), how many workers are worth starting, and
what is kept around ``ray.init`` (the SIGTERM handler, a quiet log, Ray's settings, the processes of a start
cut short). Free of Ray."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import signal
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from semflow.batch.signals import crash_alarm_cancelled, signals_deferred
from semflow.device import check_device_name
from semflow.errors import InputError, SemflowError, file_error
from semflow.limits import limit_text, limits_in_force, processes_left

CONNECT_SECONDS = 3.0
"""How long :func:`check_address` waits for a cluster's port to accept a connection, and to answer in gRPC."""
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, its client server) answers
with a SETTINGS frame of its own (frame type 4, the 4th byte of the 9-byte frame header)."""
LOCAL_RAY_ENV = {"RAY_raylet_start_wait_time_s": "1", "RAY_task_events_shutdown_flush_timeout_ms": "500"}
"""Ray settings while ``ray.init`` starts a local Ray, as environment variables (each process of Ray reads
them once; a Ray that does not know one ignores it; one set already is left as it is). A SIGTERM to the
process group stops Ray's own processes too, and then: the wait for the raylet to register is Python's
loop over 1-s waits in C++ (30 s in all, as before), not one 30-s wait in C++ in which no signal handler
runs; ``ray.shutdown`` gives up sending its task events after 0.5 s, not 5 s."""
RAY_TASKS = 170
"""Processes and threads a local Ray needs at the least besides its workers: its GCS, raylet, agents and
monitors, and this process's core worker (about 190 on 2 cores; Ray's thread pools grow with the cores)."""
WORKER_TASKS = 20
"""Processes and threads each of a local Ray's workers needs at the least (about 25 on 2 cores)."""
STOP_SECONDS = 3.0
"""How long :func:`stop_processes` waits for the processes it killed to end."""


def parse_address(address: str) -> tuple[str, int]:
    """The host and port of ``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host in brackets)."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or any(c in host for c in "/[] ") or not (port.isascii() and port.isdigit()) \
            or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise InputError(f"Ray address {address!r}: expected HOST:PORT with a port from 1 to 65535, "
                         "ray://HOST:PORT or auto")
    return host, int(port)


def check_address(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Raise a one-line error unless something accepts a connection at ``address`` within ``timeout``
    seconds; ``auto`` and ``local`` are left to Ray (which fails cleanly on them)."""
    if address in ("auto", "local"):
        return
    host, port = parse_address(address)
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        reason = ("connection refused" if isinstance(exc, ConnectionRefusedError) else
                  f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else
                  "unknown host" if isinstance(exc, socket.gaierror) else exc.strerror or str(exc))
        raise SemflowError(f"cannot reach a Ray cluster at {address} ({reason}); start one with 'ray start --head'"
                           " or leave out --address") from None
    with connection:  # (ray.init waits for good on a port that accepts but is no Ray: a web server, say)
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", "") and not _answers_grpc(connection):
            raise SemflowError(f"{address} answers, but not as a Ray cluster (no gRPC reply within {timeout:g} s);"
                               " give the head's port (6379 unless 'ray start --port' chose another), or"
                               " ray://HOST:10001 for Ray's client server (pip install 'ray[client]')")


def _answers_grpc(connection: socket.socket) -> bool:
    """Whether the server at ``connection`` answers :data:`HTTP2_HELLO` with a SETTINGS frame (gRPC speaks
    HTTP/2) within the connection's timeout."""
    head = b""
    try:
        connection.sendall(HTTP2_HELLO)
        while len(head) < 9:
            part = connection.recv(9 - len(head))
            if not part:
                break
            head += part
    except OSError:
        return False
    return len(head) == 9 and head[3] == 0x04


def start_ray(init: Callable[..., Any], address: str | None, workers: int | None) -> None:
    """Call ``init`` (``ray.init``) to join the cluster at ``address`` (checked first: :func:`check_address`)
    or, without one, to start a Ray of ``workers`` CPUs (default: this machine's) on this machine, always a
    new one: a ``RAY_ADDRESS`` in the environment or a cluster ``ray start`` left running is not joined
    (Ray did, and refused the CPU count: a traceback)."""
    settings: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        check_address(address)
        with ray_starting(address):
            init(address=address, **settings)
    else:
        cpus = workers or os.cpu_count() or 1
        check_process_room(cpus)
        before = child_processes()
        keep_token_private()
        try:
            with token_notice_hidden(), environment(LOCAL_RAY_ENV), ray_starting():
                init(address="local", num_cpus=cpus, include_dashboard=False,
                     object_store_memory=100 * 1024 ** 2, _temp_dir=private_temp_dir(), **settings)
        except BaseException:  # (Ctrl-C, SIGTERM: ray.shutdown stops no process of a start cut short)
            with signals_deferred():
                stop_processes([p for pid, p in child_processes().items() if pid not in before])
            raise


def check_process_room(cpus: int) -> None:
    """Raise a one-line SemflowError when the limit on processes (``ulimit -u``) leaves this user fewer
    processes and threads than a local Ray of ``cpus`` workers needs at the least (:data:`RAY_TASKS`,
    :data:`WORKER_TASKS`): short of them Ray's start hung for good or its workers died building the method."""
    left = processes_left()
    needed = RAY_TASKS + WORKER_TASKS * cpus
    if left is not None and left < needed:
        raise SemflowError(f"cannot start Ray on this machine: the limit on processes ({limit_text('RLIMIT_NPROC')})"
                           f" leaves this user {max(left, 0)} more processes and threads, and a Ray of {cpus} workers"
                           f" needs {needed} at the least; raise it by {needed - left} or more, or use fewer --workers")


def by_hand(address: str | None) -> bool:
    """Whether ``address`` is a head's HOST:PORT given by hand: ``auto`` finds a local cluster's token itself,
    and Ray's client (``ray://``) fails for reasons of its own (ray[client] missing)."""
    return bool(address) and address != "auto" and not address.startswith("ray://")


def child_processes() -> dict[int, Any]:
    """This process's children by process id (``psutil.Process``; none where psutil, which Ray brings, is
    missing)."""
    try:
        import psutil
    except ImportError:
        return {}
    return {child.pid: child for child in psutil.Process().children()}


def stop_processes(processes: list[Any], timeout: float = STOP_SECONDS) -> None:
    """Kill ``processes`` (``psutil.Process``: the ones a Ray start cut short left) and every process they
    started, and wait up to ``timeout`` seconds for them to end."""
    if not processes:
        return
    import psutil

    doomed = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            doomed += process.children(recursive=True)  # (before their parent goes: Ray's agents, its workers)
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(doomed, timeout=timeout)


def workers_to_start(wanted: int, chunks_left: Iterable[int]) -> int:
    """How many workers to start: ``wanted``, but no more than the tasks that can run at once, and at
    least 1. ``chunks_left``: for each clip still to run, its chunks to compute; a clip with none left
    still needs one task (its drawing), and its drawing never runs beside its own chunks."""
    return max(1, min(wanted, sum(max(n, 1) for n in chunks_left)))


def check_batch_device(device: str | None) -> str:
    """``device`` normalised (:func:`~semflow.device.check_device_name`); InputError for ``cuda:N``: in a
    batch Ray picks each worker's GPU."""
    name = check_device_name(device)
    if name.startswith("cuda:"):
        raise InputError(f"device {name!r}: in a batch Ray gives each worker its GPU; use --device cuda")
    return name


def worker_gpus(device: str | None, cluster_gpus: float, workers: int) -> float:
    """The share of a GPU each of ``workers`` reserves from Ray for a method on ``device``. Ray places a
    worker that reserves none without regard to GPUs (every one on the first GPU of its machine, or on a
    machine with none; older Ray releases hide every GPU from it), so ``cuda`` reserves the
    cluster's ``cluster_gpus`` shared out among the workers (at most one each; Ray then shows each worker
    the GPU it got as ``cuda``), ``auto`` does so where the cluster has GPUs, ``cpu`` reserves none.
    ``cuda:N`` is refused (:func:`check_batch_device`)."""
    name = check_batch_device(device)
    if name == "cpu" or (name == "auto" and cluster_gpus <= 0):
        return 0.0
    if cluster_gpus <= 0:
        raise InputError(f"device {name!r} asked for, but the Ray cluster has no GPU; use --device cpu or auto")
    workers = max(1, workers)
    if cluster_gpus >= workers:
        return 1.0
    if cluster_gpus >= 1:  # an equal share of one GPU (Ray places a fraction on one GPU, never across two)
        return math.floor(10_000 / math.ceil(workers / math.floor(cluster_gpus))) / 10_000
    return math.floor(cluster_gpus / workers * 10_000) / 10_000  # (Ray counts in 1/10000)


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """During the block, the environment ``variables`` that are not set already (as they were after it)."""
    added = {name: value for name, value in variables.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def keep_token_private() -> None:
    """Before a local Ray starts: its token file (``~/.ray/auth_token``; whoever reads it can run code on
    the batch's cluster) written readable by its owner alone where there is none yet (Ray writes it under
    the umask: 0644, every user's to read); one every user may read loses that (its owner's and group's
    rights are kept: a token may be shared with a group on purpose). Nothing where the token is given
    otherwise (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``) or authentication is off (``RAY_AUTH_MODE``)."""
    if {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"} & set(os.environ):
        return
    path = os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        with contextlib.suppress(OSError):  # (another user's token, or a link to one: chmod fails, it stays)
            if (mode := os.stat(path).st_mode) & stat.S_IRWXO:
                os.chmod(path, stat.S_IMODE(mode) & ~stat.S_IRWXO)
        return
    except OSError:  # (a HOME that cannot be written: Ray says so, as it always did)
        return
    with os.fdopen(fd, "w") as token:
        token.write(secrets.token_hex(32))  # (as Ray makes one: 256 random bits)


SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
"""The longest name of a Unix socket (bytes), as Ray checks it."""
SESSION_SOCKET = "session_2026-12-05_16-43-02_967932_4194304/sockets/plasma_store"
"""The longest of a Ray session's socket names below its temporary folder (the date and pid vary)."""


def ray_parent_folder() -> str:
    """The folder Ray itself would keep its ``ray`` folder in: ``RAY_TMPDIR``, else (Linux) ``TMPDIR``, else
    ``/tmp``."""
    if os.environ.get("RAY_TMPDIR"):
        return os.environ["RAY_TMPDIR"]
    if sys.platform.startswith("linux") and os.environ.get("TMPDIR"):
        return os.environ["TMPDIR"]
    return "/tmp" if os.name == "posix" else tempfile.gettempdir()


def private_temp_dir() -> str:
    """Where a local Ray keeps its sessions: ``ray`` in ``semflow-ray-UID`` (in the folder Ray would use, see
    :func:`ray_parent_folder`; in ``/tmp`` when a ``TMPDIR`` is too long for a session's socket names), a
    folder of its owner's alone. Ray makes every folder of a session writable by every user (0777: its
    sockets, its logs), and by default keeps them in ``/tmp/ray``, where any user of the machine could
    replace the sockets the batch's workers connect to. One of that name that is not this user's own, or
    that others may enter, is left alone: a new one is made (``semflow-ray-XXXXXXXX``)."""
    parent = os.path.abspath(ray_parent_folder())
    name = f"semflow-ray-{os.getuid()}"
    longest = max(name, "semflow-ray-XXXXXXXX", key=len)  # (mkdtemp's name, below, when this one is taken)
    tail = len(os.fsencode(os.path.join(longest, "ray", SESSION_SOCKET))) + 1
    if len(os.fsencode(parent)) + tail > SOCKET_PATH_MAX and not os.environ.get("RAY_TMPDIR"):
        parent = "/tmp"  # (a TMPDIR Ray alone could use may leave too little room once our folder is added)
    os.makedirs(parent, exist_ok=True)  # (a RAY_TMPDIR not there yet: Ray would make it)
    folder = os.path.join(parent, name)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        folder = tempfile.mkdtemp(prefix="semflow-ray-", dir=parent)
    return os.path.join(folder, "ray")


@contextlib.contextmanager
def token_notice_hidden() -> Iterator[None]:
    """Ray's notice that the local cluster it starts has token authentication on (its safe default),
    kept off the batch's stderr; its warning that authentication is off still shows."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")

    notice.addFilter(keep)
    try:
        yield
    finally:
        notice.removeFilter(keep)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@contextlib.contextmanager
def ray_starting(address: str | None = None) -> Iterator[None]:
    """Around ``ray.init``: keep this process's SIGTERM handler, which ray.init replaces with its own (exit
    15, or a crash dump, where the command's unwinds it as Ctrl-C does: exit 143, staging cleaned up): it
    is put back after, and a SIGTERM that ended ray.init through Ray's handler (its SystemExit) is raised
    again through it. Ray records this process's command line as UTF-8: one holding a name that is not (a
    file name's bytes, or, under an ASCII locale, any name but ASCII) is a :class:`SemflowError` here, where
    it was a UnicodeEncodeError traceback. Ray's failure to start or to join ``address`` is a one-line
    :class:`SemflowError` (naming token authentication, which an address given by hand needs to be told
    of: ``RAY_AUTH_MODE=token``)."""
    for arg in sys.argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            if _is_utf8(os.fsencode(arg)):  # a UTF-8 name that an ASCII locale holds as surrogates
                raise SemflowError(f"{arg}: Ray cannot start from a command line holding a name that is not"
                                   " ASCII under this ASCII locale; set PYTHONUTF8=1 or LC_ALL=C.UTF-8") from None
            raise SemflowError(f"{arg}: Ray cannot start from a command line holding a name that is not UTF-8;"
                               " rename it, or name the clips in a manifest (.txt)") from None
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    except SystemExit as exc:  # Ray's handler ran: the SIGTERM is for the handler that was in force before
        if exc.code != signal.SIGTERM or not callable(handler):
            raise
        crash_alarm_cancelled()
        signal.signal(signal.SIGTERM, handler)
        signal.raise_signal(signal.SIGTERM)  # (it raises here: Terminated in the command)
        raise SemflowError("Ray's start was stopped by SIGTERM") from None
    except Exception as exc:  # noqa: BLE001 - Ray's own failures (OSError, RuntimeError; a bare Exception when its node
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # times out starting): one line
        hint = ("; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token here too, and its"
                " token in ~/.ray/auth_token" if by_hand(address) and not os.environ.get("RAY_AUTH_MODE") else "")
        limits = "" if address else limits_in_force("RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_AS")
        if limits:  # (a limit on open files below Ray's own: its GCS cannot start)
            hint += f"; Ray's processes are bound by the limits in force too: {limits}"
        if isinstance(exc, OSError) and exc.filename and exc.strerror:  # (HOME=/nonexistent: "/nonexistent: ...")
            said = file_error(exc)
            hint = "; Ray writes its files under HOME (~/.ray) and TMPDIR: both must be writable"
        where = f"join the Ray cluster at {address}" if address else "start Ray on this machine"
        raise SemflowError(f"could not {where}: {said}{hint}") from None
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)
