"""Shared fixtures: a real redis-server for the session, fakeredis per test, the dev IdP on its own port,
and the facade in-process on a free loopback port."""

from __future__ import annotations

import io
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import fakeredis
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from proxy import log
from proxy.app import REDIS, create_app
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.devidp.app import CONFIG as DEVIDP_CONFIG
from proxy.devidp.app import STATE as DEVIDP_STATE
from proxy.devidp.app import DevIdpState
from proxy.settings import Settings
from proxy.state import SERVICES, Services
from tests.helpers import Client
from tests.programs import program


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_EPHEMERAL = _ephemeral_range()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, chosen OUTSIDE the kernel's ephemeral range: a port from bind(0) is in
    that range, so between this call and the server's bind the kernel may give it to one of the suite's
    own outgoing connections as a source port ("Address already in use"). Never the same port twice."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _EPHEMERAL or port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # an unusual ephemeral range: fall back to the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(port: int | None = None, *extra: str, workdir: str | None = None) -> RedisServer:
    """A redis-server on 127.0.0.1; `extra` arguments override the defaults (e.g. `--appendonly yes`),
    and the same `workdir` again restarts it on the data it persisted there."""
    binary = program("redis-server")
    port = port or free_port()
    workdir = workdir or tempfile.mkdtemp(prefix="facade-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return RedisServer(port, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line the facade writes during the test, as JSON lines."""
    stream = io.StringIO()
    log.configure("debug", "json", stream=stream)
    yield stream
    log.configure("info", "console")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)


@pytest.fixture(params=["fakeredis", "redis-server"])
async def redis_client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Each store test runs on both: fakeredis (the embedded store) and a real redis-server."""
    if request.param == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True, version=(7, 2))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        await client.flushdb()
    yield client
    await client.aclose()


@dataclass
class Facade:
    """A running facade with its dev IdP, and handles on their state for assertions."""

    url: str
    settings: Settings
    server: TestServer
    idp_url: str
    idp_config: DevIdpConfig
    idp_state: DevIdpState
    http: aiohttp.ClientSession

    @property
    def services(self) -> Services:
        return self.server.app[SERVICES]

    @property
    def redis(self) -> Any:
        return self.server.app[REDIS]

    def client(self) -> Client:
        return Client(self)

    async def keys(self) -> set[str]:
        return set(await self.redis.keys("*"))


FacadeFactory = Callable[..., Awaitable[Facade]]


@pytest.fixture
async def make_facade(redis_client: Any, aiohttp_server: Any) -> AsyncIterator[FacadeFactory]:
    """Start the dev IdP on its own port, then a facade pointed at it; both stopped by the test."""
    sessions: list[aiohttp.ClientSession] = []

    async def factory(idp: dict[str, Any] | None = None, redis: Any = None, port: int | None = None,
                      tracer_provider: Any = None, **overrides: Any) -> Facade:
        port = port or free_port()
        issuer = f"http://127.0.0.1:{port}"
        idp_config = DevIdpConfig(issuer="", client_id="facade", client_secret="facade secret+1",
                                  redirect_uris=(issuer + "/callback",), **(idp or {}))
        idp_app = create_devidp_app(idp_config)
        idp_server = await aiohttp_server(idp_app)
        idp_url = str(idp_server.make_url("")).rstrip("/")
        idp_config.issuer = idp_url
        values: dict[str, Any] = {
            "issuer": issuer, "port": port, "upstream_issuer": idp_url, "upstream_client_id": "facade",
            "upstream_client_secret": "facade secret+1", "consent": False, "rate_limits": False,
        }
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        app = create_app(settings, redis=redis if redis is not None else redis_client, tracer_provider=tracer_provider)
        server = await aiohttp_server(app, port=port)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Facade(issuer, settings, server, idp_url, idp_app[DEVIDP_CONFIG], idp_app[DEVIDP_STATE], http)

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture
async def facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Redis round trips on the wire: every packet of commands a connection sends (a pipeline is one),
    counted into `[0]` (tests/test_round_trips.py, tests/test_bench_baseline.py)."""
    from redis.asyncio.connection import Connection

    sent = [0]
    original = Connection.send_packed_command

    async def counted(self: Connection, command: object, check_health: bool = True) -> None:
        sent[0] += 1
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    yield sent
