"""The upstream error policy: what one failed call to the IdP means, as data in one place.

Every upstream call the facade makes on a user's behalf (redeeming a code, refreshing, revoking,
fetching userinfo) ends in an `Outcome`; `classify` maps it to one of three classes, and the callers
act on the class alone:

    class      meaning                                  the facade
    terminal   the user's upstream grant is gone        ends the family; the client hears invalid_grant
    operator   the facade's own configuration is wrong  keeps everything; 503 temporarily_unavailable with
                                                        Retry-After, one error log naming the cause, and
                                                        oauth_facade_upstream_failures_total{class="operator"}
    transient  the IdP is down, slow or garbled         keeps everything; 503 temporarily_unavailable with
                                                        Retry-After (the IdP's own, when it sent one)

Why 503 `temporarily_unavailable` and not 502 `server_error` for the operator class: the MCP
TypeScript SDK (client/auth.js `authInternal`) re-throws every OAuth error but `server_error` and keeps
its tokens; on `server_error` it starts a new authorization in the browser, which a misconfigured facade
cannot complete either. The Python SDK (`OAuthClientProvider._handle_refresh_response`) drops its
tokens on any non-200 refresh answer, so no status helps it; both lose nothing at the facade.

This module knows no endpoint of the facade and no HTTP library: only the shape of an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

Call = Literal["token", "bearer", "revocation", "document"]  # client-authenticated, Bearer, RFC 7009, plain GET
Kind = Literal["answer", "timeout", "unreachable", "garbled", "rate_limited"]


class UpstreamClass(StrEnum):
    TERMINAL = "terminal"
    OPERATOR = "operator"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one upstream call failed: the IdP's answer (status, OAuth error code) or why there was none."""

    call: Call
    kind: Kind = "answer"
    status: int | None = None
    error: str | None = None  # the OAuth `error` member (RFC 6749 §5.2), or Bearer error (RFC 6750 §3.1)
    retry_after_s: int | None = None  # the IdP's Retry-After, when it sent one

    @property
    def cause(self) -> str:
        """A bounded label for logs and metrics: a known error code, else what happened."""
        if self.error is not None:
            return self.error if self.error in KNOWN_ERRORS else "other_error"
        if self.kind == "answer":
            return f"http_{self.status}" if self.status in KNOWN_STATUSES else "http_other"
        return self.kind


TERMINAL, OPERATOR, TRANSIENT = UpstreamClass.TERMINAL, UpstreamClass.OPERATOR, UpstreamClass.TRANSIENT

# An OAuth error code the IdP answered -> its class (RFC 6749 §5.2, RFC 7009 §2.2.1, and the IdPs' own).
BY_ERROR = MappingProxyType({
    "invalid_grant": TERMINAL,  # the code or refresh token is expired, revoked or used (RFC 6749 §5.2)
    "bad_refresh_token": TERMINAL,  # GitHub's invalid_grant for a refresh token (with HTTP 200)
    "bad_verification_code": TERMINAL,  # GitHub's invalid_grant for a code
    "invalid_scope": TERMINAL,  # Clerk: a refresh token carrying a deleted scope can never be refreshed
    "invalid_token": TERMINAL,  # RFC 6750: the upstream access token is revoked or expired
    # Entra at its token endpoint: the user must sign in again
    "login_required": TERMINAL, "interaction_required": TERMINAL, "consent_required": TERMINAL,
    "invalid_client": OPERATOR,  # wrong client secret or id, rejected client assertion (RFC 6749 §5.2)
    "incorrect_client_credentials": OPERATOR,  # GitHub's invalid_client
    "unauthorized_client": OPERATOR,  # the facade's client may not use this grant at the IdP
    "unsupported_grant_type": OPERATOR,  # refresh_token not enabled for the facade's client
    "invalid_request": OPERATOR,  # the facade sent something the IdP does not accept
    "redirect_uri_mismatch": OPERATOR,  # GitHub: the callback is not registered
    "access_denied": OPERATOR,  # Auth0 at its token endpoint for credentials it does not accept
    "unsupported_token_type": OPERATOR,  # RFC 7009 §2.2.1
    "insufficient_scope": OPERATOR,  # the facade did not ask for the scope its userinfo call needs
    "temporarily_unavailable": TRANSIENT, "server_error": TRANSIENT, "slow_down": TRANSIENT,
})
KNOWN_ERRORS = frozenset(BY_ERROR)
KNOWN_STATUSES = frozenset({400, 401, 403, 404, 408, 429, 500, 502, 503, 504})
TRANSIENT_KINDS = frozenset({"timeout", "unreachable", "garbled", "rate_limited"})


def classify(outcome: Outcome) -> UpstreamClass:
    """The class of one failed upstream call. Precedence: a transient status or failure first (an IdP
    behind a failing gateway may send any body), then the error code, then the status alone."""
    if outcome.kind in TRANSIENT_KINDS:
        return TRANSIENT
    status = outcome.status or 0
    if status >= 500 or status in (408, 429):
        return TRANSIENT
    if outcome.error is not None:
        # An unknown code: the IdP refused something the facade cannot tell apart. Keep the user's session
        # and tell the operator, rather than log every user out for good.
        return BY_ERROR.get(outcome.error, OPERATOR)
    if status == 401:  # no error code: with a Bearer token the token is dead; with client auth the secret is
        return TERMINAL if outcome.call == "bearer" else OPERATOR
    return OPERATOR


def retry_after(value: str | None, *, now: float, cap_s: int = 3600) -> int | None:
    """Seconds from a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date); junk -> None.
    Capped, so a confused IdP cannot tell clients to wait a day."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            seconds = int(parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            return None
    return max(1, min(seconds, cap_s))
