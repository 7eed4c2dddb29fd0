"""The development IdP as an enterprise IdP: leg 1 of MCP Enterprise-Managed Authorization (SEP-990).

An MCP client that signed its user in here trades the id_token for an Identity Assertion JWT
Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant §4.3) with RFC 8693 token exchange
at /token, authenticated as this IdP's client (the profile requires client authentication):

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    requested_token_type=urn:ietf:params:oauth:token-type:id-jag
    subject_token=<id_token>   subject_token_type=urn:ietf:params:oauth:token-type:id_token
    audience=<the facade's issuer>   resource=<MCP server, optional>   scope=<optional>

The answer is `{"issued_token_type": "…:id-jag", "access_token": <ID-JAG>, "token_type": "N_A", …}`.
The subject token is checked as the draft says (signature, issuer, not expired, `aud` = the authenticated
client). There is no policy: every user may reach every audience. Knobs in `DevIdpConfig` (`id_jag_*`)
let tests make the ID-JAG wrong in each way the facade must refuse.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from joserfc import jwk, jwt
from joserfc.errors import JoseError

if TYPE_CHECKING:
    from proxy.devidp.app import DevIdpConfig, DevIdpState

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TYP = "oauth-id-jag+jwt"
IDENTITY_CLAIMS = ("email", "email_verified", "name", "preferred_username")
DEMO_CLIENT_ID = "enterprise-demo"  # config/enterprise-demo.clients.toml registers it at the facade


def _error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400,
                             headers={"Cache-Control": "no-store"})


def _subject(config: DevIdpConfig, state: DevIdpState, token: str) -> dict[str, Any] | None:
    """The claims of an id_token this IdP issued to its client, still valid; None otherwise."""
    try:
        decoded = jwt.decode(token, jwk.KeySet(list(state.keys)), algorithms=["RS256"])
    except (JoseError, ValueError):
        return None
    claims = dict(decoded.claims)
    if claims.get("iss") != config.issuer or claims.get("aud") != config.client_id:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
        return None
    return claims


def exchange_for_id_jag(config: DevIdpConfig, state: DevIdpState, form: dict[str, str]) -> web.Response:
    """RFC 8693 §2.1 for an ID-JAG; the client has been authenticated by the caller."""
    if form.get("requested_token_type") != ID_JAG_TOKEN_TYPE:
        return _error("invalid_request", f"requested_token_type must be {ID_JAG_TOKEN_TYPE}")
    if form.get("subject_token_type") != ID_TOKEN_TYPE or not form.get("subject_token"):
        return _error("invalid_request", f"subject_token must be an id_token ({ID_TOKEN_TYPE})")
    audience = form.get("audience")
    if not audience:
        return _error("invalid_request", "audience (the resource authorization server's issuer) is required")
    user = _subject(config, state, form["subject_token"])
    if user is None:
        return _error("invalid_grant", "the subject token is not a valid id_token of this IdP for this client")
    now = int(time.time())
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16), "iss": config.issuer, "sub": user["sub"], "aud": audience,
        "client_id": config.id_jag_client_id, "iat": now, "exp": now + config.id_jag_ttl_s,
        **{name: user[name] for name in IDENTITY_CLAIMS if name in user},
    }
    if "auth_time" in user:
        claims["auth_time"] = user["auth_time"]
    if form.get("resource"):
        claims["resource"] = form["resource"]
    if form.get("scope"):
        claims["scope"] = form["scope"]
    for name, value in config.id_jag_claims.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    key = jwk.RSAKey.generate_key(2048, auto_kid=True) if config.id_jag_foreign_key else state.keys[0]
    header = {"alg": "RS256", "kid": key.kid, "typ": ID_JAG_TYP, **config.id_jag_header}
    assertion = jwt.encode({k: v for k, v in header.items() if v is not None}, claims, key)
    body: dict[str, Any] = {"issued_token_type": ID_JAG_TOKEN_TYPE, "access_token": assertion, "token_type": "N_A",
                            "expires_in": config.id_jag_ttl_s}
    if "scope" in claims:
        body["scope"] = claims["scope"]
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
