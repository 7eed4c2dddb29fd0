"""A real Redis Sentinel failover loses no refresh family (issue 23 item 2).

Primary, replica and three sentinels. The replica stops receiving (SIGSTOP, the primary drops its link),
the client refreshes three times against a primary that acknowledges each rotation, the primary is
SIGKILLed, the sentinels promote the replica, which holds the family three rotations behind the
client's token. The client's next refresh must work (before issue 23: invalid_grant, signed out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from proxy.app import create_app
from proxy.devidp import DevIdpConfig, create_devidp_app
from proxy.devidp.app import CONFIG as DEVIDP_CONFIG
from proxy.devidp.app import STATE as DEVIDP_STATE
from proxy.settings import Settings
from proxy.store.store import family_of
from tests.conftest import Facade, free_port
from tests.helpers import Client
from tests.sentinels import SentinelSet, cli, start_sentinels


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    deployment = start_sentinels()
    yield deployment
    deployment.stop()


async def refreshed_through_the_outage(client: Client, token: str, timeout_s: float = 60) -> dict[str, Any]:
    """Refresh until the store answers again: 503 while there is no primary is fine, anything else not."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = await client.refresh(token)
        if status != 503:
            assert status == 200, body
            return body
        assert time.monotonic() < deadline, "the store did not come back"
        await asyncio.sleep(0.2)


async def test_a_failover_that_lost_acknowledged_rotations_loses_no_family(
        aiohttp_server: Any, sentinels: SentinelSet) -> None:
    """Four users hold tokens the promoted replica never received; each next refresh works, and the
    one after it too. The promoted store really was behind (its generation is lower than the token's)."""
    port = free_port()
    idp_app = create_devidp_app(DevIdpConfig(issuer="", client_id="facade", client_secret="facade secret+1",
                                             redirect_uris=(f"http://127.0.0.1:{port}/callback",)))
    idp_server = await aiohttp_server(idp_app)
    idp_app[DEVIDP_CONFIG].issuer = str(idp_server.make_url("")).rstrip("/")
    settings = Settings(_env_file=None, issuer=f"http://127.0.0.1:{port}", port=port,  # type: ignore[call-arg]
                        upstream_issuer=idp_app[DEVIDP_CONFIG].issuer, upstream_client_id="facade",
                        upstream_client_secret="facade secret+1", consent=False, rate_limits=False,
                        redis_url=sentinels.url, redis_timeout_s=1)
    server = await aiohttp_server(create_app(settings), port=port)
    async with aiohttp.ClientSession() as http:
        facade = Facade(settings.issuer, settings, server, idp_app[DEVIDP_CONFIG].issuer, idp_app[DEVIDP_CONFIG],
                        idp_app[DEVIDP_STATE], http)
        users = [Client(facade) for _ in range(4)]
        tokens = [(await user.signed_in())["refresh_token"] for user in users]
        for index, user in enumerate(users):
            status, body = await user.refresh(tokens[index])
            assert status == 200, body
            tokens[index] = body["refresh_token"]
        assert sentinels.replicated(), "the replica holds everything so far"
        prefix = settings.redis_prefix
        replica = sentinels.replica_port()

        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def rotate_three_times() -> None:
            for _ in range(3):
                for index, user in enumerate(users):
                    status, body = await user.refresh(tokens[index])
                    assert status == 200, body
                    tokens[index] = body["refresh_token"]
            done.set()

        def writes() -> None:
            asyncio.run_coroutine_threadsafe(rotate_three_times(), loop).result(timeout=30)

        old = await asyncio.to_thread(sentinels.cut_replication_and_kill_primary, writes)
        assert done.is_set()
        promoted = await asyncio.to_thread(sentinels.wait_promoted, old)
        assert promoted == replica
        for token in tokens:  # the loss is real: the promoted store is three generations behind
            stored = cli(promoted, "hget", f"{prefix}family:{{{family_of(token)}}}", "gen")
            assert stored == "1", stored

        for index, user in enumerate(users):
            body = await refreshed_through_the_outage(user, tokens[index])
            status, body = await user.refresh(body["refresh_token"])
            assert status == 200, body
