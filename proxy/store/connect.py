"""Turn ``PROXY_REDIS_URL`` into one ``redis.asyncio`` client (or the embedded fakeredis).

The URL forms operators script against:

- ``redis://[:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/redis.sock``
- ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS): any node of a Redis Cluster
- ``redis+sentinel://[:password@]host:port[,host:port…]/service_name[/db]``
- unset: an in-memory fakeredis, the same code path, one process only
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from proxy.store.client import RETRIES_ON_BROKEN_CONNECTION, Client, direct_write
from proxy.store.pool import BlockingRedisCluster, BlockingSentinelConnectionPool, FreeFirstPool

# Defaults of the pool bound when a caller (probe, tests) gives none; the app passes the settings.
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_POOL_TIMEOUT_S = 5.0


def connect(url: str | None, *, timeout_s: float, max_connections: int = DEFAULT_MAX_CONNECTIONS,
            pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S) -> Any:
    """A client for `url`; nothing is contacted until the first command.

    At most `max_connections` connections (per node), and a command that finds them all busy waits up
    to `pool_timeout_s` for one (proxy/store/pool.py): a burst queues instead of failing. Plain and
    Sentinel URLs get the shorter command path of proxy/store/client.py."""
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }
    if not url:
        return embedded()
    scheme = urlsplit(url).scheme
    if scheme.endswith("+cluster"):
        return BlockingRedisCluster.from_url(url.replace("+cluster", "", 1), max_connections=max_connections,
                                             pool_timeout=pool_timeout_s, **common)
    if scheme == "redis+sentinel":
        return _sentinel(url, {**common, "retry": retry()}, max_connections=max_connections,
                         pool_timeout_s=pool_timeout_s)
    pool = FreeFirstPool.from_url(url, max_connections=max_connections, timeout=pool_timeout_s,
                                  health_check_interval=30, retry=retry(), **common)
    pool.connection_class = direct_write(pool.connection_class)  # the URL chose TCP, TLS or a Unix socket
    return Client(connection_pool=pool)


def embedded() -> Any:
    """The in-memory store (no PROXY_REDIS_URL): fakeredis, answering in this process.

    Without a socket timeout: there is no socket, and with one redis-py wraps every command's send in
    `asyncio.wait_for`, a task and a timer per command (about a sixth of the gateway's revocation check,
    which runs on every proxied request)."""
    import fakeredis  # imported only when used

    return fakeredis.FakeAsyncRedis(decode_responses=True, version=(7, 2), socket_timeout=None)


def retry() -> Retry:
    """One immediate retry on a broken connection (a pooled socket Redis closed when it restarted), none
    on a timeout: a timed-out command may have run, and running a code redemption twice would revoke
    the family it opened. redis-py's default (10 retries with backoff, timeouts included) would also
    hold a request for many timeouts before the client hears 503. `Client` sends commands by the same
    rule; this object is what redis-py's own paths (health checks, pipelines, Sentinel) follow."""
    return Retry(NoBackoff(), retries=RETRIES_ON_BROKEN_CONNECTION, supported_errors=(RedisConnectionError,))


def _sentinel(url: str, common: dict[str, Any], *, max_connections: int, pool_timeout_s: float) -> Any:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    password = unquote(netloc[0].split(":", 1)[-1]) if len(netloc) == 2 else None
    hosts = []
    for node in netloc[-1].split(","):
        host, _, port = node.rpartition(":")
        hosts.append((host or node, int(port or 26379)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ValueError("redis+sentinel:// needs the service name as its path")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(hosts, sentinel_kwargs={"password": password}, password=password, db=db, **common)
    return sentinel.master_for(path[0], redis_class=Client, connection_pool_class=BlockingSentinelConnectionPool,
                               connection_class=direct_write(SentinelManagedConnection),
                               max_connections=max_connections, timeout=pool_timeout_s)


def describe(url: str | None) -> str:
    """The URL without its password, for logs."""
    if not url:
        return "in-memory"
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def masked(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages that must name the exact target."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, hosts = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return parts._replace(netloc=f"{name}:***@{hosts}").geturl()


async def probe(url: str, *, timeout_s: float) -> str | None:
    """Connect and PING once, as start-up and `check` do before trusting the store.

    None when the store answered, else the cause in one line (connection refused, auth, timeout...).
    """
    try:
        client = connect(url, timeout_s=timeout_s)
    except (ValueError, RedisError) as exc:
        return str(exc)
    budget_s = timeout_s * 3  # a cluster or sentinel asks more than one node
    try:
        async with asyncio.timeout(budget_s):
            await client.ping()
    except TimeoutError:
        return f"no answer within {budget_s:g} s"
    except (RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        try:
            await client.aclose()
        except (RedisError, OSError):
            pass
    return None
