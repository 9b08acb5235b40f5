"""Nothing of the local stack listens beyond loopback.

Every process of every running service (a service is its own session: scripts/stack.sh starts it
with setsid, so the JVMs a launcher forks, nginx's workers and the Spark daemons count too) is
matched to its listening TCP sockets through /proc (<pid>/fd -> socket inodes -> /proc/net/tcp
and tcp6), and each must be bound to 127.0.0.0/8 or ::1, never 0.0.0.0, :: or a real interface.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

LISTEN = "0A"


def _session(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _socket_inodes(proc: Path) -> set[str]:
    inodes = set()
    try:
        for fd in (proc / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* print each 32-bit word in host (little-endian) order.
    return ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))


def listening_sockets() -> dict[str, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """inode -> (address, port) of every listening TCP socket of this network namespace."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            sockets[fields[9]] = (_address(address), int(port, 16))
    return sockets


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def service_listeners() -> dict[str, list[tuple[str, int, int]]]:
    """service -> [(address, port, pid)] for every service of the local stack that is running."""
    pids_dir = Path(os.environ["STACK_DIR"]) / "pids"
    sessions = {}
    for pid_file in pids_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
        except ValueError:
            continue
        if Path(f"/proc/{pid}").exists():
            sessions[pid] = pid_file.stem
    sockets = listening_sockets()
    found: dict[str, list[tuple[str, int, int]]] = {name: [] for name in sessions.values()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or _session(proc) not in sessions:
            continue
        for inode in _socket_inodes(proc) & sockets.keys():
            address, port = sockets[inode]
            found[sessions[_session(proc)]].append((str(address), port, int(proc.name)))
    return found


def test_every_service_listens_on_loopback_only(stack):
    listeners = service_listeners()
    expected = {
        "kafka": int(os.environ["KAFKA_PORT"]),
        "minio": int(os.environ["MINIO_PORT"]),
        "elasticsearch": int(os.environ["ELASTICSEARCH_PORT"]),
        "esproxy": int(os.environ["ELASTICSEARCH_AUTH_PORT"]),
    }
    for name, port in expected.items():
        assert port in {p for _, p, _ in listeners.get(name, [])}, (
            f"{name}: nothing found listening on {port} ({listeners.get(name)})"
        )
    beyond = {
        name: [(a, p, pid) for a, p, pid in found if not is_loopback(ipaddress.ip_address(a))]
        for name, found in listeners.items()
    }
    assert {name: found for name, found in beyond.items() if found} == {}, listeners


@pytest.mark.parametrize(
    ("hex_address", "expected", "loopback"),
    [
        ("0100007F", "127.0.0.1", True),
        ("00000000", "0.0.0.0", False),
        ("00000000000000000000000001000000", "::1", True),
        ("0000000000000000FFFF00000100007F", "::ffff:127.0.0.1", True),
        ("00000000000000000000000000000000", "::", False),
    ],
)
def test_proc_net_addresses_are_decoded(hex_address, expected, loopback):
    address = _address(hex_address)
    assert address == ipaddress.ip_address(expected) and is_loopback(address) is loopback


def test_a_service_listening_on_every_address_would_be_found(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    # A stand-in "service" in its own session, listening on 0.0.0.0 (any free port).
    rogue = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 0)); "
            "s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        port = int(rogue.stdout.readline())
        (tmp_path / "pids").mkdir()
        (tmp_path / "pids" / "rogue.pid").write_text(f"{rogue.pid}\n")
        monkeypatch.setenv("STACK_DIR", str(tmp_path))
        deadline = time.monotonic() + 10
        while not (found := service_listeners()["rogue"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert found == [("0.0.0.0", port, rogue.pid)]
        assert not is_loopback(ipaddress.ip_address(found[0][0]))
    finally:
        rogue.kill()
        rogue.wait()
