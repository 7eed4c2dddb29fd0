"""The Redis pool operators get from a `redis://` URL: a free connection is taken at once, a full pool
waits (up to PROXY_REDIS_POOL_TIMEOUT_S) and then fails as an outage (proxy/store/pool.py; that a burst
queues without a 5xx is tests/test_burst.py). Against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from proxy.store.connect import connect
from tests.conftest import RedisServer


def _client(redis_server: RedisServer, size: int, timeout_s: float) -> object:
    return connect(f"redis://127.0.0.1:{redis_server.port}/0", timeout_s=5, max_connections=size,
                   pool_timeout_s=timeout_s)


async def test_a_full_pool_waits_then_fails_as_an_outage_not_at_once(redis_server: RedisServer) -> None:
    """With its only connection busy, a command waits out the pool timeout and then gets the waiting
    pool's ConnectionError ("No connection available."), never the plain pool's immediate
    MaxConnectionsError ("Too many connections")."""
    client = _client(redis_server, 1, 0.3)
    pool = client.connection_pool  # type: ignore[attr-defined]
    held = await pool.get_connection()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisConnectionError) as refused:
            await client.ping()  # type: ignore[attr-defined]
        assert not isinstance(refused.value, MaxConnectionsError)
        assert "No connection available" in str(refused.value)
        assert loop.time() - started >= 0.25
    finally:
        await pool.release(held)
        await client.aclose()  # type: ignore[attr-defined]


async def test_idle_connections_serve_commands_without_waiting(redis_server: RedisServer) -> None:
    """Commands on a pool with room all succeed and reuse its connections (never more than the bound)."""
    client = _client(redis_server, 4, 5)
    try:
        answers = await asyncio.gather(*(client.incr("pool-test") for _ in range(200)))  # type: ignore[attr-defined]
        assert len(set(answers)) == 200
        pool = client.connection_pool  # type: ignore[attr-defined]
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 4
    finally:
        await client.delete("pool-test")  # type: ignore[attr-defined]
        await client.aclose()  # type: ignore[attr-defined]


async def test_a_waiting_command_gets_the_connection_another_releases(redis_server: RedisServer) -> None:
    """A command queued on a full pool is woken by the release of the busy connection and succeeds, well
    inside the pool timeout (a missed wake-up would leave it to fail with "No connection available")."""
    client = _client(redis_server, 1, 5)
    pool = client.connection_pool  # type: ignore[attr-defined]
    held = await pool.get_connection()
    waiting = asyncio.ensure_future(client.ping())  # type: ignore[attr-defined]
    try:
        await asyncio.sleep(0.2)
        assert not waiting.done()  # it waits: the pool's only connection is held
    finally:
        await pool.release(held)
    try:
        assert await asyncio.wait_for(waiting, timeout=2) is True
    finally:
        await client.aclose()  # type: ignore[attr-defined]
