"""An ID-JAG's signature, times and single use, against the keys of the enterprise IdP that issued it.

The JOSE `typ` is read first (an id_token or access token of the same IdP stops there), then the
unverified `iss` picks the IdP entry: an issuer that is not listed is refused before any fetch, so a
stranger's assertion costs nothing but parsing. The keys come from the IdP's `jwks_uri` (its entry, else
its discovery document) through the shared key-set cache (proxy/clients/jwks.py: fetched with the
SSRF-pinned fetcher, cached in Redis, one refetch per interval on an unknown `kid`). The signature,
algorithm allow-list, `aud`, `exp`/`iat`/`nbf` and `jti` presence are the shared assertion checks
(proxy/token/assertions.py). Spending the `jti` is deferred to `spend`, which the grant calls after its
own checks, so that every refusal leaves the store as it was. An IdP that cannot be reached is 503
(retry later), never a refusal of the client's grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc import jwk, jws
from joserfc.errors import JoseError

from proxy.clients.jwks import KeySetUnavailable, KeySource
from proxy.enterprise.discovery import DiscoveryFailed
from proxy.enterprise.idps import EnterpriseIdp
from proxy.enterprise.rules import ID_JAG_TYP, check_typ
from proxy.enterprise.runtime import Enterprise
from proxy.errors import InvalidGrant, UpstreamUnavailable
from proxy.token.assertions import AssertionRejected, Expected, unverified_claims, verify_assertion

MAX_AHEAD_S = 600  # an ID-JAG is short-lived (MCP §7.4.2); Okta's last 5 minutes
UNREACHABLE = "The enterprise IdP's keys could not be fetched; retry later."


@dataclass
class PendingJti:
    """The `jti` use verify_assertion would record, held until the grant's own checks have passed."""

    issuer: str = ""
    jti: str = ""
    ttl_ms: int = 0

    async def use_jti(self, issuer: str, jti: str, ttl_ms: int) -> bool:
        self.issuer, self.jti, self.ttl_ms = issuer, jti, ttl_ms
        return True


@dataclass(frozen=True)
class VerifiedIdJag:
    idp: EnterpriseIdp
    claims: dict[str, Any]
    pending: PendingJti


def _header(assertion: str) -> dict[str, Any]:
    try:
        header = jws.extract_compact(assertion.encode()).protected
    except (JoseError, ValueError, TypeError):
        raise InvalidGrant("The assertion is not a signed JWT (compact JWS).") from None
    return header if isinstance(header, dict) else {}


async def verified(enterprise: Enterprise, assertion: str, issuer: str) -> VerifiedIdJag:
    """The IdP and verified claims of `assertion` (audience: this facade's `issuer`); InvalidGrant or
    UpstreamUnavailable otherwise. Nothing is stored."""
    try:
        claims = unverified_claims(assertion)
    except AssertionRejected as exc:
        raise InvalidGrant(str(exc)) from None
    check_typ(_header(assertion))
    idp = enterprise.idps.get(claims.get("iss"))
    if idp is None:
        raise InvalidGrant("The assertion's issuer is not a trusted enterprise IdP.")
    assert enterprise.locator is not None and enterprise.key_sets is not None
    try:
        source = KeySource(uri=await enterprise.locator.jwks_uri(idp))
    except DiscoveryFailed as exc:
        raise UpstreamUnavailable(UNREACHABLE, detail=str(exc)) from None
    key_sets = enterprise.key_sets

    async def keys(kid: str | None) -> jwk.KeySet:
        try:
            return await key_sets.get(source, kid)
        except KeySetUnavailable as exc:  # not the client's fault: never an invalid_grant
            raise UpstreamUnavailable(UNREACHABLE, detail=str(exc)) from None

    pending = PendingJti()
    expected = Expected(issuer=idp.issuer, subject=None, audiences=(issuer,), typ=ID_JAG_TYP,
                        max_ahead_s=MAX_AHEAD_S)
    try:
        verified_claims = await verify_assertion(assertion, keys=keys, expected=expected, replay=pending)
    except AssertionRejected as exc:
        raise InvalidGrant(str(exc)) from None
    return VerifiedIdJag(idp, verified_claims, pending)


async def spend(enterprise: Enterprise, pending: PendingJti) -> None:
    """Record the assertion's one use (atomic across replicas); a second use is refused."""
    if not await enterprise.replay.use_jti(pending.issuer, pending.jti, pending.ttl_ms):
        raise InvalidGrant("The assertion was used before (its jti is single use).")
