"""SEC-74: no error redirect to an https redirect URI before the user approved the client in this browser
(issue 14 item 4, RFC 9700 §4.11.2, RFC 6749 §4.1.2.1).

Anyone can register a client whose https redirect URI is a phishing page, then send users an
/authorize link that fails on purpose (`response_type=x`, a phishing `state`): the facade must not
bounce them there. Loopback and private-use redirect URIs reach an app on the user's own device and
may still get the error; after an approval of the client for that origin, errors go back as before.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client, query_of
from tests.security.conftest import html_error, snapshot

PHISHING = "https://app.example.com/cb"
OTHER_HTTPS = "https://other.example.com/cb"
PRIVATE_USE = "com.example.app:/oauth/callback"
LOOPBACK = "http://127.0.0.1:5599/callback"

# (extra /authorize parameters, the error each one is)
BROKEN = {
    "response_type=x": ({"response_type": "x"}, "unsupported_response_type"),
    "no PKCE": ({"code_challenge": None}, "invalid_request"),
    "plain PKCE": ({"code_challenge_method": "plain"}, "invalid_request"),
    "bad scope": ({"scope": "openid \u00e9"}, "invalid_scope"),
    "unknown resource": ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
}


@pytest.fixture(params=[True, False], ids=["consent on", "consent off"])
async def any_facade(make_facade: FacadeFactory, request: pytest.FixtureRequest) -> Facade:
    return await make_facade(consent=request.param)


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


async def registered(facade: Facade, *uris: str) -> Client:
    client = facade.client()
    client.redirect_uri = uris[0]
    await client.register(redirect_uris=list(uris))
    return client


def form_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))


@pytest.mark.parametrize("case", list(BROKEN))
async def test_an_error_before_approval_is_a_page_not_a_redirect(any_facade: Facade, case: str) -> None:
    """The review's phishing link: a registered https client, a request that fails on purpose with a
    phishing state. 400 HTML page naming the error, no Location, nothing stored (with consent off too:
    nobody approved that https URI in this browser)."""
    extra, error = BROKEN[case]
    client = await registered(any_facade, PHISHING)
    before = await snapshot(any_facade.redis)
    response, _ = await client.start(state="Your account is locked, call +1 555 0100", **extra)
    assert response.status == 400, response.headers.get("Location")
    assert "Location" not in response.headers
    assert html_error(await response.text()) == error
    assert await snapshot(any_facade.redis) == before


@pytest.mark.parametrize("uri", [LOOPBACK, PRIVATE_USE])
async def test_an_app_on_the_users_device_still_gets_the_error(any_facade: Facade, uri: str) -> None:
    """RFC 9700 §4.11.2 exception: loopback and private-use redirect URIs cannot phish a remote user,
    so the error goes back to the app with state and iss (RFC 6749 §4.1.2.1, RFC 9207)."""
    client = await registered(any_facade, uri)
    response, auth = await client.start(response_type="x")
    assert response.status == 302
    assert response.headers["Location"].startswith(uri + "?")
    params = query_of(response.headers["Location"])
    assert (params["error"], params["state"], params["iss"]) == ("unsupported_response_type", auth.state,
                                                                 any_facade.url)


async def test_after_approval_errors_go_back_to_the_client(consent_facade: Facade) -> None:
    """Once this browser approved the client for this origin, errors redirect with state and iss."""
    client = await registered(consent_facade, PHISHING)
    response, _ = await client.start()
    approved = await client.post_form(consent_facade.url + "/consent",
                                      {**form_of(await response.text()), "decision": "approve"})
    assert approved.status == 302
    for extra, error in BROKEN.values():
        response, auth = await client.start(**extra)
        assert response.status == 302, error
        params = query_of(response.headers["Location"])
        assert response.headers["Location"].startswith(PHISHING + "?")
        assert (params["error"], params["state"], params["iss"]) == (error, auth.state, consent_facade.url)


async def test_an_approval_of_one_origin_does_not_open_another(consent_facade: Facade) -> None:
    """Approval of the client for app.example.com does not let errors go to its other registered
    redirect URI on another origin, which the user never saw."""
    client = await registered(consent_facade, PHISHING, OTHER_HTTPS)
    response, _ = await client.start()
    await client.post_form(consent_facade.url + "/consent", {**form_of(await response.text()), "decision": "approve"})
    failed, _ = await client.start(redirect_uri=OTHER_HTTPS, response_type="x")
    assert failed.status == 400 and "Location" not in failed.headers
    assert html_error(await failed.text()) == "unsupported_response_type"


async def test_an_approval_of_one_client_does_not_open_its_origin_to_another(consent_facade: Facade) -> None:
    """The browser approved client A for https://app.example.com; client B registered the same redirect
    URI but was never approved here: B's errors are an HTML page, never a redirect to that origin."""
    first = await registered(consent_facade, PHISHING)
    response, _ = await first.start()
    await first.post_form(consent_facade.url + "/consent", {**form_of(await response.text()), "decision": "approve"})
    second = await registered(consent_facade, PHISHING)
    second.cookies = first.cookies  # the same browser
    failed, _ = await second.start(response_type="x")
    assert failed.status == 400 and "Location" not in failed.headers
    assert html_error(await failed.text()) == "unsupported_response_type"


async def test_a_denial_on_the_consent_page_goes_back_to_the_client(consent_facade: Facade) -> None:
    """The consent POST is the user's answer: "Deny" sends access_denied to the https client."""
    client = await registered(consent_facade, PHISHING)
    response, auth = await client.start()
    denied = await client.post_form(consent_facade.url + "/consent",
                                    {**form_of(await response.text()), "decision": "deny"})
    assert denied.status == 302
    params = query_of(denied.headers["Location"])
    assert (params["error"], params["state"]) == ("access_denied", auth.state)
