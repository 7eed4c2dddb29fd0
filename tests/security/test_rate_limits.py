"""Abuse limits: per source address and per client, a cap on registrations, X-Forwarded-For trusted
only from PROXY_TRUSTED_PROXIES (the security issue §2, OWASP API4:2023, RFC 7591 §5)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.store import Store
from proxy.web.ratelimit import source_address
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import html_error, kinds, snapshot

LOOPBACK = "127.0.0.1/32"


async def register(facade: Facade, address: str | None = None, **body: Any) -> tuple[int, dict[str, Any], Any]:
    headers = {"X-Forwarded-For": address} if address else {}
    async with facade.http.post(facade.url + "/register", headers=headers,
                                json={"redirect_uris": ["https://app.example.com/cb"], **body}) as response:
        return response.status, await response.json(), response


def clients(state: dict[str, Any]) -> int:
    return kinds(state).count("client")


async def fresh_window(seconds: int = 60, margin: float = 5.0) -> None:
    """The counters are fixed windows: a test that counts up to a limit starts with `margin` seconds
    left in the window, or it could straddle two windows and see no 429."""
    left = seconds - time.time() % seconds
    if left < margin:
        await asyncio.sleep(left + 0.05)


async def test_registrations_from_one_address_are_limited(make_facade: FacadeFactory) -> None:
    """SEC-12: beyond PROXY_RATE_LIMIT_REGISTER_PER_MIN from one address, 429 with Retry-After and an
    OAuth error body; nothing is stored for the refused ones; another address still registers."""
    facade = await make_facade(rate_limits=True, rate_limit_register_per_min=3, trusted_proxies=LOOPBACK)
    await fresh_window()
    for _ in range(3):
        assert (await register(facade, "203.0.113.7"))[0] == 201
    before = await snapshot(facade.redis)
    status, body, response = await register(facade, "203.0.113.7")
    assert (status, body["error"]) == (429, "slow_down")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["Cache-Control"] == "no-store"
    assert clients(await snapshot(facade.redis)) == clients(before) == 3
    assert (await register(facade, "198.51.100.9"))[0] == 201


async def test_the_registration_cap_holds_across_addresses(make_facade: FacadeFactory) -> None:
    """SEC-12 / SEC-64: PROXY_MAX_REGISTRATIONS_PER_HOUR bounds stored clients whatever the address;
    invalid registrations do not use it up (so garbage cannot lock legitimate clients out)."""
    facade = await make_facade(rate_limits=True, max_registrations_per_hour=2, trusted_proxies=LOOPBACK)
    await fresh_window(3600)
    for n in range(5):
        assert (await register(facade, f"192.0.2.{n}", redirect_uris=["javascript:x"]))[0] == 400
    assert (await register(facade, "192.0.2.10"))[0] == 201
    assert (await register(facade, "192.0.2.11"))[0] == 201
    status, body, response = await register(facade, "192.0.2.12")
    assert (status, body["error"]) == (429, "slow_down")
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert clients(await snapshot(facade.redis)) == 2


async def test_authorize_is_limited_per_client_across_addresses(make_facade: FacadeFactory) -> None:
    """The security issue §2: one client_id gets PROXY_RATE_LIMIT_AUTHORIZE_PER_MIN starts per minute
    from all addresses together; the 429 is a page with Retry-After; another client is unaffected."""
    facade = await make_facade(rate_limits=True, rate_limit_authorize_per_min=3, trusted_proxies=LOOPBACK)
    await fresh_window()
    client, other = facade.client(), facade.client()
    await client.register()
    await other.register()
    for n in range(3):
        assert (await start_from(client, f"203.0.113.{n}")).status == 302
    before = await snapshot(facade.redis)
    refused = await start_from(client, "203.0.113.99")
    assert refused.status == 429 and "Location" not in refused.headers
    assert html_error(await refused.text()) == "slow_down"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert kinds(await snapshot(facade.redis)).count("tx") == kinds(before).count("tx") == 3
    assert (await start_from(other, "203.0.113.100")).status == 302


async def start_from(client: Client, address: str) -> Any:
    params = client.authorize_params(verifier="v" * 43, state="s", nonce=None, redirect_uri=client.redirect_uri)
    async with client.http.get(client.facade.url + "/authorize", params=params, allow_redirects=False,
                               headers={"X-Forwarded-For": address}) as response:
        await response.read()
        return response


async def test_token_requests_are_limited_per_address_and_spoofed_forwarding_is_ignored(
        make_facade: FacadeFactory) -> None:
    """SEC-63: bad /token requests for one client from one address hit 429 after the limit; an
    untrusted peer rotating X-Forwarded-For does not reset its counter; nothing is stored."""
    facade = await make_facade(rate_limits=True, rate_limit_token_per_min=5)  # no trusted proxies
    await fresh_window()
    client = facade.client()
    await client.register()
    statuses = []
    for n in range(8):
        status, body, response = await client.token(
            {"grant_type": "authorization_code", "code": "a.b", "code_verifier": "v" * 43,
             "client_id": client.client_id}, {"X-Forwarded-For": f"10.9.8.{n}"})
        statuses.append((status, body["error"]))
        if status == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert statuses == [(400, "invalid_grant")] * 5 + [(429, "slow_down")] * 3
    assert "code" not in kinds(await snapshot(facade.redis))


async def test_token_requests_are_limited_per_client_across_addresses(make_facade: FacadeFactory) -> None:
    """The security issue §2: one client_id from many (trusted-proxy-vouched) addresses is limited too;
    another client from the same addresses is not."""
    facade = await make_facade(rate_limits=True, rate_limit_token_per_min=3, trusted_proxies=LOOPBACK)
    await fresh_window()
    client, other = facade.client(), facade.client()
    await client.register()
    await other.register()

    async def attempt(who: Client, address: str) -> int:
        status, _, _ = await who.token({"grant_type": "refresh_token", "refresh_token": "a.b",
                                        "client_id": who.client_id}, {"X-Forwarded-For": address})
        return status

    assert [await attempt(client, f"203.0.113.{n}") for n in range(5)] == [400, 400, 400, 429, 429]
    assert await attempt(other, "203.0.113.50") == 400


async def test_rate_limit_counters_expire_with_their_window(make_facade: FacadeFactory) -> None:
    """SEC-64: every counter key carries a TTL no longer than its window (+1 s); state stays bounded."""
    facade = await make_facade(rate_limits=True)
    client = facade.client()
    await client.register()
    await client.start()
    rate_keys = [key for key in await facade.redis.keys("*") if ":rate:" in key]
    assert len(rate_keys) >= 4  # register:ip, register:all, authorize:ip, authorize:client
    for key in rate_keys:
        ttl = await facade.redis.ttl(key)
        assert 0 < ttl <= (3601 if ":register:all:" in key else 61)


async def test_rate_limits_off_touches_no_counter(make_facade: FacadeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROXY_RATE_LIMITS=off is a zero-cost bypass: no Redis command, whatever the traffic."""
    async def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the limiter reached Redis with PROXY_RATE_LIMITS=off")

    monkeypatch.setattr(Store, "hits", fail)
    facade = await make_facade(rate_limits=False, rate_limit_register_per_min=1, rate_limit_token_per_min=1,
                               rate_limit_authorize_per_min=1)
    client = facade.client()
    await asyncio.gather(*(register(facade) for _ in range(5)))
    await client.signed_in()
    await client.signed_in()
    assert not [key for key in await facade.redis.keys("*") if ":rate:" in key]


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("203.0.113.5", None, (), "203.0.113.5"),
    ("203.0.113.5", "1.2.3.4", (), "203.0.113.5"),  # untrusted peer: its X-Forwarded-For is ignored
    ("10.0.0.2", "1.2.3.4", ("10.0.0.0/8",), "1.2.3.4"),
    ("10.0.0.2", "6.6.6.6, 1.2.3.4", ("10.0.0.0/8",), "1.2.3.4"),  # left of the client is client-chosen
    ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", ("10.0.0.0/8",), "1.2.3.4"),  # a chain of trusted proxies
    ("10.0.0.2", "10.0.0.9, 10.0.0.7", ("10.0.0.0/8",), "10.0.0.9"),  # all trusted: the left-most
    ("10.0.0.2", "garbage, 10.0.0.7", ("10.0.0.0/8",), "10.0.0.7"),  # garbage: the nearest vouched one
    ("10.0.0.2", "[2001:db8::1]:443", ("10.0.0.0/8",), "2001:db8::1"),
    ("10.0.0.2", "1.2.3.4:5678", ("10.0.0.0/8",), "1.2.3.4"),
    ("::ffff:10.0.0.2", "1.2.3.4", ("10.0.0.0/8",), "1.2.3.4"),  # IPv4-mapped peer
])
def test_the_source_address_is_the_rightmost_untrusted_hop(
        peer: str, forwarded: str | None, trusted: tuple[str, ...], expected: str) -> None:
    """The security issue §2: X-Forwarded-For counts only when the peer is a trusted proxy, and then
    only its right-most entry that is not itself a trusted proxy."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/authorize", headers=headers).clone(remote=peer)
    assert source_address(request, trusted) == expected
