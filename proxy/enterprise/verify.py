"""An ID-JAG's signature, times and single use, against the keys of the IdP that issued it.

The JOSE header's `typ` is read first (an id_token or access token of the same IdP stops there), then
the unverified `iss` picks the IdP entry; an issuer that is not listed is refused before any fetch, so a
stranger's assertion costs nothing but parsing. The key set comes from the IdP's `jwks_uri` (its entry,
else its discovery document), fetched, cached and refreshed on an unknown `kid` by the shared key-set
cache; the signature, algorithm allow-list, `exp`/`iat`/`nbf` bounds and `jti` single use are the
shared assertion checks. An IdP that cannot be reached is a 503 (retry later), never a refusal of the
client's grant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwk, jwt
from joserfc.errors import JoseError

from proxy.clients.fetch import FetchFailed, FetchRefused
from proxy.enterprise.discovery import DiscoveryFailed, JwksLocator
from proxy.enterprise.idjag import check_typ
from proxy.enterprise.idps import EnterpriseIdp, EnterpriseIdps
from proxy.enterprise.keys import KeySetUnusable, public_key_set
from proxy.errors import InvalidGrant, UpstreamUnavailable

MAX_ASSERTION_BYTES = 16 * 1024
MAX_LIFETIME_S = 600  # an ID-JAG is short-lived (MCP §7.4.2); Okta's last 5 minutes
LEEWAY_S = 60
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
Claims = dict[str, Any]


@dataclass
class Enterprise:
    """The runtime of enterprise-managed authorization: the trusted IdPs and how their keys are found."""

    idps: EnterpriseIdps = field(default_factory=EnterpriseIdps)
    locator: JwksLocator | None = None
    keys: Any = None  # the shared key-set cache (proxy/clients/jwks.py)
    replay: Any = None  # the shared single-use jti store (proxy/token/assertions.py)


def _segment(part: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None


def unverified(assertion: str) -> tuple[dict[str, Any], Claims]:
    """The JOSE header and claims as sent, to pick the keys; nothing here is trusted yet."""
    parts = assertion.split(".")
    if len(assertion) > MAX_ASSERTION_BYTES or len(parts) != 3:
        raise InvalidGrant("The assertion is not a compact signed JWT.")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidGrant("The assertion is not a compact signed JWT.")
    return header, claims


async def verified_id_jag(enterprise: Enterprise, assertion: str) -> tuple[EnterpriseIdp, Claims]:
    header, claims = unverified(assertion)
    check_typ(header)
    idp = enterprise.idps.get(claims.get("iss"))
    if idp is None:
        raise InvalidGrant("The assertion's issuer is not a trusted enterprise IdP.")
    assert enterprise.locator is not None
    try:
        jwks_uri = await enterprise.locator.jwks_uri(idp)
    except DiscoveryFailed as exc:
        raise UpstreamUnavailable("The enterprise IdP's keys could not be fetched; retry later.",
                                  detail=str(exc)) from None
    return idp, await _verified(enterprise, idp, jwks_uri, assertion)


async def _verified(enterprise: Enterprise, idp: EnterpriseIdp, jwks_uri: str, assertion: str) -> Claims:
    # TEMPORARY until pkjwt's shared modules are merged (proxy/clients/jwks.py, proxy/token/assertions.py).
    assert enterprise.locator is not None
    try:
        fetched = await enterprise.locator.fetcher.fetch(jwks_uri)
        keys = public_key_set(fetched.body)
    except (FetchFailed, FetchRefused, KeySetUnusable) as exc:
        raise UpstreamUnavailable("The enterprise IdP's keys could not be fetched; retry later.",
                                  detail=str(exc)) from None
    try:
        token = jwt.decode(assertion, jwk.KeySet(keys), algorithms=list(ALGORITHMS))
    except (JoseError, ValueError) as exc:
        raise InvalidGrant("The assertion's signature is not by a key of its issuer.") from exc
    claims = dict(token.claims)
    now = time.time()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or exp <= now - LEEWAY_S:
        raise InvalidGrant("The assertion has expired.")
    if not isinstance(iat, int) or iat > now + LEEWAY_S or exp - iat > MAX_LIFETIME_S:
        raise InvalidGrant("The assertion's iat is missing, in the future, or too long before its exp.")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or nbf > now + LEEWAY_S):
        raise InvalidGrant("The assertion is not valid yet (nbf).")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise InvalidGrant("The assertion has no jti: it could not be used only once.")
    return claims


async def spend_jti(enterprise: Enterprise, idp: EnterpriseIdp, claims: Claims) -> None:
    # TEMPORARY until pkjwt's shared single-use jti store is merged.
    store = enterprise.replay
    digest = hashlib.sha256(f"{idp.issuer}\0{claims['jti']}".encode()).hexdigest()
    ttl = max(1, int(claims["exp"] - time.time()) + LEEWAY_S)
    if not await store.redis.set(store.key("idjag-jti", digest), "1", nx=True, ex=ttl):
        raise InvalidGrant("The assertion was used before (its jti is spent).")
