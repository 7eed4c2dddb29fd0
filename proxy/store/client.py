"""The facade's Redis client: redis-py's own, with a shorter path for each command.

redis-py spends more of the facade's CPU on a command than Redis does: about 53 µs of client CPU for a
SET on this project's 2-core VM, where a registration's whole request costs about 160. Two layers of it
do nothing for the facade:

- `Redis.execute_command` runs each command through a retry object, two closures, a telemetry hook
  (an await even with telemetry off) and a check for one module's command (HIMPORT);
- with a socket timeout, `Connection.send_packed_command` wraps every write in `asyncio.wait_for`, which
  on Python 3.11 creates a task and schedules it, although handing bytes to the transport never waits.

Here a command takes a connection, sends, parses and releases it, retrying once at once on a broken
connection (RETRIES_ON_BROKEN_CONNECTION, the policy of `connect.retry`); and a write goes straight to
the transport while the connection is open and owes no health check. Everything else (reading with its
timeout, response callbacks, reconnecting, health checks, Sentinel's master discovery, pipelines) is
redis-py's unchanged. `python -m bench.redis_client` measures both paths: 53 → 41 µs of client CPU per
SET, 16 at once (bench/README).

Redis Cluster keeps redis-py's cluster client as it is: its commands take another path (slot routing,
redirections), which these two shortcuts do not touch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import cache
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

# A pooled socket that Redis closed (it restarted, or dropped idle clients) fails the first command sent
# on it: that one is sent again, once, on a new socket. Never a timeout: a timed-out command may have
# run, and running a code redemption twice would revoke the family it opened.
RETRIES_ON_BROKEN_CONNECTION = 1


class Client(aioredis.Redis):
    """`redis.asyncio.Redis` whose commands skip its per-command retry and telemetry wrapping."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.single_connection_client:  # never built by the facade; kept correct all the same
            return await super().execute_command(*args, **options)
        pool = self.connection_pool
        connection = await pool.get_connection()
        retries_left = RETRIES_ON_BROKEN_CONNECTION
        try:
            while True:
                try:
                    await connection.send_command(*args)
                    return await self.parse_response(connection, args[0], **options)
                except RedisConnectionError as error:
                    await connection.disconnect(error=error)  # a retry connects again
                    if not retries_left:
                        raise
                    retries_left -= 1
        finally:
            await pool.release(connection)


class DirectWrite(AbstractConnection):
    """A connection that hands a command to its transport without `asyncio.wait_for` when it can.

    Such a write never waits: a pooled connection carries one command (or pipeline) at a time, and its
    previous answer was read in full, so Redis had taken every byte sent before; what the socket cannot
    take now stays in the transport's buffer. The socket timeout still bounds the command, on the read
    that follows. A write takes redis-py's own path (connecting, the health check's PING) whenever the
    connection is not open or a health check is due."""

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        writer = self._writer
        if (self._reader is None or writer is None or writer.transport.is_closing()
                or (check_health and self._health_check_due())):
            await super().send_packed_command(command, check_health)
            return
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            writer.write(command)
        else:
            writer.writelines(command)

    def _health_check_due(self) -> bool:
        """redis-py's own test (`check_health`): idle longer than the interval since the last read."""
        return bool(self.health_check_interval) and asyncio.get_running_loop().time() > self.next_health_check


@cache
def direct_write(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """`connection_class` (TCP, TLS, Unix socket, Sentinel-managed) with DirectWrite's shorter write."""
    if issubclass(connection_class, DirectWrite):
        return connection_class
    return type(f"DirectWrite{connection_class.__name__}", (DirectWrite, connection_class), {})
