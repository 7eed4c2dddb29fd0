"""What the upstream's authorization response may carry at /callback (issue 14 items 8 and 12).

RFC 9207 §2.4: when the upstream advertises `authorization_response_iss_parameter_supported: true`, an
answer without `iss` is a mix-up candidate, refused like one naming another issuer: its code is never
exchanged. RFC 6749 §4.1.2.1 / OIDC Core §3.1.2.6: the upstream's error code reaches the client only
as one of a fixed set, and its error_description never.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Authorization, Client, query_of
from tests.security.conftest import kinds, snapshot


async def to_callback(facade: Facade, **extra: str) -> tuple[Client, Authorization, dict[str, str]]:
    """Walk to the upstream and back, stopping before /callback: the upstream's answer, unsent."""
    client = facade.client()
    await client.register()
    response, auth = await client.start(**extra)
    upstream = await client.get(response.headers["Location"])
    answer = query_of(upstream.headers["Location"])
    assert answer["iss"] == facade.idp_url  # the dev IdP sends iss and advertises it
    return client, auth, answer


async def test_an_answer_without_iss_is_refused_when_the_upstream_promised_one(facade: Facade) -> None:
    """RFC 9207 §2.4: the dev IdP advertises authorization_response_iss_parameter_supported; its answer
    with `iss` removed is refused like a wrong `iss`: access_denied to the client (with its state and
    the facade's iss), the code never sent to the upstream's token endpoint, no facade code."""
    async with facade.http.get(facade.idp_url + "/.well-known/openid-configuration") as response:
        assert (await response.json())["authorization_response_iss_parameter_supported"] is True
    client, auth, answer = await to_callback(facade)
    del answer["iss"]
    back = await client.get(facade.url + "/callback?" + urlencode(answer))
    assert back.status == 302
    params = query_of(back.headers["Location"])
    assert back.headers["Location"].startswith(client.redirect_uri + "?")
    assert (params["error"], params["state"], params["iss"]) == ("access_denied", auth.state, facade.url)
    assert "code" not in params
    assert facade.idp_state.token_requests == []
    assert "code" not in kinds(await snapshot(facade.redis))


async def test_an_error_answer_without_iss_is_refused_too(facade: Facade) -> None:
    """RFC 9207 §2: error responses carry `iss` as well, so a missing one is the same mix-up candidate;
    the client gets access_denied with the mix-up's description, not the upstream's error."""
    client, auth, answer = await to_callback(facade)
    back = await client.get(facade.url + "/callback?" + urlencode({"state": answer["state"],
                                                                    "error": "temporarily_unavailable"}))
    params = query_of(back.headers["Location"])
    assert (params["error"], params["state"]) == ("access_denied", auth.state)
    assert "another identity provider" in params["error_description"]


async def test_an_answer_without_iss_is_accepted_when_the_upstream_promised_none(make_facade: FacadeFactory) -> None:
    """Without the promise (most IdPs), `iss` is optional: the answer without it completes the sign-in."""
    facade = await make_facade(idp={"discovery_overrides": {"authorization_response_iss_parameter_supported": False}})
    client, auth, answer = await to_callback(facade)
    del answer["iss"]
    done = await client.follow(await client.get(facade.url + "/callback?" + urlencode(answer)), auth)
    assert (await client.exchange(done))[0] == 200


@pytest.mark.parametrize(("upstream_error", "error"), [
    ("access_denied", "access_denied"),
    ("interaction_required", "access_denied"),
    ("login_required", "access_denied"),
    ("consent_required", "access_denied"),
    ("account_selection_required", "access_denied"),
    ("temporarily_unavailable", "temporarily_unavailable"),
    ("server_error", "server_error"),
    ("invalid_request", "server_error"),
    ("invalid_scope", "server_error"),
    ("unauthorized_client", "server_error"),
    ("unsupported_response_type", "server_error"),
    ("request_not_supported", "server_error"),
    ("registration_not_supported", "server_error"),
    ("some_vendor_specific_error", "server_error"),
    ("Please contact support at +1 555 0100", "server_error"),
])
async def test_upstream_error_codes_reach_the_client_only_from_a_fixed_set(
        facade: Facade, upstream_error: str, error: str) -> None:
    """RFC 6749 §4.1.2.1: the client hears access_denied when the user was not signed in upstream
    (denial, or an OIDC interaction error the facade never asked for with prompt=none),
    temporarily_unavailable when the upstream says so, server_error for everything else (complaints
    about the facade's own upstream request, unknown codes, arbitrary text). The upstream's
    error_description never reaches the client; state and the facade's iss always do."""
    client, auth, answer = await to_callback(facade)
    description = "upstream-says-" + upstream_error.replace(" ", "-")
    back = await client.get(facade.url + "/callback?" + urlencode({
        "state": answer["state"], "iss": answer["iss"], "error": upstream_error,
        "error_description": description, "error_uri": "https://upstream.example/why"}))
    assert back.status == 302
    location = back.headers["Location"]
    params = query_of(location)
    assert location.startswith(client.redirect_uri + "?")
    assert (params["error"], params["state"], params["iss"]) == (error, auth.state, facade.url)
    assert "another identity provider" not in params["error_description"]  # not the mix-up branch
    assert description not in location and "upstream.example" not in location
    assert "error_uri" not in params
    if upstream_error == "access_denied":
        assert params["error_description"] == "The sign-in was denied at the identity provider."
    assert "code" not in kinds(await snapshot(facade.redis))


@pytest.mark.parametrize("upstream_error", ["login_required", "interaction_required", "consent_required",
                                            "account_selection_required"])
async def test_interaction_errors_reach_a_client_that_sent_prompt_none(facade: Facade, upstream_error: str) -> None:
    """OIDC Core §3.1.2.6: login_required and its siblings answer prompt=none, so they make sense to a
    client that sent prompt=none and reach it unchanged (still without the upstream's description)."""
    client, auth, answer = await to_callback(facade, prompt="none")
    back = await client.get(facade.url + "/callback?" + urlencode({
        "state": answer["state"], "iss": answer["iss"], "error": upstream_error,
        "error_description": "upstream-text"}))
    params = query_of(back.headers["Location"])
    assert (params["error"], params["state"], params["iss"]) == (upstream_error, auth.state, facade.url)
    assert "upstream-text" not in back.headers["Location"]
