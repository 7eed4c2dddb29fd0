"""Refresh families survive a store that lost rotations (issue 23 item 2), and forks stay reuse.

With asynchronous replication a Redis primary acknowledges a rotation, dies, and its promoted replica
holds the family as it was some rotations earlier. Here that is reproduced exactly, on fakeredis and a
real redis-server: the family's hash is saved, the client refreshes, and the saved hash is put back
(what the replica held). tests/test_failover.py does the same through a real Sentinel failover.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any

from proxy.store.store import family_of
from proxy.token.sealing import LINEAGE_SECRET_BYTES, Lineage, refresh_tokens
from tests.conftest import Facade
from tests.helpers import Client


async def saved(facade: Facade, token: str) -> dict[str, Any]:
    """The family's hash as the store holds it now (what a replica would have received)."""
    key = facade.services.store.family_key(family_of(token) or "")
    return {"fields": await facade.redis.hgetall(key), "ttl": await facade.redis.ttl(key)}


async def lose_writes_since(facade: Facade, token: str, state: dict[str, Any]) -> None:
    """The failover: the store goes back to `state`, every rotation after it lost."""
    key = facade.services.store.family_key(family_of(token) or "")
    await facade.redis.delete(key)
    await facade.redis.hset(key, mapping=state["fields"])
    await facade.redis.expire(key, state["ttl"])


async def rotated(client: Client, token: str, times: int) -> list[str]:
    tokens = [token]
    for _ in range(times):
        status, body = await client.refresh(tokens[-1])
        assert status == 200, body
        tokens.append(body["refresh_token"])
    return tokens


async def test_the_next_refresh_works_after_the_store_lost_three_rotations(facade: Facade) -> None:
    """The client holds the token of the third rotation; the store only knows the first token. The
    refresh succeeds, and the family goes on (its next refresh too); the old token is reuse."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    state = await saved(facade, first)
    tokens = await rotated(client, first, 3)
    await lose_writes_since(facade, first, state)
    after = await rotated(client, tokens[-1], 2)
    status, body = await client.refresh(first)
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await client.refresh(after[-1])
    assert (status, body["error"]) == (400, "invalid_grant"), "the reuse revoked the family"


async def test_a_token_of_the_lost_history_after_the_family_resumed_is_reuse(facade: Facade) -> None:
    """A thief holding an earlier token of the lost history resumes the family first; the victim's
    newer token is then a fork, not a successor: reuse, the family (the thief's branch too) revoked."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    state = await saved(facade, first)
    tokens = await rotated(client, first, 3)
    await lose_writes_since(facade, first, state)
    status, thief = await client.refresh(tokens[1])
    assert status == 200, thief
    status, body = await client.refresh(tokens[3])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await client.refresh(thief["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert await facade.services.store.family_grant(family_of(first) or "") is None


async def test_racers_resuming_a_family_get_the_same_successor(facade: Facade) -> None:
    """Two processes sharing one credential present the lost token together: one resumes the family,
    the other gets the same successor in the grace window, as for an ordinary rotation."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    state = await saved(facade, first)
    tokens = await rotated(client, first, 2)
    await lose_writes_since(facade, first, state)
    answers = await asyncio.gather(client.refresh(tokens[-1]), client.refresh(tokens[-1]))
    assert [status for status, _ in answers] == [200, 200], answers
    assert answers[0][1]["refresh_token"] == answers[1][1]["refresh_token"]
    await rotated(client, answers[0][1]["refresh_token"], 1)


async def test_a_family_survives_two_failovers_in_a_row(facade: Facade) -> None:
    """The store loses the rotations, the family resumes on a new branch, and a second failover loses
    that resumption too: the client's token (on a branch the store never saw) still works."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    state = await saved(facade, first)
    tokens = await rotated(client, first, 3)
    await lose_writes_since(facade, first, state)
    resumed = await rotated(client, tokens[-1], 2)
    await lose_writes_since(facade, first, state)
    await rotated(client, resumed[-1], 2)


async def test_a_forged_later_generation_changes_nothing(facade: Facade) -> None:
    """A token claiming a later generation without the facade's MAC (made up, or a real token with its
    generation bytes changed) is invalid_grant and the family, untouched, keeps working."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    family, _, secret = first.partition(".")
    raw = bytearray(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    assert len(raw) == LINEAGE_SECRET_BYTES
    raw[0:4] = struct.pack(">I", 7)
    edited = f"{family}." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    other_key, _ = type(refresh_tokens(facade.services.keyset))([b"k" * 32]).mint(family, Lineage(9, 0))
    before = await saved(facade, first)
    for forged in (edited, other_key):
        status, body = await client.refresh(forged)
        assert (status, body["error"]) == (400, "invalid_grant")
    assert await saved(facade, first) == before
    await rotated(client, first, 1)


async def test_an_ordinary_replay_of_an_older_generation_is_still_reuse(facade: Facade) -> None:
    """Without any loss, a rotated token of an earlier generation (past its grace) is reuse, as before."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    tokens = await rotated(client, first, 3)
    status, body = await client.refresh(tokens[1])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await client.refresh(tokens[3])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_revoking_a_token_the_store_lost_ends_the_family(facade: Facade) -> None:
    """RFC 7009 after a failover: the client revokes the token it holds, which the store never received;
    the family ends all the same, so no older token of the lost history can resume it."""
    client = facade.client()
    first = (await client.signed_in())["refresh_token"]
    state = await saved(facade, first)
    tokens = await rotated(client, first, 3)
    await lose_writes_since(facade, first, state)
    async with facade.http.post(facade.url + "/revoke", data={"token": tokens[-1], "client_id": client.client_id,
                                                              "token_type_hint": "refresh_token"}) as response:
        assert response.status == 200
    assert await facade.services.store.family_grant(family_of(first) or "") is None
    status, body = await client.refresh(tokens[2])
    assert (status, body["error"]) == (400, "invalid_grant")
