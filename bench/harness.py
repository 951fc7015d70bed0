"""What the HTTP benches (``http_bench.py``, ``relations_bench.py``) share: a server in a process of
its own on 127.0.0.1, CPU pinning, the raw HTTP/1.1 response parser of their load clients,
latency percentiles, py-spy recording and its summary, and the command line around a run.

Each bench is run as ``python bench/<name>.py`` and starts its server as ``python
bench/<name>.py --serve ...``; it puts the repository root on ``sys.path`` (for ``api`` and this
module, imported as ``bench.harness``) before importing anything of ours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

TENANT = "t1"  # exists in every new store
#: A saturated server below this much of a core was sharing its CPU with something else.
BUSY_CPU_PCT = 90

Result = dict[str, Any]


def progress(text: str) -> None:
    """A timestamped progress line on stderr (stdout is the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentiles_ms(ordered_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/max (nearest rank) in ms of latencies in ns, sorted ascending."""
    if not ordered_ns:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}

    def rank(p: int) -> float:
        k = max(0, math.ceil(p * len(ordered_ns) / 100) - 1)
        return round(ordered_ns[k] / 1e6, 3)

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": rank(100)}


def pin_cpus(no_pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first two CPUs this process may run on, or (None, None) with
    ``no_pin`` or fewer than two. This process (the client, and every process it starts from now
    on) is pinned to the client CPU; the server gets its CPU through ``server(..., cpu=)``."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[1]})
    return cpus[0], cpus[1]


# -- the server process ----------------------------------------------------------------------


def stonetown_runner(data_dir: str) -> web.AppRunner:
    """Stonetown as ``stonetown serve`` runs it (every setting the default) on a LevelDB in
    ``data_dir``, with the access log off."""
    from api.app import create_app, make_runner  # noqa: PLC0415 (only the server process)
    from api.config import Config  # noqa: PLC0415

    return make_runner(create_app(Config(data_dir=data_dir, port=0, access_log=False)))


def serve(make_runner: Callable[[], web.AppRunner], cpu: int | None) -> None:
    """The server process: pinned to ``cpu`` (before the server starts any thread), serves the
    app of ``make_runner()`` with one event loop on 127.0.0.1 on a free port, prints ``ready
    PORT`` and runs until SIGTERM or SIGINT."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve(make_runner))


async def _serve(make_runner: Callable[[], web.AppRunner]) -> None:
    runner = make_runner()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


@dataclass(slots=True)
class Server:
    """A running server process (``kind`` names it in reports and errors)."""

    kind: str
    proc: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """The process's CPU time so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(kind: str, script: str, *args: str, cpu: int | None) -> Iterator[Server]:
    """Start ``python script *args [--cpu cpu]`` (whose main calls ``serve``), wait up to 60 s for
    its ``ready PORT`` line, and stop it with SIGTERM when the block ends."""
    cmd = [sys.executable, script, *args]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            raise RuntimeError(f"the {kind} server did not start (said {line!r})")
        yield Server(kind, proc, int(line.split()[1]))
    finally:
        stop(proc, signal.SIGTERM, 30)


def stop(proc: subprocess.Popen[Any], sig: int, seconds: float) -> None:
    """Send ``sig`` and wait up to ``seconds`` for the process to end; kill it if it does not."""
    proc.send_signal(sig)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the clients' HTTP/1.1 -------------------------------------------------------------------


def take_response(buf: bytearray) -> tuple[int, bytes] | None:
    """Take the first HTTP/1.1 response off ``buf``: (status, body), or None while it is not all
    there. Only the status line and Content-Length are parsed (every answer of our servers has
    one, but 204 and 304), so reading an answer costs a client far less than the server."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    length = 0
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
    elif not head.startswith((b"http/1.1 204", b"http/1.1 304")):
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    total = end + 4 + length
    if len(buf) < total:
        return None
    status = int(buf[9:12])
    body = bytes(buf[end + 4 : total])
    del buf[:total]
    return status, body


class Load(Protocol):
    """What a benchmark's load gives its connections: the next request, and the count of each
    answer (True: send another). ``all_idle`` fails when a connection is lost."""

    all_idle: asyncio.Future[None] | None

    def request(self) -> tuple[int, bytes]: ...

    def finished(self, index: int, sent: int, status: int, body: bytes) -> bool: ...


class LoadConnection(asyncio.Protocol):
    """One keep-alive connection of a load: a request, its answer, the next request."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.index = 0
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        assert self.transport is not None
        self.index, data = self.load.request()
        self.sent = time.perf_counter_ns()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (response := take_response(self.buf)) is not None:
            if self.load.finished(self.index, self.sent, *response):
                self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.load.all_idle is not None and not self.load.all_idle.done():
            self.load.all_idle.set_exception(exc)


# -- py-spy ----------------------------------------------------------------------------------


def find_py_spy(path: str | None) -> str:
    """``path``, else py-spy from PATH; exits with a message when there is neither."""
    spy = path or shutil.which("py-spy")
    if not spy:
        sys.exit("--profile needs py-spy on PATH or --py-spy PATH")
    return spy


@contextlib.contextmanager
def profiled(spy: str | None, pid: int, raw: Path, *, nonblocking: bool = True) -> Iterator[None]:
    """Record process ``pid`` with py-spy ``spy`` while the block runs (nothing if ``spy`` is
    None): 200 samples/s, ``--gil`` (only the thread holding the GIL, i.e. where the one core
    goes), raw collapsed stacks to ``raw``. ``nonblocking`` samples without pausing the process
    (cheaper for it, less exact). SIGINT at the end makes py-spy write what it has."""
    if spy is None:
        yield
        return
    cmd = [
        spy, "record", "--pid", str(pid), "--rate", "200", "--gil",
        *(["--nonblocking"] if nonblocking else []), "--format", "raw", "--output", str(raw),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        stop(proc, signal.SIGINT, 60)


def summarise_profile(raw: Path, top: int = 20) -> Result:
    """py-spy's collapsed stacks: samples per function as the leaf (self) and anywhere on the
    stack (inclusive), in % of all samples, the ``top`` of each; lines are merged, the raw file
    keeps them."""
    if not raw.is_file():
        return {"error": "py-spy wrote no profile (is ptrace allowed?)"}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [re.sub(r" \((?:.*/)?([^/:]*):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    pct = 100 / max(total, 1)
    return {
        "samples": total,
        "self_pct": [(f, round(n * pct, 1)) for f, n in own.most_common(top)],
        "inclusive_pct": [(f, round(n * pct, 1)) for f, n in inclusive.most_common(top)],
        "raw": str(raw),
    }


def profile_lines(what: str, prof: Result) -> list[str]:
    """The report's lines for a ``summarise_profile`` result (``what``: whose, which phase)."""
    if "error" in prof:
        return [f"profile: {prof['error']}"]
    lines = ["", f"py-spy --gil, {what}, {prof['samples']:,} samples ({prof['raw']})"]
    for name, key in (("self", "self_pct"), ("inclusive", "inclusive_pct")):
        lines.append(f"  top {name}:")
        lines += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof[key]]
    return lines


# -- the command line ------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every bench has, and the hidden ones of its server process (``--serve`` is
    the bench's own: its value differs)."""
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument("--dir", help="parent of the temporary directories")
    parser.add_argument("--py-spy", help="path of py-spy (default: from PATH)")
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)


def run_and_report(
    args: argparse.Namespace,
    prefix: str,
    run: Callable[[argparse.Namespace, Path], Result],
    report: Callable[[Result], str],
) -> None:
    """``run(args, workdir)`` in a new temporary directory under ``--dir`` (kept with
    ``--profile``, for py-spy's raw stacks), then print ``report`` of its result, or the result
    as one JSON line with ``--json``."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=args.dir))
    try:
        result = run(args, workdir)
    finally:
        if not args.profile:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result) if args.json else report(result))
