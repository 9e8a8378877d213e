"""What a batch does so that SIGINT and SIGTERM stop it as they stop every command, whatever Ray does
with them (free of Ray).

Ray handles these signals in ways of its own:

- a handler's exception raised inside a Ray wait (other than KeyboardInterrupt and SystemExit) is held
  there until the wait returns: a wait on workers that never answer (stopped with their process group while
  they started, and restarted by Ray for good) never let a SIGTERM out (:func:`interruptible`);
- an exception raised while ``ray.init`` makes this process's core worker leaves it half made, and the
  process crashes at exit; Ray's C++ crash handler, in force meanwhile, answers a SIGTERM with a dump and an
  alarm that aborts the process 3 s later (:func:`calls_deferred`, :func:`crash_alarm_cancelled`);
- ``ray.shutdown`` leaves SIGTERM at its default action (the process dies, exit 143, nothing said) while
  Python still names the command's handler (:func:`signals_deferred`, :func:`handler_kept`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from semflow.errors import signals_held

T = TypeVar("T")
KEEP_SECONDS = 0.005
"""How often :func:`handler_kept` looks whether the process's handling of the signal was changed."""
SIGACTION_BYTES = 256
"""Room for a C ``struct sigaction`` (152 bytes on Linux, 16 on macOS), kept as it is: the handler comes first."""


def interruptible(call: Callable[[], T]) -> T:
    """``call()`` (a Ray wait) with a SIGTERM meanwhile raising KeyboardInterrupt, the one exception Ray lets
    out of a wait at once; the SIGTERM is then raised again, through the handler in force before
    (``Terminated`` in a command). Where that handler raises nothing, ``call()`` is made again."""
    handler = signal.getsignal(signal.SIGTERM) if _in_main_thread() else None
    if not callable(handler):
        return call()
    arrived: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        arrived.append(signum)
        raise KeyboardInterrupt

    while True:
        arrived.clear()
        signal.signal(signal.SIGTERM, interrupt)
        try:
            return call()
        except KeyboardInterrupt:
            if not arrived:  # (Ctrl-C)
                raise
        finally:
            signal.signal(signal.SIGTERM, handler)
        signal.raise_signal(signal.SIGTERM)


def crash_alarm_cancelled() -> None:
    """Cancel the alarm that Ray's C++ crash handler sets when it catches a signal (a SIGTERM while Ray's
    core worker starts): it aborts the process 3 s later (its guard against a crash handler that hangs).
    SIGALRM is handled again as Python has it. Main thread only."""
    if not hasattr(signal, "alarm"):  # (not a POSIX system: no alarm, and no such handler)
        return
    signal.alarm(0)
    handler = signal.getsignal(signal.SIGALRM)
    signal.signal(signal.SIGALRM, handler if handler is not None else signal.SIG_DFL)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _sigaction(signum: int, new: ctypes.Array | None = None) -> ctypes.Array | None:
    """The process's C ``struct sigaction`` for ``signum`` as it was (set to ``new`` when given), or None
    where it cannot be read."""
    libc = _libc()
    if libc is None or not hasattr(libc, "sigaction"):  # (not a POSIX system)
        return None
    old = ctypes.create_string_buffer(SIGACTION_BYTES)
    return old if libc.sigaction(signum, new, old) == 0 else None


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library this process runs on, or None where it cannot be loaded so."""
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):
        return None


def _handler_address(action: ctypes.Array) -> int:
    return ctypes.c_void_p.from_buffer(action).value or 0


@contextlib.contextmanager
def handler_kept(signum: int = signal.SIGTERM) -> Iterator[None]:
    """During the block (Ray's shutdown, the making of its core worker), put the process's handling of
    ``signum`` back within :data:`KEEP_SECONDS` whenever C code changes it, so that Python's handler stays
    in force. Only where a Python handler is in force in the main thread at the start (elsewhere Ray's
    handling stands). C code that holds the GIL (Ray making its core worker) holds this back until it is
    done."""
    if not _in_main_thread() or not callable(signal.getsignal(signum)) or (kept := _sigaction(signum)) is None:
        yield
        return
    done = threading.Event()

    def keep() -> None:
        while not done.wait(KEEP_SECONDS):
            now = _sigaction(signum)
            if now is not None and _handler_address(now) != _handler_address(kept):
                _sigaction(signum, kept)

    keeper = threading.Thread(target=keep, name=f"semflow-keeps-signal-{signum}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
        _sigaction(signum, kept)


@contextlib.contextmanager
def signals_deferred(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """:func:`semflow.errors.signals_held` for a batch's clean-up: a signal of ``signums`` that arrives during
    the block is kept until it ends, then raised again through the handler in force before it; and the
    handlers are put back at the end whatever C code (``ray.shutdown``) did to them meanwhile
    (:func:`handler_kept`). Only in the main thread (elsewhere the block just runs)."""
    with signals_held(signums), handler_kept(signal.SIGTERM):
        yield


@contextlib.contextmanager
def calls_deferred(owner: Any, name: str) -> Iterator[None]:
    """During the block, each call of the function ``owner.name`` (found when called, as module globals
    are) runs with SIGINT and SIGTERM deferred (:func:`signals_deferred`); where there is no such
    function, nothing changes."""
    function = getattr(owner, name, None)
    if not callable(function):
        yield
        return

    def deferred(*args: Any, **kwargs: Any) -> Any:
        with signals_deferred():
            return function(*args, **kwargs)

    setattr(owner, name, deferred)
    try:
        yield
    finally:
        setattr(owner, name, function)
