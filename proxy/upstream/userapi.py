"""Identity from an OAuth 2.0 IdP's REST user API (GitHub), since it issues no id_token.

The facade builds OIDC claims itself and mints its own id_token from them: `sub` is the numeric user
id as a string (a login can be renamed), and `email` is the user's primary *verified* address. GitHub's
/user shows only the public email, often null; /user/emails (scope `user:email`) lists them all, and
only the entry both `primary` and `verified` is trusted (oauth2-proxy providers/github.go does the same).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.errors import UpstreamError, UpstreamUnavailable
from proxy.log import get_logger

if TYPE_CHECKING:
    from proxy.upstream.client import Upstream

Json = dict[str, Any]
log = get_logger()


def claims_from_user(user: Json, subject_claim: str, claim_map: dict[str, str] | Any) -> Json:
    """The user API's answer in OIDC claim names; nulls dropped, the subject always a string."""
    subject = user.get(subject_claim)
    if subject is None or isinstance(subject, bool) or str(subject) == "":
        raise UpstreamError(detail=f"user API answered without {subject_claim!r}")
    claims: Json = {"sub": str(subject)}
    for member, claim in claim_map.items():
        if user.get(member) is not None:
            claims[claim] = user[member]
    return claims


def primary_verified_email(emails: Any) -> str | None:
    """The address GitHub marks both primary and verified; anything else is not the user's to claim."""
    if not isinstance(emails, list):
        return None
    for entry in emails:
        if isinstance(entry, dict) and entry.get("primary") is True and entry.get("verified") is True:
            email = entry.get("email")
            return email if isinstance(email, str) and email else None
    return None


async def user_claims(upstream: Upstream, access_token: str) -> Json:
    """GET the user (and, when /user shows no email, the email list) with the profile's API headers."""
    profile = upstream.profile
    metadata = await upstream.metadata()
    endpoint = metadata.get("userinfo_endpoint")
    if not endpoint:
        raise UpstreamError(detail="the profile names no user API endpoint")
    headers = {"Accept": "application/json", **profile.api_headers, "Authorization": f"Bearer {access_token}"}
    user = await upstream.get_json(endpoint, step="user_api", headers=headers)
    claims = claims_from_user(user, profile.subject_claim, profile.claim_map)
    emails_endpoint = metadata.get("emails_endpoint")
    if "email" not in claims and emails_endpoint:
        try:
            email = primary_verified_email(await upstream.get_document(emails_endpoint, step="user_emails",
                                                                       headers=headers))
        except UpstreamUnavailable:
            raise
        except UpstreamError as exc:  # e.g. 404/403 without the user:email scope: sign in without an email
            log.info("upstream.emails_unavailable", detail=exc.detail)
            email = None
        if email is not None:
            claims.update(email=email, email_verified=True)
    return claims
