"""Revocation (RFC 7009), introspection (RFC 7662) and userinfo (OIDC Core §5.3)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Facade, FacadeFactory

SECRET = "rs-secret"


async def post(facade: Facade, path: str, form: dict[str, str], headers: dict[str, str] | None = None
               ) -> tuple[int, Any, dict[str, str]]:
    async with facade.http.post(facade.url + path, data=form, headers=headers) as response:
        text = await response.text()
        body = await response.json(content_type=None) if text else None
        return response.status, body, dict(response.headers)


async def introspect(facade: Facade, token: str) -> dict[str, Any]:
    status, body, headers = await post(facade, "/introspect", {"token": token},
                                       {"Authorization": f"Bearer {SECRET}"})
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    return body  # type: ignore[no-any-return]


@pytest.fixture
async def rs_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(introspection_secret=SECRET)


async def test_revoking_a_refresh_token_revokes_its_family_and_the_upstream_grant(rs_facade: Facade) -> None:
    """RFC 7009 §2.1: revoking a refresh token is 200 no-store, ends its refresh and access tokens, and
    revokes the upstream grant."""
    client = rs_facade.client()
    body = await client.signed_in()
    status, _, headers = await post(rs_facade, "/revoke", {"token": body["refresh_token"],
                                                           "client_id": client.client_id})
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    status, error = await client.refresh(body["refresh_token"])
    assert (status, error["error"]) == (400, "invalid_grant")
    assert (await introspect(rs_facade, body["access_token"])) == {"active": False}
    assert rs_facade.idp_state.refresh_tokens == {}


async def test_revoking_an_access_token_fails_its_introspection(rs_facade: Facade) -> None:
    """RFC 7009 §2.1: a revoked access token introspects inactive, while the family's refresh token keeps
    working."""
    client = rs_facade.client()
    body = await client.signed_in()
    assert (await introspect(rs_facade, body["access_token"]))["active"] is True
    status, _, _ = await post(rs_facade, "/revoke", {"token": body["access_token"],
                                                     "token_type_hint": "access_token",
                                                     "client_id": client.client_id})
    assert status == 200
    assert (await introspect(rs_facade, body["access_token"])) == {"active": False}
    status, _ = await client.refresh(body["refresh_token"])
    assert status == 200


@pytest.mark.parametrize("token", ["unknown", "a.b", "x.y.z", ""])
async def test_revocation_of_unknown_tokens_is_200(rs_facade: Facade, token: str) -> None:
    """RFC 7009 §2.2: revoking an unknown token is 200; a missing token parameter is 400."""
    client = rs_facade.client()
    await client.register()
    status, _, _ = await post(rs_facade, "/revoke", {"token": token, "client_id": client.client_id})
    assert status == (200 if token else 400)


async def test_revocation_by_another_client_does_nothing(rs_facade: Facade) -> None:
    """RFC 7009 §2.1: a client cannot revoke another client's token; it gets 200 and the token still
    refreshes."""
    client = rs_facade.client()
    body = await client.signed_in()
    other = rs_facade.client()
    await other.register()
    status, _, _ = await post(rs_facade, "/revoke", {"token": body["refresh_token"], "client_id": other.client_id})
    assert status == 200
    status, _ = await client.refresh(body["refresh_token"])
    assert status == 200


async def test_revocation_accepts_basic_client_authentication(rs_facade: Facade) -> None:
    """RFC 7009 §2.1 / RFC 6749 §2.3.1: /revoke identifies the client by Basic as well as by client_id."""
    client = rs_facade.client()
    body = await client.signed_in()
    header = "Basic " + base64.b64encode(f"{client.client_id}:x".encode()).decode()
    status, _, _ = await post(rs_facade, "/revoke", {"token": body["refresh_token"]}, {"Authorization": header})
    assert status == 200
    assert (await client.refresh(body["refresh_token"]))[0] == 400


async def test_introspection_describes_a_live_access_token(rs_facade: Facade) -> None:
    """RFC 7662 §2.2: a live access or refresh token introspects active with client_id, sub, scope, iss and
    aud."""
    client = rs_facade.client()
    body = await client.signed_in()
    info = await introspect(rs_facade, body["access_token"])
    assert info["active"] is True
    assert info["client_id"] == client.client_id
    assert info["sub"] == "demo-user"
    assert info["scope"] == "openid offline_access"
    assert info["iss"] == rs_facade.url
    assert info["aud"] == rs_facade.url + "/mcp"
    refresh_info = await introspect(rs_facade, body["refresh_token"])
    assert refresh_info["active"] is True and refresh_info["client_id"] == client.client_id


@pytest.mark.parametrize("token", ["nonsense", "a.b.c", "fam.secret"])
async def test_introspection_of_unknown_tokens_is_inactive(rs_facade: Facade, token: str) -> None:
    """RFC 7662 §2.2: an unknown token is {"active": false}, nothing more."""
    assert await introspect(rs_facade, token) == {"active": False}


async def test_introspection_of_a_rotated_refresh_token_is_inactive(rs_facade: Facade) -> None:
    """A refresh token replaced by rotation introspects inactive."""
    client = rs_facade.client()
    body = await client.signed_in()
    await client.refresh(body["refresh_token"])
    assert await introspect(rs_facade, body["refresh_token"]) == {"active": False}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + base64.b64encode(b"rs:wrong").decode()])
async def test_introspection_requires_the_configured_credential(rs_facade: Facade, header: str | None) -> None:
    """RFC 7662 §2.1: /introspect without PROXY_INTROSPECTION_SECRET as Bearer or Basic is 401 invalid_client."""
    status, body, _ = await post(rs_facade, "/introspect", {"token": "x"},
                                 {"Authorization": header} if header else None)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_introspection_accepts_basic_with_the_secret(rs_facade: Facade) -> None:
    """RFC 7662 §2.1: the resource server may send the secret as Basic password."""
    header = "Basic " + base64.b64encode(f"mcp-server:{SECRET}".encode()).decode()
    status, body, _ = await post(rs_facade, "/introspect", {"token": "x"}, {"Authorization": header})
    assert (status, body) == (200, {"active": False})


async def test_introspection_is_off_without_a_secret(facade: Facade) -> None:
    """With no PROXY_INTROSPECTION_SECRET, /introspect refuses everyone with 401 invalid_client."""
    status, body, _ = await post(facade, "/introspect", {"token": "x"}, {"Authorization": "Bearer x"})
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_returns_the_users_claims(facade: Facade, method: str) -> None:
    """OIDC Core §5.3: /userinfo by GET or POST returns sub and the claims the scopes name."""
    client = facade.client()
    body = await client.signed_in(scope="openid email profile")
    async with facade.http.request(method, facade.url + "/userinfo",
                                   headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 200
        info = await response.json()
    assert info["sub"] == "demo-user"
    assert info["email"] == "demo@example.com"
    assert info["name"] == "Demo User"


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
async def test_userinfo_without_a_valid_token_is_401_with_a_bearer_challenge(facade: Facade,
                                                                              header: str | None) -> None:
    """RFC 6750 §3.1: no token, a bad token or another scheme is 401 invalid_token with a Bearer challenge."""
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": header} if header else None) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        assert (await response.json())["error"] == "invalid_token"


async def test_userinfo_refuses_a_token_of_a_revoked_family(facade: Facade) -> None:
    """An access token whose family was revoked is refused at /userinfo."""
    client = facade.client()
    body = await client.signed_in()
    await post(facade, "/revoke", {"token": body["refresh_token"], "client_id": client.client_id})
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 401


def rename_at_the_idp(facade: Facade) -> None:
    for grant in facade.idp_state.access_tokens.values():
        grant["user"] = {**grant["user"], "name": "Renamed User"}


async def test_userinfo_can_ask_the_upstream_for_fresh_claims(make_facade: FacadeFactory) -> None:
    """PROXY_UPSTREAM_FRESH_USERINFO: a name changed at the IdP since sign-in shows at /userinfo."""
    facade = await make_facade(upstream_fresh_userinfo=True)
    client = facade.client()
    body = await client.signed_in(scope="openid email profile")
    rename_at_the_idp(facade)
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 200
        assert (await response.json())["name"] == "Renamed User"
    assert "userinfo" in facade.idp_state.arrivals


async def test_userinfo_serves_the_sign_in_snapshot_by_default(facade: Facade) -> None:
    """By default /userinfo serves the claims taken at sign-in, without calling the IdP again."""
    client = facade.client()
    body = await client.signed_in(scope="openid email profile")
    rename_at_the_idp(facade)
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert (await response.json())["name"] == "Demo User"
