"""Defences no test proved (issue 22): each test here fails when the one defence it names is removed.

The review removed one check at a time and found these with every test still green. Each is now a
mutant in tests/mutants/catalogue.toml that names the test here which kills it (`make test-mutants`).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from proxy.log import configure, get_logger
from proxy.token.sealing import unseal
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client, basic
from tests.security.conftest import html_error, snapshot
from tests.security.test_consent_cover import approve, form_of, new_items

APP = "https://app.example/cb"
APP_OTHER_PORT = "https://app.example:8443/cb"


async def _register(facade: Facade, redirect_uris: list[str]) -> tuple[int, dict[str, Any]]:
    async with facade.http.post(facade.url + "/register",
                                json={"redirect_uris": redirect_uris, "client_name": "x"}) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("uri", ["https://app.example/cb\\evil", "https://app.example/a\\..\\cb",
                                 "http://127.0.0.1:5599/callback\\x", "com.example.app:/cb\\x"])
async def test_a_backslash_in_a_redirect_uri_path_is_refused_as_a_backslash(facade: Facade, uri: str) -> None:
    """Browsers read `\\` in an http(s) path as `/` (WHATWG URL), so `/cb\\evil` is `/cb/evil` to them:
    refused at registration with 400 invalid_redirect_uri saying it is the backslash, nothing stored."""
    before = await snapshot(facade.redis)
    status, document = await _register(facade, [uri])
    assert (status, document["error"]) == (400, "invalid_redirect_uri"), document
    assert "backslash" in document["error_description"], document
    assert await snapshot(facade.redis) == before


async def test_an_https_loopback_registration_admits_no_http_loopback_port(facade: Facade) -> None:
    """RFC 8252 §7.3 lets only *http* loopback redirect URIs vary their port: a client that registered
    https://127.0.0.1/cb cannot be sent to http://127.0.0.1:<any port>/cb (any local process may listen
    there): an HTML error page, no redirect, nothing goes upstream."""
    client = facade.client()
    client.redirect_uri = "https://127.0.0.1/cb"
    await client.register()
    response, _ = await client.start(redirect_uri="http://127.0.0.1:5555/cb")
    assert response.status == 400 and "Location" not in response.headers
    assert html_error(await response.text()) == "invalid_request"
    assert facade.idp_state.authorize_requests == []


@pytest.mark.parametrize("asked", ["http://127.0.0.1:6000/callback?next=https://evil.example",
                                   "http://127.0.0.1:6000/callback?x=1", "http://127.0.0.1:6000/other"])
async def test_a_loopback_redirect_may_vary_its_port_and_nothing_else(facade: Facade, asked: str) -> None:
    """RFC 8252 §7.3 frees the port of a loopback redirect URI, not its path or query: a client registered
    with http://127.0.0.1:5599/callback sent to another port with a query (or another path) gets an HTML
    error page, no redirect; the same URI on another port alone is fine."""
    client = facade.client()
    client.redirect_uri = "http://127.0.0.1:5599/callback"
    await client.register()
    response, _ = await client.start(redirect_uri=asked)
    assert response.status == 400 and "Location" not in response.headers
    assert html_error(await response.text()) == "invalid_request"
    assert facade.idp_state.authorize_requests == []
    response, _ = await client.start(redirect_uri="http://127.0.0.1:6000/callback")
    assert response.status == 302


@pytest.mark.parametrize("uri", ["https://app.example/*", "https://app.example/cb?to=*",
                                 "http://127.0.0.1:5599/*/callback"])
async def test_a_wildcard_redirect_uri_is_refused_as_a_wildcard(facade: Facade, uri: str) -> None:
    """A `*` in the path or query (which the URI syntax allows) would be stored and matched literally, yet
    the client meant a pattern: refused at registration, 400 invalid_redirect_uri saying so, nothing
    stored."""
    before = await snapshot(facade.redis)
    status, document = await _register(facade, [uri])
    assert (status, document["error"]) == (400, "invalid_redirect_uri"), document
    assert "wildcard" in document["error_description"], document
    assert await snapshot(facade.redis) == before


@pytest.mark.parametrize(("uri", "scheme"), [("javascript:/alert(1)", "javascript"), ("data:/text", "data"),
                                             ("vbscript:/msgbox", "vbscript"), ("blob:/x", "blob")])
async def test_a_script_scheme_is_refused_by_name(facade: Facade, uri: str, scheme: str) -> None:
    """A script scheme in the private-use form (`javascript:/...`, which the URI parser accepts) is refused
    naming the scheme, not merely for lacking a dot: the refusal must not depend on that other rule."""
    status, document = await _register(facade, [uri])
    assert (status, document["error"]) == (400, "invalid_redirect_uri"), document
    assert f"must not use the {scheme}: scheme" in document["error_description"], document


async def test_a_real_secret_moved_onto_another_family_changes_nothing(facade: Facade) -> None:
    """The refresh token's MAC covers its family id: the secret part of one family's real, current token
    put after another family's id was never issued for that family, so it is invalid_grant and changes
    nothing (it must not count as a replay and revoke the victim's family); both tokens keep working."""
    client = facade.client()
    mine = await client.signed_in()
    victim = await client.signed_in()
    victim_family = victim["refresh_token"].split(".")[0]
    moved = victim_family + "." + mine["refresh_token"].split(".", 1)[1]
    before = await snapshot(facade.redis)
    status, body = await client.refresh(moved)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert await snapshot(facade.redis) == before
    assert (await client.refresh(victim["refresh_token"]))[0] == 200
    assert (await client.refresh(mine["refresh_token"]))[0] == 200


async def test_the_stored_grace_successor_opens_only_with_the_old_token(facade: Facade) -> None:
    """Within the grace window the store keeps the successor sealed with the old token. Read from Redis,
    it opens with the old token (to the very successor the client got), and with nothing else: not
    with another token of the same family (the family id is public), and the successor's secret is not
    in the store in clear."""
    client = facade.client()
    first = await client.signed_in()
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    family = first["refresh_token"].split(".")[0]
    stored = await facade.redis.hgetall(facade.services.store.family_key(family))
    sealed = stored["grace"]
    assert unseal(sealed, first["refresh_token"], family) == second["refresh_token"]
    for wrong in (second["refresh_token"], family + "." + "A" * 64, family + "."):
        assert unseal(sealed, wrong, family) != second["refresh_token"]
    secret = second["refresh_token"].split(".", 1)[1]
    assert not [value for value in stored.values() if secret in value]


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


async def test_an_approval_does_not_cover_another_port_of_the_same_https_host(consent_facade: Facade) -> None:
    """An https origin is scheme, host *and port* (only loopback ignores the port): after approving
    https://app.example/cb, a request to https://app.example:8443/cb (another server on that host) shows
    the page again naming the new destination, and nothing goes upstream."""
    client = consent_facade.client()
    client.redirect_uri = APP
    await client.register(redirect_uris=[APP, APP_OTHER_PORT])
    await approve(client, scope="openid")
    before = len(consent_facade.idp_state.authorize_requests)
    response, _ = await client.start(scope="openid", redirect_uri=APP_OTHER_PORT)
    assert response.status == 200, response.headers.get("Location")
    assert new_items(await response.text()) == ["new destination: app.example:8443"]
    assert form_of(await response.text())
    assert len(consent_facade.idp_state.authorize_requests) == before


def _b64(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(("case", "header"), [
    ("another scheme carrying Basic's credentials", lambda cid: "Bearer " + _b64(cid + ":")),
    ("Digest", lambda cid: "Digest " + _b64(cid + ":")),
    ("a malformed %-escape in the secret", lambda cid: "Basic " + _b64(cid + ":%zz")),
    ("a truncated %-escape in the secret", lambda cid: "Basic " + _b64(cid + ":ab%4")),
    ("longer than 4096 bytes", lambda cid: basic(cid, "a" * 4200)),
])
async def test_a_malformed_basic_header_naming_a_registered_client_is_invalid_client(
        facade: Facade, case: str, header: Any) -> None:
    """The Basic checks (scheme, %-escapes, length) with the id of a *registered* public client, whose
    secret is otherwise ignored: each is still 401 invalid_client with a Basic challenge, the code is not
    consumed, and the same client then redeems it. (With an unknown id the unknown-client answer would
    hide a missing check.)"""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri}
    before = await snapshot(facade.redis)
    status, body, response = await client.token(form, {"Authorization": header(client.client_id)})
    assert (status, body["error"]) == (401, "invalid_client"), case
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert await snapshot(facade.redis) == before
    status, _, _ = await client.token({**form, "client_id": client.client_id})
    assert status == 200


def test_basic_credentials_in_free_text_are_scrubbed_from_logs() -> None:
    """A library message quoting `Basic <credentials>` (not as a header line, not as a field named
    authorization) is logged with the credentials redacted, whatever the case of the scheme."""
    stream = io.StringIO()
    configure("info", "json", stream)
    try:
        credentials = _b64("connector:s3cret-value")
        get_logger().warning("upstream.note", message=f"the IdP refused Basic {credentials} for the client",
                             detail=f"retry with basic {credentials}")
    finally:
        configure("info", "json")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert credentials not in stream.getvalue()
    assert line["message"] == "the IdP refused Basic [redacted] for the client"
    assert line["detail"] == "retry with basic [redacted]"


async def test_a_client_cannot_revoke_another_clients_access_token(facade: Facade) -> None:
    """RFC 7009 §2.1: the server checks the token was issued to the client asking. Another registered
    client revoking the victim's access token gets the usual 200 and the token keeps working; the
    victim revoking it itself ends it."""
    victim = facade.client()
    tokens = await victim.signed_in()
    other = Client(facade)
    await other.register()

    async def userinfo() -> int:
        async with facade.http.get(facade.url + "/userinfo",
                                   headers={"Authorization": "Bearer " + tokens["access_token"]}) as response:
            return response.status

    assert await userinfo() == 200
    async with facade.http.post(facade.url + "/revoke", data={"token": tokens["access_token"],
                                                              "client_id": other.client_id}) as response:
        assert response.status == 200
    assert await userinfo() == 200
    async with facade.http.post(facade.url + "/revoke", data={"token": tokens["access_token"],
                                                              "client_id": victim.client_id}) as response:
        assert response.status == 200
    assert await userinfo() == 401
