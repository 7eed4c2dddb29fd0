"""Abuse limits: per source address, wrong secrets per (client, address), a cap on registrations,
X-Forwarded-For trusted only from PROXY_TRUSTED_PROXIES (the security issue §2, OWASP API4:2023, RFC 7591 §5)."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.store import Store
from proxy.web.ratelimit import source_address
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import events, html_error, kinds, snapshot

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
    assert (status, body["error"]) == (429, "temporarily_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["Cache-Control"] == "no-store"
    assert clients(await snapshot(facade.redis)) == clients(before) == 3
    assert (await register(facade, "198.51.100.9"))[0] == 201


async def test_the_hourly_registration_cap_shortens_lifetimes_and_refuses_no_one(
        make_facade: FacadeFactory, captured_logs: io.StringIO) -> None:
    """SEC-76 (issue 14 item 6): past PROXY_MAX_REGISTRATIONS_PER_HOUR nobody is refused (today's code
    answered every new address 429 for the rest of the hour); the registrations within it are kept at
    most PROXY_UNUSED_CLIENT_TTL_S, those beyond it only twice PROXY_TRANSACTION_TTL_S, so the cap still
    bounds what a flood stores. Invalid registrations count for nothing. A client registered past the
    cap still signs in, and its first code redemption keeps it PROXY_CLIENT_TTL_S. The operator is
    told once per hour, not once per registration."""
    facade = await make_facade(rate_limits=True, max_registrations_per_hour=2, trusted_proxies=LOOPBACK)
    await fresh_window(3600)
    for n in range(5):
        assert (await register(facade, f"192.0.2.{n}", redirect_uris=["javascript:x"]))[0] == 400
    within = [(await register(facade, f"198.51.{n}.10"))[1]["client_id"] for n in range(2)]
    beyond = []
    for n in range(2, 6):
        status, body, _ = await register(facade, f"198.51.{n}.10")
        assert status == 201, body
        beyond.append(body["client_id"])
    day, window = 86400, 2 * facade.settings.transaction_ttl_s
    for client_id in within:
        assert window < await facade.redis.ttl(f"oauthfacade:client:{client_id}") <= day
    for client_id in beyond:
        assert 0 < await facade.redis.ttl(f"oauthfacade:client:{client_id}") <= window
    late = facade.client()
    await late.register()
    assert 0 < await facade.redis.ttl(f"oauthfacade:client:{late.client_id}") <= window
    await late.signed_in()
    assert await facade.redis.ttl(f"oauthfacade:client:{late.client_id}") > facade.settings.client_ttl_s - 60
    assert [e["cap"] for e in events(captured_logs) if e["event"] == "registration.over_cap"] == [2]


async def test_many_addresses_of_one_network_count_as_one(make_facade: FacadeFactory) -> None:
    """SEC-76 (issue 14 item 6): registrations are counted per IPv4 /24 and IPv6 /56 as well as per
    address, so an actor holding a whole network gets PROXY_RATE_LIMIT_REGISTER_PER_NETWORK_PER_HOUR, not
    that many times the per-address limit (today each of 340 addresses had its own budget); registrants
    of any other network are unaffected, and the refused ones stored nothing."""
    facade = await make_facade(rate_limits=True, rate_limit_register_per_min=30,
                               rate_limit_register_per_network_per_hour=4, trusted_proxies=LOOPBACK)
    await fresh_window(3600)
    for addresses in (["203.0.113.1", "203.0.113.77", "203.0.113.200", "203.0.113.254", "203.0.113.9"],
                      ["2001:db8:0:1::1", "2001:db8:0:ff::2", "2001:db8:0:7::3", "2001:db8:0:1::4",
                       "2001:db8:0:2::5"]):
        statuses = [(await register(facade, address))[0] for address in addresses]
        assert statuses == [201, 201, 201, 201, 429], addresses
    stored = clients(await snapshot(facade.redis))
    status, body, response = await register(facade, "203.0.113.100")
    assert (status, body["error"]) == (429, "temporarily_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert clients(await snapshot(facade.redis)) == stored == 8
    for neighbour in ("203.0.114.1", "2001:db8:0:100::1", "198.51.100.9"):
        assert (await register(facade, neighbour))[0] == 201, neighbour


async def test_one_address_cannot_spend_a_shared_clients_authorize_budget(make_facade: FacadeFactory) -> None:
    """Issue 22 finding 2: a client_id is shared (Claude's metadata-document URL by all its users, a
    connector by a whole organisation), so junk /authorize requests naming it from one address hit that
    address's limit, never the client's: its real users elsewhere still start sign-ins (302)."""
    facade = await make_facade(rate_limits=True, rate_limit_authorize_per_min=3, trusted_proxies=LOOPBACK)
    await fresh_window()
    client = facade.client()
    await client.register()
    statuses = [(await start_from(client, "203.0.113.66")).status for _ in range(5)]
    assert statuses == [302, 302, 302, 429, 429]
    for n in range(5):
        assert (await start_from(client, f"198.51.100.{n}")).status == 302


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
    assert statuses == [(400, "invalid_grant")] * 5 + [(429, "temporarily_unavailable")] * 3
    assert "code" not in kinds(await snapshot(facade.redis))


async def test_a_peer_outside_the_trusted_proxies_cannot_pick_its_address(make_facade: FacadeFactory) -> None:
    """With PROXY_TRUSTED_PROXIES set to networks the peer is not in, the peer is counted by its own
    address: an X-Forwarded-For that changes on every request does not give it a fresh bucket."""
    facade = await make_facade(rate_limits=True, rate_limit_token_per_min=5, trusted_proxies="10.0.0.0/8")
    await fresh_window()
    client = facade.client()
    await client.register()
    statuses = []
    for n in range(7):
        status, _, _ = await client.token(
            {"grant_type": "authorization_code", "code": "a.b", "code_verifier": "v" * 43,
             "client_id": client.client_id}, {"X-Forwarded-For": f"10.9.8.{n}"})
        statuses.append(status)
    assert statuses == [400] * 5 + [429] * 2


async def test_one_address_cannot_lock_a_shared_client_out_of_token(make_facade: FacadeFactory) -> None:
    """Issue 22 finding 2: bad /token requests for one client from one address cost that address, not the
    client: the same client from other addresses is still answered (400, not 429)."""
    facade = await make_facade(rate_limits=True, rate_limit_token_per_min=3, trusted_proxies=LOOPBACK)
    await fresh_window()
    client = facade.client()
    await client.register()

    async def attempt(address: str) -> int:
        status, _, _ = await client.token({"grant_type": "refresh_token", "refresh_token": "a.b",
                                           "client_id": client.client_id}, {"X-Forwarded-For": address})
        return status

    assert [await attempt("203.0.113.66") for _ in range(5)] == [400, 400, 400, 429, 429]
    assert [await attempt(f"198.51.100.{n}") for n in range(5)] == [400] * 5


async def test_rate_limit_counters_expire_with_their_window(make_facade: FacadeFactory) -> None:
    """SEC-64: every counter key carries a TTL no longer than its window (+1 s); state stays bounded."""
    facade = await make_facade(rate_limits=True)
    client = facade.client()
    await client.register()
    await client.start()
    rate_keys = [key for key in await facade.redis.keys("*") if ":rate:" in key]
    assert len(rate_keys) >= 4  # register:ip, register:net, register:all, authorize:ip
    for key in rate_keys:
        ttl = await facade.redis.ttl(key)
        assert 0 < ttl <= (3601 if ":register:all:" in key or ":register:net:" in key else 61)


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


async def call(facade: Facade, endpoint: str, address: str, client_id: str = "",
               secret: str = "rs") -> aiohttp.ClientResponse:
    """One request to `endpoint` from `address` (vouched for by the loopback proxy), answered."""
    url, headers = facade.url + "/" + endpoint, {"X-Forwarded-For": address}
    if endpoint == "introspect":
        request = facade.http.post(url, data={"token": "a.b"}, headers={**headers, "Authorization": f"Bearer {secret}"})
    elif endpoint == "metrics":
        request = facade.http.get(url, headers={**headers, "Authorization": f"Bearer {secret}"})
    elif endpoint == "revoke":
        request = facade.http.post(url, data={"token": "a.b", "client_id": client_id}, headers=headers)
    elif endpoint == "userinfo":
        request = facade.http.get(url, headers=headers)
    elif endpoint == "consent":
        request = facade.http.post(url, data={"consent_id": "x", "csrf": "y"}, headers=headers)
    else:
        request = facade.http.get(url, params={"state": "s", "code": "c"}, headers=headers, allow_redirects=False)
    async with request as response:
        await response.read()
        return response


@pytest.mark.parametrize(("endpoint", "setting", "kind"), [
    ("introspect", "rate_limit_introspect_per_min", "json"),
    ("revoke", "rate_limit_token_per_min", "json"),
    ("userinfo", "rate_limit_userinfo_per_min", "json"),
    ("consent", "rate_limit_authorize_per_min", "html"),
    ("callback", "rate_limit_authorize_per_min", "html"),
])
async def test_every_other_endpoint_is_limited_per_address(
        make_facade: FacadeFactory, endpoint: str, setting: str, kind: str) -> None:
    """Issue 14 item 11: /introspect, /revoke, /userinfo, /consent and /callback had no limit at all;
    now each counts requests per source address: past its limit 429 `temporarily_unavailable` with
    Retry-After (JSON for clients, a page for browsers); another address is unaffected."""
    facade = await make_facade(rate_limits=True, trusted_proxies=LOOPBACK, introspection_secret="rs",
                               **{setting: 3})
    client = facade.client()
    await client.register()
    await fresh_window()
    answered = [(await call(facade, endpoint, "203.0.113.5", client.client_id)).status for _ in range(3)]
    assert 429 not in answered
    refused = await call(facade, endpoint, "203.0.113.5", client.client_id)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    if kind == "json":
        assert (await refused.json())["error"] == "temporarily_unavailable"
    else:
        assert html_error(await refused.text()) == "temporarily_unavailable"
    assert (await call(facade, endpoint, "198.51.100.5", client.client_id)).status == answered[0]


@pytest.mark.parametrize("endpoint", ["introspect", "metrics"])
async def test_wrong_credentials_are_cut_off_per_address(make_facade: FacadeFactory, endpoint: str) -> None:
    """Issue 14 item 11: 400 wrong introspection secrets in a row were all answered. Past
    PROXY_RATE_LIMIT_AUTH_FAILURES_PER_MIN wrong ones, the address gets 429 there even with the right
    secret (so the answer stops telling right from wrong); another address still gets in."""
    facade = await make_facade(rate_limits=True, trusted_proxies=LOOPBACK, introspection_secret="rs",
                               metrics_token="rs", rate_limit_auth_failures_per_min=3)
    await fresh_window()
    assert [(await call(facade, endpoint, "203.0.113.5", secret="guess")).status for _ in range(3)] == [401] * 3
    for secret in ("guess", "rs"):
        refused = await call(facade, endpoint, "203.0.113.5", secret=secret)
        assert refused.status == 429, secret
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (await call(facade, endpoint, "198.51.100.5", secret="rs")).status == 200
