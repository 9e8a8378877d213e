"""What a batch settles before it asks Ray for anything: that the cluster it is to join answers at all
(``ray.init`` retries an address nobody listens on for good), and how many workers are worth starting.
Free of Ray."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from semflow.errors import InputError, SemflowError

CONNECT_SECONDS = 3.0
"""How long :func:`check_address` waits for a cluster's port to accept a connection."""


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
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = ("connection refused" if isinstance(exc, ConnectionRefusedError) else
                  f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else
                  "unknown host" if isinstance(exc, socket.gaierror) else exc.strerror or str(exc))
        raise SemflowError(f"cannot reach a Ray cluster at {address} ({reason}); start one with 'ray start --head'"
                           " or leave out --address") from None


def workers_to_start(wanted: int, chunks_left: Iterable[int]) -> int:
    """How many workers to start: ``wanted``, but no more than the tasks that can run at once, and at
    least 1. ``chunks_left``: for each clip still to run, its chunks to compute; a clip with none left
    still needs one task (its drawing), and its drawing never runs beside its own chunks."""
    return max(1, min(wanted, sum(max(n, 1) for n in chunks_left)))
