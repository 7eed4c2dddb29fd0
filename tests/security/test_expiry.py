"""Expired everything: each lifetime ends for real (Redis TTLs and signed expiry times, no key deleted
by hand), and what outlived it is refused without creating state (the flow issue's TTL table,
RFC 6749 §4.1.2 and §5.2, RFC 6750 §3.1, RFC 7662 §2.2)."""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlencode

import aiohttp

from tests.conftest import FacadeFactory
from tests.helpers import query_of
from tests.security.conftest import html_error, kinds, snapshot

PAST = 1.3  # seconds: a 1 s lifetime is over, whichever way the clock's second boundaries fall


async def test_an_expired_code_is_invalid_grant(make_facade: FacadeFactory) -> None:
    """RFC 6749 §4.1.2 (PROXY_CODE_TTL_S): a code past its lifetime is invalid_grant; no family opens."""
    facade = await make_facade(code_ttl_s=1)
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    await asyncio.sleep(PAST)
    status, body = await client.exchange(auth)
    assert (status, body["error"]) == (400, "invalid_grant")
    # The grant indexes are written ahead of the code (proxy/store/grants.py) and outlive it; they open nothing.
    assert set(kinds(await snapshot(facade.redis))) - {"grants", "grant-pending"} == {"client", "keys"}
    assert await facade.services.store.grants.families() == []


async def test_an_expired_transaction_ends_at_the_callback(make_facade: FacadeFactory) -> None:
    """PROXY_TRANSACTION_TTL_S: the IdP's late answer finds no transaction: a page, and the upstream
    code is never exchanged."""
    facade = await make_facade(transaction_ttl_s=1)
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    upstream = await client.get(response.headers["Location"])
    await asyncio.sleep(PAST)
    answer = await client.get(upstream.headers["Location"])
    assert answer.status == 400 and "Location" not in answer.headers
    assert html_error(await answer.text()) == "invalid_request"
    assert facade.idp_state.token_requests == []
    assert set(kinds(await snapshot(facade.redis))) == {"client", "keys"}


async def test_an_expired_consent_request_cannot_be_approved(make_facade: FacadeFactory) -> None:
    """PROXY_TRANSACTION_TTL_S also bounds a pending consent: approving it late is a page, nothing
    goes upstream."""
    facade = await make_facade(consent=True, transaction_ttl_s=1)
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    form = dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', await response.text()))
    await asyncio.sleep(PAST)
    answer = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
    assert answer.status == 400
    assert html_error(await answer.text()) == "invalid_request"
    assert facade.idp_state.authorize_requests == []


async def test_an_expired_access_token_is_invalid_token(make_facade: FacadeFactory) -> None:
    """RFC 6750 §3.1 and RFC 7662 §2.2 (PROXY_ACCESS_TOKEN_TTL_S): 401 invalid_token at /userinfo,
    active: false at /introspect."""
    facade = await make_facade(access_token_ttl_s=1, introspection_secret="rs")
    body = await facade.client().signed_in()
    await asyncio.sleep(PAST)
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_token"
    async with facade.http.post(facade.url + "/introspect", data={"token": body["access_token"]},
                                headers={"Authorization": "Bearer rs"}) as response:
        assert await response.json() == {"active": False}


async def test_an_idle_refresh_family_expires(make_facade: FacadeFactory) -> None:
    """PROXY_REFRESH_TOKEN_IDLE_TTL_S: an unused family is gone; its token is invalid_grant."""
    facade = await make_facade(refresh_token_idle_ttl_s=1)
    client = facade.client()
    body = await client.signed_in()
    await asyncio.sleep(PAST)
    status, error = await client.refresh(body["refresh_token"])
    assert (status, error["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))


async def test_a_refresh_family_ends_at_its_absolute_lifetime_even_in_use(make_facade: FacadeFactory) -> None:
    """PROXY_REFRESH_TOKEN_ABSOLUTE_TTL_S: use renews the idle lifetime, never the absolute one."""
    facade = await make_facade(refresh_token_absolute_ttl_s=1)
    client = facade.client()
    body = await client.signed_in()
    await asyncio.sleep(PAST)
    status, error = await client.refresh(body["refresh_token"])
    assert (status, error["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))


async def test_a_family_past_its_absolute_expiry_is_refused_even_while_its_key_lives(
        make_facade: FacadeFactory) -> None:
    """The absolute expiry is checked inside the rotation, not left to the key's TTL: a family whose
    `abs_exp` passed while its key still lives (a TTL set by an older version, or one an operator
    extended) refuses the refresh with invalid_grant and is deleted."""
    facade = await make_facade()
    client = facade.client()
    body = await client.signed_in()
    families = [key for key in await facade.redis.keys("*") if "fam" in (key.decode() if isinstance(key, bytes)
                                                                          else key)]
    assert len(families) == 1
    await facade.redis.hset(families[0], "abs_exp", str(int(time.time()) - 5))
    assert await facade.redis.ttl(families[0]) > 60
    status, error = await client.refresh(body["refresh_token"])
    assert (status, error["error"]) == (400, "invalid_grant")
    assert await facade.redis.exists(families[0]) == 0


async def test_an_expired_registration_is_unknown_everywhere(make_facade: FacadeFactory) -> None:
    """PROXY_CLIENT_TTL_S: a registration unused for its lifetime is gone: /authorize is a page, /token is
    401 invalid_client (so clients re-register)."""
    facade = await make_facade(client_ttl_s=1)
    client = facade.client()
    await client.register()
    await asyncio.sleep(PAST)
    response, _ = await client.start()
    assert response.status == 400 and "Location" not in response.headers
    assert html_error(await response.text()) == "invalid_request"
    status, body, _ = await client.token({"grant_type": "refresh_token", "refresh_token": "a.b",
                                          "client_id": client.client_id})
    assert (status, body["error"]) == (401, "invalid_client")
    assert set(kinds(await snapshot(facade.redis))) == {"keys"}


async def test_an_expired_approval_shows_the_consent_page_again(make_facade: FacadeFactory) -> None:
    """The security issue §1 (PROXY_CONSENT_TTL_S): the approval's expiry is inside the signed cookie, in
    milliseconds, so an approval given late in a second lasts its whole lifetime (whole seconds ended it
    up to a second early, and this test flaked at second boundaries), and a browser that keeps the
    cookie longer than its Max-Age is asked again."""
    facade = await make_facade(consent=True, consent_ttl_s=2)
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    form = dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', await response.text()))
    await asyncio.sleep((0.75 - time.time() % 1) % 1)  # approve three quarters into a second
    approved_at = time.time()
    upstream = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
    approval = next(c for c in upstream.headers.getall("Set-Cookie") if c.startswith("oauthfacade-consent="))
    value = approval.split(";")[0].split("=", 1)[1]
    params = client.authorize_params(verifier="v" * 43, state="s", nonce=None, redirect_uri=client.redirect_uri)
    url = facade.url + "/authorize?" + urlencode(params)
    async with aiohttp.ClientSession() as browser:
        await asyncio.sleep(max(0.0, approved_at + 1.5 - time.time()))
        async with browser.get(url, allow_redirects=False, headers={"Cookie": f"oauthfacade-consent={value}"}) as r:
            assert r.status == 302  # still remembered, 1.5 s into a 2 s lifetime
        await asyncio.sleep(max(0.0, approved_at + 2 + 0.4 - time.time()))
        async with browser.get(url, allow_redirects=False, headers={"Cookie": f"oauthfacade-consent={value}"}) as r:
            assert r.status == 200 and "Allow access?" in await r.text()
    assert query_of(upstream.headers["Location"])["state"]
