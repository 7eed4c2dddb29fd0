"""Bounded Redis connection pools that wait for a free connection instead of failing.

redis-py's default pool raises `MaxConnectionsError` once its connections are all busy, so a burst of
requests became 503s although Redis itself was idle. Here every client the facade builds holds at most
PROXY_REDIS_MAX_CONNECTIONS connections (per Redis node) and a command that finds them all busy waits
up to PROXY_REDIS_POOL_TIMEOUT_S for one; only then does it fail (a `ConnectionError`, which the store
turns into 503 like any other outage). The wait must stay shorter than the clients' own request
timeout, so a client hears 503 rather than giving up on its own.

- plain URLs: redis-py's `BlockingConnectionPool`, taking a free connection first (`FreeFirstPool`);
- Sentinel: the same, mixed into the `SentinelConnectionPool` that follows the master;
- Cluster: redis-py's cluster client has no blocking pool (each node raises when full), so a semaphore
  of the same size gates every command and pipeline of the client: no node can then have more
  connections in use than the bound.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, ConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

# The plain pool's get_connection without redis-py's deprecated-arguments wrapper (one more coroutine
# per command, checking arguments this module never passes).
_plain_get_connection = getattr(ConnectionPool.get_connection, "__wrapped__", ConnectionPool.get_connection)


class FreeFirstPool(BlockingConnectionPool):
    """A BlockingConnectionPool that waits only when it must.

    redis-py's blocking pool enters a condition, a timeout context and `wait_for` for every command,
    even with idle connections at hand, and takes the condition again to release: a twentieth of what a
    one-command request costs the facade. Here a command takes a free connection (or opens one below
    the bound) the way the plain pool does, and only a full pool sends it down redis-py's waiting path;
    a release notifies the condition only while a command waits there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0  # commands inside redis-py's waiting path

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self.can_get_connection():
            try:
                connection: AbstractConnection = await _plain_get_connection(self)
                return connection
            except MaxConnectionsError:
                pass  # the last free one went to another task meanwhile: wait like everyone else
        self._waiting += 1
        try:
            return await super().get_connection()
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        """Back to the pool, then wake one waiter if any. No wake-up is lost: a waiter counted after the
        check below tests for a free connection after this one was returned (asyncio runs the check and
        the wait without a switch between them), and one counted before it is notified."""
        await ConnectionPool.release(self, connection)
        if self._waiting:
            async with self._condition:
                self._condition.notify()


class BlockingSentinelConnectionPool(SentinelConnectionPool, FreeFirstPool):
    """A Sentinel-managed pool (follows the master across failovers) that waits when full.

    MRO: Sentinel's address discovery and connection ownership, then FreeFirstPool's get_connection
    and BlockingConnectionPool's release (a condition variable with a timeout), then the plain pool."""


class _Gate:
    """At most `size` commands at once; a caller waits up to `timeout_s`, then gets ConnectionError."""

    __slots__ = ("semaphore", "timeout_s")

    def __init__(self, size: int, timeout_s: float) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.timeout_s = timeout_s

    async def __aenter__(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.semaphore.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None

    async def __aexit__(self, *exc: object) -> None:
        self.semaphore.release()


class BlockingRedisCluster(RedisCluster):
    """A RedisCluster whose commands and pipelines wait for one of `max_connections` slots."""

    def __init__(self, *args: Any, pool_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._gate = _Gate(max_connections, pool_timeout)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        return _GatedPipeline(self, transaction=transaction)


class _GatedPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        async with self.cluster_client._gate:  # type: ignore[attr-defined]
            return await super().execute(raise_on_error=raise_on_error, allow_redirections=allow_redirections)
