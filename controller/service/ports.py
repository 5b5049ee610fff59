"""Ports for the service's listeners: free loopback ports for the demo and the tests, and a check before `serve`.

A port the kernel hands out for `bind(0)` comes from the ephemeral range, from which it also picks the
local port of every outgoing connection: between choosing such a port and a child process binding it,
any connection the service itself opens (to Tiled, PostgreSQL, the worker) may take it, and the child
then fails with "Address already in use" however often it is restarted. Ports are therefore drawn
below that range, where only explicit binds compete, and never twice in one process.

`grainloop serve` checks its own ports first (`ports_in_use`): a port already taken would otherwise
show only as a worker restarted every few seconds, its log saying "Address already in use".
"""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 20_000
DEFAULT_EPHEMERAL_LOW = 32_768
_handed_out: set[int] = set()


def ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def free_loopback_port(attempts: int = 200) -> int:
    """A port on 127.0.0.1 that is free now, below the ephemeral range, not handed out before here."""
    high = ephemeral_low()
    if high - LOWEST_PORT < 100:
        raise RuntimeError(f"no port range below the ephemeral range (it starts at {high})")
    for _ in range(attempts):
        port = random.randrange(LOWEST_PORT, high)
        if port in _handed_out:
            continue
        if not _can_bind("127.0.0.1", port, reuse_address=False):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {LOWEST_PORT}–{high} after {attempts} attempts")


def ports_in_use(host: str, ports: Mapping[str, int]) -> list[str]:
    """The names of `ports` that cannot be bound on `host` now (address reuse on, as the servers set it)."""
    return [name for name, port in ports.items() if not _can_bind(host, port, reuse_address=True)]


def _can_bind(host: str, port: int, *, reuse_address: bool) -> bool:
    """Whether a TCP socket can bind (host, port) now; the socket is closed again at once."""
    with socket.socket() as s:
        if reuse_address:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
