"""private_key_jwt (RFC 7523 §2.2) through the whole facade: a URL client whose document declares it (its
keys served by a real aiohttp server over TLS on 127.0.0.1 as its jwks_uri, or inline), and
pre-registered clients with a jwks_uri or jwks, at /token (authorization_code, refresh_token,
client_credentials) and /revoke. A client registered with keys never falls back to `none`; every
refused assertion is 401 invalid_client and changes no stored state."""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwk, jwt

from proxy.clients.document import SIGNING_ALGS
from proxy.discovery.documents import ASSERTION_SIGNING_ALGS
from proxy.token.assertions import ALGORITHMS, CLIENT_ASSERTION_TYPE
from tests import helpers
from tests.clients.conftest import Answer, DocumentHost, valid_document
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Authorization, Client, basic
from tests.security.conftest import html_error

KEY = jwk.generate_key("RSA", 2048, parameters={"kid": "chatgpt-1"})
OTHER = jwk.generate_key("RSA", 2048, parameters={"kid": "chatgpt-1"})  # same kid, not the client's key


@pytest.fixture
def local_docs(doc_host: DocumentHost) -> DocumentHost:
    doc_host.name = "localhost"
    return doc_host


def cimd_settings(doc_host: DocumentHost, **overrides: Any) -> dict[str, Any]:
    return {"cimd_dev_hosts": "localhost", "cimd_ca_file": str(doc_host.pki.ca_file), **overrides}


def serve_keys(doc_host: DocumentHost, path: str, *keys: Any) -> str:
    doc_host.answers[path] = Answer(body=json.dumps({"keys": [k.as_dict(private=False) for k in keys]}).encode())
    return doc_host.url(path)


def chatgpt_document(doc_host: DocumentHost, **members: Any) -> str:
    """The shape ChatGPT publishes for a connector: private_key_jwt, RS256, a jwks_uri of its own."""
    jwks_uri = serve_keys(doc_host, "/oauth/app/jwks.json", KEY)
    url = doc_host.url("/oauth/app/client.json")
    return doc_host.serve("/oauth/app/client.json", valid_document(
        url, client_name="ChatGPT", redirect_uris=["http://127.0.0.1:5599/callback"],
        token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="RS256",
        jwks_uri=jwks_uri, **members), headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})


def assertion(client_id: str, aud: str, key: Any = KEY, alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(12), **overrides}
    return jwt.encode({"alg": alg, "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key,
                      algorithms=[alg])


def unsigned(client_id: str, aud: str, alg: str = "none") -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return b64({"alg": alg, "kid": KEY.kid}) + "." + b64(
        {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60, "jti": secrets.token_urlsafe(8)}) + "."


def authn(client_id: str, token: str) -> dict[str, str]:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": token, "client_id": client_id}


def code_form(auth: Authorization) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri}


async def url_client(facade: Facade, url: str) -> Client:
    client = facade.client()
    client.client_id = url
    return client


async def stored_state(facade: Facade) -> dict[str, Any]:
    """Every key the facade holds, with its type, value and TTL (tests.helpers.stored_state)."""
    return await helpers.stored_state(facade.redis)


async def revoke(facade: Facade, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with facade.http.post(facade.url + "/revoke", data=form, headers=headers) as response:
        return response.status, await response.json(content_type=None) if response.status != 200 else None


def test_the_advertised_algs_are_the_verified_ones() -> None:
    """Metadata, document validation and the verifier name the same asymmetric algs (three modules that
    the layout keeps apart)."""
    assert list(ALGORITHMS) == ASSERTION_SIGNING_ALGS == list(SIGNING_ALGS)


async def test_chatgpt_shaped_client_signs_in_refreshes_and_revokes_with_its_key(
        make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """/authorize accepts the document (no more 'must be none here'); the code, the refresh and the
    revocation each authenticate with a fresh assertion, aud = the issuer; the access token names the
    URL client."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = chatgpt_document(local_docs)
    client = await url_client(facade, url)
    auth = await client.authorize()
    assert "code" in auth.params, auth.location
    status, tokens, _ = await client.token({**code_form(auth), **authn(url, assertion(url, facade.url))})
    assert status == 200, tokens
    assert jwt.decode(tokens["access_token"], await client.jwks()).claims["client_id"] == url
    status, refreshed, _ = await client.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                               **authn(url, assertion(url, facade.url))})
    assert status == 200, refreshed
    status, _ = await revoke(facade, {"token": refreshed["refresh_token"], **authn(url, assertion(url, facade.url))})
    assert status == 200
    status, body, _ = await client.token({"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
                                          **authn(url, assertion(url, facade.url))})
    assert status == 400 and body["error"] == "invalid_grant"
    assert [path for path, _ in local_docs.hits].count("/oauth/app/jwks.json") == 1  # cached in Redis


async def test_token_endpoint_url_is_an_accepted_audience(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """aud may be the token endpoint URL (OIDC Core §9, what several client libraries send)."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = chatgpt_document(local_docs)
    auth = await (await url_client(facade, url)).authorize()
    status, body, _ = await facade.client().token({**code_form(auth),
                                                   **authn(url, assertion(url, facade.url + "/token"))})
    assert status == 200, body


@pytest.fixture
async def signed_in(make_facade: FacadeFactory, local_docs: DocumentHost) -> tuple[Facade, str, Authorization]:
    """A ChatGPT-shaped client with a code in hand; its key set already cached (a /revoke primed it)."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = chatgpt_document(local_docs)
    auth = await (await url_client(facade, url)).authorize()
    status, _ = await revoke(facade, {"token": "unknown-token", **authn(url, assertion(url, facade.url))})
    assert status == 200
    return facade, url, auth


REFUSED: dict[str, Any] = {
    "no client authentication at all": lambda url, aud: {"client_id": url},
    "a secret instead of an assertion": lambda url, aud: {"client_id": url, "client_secret": "guess"},
    "signed by another key under its kid": lambda url, aud: authn(url, assertion(url, aud, OTHER)),
    "a foreign aud": lambda url, aud: authn(url, assertion(url, "https://other-as.example.com")),
    "expired": lambda url, aud: authn(url, assertion(url, aud, exp=int(time.time()) - 300)),
    "no exp": lambda url, aud: authn(url, assertion(url, aud, exp=None)),
    "exp an hour ahead": lambda url, aud: authn(url, assertion(url, aud, exp=int(time.time()) + 3600)),
    "alg none": lambda url, aud: authn(url, unsigned(url, aud)),
    "HS256 keyed with the public key": lambda url, aud: authn(url, jwt.encode(
        {"alg": "HS256", "kid": KEY.kid}, {"iss": url, "sub": url, "aud": aud, "exp": int(time.time()) + 60,
                                           "jti": "x"},
        jwk.OctKey.import_key(json.dumps(KEY.as_dict(private=False)).encode()), algorithms=["HS256"])),
    "another client's iss": lambda url, aud: authn(url, assertion(url, aud, iss="https://localhost/other.json")),
    "an unsupported assertion type": lambda url, aud: {**authn(url, assertion(url, aud)),
                                                       "client_assertion_type": "urn:example:saml"},
    "client_id differs from sub": lambda url, aud: {**authn(url, assertion(url, aud)),
                                                    "client_id": "https://localhost/other.json"},
}


@pytest.mark.parametrize("case", REFUSED.keys())
async def test_refused_assertion_is_invalid_client_and_changes_nothing(
        signed_in: tuple[Facade, str, Authorization], case: str) -> None:
    """Each refusal is 401 invalid_client (no Basic challenge: the client did not use Basic), at /token
    and at /revoke, and the store is byte for byte as before: the code still redeems afterwards."""
    facade, url, auth = signed_in
    before = await stored_state(facade)
    status, body, response = await facade.client().token({**code_form(auth), **REFUSED[case](url, facade.url)})
    assert (status, body["error"]) == (401, "invalid_client"), body
    assert "WWW-Authenticate" not in response.headers
    status, body = await revoke(facade, {"token": "t", **REFUSED[case](url, facade.url)})
    assert (status, body["error"]) == (401, "invalid_client"), body
    helpers.assert_unchanged(before, await stored_state(facade))
    status, body, _ = await facade.client().token({**code_form(auth), **authn(url, assertion(url, facade.url))})
    assert status == 200, body


async def test_replayed_assertion_is_invalid_client(signed_in: tuple[Facade, str, Authorization]) -> None:
    """The same assertion twice: the second is refused (jti single use until exp), the first's effect stands."""
    facade, url, auth = signed_in
    token = assertion(url, facade.url)
    status, tokens, _ = await facade.client().token({**code_form(auth), **authn(url, token)})
    assert status == 200
    before = await stored_state(facade)
    status, body, _ = await facade.client().token({"grant_type": "refresh_token",
                                                   "refresh_token": tokens["refresh_token"], **authn(url, token)})
    assert (status, body["error"]) == (401, "invalid_client") and "used before" in body["error_description"]
    helpers.assert_unchanged(before, await stored_state(facade))


async def test_basic_and_an_assertion_together_is_invalid_request(signed_in: tuple[Facade, str, Authorization]) -> None:
    """RFC 6749 §2.3: one method per request."""
    facade, url, auth = signed_in
    status, body, _ = await facade.client().token({**code_form(auth), **authn(url, assertion(url, facade.url))},
                                                  {"Authorization": basic("x", "y")})
    assert (status, body["error"]) == (400, "invalid_request")


async def test_public_client_sending_an_assertion_is_refused(make_facade: FacadeFactory,
                                                             local_docs: DocumentHost) -> None:
    """A document that declares `none` has no keys here: an assertion it sends cannot be checked, so it is
    401 invalid_client rather than silently ignored."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.serve("/public.json")
    auth = await (await url_client(facade, url)).authorize()
    status, body, _ = await facade.client().token({**code_form(auth), **authn(url, assertion(url, facade.url))})
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = await facade.client().token({**code_form(auth), "client_id": url})
    assert status == 200, body


async def test_a_document_offering_several_methods_is_refused_not_downgraded(
        make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """token_endpoint_auth_method is one string (RFC 7591 §2). A document listing private_key_jwt and none
    is refused at /authorize (an HTML page naming the rule) rather than treated as public: accepting
    `none` would let whoever holds a code or refresh token of the client redeem it without its key."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.url("/both.json")
    local_docs.serve("/both.json", valid_document(url, token_endpoint_auth_method=["private_key_jwt", "none"],
                                                  jwks_uri=serve_keys(local_docs, "/both-jwks.json", KEY)))
    response, _ = await (await url_client(facade, url)).start()
    assert response.status == 400 and html_error(await response.text()) == "invalid_client"
    assert "one string" in await response.text()


async def test_key_rotation_is_found_with_one_refetch(signed_in: tuple[Facade, str, Authorization],
                                                      local_docs: DocumentHost) -> None:
    """The client rotates to a new kid: the first assertion signed with it makes one refetch, and works."""
    facade, url, auth = signed_in
    new = jwk.generate_key("EC", "P-256", parameters={"kid": "chatgpt-2"})
    serve_keys(local_docs, "/oauth/app/jwks.json", new, KEY)
    await facade.redis.delete(*[k for k in await facade.keys() if ":jwks-fetch:" in k])  # the interval passed
    fetches = [p for p, _ in local_docs.hits].count("/oauth/app/jwks.json")
    status, body, _ = await facade.client().token({**code_form(auth),
                                                   **authn(url, assertion(url, facade.url, new, "ES256"))})
    assert status == 200, body
    assert [p for p, _ in local_docs.hits].count("/oauth/app/jwks.json") == fetches + 1


async def test_inline_jwks_document(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """A document with its keys inline (`jwks`) authenticates with them and fetches no key set."""
    facade = await make_facade(**cimd_settings(local_docs))
    key = jwk.generate_key("OKP", "Ed25519", parameters={"kid": "ed"})
    url = local_docs.url("/inline.json")
    local_docs.serve("/inline.json", valid_document(url, token_endpoint_auth_method="private_key_jwt",
                                                    jwks={"keys": [key.as_dict(private=False)]}))
    auth = await (await url_client(facade, url)).authorize()
    status, body, _ = await facade.client().token({**code_form(auth),
                                                   **authn(url, assertion(url, facade.url, key, "Ed25519"))})
    assert status == 200, body
    status, body, _ = await facade.client().token({**code_form(auth), "client_id": url})
    assert status == 401


async def test_document_switching_to_keys_applies_to_grants_already_held(
        make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """The requirement is the document's as /authorize last read it: a code issued while the document
    said `none` needs the key once the new document is read (never the other way round silently)."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = chatgpt_document(local_docs)
    document = json.loads(local_docs.answers["/oauth/app/client.json"].body or b"{}")
    local_docs.serve("/oauth/app/client.json", {**document, "token_endpoint_auth_method": "none"},
                     headers={"Content-Type": "application/json", "Cache-Control": "max-age=0"})
    client = await url_client(facade, url)
    auth = await client.authorize()
    chatgpt_document(local_docs)
    facade_cache = [k for k in await facade.keys() if ":cimd:" in k]
    await facade.redis.delete(*facade_cache)
    await client.start()  # /authorize reads the document again
    status, body, _ = await facade.client().token({**code_form(auth), "client_id": url})
    assert (status, body["error"]) == (401, "invalid_client")


def clients_file(tmp_path: Path, jwks_uri: str, inline: dict[str, Any]) -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(f'''
[[client]]
id = "agent"
name = "Nightly agent"
jwks_uri = "{jwks_uri}"
grant_types = ["client_credentials"]
access_token_ttl_s = 600

[[client]]
id = "web-app"
name = "Web app"
redirect_uris = ["http://127.0.0.1:5599/callback"]
jwks = '{json.dumps(inline)}'
''')
    return path


async def test_preregistered_clients_with_keys(make_facade: FacadeFactory, local_docs: DocumentHost,
                                               tmp_path: Path) -> None:
    """A pre-registered client with a jwks_uri uses client_credentials with an assertion (and gets its own
    access-token lifetime); one with an inline jwks signs in; without the assertion both are 401; the
    metadata advertises private_key_jwt even with CIMD off."""
    machine = jwk.generate_key("EC", "P-256", parameters={"kid": "agent-1"})
    web = jwk.generate_key("RSA", 2048, parameters={"kid": "web-1"})
    path = clients_file(tmp_path, serve_keys(local_docs, "/agent/jwks.json", machine),
                        {"keys": [web.as_dict(private=False)]})
    facade = await make_facade(**cimd_settings(local_docs, clients_file=str(path), cimd=False))
    client = facade.client()
    status, body, _ = await client.token({"grant_type": "client_credentials", "scope": "",
                                          **authn("agent", assertion("agent", facade.url, machine, "ES256"))})
    assert status == 200, body
    claims = jwt.decode(body["access_token"], await client.jwks()).claims
    assert claims["sub"] == "client:agent" and claims["exp"] - claims["iat"] == 600 and body["expires_in"] == 600
    status, body, _ = await client.token({"grant_type": "client_credentials", "client_id": "agent"})
    assert (status, body["error"]) == (401, "invalid_client")
    client.client_id = "web-app"
    auth = await client.authorize()
    status, body, _ = await client.token({**code_form(auth), "client_id": "web-app"})
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = await client.token({**code_form(auth), **authn("web-app", assertion("web-app", facade.url, web))})
    assert status == 200, body
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        metadata = await response.json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in metadata["revocation_endpoint_auth_methods_supported"]


async def test_no_private_key_jwt_advertised_when_no_client_can_use_it(make_facade: FacadeFactory) -> None:
    """CIMD off and no pre-registered client with keys: neither the method nor its algs are advertised."""
    facade = await make_facade(cimd=False)
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        metadata = await response.json()
    assert "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]
    assert "token_endpoint_auth_signing_alg_values_supported" not in metadata


async def test_cimd_access_token_lifetime_by_host_pattern(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """PROXY_CIMD_ACCESS_TOKEN_TTL gives URL clients of matching hosts their own lifetime (token and
    expires_in agree); a DCR client keeps PROXY_ACCESS_TOKEN_TTL_S."""
    facade = await make_facade(**cimd_settings(local_docs, cimd_access_token_ttl="other.test=60 local*=28800"))
    url = chatgpt_document(local_docs)
    auth = await (await url_client(facade, url)).authorize()
    status, body, _ = await facade.client().token({**code_form(auth), **authn(url, assertion(url, facade.url))})
    assert status == 200 and body["expires_in"] == 28800
    claims = jwt.decode(body["access_token"], await facade.client().jwks()).claims
    assert claims["exp"] - claims["iat"] == 28800
    tokens = await facade.client().signed_in()
    assert tokens["expires_in"] == facade.settings.access_token_ttl_s == 3600


async def test_check_fetches_each_preregistered_clients_key_set(local_docs: DocumentHost, tmp_path: Path) -> None:
    """`oauth-facade check` fetches a pre-registered client's jwks_uri as /token will and counts its keys;
    a key set that is unreachable or holds private material is a problem (exit 1) naming the client."""
    from proxy.check import check
    from proxy.settings import Settings

    def checked(jwks_uri: str) -> Settings:
        path = clients_file(tmp_path, jwks_uri, {"keys": [OTHER.as_dict(private=False)]})
        return Settings(_env_file=None, clients_file=path, **cimd_settings(local_docs))  # type: ignore[call-arg]

    good = serve_keys(local_docs, "/agent/jwks.json", KEY)
    err = io.StringIO()
    assert await check(checked(good), io.StringIO(), err) == 0, err.getvalue()
    assert f"note: client agent: 1 key(s) from {good}" in err.getvalue()

    local_docs.answers["/agent/private.json"] = Answer(body=json.dumps({"keys": [KEY.as_dict(private=True)]}).encode())
    for uri, what in ((local_docs.url("/agent/private.json"), "is unusable"),
                      ("https://localhost:9/jwks.json", "could not be fetched")):
        err = io.StringIO()
        assert await check(checked(uri), io.StringIO(), err) == 1
        assert f"problem: PROXY_CLIENTS_FILE: client agent: its jwks_uri {uri} {what}: " in err.getvalue()
