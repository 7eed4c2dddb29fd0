"""The facade's shorter Redis command path (proxy/store/client.py) keeps what redis-py's own path does
for the facade: a command on a socket Redis closed is sent again once, a due health check still PINGs
first, tracing still sees each command, and every URL form but Cluster gets it. Against a real
redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.store import client as store_client
from proxy.store.client import Client, DirectWrite
from proxy.store.connect import connect
from proxy.web import tracing
from tests.conftest import RedisServer


async def _killed_from_outside(redis_server: RedisServer) -> None:
    """Redis closes every other client's socket, as it does to idle clients or on a restart."""
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        await admin.aclose()
    await asyncio.sleep(0.05)  # the close reaches the facade's socket


async def _pings(redis_server: RedisServer) -> int:
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_a_command_whose_socket_redis_closes_is_sent_again_once(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis closes the socket while a command waits on it (the pool's own check at checkout cannot see
    that): the command is sent again on a new socket and answers. Without the retry the same sequence
    is a ConnectionError (a 503 for the user)."""
    client = connect(redis_server.url, timeout_s=5, max_connections=1)
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        waiting = asyncio.create_task(client.blpop(["client-test"], timeout=2))
        await asyncio.sleep(0.1)  # the BLPOP is on the wire
        await _killed_from_outside(redis_server)
        await admin.rpush("client-test", "after")
        assert tuple(await waiting) == ("client-test", "after")

        monkeypatch.setattr(store_client, "RETRIES_ON_BROKEN_CONNECTION", 0)
        waiting = asyncio.create_task(client.blpop(["client-test"], timeout=2))
        await asyncio.sleep(0.1)
        await _killed_from_outside(redis_server)
        with pytest.raises(RedisConnectionError):
            await waiting
    finally:
        await admin.aclose()
        await client.aclose()


async def test_a_due_health_check_pings_before_the_command_and_only_then(redis_server: RedisServer) -> None:
    """A connection idle past its health-check interval is PINGed before the command is written (the
    direct write defers to redis-py's path); a connection just read from is not."""
    client = connect(redis_server.url, timeout_s=2, max_connections=1)
    try:
        await client.set("client-test", "1")
        connection: Any = client.connection_pool._available_connections[0]
        assert isinstance(connection, DirectWrite)

        before = await _pings(redis_server)
        await client.get("client-test")
        assert await _pings(redis_server) == before

        connection.next_health_check = -1.0  # idle for longer than the interval
        await client.get("client-test")
        assert await _pings(redis_server) == before + 1
    finally:
        await client.delete("client-test")
        await client.aclose()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6399/0", "rediss://127.0.0.1:6399/0",
                                 "unix:///tmp/facade-absent.sock", "redis+sentinel://127.0.0.1:26399/mymaster"])
def test_every_url_form_but_cluster_gets_the_shorter_path(url: str) -> None:
    """Plain, TLS, Unix-socket and Sentinel URLs: the facade's client, and the URL's own connection class
    (TLS stays TLS) with the direct write in front of it."""
    client = connect(url, timeout_s=1)
    assert type(client) is Client
    connection_class = client.connection_pool.connection_class
    assert issubclass(connection_class, DirectWrite)
    assert issubclass(connection_class, aioredis.SSLConnection) == url.startswith("rediss")
    assert issubclass(connection_class, aioredis.UnixDomainSocketConnection) == url.startswith("unix")


def test_cluster_keeps_redis_pys_own_client() -> None:
    """Cluster commands route by slot inside redis-py's cluster client, which the shortcuts do not touch."""
    assert isinstance(connect("redis+cluster://127.0.0.1:7399", timeout_s=1), RedisCluster)


async def test_tracing_sees_each_command_of_the_shorter_path(redis_server: RedisServer) -> None:
    """With tracing on (proxy/web/tracing.py instruments the client the app builds), every command sent
    through the facade's own `execute_command` still gets its span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = connect(redis_server.url, timeout_s=2)
    tracing.trace_redis(client, provider)
    try:
        await client.execute_command("SET", "client-test", "1")
        await client.get("client-test")
        commands = [span.attributes.get("db.statement", "") for span in exporter.get_finished_spans()
                    if span.attributes and span.attributes.get("db.system") == "redis"]
        assert [command.split()[0] for command in commands] == ["SET", "GET"], commands
    finally:
        tracing.untrace_redis(client, provider)
        await client.delete("client-test")
        await client.aclose()
