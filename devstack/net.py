"""Ports for local servers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below the kernel's ephemeral range: a port handed out here is never the local port of
# an outgoing connection (a client's to Temporal or PostgreSQL), which took a port
# handed out from that range between its check and the server's bind now and then on a
# busy machine. Above the ports the local run fixes (7233, 8233, 1025).
_LOWEST = 20_000
_handed_out: set[int] = set()
_pick = random.Random()  # seeded from the OS: parallel processes pick apart
_slice = (0, 1)  # this process's slice of the range, of how many (share_range)


def share_range(index: int, count: int) -> None:
    """Processes that hand out ports side by side (the suite's test processes) each pick
    from a slice of their own: two of them never pick the same port, where a port one
    checked free could otherwise be bound by the other before its server binds it."""
    global _slice
    _slice = (index, count)


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; elsewhere the OS's own choice is the fallback below


def free_port() -> int:
    """A port free on the loopback now, outside the ephemeral range and never handed out
    twice by this process (another process binding it meanwhile is the race left)."""
    index, count = _slice
    span = (_ephemeral_start() - _LOWEST) // count
    lowest, highest = _LOWEST + index * span, _LOWEST + (index + 1) * span - 1
    for _ in range(200):
        port = _pick.randint(lowest, highest) if highest > lowest else 0
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found on the loopback")
