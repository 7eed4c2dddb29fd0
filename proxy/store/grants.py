"""Indexes of refresh families by subject and by client, so an operator lists grants without a scan.

Keys (after the prefix; a family id `F` is the Cluster hash tag of everything about one family):

    grants:all                      sorted set: family id -> the latest time (s) it can still live
    grants:sub:<sha256(sub)>        the same, of one subject's families
    grants:client:<sha256(id)>      the same, of one client's families
    grant-pending:{F}               "1" while a code for F may still be redeemed; "ended" once an
                                    operator ended F before its code was redeemed
    grants:ended:sub:<sha256(sub)>  when (ms) an operator last ended a subject's grants; approvals the
    grants:ended:client:<sha256>    user's browser remembers from before then no longer skip consent

Each index is one key (one Cluster slot) and every command names one key, so it works the same on a
Cluster; a family and its index entries live in different slots and cannot change in one atomic step.
So the index is written *ahead*: when the code that will open the family is issued, before the code
exists (one pipelined round trip; the pending marker goes with the code, in its MULTI, same slot).
Every family that can exist is therefore in all three indexes; an entry may outlive its family (idle
expiry, reuse, a revocation, a store that lost the family), never the other way round. Listing reads
each candidate family and removes an entry whose family is gone and can no longer appear: no pending
marker (it expires just after the code), and noted longer ago than a code lives. An entry's score is
the latest moment its family can live (code lifetime + absolute lifetime + a margin): entries past it
are removed at every write, and each index key expires with its latest entry, so indexes have the
lifetimes of their families (lowering PROXY_REFRESH_TOKEN_ABSOLUTE_TTL_S lets an index expire before
families opened under the old value).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.store.errors import redis_errors

if TYPE_CHECKING:
    from proxy.store.store import Store

#: Seconds an index entry outlives the latest possible end of its family (clock steps, slow requests).
INDEX_MARGIN_S = 600
#: Families read per pipeline while listing.
BATCH = 200
_FIELDS = ("data", "up", "created", "rot_ms", "rot_at", "abs_exp", "client")



@dataclass(frozen=True, slots=True)
class Grant:
    """One live refresh family as an operator sees it (no token, no secret)."""

    family: str
    sub: str
    client_id: str
    scope: str
    resource: str
    created: int  # s since the epoch: the code redemption that opened it
    last_used: int  # s: its last rotation, else `created`
    expires: int  # s: its absolute expiry
    upstream_grant: bool  # an upstream refresh token is held (revoked upstream when the family ends)

    def record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(float(value)) if value is not None else default
    except ValueError:
        return default


def _grant(family: str, fields: list[str | None]) -> Grant | None:
    data, up, created, rot_ms, rot_at, abs_exp, _client = fields
    if not data or abs_exp is None or _int(abs_exp) <= time.time():
        return None
    grant = json.loads(data)
    upstream = json.loads(up) if up else None
    created_s = _int(created)
    last = _int(rot_ms) // 1000 if rot_ms else _int(rot_at, created_s)
    return Grant(family=family, sub=str(grant.get("sub", "")), client_id=str(grant.get("client_id", "")),
                 scope=str(grant.get("scope", "")), resource=str(grant.get("resource", "")), created=created_s,
                 last_used=max(last, created_s), expires=_int(abs_exp),
                 upstream_grant=bool(upstream and upstream.get("refresh_token")))


class GrantIndex:
    """The named operations on the indexes; every method raises `StoreUnavailable` like the store's."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- keys ----------------------------------------------------------------------------------------
    def all_key(self) -> str:
        return self.store.key("grants", "all")

    def sub_key(self, sub: str) -> str:
        from proxy.store.store import digest

        return self.store.key("grants", "sub", digest(sub))

    def client_key(self, client_id: str) -> str:
        from proxy.store.store import digest

        return self.store.key("grants", "client", digest(client_id))

    def pending_key(self, family: str) -> str:
        return self.store.key("grant-pending", "{" + family + "}")

    def ended_key(self, kind: str, value: str) -> str:
        from proxy.store.store import digest

        return self.store.key("grants", "ended", kind, digest(value))

    # -- writing -------------------------------------------------------------------------------------
    async def note(self, family: str, *, sub: str, client_id: str) -> None:
        """Index a family whose code is about to be issued (write-ahead: before the code exists), in one
        round trip: add it, drop entries whose family has certainly ended, and let each index expire with
        its latest entry (the latest end is this one's while the lifetimes stay as configured)."""
        now = int(time.time())
        ends = now + self.store.code_ttl_s + self.store.refresh_absolute_ttl_s + INDEX_MARGIN_S
        with redis_errors("note_grant"):
            pipe = self.store.redis.pipeline(transaction=False)  # one key per command: any Cluster slot
            for key in (self.all_key(), self.sub_key(sub), self.client_key(client_id)):
                # execute_command: on every sign-in, and redis-py's typed wrappers re-check their arguments
                pipe.execute_command("ZADD", key, ends, family)
                pipe.execute_command("ZREMRANGEBYSCORE", key, "-inf", now)
                pipe.execute_command("EXPIREAT", key, ends)
            await pipe.execute()

    def pending_marker(self, pipe: Any, family: str) -> None:
        """Queue the marker "a code for `family` may still be redeemed" on the code's own MULTI (same
        slot, the family's hash tag), for as long as the code lives and a little longer."""
        pipe.execute_command("SET", self.pending_key(family), "1", "EX", self.store.code_ttl_s + 5)

    async def forget(self, family: str, *, sub: str | None, client_id: str | None) -> None:
        """Remove an ended family from the indexes (those not named are cleaned when next listed), and
        mark a code still pending for it as ended, so its redemption opens nothing."""
        keys = [self.all_key()] + ([self.sub_key(sub)] if sub else []) + (
            [self.client_key(client_id)] if client_id else [])
        with redis_errors("forget_grant"):
            await self.store.redis.set(self.pending_key(family), "ended", xx=True, keepttl=True)
            for key in keys:
                await self.store.redis.zrem(key, family)

    async def ended_before_redemption(self, family: str) -> bool:
        """True when an operator ended `family` while its code was still pending."""
        with redis_errors("grant_pending"):
            return await self.store.redis.get(self.pending_key(family)) == "ended"

    # -- reading -------------------------------------------------------------------------------------
    async def members(self, *, sub: str | None = None, client_id: str | None = None) -> list[str]:
        """Every family id the index of `sub` (or `client_id`, or all) holds that may still live,
        pending codes' families included: what ending a subject's or client's grants must visit."""
        key = self.sub_key(sub) if sub is not None else (
            self.client_key(client_id) if client_id is not None else self.all_key())
        with redis_errors("grant_members"):
            return list(await self.store.redis.zrangebyscore(key, int(time.time()), "+inf"))

    async def families(self, *, sub: str | None = None, client_id: str | None = None) -> list[Grant]:
        """The live families of `sub` and/or `client_id` (every one when neither), oldest first.

        Reads the smaller index's members only; removes entries whose family is gone for good."""
        key = self.sub_key(sub) if sub is not None else (
            self.client_key(client_id) if client_id is not None else self.all_key())
        now = int(time.time())
        with redis_errors("list_grants"):
            scored = await self.store.redis.zrangebyscore(key, now, "+inf", withscores=True)
        members = [member for member, _ in scored]
        # An entry noted within a code's lifetime may belong to a code not issued yet (the index is written
        # first, the pending marker with the code): never dropped, whatever the store shows.
        lifetime = self.store.code_ttl_s + self.store.refresh_absolute_ttl_s + INDEX_MARGIN_S
        young = {member for member, score in scored if score - lifetime > now - self.store.code_ttl_s - 5}
        found: list[Grant] = []
        gone: list[str] = []
        for start in range(0, len(members), BATCH):
            batch = members[start:start + BATCH]
            with redis_errors("list_grants"):
                pipe = self.store.redis.pipeline(transaction=False)
                for family in batch:
                    pipe.hmget(self.store.family_key(family), list(_FIELDS))
                    pipe.exists(self.pending_key(family))
                replies = await pipe.execute()
            for index, family in enumerate(batch):
                fields, pending = replies[2 * index], replies[2 * index + 1]
                grant = _grant(family, fields)
                if grant is None:
                    if not pending and family not in young:  # ended, expired or lost; no code can open it
                        gone.append(family)
                    continue
                if (sub is None or grant.sub == sub) and (client_id is None or grant.client_id == client_id):
                    found.append(grant)
        if gone:
            with redis_errors("list_grants"):
                await self.store.redis.zrem(key, *gone)
        return sorted(found, key=lambda grant: (grant.created, grant.family))

    # -- consent approvals -----------------------------------------------------------------------------
    async def end_approvals(self, *, sub: str | None = None, client_id: str | None = None,
                            lifetime_s: int) -> None:
        """Record that approvals of `sub` (or of `client_id`) given before now no longer count; kept
        `lifetime_s` (the approvals' own lifetime: older ones have expired anyway)."""
        now_ms = time.time_ns() // 1_000_000
        with redis_errors("end_approvals"):
            for kind, value in (("sub", sub), ("client", client_id)):
                if value is not None:
                    await self.store.redis.set(self.ended_key(kind, value), now_ms, ex=max(1, lifetime_s))

    async def approvals_ended(self, sub: str, client_id: str, approved_ms: int) -> bool:
        """True when an operator ended `sub`'s or `client_id`'s grants after an approval given at
        `approved_ms` (ms): that approval must not skip the consent page any more."""
        with redis_errors("approvals_ended"):
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.get(self.ended_key("sub", sub))
            pipe.get(self.ended_key("client", client_id))
            ended = await pipe.execute()
        return any(value is not None and _int(value) >= approved_ms for value in ended)
