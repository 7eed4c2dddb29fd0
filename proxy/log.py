"""Structured logs: one JSON object a line, events as short dotted names, secrets never written.

Event vocabulary (the `event` field): request, startup, store.unavailable, upstream.failed,
upstream.id_token_rejected, callback.upstream_error, callback.browser_mismatch, callback.issuer_mismatch,
code.issued, code.reused, refresh.rotated, refresh.grace_replay, refresh.reuse_detected, family.revoked,
token.issued, request.failed, error.unexpected.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Field names whose values are credentials; any field so named is replaced before rendering.
SECRET_FIELDS = frozenset({
    "access_token", "refresh_token", "id_token", "code", "code_verifier", "client_secret", "password",
    "authorization", "token", "secret", "cookie", "set-cookie", "state", "nonce", "assertion",
})
# Query parameters that carry credentials, scrubbed from any string value that looks like a URL.
_SECRET_PARAM = re.compile(
    r"(?i)\b(code|state|nonce|access_token|refresh_token|id_token|client_secret|code_verifier|token)=[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
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
    return _BEARER.sub(r"\1 " + REDACTED, _SECRET_PARAM.sub(r"\1=" + REDACTED, text))


def configure(level: str = "info", fmt: str = "json", stream: Any = None, *, cache: bool = False) -> None:
    """`cache`: bind each module's logger once (serving); tests reconfigure, so they keep it off."""
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


def get_logger(name: str = "oauth_facade") -> Any:
    return structlog.get_logger(name)
