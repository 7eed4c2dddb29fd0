"""The dev IdP as an enterprise IdP (leg 1 of SEP-990): RFC 8693 token exchange of its own id_token for an
ID-JAG shaped as draft-ietf-oauth-identity-assertion-authz-grant §3 says."""

from __future__ import annotations

import time

from joserfc import jwk, jwt

from proxy.devidp.idjag import DEMO_CLIENT_ID
from tests.enterprise.conftest import IDP_CLIENT, EnterpriseIdp


async def test_an_id_token_is_exchanged_for_an_id_jag_with_the_drafts_claims(enterprise_idp: EnterpriseIdp) -> None:
    """typ oauth-id-jag+jwt, signed by a key of the IdP's JWKS; iss, sub, aud = audience, client_id, resource,
    scope, jti, a short exp."""
    assertion = await enterprise_idp.id_jag("https://as.example", resource="https://mcp.example/mcp",
                                            scope="mcp:read", user="bob")
    async with enterprise_idp.http.get(enterprise_idp.url + "/jwks") as response:
        keys = jwk.KeySet.import_key_set(await response.json())
    token = jwt.decode(assertion, keys, algorithms=["RS256"])
    assert token.header["typ"] == "oauth-id-jag+jwt"
    claims = token.claims
    assert claims["iss"] == enterprise_idp.url and claims["sub"] == "bob" and claims["aud"] == "https://as.example"
    assert claims["client_id"] == DEMO_CLIENT_ID and claims["resource"] == "https://mcp.example/mcp"
    assert claims["scope"] == "mcp:read" and claims["jti"]
    assert 0 < claims["exp"] - time.time() <= 300


async def test_the_exchange_refuses_a_subject_token_it_did_not_issue(enterprise_idp: EnterpriseIdp) -> None:
    """A forged id_token (signed by another key) is invalid_grant; a missing audience invalid_request."""
    other = jwk.RSAKey.generate_key(2048)
    forged = jwt.encode({"alg": "RS256"}, {"iss": enterprise_idp.url, "aud": IDP_CLIENT, "sub": "mallory",
                                           "exp": int(time.time()) + 60}, other)
    response = await enterprise_idp.exchange(forged, audience="https://as.example")
    assert response.status == 400 and (await response.json())["error"] == "invalid_grant"
    response = await enterprise_idp.exchange(await enterprise_idp.id_token())
    assert response.status == 400 and (await response.json())["error"] == "invalid_request"


async def test_its_discovery_advertises_the_id_jag_token_type(enterprise_idp: EnterpriseIdp) -> None:
    """identity_chaining_requested_token_types_supported names id-jag, grant_types the token exchange."""
    async with enterprise_idp.http.get(enterprise_idp.url + "/.well-known/openid-configuration") as response:
        document = await response.json()
    assert "urn:ietf:params:oauth:token-type:id-jag" in document["identity_chaining_requested_token_types_supported"]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in document["grant_types_supported"]
