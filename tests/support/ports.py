"""Free TCP ports for private services of the tests (fault stacks, Compose stacks, private
Airflows), chosen outside the kernel's ephemeral range."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now, below the kernel's ephemeral range.

    Not the kernel's own choice (bind to port 0): that is an ephemeral port, and while a fault
    test keeps a service down, its clients reconnecting to localhost:<port> can be given that
    very port as their source port (TCP self-connect), or another process's outgoing connection
    can take it. The service then cannot bind it again when the test restarts it ("Address
    already in use", seen with Kafka). Random, so parallel sessions differ."""
    low = 20000
    high = max(low + 1000, _ephemeral_range()[0])
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            port = random.randrange(low, high)
            if port in ports:
                continue
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports
