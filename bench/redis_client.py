"""`python -m bench.redis_client`: client CPU per Redis command, redis-py's own path against the facade's.

One process, a real redis-server, `--concurrency` tasks each sending SETs of a 200-byte value in a loop
(uvloop when installed, hiredis when installed, as the facade runs). Both clients have the facade's
settings (socket timeout, pool bound, health checks, retry); they differ only in the facade's command
layer, `proxy/store/client.py`. Rounds alternate between the two; the median round is printed. The
figure is this process's CPU (user + system) per command: what a request pays for each of its commands.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from bench.procs import LOOPBACK, Processes, start_redis
from bench.servers.common import loop_factory
from proxy.store.connect import connect

VALUE = "v" * 200


def redis_pys_own(url: str, timeout_s: float) -> Any:
    """What `connect` builds for `url` (pool, settings, retry), with redis-py's own client and connection
    class in place of the facade's command layer."""
    pool = connect(url, timeout_s=timeout_s).connection_pool
    pool.connection_class = Connection
    return aioredis.Redis(connection_pool=pool)


async def cpu_per_command(send: Callable[[str], Awaitable[Any]], commands: int, concurrency: int) -> float:
    async def worker(index: int) -> None:
        for number in range(commands // concurrency):
            await send(f"bench:{index}:{number}")

    started = time.process_time()
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return (time.process_time() - started) / commands * 1e6


async def measure(url: str, rounds: int, commands: int, concurrency: int) -> dict[str, list[float]]:
    clients = {"redis-py": redis_pys_own(url, 2.0), "facade": connect(url, timeout_s=2.0)}
    senders = {name: (lambda key, c=client: c.execute_command("SET", key, VALUE, "EX", 60))
               for name, client in clients.items()}
    results: dict[str, list[float]] = {name: [] for name in clients}
    for send in senders.values():  # warm: connections opened, code paths taken
        await cpu_per_command(send, commands, concurrency)
    for index in range(rounds):
        order = list(senders.items()) if index % 2 == 0 else list(reversed(senders.items()))
        for name, send in order:
            results[name].append(await cpu_per_command(send, commands, concurrency))
    for client in clients.values():
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--commands", type=int, default=4000, help="per round and client")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    procs = Processes(Path(tempfile.mkdtemp(prefix="oauth-facade-redis-client-")))
    try:
        redis = start_redis(procs)
        url = f"redis://{LOOPBACK}:{redis.port}/0"
        loop = loop_factory()()
        results = loop.run_until_complete(measure(url, args.rounds, args.commands, args.concurrency))
        loop.close()
    finally:
        procs.stop_all()
    print(f"client CPU per SET, {args.concurrency} at once, median of {args.rounds} rounds (all rounds listed):")
    for name, values in results.items():
        print(f"  {name:9} {statistics.median(values):6.1f} µs   " + " / ".join(f"{value:.1f}" for value in values))


if __name__ == "__main__":
    main()
