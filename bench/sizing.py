"""`python -m bench.sizing`: Redis round trips per step of a flow, and Redis memory per client and family.

Runs one facade in-process against a real redis-server it starts (loopback, no persistence) and the
bundled development IdP, then reads `INFO commandstats` deltas around each step and `MEMORY USAGE` of
the keys left behind. The figures feed the README's sizing note.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import subprocess
import tempfile
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from proxy.app import create_app
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.settings import Settings

REDIRECT = "http://127.0.0.1:9/cb"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROUND_TRIPS = [0]


def _count_round_trips() -> None:
    """Count what the facade sends to Redis: one packed send is one round trip (a pipeline is one)."""
    from redis.asyncio.connection import AbstractConnection

    original = AbstractConnection.send_packed_command

    async def counted(self: Any, command: Any, check_health: bool = True) -> None:
        ROUND_TRIPS[0] += 1
        await original(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


async def _calls(redis: Any) -> tuple[int, int]:
    """(round trips sent by the facade so far, commands Redis executed, Lua-internal ones included)."""
    sent = ROUND_TRIPS[0]
    stats = await redis.info("commandstats")
    executed = sum(int(value["calls"]) for name, value in stats.items()
                   if name not in ("cmdstat_info", "cmdstat_memory", "cmdstat_keys", "cmdstat_script"))
    return sent, executed


def _delta(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int]:
    # The measuring INFO call itself is one round trip.
    return after[0] - before[0] - 1, after[1] - before[1]


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def measure(redis_port: int) -> dict[str, Any]:
    redis = aioredis.Redis(port=redis_port, decode_responses=True)
    _count_round_trips()
    facade_port, idp_port = _port(), _port()
    issuer = f"http://127.0.0.1:{facade_port}"
    idp = create_devidp_app(DevIdpConfig(f"http://127.0.0.1:{idp_port}", "facade", "secret",
                                         (issuer + "/callback",)))
    settings = Settings(_env_file=None, issuer=issuer, port=facade_port,  # type: ignore[call-arg]
                        redis_url=f"redis://127.0.0.1:{redis_port}/0", upstream_issuer=f"http://127.0.0.1:{idp_port}",
                        upstream_client_id="facade", upstream_client_secret="secret", consent=False,
                        rate_limits=False)
    runners = [await _serve(idp, idp_port), await _serve(create_app(settings), facade_port)]
    steps: dict[str, tuple[int, int]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async def flow() -> None:
                before = await _calls(redis)
                async with http.post(issuer + "/register", json={"redirect_uris": [REDIRECT]}) as response:
                    client_id = (await response.json())["client_id"]
                steps["register"] = _delta(before, await _calls(redis))
                verifier = secrets.token_urlsafe(48)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                before = await _calls(redis)
                async with http.get(issuer + "/authorize?" + urlencode({
                        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s",
                        "code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid"}),
                        allow_redirects=False) as response:
                    upstream = response.headers["Location"]
                steps["authorize"] = _delta(before, await _calls(redis))
                async with http.get(upstream, allow_redirects=False) as response:
                    callback = response.headers["Location"]
                before = await _calls(redis)
                async with http.get(callback, allow_redirects=False) as response:
                    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
                steps["callback"] = _delta(before, await _calls(redis))
                before = await _calls(redis)
                async with http.post(issuer + "/token", data={
                        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                        "redirect_uri": REDIRECT, "client_id": client_id}) as response:
                    tokens = await response.json()
                steps["token"] = _delta(before, await _calls(redis))
                before = await _calls(redis)
                async with http.post(issuer + "/token", data={
                        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                        "client_id": client_id}) as response:
                    assert response.status == 200
                steps["refresh"] = _delta(before, await _calls(redis))

            await flow()  # warm-up: connections, SCRIPT LOAD, upstream discovery happen once per process
            steps.clear()
            await flow()
        memory = {}
        for key in await redis.keys("*"):
            kind = key.split(":")[1]
            memory[kind] = await redis.memory_usage(key)
        return {"commands": steps, "memory_bytes": memory}
    finally:
        for runner in runners:
            await runner.cleanup()
        await redis.aclose()


def main() -> None:
    port = _port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",  # noqa: S607
                                "--appendonly", "no", "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        result = asyncio.run(measure(port))
    finally:
        process.terminate()
        process.wait()
    print("Redis per step (consent off, rate limits off): round trips / commands executed (Lua included)")
    for step, (trips, commands) in result["commands"].items():
        print(f"  {step:10} {trips} / {commands}")
    flow = [v for k, v in result["commands"].items() if k != "refresh"]
    print(f"  flow total {sum(t for t, _ in flow)} / {sum(c for _, c in flow)}")
    print("Redis memory per key kind (MEMORY USAGE, bytes):")
    for kind, size in sorted(result["memory_bytes"].items()):
        print(f"  {kind:10} {size}")


if __name__ == "__main__":
    main()
