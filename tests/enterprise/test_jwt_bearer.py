"""The jwt-bearer grant with an ID-JAG (MCP Enterprise-Managed Authorization, leg 2), against the dev IdP
acting as the enterprise IdP over TLS: what a good assertion earns, and each way a bad one is refused
with 400 invalid_grant and nothing stored."""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwk, jwt

from proxy.devidp.app import rotate_key
from tests.clients import tls
from tests.conftest import Facade, free_port
from tests.enterprise.conftest import (
    AGENT,
    AGENT_SECRET,
    JWT_BEARER,
    OTHER,
    OTHER_SECRET,
    EnterpriseFacade,
    EnterpriseIdp,
    clients_toml,
)
from tests.helpers import basic

SECRETS = {AGENT: AGENT_SECRET, OTHER: OTHER_SECRET}


Answer = tuple[int, dict[str, Any]]
Setup = tuple[Facade, EnterpriseIdp]


async def present(facade: Facade, assertion: str, client: str | None = AGENT, **params: str) -> Answer:
    """POST /token with the grant, the client authenticating per its registration (Basic for confidential)."""
    headers = {"Authorization": basic(client, SECRETS[client])} if client in SECRETS else {}
    form = {"grant_type": JWT_BEARER, "assertion": assertion, **params}
    async with facade.http.post(facade.url + "/token", data=form, headers=headers) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json()


async def access_claims(facade: Facade, token: str) -> dict[str, Any]:
    async with facade.http.get(facade.url + "/jwks") as response:
        keys = jwk.KeySet.import_key_set(await response.json())
    decoded = jwt.decode(token, keys)
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


@pytest.fixture
async def setup(make_enterprise_facade: EnterpriseFacade, enterprise_idp: EnterpriseIdp) -> Setup:
    enterprise_idp.config.id_jag_client_id = AGENT  # the IdP stamps the client's id at the facade
    return await make_enterprise_facade(), enterprise_idp


async def test_a_valid_id_jag_earns_an_access_token_for_its_resource(setup: Setup) -> None:
    """200 with a Bearer at+jwt whose aud is the asserted resource, sub the IdP's user prefixed by its issuer,
    scope as asserted; no refresh token (draft §4.4.3) and no id_token."""
    facade, idp = setup
    resource = facade.url + "/mcp"
    assertion = await idp.id_jag(facade.url, resource=resource, scope="mcp:read mcp:write")
    status, body = await present(facade, assertion)
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["scope"] == "mcp:read mcp:write"
    assert "refresh_token" not in body and "id_token" not in body
    claims = await access_claims(facade, body["access_token"])
    assert claims["aud"] == resource and claims["sub"] == f"{idp.url}#alice"
    assert claims["client_id"] == AGENT and claims["iss"] == facade.url
    assert claims["exp"] - claims["iat"] == body["expires_in"]


async def test_the_granted_scope_is_the_requested_part_of_the_asserted_one(setup: Setup) -> None:
    """A request may narrow the asserted scope; offline_access and scopes the facade does not offer are
    never granted (no refresh token; not ours)."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read offline_access admin")
    status, body = await present(facade, assertion)
    assert (status, body["scope"]) == (200, "mcp:read")
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read mcp:write")
    status, body = await present(facade, assertion, scope="mcp:write")
    assert (status, body["scope"]) == (200, "mcp:write")


async def test_the_request_resource_names_it_when_the_assertion_has_none(setup: Setup) -> None:
    """An ID-JAG without `resource` (optional in the draft) is bound to the request's resource, which must
    be one of the facade's."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, scope="mcp:read")
    status, body = await present(facade, assertion, resource=facade.url + "/mcp/")  # an SDK's trailing slash
    assert status == 200, body
    assert (await access_claims(facade, body["access_token"]))["aud"] == facade.url + "/mcp"


async def state(facade: Facade) -> dict[str, str | None]:
    """Every stored key and value except the cache of the IdP's public key set (proxy/clients/jwks.py),
    which a refused assertion may fill like any other request: it holds no grant."""
    keys = sorted(key for key in await facade.keys() if ":jwks:" not in key and ":jwks-fetch:" not in key)
    return {key: await facade.redis.dump(key) for key in keys}


async def refused(facade: Facade, assertion: str, client: str | None = AGENT, **params: str) -> str:
    """Presenting `assertion` is 400 invalid_grant and leaves the store exactly as it was; the description."""
    before = await state(facade)
    status, body = await present(facade, assertion, client, **params)
    assert (status, body["error"]) == (400, "invalid_grant"), body
    assert await state(facade) == before
    return str(body["error_description"])


async def test_an_assertion_of_another_type_is_refused(setup: Setup) -> None:
    """JOSE typ must be oauth-id-jag+jwt: an id_token of the same IdP (typ JWT) is not a grant (RFC 8725 §3.11)."""
    facade, idp = setup
    idp.config.id_jag_header = {"typ": "JWT"}
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "typ" in await refused(facade, assertion)
    assert "typ" in await refused(facade, await idp.id_token())
    assert not {"discovery", "jwks"} & set(idp.state.arrivals)  # refused before the IdP's keys are sought


async def test_an_unlisted_issuer_is_refused(setup: Setup) -> None:
    """An `iss` the file does not list is refused before any key is fetched."""
    facade, idp = setup
    idp.config.id_jag_claims = {"iss": "https://stranger.example"}
    fetches = len(idp.state.arrivals)
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    fetches = len(idp.state.arrivals)
    assert "issuer is not a trusted" in await refused(facade, assertion)
    assert len(idp.state.arrivals) == fetches


async def test_a_signature_by_another_key_is_refused(setup: Setup) -> None:
    """Signed by a key that is not in the issuer's JWKS: forged."""
    facade, idp = setup
    idp.config.id_jag_foreign_key = True
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "kid" in await refused(facade, assertion)  # a kid the IdP's JWKS does not hold (after a refetch)
    idp.config.id_jag_header = {"kid": idp.state.keys[0].kid}  # another key claiming the IdP key's kid
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "signature" in await refused(facade, assertion)


async def test_an_assertion_for_another_authorization_server_is_refused(setup: Setup) -> None:
    """`aud` must be this issuer exactly (MCP §7.6.2): one made for another AS is not ours to honour."""
    facade, idp = setup
    assertion = await idp.id_jag("https://other-as.example", resource=facade.url + "/mcp")
    assert "aud" in await refused(facade, assertion)
    assertion = await idp.id_jag(facade.url + "/", resource=facade.url + "/mcp")
    assert "aud" in await refused(facade, assertion)
    idp.config.id_jag_claims = {"aud": [facade.url, "https://other-as.example"]}  # one grant for two servers
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "aud" in await refused(facade, assertion)


async def test_an_assertion_for_another_client_is_refused(setup: Setup, captured_logs: io.StringIO) -> None:
    """The `client_id` claim must be the authenticated client: another registered client cannot use it.
    The operator's log says which client and why, and never holds the assertion."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "client_id" in await refused(facade, assertion, OTHER)
    logged = captured_logs.getvalue()
    assert "idjag.rejected" in logged and OTHER in logged and assertion.split(".")[1] not in logged


async def test_an_expired_or_overlong_assertion_is_refused(setup: Setup) -> None:
    """exp in the past, or more than 10 minutes ahead (an ID-JAG is short-lived), or iat in the future."""
    facade, idp = setup
    now = int(time.time())
    for claims in ({"exp": now - 120, "iat": now - 400}, {"iat": now, "exp": now + 3600},
                   {"iat": now + 600, "exp": now + 700}):
        idp.config.id_jag_claims = claims
        assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
        await refused(facade, assertion)


async def test_a_replayed_assertion_is_refused(setup: Setup) -> None:
    """The jti is spent by the first use (across replicas: in the store); the second use is refused and
    changes nothing."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    status, _ = await present(facade, assertion)
    assert status == 200
    assert "used before" in await refused(facade, assertion)


async def test_an_assertion_without_jti_is_refused(setup: Setup) -> None:
    """MCP §7.4.2 requires replay protection: an assertion that cannot be spent is not accepted."""
    facade, idp = setup
    idp.config.id_jag_claims = {"jti": None}
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "jti" in await refused(facade, assertion)


async def test_a_resource_disagreement_is_refused(setup: Setup) -> None:
    """The request's resource must agree with the assertion's; an asserted resource that is not the
    facade's is refused too (MCP §7.6.2)."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "differs" in await refused(facade, assertion, resource="https://elsewhere.example/mcp")
    assertion = await idp.id_jag(facade.url, resource="https://elsewhere.example/mcp")
    assert "not a resource of this" in await refused(facade, assertion)


async def test_scopes_outside_the_intersection_are_refused(setup: Setup) -> None:
    """A requested scope the IdP did not assert (or the facade does not offer) is refused, not granted."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read")
    assert "intersection" in await refused(facade, assertion, scope="mcp:read mcp:write")
    status, _ = await present(facade, assertion, scope="mcp:read")  # refused above, so still unspent
    assert status == 200
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read admin")
    assert "intersection" in await refused(facade, assertion, scope="admin")


async def test_a_client_the_idp_entry_does_not_list_is_refused(make_enterprise_facade: EnterpriseFacade,
                                                              enterprise_idp: EnterpriseIdp) -> None:
    """`clients = [...]` limits who may present the IdP's assertions, even when the claim names them."""
    facade = await make_enterprise_facade(idp_toml=f'clients = ["{OTHER}"]')
    enterprise_idp.config.id_jag_client_id = AGENT
    assertion = await enterprise_idp.id_jag(facade.url, resource=facade.url + "/mcp")
    assert "may not be presented by this client" in await refused(facade, assertion)


async def test_unchanged_subjects_keep_the_idps_sub(make_enterprise_facade: EnterpriseFacade,
                                                   enterprise_idp: EnterpriseIdp) -> None:
    """`subject = "unchanged"`: the IdP that is also the upstream names its users as it always does."""
    facade = await make_enterprise_facade(idp_toml='subject = "unchanged"')
    enterprise_idp.config.id_jag_client_id = AGENT
    assertion = await enterprise_idp.id_jag(facade.url, resource=facade.url + "/mcp", user="bob")
    status, body = await present(facade, assertion)
    assert status == 200 and (await access_claims(facade, body["access_token"]))["sub"] == "bob"


async def test_the_presenting_client_authenticates_as_registered(setup: Setup) -> None:
    """A confidential client without its secret is 401 invalid_client; a DCR registration may not use the
    grant (unauthorized_client): no IdP stamps an id this server minted for whoever asked."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    async with facade.http.post(facade.url + "/token", data={"grant_type": JWT_BEARER, "assertion": assertion,
                                                             "client_id": AGENT}) as response:
        assert response.status == 401 and (await response.json())["error"] == "invalid_client"
    async with facade.http.post(facade.url + "/register", json={
            "redirect_uris": ["http://127.0.0.1/cb"], "client_name": "dcr"}) as response:
        dcr = (await response.json())["client_id"]
    idp.config.id_jag_client_id = dcr
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    async with facade.http.post(facade.url + "/token", data={"grant_type": JWT_BEARER, "assertion": assertion,
                                                             "client_id": dcr}) as response:
        assert response.status == 400 and (await response.json())["error"] == "unauthorized_client"
    status, _ = await present(facade, assertion, AGENT)  # refused above: the assertion's jti is still unspent
    assert status == 400  # (its client_id is the DCR client's, not AGENT's)


CLIENT_KEY = jwk.RSAKey.generate_key(2048, parameters={"kid": "client-key-1"})


@pytest.fixture
async def cimd_host(enterprise_pki: tls.TestPKI) -> AsyncIterator[str]:
    """Client ID Metadata Documents at https://localhost:<port>/: /client.json a public client's, and
    /signed.json one that declares private_key_jwt with an inline JWKS (ChatGPT's shape, keys inline)."""
    port = free_port()
    base = f"https://localhost:{port}"

    async def document(request: web.Request) -> web.Response:
        url = base + request.path
        body = {"client_id": url, "client_name": "Enterprise CLI", "redirect_uris": ["http://127.0.0.1/callback"],
                "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", JWT_BEARER]}
        if request.path == "/signed.json":
            body.update(token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="RS256",
                        jwks={"keys": [CLIENT_KEY.as_dict(private=False)]})
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/client.json", document)
    app.router.add_get("/signed.json", document)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=enterprise_pki.server_context()).start()
    yield base + "/client.json"
    await runner.cleanup()


def client_assertion(client_id: str, audience: str) -> str:
    """RFC 7523 §2.2: iss = sub = the client_id, aud the facade, signed with the client's own key."""
    now = int(time.time())
    return jwt.encode({"alg": "RS256", "kid": CLIENT_KEY.kid},
                      {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60,
                       "jti": secrets.token_urlsafe(12)}, CLIENT_KEY)


async def test_a_public_cimd_client_presents_an_assertion_naming_its_url(
        make_enterprise_facade: EnterpriseFacade, enterprise_idp: EnterpriseIdp, cimd_host: str) -> None:
    """MCP §5: a client not registered here uses its metadata document URL as client_id; the document
    resolves (fetched through the same guarded fetcher) and the assertion must name that URL."""
    facade = await make_enterprise_facade()
    enterprise_idp.config.id_jag_client_id = cimd_host
    assertion = await enterprise_idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read")
    status, body = await present(facade, assertion, None, client_id=cimd_host)
    assert status == 200, body
    assert (await access_claims(facade, body["access_token"]))["client_id"] == cimd_host


async def test_a_rotated_idp_key_is_found_by_one_refetch(setup: Setup) -> None:
    """The IdP rotates its key: an ID-JAG with the new kid makes the facade refetch the JWKS (at most once
    per refetch interval, shared by replicas) and is accepted."""
    facade, idp = setup
    assert facade.services.enterprise.key_sets is not None
    facade.services.enterprise.key_sets.refetch_interval_s = 1
    status, _ = await present(facade, await idp.id_jag(facade.url, resource=facade.url + "/mcp"))
    assert status == 200
    rotate_key(idp.state)
    await asyncio.sleep(1.1)
    jwks_fetches = idp.state.arrivals.count("jwks")
    status, body = await present(facade, await idp.id_jag(facade.url, resource=facade.url + "/mcp"))
    assert status == 200, body
    assert idp.state.arrivals.count("jwks") == jwks_fetches + 1


@pytest.mark.parametrize("endpoint", ["discovery", "jwks"])
async def test_an_unreachable_idp_is_a_503_not_a_refusal(setup: Setup, endpoint: str) -> None:
    """The IdP's discovery document or key set cannot be fetched: 503 temporarily_unavailable with
    Retry-After (the client retries; its assertion is not spent), nothing stored."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    idp.config.faults = {endpoint: "500"}
    before = await state(facade)
    async with facade.http.post(facade.url + "/token", data={"grant_type": JWT_BEARER, "assertion": assertion},
                                headers={"Authorization": basic(AGENT, AGENT_SECRET)}) as response:
        assert response.status == 503 and response.headers["Retry-After"]
        assert (await response.json())["error"] == "temporarily_unavailable"
    assert await state(facade) == before
    idp.config.faults = {}
    status, _ = await present(facade, assertion)  # the same assertion works once the IdP is back
    assert status == 200


async def test_a_private_key_jwt_cimd_client_must_sign_even_on_its_first_request(
        make_enterprise_facade: EnterpriseFacade, enterprise_idp: EnterpriseIdp, cimd_host: str) -> None:
    """A document that declares private_key_jwt binds the jwt-bearer request though the client never
    visited /authorize: without a client assertion 401 invalid_client (never downgraded to none); with
    one signed by its key, the ID-JAG earns a token."""
    facade = await make_enterprise_facade()
    signed = cimd_host.replace("/client.json", "/signed.json")
    enterprise_idp.config.id_jag_client_id = signed
    assertion = await enterprise_idp.id_jag(facade.url, resource=facade.url + "/mcp", scope="mcp:read")
    form = {"grant_type": JWT_BEARER, "assertion": assertion, "client_id": signed}
    async with facade.http.post(facade.url + "/token", data=form) as response:
        assert response.status == 401 and (await response.json())["error"] == "invalid_client"
    form.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                client_assertion=client_assertion(signed, facade.url))
    async with facade.http.post(facade.url + "/token", data=form) as response:
        body = await response.json()
        assert response.status == 200, body
    assert (await access_claims(facade, body["access_token"]))["client_id"] == signed


async def test_a_clients_own_access_token_lifetime_applies(make_enterprise_facade: EnterpriseFacade,
                                                          enterprise_idp: EnterpriseIdp) -> None:
    """`access_token_ttl_s` of a pre-registered client sets the lifetime of what its ID-JAGs earn."""
    clients = clients_toml().replace('grant_types = ["' + JWT_BEARER + '"]\n',
                                     'grant_types = ["' + JWT_BEARER + '"]\naccess_token_ttl_s = 120\n', 1)
    facade = await make_enterprise_facade(clients=clients)
    enterprise_idp.config.id_jag_client_id = AGENT
    status, body = await present(facade, await enterprise_idp.id_jag(facade.url, resource=facade.url + "/mcp"))
    assert (status, body["expires_in"]) == (200, 120), body
    claims = await access_claims(facade, body["access_token"])
    assert claims["exp"] - claims["iat"] == 120


async def test_two_concurrent_presentations_of_one_id_jag_get_one_token(setup: Setup) -> None:
    """Both requests pass every check at once; the jti is spent by one atomic SET NX, so exactly one
    gets an access token and the other invalid_grant."""
    facade, idp = setup
    assertion = await idp.id_jag(facade.url, resource=facade.url + "/mcp")
    answers = await asyncio.gather(present(facade, assertion), present(facade, assertion))
    assert sorted(status for status, _ in answers) == [200, 400]
    assert next(body for status, body in answers if status == 400)["error"] == "invalid_grant"
