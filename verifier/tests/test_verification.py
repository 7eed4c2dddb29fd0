"""The verifier distribution on its own: tokens from a stand-in issuer (joserfc keys, a JWKS served by the
standard library), checked by `FacadeTokenVerifier` as the MCP SDK's `TokenVerifier` and by `BearerAuth`
around a bare ASGI app. Nothing of the facade is imported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp.server.auth.provider import AccessToken, TokenVerifier
from oauth_facade_verifier import BearerAuth, FacadeTokenVerifier, TokenRejected, principal_of
from verifier_testkit import RESOURCE, Issuer


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.close()


def test_a_token_is_accepted_with_keys_found_through_the_issuers_metadata(issuer: Issuer) -> None:
    """The verifier reads the RFC 8414 metadata, fetches the JWKS once, and returns the caller."""
    verifier = FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE)
    principal = asyncio.run(verifier.principal(issuer.token(sub="alice")))
    assert (principal.sub, principal.client_id, principal.scopes) == ("alice", "client-1", ("openid", "files:read"))
    assert issuer.requests == ["/.well-known/oauth-authorization-server", "/jwks"]


@pytest.mark.parametrize("claims", [{"aud": "https://other.example.com/mcp"}, {"iss": "https://evil.example.com"},
                                    {"exp": 1}, {"client_id": None}])
def test_a_token_for_another_resource_or_issuer_expired_or_incomplete_is_refused(issuer: Issuer,
                                                                                claims: dict[str, Any]) -> None:
    """Audience, issuer, expiry and required claims are checked (RFC 9068 §4)."""
    with pytest.raises(TokenRejected):
        asyncio.run(FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE).principal(issuer.token(**claims)))


def test_a_rotated_key_is_fetched_on_its_first_token(issuer: Issuer) -> None:
    """A token signed by a key published after the JWKS was cached makes the verifier fetch it once more."""
    verifier = FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE, refetch_interval_s=0)

    async def both() -> tuple[str, str]:
        first = await verifier.principal(issuer.token(sub="before"))
        issuer.rotate()
        second = await verifier.principal(issuer.token(sub="after"))
        return first.sub, second.sub

    assert asyncio.run(both()) == ("before", "after")
    assert verifier.jwks_fetches == 2


def test_the_mcp_sdk_gets_its_access_token_and_none_for_a_bad_token(issuer: Issuer) -> None:
    """As the SDK's `TokenVerifier`: an `AccessToken` with subject, scopes and claims for a good token,
    None (the SDK's 401) for a forged one."""
    verifier: TokenVerifier = FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE)
    good = asyncio.run(verifier.verify_token(issuer.token(sub="bob")))
    assert isinstance(good, AccessToken)
    assert (good.subject, good.client_id, good.scopes, good.resource) == ("bob", "client-1", ["openid", "files:read"],
                                                                          RESOURCE)
    forged = issuer.token(sub="bob")[:-4] + "AAAA"
    assert asyncio.run(verifier.verify_token(forged)) is None


async def _call(app: BearerAuth, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> tuple[int, dict[str, str],
                                                                                                   bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/mcp", "headers": headers}, receive, send)
    start = sent[0]
    return (start["status"], {name.decode(): value.decode() for name, value in start["headers"]},
            b"".join(message.get("body", b"") for message in sent[1:]))


def test_bearer_auth_challenges_and_hands_the_app_its_caller(issuer: Issuer) -> None:
    """No token: 401 naming the resource metadata, no `error`; a token without a tool's scope: 403 naming
    it; a good token: the app runs and sees the validated caller."""
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(principal_of(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = BearerAuth(app, verifier=FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE),
                       tool_scopes={"delete": ["files:admin"]})
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete"}}).encode()
    bearer = [(b"authorization", f"Bearer {issuer.token(sub='carol')}".encode())]

    status, headers, _ = asyncio.run(_call(guard, []))
    assert status == 401 and "resource_metadata=" in headers["www-authenticate"]
    assert "error=" not in headers["www-authenticate"]
    status, headers, _ = asyncio.run(_call(guard, bearer, call))
    assert status == 403 and 'scope="files:admin"' in headers["www-authenticate"]
    status, _, body = asyncio.run(_call(guard, bearer, b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}'))
    assert (status, body) == (200, b"ok")
    assert [principal.sub for principal in seen] == ["carol"]
