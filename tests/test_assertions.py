"""JWT assertions (proxy/token/assertions.py) against real keys and the real store (fakeredis and a
redis-server): each check refuses what it exists to refuse, before anything is stored, and a jti is
single use across two stores sharing one Redis (two replicas)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from typing import Any

import pytest
from joserfc import jwk, jwt
from joserfc.errors import SecurityWarning

from proxy.clients.jwks import KeySetUnavailable, public_key_set
from proxy.store import Store
from proxy.token.assertions import ALGORITHMS, AssertionRejected, Expected, unverified_claims, verify_assertion

AS = "https://as.example.com"
CLIENT = "https://client.example.com/client.json"
RSA = jwk.generate_key("RSA", 2048, parameters={"kid": "rsa-1"})
EC = jwk.generate_key("EC", "P-256", parameters={"kid": "ec-1"})
ED = jwk.generate_key("OKP", "Ed25519", parameters={"kid": "ed-1"})
OTHER = jwk.generate_key("RSA", 2048, parameters={"kid": "rsa-1"})  # same kid, another key
KEYS = public_key_set({"keys": [k.as_dict(private=False) for k in (RSA, EC, ED)]})
EXPECTED = Expected(issuer=CLIENT, subject=CLIENT, audiences=(AS, AS + "/token"))


def store(redis: Any) -> Store:
    return Store(redis, prefix="t:", code_ttl_s=60, transaction_ttl_s=60, client_ttl_s=60, refresh_idle_ttl_s=60,
                 refresh_absolute_ttl_s=60, refresh_grace_s=5)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"iss": CLIENT, "sub": CLIENT, "aud": AS, "iat": now, "exp": now + 60, "jti": f"j-{time.time_ns()}"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def sign(body: dict[str, Any], key: Any = RSA, alg: str = "RS256", **header: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns on "EdDSA" (RFC 9864)
        return jwt.encode({"alg": alg, "kid": key.kid, **header}, body, key, algorithms=[alg])


def unsigned(body: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{b64(header)}.{b64(body)}."


async def keys(kid: str | None) -> jwk.KeySet:
    return KEYS


async def check(redis: Any, token: str, expected: Expected = EXPECTED) -> dict[str, Any]:
    return await verify_assertion(token, keys=keys, expected=expected, replay=store(redis))


@pytest.mark.parametrize(("key", "alg"), [(RSA, "RS256"), (RSA, "PS256"), (EC, "ES256"), (ED, "EdDSA"),
                                          (ED, "Ed25519")])
async def test_each_asymmetric_alg_verifies(redis_client: Any, key: Any, alg: str) -> None:
    """RS256, PS256, ES256 and EdDSA (Ed25519) assertions verify; the claims come back."""
    body = claims()
    assert (await check(redis_client, sign(body, key, alg)))["jti"] == body["jti"]


async def test_token_endpoint_audience_and_array_audience_accepted(redis_client: Any) -> None:
    """aud may be the token endpoint URL, or an array holding an expected value (RFC 7523 §3)."""
    await check(redis_client, sign(claims(aud=AS + "/token")))
    await check(redis_client, sign(claims(aud=["https://elsewhere", AS])))


async def refused(redis: Any, token: str, match: str, expected: Expected = EXPECTED) -> None:
    before = set(await redis.keys("*"))
    with pytest.raises(AssertionRejected, match=match):
        await check(redis, token, expected)
    assert set(await redis.keys("*")) == before  # nothing stored on a refusal


REFUSALS: dict[str, tuple[Any, str]] = {
    "alg none": (lambda: unsigned(claims(), {"alg": "none", "kid": "rsa-1"}), "never none"),
    "HS256 with the public key as secret": (
        lambda: jwt.encode({"alg": "HS256", "kid": "rsa-1"}, claims(),
                           jwk.OctKey.import_key(json.dumps(RSA.as_dict(private=False)).encode()),
                           algorithms=["HS256"]), "never none"),
    "RS512 (not offered)": (lambda: sign(claims(), RSA, "RS512"), "must be signed"),
    "another key under the same kid": (lambda: sign(claims(), OTHER), "signature"),
    "unknown kid": (lambda: sign(claims(), jwk.generate_key("RSA", 2048, parameters={"kid": "nope"})), "kid"),
    "no kid among several keys": (lambda: jwt.encode({"alg": "RS256"}, claims(), RSA, algorithms=["RS256"]),
                                  "more than one key"),
    "RSA alg on the EC key": (lambda: unsigned(claims(), {"alg": "RS256", "kid": "ec-1"}) + "AAAA", "does not fit"),
    "crit header": (lambda: unsigned(claims(), {"alg": "RS256", "kid": "rsa-1", "crit": ["x"], "x": 1}) + "AAAA",
                    "critical"),
    "foreign aud": (lambda: sign(claims(aud="https://other-as.example.com")), "aud"),
    "no aud": (lambda: sign(claims(aud=None)), "aud"),
    "other iss": (lambda: sign(claims(iss="https://evil.example.com/c.json")), "iss"),
    "other sub": (lambda: sign(claims(sub="someone-else")), "sub"),
    "expired": (lambda: sign(claims(exp=int(time.time()) - 120)), "expired"),
    "missing exp": (lambda: sign(claims(exp=None)), "no exp"),
    "exp far ahead": (lambda: sign(claims(exp=int(time.time()) + 3600)), "ahead"),
    "exp not a number": (lambda: sign(claims(exp="soon")), "not a number"),
    "iat in the future": (lambda: sign(claims(iat=int(time.time()) + 600, exp=int(time.time()) + 200)), "iat"),
    "nbf in the future": (lambda: sign(claims(nbf=int(time.time()) + 200)), "nbf"),
    "missing jti": (lambda: sign(claims(jti=None)), "jti"),
    "not a JWT": (lambda: "abc.def", "compact JWS"),
    "payload not an object": (lambda: jwt.encode({"alg": "RS256", "kid": "rsa-1"}, claims(), RSA)[:-3] + "abc",
                              "signature"),
}


@pytest.mark.parametrize("case", REFUSALS.keys())
async def test_refusals(redis_client: Any, case: str) -> None:
    """Each check refuses its case with a message naming it, and stores nothing (no jti recorded)."""
    make, match = REFUSALS[case]
    await refused(redis_client, make(), match)


async def test_required_typ(redis_client: Any) -> None:
    """With a required typ (ID-JAG's oauth-id-jag+jwt) another typ or none is refused."""
    expected = Expected(issuer=CLIENT, subject=None, audiences=(AS,), typ="oauth-id-jag+jwt")
    await refused(redis_client, sign(claims()), "typ", expected)
    await refused(redis_client, sign(claims(), typ="JWT"), "typ", expected)
    assert await check(redis_client, sign(claims(sub="user-1"), typ="oauth-id-jag+jwt"), expected)


async def test_jti_is_single_use_across_replicas_until_exp(redis_client: Any) -> None:
    """The same assertion at two replicas (two stores, one Redis), even concurrently: one succeeds. The
    record lives until exp (plus leeway), no longer."""
    token = sign(claims(exp=int(time.time()) + 90))
    results = await asyncio.gather(
        *(verify_assertion(token, keys=keys, expected=EXPECTED, replay=store(redis_client)) for _ in range(8)),
        return_exceptions=True)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all(isinstance(r, AssertionRejected) and "used before" in str(r) for r in results if not isinstance(r, dict))
    (key,) = await redis_client.keys("t:jti:*")
    assert 90_000 < await redis_client.pttl(key) <= 90_000 + 31_000 + 1000


async def test_same_jti_from_two_issuers_are_separate(redis_client: Any) -> None:
    """The jti is recorded per issuer: another client's jti cannot block this one."""
    jti = "shared-jti"
    await check(redis_client, sign(claims(jti=jti)))
    other = Expected(issuer="https://b.example.com/c.json", subject="https://b.example.com/c.json", audiences=(AS,))
    await check(redis_client, sign(claims(jti=jti, iss=other.issuer, sub=other.issuer)), other)


async def test_key_lookup_failure_is_a_rejection(redis_client: Any) -> None:
    """A key set that cannot be fetched becomes AssertionRejected, which callers map to one error."""
    async def down(kid: str | None) -> jwk.KeySet:
        raise KeySetUnavailable("the key set at keys.example could not be fetched: HTTP 503")
    with pytest.raises(AssertionRejected, match="could not be fetched"):
        await verify_assertion(sign(claims()), keys=down, expected=EXPECTED, replay=store(redis_client))


def test_unverified_claims_and_algorithms() -> None:
    """The payload is readable before verification (to pick the keys); no symmetric alg is offered."""
    assert unverified_claims(sign(claims(sub="x")))["sub"] == "x"
    with pytest.raises(AssertionRejected):
        unverified_claims("a.b")
    assert not any(alg.startswith("HS") or alg == "none" for alg in ALGORITHMS)
