"""Ports for local servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port free on the loopback now (a tiny race with other processes is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
