"""What an Identity Assertion JWT Authorization Grant must say, once its signature and times are proven
(draft-ietf-oauth-identity-assertion-authz-grant §3 and §4.4.1; MCP Enterprise-Managed Authorization
§5.1, §7.2.1 and §7.6.2). Each refusal is `InvalidGrant` with a description that says what was wrong;
nothing here touches the store.

- JOSE `typ` is `oauth-id-jag+jwt` (RFC 8725 §3.11: explicit typing, so an id_token or an access token
  of the same IdP is never taken for a grant);
- `aud` is the facade's issuer, exactly (a single value, or an array of that one value);
- `client_id` is the client presenting it, and one the IdP's entry allows;
- `sub` is a non-empty string;
- the access token's audience is the assertion's `resource` (one of the facade's resources); a request's
  `resource` must agree with it, and names the resource only when the assertion has none;
- the scope is what the client asked for (default: everything asserted), and every requested scope must
  be asserted by the IdP, offered by the facade and allowed to the client. `offline_access` is never
  granted: this grant issues no refresh token (the draft §4.4.3 SHOULD NOT; MCP requires single-use
  `jti`, so the client asks its IdP for a new ID-JAG instead of re-presenting the old one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy import scopes
from proxy.enterprise.idps import EnterpriseIdp
from proxy.errors import InvalidGrant, InvalidScope
from proxy.resources import normalise

ID_JAG_TYP = "oauth-id-jag+jwt"
NEVER_GRANTED = frozenset({"offline_access"})  # no refresh token from this grant


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the access token will say."""

    subject: str
    resource: str  # the configured resource URL: the token's `aud`
    scope: str
    auth_time: int | None


def check_typ(header: Mapping[str, Any]) -> None:
    """Before anything else is read: a token of another type is not even looked up."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != ID_JAG_TYP:  # RFC 7515 §4.1.9: media types compare caseless
        raise InvalidGrant(f"The assertion is not an ID-JAG: its JOSE typ must be {ID_JAG_TYP}.")


def check_audience(claims: Mapping[str, Any], issuer: str) -> None:
    aud = claims.get("aud")
    if aud != issuer and aud != [issuer]:
        raise InvalidGrant("The assertion's aud is not this authorization server's issuer.")


def check_client(claims: Mapping[str, Any], idp: EnterpriseIdp, client_id: str) -> None:
    if claims.get("client_id") != client_id:
        raise InvalidGrant("The assertion's client_id is not the client presenting it.")
    if not idp.allows(client_id):
        raise InvalidGrant("This enterprise IdP's assertions may not be presented by this client.")


def _resource(claims: Mapping[str, Any], sent: str | None, resources: Mapping[str, str],
              allowed: tuple[str, ...] | None) -> str:
    asserted = claims.get("resource")
    if asserted is None:
        candidates: list[str] = []
    elif isinstance(asserted, str):
        candidates = [asserted]
    elif isinstance(asserted, list) and asserted and all(isinstance(item, str) for item in asserted):
        candidates = list(asserted)
    else:
        raise InvalidGrant("The assertion's resource claim is not a URI or an array of URIs.")
    if sent is not None:
        if candidates and normalise(sent) not in {normalise(c) for c in candidates}:
            raise InvalidGrant("The resource parameter differs from the assertion's resource.")
        chosen = sent
    elif len(candidates) == 1:
        chosen = candidates[0]
    elif candidates:
        raise InvalidGrant("The assertion names several resources: send the resource parameter to pick one.")
    else:
        raise InvalidGrant("Neither the assertion nor the request names the resource (MCP server).")
    canonical = resources.get(normalise(chosen))
    if canonical is None:
        raise InvalidGrant("The assertion's resource is not a resource of this authorization server.")
    if allowed is not None and canonical not in allowed:
        raise InvalidGrant("This client may not use the assertion's resource.")
    return canonical


def _scope(claims: Mapping[str, Any], requested: str | None, offered: tuple[str, ...],
           allowed: tuple[str, ...] | None) -> str:
    asserted_value = claims.get("scope", "")
    if not isinstance(asserted_value, str):
        raise InvalidGrant("The assertion's scope claim is not a space-separated string.")
    try:
        asserted = scopes.parse(asserted_value)
        wanted = scopes.parse(requested)
    except InvalidScope:
        raise InvalidGrant("The scope holds a character RFC 6749 §3.3 does not allow.") from None
    grantable = [word for word in asserted if word in offered and word not in NEVER_GRANTED
                 and (allowed is None or word in allowed)]
    if not wanted:
        return " ".join(grantable)
    outside = [word for word in wanted if word not in grantable]
    if outside:
        raise InvalidGrant(f"Scope {outside[0]!r} is not in the intersection of the assertion's scopes, "
                           "this server's and this client's.")
    return " ".join(wanted)


def authorization(claims: Mapping[str, Any], idp: EnterpriseIdp, form: Mapping[str, str], *,
                  resources: Mapping[str, str], offered: tuple[str, ...],
                  client_resources: tuple[str, ...] | None = None,
                  client_scopes: tuple[str, ...] | None = None) -> Authorization:
    """The access token a verified, correctly addressed assertion earns (`resources`: normalised ->
    configured URL; `offered`: the facade's scopes; `client_*`: a pre-registered client's limits)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidGrant("The assertion has no sub.")
    resource = _resource(claims, form.get("resource"), resources, client_resources)
    scope = _scope(claims, form.get("scope"), offered, client_scopes)
    auth_time = claims.get("auth_time")
    return Authorization(idp.subject_of(sub), resource, scope,
                         auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None)
