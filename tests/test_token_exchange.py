"""RFC 8693 token exchange and named resource-server credentials (issue 17 §2 and §3).

A resource server presents the facade access token it was called with and receives the user's current
upstream access token; only for resources it owns, never for a client. Introspection is limited to the
resources a resource server owns; the metadata advertises introspection and the grant only when usable.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest

from proxy.clients.secrets import hash_secret
from proxy.resource.verifier import FacadeTokenVerifier
from proxy.token.grants.upstream_access import upstream_access_token
from tests import test_profiles
from tests.helpers import Client
from tests.security.conftest import events
from tests.test_profiles import CLIENT_ID, CLIENT_SECRET, ProfileFacade, Start, google_fake
from tests.upstreams import FakeGitHub, FakeOidc, Fault, GitHubQuirks, OidcQuirks

start = test_profiles.start  # the fixture: a facade in front of a fake IdP
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
RESOURCE_A, RESOURCE_B = "https://mcp.example.com/github", "https://mcp.example.com/drive"
SECRETS = {"rs-a": "secret of a", "rs-b": "secret of b", "rs-a-introspect-only": "secret of c"}


@pytest.fixture(scope="module")
def servers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """rs-a owns A and may exchange; rs-b owns B and may exchange; the third owns A, introspection only."""
    path = tmp_path_factory.mktemp("rs") / "resource-servers.toml"
    path.write_text(f'''
[[resource_server]]
id = "rs-a"
secret_hash = "{hash_secret(SECRETS["rs-a"])}"
resources = ["{RESOURCE_A}"]
token_exchange = true

[[resource_server]]
id = "rs-b"
secret_hash = "{hash_secret(SECRETS["rs-b"])}"
resources = ["{RESOURCE_B}/"]
token_exchange = true

[[resource_server]]
id = "rs-a-introspect-only"
secret_hash = "{hash_secret(SECRETS["rs-a-introspect-only"])}"
resources = ["{RESOURCE_A}"]
''')
    return path


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def exchange(facade: ProfileFacade, subject_token: str, server: str | None = "rs-a",
                   **extra: str) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": GRANT, "subject_token": subject_token, "subject_token_type": ACCESS, **extra}
    headers = basic(server, SECRETS[server]) if server else None
    async with facade.http.post(facade.url + "/token", data=form, headers=headers) as response:
        return response.status, await response.json()


async def introspect(facade: ProfileFacade, token: str, headers: dict[str, str]) -> dict[str, Any]:
    async with facade.http.post(facade.url + "/introspect", data={"token": token}, headers=headers) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def facade_with(start: Start, servers_file: Path, fake: FakeOidc | FakeGitHub | None = None,
                      profile: str = "generic", **overrides: Any) -> tuple[ProfileFacade, Any]:
    fake = fake or FakeOidc(OidcQuirks())
    values: dict[str, Any] = {"resources": (RESOURCE_A, RESOURCE_B), "resource_servers_file": str(servers_file)}
    if profile == "generic":
        values["upstream_offline_access"] = "scope"
    values.update(overrides)
    return await start(profile, fake, **values), fake


async def signed_in(facade: ProfileFacade, resource: str = RESOURCE_A) -> tuple[Client, dict[str, Any]]:
    client = facade.client()
    return client, await client.signed_in(resource=resource)


# -- who may exchange -----------------------------------------------------------------------------------------
async def test_the_owner_gets_the_users_current_upstream_token(start: Start, servers_file: Path,
                                                               captured_logs: io.StringIO) -> None:
    """rs-a, called with a token for its own resource, receives the user's upstream access token as an
    RFC 8693 answer; neither token reaches the log."""
    facade, fake = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    status, answer = await exchange(facade, body["access_token"])
    assert status == 200, answer
    assert answer["access_token"] in fake.access_tokens  # the IdP's own token for this user
    assert (answer["issued_token_type"], answer["token_type"]) == (ACCESS, "Bearer")
    assert 0 < answer["expires_in"] <= 3600
    assert "refresh_token" not in answer
    logged = captured_logs.getvalue()
    assert answer["access_token"] not in logged and body["access_token"] not in logged
    assert any(e["event"] == "token.exchanged" and e["resource_server"] == "rs-a" for e in events(captured_logs))


@pytest.mark.parametrize(("server", "status", "error"), [
    ("rs-b", 400, "invalid_grant"),  # another resource server: the token is not for its resource
    ("rs-a-introspect-only", 400, "unauthorized_client"),  # owns it, but may not exchange
])
async def test_other_resource_servers_cannot_exchange(start: Start, servers_file: Path, server: str, status: int,
                                                      error: str) -> None:
    """A resource server never obtains tokens for a resource it does not own, nor without the right."""
    facade, _ = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    assert (await exchange(facade, body["access_token"], server))[1]["error"] == error


async def test_a_resource_naming_another_resource_is_invalid_target(start: Start, servers_file: Path) -> None:
    """RFC 8693 §2.2.2: a `resource` the caller does not own is invalid_target."""
    facade, _ = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    status, answer = await exchange(facade, body["access_token"], resource=RESOURCE_B)
    assert (status, answer["error"]) == (400, "invalid_target")


@pytest.mark.parametrize("how", ["basic", "body", "none"])
async def test_a_client_never_can(start: Start, servers_file: Path, how: str) -> None:
    """An MCP client presenting its own access token is not a resource server: 401 invalid_client,
    however it authenticates (Basic as public clients do, client_id in the body, or not at all)."""
    facade, _ = await facade_with(start, servers_file)
    client, body = await signed_in(facade)
    form = {"grant_type": GRANT, "subject_token": body["access_token"], "subject_token_type": ACCESS}
    headers = None
    if how == "basic":
        headers = basic(client.client_id, "")
    elif how == "body":
        form["client_id"] = client.client_id
    async with facade.http.post(facade.url + "/token", data=form, headers=headers) as response:
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client")


async def test_the_legacy_introspection_secret_is_no_bearer_credential_at_token_exchange(
        start: Start, servers_file: Path) -> None:
    """PROXY_INTROSPECTION_SECRET as `Authorization: Bearer` is accepted at /introspect only (a legacy
    form): at the token-exchange grant it is 401 invalid_client and no upstream token is handed out."""
    facade, _ = await facade_with(start, servers_file, introspection_secret="L" * 40)
    _, body = await signed_in(facade)
    form = {"grant_type": GRANT, "subject_token": body["access_token"], "subject_token_type": ACCESS}
    async with facade.http.post(facade.url + "/token", data=form,
                                headers={"Authorization": "Bearer " + "L" * 40}) as response:
        answer = await response.json()
        assert (response.status, answer["error"]) == (401, "invalid_client"), answer
        assert "access_token" not in answer


async def test_a_wrong_resource_server_secret_is_invalid_client(start: Start, servers_file: Path) -> None:
    """RFC 8693 §2.2.2 / RFC 6749 §5.2: a resource server with a wrong secret is 401 invalid_client, and gets
    no token."""
    facade, _ = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    form = {"grant_type": GRANT, "subject_token": body["access_token"], "subject_token_type": ACCESS}
    async with facade.http.post(facade.url + "/token", data=form, headers=basic("rs-a", "guess")) as response:
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("case", ["expired", "revoked access token", "revoked family", "forged"])
async def test_an_unusable_subject_token_is_invalid_grant(start: Start, servers_file: Path, case: str) -> None:
    """RFC 8693 §2.2.2 / RFC 6749 §5.2: an expired, revoked or forged subject token is invalid_grant."""
    facade, _ = await facade_with(start, servers_file, access_token_ttl_s=1)
    client, body = await signed_in(facade)
    subject = body["access_token"]
    if case == "expired":
        await asyncio.sleep(1.2)
    elif case == "revoked access token":
        async with facade.http.post(facade.url + "/revoke", data={"token": subject, "client_id": client.client_id}):
            pass
    elif case == "revoked family":
        async with facade.http.post(facade.url + "/revoke", data={"token": body["refresh_token"],
                                                                 "client_id": client.client_id}):
            pass
    else:
        subject = subject[:-4] + ("AAAA" if not subject.endswith("AAAA") else "BBBB")
    status, answer = await exchange(facade, subject)
    assert (status, answer["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(("extra", "error"), [
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
    ({"actor_token": "x", "actor_token_type": ACCESS}, "invalid_request"),
    ({"subject_token": ""}, "invalid_request"),
])
async def test_malformed_exchanges_are_invalid_request(start: Start, servers_file: Path, extra: dict[str, str],
                                                       error: str) -> None:
    """RFC 8693 §2.1: an unsupported subject or requested token type, an actor_token, or an empty
    subject_token is 400 invalid_request."""
    facade, _ = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    extra = dict(extra)
    status, answer = await exchange(facade, extra.pop("subject_token", body["access_token"]), **extra)
    assert (status, answer["error"]) == (400, error)


async def test_without_exchanging_resource_servers_the_grant_is_unsupported(start: Start) -> None:
    """With no resource server allowed to exchange (only the legacy introspection secret), the token-exchange
    grant is unsupported_grant_type."""
    fake = FakeOidc(OidcQuirks())
    facade = await start("generic", fake, introspection_secret="legacy")
    _, body = await signed_in(facade, resource=facade.url + "/mcp")
    status, answer = await exchange(facade, body["access_token"], server=None)
    assert (status, answer["error"]) == (400, "unsupported_grant_type")


# -- the upstream token kept fresh ----------------------------------------------------------------------------
async def test_a_near_expiry_upstream_token_is_refreshed_and_the_rotated_refresh_token_stored(
        start: Start, servers_file: Path) -> None:
    """The upstream access token is within PROXY_UPSTREAM_REFRESH_SKEW_S of expiry: the exchange refreshes
    it first, hands out the new one and stores the rotated upstream refresh token, which the next
    refresh presents (the old one is dead at this IdP)."""
    facade, fake = await facade_with(start, servers_file, FakeOidc(OidcQuirks(access_token_ttl_s=30)),
                                     upstream_refresh="on-demand")
    _, body = await signed_in(facade)
    first_refresh = next(iter(fake.refresh_tokens))
    status, answer = await exchange(facade, body["access_token"])
    assert status == 200, answer
    assert fake.token_requests[-1]["form"] == {"grant_type": "refresh_token", "refresh_token": first_refresh}
    rotated = next(iter(fake.refresh_tokens))
    assert rotated != first_refresh
    sid = facade.services.keyset.verify(body["access_token"])[1]["sid"]
    stored = await facade.services.store.family_grant(sid)
    assert stored is not None and stored.upstream is not None
    assert stored.upstream["refresh_token"] == rotated and stored.upstream["access_token"] == answer["access_token"]
    assert answer["expires_in"] <= 30
    status, _ = await exchange(facade, body["access_token"])
    assert status == 200 and fake.token_requests[-1]["form"]["refresh_token"] == rotated


async def test_an_upstream_failure_during_the_exchange_follows_the_table(start: Start, servers_file: Path) -> None:
    """Transient: 503 with the IdP's Retry-After and everything kept; terminal: invalid_grant and the
    family is gone (the client's next refresh fails too)."""
    facade, fake = await facade_with(start, servers_file, FakeOidc(OidcQuirks(access_token_ttl_s=30)))
    client, body = await signed_in(facade)
    fake.faults["token"] = Fault(503, "down", {"Retry-After": "11"}, grant_type="refresh_token")
    async with facade.http.post(facade.url + "/token", headers=basic("rs-a", SECRETS["rs-a"]), data={
            "grant_type": GRANT, "subject_token": body["access_token"], "subject_token_type": ACCESS}) as response:
        assert (response.status, response.headers["Retry-After"]) == (503, "11")
    fake.faults["token"] = Fault(400, {"error": "invalid_grant"}, grant_type="refresh_token")
    assert (await exchange(facade, body["access_token"]))[1]["error"] == "invalid_grant"
    fake.faults.clear()
    assert (await client.refresh(body["refresh_token"]))[0] == 400


async def test_concurrent_exchanges_refresh_the_upstream_once(start: Start, servers_file: Path) -> None:
    """Two resource-server requests at once for a near-expiry token: one upstream refresh (a second one
    of the same rotating refresh token would look like reuse to the IdP), both get the same new token."""
    facade, fake = await facade_with(start, servers_file, FakeOidc(OidcQuirks(access_token_ttl_s=30)),
                                     upstream_refresh="on-demand")
    _, body = await signed_in(facade)
    fake.faults["token"] = Fault(delay_s=0.5, grant_type="refresh_token", slow_only=True)
    before = len(fake.token_requests)
    (s1, a1), (s2, a2) = await asyncio.gather(exchange(facade, body["access_token"]),
                                              exchange(facade, body["access_token"]))
    assert (s1, s2) == (200, 200), (a1, a2)
    assert a1["access_token"] == a2["access_token"]
    assert len(fake.token_requests) == before + 1


async def test_github_non_expiring_tokens_are_handed_out_as_they_are(start: Start, servers_file: Path) -> None:
    """GitHub's classic OAuth tokens never expire and come without a refresh token: the exchange returns
    the token without expires_in and never calls GitHub's token endpoint."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET)
    facade, _ = await facade_with(start, servers_file, fake, profile="github")
    _, body = await signed_in(facade)
    calls = len(fake.token_requests)
    status, answer = await exchange(facade, body["access_token"])
    assert status == 200, answer
    assert answer["access_token"].startswith("gho_") and answer["access_token"] in fake.tokens
    assert "expires_in" not in answer
    assert len(fake.token_requests) == calls


async def test_github_expiring_tokens_rotate_strictly_through_exchanges(start: Start, servers_file: Path) -> None:
    """A GitHub App with expiring tokens: each refresh token works once; exchanges store each successor."""
    fake = FakeGitHub(CLIENT_ID, CLIENT_SECRET, quirks=GitHubQuirks(expiring_tokens=True))
    facade, _ = await facade_with(start, servers_file, fake, profile="github", upstream_refresh_skew_s=28800)
    _, body = await signed_in(facade)
    for _ in range(2):
        current = next(iter(fake.refresh_tokens))
        status, answer = await exchange(facade, body["access_token"])
        assert status == 200, answer
        assert fake.token_requests[-1]["form"]["refresh_token"] == current
        assert answer["access_token"] in fake.tokens


async def test_google_keeps_its_one_refresh_token_through_exchanges(start: Start, servers_file: Path) -> None:
    """Google answers a refresh without a new refresh token: the facade keeps presenting the first one."""
    fake = google_fake()
    fake.quirks.access_token_ttl_s = 30
    facade, _ = await facade_with(start, servers_file, fake, profile="google")
    _, body = await signed_in(facade)
    first = next(iter(fake.refresh_tokens))
    for _ in range(2):
        status, answer = await exchange(facade, body["access_token"])
        assert status == 200, answer
        assert fake.token_requests[-1]["form"]["refresh_token"] == first
    assert list(fake.refresh_tokens) == [first]


async def test_the_gateway_function_needs_no_http(start: Start, servers_file: Path) -> None:
    """`upstream_access_token(services, principal)` is what the gateway calls with verified claims."""
    facade, fake = await facade_with(start, servers_file)
    _, body = await signed_in(facade)
    principal = facade.services.keyset.verify(body["access_token"])[1]
    token = await upstream_access_token(facade.services, principal)
    assert token.access_token in fake.access_tokens and token.access_token not in repr(token)
    verified = await FacadeTokenVerifier(issuer=facade.url, resource=RESOURCE_A).principal(body["access_token"])
    assert (await upstream_access_token(facade.services, verified)).access_token == token.access_token


# -- introspection and metadata ---------------------------------------------------------------------------------
async def test_a_resource_server_introspects_only_its_own_resources_tokens(start: Start, servers_file: Path) -> None:
    """rs-a sees its token as active; rs-b gets active=false for it, and for its own resource's token
    the roles swap. The legacy PROXY_INTROSPECTION_SECRET still sees every token."""
    facade, _ = await facade_with(start, servers_file, introspection_secret="legacy secret")
    _, for_a = await signed_in(facade, RESOURCE_A)
    _, for_b = await signed_in(facade, RESOURCE_B)
    a, b = basic("rs-a", SECRETS["rs-a"]), basic("rs-b", SECRETS["rs-b"])
    assert (await introspect(facade, for_a["access_token"], a))["active"] is True
    assert await introspect(facade, for_a["access_token"], b) == {"active": False}
    assert await introspect(facade, for_a["refresh_token"], b) == {"active": False}
    assert (await introspect(facade, for_b["access_token"], b))["aud"] == RESOURCE_B
    assert await introspect(facade, for_b["access_token"], a) == {"active": False}
    for legacy in (basic("anyone", "legacy secret"), {"Authorization": "Bearer legacy secret"}):
        assert (await introspect(facade, for_b["access_token"], legacy))["active"] is True
    async with facade.http.post(facade.url + "/introspect", data={"token": for_a["access_token"]},
                                headers=basic("rs-a", "wrong")) as response:
        assert response.status == 401


async def metadata(facade: ProfileFacade) -> dict[str, Any]:
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        return dict(await response.json())


async def test_the_metadata_advertises_only_what_can_be_used(start: Start, servers_file: Path) -> None:
    """RFC 8414: introspection_endpoint and the token-exchange grant only when a resource server can use
    them; the legacy secret brings introspection only."""
    plain = await metadata(await start("generic", FakeOidc(OidcQuirks())))
    assert "introspection_endpoint" not in plain and GRANT not in plain["grant_types_supported"]
    legacy = await metadata(await start("generic", FakeOidc(OidcQuirks()), introspection_secret="x"))
    assert legacy["introspection_endpoint"].endswith("/introspect") and GRANT not in legacy["grant_types_supported"]
    named, _ = await facade_with(start, servers_file)
    document = await metadata(named)
    assert "introspection_endpoint" in document and GRANT in document["grant_types_supported"]
