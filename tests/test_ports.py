"""The tests' servers get ports no outgoing connection can hold (see devstack/net.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from devstack.net import free_port


def test_ports_handed_out_are_apart_from_the_ephemeral_range_and_never_twice() -> None:
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # Outgoing connections hold ephemeral ports meanwhile, as a busy suite's clients do.
    clients = []
    listener = socket.create_server(("127.0.0.1", 0))
    for _ in range(50):
        clients.append(socket.create_connection(listener.getsockname()))
    try:
        ports = [free_port() for _ in range(200)]
    finally:
        for client in clients:
            client.close()
        listener.close()

    assert len(set(ports)) == len(ports), "never the same port twice"
    assert all(1024 < port < first_ephemeral for port in ports)
    assert not {7233, 8233, 1025} & set(ports), "nor the local run's fixed ports"
