"""What one registration may cost (issue 14 item 6, SEC-76): bounded size, a short life until it is
used for a sign-in, and a Redis cost that the README states and a real redis-server confirms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.security.conftest import LiveFacadeFactory, kinds, snapshot

README = Path(__file__).resolve().parent.parent.parent / "README.md"
DAY = 86400
# The bounds README.md states ("at most 10 redirect URIs of at most 512 characters ... 4,000 bytes").
MAX_URIS, MAX_URI_CHARS, MAX_TEXT, MAX_BYTES = 10, 512, 512, 4000


async def register(facade: Facade, **metadata: Any) -> tuple[int, dict[str, Any], bytes]:
    body = {"redirect_uris": ["https://app.example.com/cb"], **metadata}
    async with facade.http.post(facade.url + "/register", json=body) as response:
        raw = await response.read()
        return response.status, json.loads(raw), raw


def uri(length: int, n: int = 0) -> str:
    base = f"https://app.example.com/{n}/"
    return base + "a" * (length - len(base))


@pytest.mark.parametrize(("metadata", "error"), [
    ({"redirect_uris": [uri(40, n) for n in range(MAX_URIS + 1)]}, "invalid_redirect_uri"),
    ({"redirect_uris": [uri(MAX_URI_CHARS + 1)]}, "invalid_redirect_uri"),
    ({"client_name": "n" * (MAX_TEXT + 1)}, "invalid_client_metadata"),
    # Each member within its bound, the whole beyond MAX_BYTES.
    ({"redirect_uris": [uri(MAX_URI_CHARS, n) for n in range(MAX_URIS)]}, "invalid_client_metadata"),
    ({"client_name": "n" * MAX_TEXT, "client_uri": "https://c.example/" + "c" * 490,
      "logo_uri": "https://l.example/" + "l" * 490, "tos_uri": "https://t.example/" + "t" * 490,
      "policy_uri": "https://p.example/" + "p" * 490, "software_id": "s" * MAX_TEXT,
      "software_version": "v" * MAX_TEXT, "redirect_uris": [uri(400, n) for n in range(3)]},
     "invalid_client_metadata"),
])
async def test_oversized_registrations_are_refused(facade: Facade, metadata: dict[str, Any], error: str) -> None:
    """Issue 14 item 6: one 44 KB registration was accepted (20 redirect URIs of 2,000 characters) and
    kept for 30 days. Too many or too long redirect URIs are `invalid_redirect_uri`, a too long member
    or too large a whole `invalid_client_metadata`, all 400, and nothing is stored."""
    before = await snapshot(facade.redis)
    status, body, _ = await register(facade, **metadata)
    assert (status, body["error"]) == (400, error), body
    assert await snapshot(facade.redis) == before


async def test_the_largest_registration_allowed_costs_what_the_readme_states(
        live_facade: LiveFacadeFactory, inspector: Any) -> None:
    """Issue 14 item 6: the README states the Redis cost of one registration; `MEMORY USAGE` on a real
    redis-server confirms it for a registration of exactly the largest size allowed (one byte more is
    refused), and a typical one costs a tenth of it."""
    stated = re.search(r"registration costs at most ([\d,]+) bytes of\s+Redis memory", README.read_text())
    assert stated is not None, "README.md states no Redis cost per registration"
    cost = int(stated.group(1).replace(",", ""))
    facade = await live_facade()
    uris = [uri(350, n) for n in range(MAX_URIS)]
    status, body, raw = await register(facade, redirect_uris=uris, client_name="x")
    assert status == 201, body
    room = MAX_BYTES - len(raw)  # the answer is the stored JSON, byte for byte
    assert 0 < room < MAX_TEXT
    status, body, _ = await register(facade, redirect_uris=uris, client_name="x" * (1 + room + 1))
    assert (status, body["error"]) == (400, "invalid_client_metadata")
    status, body, raw = await register(facade, redirect_uris=uris, client_name="x" * (1 + room))
    assert status == 201 and len(raw) == MAX_BYTES, body
    key = f"oauthfacade:client:{body['client_id']}"
    assert len(await inspector.get(key)) == MAX_BYTES
    assert await inspector.memory_usage(key) <= cost
    status, typical, _ = await register(facade, client_name="Claude Code")
    assert await inspector.memory_usage(f"oauthfacade:client:{typical['client_id']}") <= cost // 8


async def test_an_unused_registration_expires_within_a_day_and_a_sign_in_keeps_it(facade: Facade) -> None:
    """Issue 14 item 6: a registration was kept 30 days whether or not anyone signed in with it. Now
    it lives at most PROXY_UNUSED_CLIENT_TTL_S (a day); looking it up at /authorize does not extend
    that; its first code redemption keeps it PROXY_CLIENT_TTL_S, and later use renews that."""
    client = facade.client()
    await client.register()
    key = f"oauthfacade:client:{client.client_id}"
    assert 0 < await facade.redis.ttl(key) <= DAY
    for _ in range(3):
        response, _ = await client.start()
        assert response.status == 302
    assert 0 < await facade.redis.ttl(key) <= DAY
    tokens = await client.signed_in()
    full = facade.settings.client_ttl_s
    assert full - 60 < await facade.redis.ttl(key) <= full
    await facade.redis.expire(key, full // 2)
    assert (await client.refresh(tokens["refresh_token"]))[0] == 200
    assert full - 60 < await facade.redis.ttl(key) <= full


async def test_an_unused_registration_cannot_be_kept_longer_than_a_day(make_facade: FacadeFactory) -> None:
    """Issue 14 item 6: PROXY_UNUSED_CLIENT_TTL_S may be shorter than a day, never longer, and a
    registration saved with it expires at that time."""
    from proxy.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="PROXY_UNUSED_CLIENT_TTL_S"):
        load_settings(_env_file=None, unused_client_ttl_s=DAY + 1)
    facade = await make_facade(unused_client_ttl_s=600)
    status, body, _ = await register(facade)
    assert status == 201
    assert 0 < await facade.redis.ttl(f"oauthfacade:client:{body['client_id']}") <= 600
    assert kinds(await snapshot(facade.redis)).count("client") == 1
