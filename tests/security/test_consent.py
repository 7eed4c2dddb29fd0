"""Consent against confused deputies (MCP 2025-06-18 "Confused Deputy", MCP Security Best Practices,
the security issue §1, GHSA-rww4-4w9c-7733 / PrefectHQ/fastmcp#3201, RFC 9700 §4.7 and §4.12)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client, query_of
from tests.security.conftest import html_error, kinds, snapshot


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


def form_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))


async def consent_page(client: Client) -> tuple[aiohttp.ClientResponse, dict[str, str]]:
    response, _ = await client.start()
    assert response.status == 200
    return response, form_of(await response.text())


async def approve(client: Client) -> aiohttp.ClientResponse:
    _, form = await consent_page(client)
    return await client.post_form(client.facade.url + "/consent", {**form, "decision": "approve"})


async def test_a_lifted_upstream_url_fails_in_the_victims_browser(consent_facade: Facade) -> None:
    """GHSA-rww4-4w9c-7733: the attacker consents to their own client in their own browser and sends the
    upstream authorization URL to a victim signed in at the IdP. The victim's browser comes back to
    /callback without the attacker's browser cookie: 403 access_denied page, no redirect to the
    attacker, the victim's upstream code is never exchanged, no code is issued."""
    attacker = consent_facade.client()
    attacker.redirect_uri = "https://attacker.example/cb"
    await attacker.register()
    upstream = await approve(attacker)
    assert upstream.status == 302
    lifted = upstream.headers["Location"]
    assert lifted.startswith(consent_facade.idp_url + "/authorize?")

    victim_browser = Client(consent_facade, client_id=attacker.client_id)  # a cookie jar of its own
    at_idp = await victim_browser.get(lifted)  # the IdP signs the victim in silently
    callback_url = at_idp.headers["Location"]
    assert callback_url.startswith(consent_facade.url + "/callback?")
    answer = await victim_browser.get(callback_url)
    assert answer.status == 403
    assert "Location" not in answer.headers
    assert html_error(await answer.text()) == "access_denied"
    assert consent_facade.idp_state.token_requests == []
    assert "code" not in kinds(await snapshot(consent_facade.redis))


async def test_the_consenting_browser_completes_its_own_sign_in(consent_facade: Facade) -> None:
    """The binding is not a blanket refusal: the browser that consented finishes the flow."""
    client = consent_facade.client()
    await client.register()
    response, auth = await client.start()
    form = form_of(await response.text())
    upstream = await client.post_form(consent_facade.url + "/consent", {**form, "decision": "approve"})
    done = await client.follow(upstream, auth)
    assert (await client.exchange(done))[0] == 200


async def test_a_remembered_approval_binds_the_browser_too(consent_facade: Facade) -> None:
    """GHSA-rww4-4w9c-7733 on the silent path: with the approval remembered, /authorize goes straight
    upstream, and that URL is still bound to the browser that holds the approval."""
    attacker = consent_facade.client()
    await attacker.register()
    assert (await approve(attacker)).status == 302
    response, _ = await attacker.start()
    assert response.status == 302  # remembered: no page this time
    victim_browser = Client(consent_facade, client_id=attacker.client_id)
    at_idp = await victim_browser.get(response.headers["Location"])
    answer = await victim_browser.get(at_idp.headers["Location"])
    assert answer.status == 403
    assert html_error(await answer.text()) == "access_denied"
    assert consent_facade.idp_state.token_requests == []


async def test_an_approval_cookie_does_not_transfer_to_another_client(consent_facade: Facade) -> None:
    """The security issue §1 / SEC-23: approval is per client; client A's approval cookie shown with
    client B (same browser) gets B's consent page."""
    first = consent_facade.client()
    await first.register()
    assert (await approve(first)).status == 302
    second = Client(consent_facade, cookies=first.cookies)
    await second.register()
    response, _ = await second.start()
    assert response.status == 200 and "Allow access?" in await response.text()


@pytest.mark.parametrize("tamper", ["payload", "mac", "other key", "garbage", "non-ascii"])
async def test_a_tampered_approval_cookie_is_ignored(consent_facade: Facade, tamper: str) -> None:
    """The security issue §1: the approval cookie is signed; any change shows the page again (never 500)."""
    client = consent_facade.client()
    await client.register()
    assert (await approve(client)).status == 302
    cookie = next(c for c in client.cookies if c.key == "oauthfacade-consent")
    payload, _, mac = cookie.value.rpartition(".")
    value = {"payload": payload[:-2] + "AA" + "." + mac, "mac": payload + "." + mac[:-2] + "AA",
             "other key": payload + "." + "A" * len(mac), "garbage": "not-a-cookie",
             "non-ascii": payload + ".é" + mac}[tamper]
    params = client.authorize_params(verifier="v" * 43, state="s", nonce=None, redirect_uri=client.redirect_uri)
    async with aiohttp.ClientSession() as browser:  # the Cookie header exactly as an attacker writes it
        async with browser.get(client.facade.url + "/authorize", params=params, allow_redirects=False,
                               headers={"Cookie": f"oauthfacade-consent={value}"}) as response:
            assert response.status == 200 and "Allow access?" in await response.text()
        async with browser.get(client.facade.url + "/authorize", params=params, allow_redirects=False,
                               headers={"Cookie": f"oauthfacade-consent={cookie.value}"}) as response:
            assert response.status == 302  # the untampered cookie is honoured: the test is not vacuous


async def test_approval_cookie_flags(consent_facade: Facade) -> None:
    """The security issue §1: HttpOnly, SameSite=Lax, Path=/, a Max-Age of PROXY_CONSENT_TTL_S."""
    client = consent_facade.client()
    await client.register()
    upstream = await approve(client)
    cookies = upstream.headers.getall("Set-Cookie")
    approval = next(c for c in cookies if c.startswith("oauthfacade-consent="))
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={consent_facade.settings.consent_ttl_s}"):
        assert flag in approval
    browser = next(c for c in cookies if c.startswith("oauthfacade-browser="))
    assert "HttpOnly" in browser and "SameSite=Lax" in browser


@pytest.mark.parametrize("case", ["no browser cookie", "another browser's cookie", "non-ascii csrf",
                                  "tampered csrf", "missing csrf", "unknown consent_id"])
async def test_a_forged_consent_post_is_refused(consent_facade: Facade, case: str) -> None:
    """RFC 9700 §4.7 (CSRF), PrefectHQ/fastmcp#3519: the CSRF token is an HMAC over the pending consent
    and this browser's cookie; a cross-site POST (no SameSite=Lax cookie), a form from another browser,
    or a malformed token is 400, nothing goes upstream and the pending consent survives."""
    client = consent_facade.client()
    await client.register()
    _, form = await consent_page(client)
    before = await snapshot(consent_facade.redis)
    assert "consent" in kinds(before)
    other = Client(consent_facade, client_id=client.client_id)
    if case == "another browser's cookie":
        await consent_page(other)
    sender = client if case in ("non-ascii csrf", "tampered csrf", "missing csrf", "unknown consent_id") else other
    posted = {**form, "decision": "approve"}
    if case == "non-ascii csrf":
        posted["csrf"] = "é" + form["csrf"][1:]
    elif case == "tampered csrf":
        posted["csrf"] = form["csrf"][:-2] + ("AA" if not form["csrf"].endswith("AA") else "BB")
    elif case == "missing csrf":
        del posted["csrf"]
    elif case == "unknown consent_id":
        posted["consent_id"] = form["consent_id"][:-2] + "AA"
    answer = await sender.post_form(consent_facade.url + "/consent", posted)
    assert answer.status == 400 and "Location" not in answer.headers
    assert html_error(await answer.text()) == "invalid_request"
    if case != "another browser's cookie":
        assert await snapshot(consent_facade.redis) == before
    assert consent_facade.idp_state.authorize_requests == []
    assert (await client.post_form(consent_facade.url + "/consent", {**form, "decision": "approve"})).status == 302


async def test_consent_by_get_is_not_allowed(consent_facade: Facade) -> None:
    """RFC 9700 §4.12 and RFC 6749 §10.12: the approval is a POST; a GET carrying the form is 405."""
    client = consent_facade.client()
    await client.register()
    _, form = await consent_page(client)
    before = await snapshot(consent_facade.redis)
    response = await client.get(consent_facade.url + "/consent?" + "&".join(f"{k}={v}" for k, v in form.items())
                                + "&decision=approve")
    assert response.status == 405
    assert await snapshot(consent_facade.redis) == before


async def test_the_redirect_after_approval_is_302_never_307(consent_facade: Facade) -> None:
    """RFC 9700 §4.12: a 307 would make the browser re-POST the consent form to the IdP."""
    client = consent_facade.client()
    await client.register()
    upstream = await approve(client)
    assert upstream.status == 302
    assert urlsplit(upstream.headers["Location"]).netloc == urlsplit(consent_facade.idp_url).netloc


async def test_denial_answers_access_denied_and_contacts_nobody(consent_facade: Facade) -> None:
    """RFC 6749 §4.1.2.1 and RFC 9207: "Deny" sends access_denied with state and iss to the client;
    no request goes to the IdP and no transaction is stored."""
    client = consent_facade.client()
    await client.register()
    response, auth = await client.start()
    form = form_of(await response.text())
    back = await client.post_form(consent_facade.url + "/consent", {**form, "decision": "deny"})
    assert back.status == 302
    params = query_of(back.headers["Location"])
    assert back.headers["Location"].startswith(client.redirect_uri + "?")
    assert (params["error"], params["state"], params["iss"]) == ("access_denied", auth.state, consent_facade.url)
    assert consent_facade.idp_state.authorize_requests == []
    assert set(kinds(await snapshot(consent_facade.redis))) == {"client", "keys"}


async def test_consent_off_skips_the_page(make_facade: FacadeFactory) -> None:
    """PROXY_CONSENT=off (trusted single-client deployments): /authorize goes straight upstream."""
    facade = await make_facade(consent=False)
    client = facade.client()
    await client.register()
    response, _ = await client.start()
    assert response.status == 302
    assert response.headers["Location"].startswith(facade.idp_url + "/authorize?")
