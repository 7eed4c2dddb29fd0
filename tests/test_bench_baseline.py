"""The bench's bare baseline (bench/servers/bare.py) does the facade's Redis work: per step the same
round trips the facade takes (tests/test_round_trips.py counts those), so "facade / bare" measures the
facade's own Python (its Redis command layer, proxy/store/client.py, included: the bare uses redis-py's
own) and nothing else. Counted on the wire against a real redis-server, with the bench's
stub IdP as the upstream."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from bench.servers import bare, stub_idp
from tests.conftest import RedisServer, free_port
from tests.test_round_trips import REFRESH, SIGN_IN

REDIRECT = "http://127.0.0.1:9/cb"
UPSTREAM_CLIENT = "bench-facade"


async def test_the_bare_baseline_takes_the_facades_round_trips(redis_server: RedisServer, aiohttp_server: Any,
                                                              round_trips: list[int]) -> None:
    """Register, authorize, callback, code redemption and refresh on the bare baseline take exactly
    the round trips the README states for the facade."""
    idp_port, port = free_port(), free_port()
    await aiohttp_server(stub_idp.create_app(f"http://127.0.0.1:{idp_port}", UPSTREAM_CLIENT), port=idp_port)
    baseline = bare.Bare(f"http://127.0.0.1:{port}", f"redis://127.0.0.1:{redis_server.port}/0",
                         f"http://127.0.0.1:{idp_port}", UPSTREAM_CLIENT, "bench-upstream-secret")
    await aiohttp_server(bare.create_app(baseline), port=port)
    base = f"http://127.0.0.1:{port}"
    counts: dict[str, int] = {}

    async with aiohttp.ClientSession() as http:
        async def step(name: str, method: str, url: str, **kwargs: Any) -> aiohttp.ClientResponse:
            round_trips[0] = 0
            response = await http.request(method, url, allow_redirects=False, **kwargs)
            await response.read()
            counts[name] = round_trips[0]
            return response

        async def sign_in() -> dict[str, Any]:
            response = await step("register", "POST", base + "/register", json={"redirect_uris": [REDIRECT]})
            client_id = (await response.json())["client_id"]
            verifier = secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                               "code_challenge": challenge, "code_challenge_method": "S256", "state": "s",
                               "scope": "openid"})
            upstream = await step("authorize", "GET", base + "/authorize?" + query)
            async with http.get(upstream.headers["Location"], allow_redirects=False) as back:
                callback_url = back.headers["Location"]
            final = await step("callback", "GET", callback_url)
            code = parse_qs(urlsplit(final.headers["Location"]).query)["code"][0]
            response = await step("token", "POST", base + "/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": client_id, "code_verifier": verifier})
            assert response.status == 200, await response.text()
            return {"client_id": client_id, **(await response.json())}

        async def refresh(tokens: dict[str, Any]) -> None:
            response = await step("refresh", "POST", base + "/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "client_id": tokens["client_id"]})
            assert response.status == 200, await response.text()

        await refresh(await sign_in())  # loads the Lua scripts once (EVALSHA's first NOSCRIPT)
        tokens = await sign_in()
        signed_in = {name: count for name, count in counts.items() if name != "refresh"}
        await refresh(tokens)
    assert (signed_in, counts["refresh"]) == (SIGN_IN, REFRESH)
