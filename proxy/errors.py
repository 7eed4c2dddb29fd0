"""Every protocol error the facade can answer, as classes; one middleware renders them.

    OAuthError                      RFC 6749 §5.2 / §4.1.2.1 error with `error`, `status`
    ├── InvalidRequest              400 invalid_request
    ├── InvalidClient               401 invalid_client (+ WWW-Authenticate: Basic if Basic was used)
    ├── InvalidGrant                400 invalid_grant (description stays generic)
    │   └── NoUpstreamToken         400 invalid_grant: no usable upstream token held (token exchange)
    ├── UnauthorizedClient          400 unauthorized_client
    ├── UnsupportedGrantType        400 unsupported_grant_type
    ├── UnsupportedResponseType     400 unsupported_response_type
    ├── InvalidScope                400 invalid_scope
    ├── InvalidTarget               400 invalid_target (RFC 8707)
    ├── AccessDenied                403 access_denied
    ├── UpstreamAuthorizationError  400 the IdP answered the sign-in with an error: one of a fixed set
    ├── InvalidRedirectUri          400 invalid_redirect_uri (RFC 7591 §3.2.2)
    ├── InvalidClientMetadata       400 invalid_client_metadata
    ├── ClientDocumentUnusable      400 invalid_client: a client metadata document (CIMD) unusable
    ├── InvalidToken                401 invalid_token (RFC 6750 §3.1, Bearer challenge)
    ├── InsufficientScope           403 insufficient_scope (RFC 6750 §3.1, Bearer challenge)
    ├── ConsentRequired             400 consent_required (OIDC Core §3.1.2.6, prompt=none)
    ├── PayloadTooLarge             413 invalid_request
    ├── RateLimited                 429 temporarily_unavailable (Retry-After)
    ├── ServerError                 500 server_error
    │   └── UpstreamClientMissing   the client has no registration at the IdP: endpoints answer InvalidClient
    ├── UpstreamError               502 server_error: the IdP answered nonsense
    │   ├── IdTokenRejected         502: the IdP's id_token failed a check (OIDC Core §3.1.3.7)
    │   ├── DocumentNotFound        502: HTTP 404 on a GET (discovery then tries the next path)
    │   ├── UpstreamRefused         502: the IdP answered an OAuth error (e.g. invalid_grant)
    │   └── UpstreamUnavailable     503 temporarily_unavailable: the IdP is down or slow (Retry-After)
    │       └── UpstreamMisconfigured  503: the IdP refuses the facade's own configuration (operator)
    └── StoreUnavailable            503 temporarily_unavailable: Redis is down or slow

The `description` is public; `detail` is private and only logged (fosite's hint vs debug).
Whatever a handler puts in `error`, `description` or `error_uri`, the instance holds only RFC 6749
§5.2 characters (set once here, so every rendering, JSON, redirect or header, gets them).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

# RFC 6749 §5.2: error = 1*NQSCHAR; error_description, error_uri = 1*( %x20-21 / %x23-5B / %x5D-7E ).
_NOT_TEXT = re.compile(r"[^\x20\x21\x23-\x5B\x5D-\x7E]")
_ERROR_CODE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


# Characters our own sentences use, spelled in the §5.2 set rather than lost.
_SPELLED = str.maketrans({"§": "Section ", "…": "...", "‘": "'", "’": "'", "“": "'", "”": "'", '"': "'",
                          "–": "-", "—": "-"})


def rfc6749_text(value: str) -> str:
    """`value` in the §5.2 set: typographic characters spelled out, any other outside it (backslash,
    controls, other non-ASCII) as '?'."""
    return _NOT_TEXT.sub("?", value.translate(_SPELLED))


class OAuthError(Exception):
    """A protocol error; subclasses fix `error` and `status`."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 400
    default_description: ClassVar[str] = "The request could not be processed."
    # Errors that, once the client's redirect_uri is trusted, go back to it (RFC 6749 §4.1.2.1).
    redirectable: ClassVar[bool] = True

    def __init__(self, description: str | None = None, *, detail: str | None = None) -> None:
        self.description = description or self.default_description
        self.detail = detail
        super().__init__(self.description if detail is None else f"{self.description} ({detail})")

    def __setattr__(self, name: str, value: Any) -> None:
        """The public members keep to RFC 6749 §5.2 whoever sets them: a code outside NQSCHAR falls
        back to the class's own, text members lose the characters the RFC does not allow."""
        if name == "error" and not (isinstance(value, str) and _ERROR_CODE.fullmatch(value)):
            value = type(self).error
        elif name in ("description", "error_uri") and isinstance(value, str):
            value = rfc6749_text(value)
        super().__setattr__(name, value)

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    error = "invalid_request"
    default_description = "The request is missing a parameter or is malformed."


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401, with a Basic challenge when the client authenticated with the Authorization
    header (`challenge`); a client that sent only `client_id` in the body gets plain JSON it can parse."""

    error = "invalid_client"
    status = 401
    default_description = "Client authentication failed."
    redirectable = False

    def __init__(self, description: str | None = None, *, detail: str | None = None, challenge: bool = True) -> None:
        super().__init__(description, detail=detail)
        self.challenge = challenge

    @property
    def headers(self) -> dict[str, str]:
        if not self.challenge:
            return {}
        return {"WWW-Authenticate": 'Basic realm="oauth-facade", charset="UTF-8"'}


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    default_description = "The grant is invalid, expired, revoked or was issued to another client."


class NoUpstreamToken(InvalidGrant):
    """The family holds no upstream access token that can be used or refreshed (the IdP gave no refresh
    token): a token exchange cannot be answered; fresh userinfo falls back to the sign-in's claims."""

    default_description = "No usable upstream token is held for this sign-in."


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    default_description = "The client may not use this grant type."


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    default_description = "Supported grant types are authorization_code and refresh_token."


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"
    default_description = "The only supported response_type is code."


class InvalidScope(OAuthError):
    error = "invalid_scope"
    default_description = "The requested scope is invalid or exceeds what was granted."


class InvalidTarget(OAuthError):
    error = "invalid_target"
    default_description = "The resource is not a protected resource of this server."


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403
    default_description = "The resource owner or the identity provider denied the request."


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"
    default_description = "A redirect URI is not acceptable."
    redirectable = False


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"
    default_description = "The client metadata is invalid."
    redirectable = False


class ClientDocumentUnusable(OAuthError):
    """A URL client_id whose metadata document cannot be used: always an HTML page, never a redirect
    (the redirect URIs are not verified). draft-ietf-oauth-client-id-metadata-document-03 §5.1."""

    error = "invalid_client"
    default_description = "The client's metadata document cannot be used."
    redirectable = False


class InvalidToken(OAuthError):
    error = "invalid_token"
    status = 401
    default_description = "The access token is missing, invalid, expired or revoked."
    redirectable = False

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{self.description}"'}


class InsufficientScope(OAuthError):
    """RFC 6750 §3.1: the token is valid but lacks the scope this endpoint needs (named in the challenge)."""

    error = "insufficient_scope"
    status = 403
    default_description = "The access token does not carry the scope this request needs."
    redirectable = False

    def __init__(self, scope: str, description: str | None = None) -> None:
        super().__init__(description)
        self.scope = scope

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}", '
                                    f'error_description="{self.description}"'}


class ConsentRequired(OAuthError):
    """OIDC Core §3.1.2.6: prompt=none, and no remembered approval covers the request."""

    error = "consent_required"
    default_description = "The user has not approved this request in this browser, and prompt=none forbids asking."


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status = 413
    default_description = "The request body is too large."
    redirectable = False


class RateLimited(OAuthError):
    """429 + Retry-After. `slow_down` is a device-flow code (RFC 8628 §3.5) that RFC 6749 endpoints do not
    define; `temporarily_unavailable` is RFC 6749 §4.1.2.1's "temporarily unable to handle the request
    due to a temporary overloading", the code this server already answers for a store outage."""

    error = "temporarily_unavailable"
    status = 429
    default_description = "Too many requests; retry later."
    redirectable = False

    def __init__(self, retry_after_s: int, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after_s = max(1, retry_after_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServerError(OAuthError):
    error = "server_error"
    status = 500
    default_description = "The server hit an unexpected condition."


class UpstreamError(ServerError):
    """`outcome` (a proxy.upstream.policy.Outcome, untyped here: this module imports nothing of the
    product) says how the call failed, for the upstream error policy."""

    status = 502
    default_description = "The identity provider gave an unusable answer."

    def __init__(self, description: str | None = None, *, detail: str | None = None, outcome: object = None) -> None:
        super().__init__(description, detail=detail)
        self.outcome = outcome


class UpstreamRefused(UpstreamError):
    """The IdP answered with an OAuth error of its own (kept in `upstream_error`, never shown)."""

    def __init__(self, upstream_error: str, *, detail: str | None = None, outcome: object = None) -> None:
        super().__init__(detail=detail or upstream_error, outcome=outcome)
        self.upstream_error = upstream_error


class UpstreamUnavailable(UpstreamError):
    """Transient: retry later. `retry_after_s` is the IdP's own Retry-After when it sent one."""

    error = "temporarily_unavailable"
    status = 503
    default_description = "The identity provider is unavailable; retry later."

    def __init__(self, description: str | None = None, *, detail: str | None = None, outcome: object = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(description, detail=detail, outcome=outcome)
        self.retry_after_s = max(1, retry_after_s) if retry_after_s else 5

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class UpstreamMisconfigured(UpstreamUnavailable):
    """The IdP refuses the facade's own configuration (a wrong client secret, a grant not enabled): the
    operator must act, the user's session is kept. 503 so clients keep their tokens and retry."""

    default_description = "The identity provider refuses this service's configuration; retry later."

    def __init__(self, description: str | None = None, *, detail: str | None = None, outcome: object = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(description, detail=detail, outcome=outcome, retry_after_s=retry_after_s or 60)


class StoreUnavailable(ServerError):
    error = "temporarily_unavailable"
    status = 503
    default_description = "The service's state store is unavailable; retry later."

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "2"}


class UpstreamAuthorizationError(OAuthError):
    """The IdP answered the sign-in with an error; the client gets one of a fixed set of codes, which the
    callback chooses (proxy/callback/endpoint.py: UPSTREAM_ERRORS) and sets on the instance."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error  # type: ignore[misc]


class IdTokenRejected(UpstreamError):
    """The upstream id_token failed a check; the callback answers server_error."""


class DocumentNotFound(UpstreamError):
    """HTTP 404 on a GET: for discovery, the cue to try the profile's next well-known path."""


class UpstreamClientMissing(ServerError):
    """The downstream client has no registration of its own at the IdP (PROXY_UPSTREAM_DCR). Raised by
    the upstream side; the endpoints that act for a client answer it as InvalidClient
    (proxy/web/upstream_client.py), so the client registers again."""

    default_description = "This client has no registration at the identity provider: register it again."
