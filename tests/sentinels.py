"""A real Redis Sentinel deployment on 127.0.0.1: a primary, a replica and three sentinels (quorum 2),
with the faults issue 23 names: cut replication, kill the primary, let the sentinels promote.

Used by tests/test_failover.py and the soak (bench/soak.py). Every program goes through
tests/programs.py; every process is stopped by `stop()`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import RedisServer, free_port, start_redis
from tests.programs import program

SERVICE = "facade"
# Sentinels PING every second whatever this says: at 1000 a fresh primary (just promoted, first PING
# a second away) could be judged down before its first answer, and a second failover start.
DOWN_AFTER_MS = 3000


def cli(port: int, *args: str, timeout_s: float = 5) -> str:
    """One redis-cli command; its stdout ('' when the server does not answer)."""
    try:
        result = subprocess.run([program("redis-cli"), "-p", str(port), *args], capture_output=True, text=True,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip()


def wait_for(ready: object, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


@dataclass
class SentinelSet:
    """The deployment; `nodes` by port (the primary and the replica swap roles on a failover)."""

    workdir: Path
    nodes: dict[int, RedisServer]
    sentinels: list[tuple[int, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def primary_port(self) -> int:
        """The primary as the sentinels see it now."""
        for port, _ in self.sentinels:
            answer = cli(port, "sentinel", "get-master-addr-by-name", SERVICE).split()
            if len(answer) == 2:
                return int(answer[1])
        raise AssertionError("no sentinel names a primary")

    def replica_port(self) -> int:
        primary = self.primary_port()
        return next(port for port in self.nodes if port != primary)

    def replicated(self, timeout_ms: int = 3000) -> bool:
        """True once the replica acknowledged everything the primary wrote so far (WAIT)."""
        return cli(self.primary_port(), "wait", "1", str(timeout_ms)) == "1"

    def cut_replication_and_kill_primary(self, writes: object = None) -> int:
        """The fault of issue 23: the replica stops receiving (SIGSTOP, and the primary drops its link so
        nothing reaches even its socket buffer), `writes()` runs against a primary that still acknowledges
        everything, then the primary is SIGKILLed and the replica resumed; the old primary's port."""
        primary, replica = self.primary_port(), self.replica_port()
        os.kill(self.nodes[replica].process.pid, signal.SIGSTOP)
        try:
            cli(primary, "client", "kill", "type", "replica")
            if writes is not None:
                writes()  # type: ignore[operator]
        finally:
            self.nodes[primary].process.kill()
            self.nodes[primary].process.wait(timeout=10)
            os.kill(self.nodes[replica].process.pid, signal.SIGCONT)
        return primary

    def wait_promoted(self, old_primary: int, timeout_s: float = 60) -> int:
        wait_for(lambda: self._promoted(old_primary), "the sentinels' failover", timeout_s)
        return self.primary_port()

    def _promoted(self, old_primary: int) -> bool:
        try:
            port = self.primary_port()
        except AssertionError:
            return False
        return port != old_primary and "role:master" in cli(port, "info", "replication")

    def tilted(self) -> int:
        """How many sentinels are in TILT mode (a timer starved past 2 s: they observe but do not act)."""
        return sum("sentinel_tilt:1" in cli(port, "info", "sentinel") for port, _ in self.sentinels)

    def restart(self, port: int) -> None:
        """Start a killed node again on its port, as a replica of the primary the sentinels name now.

        Started as a primary (its own old configuration), a node without persistence is an empty primary
        until the sentinels convert it, 8 s or more later; a second failover in that window (a false
        +sdown of the new primary) can promote it and empty the store. Redis's documentation says not to
        restart such a node as a primary; nor do the orchestrators (they ask the sentinels first)."""
        self.nodes[port] = start_redis(port, "--replicaof", "127.0.0.1", str(self.primary_port()),
                                       workdir=str(self.workdir / str(port)))

    def pause(self, port: int, seconds: float) -> None:
        """Redis holds every write command for `seconds` (CLIENT PAUSE WRITE): the facade's requests wait
        and time out, while reads such as the sentinels' PING go on, so the pause is not a failover."""
        cli(port, "client", "pause", str(int(seconds * 1000)), "write")

    def stop(self) -> None:
        for process in [p for _, p in self.sentinels] + [node.process for node in self.nodes.values()]:
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                process.terminate()
        for process in [p for _, p in self.sentinels] + [node.process for node in self.nodes.values()]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def start_sentinels() -> SentinelSet:
    """Primary, replica (synced) and three sentinels that agree on the primary."""
    workdir = Path(tempfile.mkdtemp(prefix="facade-sentinels-"))
    first = free_port()
    (workdir / str(first)).mkdir()
    primary = start_redis(first, workdir=str(workdir / str(first)))
    second = free_port()
    (workdir / str(second)).mkdir()
    replica = start_redis(second, "--replicaof", "127.0.0.1", str(first), workdir=str(workdir / str(second)))
    deployment = SentinelSet(workdir, {first: primary, second: replica})
    try:
        wait_for(lambda: "master_link_status:up" in cli(second, "info", "replication"), "the replica's sync")
        for _ in range(3):
            port = free_port()
            config = workdir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir}/sentinel-{port}.log\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {first} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
            process = subprocess.Popen([program("redis-server"), str(config), "--sentinel"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deployment.sentinels.append((port, process))
        for port, _ in deployment.sentinels:
            wait_for(lambda p=port: "num-other-sentinels\n2" in cli(p, "sentinel", "master", SERVICE)
                     and "num-slaves\n1" in cli(p, "sentinel", "master", SERVICE), "the sentinels' discovery")
    except BaseException:
        deployment.stop()
        raise
    return deployment
