"""The machine a benchmark runs on: facts, load, CPU accounting from /proc, an optional profiler.

Other work on a 2-core machine skews every wall time, so every figure records how busy the
machine was: the 1-minute load average (sampled every few seconds by ``LoadSampler``) and the
CPU seconds that *other* processes used meanwhile (machine busy time from /proc/stat minus this
harness's process tree minus the stack's servers).

Load is not speed: the same code on an idle machine took 30.9 s at one hour and 36-51 s at
another (the host's other tenants, not ours). ``speed_probe`` times a fixed single-core piece of
work so that results from different hours can be told apart by the machine's speed as well.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from ecommerce_profiles.core.paths import PROJECT_DIR

PROJECT_ROOT = PROJECT_DIR
# A result whose 1-minute load average was above this when it started is marked "under load"
# (2 cores: above 1.5 another job holds most of a core).
LOAD_LIMIT = 1.5
STACK_SERVERS = ("kafka", "minio", "elasticsearch")

_started = time.perf_counter()


def say(message: str) -> None:
    """One progress line: wall clock, seconds since start, message."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp} +{time.perf_counter() - _started:7.1f}s] {message}", flush=True)


def elapsed() -> float:
    return time.perf_counter() - _started


def shown(path: Path) -> str:
    """A path relative to the project when inside it."""
    path = Path(path)
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def machine_info() -> dict[str, Any]:
    model = platform.processor() or ""
    memory_gib = None
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    try:
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "cpu_model": model,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "speed_probe": speed_probe(),
    }


SPEED_PROBE_ROUNDS = 3


def probe_work() -> str:
    """A fixed piece of single-core work (interpreter loop, hashing, compression: ~0.8 s on the
    reference machine); its digest is the same on every call, so the work is too."""
    total = 0
    for i in range(1_500_000):
        total = (total * 31 + i) % 1_000_003
    text = b"".join(b"%d,view,%d,brand%d;" % (i, i * 7 % 1_000, i % 97) for i in range(200_000))
    digest = hashlib.sha256(zlib.compress(text * 4, 6))
    for _ in range(20):
        digest.update(hashlib.sha256(text).digest())
    return f"{total}-{digest.hexdigest()}"


def speed_probe(rounds: int = SPEED_PROBE_ROUNDS) -> dict[str, float | int]:
    """Seconds ``probe_work`` takes on one core: the best of ``rounds`` (what the core can do) and
    the median (how much of it the run got). Lower is faster; compare runs by it, not by hour."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        probe_work()
        times.append(time.perf_counter() - started)
    return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3), "rounds": rounds}


def versions() -> dict[str, str]:
    """The version matrix (docs/versions.md through scripts/versions.sh, the one parser)."""
    from tests.support.deploy_checks import read_versions

    return read_versions(PROJECT_ROOT)


def code_version() -> dict[str, Any]:
    """The checkout the figures were taken with: commit, and the files of plugins/, spark_jobs/ and dags/ that
    differ from it (other people may edit the working tree while a benchmark runs)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "--short=12", "HEAD"),
        "modified": git("status", "--porcelain", "--", "plugins", "spark_jobs", "dags").splitlines(),
    }


def file_digest(path: Path) -> str:
    """Short sha256 of a file (which version of the Spark job a run submitted)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet_machine(max_load: float, max_wait_s: float) -> float:
    """Wait until the 1-minute load average is below ``max_load``; return the seconds waited."""
    started = time.time()
    deadline = started + max_wait_s
    while (load := os.getloadavg()[0]) >= max_load and time.time() < deadline:
        say(f"waiting for a quiet machine: load {load:.2f} >= {max_load} ({deadline - time.time():.0f}s left)")
        time.sleep(30)
    if load >= max_load:
        say(f"machine still busy (load {load:.2f}): running anyway, the figures are marked as measured under load")
    return round(time.time() - started, 1)


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already included in user/nice
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stat_fields(text: str) -> list[str]:
    """The fields of a /proc/<pid>/stat (or task stat) line after "(comm)": state, ppid, pgrp, ...
    (the command name may hold spaces and parentheses, so split after its last ")")."""
    return text.rsplit(")", 1)[1].split()


def stat_cpu_seconds(fields: list[str]) -> float:
    """User + system CPU seconds of ``stat_fields``: utime is the 12th field, stime the 13th."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each local-stack service (its whole process group).

    The pid files of scripts/stack.sh name each service's process-group leader; Elasticsearch's
    launcher and server JVM share one group. Empty for a service that is not a local process.
    """
    pid_dir = Path(os.environ.get("STACK_DIR") or PROJECT_ROOT / ".stack") / "pids"
    groups: dict[int, str] = {}
    for name in STACK_SERVERS:
        try:
            groups[int((pid_dir / f"{name}.pid").read_text().strip())] = name
        except (OSError, ValueError):
            continue
    used = dict.fromkeys(groups.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_fields(stat.read_text())
        except OSError:
            continue
        name = groups.get(int(fields[2]))  # the process group
        if name:
            used[name] += stat_cpu_seconds(fields)
    return used


class CpuWindow:
    """CPU accounting of one stage: this harness and its waited-for children, the stack's
    servers, and everything else on the machine (``others``), plus the load average."""

    def __init__(self, sampler: LoadSampler | None = None) -> None:
        self.sampler = sampler
        self.wall0 = time.perf_counter()
        self.own0 = os.times()
        self.servers0 = server_cpu_seconds()
        self.busy0 = machine_busy_seconds()
        self.load0 = load_1m()

    def close(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall0
        own = sum(a - b for a, b in zip(os.times()[:4], self.own0[:4]))
        servers_now = server_cpu_seconds()
        servers = {k: round(servers_now[k] - v, 2) for k, v in self.servers0.items() if k in servers_now}
        others = max(0.0, machine_busy_seconds() - self.busy0 - own - sum(servers.values()))
        end = load_1m()
        sampled = self.sampler.max_since(self.wall0) if self.sampler else None
        out = {
            "cpu_s": round(own, 2),
            "server_cpu_s": servers,
            "load": {
                "start_1m": self.load0,
                "end_1m": end,
                "max_1m": max(v for v in (self.load0, end, sampled) if v is not None),
                # CPU of processes that are neither this harness nor the stack's servers, in cores
                "others_cores": round(others / wall, 2) if wall > 0 else None,
                "under_load": self.load0 > LOAD_LIMIT,
            },
        }
        return out


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every_s`` seconds while the harness runs."""

    def __init__(self, every_s: float = 5.0) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter(), os.getloadavg()[0]))
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()

    def max_since(self, since: float) -> float | None:
        values = [load for t, load in self.samples if t >= since]
        return round(max(values), 2) if values else None

    def mean(self) -> float | None:
        return round(sum(v for _t, v in self.samples) / len(self.samples), 2) if self.samples else None


# JVM thread names (/proc/<pid>/task/<tid>/comm, 15 characters) -> what the CPU went to
_THREAD_GROUPS = (
    ("C2 Compiler", "jit_c2"),
    ("C1 Compiler", "jit_c1"),
    ("Executor task", "spark_tasks"),
    ("GC Thread", "gc"),
    ("G1 ", "gc"),
    ("VM ", "jvm_vm"),
    ("main", "jvm_main"),
    ("python", "python_driver"),
    ("java", "jvm_launcher"),
)


def thread_group(comm: str) -> str:
    return next((group for prefix, group in _THREAD_GROUPS if comm.startswith(prefix)), "other")


class ThreadCpu(threading.Thread):
    """CPU seconds per thread of a process tree (e.g. spark-submit's driver JVM and its Python
    driver), sampled every ``every_s`` from /proc/<pid>/task/*/stat and grouped by thread
    name: JIT compiler threads, Spark task threads, GC, ... A thread that ends between two
    samples loses at most ``every_s`` of its CPU."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        super().__init__(name="thread-cpu", daemon=True)
        self.pid, self.every_s = pid, every_s
        self.seen: dict[tuple[int, int], tuple[str, float]] = {}
        self._stop_event = threading.Event()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_fields(stat.read_text())
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        return tree

    def sample(self) -> None:
        for pid in self._tree():
            for stat in Path(f"/proc/{pid}/task").glob("[0-9]*/stat"):
                try:
                    text = stat.read_text()
                except OSError:
                    continue
                comm = text[text.index("(") + 1 : text.rindex(")")]
                self.seen[(pid, int(stat.parent.name))] = (comm, stat_cpu_seconds(stat_fields(text)))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.every_s)

    def stop(self) -> dict[str, Any]:
        """{group: CPU seconds}, plus ``other_threads``: the names behind "other" (top 8)."""
        self._stop_event.set()
        groups: dict[str, float] = {}
        other: dict[str, float] = {}
        for comm, cpu in self.seen.values():
            group = thread_group(comm)
            groups[group] = groups.get(group, 0.0) + cpu
            if group == "other":
                name = re.sub(r"[-#\d\s]+$", "", comm) or comm
                other[name] = other.get(name, 0.0) + cpu
        out: dict[str, Any] = {k: round(v, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
        out["other_threads"] = {k: round(v, 1) for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:8]}
        return out


class PySpy:
    """`py-spy record` on this process for the duration of a with-block (--py-spy DIR)."""

    def __init__(self, out_dir: Path | None, name: str) -> None:
        self.out_dir, self.name, self.process = out_dir, name, None
        self.output: Path | None = None

    def __enter__(self):
        if self.out_dir is None:
            return self
        exe = shutil.which("py-spy")
        if not exe:
            say("  --py-spy given but py-spy is not installed (pip install py-spy): not profiling")
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.output = self.out_dir / f"{self.name}.txt"
        # raw = collapsed stacks, one line per stack with its sample count: easy to summarise.
        self.process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                "50",
                "--format",
                "raw",
                "--output",
                str(self.output),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let it attach before the measured work starts
        return self

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        say(f"  py-spy profile of {self.name}: {self.output}")

    def top(self, limit: int = 12) -> list[dict[str, Any]]:
        """Self time per function from the collapsed stacks (share of samples)."""
        if not self.output or not self.output.exists():
            return []
        own: dict[str, int] = {}
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frame = stack.split(";")[-1]
            own[frame] = own.get(frame, 0) + int(count)
            total += int(count)
        ranked = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
        return [{"frame": frame, "share": round(n / total, 3)} for frame, n in ranked] if total else []
