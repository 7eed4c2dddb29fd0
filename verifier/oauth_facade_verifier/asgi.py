"""ASGI middleware that guards any ASGI MCP app with the facade's tokens and MCP-correct challenges.

The MCP Python SDK's own bearer middleware sends `error="invalid_token"` when no token was sent and omits
`scope` from its 403, so a client can neither tell "sign in" from "your token is bad" nor learn which
scopes to ask for (MCP 2026-07-28 step-up). `BearerAuth` answers:
- no token: 401 `Bearer scope="…", resource_metadata="…"` (RFC 9728 §5.1), no `error`;
- a bad token: 401 `error="invalid_token"`; a malformed `Authorization`: 400 `error="invalid_request"`;
- a token without a needed scope: 403 `error="insufficient_scope", scope="<every needed scope>"`;
- JWKS unreachable and none cached: 503 (a 401 would make clients throw away good tokens);
- a caller an `access_policy` (proxy/access_policy.py, the facade's PROXY_POLICY_FILE) refuses: 403
  `error="access_denied"`, decided on the token's claims exactly as the gateway and forward-auth decide.

Needed scopes are `required_scopes` for every request, plus, when a `tool_scopes` policy is given, the
scopes of each tool a JSON-RPC `tools/call` in the body names. The body is then read (bounded) and
replayed to the app unchanged. The validated `Principal` is put in `scope["state"]["facade_principal"]`
(Starlette: `request.state.facade_principal`).

Pure ASGI, no Starlette or `mcp` import, so the facade itself imports it without the SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

from oauth_facade_verifier import strictjson
from oauth_facade_verifier.access_policy import AccessPolicy, describe_denial
from oauth_facade_verifier.core import (
    InsufficientScope,
    Principal,
    TokenRejected,
    challenge,
    denial_challenge,
    require_scopes,
)
from oauth_facade_verifier.messages import call_needs
from oauth_facade_verifier.verifier import KeysUnavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the validated caller is left for the app (`request.state.facade_principal` in Starlette).
PRINCIPAL_KEY = "facade_principal"
#: RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class PrincipalSource(Protocol):
    """What the middleware needs of a verifier; `FacadeTokenVerifier` is one."""

    @property
    def resource_metadata_url(self) -> str: ...

    async def principal(self, token: str) -> Principal: ...


class _BadRequest(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class _Disconnected(Exception):
    """The client went away while its body was being read."""


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    """The caller `BearerAuth` validated for this request (None when the path was public)."""
    principal = scope.get("state", {}).get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


class BearerAuth:
    """Require a valid facade access token for `verifier.resource` on every HTTP request to `app`.

    `public_paths` are path prefixes served without a token (RFC 9728 metadata must be readable before
    sign-in); CORS preflights (OPTIONS) pass too, they carry no credentials by design.
    """

    def __init__(self, app: ASGIApp, *, verifier: PrincipalSource, resource_metadata_url: str | None = None,
                 required_scopes: Iterable[str] = (), tool_scopes: Mapping[str, Iterable[str]] | None = None,
                 public_paths: Iterable[str] = ("/.well-known/oauth-protected-resource",),
                 max_body_bytes: int = 4 * 1024 * 1024, access_policy: AccessPolicy | None = None) -> None:
        self.app = app
        self.verifier = verifier
        self.resource_metadata_url = resource_metadata_url or verifier.resource_metadata_url
        self.required_scopes = tuple(required_scopes)
        self.tool_scopes = {name: tuple(scopes) for name, scopes in (tool_scopes or {}).items()}
        self.public_paths = tuple(public_paths)
        self.max_body_bytes = max_body_bytes
        self.access_policy = access_policy
        challenge(self.resource_metadata_url, scopes=self.required_scopes)  # fail at start-up, not per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # MCP has no websocket transport to guard
            return
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or self._is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            token = self._bearer_token(scope)
            if token is None:
                await self._refuse(send, 401, scopes=self.required_scopes)
                return
            principal = await self.verifier.principal(token)
            body = await self._read_body(scope, receive) if self._needs_body(scope) else None
            require_scopes(principal, self.required_scopes + self._tool_needs(body))
            rule = (self.access_policy.denial(principal.claims, principal.resource, self._calls(body))
                    if self.access_policy is not None else None)
            if rule is not None:
                description = describe_denial(rule)
                header = denial_challenge(self.resource_metadata_url, description)
                await self._respond(send, 403, {"error": "access_denied", "error_description": description},
                                    [(b"www-authenticate", header.encode("latin-1"))])
                return
        except _BadRequest as exc:
            error = "invalid_request" if exc.status == 400 else None
            await self._refuse(send, exc.status, error=error, description=exc.description)
            return
        except TokenRejected as exc:
            await self._refuse(send, 401, error="invalid_token", description=exc.description,
                               scopes=self.required_scopes)
            return
        except InsufficientScope as exc:
            await self._refuse(send, 403, error="insufficient_scope", scopes=exc.required,
                               description="the token lacks a scope this request needs")
            return
        except KeysUnavailable:
            await self._respond(send, 503, {"error": "temporarily_unavailable",
                                            "error_description": "the authorization server's keys are unreachable"},
                                [(b"retry-after", b"5")])
            return
        except _Disconnected:
            return
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        await self.app(scope, receive if body is None else _replay(body, receive), send)

    def _is_public(self, path: str) -> bool:
        """Judged on the path as a router or proxy resolving dot segments and merging slashes routes it:
        `/.well-known/oauth-protected-resource/../../mcp` is `/mcp`, which needs a token."""
        path = _normalised(path)
        return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in self.public_paths)

    @staticmethod
    def _bearer_token(scope: Scope) -> str | None:
        """RFC 6750 §2.1: exactly one `Authorization: Bearer <b64token>`; another scheme counts as none."""
        values = [value for name, value in scope["headers"] if name.lower() == b"authorization"]
        if len(values) > 1:
            raise _BadRequest(400, "more than one Authorization header")
        if not values:
            return None
        scheme, _, credentials = values[0].decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        credentials = credentials.strip(" ")
        if not _B64TOKEN.fullmatch(credentials):
            raise _BadRequest(400, "the Authorization header is not Bearer followed by one token")
        return credentials

    def _needs_body(self, scope: Scope) -> bool:
        tool_rules = self.access_policy is not None and self.access_policy.has_tool_rules
        return (bool(self.tool_scopes) or tool_rules) and scope["method"] == "POST"

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BadRequest(413, "the request body is too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _calls(self, body: bytes | None) -> list[tuple[str, str | None]]:
        """(method, tool name) of each JSON-RPC message in the body, for the access policy."""
        if not body:
            return []
        document = self._document(body)
        calls: list[tuple[str, str | None]] = []
        for message in document if isinstance(document, list) else [document]:
            if isinstance(message, dict) and isinstance(message.get("method"), str):
                params = message.get("params")
                name = params.get("name") if isinstance(params, dict) else None
                calls.append((message["method"], name if isinstance(name, str) else None))
        return calls

    @staticmethod
    def _document(body: bytes) -> Any:
        try:
            return strictjson.loads(body)  # RFC 8259 §8.1
        except strictjson.DuplicateMember as exc:
            raise _BadRequest(400, "the JSON body has a duplicate member name") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(400, "the request body is not JSON") from exc

    def _tool_needs(self, body: bytes | None) -> tuple[str, ...]:
        """The scopes of every tool a `tools/call` in the JSON-RPC body (one message or a batch) names."""
        if not body or not self.tool_scopes:
            return ()
        try:
            document = strictjson.loads(body)  # RFC 8259 §8.1
        except strictjson.DuplicateMember as exc:
            # Two `name`s could mean one tool to this policy and another to the app's parser.
            raise _BadRequest(400, "the JSON body has a duplicate member name") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            # Fail closed: a body this parser cannot read might still be read by the app's parser.
            raise _BadRequest(400, "the request body is not JSON") from exc
        needs: list[str] = []
        for message in document if isinstance(document, list) else [document]:
            if not isinstance(message, dict) or not isinstance(message.get("method"), str):
                continue
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            # Exact names; `Tools/Call` or `DEPLOY` fail closed (a folding app would run the guarded tool).
            needs.extend(call_needs(message["method"], name if isinstance(name, str) else None, self.tool_scopes))
        return tuple(needs)

    async def _refuse(self, send: Send, status: int, *, error: str | None = None, description: str | None = None,
                      scopes: Iterable[str] = ()) -> None:
        value = challenge(self.resource_metadata_url, scopes=scopes, error=error, description=description)
        body = {"error": error or "unauthorized", "error_description": description or "a bearer token is required"}
        headers = [(b"www-authenticate", value.encode("latin-1"))] if status in (400, 401, 403) else []
        await self._respond(send, status, body, headers)

    @staticmethod
    async def _respond(send: Send, status: int, body: Mapping[str, Any],
                       headers: list[tuple[bytes, bytes]]) -> None:
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            *headers,
        ]})
        await send({"type": "http.response.body", "body": payload})


def _normalised(path: str) -> str:
    """RFC 3986 §5.2.4 dot segments removed, runs of slashes merged (what nginx does before routing)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments) + ("/" if path.endswith(("/", "/.", "/..")) and segments else "")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the client's later messages."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


__all__ = ["PRINCIPAL_KEY", "BearerAuth", "PrincipalSource", "principal_of"]
