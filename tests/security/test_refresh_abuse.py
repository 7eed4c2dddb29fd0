"""Refresh tokens: reuse after rotation, and a token used outside what it was bound to
(RFC 6749 §6, RFC 9700 §4.14.2, RFC 8707 §2.2)."""

from __future__ import annotations

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import kinds, snapshot


async def signed_in(facade: Facade) -> tuple[Client, dict[str, object]]:
    client = facade.client()
    return client, await client.signed_in()


async def test_refresh_reuse_revokes_the_family_here_and_upstream(make_facade: FacadeFactory) -> None:
    """RFC 9700 §4.14.2: an old refresh token presented after rotation is invalid_grant and revokes the
    whole family (the new token dies too) and the upstream grant behind it."""
    facade = await make_facade()
    client, first = await signed_in(facade)
    upstream_tokens = set(facade.idp_state.refresh_tokens)
    assert upstream_tokens
    status, second = await client.refresh(str(first["refresh_token"]))
    assert status == 200
    status, third = await client.refresh(str(second["refresh_token"]))  # the successor is used: no grace
    assert status == 200
    status, body = await client.refresh(str(first["refresh_token"]))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))
    status, body = await client.refresh(str(third["refresh_token"]))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert not facade.idp_state.refresh_tokens  # the upstream grant was revoked too


@pytest.mark.parametrize(("case", "extra", "error"), [
    ("another client's id", {"client_id": "<other>"}, "invalid_grant"),
    ("a wider scope", {"scope": "openid offline_access email"}, "invalid_scope"),
    ("an unknown scope", {"scope": "admin"}, "invalid_scope"),
    ("another resource", {"resource": "https://other.example/mcp"}, "invalid_target"),
])
async def test_a_refresh_outside_its_binding_is_refused_and_changes_nothing(
        facade: Facade, case: str, extra: dict[str, str], error: str) -> None:
    """RFC 6749 §6 (same client, no wider scope) and RFC 8707 §2.2 (same resource): refused, and the
    presented token stays the family's live token, so its holder's next refresh works."""
    client, tokens = await signed_in(facade)
    other = facade.client()
    await other.register()
    form = {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"]),
            "client_id": client.client_id, **extra}
    if form["client_id"] == "<other>":
        form["client_id"] = other.client_id
    before = await snapshot(facade.redis)
    status, body, _ = await client.token(form)
    assert (status, body["error"]) == (400, error), case
    assert await snapshot(facade.redis) == before
    status, _ = await client.refresh(str(tokens["refresh_token"]))
    assert status == 200


@pytest.mark.parametrize("token", ["", "no-dot", "{tag}.x", "a.b", ".", "x" * 4096])
async def test_a_made_up_refresh_token_is_invalid_grant(facade: Facade, token: str) -> None:
    """RFC 6749 §5.2: an unknown refresh token is invalid_grant (invalid_request when empty); no key
    is touched, whatever its shape (a hash tag in it cannot reach another Cluster slot)."""
    client, _tokens = await signed_in(facade)
    before = await snapshot(facade.redis)
    status, body = await client.refresh(token)
    assert (status, body["error"]) == (400, "invalid_request" if not token else "invalid_grant")
    assert await snapshot(facade.redis) == before
