"""grant_type=refresh_token: rotation, the grace window for racers, reuse detection, upstream refresh."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time

from joserfc import jwt

from tests.conftest import Facade, FacadeFactory


async def family_keys(facade: Facade) -> list[str]:
    return [key for key in await facade.keys() if ":family:" in key]


async def test_refresh_rotates_and_keeps_the_identity(facade: Facade) -> None:
    """RFC 6749 §6 / RFC 9700 §4.14.2: a refresh returns new tokens for the same sub, iss, aud and scope,
    without a nonce, and the new refresh token works in turn."""
    client = facade.client()
    first = await client.signed_in()
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"]
    keys = await client.jwks()
    old, new = jwt.decode(first["id_token"], keys).claims, jwt.decode(second["id_token"], keys).claims
    assert (new["sub"], new["iss"], new["aud"]) == (old["sub"], old["iss"], old["aud"])
    assert "nonce" not in new
    status, _third = await client.refresh(second["refresh_token"])
    assert status == 200


async def test_a_racer_within_the_grace_window_gets_the_same_new_token(facade: Facade) -> None:
    """Concurrent Claude Code processes share one credential: all racers succeed with one new token."""
    client = facade.client()
    first = await client.signed_in()
    results = await asyncio.gather(*(client.refresh(first["refresh_token"]) for _ in range(6)))
    assert all(status == 200 for status, _ in results), results
    assert len({body["refresh_token"] for _, body in results}) == 1
    assert len(await family_keys(facade)) == 1
    status, _ = await client.refresh(results[0][1]["refresh_token"])
    assert status == 200


async def test_scope_may_only_narrow(facade: Facade) -> None:
    """RFC 6749 §6: a refresh may ask for less scope (and gets exactly that), never more; a later refresh
    without scope returns to the original grant."""
    client = facade.client()
    body = await client.signed_in()
    status, error = await client.refresh(body["refresh_token"], scope="openid offline_access email")
    assert (status, error["error"]) == (400, "invalid_scope")
    status, narrowed = await client.refresh(body["refresh_token"], scope="openid")
    assert status == 200, narrowed
    assert narrowed["scope"] == "openid"
    status, again = await client.refresh(narrowed["refresh_token"])
    assert again["scope"] == "openid offline_access"


async def test_resource_is_honoured_as_in_the_code_grant(facade: Facade) -> None:
    """RFC 8707 §2.2: a refresh for another resource is invalid_target; the authorized one is accepted in any
    normalised spelling."""
    client = facade.client()
    body = await client.signed_in()
    status, error = await client.refresh(body["refresh_token"], resource="https://other.example/mcp")
    assert (status, error["error"]) == (400, "invalid_target")
    status, ok = await client.refresh(body["refresh_token"], resource=facade.url.upper() + "/mcp/")
    assert status == 200, ok


async def test_expired_upstream_token_is_refreshed_upstream_and_the_rotation_stored(
        make_facade: FacadeFactory) -> None:
    """The IdP rotates refresh tokens and revokes on reuse: the facade keeps the newest one."""
    facade = await make_facade(idp={"access_token_ttl_s": 1})
    client = facade.client()
    body = await client.signed_in()
    for _ in range(3):
        status, body = await client.refresh(body["refresh_token"])
        assert status == 200, body
    refreshes = [r for r in facade.idp_state.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 3
    assert len({r["refresh_token"] for r in refreshes}) == 3


async def test_upstream_refusal_revokes_the_family(make_facade: FacadeFactory) -> None:
    """When the IdP refuses the upstream refresh (the user's grant was revoked there), the facade's refresh is
    invalid_grant and the family is deleted."""
    facade = await make_facade(idp={"access_token_ttl_s": 1})
    client = facade.client()
    body = await client.signed_in()
    facade.idp_state.refresh_tokens.clear()  # the user's upstream grant was revoked at the IdP
    status, error = await client.refresh(body["refresh_token"])
    assert (status, error["error"]) == (400, "invalid_grant")
    assert await family_keys(facade) == []


async def test_upstream_outage_answers_503_and_keeps_the_family(make_facade: FacadeFactory) -> None:
    """An unreachable upstream token endpoint is 503 temporarily_unavailable and loses nothing: the same
    refresh token works once the upstream is back."""
    facade = await make_facade(idp={"access_token_ttl_s": 1}, upstream_timeout_s=1)
    client = facade.client()
    body = await client.signed_in()
    metadata = await facade.services.upstream.metadata()
    real_token_endpoint = metadata["token_endpoint"]
    metadata["token_endpoint"] = "http://127.0.0.1:9/token"  # nothing listens: connection refused
    status, error = await client.refresh(body["refresh_token"])
    assert status == 503
    assert error["error"] == "temporarily_unavailable"
    metadata["token_endpoint"] = real_token_endpoint
    status, fresh = await client.refresh(body["refresh_token"])
    assert status == 200, fresh


async def test_family_has_an_idle_ttl_and_an_absolute_lifetime(make_facade: FacadeFactory) -> None:
    """PROXY_REFRESH_TOKEN_IDLE_TTL_S sets the family key's TTL and PROXY_REFRESH_TOKEN_ABSOLUTE_TTL_S its
    stored abs_exp."""
    facade = await make_facade(refresh_token_idle_ttl_s=1000, refresh_token_absolute_ttl_s=5000)
    client = facade.client()
    await client.signed_in()
    [key] = await family_keys(facade)
    assert 990 < await facade.redis.ttl(key) <= 1000
    abs_exp = int(await facade.redis.hget(key, "abs_exp"))
    assert abs(abs_exp - (time.time() + 5000)) < 10


async def test_a_family_rotated_by_the_previous_version_keeps_its_grace_window(facade: Facade) -> None:
    """Upgrading during a refresh race: a family the version before the MAC rotated (tokens without a
    MAC, `rot_at` in seconds, the successor sealed with the v1 pad) still gives the racer the same
    successor, and that successor still refreshes."""
    client = facade.client()
    first = await client.signed_in()
    family = first["refresh_token"].split(".")[0]
    [key] = await family_keys(facade)

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    old, new_secret = f"{family}.{b64(secrets.token_bytes(32))}", secrets.token_bytes(32)
    new = f"{family}.{b64(new_secret)}"
    pad = hmac.new(old.encode(), b"oauth-facade refresh grace v1", hashlib.sha256).digest()
    await facade.redis.hset(key, mapping={
        "cur": hashlib.sha256(new.encode()).hexdigest(), "prev": hashlib.sha256(old.encode()).hexdigest(),
        "rot_at": int(time.time()), "grace": b64(bytes(a ^ b for a, b in zip(new_secret, pad, strict=True)))})
    status, raced = await client.refresh(old)
    assert (status, raced["refresh_token"]) == (200, new)
    status, fresh = await client.refresh(new)
    assert status == 200, fresh
