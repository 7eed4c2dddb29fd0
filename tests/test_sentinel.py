"""PROXY_REDIS_URL=redis+sentinel://…: the facade finds the master through a real Redis Sentinel."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from proxy.store.connect import connect
from tests.conftest import FacadeFactory, free_port, start_redis
from tests.programs import program


@pytest.fixture(scope="module")
def sentinel() -> Iterator[int]:
    master = start_redis()
    port = free_port()
    config = Path(tempfile.mkdtemp(prefix="facade-sentinel-")) / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor facade 127.0.0.1 {master.port} 1\n")
    process = subprocess.Popen([program("redis-server"), str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = subprocess.run([program("redis-cli"), "-p", str(port), "sentinel", "get-master-addr-by-name",
                                     "facade"], capture_output=True, text=True).stdout
            if str(master.port) in answer:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the sentinel did not find its master")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        master.process.terminate()
        master.process.wait(timeout=10)


@pytest.fixture
async def sentinel_client(sentinel: int) -> AsyncIterator[object]:
    client = connect(f"redis+sentinel://127.0.0.1:{sentinel}/facade/0", timeout_s=5)
    yield client
    await client.aclose()


@pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
async def test_flow_and_refresh_through_a_sentinel(make_facade: FacadeFactory, sentinel_client: object) -> None:
    """A store reached through Redis Sentinel serves a sign-in and a refresh."""
    facade = await make_facade(redis=sentinel_client)
    client = facade.client()
    body = await client.signed_in()
    status, refreshed = await client.refresh(body["refresh_token"])
    assert status == 200, refreshed


async def test_a_burst_waits_for_a_sentinel_connection_instead_of_failing(sentinel: int) -> None:
    """300 concurrent commands through a Sentinel-managed client of at most 3 connections all succeed
    (they queue for the master's pool, where the default pool would raise MaxConnectionsError), and the
    master never sees more than 3 connections from it."""
    client = connect(f"redis+sentinel://127.0.0.1:{sentinel}/facade/0", timeout_s=5, max_connections=3,
                     pool_timeout_s=30)
    try:
        answers = await asyncio.gather(*(client.incr("burst") for _ in range(300)))
        assert sorted(int(answer) for answer in answers)[-1] - sorted(int(a) for a in answers)[0] == 299
        pool = client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 3
    finally:
        await client.aclose()
