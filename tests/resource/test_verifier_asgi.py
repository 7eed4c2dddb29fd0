"""`BearerAuth`, the ASGI middleware in front of a Python MCP app: the MCP 2026-07-28 challenges, the
per-tool scope policy read from the JSON-RPC body, and the body handed to the app unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from proxy.resource.asgi import PRINCIPAL_KEY, BearerAuth, principal_of
from proxy.resource.core import Principal
from proxy.resource.verifier import FacadeTokenVerifier
from tests.conftest import free_port
from tests.resource.test_core import parse_bearer
from tests.resource.tokens import ISSUER, RESOURCE, Minter, make_minter

METADATA = ISSUER + "/.well-known/oauth-protected-resource/mcp"


@dataclass
class App:
    """The protected app: records what reached it (scope and the full body it read)."""

    calls: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        if scope["type"] == "http":
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        self.calls.append((scope, body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"app"})


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def challenge(self) -> dict[str, str]:
        return parse_bearer(self.headers["www-authenticate"])


async def call(middleware: BearerAuth, *, method: str = "POST", path: str = "/mcp",
               headers: Iterable[tuple[str, str]] = (), body: bytes | list[bytes] = b"") -> Answer:
    """One HTTP request through the middleware, as an ASGI server would deliver it (body in chunks)."""
    chunks = body if isinstance(body, list) else [body]
    messages = [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
                for n, chunk in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [
        (name.lower().encode(), value.encode()) for name, value in headers]}
    await middleware(scope, receive, send)
    start = sent[0]
    return Answer(start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
                  b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.fixture(scope="module")
def minter() -> Minter:
    return make_minter("RS256")


def guard(minter: Minter, app: App, **options: Any) -> BearerAuth:
    async def jwks(_: str) -> Any:
        return minter.keyset.public_jwks

    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri="https://auth.example.com/jwks",
                                   fetch=jwks)
    return BearerAuth(app, verifier=verifier, **options)


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


def tools_call(name: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": {}}}


async def test_no_token_is_401_with_resource_metadata_and_scope_but_no_error(minter: Minter) -> None:
    """MCP: no token sent → 401, `resource_metadata` of the facade's RFC 9728 document and the needed
    `scope`, no `error` (the SDK's own middleware says invalid_token here); the app is not reached."""
    app = App()
    answer = await call(guard(minter, app, required_scopes=["files:read"]))
    assert answer.status == 401
    assert answer.challenge == {"scope": "files:read", "resource_metadata": METADATA}
    assert answer.headers["cache-control"] == "no-store" and app.calls == []


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "bearer "])
async def test_another_scheme_is_no_token_and_an_empty_bearer_is_malformed(minter: Minter,
                                                                           authorization: str) -> None:
    """RFC 6750 §3.1: another scheme means no Bearer credentials (401, no error code); `Bearer` with
    nothing after it is a malformed request (400 invalid_request)."""
    answer = await call(guard(minter, App()), headers=[("Authorization", authorization)])
    if authorization.strip().lower() == "bearer":
        assert answer.status == 400 and answer.challenge["error"] == "invalid_request"
    else:
        assert answer.status == 401 and "error" not in answer.challenge


async def test_a_bad_token_is_401_invalid_token_with_a_reason(minter: Minter) -> None:
    """A token that was sent and fails: `error="invalid_token"` and a description; the app is not reached."""
    app = App()
    expired = minter.mint(now=1_700_000_000)
    answer = await call(guard(minter, app, required_scopes=["files:read"]), headers=[bearer(expired)])
    assert answer.status == 401
    assert answer.challenge == {"error": "invalid_token", "error_description": "the token has expired",
                                "scope": "files:read", "resource_metadata": METADATA}
    assert json.loads(answer.body)["error"] == "invalid_token" and app.calls == []


async def test_a_token_for_another_resource_is_refused(minter: Minter) -> None:
    """The facade's token for another MCP server does not open this one."""
    other = minter.mint(resource="https://other.example.com/mcp")
    answer = await call(guard(minter, App()), headers=[bearer(other)])
    assert answer.status == 401 and "aud" in answer.challenge["error_description"]


@pytest.mark.parametrize("headers", [
    [("Authorization", "Bearer a b")],
    [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
])
async def test_a_malformed_authorization_is_400_invalid_request(minter: Minter,
                                                                headers: list[tuple[str, str]]) -> None:
    """Two Authorization headers or a Bearer value that is no b64token: 400 `invalid_request`."""
    answer = await call(guard(minter, App()), headers=headers)
    assert answer.status == 400 and answer.challenge["error"] == "invalid_request"


async def test_a_valid_token_reaches_the_app_with_its_principal_and_the_body_intact(minter: Minter) -> None:
    """A good token: the app gets the request, the validated principal in scope state, and with a tool
    policy (so the body was read first) every byte of a chunked body, in order."""
    app = App()
    middleware = guard(minter, app, tool_scopes={"admin": ["admin:write"]})
    body = json.dumps(tools_call("whoami")).encode()
    answer = await call(middleware, headers=[bearer(minter.mint())], body=[body[:7], body[7:20], body[20:]])
    assert answer.status == 200 and answer.body == b"app"
    scope, seen = app.calls[0]
    assert seen == body
    principal = principal_of(scope)
    assert isinstance(principal, Principal) and principal.sub == "user-1"
    assert scope["state"][PRINCIPAL_KEY] is principal


async def test_missing_required_scope_is_403_naming_every_needed_scope(minter: Minter) -> None:
    """MCP step-up: 403 `insufficient_scope` with all the scopes the request needs (not only the missing
    one, never offline_access), so the client can re-authorize for the union."""
    app = App()
    middleware = guard(minter, app, required_scopes=["files:read", "offline_access", "files:write"])
    answer = await call(middleware, headers=[bearer(minter.mint(scope="openid files:read"))])
    assert answer.status == 403
    assert answer.challenge["error"] == "insufficient_scope"
    assert answer.challenge["scope"] == "files:read files:write"
    assert answer.challenge["resource_metadata"] == METADATA and app.calls == []


async def test_the_tool_policy_refuses_a_tool_the_token_has_no_scope_for(minter: Minter) -> None:
    """`tools/call` of `admin` needs admin:write: refused with 403 naming the required scopes and the
    tool's; another tool and other methods pass with the same token."""
    app = App()
    middleware = guard(minter, app, required_scopes=["files:read"], tool_scopes={"admin": ["admin:write"]})
    token = minter.mint(scope="files:read")
    refused = await call(middleware, headers=[bearer(token)], body=json.dumps(tools_call("admin")).encode())
    assert refused.status == 403 and refused.challenge["scope"] == "files:read admin:write"
    for message in (tools_call("whoami"), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}):
        assert (await call(middleware, headers=[bearer(token)], body=json.dumps(message).encode())).status == 200
    assert (await call(middleware, method="GET", headers=[bearer(token)])).status == 200
    allowed = minter.mint(scope="files:read admin:write")
    granted = await call(middleware, headers=[bearer(allowed)], body=json.dumps(tools_call("admin")).encode())
    assert granted.status == 200
    assert len(app.calls) == 4


async def test_a_batch_is_checked_for_every_tool_it_calls(minter: Minter) -> None:
    """A JSON-RPC batch hiding `admin` behind an allowed call is refused."""
    middleware = guard(minter, App(), tool_scopes={"admin": ["admin:write"]})
    batch = json.dumps([tools_call("whoami", 1), tools_call("admin", 2)]).encode()
    answer = await call(middleware, headers=[bearer(minter.mint(scope="files:read"))], body=batch)
    assert answer.status == 403 and answer.challenge["scope"] == "admin:write"


async def test_a_body_with_duplicate_member_names_is_400(minter: Minter) -> None:
    """`{"name": "whoami", "name": "admin"}` could be read one way by the policy and another by the app:
    refused outright."""
    app = App()
    middleware = guard(minter, app, tool_scopes={"admin": ["admin:write"]})
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"admin"}}'
    answer = await call(middleware, headers=[bearer(minter.mint())], body=body)
    assert answer.status == 400 and answer.challenge["error"] == "invalid_request" and app.calls == []


async def test_an_oversized_body_is_413_before_the_app(minter: Minter) -> None:
    """With a tool policy the body is buffered, so it is bounded: beyond `max_body_bytes`, 413."""
    app = App()
    middleware = guard(minter, app, tool_scopes={"admin": ["x"]}, max_body_bytes=1000)
    answer = await call(middleware, headers=[bearer(minter.mint())], body=[b"a" * 600, b"a" * 600])
    assert answer.status == 413 and app.calls == []


async def test_metadata_and_preflight_pass_without_a_token(minter: Minter) -> None:
    """RFC 9728 metadata must be readable before sign-in, and CORS preflights carry no credentials."""
    app = App()
    middleware = guard(minter, app)
    assert (await call(middleware, method="GET", path="/.well-known/oauth-protected-resource/mcp")).status == 200
    assert (await call(middleware, method="OPTIONS")).status == 200
    assert (await call(middleware, method="GET", path="/.well-known/oauth-protected-resourcex")).status == 401
    assert len(app.calls) == 2


async def test_unreachable_keys_are_503_not_401(minter: Minter) -> None:
    """With no JWKS reachable the middleware cannot judge the token: 503 with Retry-After, so clients
    retry instead of discarding their tokens."""
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=f"http://127.0.0.1:{free_port()}/jwks")
    answer = await call(BearerAuth(App(), verifier=verifier), headers=[bearer(minter.mint())])
    assert answer.status == 503 and answer.headers["retry-after"] == "5"


async def test_the_jwks_is_fetched_over_http_by_default(minter: Minter, aiohttp_server: Any) -> None:
    """Without a `fetch`, the verifier GETs the JWKS with the standard library (no client to close)."""
    jwks = web.Application()

    async def serve(_: web.Request) -> web.Response:
        return web.json_response(minter.keyset.public_jwks)

    jwks.router.add_get("/jwks", serve)
    server = await aiohttp_server(jwks)
    verifier = FacadeTokenVerifier(issuer=ISSUER, resource=RESOURCE, jwks_uri=str(server.make_url("/jwks")))
    assert (await call(BearerAuth(App(), verifier=verifier), headers=[bearer(minter.mint())])).status == 200


async def test_websockets_are_closed(minter: Minter) -> None:
    """MCP has no websocket transport; a websocket to the guarded app is closed, never passed through."""
    app = App()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard(minter, app)({"type": "websocket", "path": "/mcp", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}] and app.calls == []


@pytest.mark.parametrize("body", [b"not json", b'{"method": "tools/call", "params": {"name": "admin"}}\xff',
                                  b"\xff\xfe{\x00}\x00"])
async def test_a_body_the_policy_cannot_read_is_400_not_passed_on(minter: Minter, body: bytes) -> None:
    """With a tool policy, a POST body that is not UTF-8 JSON is refused: a body the policy cannot read
    could still be read, differently, by the app's parser (fail closed)."""
    app = App()
    middleware = guard(minter, app, tool_scopes={"admin": ["admin:write"]})
    answer = await call(middleware, headers=[bearer(minter.mint())], body=body)
    assert answer.status == 400 and answer.challenge["error"] == "invalid_request" and app.calls == []
