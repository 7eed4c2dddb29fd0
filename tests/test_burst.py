"""A burst on one facade process: the Redis pool queues requests instead of answering 503.

Issue 23: redis-py's default pool raised MaxConnectionsError once 100 connections were busy, so 500
concurrent requests gave 399 `503 temporarily_unavailable`. The facade builds its own client from
PROXY_REDIS_URL here (no injected client), so the pool under test is the one operators get.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from proxy.app import create_app
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.devidp.app import CONFIG as DEVIDP_CONFIG
from proxy.settings import Settings
from tests.conftest import RedisServer, free_port
from tests.helpers import REDIRECT_URI, s256

BURST = 1000


async def _register_then_authorize(http: aiohttp.ClientSession, url: str) -> list[int]:
    """One client's first steps: POST /register, then GET /authorize; the two statuses."""
    async with http.post(url + "/register", json={"redirect_uris": [REDIRECT_URI], "client_name": "burst"}) as r:
        registered = r.status
        if registered != 201:
            return [registered]
        client_id = (await r.json())["client_id"]
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
              "code_challenge": s256(secrets.token_urlsafe(48)), "code_challenge_method": "S256",
              "scope": "openid", "state": secrets.token_hex(8)}
    async with http.get(url + "/authorize?" + urlencode(params), allow_redirects=False) as r:
        await r.read()
        return [registered, r.status]


@pytest.mark.parametrize("max_connections", [8, 50])
async def test_a_burst_of_1000_concurrent_clients_gets_no_5xx(
        aiohttp_server: Any, redis_server: RedisServer, max_connections: int) -> None:
    """1,000 clients register and start a sign-in at once against one facade on a real redis-server
    (rate limits off): every answer is 201 then 302, none 5xx, even with a pool of 8 connections."""
    idp_config = DevIdpConfig(issuer="", client_id="facade", client_secret="facade secret+1", redirect_uris=())
    idp_app = create_devidp_app(idp_config)
    idp_server = await aiohttp_server(idp_app)
    idp_app[DEVIDP_CONFIG].issuer = str(idp_server.make_url("")).rstrip("/")
    port = free_port()
    settings = Settings(_env_file=None, issuer=f"http://127.0.0.1:{port}", port=port,  # type: ignore[call-arg]
                        upstream_issuer=idp_app[DEVIDP_CONFIG].issuer, upstream_client_id="facade",
                        upstream_client_secret="facade secret+1", consent=False, rate_limits=False,
                        redis_url=redis_server.url, redis_max_connections=max_connections,
                        redis_pool_timeout_s=30)
    server = await aiohttp_server(create_app(settings), port=port)
    url = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        answers = await asyncio.gather(*(_register_then_authorize(http, url) for _ in range(BURST)))
    statuses = Counter(status for pair in answers for status in pair)
    assert statuses == Counter({201: BURST, 302: BURST}), statuses
