"""Structured logs: one JSON object a line, events as short dotted names, secrets never written.

Event vocabulary: every value of the `event` field the code writes, and nothing else (the test
tests/test_log_events.py collects each `log.<level>("event", ...)` call in proxy/ and compares):

    startup                         the facade is serving: issuer, store, upstream, profile
    startup.generated_key           no PROXY_SIGNING_KEYS_FILE: a signing key was generated (or taken from the store)
    startup.in_memory_store         no PROXY_REDIS_URL: state lives in this process only
    startup.dev_idp                 the bundled development IdP is the upstream
    startup.http_issuer             the issuer is plain http
    startup.tracing                 OTEL_* variables turned OpenTelemetry tracing on: the exporters
    startup.tracing_unavailable     OTEL_* variables ask for traces but the `otel` extra is not installed
    request                         one line per answered request: method, path, status, duration_ms
    request.failed                  an OAuth error with a detail or a 5xx: error, status, detail
    request.aborted                 the client went away before the answer
    request.malformed               aiohttp refused a request before any handler ran (bad request line or header)
    error.unexpected                an exception that is no OAuthError: answered as server_error, traceback logged
    library.log                     a record of a library's stdlib logger, redacted like ours
    registration.over_cap           registrations passed PROXY_MAX_REGISTRATIONS_PER_HOUR (logged once an hour)
    callback.browser_mismatch       /callback in another browser than the one that started the flow
    callback.issuer_mismatch        the upstream's answer names another issuer, or none it promised (RFC 9207)
    callback.upstream_error         the upstream answered the authorization request with an error
    callback.reserved_subject       the upstream user's sub is in the machine-client namespace (`client:`): refused
    callback.approval_ended         a remembered approval predates an operator's ending of the grants: asked again
    upstream.client_registered      a client was registered at the upstream (PROXY_UPSTREAM_DCR)
    upstream.userinfo_failed        the upstream's userinfo failed; the sign-in's claims are used instead
    upstream.userinfo_sub_mismatch  the upstream's userinfo names another sub (OIDC Core §5.3.2): ignored
    upstream.emails_unavailable     GitHub's email list could not be read: sign-in without an email
    upstream.misconfigured          the IdP refuses the facade's own configuration (operator class): cause, hint
    upstream.unavailable            the IdP is down, slow or garbled (transient class): cause, retry_after_s
    upstream.grant_ended            the user's upstream grant is gone (terminal class): the family ends
    upstream.no_refresh_token       a sign-in brought no upstream refresh token where one was asked for (once)
    upstream.userinfo_skipped       fresh userinfo without an upstream token to ask with: the sign-in's claims
    code.issued                     a code was issued to the client
    code.reused                     a code was redeemed twice: what it issued is revoked (RFC 6749 §4.1.2)
    token.issued                    a code was redeemed for tokens
    refresh.rotated                 a refresh token was rotated
    refresh.grace_replay            a racer presented the just-rotated token inside the grace window
    refresh.reuse_detected          a rotated refresh token came back: the family is revoked (RFC 9700 §4.14.2)
    refresh.resumed                 a token newer than the store's (a failover lost rotations) resumed its family
    family.revoked                  a refresh family ended (revocation, reuse, the upstream's refusal)
    token.exchanged                 a resource server exchanged a facade access token for the upstream one (RFC 8693)
    access_token.revoked            an access token was revoked at /revoke (RFC 7009)
    cimd.fetched                    a client metadata document (URL client_id) was fetched and is valid
    cimd.stale                      its fetch failed transiently: the cached copy past its freshness is used
    cimd.refused                    the document's address may not be fetched (SSRF rules)
    cimd.failed                     the document could not be fetched
    cimd.invalid                    the fetched document is not a usable client metadata document
    jwks.fetched                    a key set (a client's or an operator's jwks_uri) was fetched and is valid
    jwks.refused                    the key set's address may not be fetched (SSRF rules)
    jwks.failed                     the key set could not be fetched
    jwks.invalid                    the fetched key set is unusable (private or symmetric keys, malformed)
    client.assertion_rejected       a private_key_jwt client assertion failed a check: client_id, reason
    idjag.rejected                  an ID-JAG (jwt-bearer grant) was refused: client_id, reason
    gateway.backend_timeout         the gateway's MCP backend did not answer in time (504)
    gateway.backend_unavailable     the gateway's MCP backend is unreachable (502)

Libraries' stdlib loggers (aiohttp.server, .access, .web, .client, ...) are routed through the same
processors by `StdlibBridge`, so the redactor sees what they write too: aiohttp logs a request line
it refused (too long, malformed) with its query string, `code` and `state` included.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

# Field names whose values are credentials; any field so named is replaced before rendering.
SECRET_FIELDS = frozenset({
    "access_token", "refresh_token", "id_token", "code", "code_verifier", "client_secret", "password",
    "authorization", "token", "secret", "cookie", "set-cookie", "state", "nonce", "assertion",
    "client_assertion",
})
# Query parameters that carry credentials, scrubbed from any string value that looks like a URL.
_SECRET_PARAM = re.compile(
    r"(?i)\b(code|state|nonce|access_token|refresh_token|id_token|client_secret|code_verifier|token|client_assertion)=[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# A header line quoted in a library's message (aiohttp names the line it refused), whatever the scheme.
_SECRET_HEADER = re.compile(r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie)(\s*:\s*)[^\r\n'\"]+")
REDACTED = "[redacted]"


class Redactor:
    """A structlog processor: removes credentials by field name and scrubs them out of strings."""

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for field, value in list(event_dict.items()):
            if field.lower() in SECRET_FIELDS:
                event_dict[field] = REDACTED
            elif isinstance(value, str) and ("=" in value or " " in value):
                event_dict[field] = scrub(value)
        return event_dict


def scrub(text: str) -> str:
    text = _SECRET_HEADER.sub(r"\1\2" + REDACTED, text)
    return _BEARER.sub(r"\1 " + REDACTED, _SECRET_PARAM.sub(r"\1=" + REDACTED, text))


# Loggers of libraries that may write request text; each is routed through the bridge.
LIBRARY_LOGGERS = ("aiohttp",)
MAX_LIBRARY_TEXT = 2000  # characters of a library's message or traceback kept


class StdlibBridge(logging.Handler):
    """A stdlib handler that hands each record to structlog, so it is redacted and rendered like ours.

    A request aiohttp refused before any handler ran (a bad or oversized request line or header) is
    the client's error: logged at info as `request.malformed` with the reason, no traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = get_logger(record.name)
            exc = record.exc_info[1] if record.exc_info else None
            # Scrubbed before cut to length: a cut could leave a secret without the name that marks it.
            if exc is not None and _is_http_parse_error(exc):
                logger.info("request.malformed", logger_name=record.name, reason=scrub(str(exc))[:MAX_LIBRARY_TEXT])
                return
            fields: dict[str, Any] = {"logger_name": record.name,
                                      "message": scrub(record.getMessage())[:MAX_LIBRARY_TEXT]}
            if record.exc_info and record.exc_info[0] is not None:
                trace = "".join(traceback.format_exception(*record.exc_info))
                fields["exception"] = scrub(trace)[-MAX_LIBRARY_TEXT:]
            logger.log(record.levelno, "library.log", **fields)
        except Exception:  # a handler must never raise into the library that logged
            self.handleError(record)


def _is_http_parse_error(exc: BaseException) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError

    return isinstance(exc, HttpProcessingError)


def _route_libraries(level: str) -> None:
    """Replace any earlier bridge (configure runs again in tests), so each record is written once.
    aiohttp's access log stays at warning: the facade writes its own `request` line."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for handler in [h for h in library.handlers if isinstance(h, StdlibBridge)]:
            library.removeHandler(handler)
        library.addHandler(StdlibBridge())
        library.setLevel(numeric)
        library.propagate = False  # not also to the root logger's last-resort stderr handler, unredacted
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))


_threshold = logging.NOTSET  # the configured level (NOTSET: structlog's defaults, which write everything)


def writes(level: int) -> bool:
    """Whether a line at `level` (logging.INFO, ...) is written at the configured level: a caller can
    skip building one."""
    return level >= _threshold


def configure(level: str = "info", fmt: str = "json", stream: Any = None, *, cache: bool = False) -> None:
    """`cache`: bind each module's logger once (serving); tests reconfigure, so they keep it off."""
    global _threshold
    _threshold = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            Redactor(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=cache,
    )
    _route_libraries(level)


def get_logger(name: str = "oauth_facade") -> Any:
    return structlog.get_logger(name)
