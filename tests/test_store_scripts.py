"""The store's Lua scripts run by SHA (EVALSHA); a Redis that lost them (restarted, failed over to a
replica that never loaded them, `SCRIPT FLUSH`) gets them again on the next call, which then succeeds.
On both the embedded store (fakeredis) and a real redis-server."""

from __future__ import annotations

from typing import Any

from proxy.store import Store


def _store(redis: Any) -> Store:
    return Store(redis, prefix="t:", code_ttl_s=60, transaction_ttl_s=60, client_ttl_s=600, refresh_idle_ttl_s=60,
                 refresh_absolute_ttl_s=60, refresh_grace_s=5, unused_client_ttl_s=120)


async def test_a_script_the_server_lost_is_loaded_again_and_the_operation_succeeds(redis_client: Any) -> None:
    """After SCRIPT FLUSH the registration lookup (a script that renews an activated registration)
    still answers the stored registration and still renews it: the script ran, not a fallback."""
    store = _store(redis_client)
    await store.save_client("c1", {"client_id": "c1", "redirect_uris": ["http://127.0.0.1/cb"]})
    await store.activate_client("c1")
    assert await redis_client.ttl("t:client:c1") > 120
    await redis_client.expire("t:client:c1", 50)
    await redis_client.script_flush()
    record = await store.load_client("c1")
    assert record is not None and record["client_id"] == "c1"
    assert await redis_client.ttl("t:client:c1") > 120  # renewed to client_ttl_s by the script
    assert await redis_client.script_exists(store._load_client.sha) == [True]
