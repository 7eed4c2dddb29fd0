"""Starting, watching and stopping the processes of one bench run, loopback only.

Every process is started by this module and stopped by its own pid (SIGTERM, then SIGKILL after a
grace period); the run never signals anything it did not start. Output goes to a log file per
process, shown when a process fails to come up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.cpu import process_tree

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class StartError(RuntimeError):
    """A process did not come up; the message carries the tail of its log."""


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def tree(self) -> list[int]:
        return process_tree(self.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class Processes:
    """The run's processes, stopped in reverse order of start."""

    logdir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, port: int = 0,
              cwd: Path | None = None) -> Proc:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **(env or {})}, cwd=cwd)
        proc = Proc(name, process, log, port)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()


def wait_http(proc: Proc, url: str, timeout: float = 60.0) -> None:
    """Until `url` answers 200; fails early, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise StartError(f"{proc.name} did not answer {url} within {timeout:.0f}s ({last}):\n{proc.tail()}")


def wait_port(proc: Proc, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.tail()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"{proc.name} did not listen on {port}:\n{proc.tail()}")


def start_redis(procs: Processes) -> Proc:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise StartError("redis-server is not installed: `make bench` installs it (make redis-server)")
    port = free_port()
    workdir = procs.logdir / "redis"
    workdir.mkdir(exist_ok=True)
    proc = procs.start("redis", [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "",
                                 "--appendonly", "no", "--dir", str(workdir)], port=port)
    wait_port(proc, port)
    return proc


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL we built
        return json.loads(response.read())
