"""The store contract: every Redis key the facade writes, its lifetime, and its atomic operation.

Keys (after the configurable prefix; ``{F}`` is a grant family id used as a Cluster hash tag):

    client:<client_id>          registration JSON              unused_client_ttl_s (or less) until its first
                                                               code redemption, then client_ttl_s, refreshed on use
                                                               (activated: the JSON ends with a newline)
    tx:<sha256(state)>          sign-in transaction JSON       transaction_ttl_s, taken once (GETDEL)
    consent:<sha256(id)>        pending consent JSON           transaction_ttl_s, taken once (GETDEL)
    code:{F}:<sha256(code)>     authorization code (hash)      code_ttl_s, redeemed once (Lua)
    code-used:{F}:<sha256>      marker of a redeemed code      refresh_grace_s + code_ttl_s
    family:{F}                  refresh family (hash)          idle ttl, capped by absolute expiry
                                cur/prev: token hashes; rot_ms, grace, handed: the last rotation's
                                grace window; abs_exp: absolute expiry (s); data, up: the grant;
                                gen, branch: the current token's lineage (absent = 0)
    uplock:{F}                  one upstream refresh at a time the upstream refresh timeout (ms), released after
    revoked:<jti>               revoked access token           the token's remaining lifetime
    keys                        generated signing JWKS         a year, renewed at every start
    grants:*, grant-pending:{F} indexes of families by subject and client (see proxy/store/grants.py)
    rate:<bucket>:<window>      rate-limit counter             the window
    jti:<sha256(iss, jti)>      a JWT assertion was used       until the assertion's exp (+ leeway)
    client-keys:<sha256(id)>    a CIMD client's key source     longer than any grant it can hold
                                (private_key_jwt: jwks_uri or jwks, from its document at /authorize)

Codes and refresh tokens are stored only as SHA-256 hashes; a refresh token is ``<F>.<secret>`` so
its family is found without an index. The family id is public, so naming a family proves nothing: a
replay is reuse only when the caller says the token is one the facade issued (its MAC, checked before
the store is asked; see proxy/token/sealing.py).
Every method raises `StoreUnavailable` when Redis cannot answer; nothing else leaks out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from proxy.store import scripts
from proxy.store.errors import redis_errors
from proxy.store.grants import GrantIndex

Json = dict[str, Any]
KEYSET_TTL_S = 365 * 86400

# KEYS[1] client key; ARGV[1] client_ttl_s, ARGV[2] unused_client_ttl_s. A registration used for a
# sign-in is *activated* (ACTIVATE_CLIENT): its JSON ends with a newline, which JSON readers ignore. Only
# an activated registration is renewed by a lookup, however short PROXY_CLIENT_TTL_S is and however
# little of it is left (issue 23: a remaining lifetime was the marker, so a registration with
# PROXY_CLIENT_TTL_S of a day or less, or in its last day, expired while in use). A remaining lifetime
# above the unused one still counts, for registrations activated before the marker existed.
LOAD_CLIENT = """
local raw = redis.call('GET', KEYS[1])
if raw and (string.sub(raw, -1) == '\\n' or redis.call('TTL', KEYS[1]) > tonumber(ARGV[2])) then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return raw
"""

# KEYS[1] client key; ARGV[1] client_ttl_s. Mark the registration used for a sign-in (append the newline
# once; the lifetime is kept by APPEND) and keep it client_ttl_s from now. 0 when it is gone.
ACTIVATE_CLIENT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if string.sub(raw, -1) ~= '\\n' then redis.call('APPEND', KEYS[1], '\\n') end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def family_of(token: str) -> str | None:
    """The family id a code or refresh token names, or None when it is not of our shape."""
    family, dot, secret = token.partition(".")
    if not dot or not family or not secret or "{" in family or "}" in family:
        return None
    return family


@dataclass(frozen=True, slots=True)
class RedeemedCode:
    """What a code redemption found: `status` is ok, unknown, reused or mismatch."""

    status: str
    grant: Json | None = None
    upstream: Json | None = None
    mismatch: str | None = None


@dataclass(frozen=True, slots=True)
class FamilyGrant:
    grant: Json
    upstream: Json | None


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """`status`: rotated, resumed, grace, unknown, expired, mismatch (another client's) or reuse.

    `sealed` is the successor on grace; on reuse `family.upstream` is what to revoke upstream; `undo` is
    what `undo_rotation` needs to put a rotation back. `resumed` is a rotation from a successor the store
    had lost (a failover, see scripts.ROTATE_REFRESH); `successor` the token stored by either."""

    status: str
    family: FamilyGrant | None = None
    sealed: str | None = None
    undo: tuple[str, ...] | None = None
    successor: str | None = None


class _Script:
    """A Lua script run as EVALSHA through `execute_command`, loaded again after NOSCRIPT (a Redis that
    restarted, failed over or flushed its scripts). redis-py's Script object re-imports and re-checks its
    client type on every call: about 6 µs more per call, on every sign-in and refresh."""

    __slots__ = ("redis", "sha", "text")

    def __init__(self, redis: Any, text: str) -> None:
        self.redis = redis
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

    async def __call__(self, keys: list[str] | tuple[str, ...] = (), args: list[Any] | tuple[Any, ...] = ()) -> Any:
        try:
            return await self.redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self.redis.script_load(self.text)
            return await self.redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


def _load(raw: str | None) -> Json | None:
    return json.loads(raw) if raw else None


def _before(abs_exp: str | None) -> bool:
    """True while a family's absolute expiry (seconds, as stored) lies ahead; a missing family is over."""
    return abs_exp is not None and time.time() < int(abs_exp)


class Store:
    """Named, atomic operations over one Redis client (or fakeredis)."""

    def __init__(self, redis: Any, *, prefix: str, code_ttl_s: int, transaction_ttl_s: int,
                 client_ttl_s: int, refresh_idle_ttl_s: int, refresh_absolute_ttl_s: int,
                 refresh_grace_s: int, unused_client_ttl_s: int | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.code_ttl_s = code_ttl_s
        self.transaction_ttl_s = transaction_ttl_s
        self.client_ttl_s = client_ttl_s
        self.unused_client_ttl_s = min(unused_client_ttl_s or client_ttl_s, client_ttl_s)
        self.refresh_idle_ttl_s = refresh_idle_ttl_s
        self.refresh_absolute_ttl_s = refresh_absolute_ttl_s
        self.refresh_grace_s = refresh_grace_s
        self._redeem = _Script(redis, scripts.REDEEM_CODE)
        self._rotate = _Script(redis, scripts.ROTATE_REFRESH)
        self._undo = _Script(redis, scripts.UNDO_ROTATION)
        self._set_if_exists = _Script(redis, scripts.SET_IF_EXISTS)
        self._take_family = _Script(redis, scripts.TAKE_FAMILY)
        self._load_client = _Script(redis, LOAD_CLIENT)
        self._activate_client = _Script(redis, ACTIVATE_CLIENT)
        self._release_lock = _Script(redis, scripts.RELEASE_LOCK)
        self.grants = GrantIndex(self)  # per-subject and per-client indexes of the families

    # -- keys ----------------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def family_key(self, family: str) -> str:
        return self.key("family", "{" + family + "}")

    # -- health ------------------------------------------------------------------------------------
    async def ping(self) -> None:
        with redis_errors("ping"):
            await self.redis.ping()

    # -- clients (RFC 7591) ----------------------------------------------------------------------------
    async def save_client(self, client_id: str, record: Json | str, lifetime_s: int | None = None) -> None:
        """A new registration, kept `lifetime_s` (at most, and by default, the unused lifetime) until
        `activate_client`: one nobody signs in with costs its bytes for a day, not for PROXY_CLIENT_TTL_S.

        `record` may come serialised already (/register renders the same JSON it answers with).
        The hot-path commands go through execute_command: redis-py's typed wrappers re-check their
        arguments on every call, which costs more than the command's own parsing."""
        ttl = min(lifetime_s or self.unused_client_ttl_s, self.unused_client_ttl_s)
        with redis_errors("save_client"):
            document = record if isinstance(record, str) else json.dumps(record)
            document = document.rstrip("\n")  # a trailing newline marks an activated one (LOAD_CLIENT)
            await self.redis.execute_command("SET", self.key("client", client_id), document, "EX", ttl)

    async def load_client(self, client_id: str) -> Json | None:
        """The registration; a used one has its lifetime renewed (a client in use never expires), an
        unused one keeps its short lifetime however often it is looked up (see LOAD_CLIENT)."""
        with redis_errors("load_client"):
            raw = await self._load_client(keys=[self.key("client", client_id)],
                                          args=[self.client_ttl_s, self.unused_client_ttl_s])
        return _load(raw)

    async def activate_client(self, client_id: str) -> None:
        """The registration was used for a sign-in (a code redeemed): keep it PROXY_CLIENT_TTL_S from now."""
        with redis_errors("activate_client"):
            await self._activate_client(keys=[self.key("client", client_id)], args=[self.client_ttl_s])

    # -- sign-in transactions --------------------------------------------------------------------------
    async def start_transaction(self, state: str, record: Json) -> None:
        with redis_errors("start_transaction"):
            await self.redis.execute_command("SET", self.key("tx", digest(state)), json.dumps(record),
                                             "EX", self.transaction_ttl_s)

    async def take_transaction(self, state: str) -> Json | None:
        """The transaction for an upstream `state`, consumed: a second callback finds nothing."""
        with redis_errors("take_transaction"):
            return _load(await self.redis.execute_command("GETDEL", self.key("tx", digest(state))))

    async def put_pending_consent(self, consent_id: str, record: Json) -> None:
        with redis_errors("put_pending_consent"):
            await self.redis.set(self.key("consent", digest(consent_id)), json.dumps(record),
                                 ex=self.transaction_ttl_s)

    async def take_pending_consent(self, consent_id: str) -> Json | None:
        with redis_errors("take_pending_consent"):
            return _load(await self.redis.getdel(self.key("consent", digest(consent_id))))

    # -- authorization codes -----------------------------------------------------------------------------
    def _code_keys(self, code: str) -> tuple[str, str, str] | None:
        family = family_of(code)
        if family is None:
            return None
        tag = "{" + family + "}"
        return (self.key("code", tag, digest(code)), self.key("code-used", tag, digest(code)),
                self.family_key(family))

    async def issue_code(self, code: str, *, client_id: str, redirect_uri: str, challenge: str,
                         grant: Json, upstream: Json | None) -> None:
        keys = self._code_keys(code)
        assert keys is not None, "codes are minted as <family>.<secret>"
        fields = {"client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge,
                  "data": json.dumps(grant), "up": json.dumps(upstream) if upstream else ""}
        family = family_of(code)
        assert family is not None
        await self.grants.note(family, sub=str(grant["sub"]), client_id=client_id)  # ahead of the code
        with redis_errors("issue_code"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.execute_command("HSET", keys[0], *(item for pair in fields.items() for item in pair))
            pipe.execute_command("EXPIRE", keys[0], self.code_ttl_s)
            self.grants.pending_marker(pipe, family)
            await pipe.execute()

    async def redeem_code(self, code: str, *, client_id: str, redirect_uri: str, challenge: str,
                          refresh_hash: str) -> RedeemedCode:
        """Atomically check and consume a code and open its refresh family.

        A second redemption finds the used-marker and revokes the family the first one opened
        (RFC 6749 §4.1.2: the server SHOULD revoke tokens issued from a replayed code).
        """
        keys = self._code_keys(code)
        if keys is None:
            return RedeemedCode("unknown")
        now = int(time.time())
        with redis_errors("redeem_code"):
            result = await self._redeem(keys=list(keys), args=[
                client_id, redirect_uri, challenge, now, self.refresh_idle_ttl_s, refresh_hash,
                self.code_ttl_s + self.refresh_grace_s + 600, now + self.refresh_absolute_ttl_s])
        status = result[0]
        if status == "ok":
            return RedeemedCode("ok", grant=json.loads(result[1]), upstream=_load(result[2]))
        if status == "reused":  # the family is gone; its upstream grant is the caller's to revoke
            return RedeemedCode(status, upstream=_load(result[1]))
        return RedeemedCode(status, mismatch=result[1] if len(result) > 1 else None)

    # -- refresh families ----------------------------------------------------------------------------
    async def rotate_refresh(self, token: str, new_token: str, sealed_new: str, client_id: str, *,
                             issued: bool, lineage: tuple[int, int] | None = None,
                             resumed: tuple[str, str] | None = None) -> RefreshOutcome:
        """One atomic step of RFC 9700 §4.14.2 rotation; see scripts.ROTATE_REFRESH.

        `issued`: the token carries the facade's MAC, so if it is not current it is a replay (reuse);
        without it a token that is not current is unknown and changes nothing. `lineage`: its verified
        (generation, branch), None for a token without one; `resumed`: (token, sealed) of the successor
        to hand out when the store recognises the token as a successor it lost in a failover (status
        `resumed`; `RefreshOutcome.successor` says which token now stands)."""
        family = family_of(token)
        if family is None:
            return RefreshOutcome("unknown")
        now_ms = time.time_ns() // 1_000_000
        generation, branch = (str(lineage[0]), str(lineage[1])) if lineage else ("", "")
        resumed_token, resumed_sealed = resumed or ("", "")
        with redis_errors("rotate_refresh"):
            result = await self._rotate(keys=[self.family_key(family)], args=[
                digest(token), digest(new_token), sealed_new, now_ms, self.refresh_grace_s * 1000,
                self.refresh_idle_ttl_s, client_id, "1" if issued else "0", generation, branch,
                digest(resumed_token) if resumed_token else "", resumed_sealed])
        status = result[0]
        if status in ("rotated", "resumed"):
            grant = FamilyGrant(json.loads(result[1]), _load(result[2]))
            successor = new_token if status == "rotated" else resumed_token
            return RefreshOutcome(status, grant, undo=tuple(result[3:10]), successor=successor)
        if status == "grace":
            return RefreshOutcome("grace", FamilyGrant(json.loads(result[1]), _load(result[2])), sealed=result[3])
        if status == "reuse":
            return RefreshOutcome("reuse", FamilyGrant({}, _load(result[1])))
        return RefreshOutcome(status)

    async def undo_rotation(self, new_token: str, undo: tuple[str, ...]) -> bool:
        """Put a rotation back; False when it stands (its successor already reached a racer, or was used).

        `new_token` is the successor the rotation stored (`RefreshOutcome.successor`)."""
        family = family_of(new_token)
        assert family is not None
        now_ms = time.time_ns() // 1_000_000
        with redis_errors("undo_rotation"):
            done = await self._undo(keys=[self.family_key(family)], args=[digest(new_token), *undo, now_ms])
        return done == 1

    async def update_upstream(self, family: str, upstream: Json) -> bool:
        """Store a rotated upstream token set; False when the family was revoked meanwhile."""
        with redis_errors("update_upstream"):
            done = await self._set_if_exists(keys=[self.family_key(family)], args=["up", json.dumps(upstream)])
        return bool(done)

    async def revoke_family(self, family: str) -> FamilyGrant | None:
        """Delete a family; its upstream token set is returned so it can be revoked upstream."""
        with redis_errors("revoke_family"):
            up, data = await self._take_family(keys=[self.family_key(family)])
        return FamilyGrant(json.loads(data), _load(up)) if data else None

    async def refresh_token_current(self, family: str, token_hash: str, client_id: str | None,
                                    lineage: tuple[int, int] | None = None) -> bool:
        """True when the hash is the family's live token (and it belongs to `client_id`, when given).

        `lineage`: the token's verified (generation, branch); a later generation this store would resume
        from (see scripts.ROTATE_REFRESH: its rotation was lost in a failover) counts as live too, so
        revoking it after a failover still ends the family."""
        with redis_errors("refresh_token_current"):
            current, client, gen, branch = await self.redis.hmget(self.family_key(family),
                                                                  ["cur", "client", "gen", "branch"])
        if current is None:
            return False
        live = hmac.compare_digest(current, token_hash)
        if not live and lineage is not None:
            stored_gen, stored_branch = int(gen or 0), int(branch or 0)
            live = lineage[0] > stored_gen and (lineage[1] == stored_branch or lineage[1] > stored_gen)
        return live and (client_id is None or client == client_id)

    async def active_refresh_token(self, family: str, token_hash: str) -> FamilyGrant | None:
        """The grant when the hash is the family's live token and the family is before its absolute
        expiry (the key itself may outlive it by up to a rotation's rounding), else None."""
        with redis_errors("active_refresh_token"):
            current, abs_exp, data, up = await self.redis.hmget(self.family_key(family),
                                                                ["cur", "abs_exp", "data", "up"])
        if current is None or not data or not hmac.compare_digest(current, token_hash):
            return None
        if not _before(abs_exp):
            return None
        return FamilyGrant(json.loads(data), _load(up))

    async def family_grant(self, family: str) -> FamilyGrant | None:
        with redis_errors("family_grant"):
            data, up = await self.redis.hmget(self.family_key(family), ["data", "up"])
        return FamilyGrant(json.loads(data), _load(up)) if data else None

    async def lock_upstream_refresh(self, family: str, holder: str, ttl_ms: int) -> bool:
        """Take the family's upstream-refresh lock: two refreshes of one rotating upstream refresh token
        would make the IdP see reuse (and oidc-provider revokes the grant)."""
        with redis_errors("lock_upstream_refresh"):
            return bool(await self.redis.set(self.key("uplock", "{" + family + "}"), holder, nx=True, px=ttl_ms))

    async def unlock_upstream_refresh(self, family: str, holder: str) -> None:
        with redis_errors("unlock_upstream_refresh"):
            await self._release_lock(keys=[self.key("uplock", "{" + family + "}")], args=[holder])

    # -- access tokens ---------------------------------------------------------------------------------
    async def revoke_access_token(self, jti: str, remaining_s: int) -> None:
        with redis_errors("revoke_access_token"):
            await self.redis.set(self.key("revoked", jti), "1", ex=max(1, remaining_s))

    async def access_token_live(self, jti: str, family: str | None, registration: str | None = None) -> bool:
        """False when the token itself was revoked, or its family was revoked or reached its absolute
        expiry (a family that ends takes its access tokens' standing at /userinfo and /introspect along),
        or, when `registration` names a DCR client id, that client's registration no longer exists."""
        with redis_errors("access_token_live"):
            pipe = self.redis.pipeline(transaction=False)  # one round trip; several slots on a Cluster is fine
            pipe.exists(self.key("revoked", jti))
            if registration is not None:
                pipe.exists(self.key("client", registration))
            if family:
                pipe.hget(self.family_key(family), "abs_exp")
            revoked, *rest = await pipe.execute()
        registered = rest.pop(0) if registration is not None else True
        return not revoked and bool(registered) and all(_before(value) for value in rest)

    # -- signing keys shared by replicas ----------------------------------------------------------
    async def shared_keyset(self, candidate: str) -> str:
        """Keep `candidate` unless another replica stored a keyset first; return the winner."""
        with redis_errors("shared_keyset"):
            await self.redis.set(self.key("keys"), candidate, nx=True, ex=KEYSET_TTL_S)
            stored: str = await self.redis.getex(self.key("keys"), ex=KEYSET_TTL_S)
        return stored

    # -- JWT assertions (RFC 7523) ------------------------------------------------------------------
    async def use_jti(self, issuer: str, jti: str, ttl_ms: int) -> bool:
        """Record one use of the assertion `jti` of `issuer`; False when it was used before. One key, one
        SET NX PX: atomic on Redis, Sentinel and Cluster alike, so two replicas never both accept it."""
        name = digest(json.dumps([issuer, jti]))
        with redis_errors("use_jti"):
            return bool(await self.redis.set(self.key("jti", name), "1", nx=True, px=max(1, ttl_ms)))

    # -- key sources of CIMD clients that use private_key_jwt ---------------------------------------------
    async def save_client_keys(self, client_id: str, source: Json | None, ttl_s: int) -> None:
        """What /token and /revoke require of a CIMD client, from its document as /authorize last read it:
        `source` (jwks_uri or jwks) when it declares private_key_jwt, else None (the record is removed)."""
        key = self.key("client-keys", digest(client_id))
        with redis_errors("save_client_keys"):
            if source is None:
                await self.redis.delete(key)
            else:
                await self.redis.set(key, json.dumps(source), ex=ttl_s)

    async def client_keys(self, client_id: str) -> Json | None:
        with redis_errors("client_keys"):
            return _load(await self.redis.get(self.key("client-keys", digest(client_id))))

    # -- rate limits ---------------------------------------------------------------------------------
    async def hits(self, buckets: list[tuple[str, int]], *, peeked: list[tuple[str, int]] | None = None
                   ) -> list[tuple[int, int]]:
        """Count one hit in each (bucket, window), and read each `peeked` one without counting, in one
        round trip; (count, seconds left) for each, the counted ones first.

        Each counter is a key per fixed window that expires with it, so idle buckets cost nothing."""
        now = int(time.time())
        peeked = peeked or []
        windows = [now // window_s for _, window_s in (*buckets, *peeked)]
        with redis_errors("rate_limit"):
            pipe = self.redis.pipeline(transaction=False)
            for (bucket, window_s), window in zip(buckets, windows[:len(buckets)], strict=True):
                key = self.key("rate", bucket, str(window))
                pipe.incr(key)
                pipe.expire(key, window_s + 1)
            for (bucket, _), window in zip(peeked, windows[len(buckets):], strict=True):
                pipe.get(self.key("rate", bucket, str(window)))
            replies = await pipe.execute()
        counts = [int(replies[2 * index]) for index in range(len(buckets))]
        counts += [int(reply or 0) for reply in replies[2 * len(buckets):]]
        return [(count, (window + 1) * window_s - now)
                for count, (_, window_s), window in zip(counts, (*buckets, *peeked), windows, strict=True)]
