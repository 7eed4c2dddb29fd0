"""`python -m bench.gateway`: what the gateway adds per proxied MCP request, and what held streams cost.

One run, loopback only, processes started and stopped here: redis-server, the cheap MCP backend
(`bench.servers.mcp_backend`), and `oauth-facade serve` (dev IdP mounted, consent and rate limits off,
log level warning) whose gateway fronts that backend.

- **Overhead**: the same JSON-RPC POST sent to the backend directly and through the gateway, in
  interleaved rounds (the order alternates), one connection per virtual user, on the bench's minimal
  HTTP client; per round the median latency of each path; the reported figure is the median round's
  difference. Concurrency 1 is the latency a request pays; concurrency 16 the same under load, with
  the facade's CPU per proxied request (from /proc). Target: at most 1 ms added at the median.
- **Held streams**: 1,000 concurrent GET SSE streams opened through the gateway (50 being opened at
  any moment) and held while the backend sends a heartbeat on each every 2 s; the facade's resident
  memory (VmRSS) before and with all streams open gives the memory per stream; every stream must see
  its heartbeats.

Writes bench/results/<stamp>-<cores>core-gateway.{md,json}.

`--defaults` measures instead what users run with `make run`: the facade with nothing set but its
address and the gateway backend (embedded in-memory store, generated key, dev IdP, consent on, rate
limits on, log level info: one JSON access line per request), in front of the demo MCP server
`proxy.devmcp`, the same `initialize` POST 600 times per path per round at concurrency 1 (no held
streams: the demo server answers GET with 405). Writes <stamp>-<cores>core-gateway-defaults.{md,json}.
`--defaults --terminal` puts the facade's output on a pseudo-terminal, as in the shell `make run` is
typed in: PROXY_LOG_FORMAT=auto then renders console lines, not JSON, and each goes through a tty.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import pty
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from bench.cpu import group_seconds
from bench.httpclient import JSON, Connection
from bench.procs import LOOPBACK, Proc, Processes, StartError, free_port, start_redis, wait_http, wait_port
from bench.servers.common import loop_factory

HERE = Path(__file__).resolve().parent
REDIRECT = "http://127.0.0.1:9/callback"
OPENING_AT_ONCE = 50  # streams being opened at any moment: held streams accumulate, a stampede is another figure
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "ping", "arguments": {}}}).encode()
#: What an MCP client sends first; the demo server answers it like any MCP server (`--defaults`).
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "1"}}}).encode()
#: The consent page's hidden fields (proxy/authorization/consent.py), approved as a user would.
CONSENT_FIELD = re.compile(r'name="(consent_id|csrf)" value="([^"]*)"')


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def sign_in(facade: str, resource: str) -> str:
    """An access token for `resource`: register, authorize through the mounted dev IdP, redeem."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(facade + "/register", json={"redirect_uris": [REDIRECT], "client_name": "bench"}) as r:
            client_id = (await r.json())["client_id"]
        url = facade + "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "openid",
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "s", "resource": resource})
        for _ in range(10):
            async with http.get(url, allow_redirects=False) as r:
                location = r.headers.get("Location", "")
                page = await r.text()
            if r.status == 200 and 'action="consent"' in page:  # PROXY_CONSENT on (the default): allow
                fields = dict(CONSENT_FIELD.findall(page))
                async with http.post(facade + "/consent", data={**fields, "decision": "approve"},
                                     allow_redirects=False) as r:
                    location = r.headers.get("Location", "")
            if location.startswith(REDIRECT):
                break
            url = location if location.startswith("http") else facade + location
        code = parse_qs(urlsplit(location).query)["code"][0]
        async with http.post(facade + "/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": REDIRECT, "client_id": client_id}) as r:
            return str((await r.json())["access_token"])


async def _latencies(port: int, headers: bytes, count: int, concurrency: int, body: bytes = BODY) -> list[float]:
    """`count` POSTs split over `concurrency` keep-alive connections; every latency, in seconds."""
    per_user = max(1, count // concurrency)
    results: list[float] = []

    async def user() -> None:
        connection = Connection(LOOPBACK, port)
        try:
            for _ in range(per_user):
                started = time.perf_counter()
                response = await connection.request("POST", "/mcp", headers, body)
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {response.body[:300]!r}")
                results.append(elapsed)
        finally:
            connection.close()

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return results


async def overhead(backend_port: int, facade_port: int, token: str, facade_pids: list[int], *, rounds: int,
                   count: int, concurrency: int, body: bytes = BODY) -> dict[str, Any]:
    direct_headers = JSON + b"Accept: application/json, text/event-stream\r\n"
    gateway_headers = direct_headers + f"Authorization: Bearer {token}\r\n".encode()
    await _latencies(backend_port, direct_headers, 200, concurrency, body)  # warm-up: connections, caches
    await _latencies(facade_port, gateway_headers, 200, concurrency, body)
    per_round: list[dict[str, float]] = []
    for index in range(rounds):
        order = [("direct", backend_port, direct_headers), ("gateway", facade_port, gateway_headers)]
        if index % 2:
            order.reverse()
        row: dict[str, float] = {}
        for name, port, headers in order:
            cpu_before = group_seconds(facade_pids)
            started = time.perf_counter()
            latencies = await _latencies(port, headers, count, concurrency, body)
            seconds = time.perf_counter() - started
            row[f"{name}_p50_ms"] = statistics.median(latencies) * 1000
            row[f"{name}_p99_ms"] = sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000
            row[f"{name}_rate"] = len(latencies) / seconds
            if name == "gateway":
                row["facade_cpu_us_per_request"] = (group_seconds(facade_pids) - cpu_before) / len(latencies) * 1e6
        row["added_p50_ms"] = row["gateway_p50_ms"] - row["direct_p50_ms"]
        per_round.append(row)
    kept = sorted(per_round, key=lambda row: row["added_p50_ms"])[len(per_round) // 2]
    return {"concurrency": concurrency, "requests_per_round": count, "rounds": per_round, "median_round": kept}


async def held_streams(facade: str, token: str, facade_pids: list[int], facade_pid: int, *, streams: int,
                       hold_s: float) -> dict[str, Any]:
    """Open `streams` SSE streams through the gateway, hold them, count the events each sees."""
    rss_before = rss_kib(facade_pids)
    fds_before = open_fds(facade_pid)
    ready = 0
    beats = [0] * streams
    all_ready = asyncio.Event()
    stop = asyncio.Event()
    failures: list[str] = []
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(index: int) -> None:
            nonlocal ready
            await opening.acquire()
            released = False
            try:
                async with http.get(facade + "/mcp", headers={"Authorization": f"Bearer {token}",
                                                               "Accept": "text/event-stream"}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")
                    async for line in response.content:
                        if line.startswith(b"event: ready"):
                            ready += 1
                            opening.release()
                            released = True
                            if ready == streams:
                                all_ready.set()
                        elif line.startswith(b"event: heartbeat"):
                            beats[index] += 1
                        if stop.is_set():
                            return
            except Exception as exc:  # reported, not raised: one failure must not hide the others' figures
                if len(failures) < 5:
                    failures.append(f"{type(exc).__name__}: {exc}")
            finally:
                if not released:
                    opening.release()

        opened = time.perf_counter()
        tasks = [asyncio.create_task(one(index)) for index in range(streams)]
        try:
            await asyncio.wait_for(all_ready.wait(), 120)
        except TimeoutError:
            pass
        open_s = time.perf_counter() - opened
        await asyncio.sleep(1.0)  # let allocations settle
        rss_open = rss_kib(facade_pids)
        fds_open = open_fds(facade_pid)
        beats_at_open = sum(beats)
        await asyncio.sleep(hold_s)
        rss_held = rss_kib(facade_pids)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2.0)
    per_stream_kib = (max(rss_open, rss_held) - rss_before) / max(1, ready)
    return {"streams": streams, "ready": ready, "seconds_to_open_all": round(open_s, 2), "hold_s": hold_s,
            "streams_with_heartbeats_while_held": sum(1 for count in beats if count >= 2),
            "heartbeats_while_held": sum(beats) - beats_at_open,
            "facade_rss_kib_before": rss_before, "facade_rss_kib_open": rss_open, "facade_rss_kib_held": rss_held,
            "facade_rss_kib_after_close": rss_kib(facade_pids), "facade_fds_before": fds_before,
            "facade_fds_open": fds_open, "kib_per_stream": round(per_stream_kib, 1), "failures": failures}


def render(run: dict[str, Any]) -> str:
    lines = [f"# Gateway benchmark, {run['stamp']} ({run['machine']['cores']} cores, {run['machine']['cpu']})", "",
             f"`{run['command']}`; facade with uvloop/hiredis as installed, PROXY_LOG_LEVEL=warning, real Redis. "
             f"Load average (1/5/15 min) before: {' '.join(run['loadavg']['before'])}, after: "
             f"{' '.join(run['loadavg']['after'])} (other processes share these cores).", "",
             "## Overhead per proxied request (same POST, backend directly vs through the gateway)", "",
             "| concurrency | direct p50 | gateway p50 | **added p50** | direct p99 | gateway p99 | "
             "gateway req/s | facade CPU / request |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for figure in run["overhead"]:
        kept = figure["median_round"]
        lines.append(f"| {figure['concurrency']} | {kept['direct_p50_ms']:.3f} ms | {kept['gateway_p50_ms']:.3f} ms | "
                     f"**{kept['added_p50_ms']:.3f} ms** | {kept['direct_p99_ms']:.3f} ms | "
                     f"{kept['gateway_p99_ms']:.3f} ms | {kept['gateway_rate']:.0f} | "
                     f"{kept['facade_cpu_us_per_request']:.0f} µs |")
    target = run["overhead"][0]["median_round"]["added_p50_ms"]
    lines += ["", f"Target: at most 1 ms added at the median (concurrency 1): **{target:.3f} ms, "
              f"{'met' if target <= 1.0 else 'NOT met'}**. Every round is in the JSON.", "",
              "## Held SSE streams through the gateway", ""]
    held = run["streams"]
    lines += [f"- {held['ready']} of {held['streams']} streams open (all ready after {held['seconds_to_open_all']} s), "
              f"held {held['hold_s']:.0f} s; {held['streams_with_heartbeats_while_held']} saw their heartbeats "
              f"({held['heartbeats_while_held']} events relayed while held).",
              f"- Facade resident memory: {held['facade_rss_kib_before'] / 1024:.1f} MiB before, "
              f"{held['facade_rss_kib_open'] / 1024:.1f} MiB with the streams open, "
              f"{held['facade_rss_kib_after_close'] / 1024:.1f} MiB after they closed: "
              f"**{held['kib_per_stream']:.1f} KiB per stream** (client and backend connection, handler, buffers).",
              f"- Facade file descriptors: {held['facade_fds_before']} before, {held['facade_fds_open']} open "
              "(two sockets per stream: client and backend).",
              *(f"- failure: {failure}" for failure in held["failures"])]
    return "\n".join(lines) + "\n"


def render_defaults(run: dict[str, Any]) -> str:
    """The `--defaults` report: one figure, at concurrency 1, every round listed."""
    figure = run["overhead"][0]
    kept = figure["median_round"]
    added = [row["added_p50_ms"] for row in figure["rounds"]]
    lines = [f"# Gateway at `make run`'s defaults, {run['stamp']} ({run['machine']['cores']} cores, "
             f"{run['machine']['cpu']})", "",
             f"`{run['command']}`: `oauth-facade serve` with only PROXY_HOST, PROXY_PORT, PROXY_ISSUER and "
             "PROXY_GATEWAY_BACKENDS set (embedded in-memory store, generated key, dev IdP, consent and rate "
             "limits on, log level info: one JSON line per request, written to "
             f"{'a pseudo-terminal read by `cat`' if run.get('facade_output') == 'terminal' else 'a file'}), "
             "in front of the demo MCP server "
             f"(`python -m proxy.devmcp`); the `initialize` POST, {figure['requests_per_round']} per path per "
             f"round, {len(figure['rounds'])} rounds, concurrency 1. Load average (1/5/15 min) before: "
             f"{' '.join(run['loadavg']['before'])}, after: {' '.join(run['loadavg']['after'])} (other processes "
             "share these cores).", "",
             "| round | direct p50 | gateway p50 | **added p50** | direct p99 | gateway p99 | facade CPU / request |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for index, row in enumerate(figure["rounds"], 1):
        lines.append(f"| {index} | {row['direct_p50_ms']:.3f} ms | {row['gateway_p50_ms']:.3f} ms | "
                     f"**{row['added_p50_ms']:.3f} ms** | {row['direct_p99_ms']:.3f} ms | "
                     f"{row['gateway_p99_ms']:.3f} ms | {row['facade_cpu_us_per_request']:.0f} µs |")
    target = kept["added_p50_ms"]
    lines += ["", f"Added at the median (the median round): **{target:.3f} ms**, rounds "
              f"{min(added):.3f}-{max(added):.3f} ms. Target: at most 1 ms, "
              f"**{'met' if target <= 1.0 else 'NOT met'}**."]
    return "\n".join(lines) + "\n"


def start_on_terminal(procs: Processes, name: str, argv: list[str], env: dict[str, str], port: int) -> Proc:
    """`argv` with its stdout and stderr on a pseudo-terminal, as `make run` leaves them: each log line is
    a write to a tty (line discipline and all), read by another process (`cat`, into the log file) as a
    terminal would read it, so that the reading costs CPU on these cores but never this process's GIL."""
    log = procs.logdir / f"{name}.log"
    primary, secondary = pty.openpty()
    try:
        with log.open("wb") as out:
            reader = subprocess.Popen([shutil.which("cat") or "/bin/cat"], stdin=primary, stdout=out,
                                      stderr=subprocess.DEVNULL)
        process = subprocess.Popen(argv, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **env})
    finally:
        os.close(primary)
        os.close(secondary)
    procs.started.append(Proc(f"{name}-terminal", reader, log))
    proc = Proc(name, process, log, port)
    procs.started.append(proc)
    return proc


async def measure_defaults(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    """`make run`'s processes and settings; only the ports differ (free ones, so a running `make run` or
    another bench is not disturbed). The facade's output goes to its log file, or with `--terminal` to a
    pseudo-terminal, as in a developer's shell."""
    backend_port = free_port()
    backend = procs.start("devmcp", [sys.executable, "-m", "proxy.devmcp", "--host", LOOPBACK, "--port",
                                     str(backend_port)])
    wait_port(backend, backend_port)
    port = free_port()
    issuer = f"http://{LOOPBACK}:{port}"
    env = {"PROXY_ISSUER": issuer, "PROXY_PORT": str(port), "PROXY_HOST": LOOPBACK,
           "PROXY_GATEWAY_BACKENDS": f"{issuer}/mcp=http://{LOOPBACK}:{backend_port}/mcp"}
    argv = [str(Path(sys.executable).with_name("oauth-facade")), "serve"]
    facade = (start_on_terminal(procs, "facade", argv, env, port) if args.terminal
              else procs.start("facade", argv, env=env, port=port))
    wait_http(facade, issuer + "/readyz")
    token = await sign_in(issuer, issuer + "/mcp")
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    figure = await overhead(backend_port, port, token, facade.tree(), rounds=args.rounds,
                            count=args.requests or 600, concurrency=1, body=INITIALIZE)
    return {"mode": "defaults", "facade_output": "terminal" if args.terminal else "file", "overhead": [figure],
            "loadavg": {"before": load_before, "after": Path("/proc/loadavg").read_text().split()[:3]}}


async def measure(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    redis = start_redis(procs)
    backend_port = free_port()
    backend = procs.start("backend", [sys.executable, "-m", "bench.servers.mcp_backend", "--port",
                                      str(backend_port), "--heartbeat", "2"], port=backend_port)
    wait_http(backend, f"http://{LOOPBACK}:{backend_port}/healthz")
    port = free_port()
    issuer = f"http://{LOOPBACK}:{port}"
    env = {"PROXY_ISSUER": issuer, "PROXY_PORT": str(port), "PROXY_HOST": LOOPBACK,
           "PROXY_REDIS_URL": f"redis://{LOOPBACK}:{redis.port}/0", "PROXY_CONSENT": "off",
           "PROXY_RATE_LIMITS": "off", "PROXY_LOG_LEVEL": "warning",
           "PROXY_GATEWAY_BACKENDS": f"{issuer}/mcp=http://{LOOPBACK}:{backend_port}/mcp"}
    facade = procs.start("facade", [str(Path(sys.executable).with_name("oauth-facade")), "serve"],
                         env={k: v for k, v in env.items()}, port=port)
    wait_http(facade, issuer + "/readyz")
    token = await sign_in(issuer, issuer + "/mcp")
    pids = facade.tree()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    figures = [await overhead(backend_port, port, token, pids, rounds=args.rounds, count=args.requests or 2000,
                              concurrency=concurrency) for concurrency in (1, 16)]
    streams = await held_streams(issuer, token, pids, facade.pid, streams=args.streams, hold_s=args.hold)
    return {"overhead": figures, "streams": streams,
            "loadavg": {"before": load_before, "after": Path("/proc/loadavg").read_text().split()[:3]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per path per round (default 2000; 600 with --defaults)")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the streams are held open")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--defaults", action="store_true",
                        help="measure at `make run`'s settings in front of the demo MCP server (see above)")
    parser.add_argument("--terminal", action="store_true",
                        help="with --defaults: the facade's output on a pseudo-terminal, as `make run` in a shell")
    args = parser.parse_args(argv)
    for name in [name for name in os.environ if name.startswith("PROXY_")]:
        del os.environ[name]  # the developer's shell must not change what is measured
    procs = Processes(Path(tempfile.mkdtemp(prefix="oauth-facade-bench-gateway-")))
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures = runner.run((measure_defaults if args.defaults else measure)(args, procs))
    except (StartError, RuntimeError) as exc:
        print(f"bench.gateway: {exc}\nlogs in {procs.logdir}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    from bench.run import machine

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = {"stamp": stamp, "machine": machine(), "command": "python -m bench.gateway " + " ".join(argv or sys.argv[1:]),
           **figures}
    text = render_defaults(run) if args.defaults else render(run)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    base = args.results / f"{stamp}-{run['machine']['cores']}core-gateway{'-defaults' if args.defaults else ''}"
    base.with_suffix(".md").write_text(text)
    base.with_suffix(".json").write_text(json.dumps(run, indent=2) + "\n")
    print(f"bench.gateway: wrote {base}.md and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
