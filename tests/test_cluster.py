"""The whole flow on a real Redis Cluster started by the test: hash tags keep each atomic step in one slot."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from proxy.store.connect import connect
from tests.conftest import FacadeFactory
from tests.programs import program

NODES = 3


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free and valid too."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a Redis Cluster node")


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[int]]:
    server, cli = program("redis-server"), program("redis-cli")
    ports = [cluster_port() for _ in range(NODES)]
    workdir = tempfile.mkdtemp(prefix="facade-cluster-")
    processes = [subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"{workdir}/nodes-{port}.conf", "--save", "", "--appendonly", "no",
         "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    try:
        for port in ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
        _wait(lambda: all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports))
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _cli(port: int, *args: str) -> str:
    result = subprocess.run([program("redis-cli"), "-p", str(port), *args], capture_output=True, text=True, timeout=5)
    return result.stdout.strip()


def _wait(ready: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("the Redis Cluster did not become ready")


@pytest.fixture
async def cluster_client(cluster: list[int]) -> AsyncIterator[object]:
    client = connect(f"redis+cluster://127.0.0.1:{cluster[0]}", timeout_s=5)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
async def test_whole_flow_refresh_and_revocation_on_a_cluster(make_facade: FacadeFactory,
                                                               cluster_client: object) -> None:
    """On Redis Cluster, keys of one family share a slot: sign-in, refresh, userinfo, grace replay, reuse
    detection and code replay behave as on one node."""
    facade = await make_facade(redis=cluster_client)
    client = facade.client()
    first = await client.signed_in()
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200, second
    async with facade.http.get(facade.url + "/userinfo",  # token and family checks span two slots
                               headers={"Authorization": f"Bearer {second['access_token']}"}) as response:
        assert response.status == 200
    status, grace = await client.refresh(first["refresh_token"])
    assert (status, grace["refresh_token"]) == (200, second["refresh_token"])
    await client.refresh(second["refresh_token"])
    status, reuse = await client.refresh(first["refresh_token"])
    assert (status, reuse["error"]) == (400, "invalid_grant")
    status, replay = await client.exchange(first["_auth"])
    assert (status, replay["error"]) == (400, "invalid_grant")


async def test_a_burst_waits_for_a_cluster_connection_instead_of_failing(cluster: list[int]) -> None:
    """400 concurrent commands through a client of at most 2 connections per node all succeed (they
    queue), where redis-py's own cluster pool raised MaxConnectionsError; scripts and pipelines too."""
    client = connect(f"redis+cluster://127.0.0.1:{cluster[0]}", timeout_s=5, max_connections=2,
                     pool_timeout_s=30)
    try:
        echo = client.register_script("return ARGV[1]")

        async def one(index: int) -> object:
            if index % 3 == 0:
                return await echo(keys=[f"burst:{{{index}}}"], args=[str(index)])
            if index % 3 == 1:
                pipe = client.pipeline(transaction=False)
                pipe.set(f"burst:{index}", index)
                pipe.get(f"burst:{index}")
                return (await pipe.execute())[1]
            await client.set(f"burst:{index}", index)
            return await client.get(f"burst:{index}")

        answers = await asyncio.gather(*(one(index) for index in range(400)))
        assert answers == [str(index) for index in range(400)]
    finally:
        await client.aclose()
@pytest.mark.parametrize("redis_client", ["fakeredis"], indirect=True)
async def test_grants_are_listed_and_ended_on_a_cluster(make_facade: FacadeFactory, cluster_client: object) -> None:
    """The grant indexes are single-key scripts and per-family reads: on a Redis Cluster, listing by
    subject and client and ending a subject's grants work as on one node, and the token is refused."""
    from proxy.admin.grants import Selector, end_grants, list_grants

    facade = await make_facade(redis=cluster_client)
    one, two = facade.client(), facade.client()
    first = await one.signed_in()
    await two.signed_in()
    store, clients = facade.services.store, facade.services.clients
    assert len(await list_grants(store, clients)) == 2
    assert [row["client_id"] for row in await list_grants(store, clients, client_id=two.client_id)] == [two.client_id]
    ended = await end_grants(store, facade.services.upstream, Selector(sub="demo-user"), by="test",
                             approvals_lifetime_s=60)
    assert len(ended) == 2 and await list_grants(store, clients, sub="demo-user") == []
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {first['access_token']}"}) as response:
        assert response.status == 401
