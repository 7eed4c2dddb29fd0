"""Several facade processes on one real Redis serve one flow; `serve --workers`; graceful shutdown."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwk, jwt

from tests.conftest import RedisServer, free_port
from tests.helpers import query_of, s256
from tests.processes import ROOT, _env, devidp_process, facade_process
from tests.programs import program

REDIRECT = "http://127.0.0.1:5599/cb"


def settings_env(issuer: str, port: int, redis: RedisServer, upstream: str) -> dict[str, str]:
    return {"PROXY_ISSUER": issuer, "PROXY_PORT": str(port), "PROXY_REDIS_URL": redis.url,
            "PROXY_UPSTREAM_ISSUER": upstream, "PROXY_UPSTREAM_CLIENT_ID": "facade",
            "PROXY_UPSTREAM_CLIENT_SECRET": "facade-secret", "PROXY_CONSENT": "off", "PROXY_RATE_LIMITS": "off"}


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    subprocess.run([program("redis-cli"), "-p", str(redis_server.port), "flushall"], check=True, capture_output=True)
    yield redis_server


async def get(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with http.get(url, allow_redirects=False) as response:
        await response.read()
        return response


async def test_a_flow_alternating_between_two_replicas_at_every_step(fresh_redis: RedisServer) -> None:
    """authorize on A, callback on B, token on A, refresh on B: all state is in Redis."""
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    a, b = issuer, f"http://127.0.0.1:{port_b}"
    with devidp_process(free_port(), issuer) as upstream, \
            facade_process(settings_env(issuer, port_a, fresh_redis, upstream)), \
            facade_process(settings_env(issuer, port_b, fresh_redis, upstream)):
        async with aiohttp.ClientSession() as http:
            async with http.post(b + "/register", json={"redirect_uris": [REDIRECT]}) as response:
                assert response.status == 201
                client_id = (await response.json())["client_id"]
            verifier, state = secrets.token_urlsafe(48), "s-1"
            to_upstream = await get(http, a + "/authorize?" + urlencode({
                "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": state,
                "code_challenge": s256(verifier), "code_challenge_method": "S256", "scope": "openid",
                "nonce": "n-1"}))
            assert to_upstream.status == 302
            to_callback = await get(http, to_upstream.headers["Location"])
            callback_on_b = to_callback.headers["Location"].replace(a, b)
            to_client = await get(http, callback_on_b)
            assert to_client.status == 302, await to_client.text()
            params = query_of(to_client.headers["Location"])
            assert params["iss"] == issuer and params["state"] == state
            async with http.post(a + "/token", data={
                    "grant_type": "authorization_code", "code": params["code"], "code_verifier": verifier,
                    "redirect_uri": REDIRECT, "client_id": client_id}) as response:
                assert response.status == 200, await response.text()
                tokens = await response.json()
            async with http.get(b + "/jwks") as response:
                keys = jwk.KeySet.import_key_set(await response.json())
            claims = jwt.decode(tokens["id_token"], keys).claims
            assert claims["iss"] == issuer and claims["nonce"] == "n-1"
            async with http.post(b + "/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                     "refresh_token": tokens["refresh_token"]}) as response:
                assert response.status == 200, await response.text()


async def test_serve_with_two_workers_shares_the_port_and_stops_on_sigterm(fresh_redis: RedisServer) -> None:
    """serve --workers 2 forks two workers sharing one port, all answering; SIGTERM to the parent exits 0 and
    stops both."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with devidp_process(free_port(), issuer) as upstream, \
            facade_process(settings_env(issuer, port, fresh_redis, upstream), "--workers", "2") as parent:
        children = [pid for pid in subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True,
                                                  text=True).stdout.split() if _is_worker(pid)]
        assert len(children) == 2
        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(*(http.get(issuer + "/jwks") for _ in range(20)))
            assert {response.status for response in statuses} == {200}
            for response in statuses:
                response.release()
    assert parent.returncode == 0
    for child in children:
        assert not _is_worker(child)


def test_sigterm_while_workers_start_is_a_clean_stop(fresh_redis: RedisServer) -> None:
    """SIGTERM to `serve --workers 2` while its workers are still starting (a rollout that changes its mind)
    exits 0 and leaves no worker behind: a worker that dies of the stop before its handler is installed is
    the stop that was asked for, and the parent terminates each worker once (a second SIGTERM would kill a
    worker in the middle of its graceful shutdown)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with devidp_process(free_port(), issuer) as upstream:
        env = settings_env(issuer, port, fresh_redis, upstream)
        for delay_s in (0.0, 0.5):
            process = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--workers", "2"], env=_env(env),
                                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 20
            children: list[str] = []
            while len(children) < 2 and time.monotonic() < deadline:  # the parent has spawned both workers
                children = [pid for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                                          text=True).stdout.split() if _is_worker(pid)]
                time.sleep(0.02)
            assert len(children) == 2
            time.sleep(delay_s)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
            stderr = process.stderr.read().decode() if process.stderr else ""
            if process.stderr:
                process.stderr.close()
            assert code == 0, f"after {delay_s} s: exit {code}: {stderr}"
            assert not any(_is_worker(child) for child in children)


def _is_worker(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"spawn_main" in handle.read()
    except OSError:
        return False


async def test_sigterm_lets_an_in_flight_request_finish(fresh_redis: RedisServer, aiohttp_server: object) -> None:
    """Graceful shutdown: stop accepting, finish what is in flight, close Redis and the upstream session."""
    slow_hits: list[str] = []

    async def slow_discovery(request: web.Request) -> web.Response:
        slow_hits.append(request.path)
        await asyncio.sleep(1.5)
        base = str(request.url.origin())
        return web.json_response({"issuer": base, "authorization_endpoint": base + "/authorize",
                                  "token_endpoint": base + "/token", "jwks_uri": base + "/jwks"})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", slow_discovery)
    upstream = await aiohttp_server(app)  # type: ignore[operator]
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = settings_env(issuer, port, fresh_redis, str(upstream.make_url("")).rstrip("/"))
    with facade_process(env) as process:
        async with aiohttp.ClientSession() as http:
            async with http.post(issuer + "/register", json={"redirect_uris": [REDIRECT]}) as response:
                client_id = (await response.json())["client_id"]
            pending = asyncio.ensure_future(get(http, issuer + "/authorize?" + urlencode({
                "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "code_challenge": s256("v" * 43), "code_challenge_method": "S256"})))
            deadline = time.monotonic() + 15
            while not slow_hits:
                assert time.monotonic() < deadline, "the facade never asked the upstream's discovery"
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            response = await pending
            assert response.status == 302
            assert response.headers["Location"].startswith(str(upstream.make_url("/authorize")))
        assert await asyncio.to_thread(process.wait, 15) == 0
