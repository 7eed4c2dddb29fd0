"""The facade's own tokens: an RFC 9068 access token and a re-signed OIDC id_token.

The id_token is minted here, never relayed: `iss` is the facade's issuer, `aud` the downstream client,
the nonce the client's own, the signature the facade's key from /jwks. That is what strict clients
(oauth4webapi) check, and what an IdP-signed id_token behind a facade gets wrong.

Identity claims follow the granted scopes (OIDC Core §5.4, see `release`): `openid` alone gives `sub`,
`email` the email claims, `profile` the profile claims; without `openid` there is no id_token. The
access token carries no identity claims at all (RFC 9068 §2.2.1 allows them; the resource server
asks /userinfo, where the same rule applies), so it never holds more than the scopes release.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from proxy.access_policy import token_attributes
from proxy.claims import OPENID, identity_claims
from proxy.clients.document import is_client_id_url
from proxy.state import Services

Json = dict[str, Any]


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 for the *256 algs we sign with."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def access_token_ttl_s(s: Services, client_id: str) -> int:
    """This client's access-token lifetime: `access_token_ttl_s` of a pre-registered client, the first
    PROXY_CIMD_ACCESS_TOKEN_TTL pattern matching a URL client's host, else PROXY_ACCESS_TOKEN_TTL_S.
    Read at every issue, so a changed setting applies to the next token, never to one already issued."""
    pre = s.clients.preregistered(client_id)
    if pre is not None and pre.access_token_ttl_s is not None:
        return pre.access_token_ttl_s
    if is_client_id_url(client_id):
        return s.settings.cimd_access_token_ttl_s((urlsplit(client_id).hostname or "").lower())
    return s.settings.access_token_ttl_s


def access_token(s: Services, grant: Json, *, scope: str, family: str, now: int,
                 upstream: Json | None) -> tuple[str, int]:
    """(token, lifetime). In `upstream` mode the IdP's own token is handed through (README trade-off)."""
    settings = s.settings
    ttl = access_token_ttl_s(s, grant["client_id"])
    if settings.access_token_mode == "upstream":
        upstream = upstream or {}
        expires_at = upstream.get("expires_at")
        lifetime = max(0, int(expires_at) - now) if expires_at else ttl
        return upstream["access_token"], min(lifetime, ttl)
    claims = {
        "iss": settings.issuer,
        "sub": grant["sub"],
        "aud": grant["resource"],
        "client_id": grant["client_id"],
        "scope": scope,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
        "sid": family,  # OIDC sid: the facade's session is the refresh family (README: Refresh tokens)
        "auth_time": grant["auth_time"],
    }
    if s.settings.policy_file is not None:  # what the access policy reads: PROXY_POLICY_FILE
        claims.update(token_attributes(grant.get("claims") or {}, s.clients.kind(grant["client_id"])))
    return s.keyset.sign(claims, typ="at+jwt"), ttl


def id_token(s: Services, grant: Json, *, access: str, nonce: str | None, family: str, now: int,
             scope: str | None = None) -> str:
    """`scope`: what this token response grants (a refresh may narrow it); the grant's scope when None."""
    claims: Json = identity_claims(grant.get("claims") or {}, grant.get("scope", "") if scope is None else scope)
    claims.update(
        iss=s.settings.issuer,
        sub=grant["sub"],
        aud=grant["client_id"],
        azp=grant["client_id"],
        iat=now,
        exp=now + s.settings.access_token_ttl_s,
        auth_time=grant["auth_time"],
        at_hash=at_hash(access),
        sid=family,
    )
    if nonce:
        claims["nonce"] = nonce
    return s.keyset.sign(claims)


def token_response(s: Services, grant: Json, *, family: str, refresh_token: str, scope: str | None = None,
                   nonce: str | None = None, with_id_token: bool = True, upstream: Json | None = None) -> Json:
    """The RFC 6749 §5.1 body; `expires_in` is the real lifetime, never longer."""
    now = int(time.time())
    scope = scope if scope is not None else grant["scope"]
    token, lifetime = access_token(s, grant, scope=scope, family=family, now=now, upstream=upstream)
    body: Json = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope,
                  "refresh_token": refresh_token}
    if with_id_token and OPENID in scope.split():
        body["id_token"] = id_token(s, grant, access=token, nonce=nonce, family=family, now=now, scope=scope)
    return body
