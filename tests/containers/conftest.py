"""The compose stack of docker-compose.yml, unchanged, built and run by podman for the tests in this folder.

`make test-containers` runs them: it installs podman (container-deps), makes the stand-in base images
(tests/containers/prepare.sh: no registry is reachable here) and runs `pytest tests/containers`. `make test`
never collects them (pyproject.toml's addopts ignore this folder): they need root and minutes.

The stack is the file a user runs (`docker compose up --build`), on its own ports (8080, 9000), so the tests
drive it from the host exactly as the README tells a user to. podman 4.3 ignores `depends_on: condition:
service_healthy` and runs healthchecks through systemd, which is absent here: readiness is polled instead.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.processes import ROOT
from tests.programs import program

PROJECT = "oauthfacadetest"
FACADE = "http://localhost:8080"
DEVIDP = "http://devidp.localhost:9000"
# `--format docker` keeps the Dockerfile's HEALTHCHECK (the OCI format has none); the base images are the
# local stand-ins, never pulled; the build's pip reaches PyPI through the host's network.
BUILD_ARGS = "--format docker --network=host --pull=never"


@dataclass
class Stack:
    """The running compose project: podman and podman-compose, and a way to reach each service's container."""

    podman: str
    compose: str

    def podman_run(self, *args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.podman, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def compose_run(self, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.compose, "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)}: exit {done.returncode}\n"
                                 f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def container(self, service: str) -> str:
        """The id of the one container of `service` in this project."""
        found = self.podman_run("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}",
                                "--filter", f"label=io.podman.compose.service={service}").stdout.split()
        assert len(found) == 1, f"{service}: expected one container, found {found}"
        return found[0]

    def inspect(self, service: str) -> dict[str, Any]:
        return dict(json.loads(self.podman_run("inspect", self.container(service)).stdout)[0])

    def exec(self, service: str, *argv: str, user: str | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        options = [*(["--user", user] if user else []),
                   *(option for name, value in (env or {}).items() for option in ("--env", f"{name}={value}"))]
        return self.podman_run("exec", *options, self.container(service), *argv, check=False)

    def logs(self) -> str:
        parts = []
        for service in ("facade", "devidp", "mcp", "redis"):
            done = self.podman_run("logs", "--tail", "30", f"{self.container(service)}", check=False)
            parts.append(f"--- {service}\n{done.stdout}{done.stderr}")
        return "\n".join(parts)


def wait_http(url: str, timeout_s: float = 90) -> None:
    """Until `url` answers 200 (a container's process starts, or restarts after Redis came up)."""
    deadline = time.monotonic() + timeout_s
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError as caught:
            error = caught
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s} s: {error}")


def wait_in_container(stack: Stack, service: str, port: int, timeout_s: float = 60) -> None:
    """Until `service` accepts connections on its own port (the demo MCP server is published nowhere)."""
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stack.exec(service, "python", "-c", probe).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{service} did not listen on {port} within {timeout_s} s")


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """`podman-compose up -d --build` of docker-compose.yml, ready; `down -v` at the end (and first, after an
    interrupted run)."""
    running = Stack(podman=program("podman"), compose=program("podman-compose"))
    running.compose_run("down", "-v", timeout_s=180)
    taken = [port for port in (8080, 9000) if _port_taken(port)]
    assert not taken, f"ports {taken} are in use on this host: the compose stack publishes 8080 and 9000"
    running.compose_run(f"--podman-build-args={BUILD_ARGS}", "up", "-d", "--build")
    try:
        try:
            wait_http(FACADE + "/readyz")
            wait_http(DEVIDP + "/.well-known/openid-configuration")
            wait_in_container(running, "mcp", 8081)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{running.logs()}") from None
        yield running
    finally:
        running.compose_run("down", "-v", timeout_s=180)
