"""SEC-75: identity claims follow the granted scopes (issue 14 item 5, OIDC Core §5.4 and §5.3,
RFC 6750 §3.1, RFC 9068 §2.2.1).

The upstream is asked for every identity scope the facade offers, so the sign-in's snapshot holds the
user's email and profile whatever the client asked for. A client granted `openid` alone sees `sub`;
`email` adds the email claims, `profile` the profile claims; without `openid` there is no id_token and
/userinfo is 403 insufficient_scope.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from joserfc import jwt

from tests.conftest import Facade
from tests.helpers import Client

EMAIL = {"email", "email_verified"}
PROFILE = {"name", "preferred_username"}  # what the dev IdP knows of the profile claims
IDENTITY = EMAIL | PROFILE


async def id_token_claims(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    return await client.verify_id_token(body["id_token"], nonce=body["_auth"].nonce,
                                        access_token=body["access_token"])


async def userinfo(facade: Facade, access_token: str) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {access_token}"}) as response:
        return response.status, await response.json(content_type=None), response


@pytest.mark.parametrize(("scope", "released"), [
    ("openid", set()),
    ("openid email", EMAIL),
    ("openid profile", PROFILE),
    ("openid email profile offline_access", IDENTITY),
])
async def test_the_id_token_and_userinfo_release_what_the_scopes_name(facade: Facade, scope: str,
                                                                       released: set[str]) -> None:
    """OIDC Core §5.4: with openid alone the id_token and /userinfo carry no email, name or
    preferred_username; email and profile each add their own claims and nothing else."""
    client = facade.client()
    body = await client.signed_in(scope=scope)
    claims = await id_token_claims(client, body)
    assert claims["sub"] == "demo-user"
    assert IDENTITY & set(claims) == released
    status, info, _ = await userinfo(facade, body["access_token"])
    assert status == 200
    assert set(info) == {"sub"} | released
    if "email" in released:
        assert (claims["email"], info["email"]) == ("demo@example.com", "demo@example.com")


async def test_without_openid_there_is_no_id_token_and_no_userinfo(facade: Facade) -> None:
    """OIDC Core §5.3: /userinfo is an OpenID Connect resource; a token granted offline_access only gets
    403 insufficient_scope with the RFC 6750 §3.1 Bearer challenge naming openid, and no claims."""
    client = facade.client()
    body = await client.signed_in(scope="offline_access")
    assert "id_token" not in body
    status, info, response = await userinfo(facade, body["access_token"])
    assert status == 403
    assert info["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
    assert 'scope="openid"' in challenge
    assert "email" not in info


async def test_a_narrowed_refresh_narrows_the_claims(facade: Facade) -> None:
    """RFC 6749 §6: a refresh with scope=openid after `openid email offline_access` gets an id_token and
    /userinfo without the email claims."""
    client = facade.client()
    body = await client.signed_in(scope="openid email offline_access")
    assert EMAIL <= set(await id_token_claims(client, body))
    status, refreshed = await client.refresh(body["refresh_token"], scope="openid")
    assert status == 200, refreshed
    claims = jwt.decode(refreshed["id_token"], await client.jwks()).claims
    assert not EMAIL & set(claims)
    assert set((await userinfo(facade, refreshed["access_token"]))[1]) == {"sub"}


async def test_the_access_token_carries_no_identity_claims(facade: Facade) -> None:
    """RFC 9068 §2.2.1 allows identity claims in the access token; the facade puts none there, so the
    token a resource server sees never holds more than /userinfo would release."""
    client = facade.client()
    body = await client.signed_in(scope="openid email profile")
    claims = jwt.decode(body["access_token"], await client.jwks()).claims
    assert not IDENTITY & set(claims)
    assert claims["scope"] == "openid email profile"


async def test_email_and_profile_are_offered_and_granted(facade: Facade) -> None:
    """The scopes the README documents are in the metadata and are granted when asked for."""
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        offered = (await response.json())["scopes_supported"]
    assert {"openid", "email", "profile", "offline_access"} <= set(offered)
    body = await facade.client().signed_in(scope="openid email profile")
    assert body["scope"] == "openid email profile"
