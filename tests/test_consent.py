"""Per-client consent before the upstream redirect (MCP spec, Confused Deputy), with browser-bound CSRF."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


def form_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))


async def test_first_visit_shows_a_consent_page_naming_the_client(consent_facade: Facade) -> None:
    """The first /authorize of a client in a browser is a no-store, unframeable consent page naming the client
    (escaped), the redirect host and the scopes; nothing goes upstream yet."""
    client = consent_facade.client()
    client.redirect_uri = "https://app.example.com/cb"
    await client.register(client_name="<b>Evil & Co</b>")
    response, _ = await client.start()
    assert response.status == 200
    assert response.content_type == "text/html"
    html = (await response.read()).decode()
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in html and "<b>Evil" not in html
    assert "app.example.com" in html
    assert "openid" in html
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert not facade_tx(await consent_facade.keys())


def facade_tx(keys: set[str]) -> list[str]:
    return [key for key in keys if ":tx:" in key]


async def approve(client: Client, response: aiohttp.ClientResponse, decision: str = "approve"
                  ) -> aiohttp.ClientResponse:
    form = form_of((await response.read()).decode())
    return await client.post_form(client.facade.url + "/consent", {**form, "decision": decision})


async def test_approval_goes_upstream_and_is_remembered_for_this_client(consent_facade: Facade) -> None:
    """Approving sends the browser upstream with an HttpOnly SameSite=Lax cookie; the sign-in completes; the
    same browser skips the page for this client next time but not for another client."""
    client = consent_facade.client()
    await client.register()
    response, auth = await client.start()
    upstream = await approve(client, response)
    assert upstream.status == 302
    assert upstream.headers["Location"].startswith(consent_facade.idp_url + "/authorize?")
    cookie = upstream.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    auth = await client.follow(upstream, auth)
    assert (await client.exchange(auth))[0] == 200
    # Same browser, same client: straight upstream.
    again, _ = await client.start()
    assert again.status == 302
    # Same browser, another client: consent again (approval is per client).
    other = Client(consent_facade, cookies=client.cookies)
    await other.register()
    response, _ = await other.start()
    assert response.status == 200


async def test_a_consent_form_answers_once(consent_facade: Facade) -> None:
    """A consent form is single use: posting the same approval twice gives 302 then 400."""
    client = consent_facade.client()
    await client.register()
    response, _ = await client.start()
    form = form_of((await response.read()).decode())
    first = await client.post_form(consent_facade.url + "/consent", {**form, "decision": "approve"})
    assert first.status == 302
    second = await client.post_form(consent_facade.url + "/consent", {**form, "decision": "approve"})
    assert second.status == 400


async def test_https_issuer_uses_host_prefixed_secure_cookies(make_facade: FacadeFactory) -> None:
    """The test talks plain http to an app configured with an https issuer; cookies follow the issuer."""
    https = await make_facade(consent=True, issuer="https://auth.example.com")
    base = str(https.server.make_url("")).rstrip("/")
    async with https.http.post(base + "/register", json={"redirect_uris": ["https://a.example/cb"]}) as r:
        client_id = (await r.json())["client_id"]
    async with https.http.get(base + "/authorize", params={
            "client_id": client_id, "redirect_uri": "https://a.example/cb", "response_type": "code",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"},
            allow_redirects=False) as response:
        assert response.status == 200
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-oauthfacade-browser=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
