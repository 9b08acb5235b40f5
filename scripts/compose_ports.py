"""Before `docker compose up`: is every host port the stack publishes free?

Compose itself fails late with "Bind for 127.0.0.1:9092 failed: port is already allocated",
after it has built the images and started half of the services. The usual cause is the local
stack (make stack-up / make airflow), which listens on the same .env ports. This names each
taken port, its .env variable and the likely owner, and exits 1 before anything starts.

Reads the resolved configuration on stdin (`docker compose config --format json`). Ports the
project's own running containers publish (`make start` on a stack that is already up) are fine:
pass them as arguments.
"""

from __future__ import annotations

import json
import re
import socket
import sys

LOCAL_STACK_HINT = "the local stack? `make stack-down` / `make airflow-stop`, or set the port in .env"


def published(config: dict) -> list[tuple[str, str, int]]:
    """(service, host address, host port) of every published port."""
    found = []
    for name, service in sorted(config.get("services", {}).items()):
        for port in service.get("ports", []) or []:
            host_port = port.get("published")
            if host_port:
                found.append((name, port.get("host_ip") or "0.0.0.0", int(host_port)))
    return found


def is_taken(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


def env_names(env_text: str) -> dict[int, str]:
    """port -> the .env variable that sets it (for the message)."""
    names = {}
    for match in re.finditer(r"^([A-Z_]+_PORT)=(\d+)\s*$", env_text, re.MULTILINE):
        names.setdefault(int(match.group(2)), match.group(1))
    return names


def main(argv: list[str]) -> int:
    config = json.load(sys.stdin)
    own = {int(p) for p in argv[1:] if p.isdigit()}
    try:
        with open(".env") as env_file:
            names = env_names(env_file.read())
    except OSError:
        names = {}
    taken = [
        (service, address, port)
        for service, address, port in published(config)
        if port not in own and is_taken(address, port)
    ]
    for service, address, port in taken:
        variable = names.get(port, "its port variable")
        print(
            f"[compose] ERROR: {address}:{port} ({variable}, published by {service}) is already in use: {LOCAL_STACK_HINT}",
            file=sys.stderr,
        )
    return 1 if taken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
