"""PKCE downgrade (RFC 9700 §2.1.1 and §4.8, RFC 7636 §4.3/§4.6, CVE-2025-4144).

S256 is the only method; a request without a challenge never reaches consent or the upstream; a code
is redeemed only with its verifier. Failed attempts change nothing: the rightful holder can still redeem.
"""

from __future__ import annotations

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Authorization, Client, query_of
from tests.security.conftest import kinds, snapshot


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


@pytest.mark.parametrize(("extra", "case"), [
    ({"code_challenge_method": "plain"}, "plain"),
    ({"code_challenge_method": "s256"}, "lower-case s256"),
    ({"code_challenge_method": "SHA256"}, "SHA256"),
    ({"code_challenge_method": None}, "method missing (RFC 7636 default: plain)"),
    ({"code_challenge": None}, "challenge missing"),
    ({"code_challenge": None, "code_challenge_method": None}, "no PKCE at all"),
    ({"code_challenge": "x" * 43 + "="}, "not a base64url SHA-256 digest"),
])
async def test_a_downgraded_authorization_request_is_refused_before_consent(
        consent_facade: Facade, extra: dict[str, str | None], case: str) -> None:
    """RFC 9700 §2.1.1: PKCE S256 is required; `plain` and a missing challenge are invalid_request,
    answered to the verified redirect_uri with state and iss, before any consent page or upstream hop."""
    client = consent_facade.client()
    await client.register()
    before = await snapshot(consent_facade.redis)
    response, auth = await client.start(**extra)
    assert response.status == 302, case
    params = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(client.redirect_uri + "?")
    assert (params["error"], params["state"], params["iss"]) == ("invalid_request", auth.state, consent_facade.url)
    assert await snapshot(consent_facade.redis) == before
    assert consent_facade.idp_state.authorize_requests == []


async def ready(facade: Facade) -> tuple[Client, Authorization]:
    client = facade.client()
    await client.register()
    return client, await client.authorize()


@pytest.mark.parametrize(("verifier", "error"), [
    ("x" * 43, "invalid_grant"),  # well-formed, wrong
    ("<absent>", "invalid_request"),  # the downgrade: redeem as if no PKCE had been used
    ("", "invalid_request"),
    ("short", "invalid_request"),
    ("a" * 129, "invalid_request"),
])
async def test_a_code_is_redeemed_only_with_its_verifier(facade: Facade, verifier: str, error: str) -> None:
    """RFC 7636 §4.6 and RFC 9700 §4.8: a wrong or missing code_verifier is refused; the failed attempt
    changes nothing stored, and the client holding the verifier still redeems the code."""
    client, auth = await ready(facade)
    before = await snapshot(facade.redis)
    assert "code" in kinds(before)
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "redirect_uri": auth.redirect_uri,
            "client_id": client.client_id}
    if verifier != "<absent>":
        form["code_verifier"] = verifier
    status, body, response = await client.token(form)
    assert (status, body["error"]) == (400, error)
    assert response.headers["Cache-Control"] == "no-store"
    assert await snapshot(facade.redis) == before
    status, _ = await client.exchange(auth)
    assert status == 200
