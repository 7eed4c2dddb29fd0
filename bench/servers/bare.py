"""The bare implementation: a measuring baseline, NOT product code. Never deploy it.

The project's goal is "DCR, a whole flow and refresh at >= 0.85 of a bare implementation doing the
same Redis, upstream and signing work". This is that implementation: the same wire protocol as the
facade on the same paths (so the load generator drives both alike), and per request exactly the
facade's Redis commands in the facade's round trips (tests/test_round_trips.py counts the facade's),
with none of its validation, error mapping, middleware or logging:

    POST /register        SET client                                                      (1 round trip)
    GET  /authorize       EVALSHA load-client; SET tx                                     (2)
    GET  /callback        GETDEL tx; upstream POST /token; RS256 verify of the id_token;
                          grant indexes (3 x ZADD / ZREMRANGEBYSCORE / EXPIREAT, pipelined);
                          MULTI HSET code / EXPIRE / SET pending marker / EXEC            (3 + 1 upstream)
    POST /token (code)    EVALSHA load-client; GET pending marker; EVALSHA redeem;
                          EVALSHA activate-client; 2 RS256 signatures                     (4)
    POST /token (refresh) EVALSHA load-client; EVALSHA rotate; 2 RS256 signatures         (2)

The Lua scripts are the facade's own (imported from `proxy.store.scripts`), run with the same
arguments, so Redis does the same work for both. The libraries are the facade's (aiohttp, uvloop,
redis.asyncio with hiredis, joserfc) with the facade's client settings, so the ratio isolates the
facade's own Python.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from joserfc import jwk, jwt

from bench.servers.common import run
from proxy.store.scripts import REDEEM_CODE, ROTATE_REFRESH
from proxy.store.store import ACTIVATE_CLIENT, LOAD_CLIENT

PREFIX = "bare:"
CLIENT_TTL_S = 30 * 86400
UNUSED_CLIENT_TTL_S = 86400
INDEX_MARGIN_S = 600
TX_TTL_S = 600
CODE_TTL_S = 60
REFRESH_IDLE_S = 30 * 86400
REFRESH_ABSOLUTE_S = 90 * 86400
GRACE_S = 30
TOKEN_TTL_S = 3600
STATE: web.AppKey[Bare] = web.AppKey("bare", object)  # type: ignore[arg-type]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def bad(error: str) -> web.Response:
    return json_response({"error": error}, 400)


class Bare:
    """Everything resolved once at start-up: Redis, the upstream session, metadata, keys, scripts."""

    def __init__(self, issuer: str, redis_url: str, upstream: str, client_id: str, secret: str) -> None:
        self.issuer = issuer
        self.redis_url = redis_url
        self.upstream_issuer = upstream
        self.callback = issuer + "/callback"
        self.client_id = client_id
        self.basic = "Basic " + base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
                                                 .encode()).decode()
        self.key = jwk.RSAKey.generate_key(2048, auto_kid=True)
        self.resource = issuer + "/mcp"

    async def start(self, app: web.Application) -> AsyncIterator[None]:
        self.redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=2.0,
                                             socket_connect_timeout=2.0, health_check_interval=30)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0),
                                          connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300))
        self.redeem = self.redis.register_script(REDEEM_CODE)
        self.rotate = self.redis.register_script(ROTATE_REFRESH)
        self.load_script = self.redis.register_script(LOAD_CLIENT)
        self.activate_script = self.redis.register_script(ACTIVATE_CLIENT)
        async with self.http.get(self.upstream_issuer + "/.well-known/openid-configuration") as response:
            self.metadata = await response.json()
        async with self.http.get(self.metadata["jwks_uri"]) as response:
            self.upstream_keys = jwk.KeySet.import_key_set(await response.json())
        yield
        await self.http.close()
        await self.redis.aclose()

    def key_of(self, *parts: str) -> str:
        return PREFIX + ":".join(parts)

    async def load_client(self, client_id: str) -> str | None:
        return await self.load_script(keys=[self.key_of("client", client_id)],
                                      args=[CLIENT_TTL_S, UNUSED_CLIENT_TTL_S])

    async def note_grant(self, family: str, sub: str, client_id: str) -> None:
        """The facade's grant indexes (all, by subject, by client), written ahead of the code."""
        now = int(time.time())
        ends = now + CODE_TTL_S + REFRESH_ABSOLUTE_S + INDEX_MARGIN_S
        pipe = self.redis.pipeline(transaction=False)
        for key in (self.key_of("grants", "all"), self.key_of("grants", "sub", sha(sub)),
                    self.key_of("grants", "client", sha(client_id))):
            pipe.zadd(key, {family: ends})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.expireat(key, ends)
        await pipe.execute()

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": typ}, claims, self.key)

    def tokens(self, grant: dict[str, Any], family: str, refresh_token: str) -> dict[str, Any]:
        """The facade's two signatures, over claim sets of the same shape and size."""
        now = int(time.time())
        access = self.sign({"iss": self.issuer, "sub": grant["sub"], "aud": grant["resource"],
                            "client_id": grant["client_id"], "scope": grant["scope"], "iat": now,
                            "exp": now + TOKEN_TTL_S, "jti": secrets.token_urlsafe(16), "sid": family,
                            "auth_time": grant["auth_time"]}, typ="at+jwt")
        at_hash = base64.urlsafe_b64encode(hashlib.sha256(access.encode()).digest()[:16]).rstrip(b"=").decode()
        claims = {**grant["claims"], "iss": self.issuer, "sub": grant["sub"], "aud": grant["client_id"],
                  "azp": grant["client_id"], "iat": now, "exp": now + TOKEN_TTL_S,
                  "auth_time": grant["auth_time"], "at_hash": at_hash, "sid": family}
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        return {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL_S,
                "scope": grant["scope"], "refresh_token": refresh_token, "id_token": self.sign(claims)}


async def register(request: web.Request) -> web.Response:
    bare = request.app[STATE]
    metadata = json.loads(await request.read())
    client_id = secrets.token_urlsafe(24)
    record = {"redirect_uris": metadata["redirect_uris"], "grant_types": ["authorization_code", "refresh_token"],
              "response_types": ["code"], "token_endpoint_auth_method": "none", "client_id": client_id,
              "client_id_issued_at": int(time.time())}
    await bare.redis.set(bare.key_of("client", client_id), json.dumps(record), ex=UNUSED_CLIENT_TTL_S)
    return json_response(record, 201)


async def authorize(request: web.Request) -> web.Response:
    bare = request.app[STATE]
    query = request.query
    raw = await bare.load_client(query.get("client_id", ""))
    if raw is None or query.get("redirect_uri") not in json.loads(raw)["redirect_uris"]:
        return web.Response(status=400, text="unknown client or redirect_uri")
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    record = {"client_id": query["client_id"], "redirect_uri": query["redirect_uri"],
              "state": query.get("state"), "code_challenge": query["code_challenge"],
              "scope": query.get("scope", "openid"), "resource": bare.resource, "nonce": query.get("nonce"),
              "up_verifier": verifier, "up_nonce": nonce}
    await bare.redis.set(bare.key_of("tx", sha(state)), json.dumps(record), ex=TX_TTL_S)
    params = {"response_type": "code", "client_id": bare.client_id, "redirect_uri": bare.callback,
              "scope": "openid email profile offline_access", "state": state, "code_challenge": s256(verifier),
              "code_challenge_method": "S256", "nonce": nonce}
    return web.Response(status=302, headers={"Location": bare.metadata["authorization_endpoint"] + "?"
                                             + urlencode(params), "Cache-Control": "no-store"})


async def callback(request: web.Request) -> web.Response:
    bare = request.app[STATE]
    raw = await bare.redis.getdel(bare.key_of("tx", sha(request.query.get("state", ""))))
    if raw is None:
        return web.Response(status=400, text="unknown state")
    record = json.loads(raw)
    form = {"grant_type": "authorization_code", "code": request.query["code"], "redirect_uri": bare.callback,
            "code_verifier": record["up_verifier"]}
    async with bare.http.post(bare.metadata["token_endpoint"], data=form,
                              headers={"Authorization": bare.basic, "Accept": "application/json"}) as response:
        upstream = json.loads(await response.read())
    claims = jwt.decode(upstream["id_token"], bare.upstream_keys, algorithms=["RS256"]).claims
    now = int(time.time())
    if (claims["iss"] != bare.upstream_issuer or claims["aud"] != bare.client_id
            or claims.get("nonce") != record["up_nonce"] or claims["exp"] < now):
        return web.Response(status=400, text="bad id_token")
    family = secrets.token_urlsafe(16)
    code = f"{family}.{secrets.token_urlsafe(32)}"
    grant = {"client_id": record["client_id"], "sub": claims["sub"], "scope": record["scope"],
             "resource": record["resource"], "nonce": record["nonce"],
             "claims": {name: claims[name] for name in ("email", "email_verified", "name") if name in claims},
             "auth_time": claims.get("auth_time", now)}
    up = {"access_token": upstream["access_token"], "expires_at": now + int(upstream["expires_in"]),
          "refresh_token": upstream["refresh_token"]}
    tag = "{" + family + "}"
    key = bare.key_of("code", tag, sha(code))
    await bare.note_grant(family, claims["sub"], record["client_id"])
    pipe = bare.redis.pipeline(transaction=True)
    pipe.hset(key, mapping={"client_id": record["client_id"], "redirect_uri": record["redirect_uri"],
                            "challenge": record["code_challenge"], "data": json.dumps(grant), "up": json.dumps(up)})
    pipe.expire(key, CODE_TTL_S)
    pipe.set(bare.key_of("grant-pending", tag), "1", ex=CODE_TTL_S + 5)
    await pipe.execute()
    location = record["redirect_uri"] + "?" + urlencode({"code": code, "state": record["state"],
                                                         "iss": bare.issuer})
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


async def token(request: web.Request) -> web.Response:
    bare = request.app[STATE]
    form = dict(parse_qsl((await request.read()).decode()))
    client_id = form.get("client_id", "")
    now = int(time.time())
    if form.get("grant_type") == "authorization_code":
        code = form["code"]
        family = code.partition(".")[0]
        tag = "{" + family + "}"
        refresh = f"{family}.{secrets.token_urlsafe(32)}"
        # The facade looks the client up at /token for every grant (an unknown one is invalid_client,
        # RFC 6749 §5.2), asks whether an operator ended the grant while its code was pending, and
        # keeps a registration PROXY_CLIENT_TTL_S once a code is redeemed: the same round trips here.
        if await bare.load_client(client_id) is None:
            return bad("invalid_client")
        if await bare.redis.get(bare.key_of("grant-pending", tag)) == "ended":
            return bad("invalid_grant")
        result = await bare.redeem(
            keys=[bare.key_of("code", tag, sha(code)), bare.key_of("code-used", tag, sha(code)),
                  bare.key_of("family", tag)],
            args=[client_id, form.get("redirect_uri", ""), s256(form["code_verifier"]), now, REFRESH_IDLE_S,
                  sha(refresh), CODE_TTL_S + GRACE_S + 600, now + REFRESH_ABSOLUTE_S])
        if result[0] != "ok":
            return bad("invalid_grant")
        await bare.activate_script(keys=[bare.key_of("client", client_id)], args=[CLIENT_TTL_S])
        return json_response(bare.tokens(json.loads(result[1]), family, refresh))
    if form.get("grant_type") == "refresh_token":
        presented = form["refresh_token"]
        family = presented.partition(".")[0]
        if await bare.load_client(client_id) is None:
            return bad("invalid_client")
        secret = secrets.token_urlsafe(32)
        new_token = f"{family}.{secret}"
        result = await bare.rotate(keys=[bare.key_of("family", "{" + family + "}")],
                                   args=[sha(presented), sha(new_token), secret, now, GRACE_S, REFRESH_IDLE_S,
                                         client_id])
        if result[0] != "rotated":
            return bad("invalid_grant")
        return json_response(bare.tokens(json.loads(result[1]), family, new_token))
    return bad("unsupported_grant_type")


def create_app(bare: Bare) -> web.Application:
    app = web.Application()
    app[STATE] = bare
    app.cleanup_ctx.append(bare.start)
    app.router.add_post("/register", register)
    app.router.add_get("/authorize", authorize)
    app.router.add_get("/callback", callback)
    app.router.add_post("/token", token)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--upstream-issuer", required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args()
    secret = os.environ["BENCH_UPSTREAM_SECRET"]
    bare = Bare(f"http://127.0.0.1:{args.port}", args.redis_url, args.upstream_issuer, args.client_id, secret)
    run(create_app(bare), args.port)


if __name__ == "__main__":
    main()
