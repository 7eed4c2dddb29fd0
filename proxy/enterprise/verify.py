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
import json
from dataclasses import dataclass, field
from typing import Any

from proxy.enterprise.discovery import DiscoveryFailed, JwksLocator
from proxy.enterprise.idjag import check_typ
from proxy.enterprise.idps import EnterpriseIdp, EnterpriseIdps
from proxy.errors import InvalidGrant, UpstreamUnavailable

MAX_ASSERTION_BYTES = 16 * 1024
MAX_LIFETIME_S = 600  # an ID-JAG is short-lived (MCP §7.4.2); Okta's last 5 minutes
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
    raise NotImplementedError  # the shared assertion checks (pkjwt: proxy/token/assertions.py)


async def spend_jti(enterprise: Enterprise, idp: EnterpriseIdp, claims: Claims) -> None:
    raise NotImplementedError  # the shared single-use jti store (pkjwt: proxy/token/assertions.py)
