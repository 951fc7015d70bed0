"""`stonetown serve` run as a real subprocess of the installed console script: for tests where
the server's own process is what is tested (signals, start-up, a crash would be a failure)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STONETOWN = str(Path(sys.executable).parent / "stonetown")
READY = re.compile(r"stonetown serving on (http://127\.0\.0\.1:(\d+)) \(data: (.+)\)\n")


def environ(**extra: str) -> dict[str, str]:
    """This process's environment without STONETOWN_* settings, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    return {**base, **extra}


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    port: int
    ready: str
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(30)


def launch_server(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    stderr = data_dir.parent / f"{data_dir.name}.stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [STONETOWN, "serve", "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=environ(**(env or {})),
        )
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if readable else ""
    found = READY.fullmatch(line)
    if found is None:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"no ready line, got {line!r}; stderr:\n{stderr.read_text()}")
    return Served(proc, found[1], int(found[2]), line, stderr)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `stonetown serve` subprocesses (each on its own data dir); killed at teardown."""
    started: list[Served] = []

    def start(name: str = "data", *args: str, env: dict[str, str] | None = None) -> Served:
        served = launch_server(tmp_path / name, *args, env=env)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()
        if served.proc.stdout is not None:
            served.proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) process ``pid`` has used, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HealthWatch:
    """Asks ``/healthz`` every 20 ms in a thread of its own; records the slowest answer since
    `settle` and every failure.

    With the server's ``pid``, an answer up to `BLOCKED_SECONDS` late counts as slow only by
    the CPU time the server used while it waited: a server whose event loop is held (a callback
    computing, a thread holding the GIL) burns CPU for as long as the answer is late, while a
    server merely waiting for a core on a busy machine burns none. So the bound catches a held
    loop and not a loaded machine. An answer later than `BLOCKED_SECONDS` counts in full (a loop
    blocked without computing, on a lock or a disk), and one later than `HUNG_SECONDS` is a
    failure.
    """

    BLOCKED_SECONDS = 1.0
    HUNG_SECONDS = 10.0

    def __init__(self, url: str, pid: int | None = None) -> None:
        self.url = url
        self.pid = pid
        self.slowest = 0.0
        self.answers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._answered = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.HUNG_SECONDS) as client:
            while not self._stop.is_set():
                used = cpu_seconds(self.pid) if self.pid is not None else 0.0
                started = time.perf_counter()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if status != 200:
                        self.failures.append(f"/healthz answered {status}")
                took = time.perf_counter() - started
                if self.pid is not None and took <= self.BLOCKED_SECONDS:
                    took = min(took, cpu_seconds(self.pid) - used)
                with self._answered:
                    self.slowest = max(self.slowest, took)
                    self.answers += 1
                    self._answered.notify_all()
                self._stop.wait(0.02)

    def start(self) -> None:
        self._thread.start()
        self.settle()

    def settle(self) -> float:
        """Wait for two more answers (so one was asked after this call), then the slowest
        answer since the last `settle`."""
        with self._answered:
            target = self.answers + 2
            assert self._answered.wait_for(lambda: self.answers >= target, 30), "/healthz hung"
            slowest, self.slowest = self.slowest, 0.0
        return slowest

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
