"""Shared pieces of the end-to-end benchmarks: processes, CPU accounting and simulated workers
that drive the bot through the emulator's HTTP control API (so the bot runs in its own process
and its CPU time is its own)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.emulator.client import EmulatorClient  # noqa: E402
from bot.i18n import t  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT_S = 240  # a closed loop of 1,000 workers on 2 cores queues for many seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def processes_named(*names: str) -> list[int]:
    """Pids of running processes whose command name is one of ``names`` (e.g. postgres)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    pids.append(int(entry.name))
            except OSError:  # the process ended while we looked
                continue
    return pids


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, summed over cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuCensus:
    """Where the machine's CPU went during a measured window, in cores (CPU s / wall s).

    A closed-loop rate on a shared machine says little on its own: this tells whether the
    bot was the bottleneck or the machine was simply full (emulator, driver, database)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start: dict[str, float] = {}

    def _group_cpu(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:  # ended: counts only what we saw, see stop()
                continue
        return total

    def start(self) -> None:
        self._start = {name: self._group_cpu(pids) for name, pids in self.groups.items()}
        self._start["driver"] = time.process_time()
        self._busy0, self._total0 = machine_busy_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Cores per group for the window; the raw figures stay in ``seconds`` and ``wall``."""
        self.wall = time.perf_counter() - self._t0
        busy, total = machine_busy_seconds()
        self.seconds = {name: self._group_cpu(pids) - self._start[name] for name, pids in self.groups.items()}
        self.seconds["driver"] = time.process_time() - self._start["driver"]
        cores = {name: cpu / self.wall for name, cpu in self.seconds.items()}
        out = {name: round(v, 2) for name, v in cores.items()}
        # everything the benchmark runs, together (replicaN are shares of "bots")
        out["parts"] = round(sum(v for name, v in cores.items() if not name.startswith("replica")), 2)
        out["machine"] = round((busy - self._busy0) / self.wall, 2)
        out["machine_busy"] = round((busy - self._busy0) / max(1e-9, total - self._total0), 3)
        return out


class CpuCap:
    """Caps one process at a fraction of a core with a cgroup (v2 ``cpu.max`` or v1 CFS quota).

    Stands in for "each replica on its own small machine": with every replica capped, the
    replicas are the bottleneck while the machine still has idle CPU, so adding one shows
    what it adds. Needs root (or a delegated cgroup); :meth:`available` says why not."""

    V2 = Path("/sys/fs/cgroup")
    V1 = Path("/sys/fs/cgroup/cpu")
    PERIOD_US = 100_000

    def __init__(self, name: str, cores: float) -> None:
        self.cores = cores
        self.path = self._root() / name

    @classmethod
    def _root(cls) -> Path:
        return cls.V2 if (cls.V2 / "cgroup.controllers").exists() else cls.V1

    @classmethod
    def available(cls) -> str | None:
        """None when caps can be set here, else the reason they cannot."""
        root = cls._root()
        if not (root / "cgroup.procs").exists():
            return f"no cgroup cpu controller at {root}"
        if not os.access(root, os.W_OK):
            return f"{root} is not writable (run as root to cap replicas)"
        return None

    def add(self, pid: int) -> None:
        self.path.mkdir(exist_ok=True)
        quota = int(self.cores * self.PERIOD_US)
        if (self.path / "cpu.max").exists():
            (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """After the process has ended (a cgroup with members cannot be removed)."""
        try:
            self.path.rmdir()
        except OSError:
            pass


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def start_emulator(port: int, token: str, *, flood_control: bool = False, log: Path | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "bot.emulator", "--port", str(port), "--token", token]
    if flood_control:
        args.append("--flood-control")
    return _spawn(args, log)


def _spawn(args: list[str], log: Path | None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a process of the benchmark with its output in ``log`` (or nowhere). The child has
    its own copy of the log's descriptor, so this process closes its copy at once."""
    if log is None:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_bot(env_extra: dict[str, str], *, args: list[str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", **env_extra}
    return _spawn([sys.executable, "-m", "bot.cli", "run", *(args or [])], log, env)


def start_floor(token: str, api_base: str, *, webhook_port: int = 0, secret: str = "", log: Path | None = None) -> subprocess.Popen[bytes]:
    """The bare aiogram bot of ``floor_bot.py`` (the floor ``cpu_vs_floor`` divides by)."""
    args = [sys.executable, str(ROOT / "benchmarks" / "floor_bot.py"), "--token", token, "--api-base", api_base]
    if webhook_port:
        args += ["--webhook-port", str(webhook_port), "--secret", secret]
    return _spawn(args, log)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(cols[9])
    return inodes


async def wait_listening(pid: int, port: int, timeout: float = 60) -> None:
    """Until process ``pid`` itself listens on ``port``. Replicas share one port
    (SO_REUSEPORT), so an HTTP probe may be answered by a replica already up; a keep-alive
    connection opened before the next replica listens stays with the first for the whole run."""
    deadline = time.monotonic() + timeout
    while True:
        inodes = _listening_inodes(port)
        try:
            fds = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            fds = []
        if any(fd.startswith("socket:[") and fd[8:-1] in inodes for fd in fds):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not listen on port {port} within {timeout} s")
        await asyncio.sleep(0.1)


async def wait_http(url: str, timeout: float = 30) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up within {timeout} s")
            await asyncio.sleep(0.1)


def _assignment(message: Any) -> int | None:
    markup = message.reply_markup or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            parts = str(button.get("callback_data", "")).split(":")
            if len(parts) >= 3 and parts[0] == "t":
                return int(parts[2])
    return None


def _labels(message: Any) -> list[str]:
    markup = message.reply_markup or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row if str(b.get("callback_data", "")).startswith("t:l:")]


@dataclass
class RemoteWorker:
    """A simulated worker over the control API: taps the first label, waits for the next task."""

    client: EmulatorClient
    user_id: int
    lang: str = "ko"
    message: Any = None
    version: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    answers: int = 0
    done: bool = False
    stopped_by: str = ""  # the bot's message that ended this worker's tasks

    async def start(self) -> None:
        await self.client.send_text(self.user_id, "/start")
        await self.client.wait_for_bot_message(self.user_id, 0, timeout=WAIT_S)

    async def get_task(self) -> None:
        newest = await self.client.last_message(self.user_id)
        after = newest.message_id if newest else 0
        await self.client.send_text(self.user_id, t("menu.get_task", self.lang))
        self.message = await self.client.wait_for_bot_message(self.user_id, after, timeout=WAIT_S)
        self.version = await self.client.chat_version(self.user_id)
        self.done = _assignment(self.message) is None

    async def answer(self) -> None:
        """Tap a label; returns when the next task (or "all done") is on screen."""
        current = _assignment(self.message)
        labels = _labels(self.message)
        started = time.perf_counter()
        await self.client.tap(self.user_id, self.message.message_id, text=labels[self.answers % len(labels)])
        while True:
            result = await self.client._call(
                "GET", "/wait", params={"chat_id": self.user_id, "after_version": self.version, "timeout": WAIT_S}, timeout=WAIT_S + 10
            )
            if result["timed_out"]:
                raise TimeoutError(f"worker {self.user_id}: no next task within {WAIT_S} s")
            self.version = result["version"]
            from bot.emulator.state import TranscriptMessage

            message = TranscriptMessage.from_dict(result["message"])
            assignment = _assignment(message)
            if assignment is not None and assignment != current:
                self.message = message
                break
            if assignment is None and message.message_id != self.message.message_id and message.text:
                # a new message without a task (it carries the main menu's reply keyboard): all
                # done, or a rule stopped this worker; waiting on would only time out
                self.done, self.stopped_by = True, message.text
                break
            if message.message_id == self.message.message_id:
                self.message = message
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.answers += 1


def unlimited_client(base: str) -> EmulatorClient:
    """A control-API client without aiohttp's 100-connection cap: every simulated worker
    keeps a long poll open, and queueing behind the cap would be measured as bot latency."""
    import aiohttp

    client = EmulatorClient(base, session=aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
    client._owns_session = True
    return client


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)
