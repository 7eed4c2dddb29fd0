"""Issue 22 finding 5: JSON nested deeper than `strictjson.MAX_DEPTH` is a clear refusal at every reader
(the gateway's body and token header, forward-auth, a client metadata document, the Python verifier and
the ASGI middleware), never a `RecursionError` and a 500 with a traceback."""

from __future__ import annotations

import base64
import json

import pytest

from proxy import strictjson
from proxy.clients.document import DocumentInvalid, validate
from proxy.resource.verifier import FacadeTokenVerifier
from tests.conftest import Facade
from tests.resource.conftest import GatewayFactory, token_for
from tests.resource.test_verifier_asgi import App, bearer, call, guard
from tests.resource.tokens import ISSUER, make_minter

DEEP = 2_200  # beyond CPython's default recursion limit (1000): json.loads raises RecursionError


def deep_array(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_header_token(token: str) -> str:
    """`token` with its header replaced by one holding a deeply nested member (the signature is then
    wrong, but a reader must parse the header before it can know that)."""
    _, payload, signature = token.split(".")
    header = '{"alg":"RS256","typ":"at+jwt","x":' + deep_array() + "}"
    encoded = base64.urlsafe_b64encode(header.encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"


def test_the_strict_reader_refuses_depth_beyond_its_limit_as_a_value_error() -> None:
    """At MAX_DEPTH a document parses; one level more is `TooDeep` (a ValueError every reader already
    answers); brackets inside strings do not count; far deeper is the same error, not RecursionError."""
    limit = strictjson.MAX_DEPTH
    assert strictjson.loads(deep_array(limit)) == json.loads(deep_array(limit))
    assert strictjson.loads(json.dumps({"a": "[" * 5000})) == {"a": "[" * 5000}
    for depth in (limit + 1, DEEP, 100_000):
        with pytest.raises(strictjson.TooDeep):
            strictjson.loads(deep_array(depth))
    with pytest.raises(ValueError, match="nested"):
        strictjson.loads(('{"a":' * DEEP) + "1" + "}" * DEEP)


def test_a_deep_metadata_document_is_refused_as_invalid() -> None:
    """A client metadata document nested 2,200 deep is DocumentInvalid, not a RecursionError."""
    url = "https://app.example.com/client.json"
    body = json.dumps({"client_id": url, "client_name": "x", "redirect_uris": ["https://app.example.com/cb"]})
    with pytest.raises(DocumentInvalid):
        validate(url, (body[:-1] + ', "x": ' + deep_array() + "}").encode())


async def test_the_gateway_answers_a_deep_body_400_and_a_deep_token_header_401(make_gateway: GatewayFactory
                                                                                ) -> None:
    """Gateway: a deep JSON-RPC body with a good token is a JSON-RPC parse error (400); a deep token header 401."""
    facade: Facade = await make_gateway()
    token = (await token_for(facade))["access_token"]
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with facade.http.post(facade.url + "/mcp", data=deep_array(), headers={
            **headers, "Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == -32700
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    async with facade.http.post(facade.url + "/mcp", data=ping, headers={
            **headers, "Authorization": f"Bearer {deep_header_token(token)}"}) as response:
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_forward_auth_answers_a_deep_token_header_401(make_facade: object) -> None:
    """Forward-auth: a token whose header is nested 2,200 deep is 401 invalid_token, not a 500."""
    facade: Facade = await make_facade(resources="https://mcp.example.com/mcp",  # type: ignore[operator]
                                       trusted_proxies="127.0.0.1")
    token = (await facade.client().signed_in(resource="https://mcp.example.com/mcp"))["access_token"]
    async with facade.http.get(facade.url + "/forward-auth", headers={
            "X-Forwarded-Method": "GET", "X-Forwarded-Host": "mcp.example.com", "X-Forwarded-Proto": "https",
            "X-Forwarded-Uri": "/mcp", "Authorization": f"Bearer {deep_header_token(token)}"}) as response:
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_the_python_verifier_and_the_asgi_middleware_refuse_deep_input() -> None:
    """The SDK verifier answers None (the SDK's 401) for a deep token header; the middleware answers a
    deep header 401 invalid_token and a deep JSON-RPC body 400, and the app is never reached."""
    minter = make_minter("RS256")

    async def jwks(_: str) -> object:
        return minter.keyset.public_jwks

    verifier = FacadeTokenVerifier(issuer=ISSUER, resource="https://mcp.example.com/mcp",
                                   jwks_uri="https://auth.example.com/jwks", fetch=jwks)
    token = minter.mint()
    assert await verifier.verify_token(token) is not None
    assert await verifier.verify_token(deep_header_token(token)) is None
    app = App()
    answer = await call(guard(minter, app), headers=[bearer(deep_header_token(token))])
    assert answer.status == 401 and answer.challenge["error"] == "invalid_token"
    answer = await call(guard(minter, app, tool_scopes={"deploy": ["mcp:deploy"]}),
                        headers=[bearer(token), ("Content-Type", "application/json")], body=deep_array().encode())
    assert answer.status == 400
    assert app.calls == []


async def test_userinfo_answers_a_deep_token_header_401(make_facade: object) -> None:
    """The facade's own readers of its tokens (/userinfo, /introspect, /revoke) share the limit."""
    facade: Facade = await make_facade()  # type: ignore[operator]
    token = (await facade.client().signed_in())["access_token"]
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {deep_header_token(token)}"}) as response:
        assert response.status == 401
