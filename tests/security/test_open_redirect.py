"""Open redirection (RFC 9700 §4.11, RFC 6749 §3.1.2.4 / §4.1.2.1, MCP 2025-06-18 "Open Redirection").

Until a client and its redirect_uri are verified, every error is an HTML page on the facade: never a
redirect, never a consent page, nothing stored. Each case is checked against a client whose registered
redirect URI does work, so a rejection is about the URI, not a broken setup.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import html_error, snapshot

REGISTERED = "https://app.example.com/cb"


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


async def registered(facade: Facade, redirect_uri: str = REGISTERED) -> Client:
    client = facade.client()
    client.redirect_uri = redirect_uri
    await client.register()
    return client


async def assert_refused_without_redirect(facade: Facade, client: Client, uri: str) -> None:
    before = await snapshot(facade.redis)
    response, _ = await client.start(redirect_uri=uri)
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.content_type == "text/html"
    assert html_error(await response.text()) == "invalid_request"
    assert "Allow access?" not in await response.text()
    assert await snapshot(facade.redis) == before
    good, _ = await client.start()  # the registered URI gets the consent page: the setup works
    assert good.status == 200 and "Allow access?" in await good.text()


async def test_unregistered_redirect_uri_is_a_page_not_a_redirect(consent_facade: Facade) -> None:
    """RFC 6749 §4.1.2.1, CVE-2025-4143: a redirect_uri the client never registered is refused."""
    client = await registered(consent_facade)
    await assert_refused_without_redirect(consent_facade, client, "https://evil.example/cb")


async def test_other_port_on_a_non_loopback_host_is_refused(consent_facade: Facade) -> None:
    """RFC 8252 §7.3 port freedom is for loopback only; https hosts match exactly (RFC 9700 §2.1)."""
    client = await registered(consent_facade)
    await assert_refused_without_redirect(consent_facade, client, "https://app.example.com:8443/cb")


async def test_a_fragment_is_refused(consent_facade: Facade) -> None:
    """RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment."""
    client = await registered(consent_facade)
    await assert_refused_without_redirect(consent_facade, client, REGISTERED + "#x")


async def test_a_javascript_uri_is_refused_at_authorize(consent_facade: Facade) -> None:
    """RFC 9700 §4.11, better-auth#9838: javascript: is never a redirect target."""
    client = await registered(consent_facade)
    await assert_refused_without_redirect(consent_facade, client, "javascript:alert(document.domain)//")


@pytest.mark.parametrize("uri", [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", "JavaScript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", " javascript:alert(1)",
    "java\tscript:alert(1)", "java\nscript:alert(1)",
])
async def test_script_schemes_are_refused_at_registration(facade: Facade, uri: str) -> None:
    """cloudflare/workers-oauth-provider#97/#98, better-auth#9838: case, whitespace and control
    characters do not smuggle a script scheme in; nothing is stored."""
    before = await snapshot(facade.redis)
    async with facade.http.post(facade.url + "/register", json={"redirect_uris": [uri]}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_redirect_uri"
    assert await snapshot(facade.redis) == before


@pytest.mark.parametrize("uri", [
    REGISTERED + "/extra",
    REGISTERED + "?x=1",  # oidcc-redirect-uri-query-added
    "https://app.example.com.evil.example/cb",
    "https://app.example.com@evil.example/cb",  # keycloak#49109 userinfo confusion
    "https:app.example.com/cb",  # anomalyco/openauth#299
    "https://APP.example.com/cb",  # exact match means exact
    "https://app.example.com/cb/..;/evil",  # keycloak#47718
    "https://\u0430pp.example.com/cb",  # a Cyrillic a: an IDN homograph of the registered host
])
async def test_near_misses_of_the_registered_uri_are_refused(consent_facade: Facade, uri: str) -> None:
    """RFC 9700 §2.1: simple string comparison; no prefix, suffix, case or userinfo games."""
    client = await registered(consent_facade)
    await assert_refused_without_redirect(consent_facade, client, uri)


async def test_an_ip_literal_registration_does_not_admit_localhost(consent_facade: Facade) -> None:
    """RFC 8252 §8.3: loopback port variance keeps the host; 127.0.0.1 registered, localhost refused."""
    client = await registered(consent_facade, "http://127.0.0.1:33420/callback")
    await assert_refused_without_redirect(consent_facade, client, "http://localhost:9999/callback")
    other_port, _ = await client.start(redirect_uri="http://127.0.0.1:9999/callback")
    assert other_port.status == 200


async def test_unknown_client_with_an_attacker_redirect_is_a_page(consent_facade: Facade) -> None:
    """RFC 9700 §4.11.2, workers-oauth-provider#52: an unknown client_id never redirects."""
    before = await snapshot(consent_facade.redis)
    client = consent_facade.client()
    response = await client.get(consent_facade.url + "/authorize?" + urlencode({
        "client_id": "nobody", "redirect_uri": "https://evil.example/cb", "response_type": "code",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}))
    assert response.status == 400
    assert "Location" not in response.headers
    assert html_error(await response.text()) == "invalid_request"
    assert "not registered" in await response.text()
    assert await snapshot(consent_facade.redis) == before


async def test_redirect_like_parameters_are_ignored(facade: Facade) -> None:
    """RFC 9700 §4.11, CWE-601: next/return_to/redirect never steer a redirect, at /authorize or on an
    error path; the only targets are the verified redirect_uri and the upstream's endpoint."""
    client = await registered(facade)
    evil = {"next": "https://evil.example/", "return_to": "https://evil.example/", "redirect": "https://evil.example/"}
    response, _ = await client.start(**evil)
    assert response.status == 302
    assert response.headers["Location"].startswith(facade.idp_url + "/authorize?")
    before = await snapshot(facade.redis)
    failed = await client.get(facade.url + "/callback?" + urlencode({"state": "forged", "code": "x", **evil}))
    assert failed.status == 400 and "Location" not in failed.headers
    assert html_error(await failed.text()) == "invalid_request"
    assert await snapshot(facade.redis) == before
