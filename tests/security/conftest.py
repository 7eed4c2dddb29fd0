"""Helpers of the adversarial suite: a full dump of the store to prove an attack changed nothing, the
error code of an HTML page, captured logs, and a facade on a real redis-server that a test may stop."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from proxy.app import create_app
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.devidp.app import CONFIG as DEVIDP_CONFIG
from proxy.devidp.app import STATE as DEVIDP_STATE
from proxy.settings import Settings
from tests.conftest import Facade, RedisServer, free_port, start_redis
from tests.security.whatwg import WhatwgUrl

Snapshot = dict[str, Any]
_ERROR_CODE = re.compile(r"Error code: <code>([^<]*)</code>")


async def snapshot(redis: Any) -> Snapshot:
    """Every key and its value (strings and hashes), so 'nothing changed' is checked on contents."""
    state: Snapshot = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        if kind == "string":
            state[key] = await redis.get(key)
        elif kind == "hash":
            state[key] = await redis.hgetall(key)
        else:
            state[key] = kind
    return state


def kinds(state: Snapshot) -> list[str]:
    """The kind of each key (client, tx, consent, code, family, ...), to say what a snapshot holds."""
    return sorted(key.removeprefix("oauthfacade:").split(":", 1)[0] for key in state)


def html_error(text: str) -> str:
    """The OAuth error code an HTML error page names."""
    found = _ERROR_CODE.search(text)
    assert found is not None, f"not an error page: {text[:300]}"
    return found.group(1)


async def json_error(response: aiohttp.ClientResponse) -> str:
    assert response.content_type == "application/json", response.content_type
    return str((await response.json())["error"])


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


# -- a real redis-server the test may kill, pause and restart ------------------------------------------
@dataclass
class LiveRedis:
    """A redis-server with an append-only file fsynced on every write: a restart keeps what was written."""

    server: RedisServer
    workdir: str

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=10)

    def restart(self) -> None:
        self.server = start_redis(self.server.port, *_PERSISTENT, workdir=self.workdir)

    def pause(self) -> None:
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.server.process.poll() is None:
            self.resume()
            self.server.process.terminate()
            self.server.process.wait(timeout=10)


_PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


@pytest.fixture
def live_redis() -> Iterator[LiveRedis]:
    workdir = tempfile.mkdtemp(prefix="facade-live-redis-")
    live = LiveRedis(start_redis(None, *_PERSISTENT, workdir=workdir), workdir)
    yield live
    live.stop()
    subprocess.run(["rm", "-rf", workdir], check=False)


@pytest.fixture
async def inspector(live_redis: LiveRedis) -> AsyncIterator[Any]:
    """A separate client on the live Redis, for the test's own assertions."""
    client = aioredis.Redis.from_url(live_redis.url, decode_responses=True)
    yield client
    await client.aclose()


LiveFacadeFactory = Callable[..., Awaitable[Facade]]


@pytest.fixture
async def live_facade(live_redis: LiveRedis, aiohttp_server: Any) -> AsyncIterator[LiveFacadeFactory]:
    """A facade that reaches the live Redis through PROXY_REDIS_URL (its own client, its own timeouts),
    with the dev IdP on its own port. Calling it again with `port=` and `idp=` of an earlier facade
    starts a new process-like app on the same port and upstream: a restart."""
    sessions: list[aiohttp.ClientSession] = []

    async def factory(*, port: int | None = None, idp: Facade | None = None, **overrides: Any) -> Facade:
        port = port or free_port()
        issuer = f"http://127.0.0.1:{port}"
        if idp is None:
            idp_config = DevIdpConfig(issuer="", client_id="facade", client_secret="facade secret+1",
                                      redirect_uris=(issuer + "/callback",))
            idp_app = create_devidp_app(idp_config)
            idp_server = await aiohttp_server(idp_app)
            idp_url = str(idp_server.make_url("")).rstrip("/")
            idp_config.issuer = idp_url
            idp_state = idp_app[DEVIDP_STATE]
            idp_config = idp_app[DEVIDP_CONFIG]
        else:
            idp_url, idp_config, idp_state = idp.idp_url, idp.idp_config, idp.idp_state
        values: dict[str, Any] = {
            "issuer": issuer, "port": port, "upstream_issuer": idp_url, "upstream_client_id": "facade",
            "upstream_client_secret": "facade secret+1", "consent": False, "rate_limits": False,
            "redis_url": live_redis.url, "redis_timeout_s": 0.3,
        }
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        server: TestServer = await aiohttp_server(create_app(settings), port=port)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return Facade(issuer, settings, server, idp_url, idp_config, idp_state, http)

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture(scope="session")
def whatwg() -> Iterator[WhatwgUrl]:
    """Node's WHATWG URL parser (what browsers do), one process for the session: see `whatwg.py`."""
    parser = WhatwgUrl()
    yield parser
    parser.close()
