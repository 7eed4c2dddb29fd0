"""Pre-registered clients (PROXY_CLIENTS_FILE) through the facade: a confidential client authenticates
with client_secret_basic (form-urlencoded Basic, RFC 6749 §2.3.1) or client_secret_post, checked in
constant time; scopes, resources and grant types are held to the file; first-party clients may skip
consent; machine clients use client_credentials (SEP-1046)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from joserfc import jwt

from proxy.clients.secrets import hash_secret
from proxy.settings import SettingsError
from tests.conftest import Facade, FacadeFactory
from tests.helpers import basic
from tests.test_consent import approve

SECRET = "interop secret+1/é"  # a space, '+', '/', non-ASCII: only correct form-decoding matches


def form_basic(client_id: str, secret: str) -> str:
    """Basic as RFC 6749 §2.3.1 says: each half form-urlencoded before base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def clients_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(f'''
[[client]]
id = "claude-connector"
name = "Claude connector"
redirect_uris = ["http://127.0.0.1:5599/callback"]
secret_hash = "{hash_secret(SECRET)}"
grant_types = ["authorization_code", "refresh_token"]

[[client]]
id = "first-party"
name = "Our own app"
redirect_uris = ["https://app.example.com/cb"]
scopes = ["openid"]
skip_consent = true

[[client]]
id = "reporting-job"
name = "Nightly report"
secret_hash = "{hash_secret(SECRET)}"
grant_types = ["client_credentials"]
{extra}
''')
    return path


@pytest.fixture
async def facade(make_facade: FacadeFactory, tmp_path: Path) -> Facade:
    return await make_facade(clients_file=str(clients_file(tmp_path)), consent=True)


async def signed_in_code(facade: Facade, client_id: str) -> tuple[Any, Any]:
    client = facade.client()
    client.client_id = client_id
    response, auth = await client.start()
    if response.status == 200:
        response = await approve(client, response)
    return client, await client.follow(response, auth)


def code_form(client: Any, auth: Any) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri}


async def test_confidential_client_with_form_encoded_basic(facade: Facade) -> None:
    """client_secret_basic with the secret form-urlencoded (space, '+', '/', non-ASCII) redeems the code;
    the refresh authenticates the same way."""
    client, auth = await signed_in_code(facade, "claude-connector")
    status, body, _ = await client.token(code_form(client, auth), {"Authorization": form_basic("claude-connector",
                                                                                                SECRET)})
    assert status == 200, body
    status, body, _ = await client.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                                         {"Authorization": form_basic("claude-connector", SECRET)})
    assert status == 200, body


async def test_confidential_client_with_client_secret_post(facade: Facade) -> None:
    """client_secret_post: client_id and client_secret in the body."""
    client, auth = await signed_in_code(facade, "claude-connector")
    status, body, _ = await client.token({**code_form(client, auth), "client_id": "claude-connector",
                                          "client_secret": SECRET})
    assert status == 200, body


@pytest.mark.parametrize("credentials", [
    {"form": {"client_id": "claude-connector"}},  # no secret at all
    {"form": {"client_id": "claude-connector", "client_secret": SECRET + "x"}},
    {"form": {"client_id": "claude-connector", "client_secret": ""}},
    {"header": basic("claude-connector", "wrong")},
    {"header": basic("claude-connector", SECRET.replace(" ", "+"))},  # '+' decodes to a space: not the secret
])
async def test_wrong_or_missing_secret_is_invalid_client(facade: Facade, credentials: dict[str, Any]) -> None:
    """RFC 6749 §5.2: 401 invalid_client with WWW-Authenticate: Basic, and the code stays redeemable."""
    client, auth = await signed_in_code(facade, "claude-connector")
    headers = {"Authorization": credentials["header"]} if "header" in credentials else None
    status, body, response = await client.token({**code_form(client, auth), **credentials.get("form", {})}, headers)
    assert status == 401 and body["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    status, _, _ = await client.token(code_form(client, auth), {"Authorization": form_basic("claude-connector",
                                                                                             SECRET)})
    assert status == 200


async def test_two_authentication_methods_are_refused(facade: Facade) -> None:
    """RFC 6749 §2.3: Basic and client_secret in one request is invalid_request."""
    client, auth = await signed_in_code(facade, "claude-connector")
    status, body, _ = await client.token({**code_form(client, auth), "client_secret": SECRET},
                                         {"Authorization": form_basic("claude-connector", SECRET)})
    assert status == 400 and body["error"] == "invalid_request"


async def test_first_party_client_skips_consent_and_is_held_to_its_scopes(facade: Facade) -> None:
    """skip_consent: no page even with consent on; scopes beyond the file's are dropped (openid only)."""
    client = facade.client()
    client.client_id = "first-party"
    client.redirect_uri = "https://app.example.com/cb"
    response, auth = await client.start(scope="openid offline_access")
    assert response.status == 302 and response.headers["Location"].startswith(facade.idp_url)
    auth = await client.follow(response, auth)
    status, body = await client.exchange(auth)
    assert status == 200 and body["scope"] == "openid" and "refresh_token" in body


async def test_client_credentials_issues_a_client_token_without_refresh(facade: Facade) -> None:
    """SEP-1046: sub is the client, aud a configured resource, no refresh token, no id_token; metadata
    lists the grant; introspection sees the token."""
    client = facade.client()
    status, body, _ = await client.token({"grant_type": "client_credentials"},
                                         {"Authorization": form_basic("reporting-job", SECRET)})
    assert status == 200, body
    assert "refresh_token" not in body and "id_token" not in body
    claims = jwt.decode(body["access_token"], await client.jwks()).claims
    assert claims["sub"] == "client:reporting-job" and claims["client_id"] == "reporting-job"
    assert claims["aud"] == facade.url + "/mcp"
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        assert "client_credentials" in (await response.json())["grant_types_supported"]


@pytest.mark.parametrize(("client_id", "secret", "form", "status", "error"), [
    ("reporting-job", "bad", {}, 401, "invalid_client"),
    ("claude-connector", SECRET, {}, 400, "unauthorized_client"),  # not allowed the grant
    ("reporting-job", SECRET, {"resource": "https://elsewhere.example/mcp"}, 400, "invalid_target"),
    ("reporting-job", SECRET, {"scope": "openid unknown:scope"}, 400, "invalid_scope"),  # not offered
])
async def test_client_credentials_refusals(facade: Facade, client_id: str, secret: str, form: dict[str, str],
                                           status: int, error: str) -> None:
    """Only an authenticated client that lists the grant gets a token, for its resources and scopes."""
    got, body, _ = await facade.client().token({"grant_type": "client_credentials", **form},
                                               {"Authorization": form_basic(client_id, secret)})
    assert (got, body["error"]) == (status, error)


async def test_client_credentials_ignores_user_scopes(facade: Facade) -> None:
    """The MCP Python SDK's client-credentials providers ask for the resource metadata's scopes_supported
    (`openid offline_access`): scopes that mean nothing without a user are left out of the grant (RFC 6749
    §3.3: the server may ignore part of the request, and says so in `scope`), never granted, not refused."""
    form = {"grant_type": "client_credentials", "scope": "openid offline_access"}
    status, body, _ = await facade.client().token(form, {"Authorization": form_basic("reporting-job", SECRET)})
    assert status == 200, body
    assert not {"openid", "offline_access"} & set(body["scope"].split())
    assert "refresh_token" not in body and "id_token" not in body


async def test_authorization_code_refused_to_a_machine_client(facade: Facade) -> None:
    """A client whose file entry lists only client_credentials cannot redeem or refresh."""
    status, body, _ = await facade.client().token({"grant_type": "refresh_token", "refresh_token": "a.b"},
                                                  {"Authorization": form_basic("reporting-job", SECRET)})
    assert status == 400 and body["error"] == "unauthorized_client"


async def test_a_bad_clients_file_stops_the_start(make_facade: FacadeFactory, tmp_path: Path) -> None:
    """A mistake in the file is a configuration error naming PROXY_CLIENTS_FILE, before serving."""
    path = clients_file(tmp_path, '[[client]]\nid = "x"\nname = "X"\nredirect_uris = ["http://evil.example/cb"]\n')
    with pytest.raises(SettingsError, match="PROXY_CLIENTS_FILE"):
        await make_facade(clients_file=str(path))


async def test_public_dcr_clients_are_unchanged(facade: Facade) -> None:
    """A DCR client still authenticates by client_id alone; a secret it sends anyway is ignored."""
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    auth = await client.follow(await approve(client, response), auth)
    status, body = await client.exchange(auth, client_secret="whatever")
    assert status == 200, body


async def test_secret_guessing_is_rate_limited_before_the_secret_is_checked(make_facade: FacadeFactory,
                                                                            tmp_path: Path) -> None:
    """Wrong secrets count against the /token limits (per address, and per client from that address) before the slow
    scrypt check runs: past the limit the answer is 429, even for the right secret."""
    facade = await make_facade(clients_file=str(clients_file(tmp_path)), rate_limits=True,
                               rate_limit_token_per_min=3)
    form = {"grant_type": "client_credentials"}
    statuses = []
    for _ in range(4):
        status, _, _ = await facade.client().token(form, {"Authorization": form_basic("reporting-job", "guess")})
        statuses.append(status)
    assert statuses == [401, 401, 401, 429]
    status, _, _ = await facade.client().token(form, {"Authorization": form_basic("reporting-job", SECRET)})
    assert status == 429
