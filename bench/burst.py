"""`python -m bench.burst`: what the bounded Redis pool costs a burst (issue 23 item 1).

One facade process (`oauth-facade serve`, real redis-server, rate limits off), N clients at once, each
POST /register then GET /authorize on a connection of its own. Run at several PROXY_REDIS_MAX_CONNECTIONS:
a pool as large as the burst never waits, so the difference in latency is the queueing the bound adds.
Reports 5xx (goal 0), p50/p99 of a client's two requests and the burst's wall time; writes
bench/results/<stamp>-<cores>core-burst.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench.loadgen import percentile
from bench.procs import LOOPBACK, start_redis
from bench.run import HERE, UPSTREAM_CLIENT_ID, Bench, Options, machine, shell_command

REDIRECT_URI = "http://127.0.0.1:5599/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def _client(http: aiohttp.ClientSession, url: str, latencies: list[float], statuses: Counter[int]) -> None:
    started = time.perf_counter()
    async with http.post(url + "/register", json={"redirect_uris": [REDIRECT_URI], "client_name": "burst"}) as r:
        statuses[r.status] += 1
        if r.status != 201:
            return
        client_id = (await r.json())["client_id"]
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
              "code_challenge": CHALLENGE, "code_challenge_method": "S256", "scope": "openid",
              "state": secrets.token_hex(8)}
    async with http.get(url + "/authorize?" + urlencode(params), allow_redirects=False) as r:
        await r.read()
        statuses[r.status] += 1
    latencies.append((time.perf_counter() - started) * 1000)


async def burst(url: str, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as http:
        started = time.perf_counter()
        await asyncio.gather(*(_client(http, url, latencies, statuses) for _ in range(clients)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {"wall_s": round(wall, 3), "p50_ms": round(percentile(latencies, 0.5), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "status_5xx": sum(n for status, n in statuses.items() if status >= 500),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__)
    parser.add_argument("--clients", type=int, default=1000, help="clients in one burst (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per pool size, the median kept (default 3)")
    parser.add_argument("--pools", default="10,50,1000",
                        help="PROXY_REDIS_MAX_CONNECTIONS values, comma separated (default 10,50,1000)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    pools = [int(value) for value in args.pools.split(",")]
    bench = Bench(Options(fastmcp=False, workers=False, variants=False, quiet_wait=0, results=args.results,
                          command=shell_command()))
    rows: list[dict[str, Any]] = []
    try:
        bench.redis = start_redis(bench.procs)
        bench.idp = bench._python("stub-idp", "bench.servers.stub_idp", "--client-id", UPSTREAM_CLIENT_ID)
        bench.idp_url = f"http://{LOOPBACK}:{bench.idp.port}"
        facades = {pool: bench.start_facade(f"facade-pool{pool}", env={
            "PROXY_REDIS_MAX_CONNECTIONS": str(pool), "PROXY_REDIS_PREFIX": f"burst{pool}:"}) for pool in pools}
        results: dict[int, list[dict[str, Any]]] = {pool: [] for pool in pools}
        for _ in range(args.rounds):  # interleaved, so a disturbance hits every pool size alike
            for pool, proc in facades.items():
                results[pool].append(asyncio.run(burst(f"http://{LOOPBACK}:{proc.port}", args.clients)))
        for pool in pools:
            runs = results[pool]
            rows.append({"max_connections": pool, "clients": args.clients,
                         "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                         "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                         "wall_s": statistics.median(r["wall_s"] for r in runs),
                         "status_5xx": sum(r["status_5xx"] for r in runs), "runs": runs})
    finally:
        bench.procs.stop_all()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {"command": shell_command().replace("python -m bench", "python -m bench.burst", 1),
              "machine": machine(), "rows": rows}
    lines = [f"# Burst on one facade process ({args.clients} clients: register then authorize)", "",
             f"`{report['command']}`, {os.cpu_count()} cores, rounds: {args.rounds} (median).", "",
             "| PROXY_REDIS_MAX_CONNECTIONS | p50 ms | p99 ms | burst wall s | 5xx |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['max_connections']} | {r['p50_ms']} | {r['p99_ms']} | {r['wall_s']} | {r['status_5xx']} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    base = args.results / f"{stamp}-{os.cpu_count()}core-burst"
    base.with_suffix(".md").write_text(text)
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    return 1 if any(r["status_5xx"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
