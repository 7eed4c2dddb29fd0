"""The audit trail: what a security team reviews, as its own stream apart from the operational log.

One JSON object a line, written to PROXY_AUDIT_LOG (`stdout`, `stderr` or a file, appended to); unset,
nothing is written and nothing is computed. Every line has `time` (ISO 8601 UTC), `event`, and, inside
a request, `request_id` (the same as the operational log's and the `X-Request-Id` answer header) and
`source` (the client address as far as PROXY_TRUSTED_PROXIES vouch for it), then `sub` and `client_id`
where known. Never a token, code, secret or Authorization header: fields so named are redacted and
strings are scrubbed by the same redactor as the operational log.

Event vocabulary: every event name the code writes with `audit.event("...")`, and nothing else (the
test tests/test_audit_events.py collects the calls in proxy/ and compares both ways). Names are an
interface: rename none without a deprecation.

    audit.sign_in                   the upstream sign-in completed and a code was issued: sub, client_id, profile
    audit.consent                   the user answered the consent page: client_id, decision, scope, resource
    audit.token                     tokens were issued: grant_type, client_id, sub, scope, resource
    audit.refresh                   a refresh token was rotated (or replayed in grace): client_id, sub, scope
    audit.revoke                    a client revoked a token at /revoke: client_id, token_type, sub
    audit.reuse_detected            a rotated refresh token or a redeemed code came back: the family is revoked
    audit.client_registered         a client registered (RFC 7591): client_id, client_name, redirect hosts
    audit.admin                     an operator ended grants: by, action, selector, families, subjects
    audit.gateway_denied            the gateway or forward-auth refused a presented token: reason, status, resource
    audit.tool_call                 one tools/call through the gateway (PROXY_AUDIT_TOOL_CALLS): tool, decision
"""

from __future__ import annotations

import contextvars
import datetime
import json
import sys
import threading
from typing import Any, TextIO

from proxy.log import Redactor

_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("audit_context", default={})  # noqa: B039
_REDACT = Redactor()


class AuditTrail:
    """The one audit stream of a process: `configure` it once; `event` writes a line when configured."""

    def __init__(self) -> None:
        self._stream: TextIO | None = None
        self._owned = False
        self._lock = threading.Lock()
        self.tool_calls = False

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def configure(self, target: str | None = None, *, stream: TextIO | None = None, tool_calls: bool = False) -> None:
        """`target`: `stdout`, `stderr`, a file path, or None (off); `stream` (tests) wins over it."""
        self.close()
        self.tool_calls = tool_calls
        if stream is not None:
            self._stream = stream
        elif target == "stdout":
            self._stream = sys.stdout
        elif target == "stderr":
            self._stream = sys.stderr
        elif target:
            self._stream = open(target, "a", encoding="utf-8", buffering=1)
            self._owned = True

    def close(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()
        self._stream, self._owned = None, False

    def event(self, name: str, **fields: Any) -> None:
        """Write one line: time, event, the request's id and source address, then `fields`."""
        stream = self._stream
        if stream is None:
            return
        line: dict[str, Any] = {"time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                                "event": name, **_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
        text = json.dumps(dict(_REDACT(None, "info", line)), separators=(",", ":"), default=str)
        with self._lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):  # a closed or full stream must never fail a request
                pass


trail = AuditTrail()


def begin_request(request_id: str, source: str) -> None:
    """Bind the request's id and source address to every audit line written while it is answered."""
    _CONTEXT.set({"request_id": request_id, "source": source})


def event(name: str, **fields: Any) -> None:
    trail.event(name, **fields)


def enabled() -> bool:
    return trail.enabled
