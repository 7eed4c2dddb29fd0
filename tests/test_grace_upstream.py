"""The refresh grace path never hands out a near-expiry upstream token (issue 23 item 4).

PROXY_ACCESS_TOKEN_MODE=upstream gives the client the IdP's own access token. A racer replaying the
just-rotated refresh token in the grace window got the family's stored upstream token as it was, even
when it was about to expire; now it is refreshed upstream first, as the rotation path does.
"""

from __future__ import annotations

import json
import time

from proxy.store.store import family_of
from tests.conftest import FacadeFactory


async def test_a_grace_replay_refreshes_a_near_expiry_upstream_token(make_facade: FacadeFactory) -> None:
    """Rotate, let the stored upstream token near its expiry, replay the old refresh token in the grace
    window: the same successor, and a fresh upstream access token (not the one about to expire)."""
    facade = await make_facade(access_token_mode="upstream")
    client = facade.client()
    first = await client.signed_in()
    status, rotated = await client.refresh(first["refresh_token"])
    assert status == 200, rotated
    key = facade.services.store.family_key(family_of(first["refresh_token"]) or "")
    upstream = json.loads(await facade.redis.hget(key, "up"))
    upstream["expires_at"] = int(time.time()) + 5  # within PROXY_UPSTREAM_REFRESH_SKEW_S
    await facade.redis.hset(key, "up", json.dumps(upstream))
    status, replay = await client.refresh(first["refresh_token"])
    assert status == 200, replay
    assert replay["refresh_token"] == rotated["refresh_token"]
    assert replay["access_token"] != upstream["access_token"]
    assert replay["access_token"] in facade.idp_state.access_tokens
    assert replay["expires_in"] > 60
    stored = json.loads(await facade.redis.hget(key, "up"))
    assert stored["access_token"] == replay["access_token"]
