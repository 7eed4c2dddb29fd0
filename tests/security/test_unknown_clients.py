"""Unknown clients at /token and /revoke, and a refresh family whose client is gone
(issue 14 item 7; RFC 6749 §5.2, RFC 7009 §2.2.1).

A client_id that is not (or no longer) registered is 401 `invalid_client` whatever it sends, so clients
such as ts-v1 know to register again; the Basic challenge comes only when the client used the
Authorization header. A family dies with its client: shown to the token endpoint or /revoke by its
current refresh token under the gone client's id, it is revoked, with its upstream grant.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import basic
from tests.security.conftest import json_error, kinds, snapshot

GONE = "never-registered-client"

TOKEN_REQUESTS: list[dict[str, str]] = [
    {"grant_type": "refresh_token", "refresh_token": "garbage"},
    {"grant_type": "refresh_token", "refresh_token": "someone.s-token"},
    {"grant_type": "authorization_code", "code": "garbage", "code_verifier": "v" * 43},
    {"grant_type": "authorization_code", "code": "some.code", "code_verifier": "v" * 43},
]


async def post(facade: Facade, path: str, form: dict[str, str], headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, Any], Any]:
    async with facade.http.post(facade.url + path, data=form, headers=headers) as response:
        return response.status, await response.json(content_type=None), response.headers


@pytest.mark.parametrize("form", TOKEN_REQUESTS)
async def test_an_unknown_client_at_token_is_invalid_client_whatever_it_sends(facade: Facade,
                                                                              form: dict[str, str]) -> None:
    """RFC 6749 §5.2: 401 invalid_client (not invalid_grant), as JSON; with client_id in the body, no
    Basic challenge (the client did not use the header); nothing stored changes."""
    before = await snapshot(facade.redis)
    status, body, headers = await post(facade, "/token", {**form, "client_id": GONE})
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" not in headers
    assert headers["Cache-Control"] == "no-store"
    assert await snapshot(facade.redis) == before


@pytest.mark.parametrize("form", TOKEN_REQUESTS)
async def test_an_unknown_client_with_basic_gets_the_basic_challenge(facade: Facade, form: dict[str, str]) -> None:
    """RFC 6749 §5.2: a client that authenticated with the Authorization header gets 401 and a
    WWW-Authenticate challenge for the scheme it used."""
    status, body, headers = await post(facade, "/token", form, {"Authorization": basic(GONE, "")})
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("authorization", [None, "basic"])
async def test_an_unknown_client_at_revoke_is_invalid_client(facade: Facade, authorization: str | None) -> None:
    """RFC 7009 §2.2.1 refers to RFC 6749 §5.2: an unregistered client's revocation request is 401
    invalid_client, not a silent 200; the challenge only when Basic was used; nothing changes."""
    form = {"token": "some.token"} if authorization else {"token": "some.token", "client_id": GONE}
    headers = {"Authorization": basic(GONE, "")} if authorization else None
    before = await snapshot(facade.redis)
    status, body, answer = await post(facade, "/revoke", form, headers)
    assert (status, body["error"]) == (401, "invalid_client")
    assert ("WWW-Authenticate" in answer) == bool(authorization)
    assert await snapshot(facade.redis) == before


async def gone_client(make_facade: FacadeFactory) -> tuple[Facade, Any, dict[str, Any]]:
    """A signed-in client whose registration then expired (its key's TTL cut to a millisecond, as if
    PROXY_CLIENT_TTL_S had run out), its family still there."""
    facade = await make_facade()
    client = facade.client()
    tokens = await client.signed_in()
    [key] = [key for key in await facade.keys() if key.startswith(facade.settings.redis_prefix + "client:")]
    await facade.redis.pexpire(key, 1)
    await asyncio.sleep(0.05)
    state = kinds(await snapshot(facade.redis))
    assert "client" not in state and "family" in state
    return facade, client, tokens


async def test_a_family_dies_with_its_client_at_the_token_endpoint(make_facade: FacadeFactory) -> None:
    """A refresh by a client whose registration expired is 401 invalid_client (so it registers again),
    and the family it shows its current token for is revoked, with its upstream grant: no family
    outlives its client silently."""
    facade, client, tokens = await gone_client(make_facade)
    assert facade.idp_state.refresh_tokens
    status, body = await client.refresh(tokens["refresh_token"])
    assert (status, body["error"]) == (401, "invalid_client")
    assert "family" not in kinds(await snapshot(facade.redis))
    assert not facade.idp_state.refresh_tokens
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {tokens['access_token']}"}) as response:
        assert response.status == 401


async def test_a_family_dies_with_its_client_at_revoke(make_facade: FacadeFactory) -> None:
    """Revocation by a client whose registration expired is 401 invalid_client, and the family its
    current refresh token shows is revoked all the same (the user asked for it to end)."""
    facade, client, tokens = await gone_client(make_facade)
    status, body, _ = await post(facade, "/revoke", {"token": tokens["refresh_token"], "client_id": client.client_id})
    assert (status, body["error"]) == (401, "invalid_client")
    assert "family" not in kinds(await snapshot(facade.redis))
    assert not facade.idp_state.refresh_tokens


async def test_a_gone_clients_id_with_a_made_up_token_changes_nothing(make_facade: FacadeFactory) -> None:
    """Only the family's current token ends it: a token built from the public family id under the gone
    client's id is invalid_client and leaves the family alone."""
    facade, client, tokens = await gone_client(make_facade)
    family = tokens["refresh_token"].split(".")[0]
    before = await snapshot(facade.redis)
    status, body = await client.refresh(family + ".forged")
    assert (status, body["error"]) == (401, "invalid_client")
    async with facade.http.post(facade.url + "/revoke",
                                data={"token": family + ".forged", "client_id": client.client_id}) as response:
        assert (response.status, await json_error(response)) == (401, "invalid_client")
    assert await snapshot(facade.redis) == before
