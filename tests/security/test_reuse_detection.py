"""Only real tokens trigger reuse (issue 14 item 3, security-cases SEC-73, RFC 9700 §4.14.2).

The family id is public: it is the `sid` claim of every access token and id_token and the prefix of
codes and refresh tokens. A token built from it that the facade never issued must change nothing; a
replay of a token it did issue and rotate revokes the family and the upstream grant; undoing a
rotation never invalidates what a racer already received; no grace means none; a family is over at
its absolute expiry everywhere; a code replay takes the upstream grant along.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from typing import Any

from joserfc import jwt

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import kinds, snapshot

INTROSPECTION_SECRET = "introspection secret for the resource server"


def forged_tokens(family: str) -> list[str]:
    """Tokens an attacker builds from a family id alone: every shape the facade's own tokens have."""
    random = base64.urlsafe_b64encode(secrets.token_bytes(48)).rstrip(b"=").decode()
    short = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return [f"{family}.forged", f"{family}.{random}", f"{family}.{short}", f"{family}.{random}.{short}"]


async def sid_of(client: Client, access_token: str) -> str:
    """What anyone holding (or shown) an access token reads from it."""
    return str(jwt.decode(access_token, await client.jwks()).claims["sid"])


async def test_a_refresh_token_built_from_the_sid_claim_changes_nothing(facade: Facade) -> None:
    """From a victim's access token alone (its `sid`), made-up refresh tokens for the victim's family are
    invalid_grant; the store is byte for byte unchanged, the upstream grant is untouched, and the
    victim's own refresh token still works."""
    victim = facade.client()
    tokens = await victim.signed_in()
    family = await sid_of(victim, tokens["access_token"])
    assert tokens["refresh_token"].startswith(family + ".")
    attacker = Client(facade, client_id=victim.client_id)  # client ids are public too
    upstream_grants = dict(facade.idp_state.refresh_tokens)
    before = await snapshot(facade.redis)
    for forged in forged_tokens(family):
        status, body = await attacker.refresh(forged)
        assert (status, body["error"]) == (400, "invalid_grant"), forged
    assert await snapshot(facade.redis) == before
    assert facade.idp_state.refresh_tokens == upstream_grants
    assert not [r for r in facade.idp_state.token_requests if r.get("grant_type") == "refresh_token"]
    status, fresh = await victim.refresh(tokens["refresh_token"])
    assert status == 200, fresh


async def test_a_made_up_token_in_the_grace_window_changes_nothing(facade: Facade) -> None:
    """Right after a rotation the family has a previous token in grace: a made-up token still matches
    neither, is invalid_grant, and both the successor and the grace replay keep working."""
    client = facade.client()
    first = await client.signed_in()
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    before = await snapshot(facade.redis)
    for forged in forged_tokens(first["refresh_token"].split(".")[0]):
        status, body = await client.refresh(forged)
        assert (status, body["error"]) == (400, "invalid_grant")
    assert await snapshot(facade.redis) == before
    status, again = await client.refresh(first["refresh_token"])
    assert (status, again["refresh_token"]) == (200, second["refresh_token"])


async def test_a_thief_cannot_flush_the_victims_token_out_of_reuse_detection(facade: Facade) -> None:
    """RFC 9700 §4.14.2: whatever the thief does with a stolen token (here: forty rotations in a row),
    the victim's next use of the token it still holds is recognised as a replay of an issued token and
    revokes the family (the thief's newest token dies) and the upstream grant."""
    victim = facade.client()
    stolen = (await victim.signed_in())["refresh_token"]
    thief = Client(facade, client_id=victim.client_id)
    token = stolen
    for _ in range(40):
        status, body = await thief.refresh(token)
        assert status == 200, body
        token = body["refresh_token"]
    assert facade.idp_state.refresh_tokens
    status, body = await victim.refresh(stolen)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))
    status, body = await thief.refresh(token)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert not facade.idp_state.refresh_tokens  # the upstream grant was revoked


class SilentUpstream:
    """A token endpoint that accepts connections and never answers: an upstream call that hangs until
    the facade's timeout, with nothing happening upstream afterwards."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.arrived.set()
        await self.release.wait()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/token"

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_an_undone_rotation_never_invalidates_the_successor_a_racer_received(
        make_facade: FacadeFactory) -> None:
    """A refresh whose upstream refresh times out gives 503 and undoes its rotation, but a racer that
    presented the same token inside the grace window while the upstream call hung already received the
    successor: that successor must keep working (it was never a replay), and the failed request's retry
    gets the same successor rather than a fork of the family."""
    facade = await make_facade(idp={"access_token_ttl_s": 1}, upstream_timeout_s=2, upstream_refresh_timeout_s=2)
    client = facade.client()
    first = await client.signed_in()
    metadata = await facade.services.upstream.metadata()
    real_token_endpoint = metadata["token_endpoint"]
    silent = SilentUpstream()
    async with silent as endpoint:
        metadata["token_endpoint"] = endpoint
        hanging = asyncio.ensure_future(client.refresh(first["refresh_token"]))
        await asyncio.wait_for(silent.arrived.wait(), timeout=5)
        status, raced = await client.refresh(first["refresh_token"])  # grace replay: no upstream call
        assert status == 200, raced
        status, failed = await hanging
        assert (status, failed["error"]) == (503, "temporarily_unavailable")
    metadata["token_endpoint"] = real_token_endpoint
    status, retried = await client.refresh(first["refresh_token"])
    assert (status, retried["refresh_token"]) == (200, raced["refresh_token"])
    status, next_one = await client.refresh(raced["refresh_token"])
    assert status == 200, next_one
    status, later = await client.refresh(next_one["refresh_token"])
    assert status == 200, later


async def test_an_undone_rotation_without_a_racer_keeps_the_presented_token(make_facade: FacadeFactory) -> None:
    """The other side of the undo: when no racer received the successor, the failed refresh leaves the
    family exactly as it was, so the presented token is current again (no grace replay needed)."""
    facade = await make_facade(idp={"access_token_ttl_s": 1}, upstream_timeout_s=1)
    client = facade.client()
    first = await client.signed_in()
    before = await snapshot(facade.redis)
    facade.idp_config.faults = {"token": "500"}
    status, failed = await client.refresh(first["refresh_token"])
    assert (status, failed["error"]) == (503, "temporarily_unavailable")
    assert await snapshot(facade.redis) == before
    facade.idp_config.faults = {}
    status, fresh = await client.refresh(first["refresh_token"])
    assert status == 200, fresh


async def test_a_grace_of_zero_means_no_grace_at_all(make_facade: FacadeFactory) -> None:
    """PROXY_REFRESH_GRACE_S=0: a replay of the just-rotated token, however soon, is reuse (whole
    seconds used to give up to a second of grace)."""
    facade = await make_facade(refresh_grace_s=0)
    for _ in range(3):
        client = facade.client()
        first = await client.signed_in()
        status, second = await client.refresh(first["refresh_token"])
        assert status == 200
        status, body = await client.refresh(first["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_grant")
        status, body = await client.refresh(second["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_grant")  # the family was revoked
    assert "family" not in kinds(await snapshot(facade.redis))


async def post(facade: Facade, path: str, form: dict[str, str], headers: dict[str, str] | None = None
               ) -> tuple[int, Any]:
    async with facade.http.post(facade.url + path, data=form, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def userinfo_status(facade: Facade, access_token: str) -> int:
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {access_token}"}) as response:
        return response.status


async def test_a_family_past_its_absolute_expiry_is_inactive_everywhere(make_facade: FacadeFactory) -> None:
    """PROXY_REFRESH_TOKEN_ABSOLUTE_TTL_S ends the family for /introspect (its refresh and access
    tokens) and /userinfo too, not only for the next refresh, even while its Redis key still exists."""
    facade = await make_facade(introspection_secret=INTROSPECTION_SECRET)
    client = facade.client()
    tokens = await client.signed_in()
    bearer = {"Authorization": f"Bearer {INTROSPECTION_SECRET}"}
    assert (await post(facade, "/introspect", {"token": tokens["access_token"]}, bearer))[1]["active"] is True
    assert (await post(facade, "/introspect", {"token": tokens["refresh_token"]}, bearer))[1]["active"] is True
    assert await userinfo_status(facade, tokens["access_token"]) == 200
    [key] = [key for key in await facade.keys() if ":family:" in key]
    await facade.redis.hset(key, "abs_exp", int(time.time()) - 1)  # the key's idle TTL has not run out
    assert await post(facade, "/introspect", {"token": tokens["access_token"]}, bearer) == (200, {"active": False})
    assert await post(facade, "/introspect", {"token": tokens["refresh_token"]}, bearer) == (200, {"active": False})
    assert await userinfo_status(facade, tokens["access_token"]) == 401


async def test_the_family_key_does_not_outlive_its_absolute_expiry(make_facade: FacadeFactory) -> None:
    """The family's Redis lifetime is capped by its absolute lifetime from the first redemption on
    (it used to get the idle lifetime until the first refresh)."""
    facade = await make_facade(refresh_token_idle_ttl_s=1000, refresh_token_absolute_ttl_s=100)
    client = facade.client()
    await client.signed_in()
    [key] = [key for key in await facade.keys() if ":family:" in key]
    assert 0 < await facade.redis.ttl(key) <= 100


async def test_a_replayed_code_revokes_the_upstream_grant_too(facade: Facade) -> None:
    """RFC 6749 §4.1.2 (revoke what the code issued) and node-oidc-provider's rule: the family opened
    by the code goes, and so does the upstream grant behind it."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    status, _ = await client.exchange(auth)
    assert status == 200
    assert facade.idp_state.refresh_tokens
    status, body = await client.exchange(auth)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "family" not in kinds(await snapshot(facade.redis))
    assert not facade.idp_state.refresh_tokens


async def test_a_code_redeemed_for_another_resource_revokes_the_upstream_grant(facade: Facade) -> None:
    """A code redeemed with a resource it was not issued for is consumed (invalid_target) and nothing of
    it survives: the family it opened is gone and so is the upstream grant."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    assert facade.idp_state.refresh_tokens
    status, body = await client.exchange(auth, resource="https://other.example/mcp")
    assert (status, body["error"]) == (400, "invalid_target")
    assert "family" not in kinds(await snapshot(facade.redis))
    assert not facade.idp_state.refresh_tokens
