"""Operators list and end grants: the store's indexes, the admin API and `oauth-facade grants`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from proxy.admin.grants import Selector, end_grants, list_grants
from proxy.store.grants import INDEX_MARGIN_S
from tests.conftest import Facade, FacadeFactory, RedisServer

ADMIN = "admin-token-" + "x" * 32
INTROSPECT = "rs-secret"


def as_user(facade: Facade, sub: str) -> None:
    """The dev IdP signs the next sign-ins in as `sub`."""
    facade.idp_config.id_token_claims["sub"] = sub


async def listed(facade: Facade, **selector: str) -> list[dict[str, Any]]:
    return await list_grants(facade.services.store, facade.services.clients, **selector)


async def admin(facade: Facade, method: str, path: str, token: str | None = ADMIN, **form: str
                ) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    call = facade.http.get(facade.url + path, params=form, headers=headers) if method == "GET" else \
        facade.http.post(facade.url + path, data=form, headers=headers)
    async with call as response:
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text, dict(response.headers)


async def userinfo_status(facade: Facade, access_token: str) -> int:
    async with facade.http.get(facade.url + "/userinfo", headers={"Authorization": f"Bearer {access_token}"}) as r:
        return r.status


async def introspected(facade: Facade, token: str) -> bool:
    async with facade.http.post(facade.url + "/introspect", data={"token": token},
                                headers={"Authorization": f"Bearer {INTROSPECT}"}) as response:
        assert response.status == 200
        return bool((await response.json())["active"])


async def test_listing_shows_every_live_grant_with_its_client_and_never_a_token(facade: Facade) -> None:
    """`grants list` shows each live family once with subject, client (name, kind), scope, resource,
    times and whether an upstream grant is held; filters by subject and by client; no token appears."""
    one, two = facade.client(), facade.client()
    as_user(facade, "alice")
    a1 = await one.signed_in()
    a2 = await two.signed_in()
    as_user(facade, "bob")
    b1 = await one.signed_in()
    everything = await listed(facade)
    assert len(everything) == 3
    assert {(row["sub"], row["client_id"]) for row in everything} == {
        ("alice", one.client_id), ("alice", two.client_id), ("bob", one.client_id)}
    row = next(row for row in everything if row["sub"] == "bob")
    assert row["client_kind"] == "dcr" and row["client_name"] == "Test client"
    assert row["scope"] == "openid offline_access" and row["resource"] == facade.url + "/mcp"
    assert row["created"] <= row["last_used"] < row["expires"]
    assert row["upstream_grant"] is True
    assert {row["sub"] for row in await listed(facade, sub="alice")} == {"alice"}
    assert len(await listed(facade, sub="alice")) == 2
    assert {row["sub"] for row in await listed(facade, client_id=one.client_id)} == {"alice", "bob"}
    assert [row["client_id"] for row in await listed(facade, sub="alice", client_id=two.client_id)] == [two.client_id]
    text = json.dumps(everything)
    for body in (a1, a2, b1):
        for name in ("access_token", "refresh_token", "id_token"):
            assert body[name] not in text and body[name].split(".")[-1] not in text


async def test_the_indexes_follow_rotation_revocation_reuse_expiry_and_loss(facade: Facade) -> None:
    """An index entry may outlive its family, never the reverse: a rotated family stays listed, one
    revoked, ended by reuse, past its absolute expiry or lost by the store disappears from the listing,
    and listing removes the entries that can never come back."""
    store, redis = facade.services.store, facade.redis
    client = facade.client()
    rotated = await client.signed_in()
    status, second = await client.refresh(rotated["refresh_token"])
    assert status == 200
    revoked, reused, expired, lost = [await client.signed_in() for _ in range(4)]
    families = {name: body["refresh_token"].split(".")[0]
                for name, body in (("rotated", second), ("revoked", revoked), ("reused", reused),
                                   ("expired", expired), ("lost", lost))}
    assert {row["family"] for row in await listed(facade)} == set(families.values())
    async with facade.http.post(facade.url + "/revoke", data={"token": revoked["refresh_token"],
                                                             "client_id": client.client_id}) as response:
        assert response.status == 200
    status, successor = await client.refresh(reused["refresh_token"])
    assert status == 200
    assert (await client.refresh(successor["refresh_token"]))[0] == 200
    status, error = await client.refresh(reused["refresh_token"])  # a replay: reuse, the family ends
    assert (status, error["error"]) == (400, "invalid_grant")
    await redis.hset(store.family_key(families["expired"]), "abs_exp", "1")
    await redis.delete(store.family_key(families["lost"]))  # as a failover without the key would
    assert [row["family"] for row in await listed(facade)] == [families["rotated"]]
    # While a family's code could still be redeemed (its pending marker lives, or it was noted less than a
    # code's lifetime ago), a missing family is kept in the index: the listing may have read it just before
    # the code was issued or redeemed. Once the code's lifetime is over:
    assert all([await redis.zscore(store.grants.all_key(), family) for family in families.values()])
    await redis.delete(*(store.grants.pending_key(family) for family in families.values()))
    for key in (store.grants.all_key(), store.grants.client_key(client.client_id)):  # noted a code's lifetime ago
        for family in families.values():
            await redis.zincrby(key, -(store.code_ttl_s + 10), family)
    assert [row["family"] for row in await listed(facade)] == [families["rotated"]]
    for name in ("revoked", "reused", "expired", "lost"):
        assert await redis.zscore(store.grants.all_key(), families[name]) is None, name
    # Revocation at /revoke does not touch the client's index: the next listing of it cleans it.
    assert await redis.zscore(store.grants.client_key(client.client_id), families["lost"]) is not None
    assert [row["family"] for row in await listed(facade, client_id=client.client_id)] == [families["rotated"]]
    assert await redis.zcard(store.grants.client_key(client.client_id)) == 1
    row = (await listed(facade))[0]
    assert row["created"] <= row["last_used"]


async def test_an_index_lives_as_long_as_its_latest_family_can(facade: Facade) -> None:
    """Each index key expires with its latest entry (code lifetime + absolute lifetime + margin), and
    entries past their family's latest end are dropped at the next write."""
    store, redis = facade.services.store, facade.redis
    client = facade.client()
    await client.signed_in()
    longest = store.code_ttl_s + store.refresh_absolute_ttl_s + INDEX_MARGIN_S
    for key in (store.grants.all_key(), store.grants.sub_key("demo-user"), store.grants.client_key(client.client_id)):
        assert longest - 5 <= await redis.ttl(key) <= longest, key
    await redis.zadd(store.grants.all_key(), {"ancient": 1})
    await client.signed_in()
    assert await redis.zscore(store.grants.all_key(), "ancient") is None


async def test_a_pending_code_is_indexed_ahead_and_not_pruned_before_it_is_redeemed(facade: Facade) -> None:
    """The index is written before the code exists: a code issued but not yet redeemed is not listed
    (no family yet), listing does not drop its entry, and once redeemed the family is listed."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    family = auth.params["code"].split(".")[0]
    assert await listed(facade) == []
    store = facade.services.store
    assert await facade.redis.zscore(store.grants.all_key(), family) is not None
    status, _ = await client.exchange(auth)
    assert status == 200
    assert [row["family"] for row in await listed(facade)] == [family]


async def test_an_entry_noted_before_its_code_exists_survives_a_listing(facade: Facade) -> None:
    """The index is written a round trip before the code (and its pending marker): a listing in between
    finds neither family nor marker and must still keep the entry, or the family would open unindexed."""
    store = facade.services.store
    await store.grants.note("fam-in-flight", sub="carol", client_id="client-x")
    assert await listed(facade) == [] and await listed(facade, sub="carol") == []
    for key in (store.grants.all_key(), store.grants.sub_key("carol"), store.grants.client_key("client-x")):
        assert await facade.redis.zscore(key, "fam-in-flight") is not None, key


async def test_ending_a_subjects_grants_ends_them_as_a_revocation_does(make_facade: FacadeFactory) -> None:
    """Every family of the subject ends: refresh refused, access tokens refused at once by /userinfo,
    /introspect and forward-auth, the upstream grant revoked at the IdP; another user's stay; a code
    issued before and redeemed after opens nothing; a second call ends nothing and succeeds."""
    facade = await make_facade(introspection_secret=INTROSPECT, trusted_proxies="127.0.0.1")
    one, two = facade.client(), facade.client()
    as_user(facade, "alice")
    alice = [await one.signed_in(), await two.signed_in()]
    await two.register()
    pending = await two.authorize()
    as_user(facade, "bob")
    bob = await one.signed_in()
    upstream_before = set(facade.idp_state.refresh_tokens)
    ended = await end_grants(facade.services.store, facade.services.upstream, Selector(sub="alice"), by="test",
                             approvals_lifetime_s=60)
    assert sorted(row["sub"] for row in ended) == ["alice", "alice"]
    assert all(row["upstream_grant"] for row in ended)
    assert len(upstream_before - set(facade.idp_state.refresh_tokens)) == 2  # revoked at the IdP
    for body in alice:
        assert await userinfo_status(facade, body["access_token"]) == 401
        assert not await introspected(facade, body["access_token"])
        headers = {"X-Forwarded-Method": "GET", "X-Forwarded-Host": facade.url.removeprefix("http://"),
                   "X-Forwarded-Uri": "/mcp", "X-Forwarded-Proto": "http",
                   "Authorization": f"Bearer {body['access_token']}"}
        async with facade.http.get(facade.url + "/forward-auth", headers=headers) as response:
            assert response.status == 401
        status, error = await one.refresh(body["refresh_token"])
        assert (status, error["error"]) == (400, "invalid_grant")
    status, error = await two.exchange(pending)
    assert (status, error["error"]) == (400, "invalid_grant")
    assert await listed(facade, sub="alice") == []
    assert await userinfo_status(facade, bob["access_token"]) == 200
    assert [row["sub"] for row in await listed(facade)] == ["bob"]
    again = await end_grants(facade.services.store, facade.services.upstream, Selector(sub="alice"), by="test",
                             approvals_lifetime_s=60)
    assert again == []


async def test_ending_one_family_or_a_clients_grants(facade: Facade) -> None:
    """--family ends exactly that family; --client every family of that client, whoever the user."""
    one, two = facade.client(), facade.client()
    first, second = await one.signed_in(), await one.signed_in()
    as_user(facade, "bob")
    other = await two.signed_in()
    family = first["refresh_token"].split(".")[0]
    store, upstream = facade.services.store, facade.services.upstream
    ended = await end_grants(store, upstream, Selector(family=family), by="test", approvals_lifetime_s=60)
    assert [row["family"] for row in ended] == [family]
    assert [row["family"] for row in await listed(facade, client_id=one.client_id)] == [
        second["refresh_token"].split(".")[0]]
    ended = await end_grants(store, upstream, Selector(client_id=one.client_id), by="test", approvals_lifetime_s=60)
    assert len(ended) == 1
    assert [row["sub"] for row in await listed(facade)] == ["bob"]
    assert (await two.refresh(other["refresh_token"]))[0] == 200
    with pytest.raises(ValueError):
        Selector(sub="a", client_id="b")


async def test_ending_a_users_grants_ends_the_approvals_their_browser_remembers(make_facade: FacadeFactory) -> None:
    """With consent on, an approval remembered from before an operator ended the user's grants no longer
    skips the page: /callback sends the browser back to /authorize with prompt=consent, no code is
    issued; after approving again the sign-in completes, and later ones skip the page as before."""
    facade = await make_facade(consent=True)
    client = facade.client()
    await client.register()

    async def sign_in() -> tuple[int, str]:
        """(consent pages seen, where the flow ended)."""
        response, _auth = await client.start()
        pages = 0
        for _ in range(12):
            if response.status == 200 and "consent_id" in await response.text():
                pages += 1
                text = await response.text()
                form = {name: text.split(f'name="{name}" value="')[1].split('"')[0] for name in ("consent_id", "csrf")}
                response = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
                continue
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
            if not location.startswith((facade.url, facade.idp_url)):
                return pages, location
            response = await client.get(location)
        raise AssertionError("too many hops")

    assert (await sign_in())[0] == 1
    pages, location = await sign_in()
    assert pages == 0 and "code=" in location  # remembered
    await end_grants(facade.services.store, facade.services.upstream, Selector(sub="demo-user"), by="test",
                     approvals_lifetime_s=3600)
    pages, location = await sign_in()
    assert pages == 1 and "code=" in location  # asked again, then completed
    pages, _ = await sign_in()
    assert pages == 0  # the new approval counts


async def test_the_admin_api_is_off_by_default_and_behind_its_own_token(make_facade: FacadeFactory) -> None:
    """No PROXY_ADMIN_TOKEN: 404. With it: a missing or wrong token (the metrics token included) is 401;
    the right one lists and ends grants, idempotently; exactly one selector is required."""
    off = await make_facade()
    assert (await admin(off, "GET", "/admin/grants"))[0] == 404
    facade = await make_facade(admin_token=ADMIN, metrics_token="metrics-token")
    client = facade.client()
    body = await client.signed_in()
    for token in (None, "metrics-token", ADMIN + "x"):
        status, error, headers = await admin(facade, "GET", "/admin/grants", token)
        assert (status, error["error"]) == (401, "invalid_token") and "WWW-Authenticate" in headers
    status, listing, headers = await admin(facade, "GET", "/admin/grants", sub="demo-user")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert [row["client_id"] for row in listing["grants"]] == [client.client_id]
    status, error, _ = await admin(facade, "POST", "/admin/grants/revoke", sub="demo-user", client_id="x")
    assert (status, error["error"]) == (400, "invalid_request")
    status, ended, _ = await admin(facade, "POST", "/admin/grants/revoke", sub="demo-user", actor="ops bot")
    assert status == 200 and [row["sub"] for row in ended["ended"]] == ["demo-user"]
    assert await userinfo_status(facade, body["access_token"]) == 401
    status, ended, _ = await admin(facade, "POST", "/admin/grants/revoke", sub="demo-user")
    assert (status, ended) == (200, {"ended": []})


async def test_the_admin_api_spends_no_public_rate_limit_but_wrong_tokens_are_limited(
        make_facade: FacadeFactory) -> None:
    """With rate limits on, the admin API answers beyond any public per-minute limit (it is not counted
    there), while wrong admin tokens from one address are refused with 429 past the failure budget."""
    facade = await make_facade(admin_token=ADMIN, rate_limits=True, rate_limit_token_per_min=2,
                               rate_limit_userinfo_per_min=2, rate_limit_introspect_per_min=2,
                               rate_limit_auth_failures_per_min=3)
    for _ in range(8):
        assert (await admin(facade, "GET", "/admin/grants"))[0] == 200
    statuses = [(await admin(facade, "GET", "/admin/grants", "wrong"))[0] for _ in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429


async def test_the_admin_token_must_be_long_and_not_the_metrics_token() -> None:
    """PROXY_ADMIN_TOKEN shorter than 32 characters, or equal to PROXY_METRICS_TOKEN, is refused."""
    from proxy.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="PROXY_ADMIN_TOKEN"):
        load_settings(admin_token="short")
    with pytest.raises(SettingsError, match="PROXY_ADMIN_TOKEN"):
        load_settings(admin_token=ADMIN, metrics_token=ADMIN)


@pytest.mark.parametrize("redis_client", ["redis-server"], indirect=True)
async def test_the_cli_lists_and_ends_grants_in_the_configured_store(make_facade: FacadeFactory,
                                                                     redis_server: RedisServer) -> None:
    """`oauth-facade grants list --json` and `grants revoke --sub` against the same Redis as a running
    facade: the listing shows its grant, revoking ends it (the facade refuses its token at once) and
    prints what it ended; a second revoke prints that nothing was left."""
    facade = await make_facade(redis_url=redis_server.url)
    body = await facade.client().signed_in()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROXY_")},
           "PROXY_REDIS_URL": redis_server.url, "PROXY_ISSUER": facade.url,
           "PROXY_UPSTREAM_ISSUER": facade.idp_url, "PROXY_UPSTREAM_CLIENT_ID": "facade",
           "PROXY_UPSTREAM_CLIENT_SECRET": "facade secret+1"}

    async def cli(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "grants", *args, env=env,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return process.returncode, out.decode()

    _, out = await cli("list", "--json")
    rows = json.loads(out)
    assert [row["sub"] for row in rows] == ["demo-user"] and body["refresh_token"] not in out
    _, out = await cli("list")
    assert out.startswith("FAMILY") and rows[0]["family"] in out
    _, out = await cli("revoke", "--sub", "demo-user")
    assert f"ended {rows[0]['family']}" in out and "upstream grant revoked" in out
    assert await userinfo_status(facade, body["access_token"]) == 401
    _, out = await cli("revoke", "--sub", "demo-user")
    assert out.startswith("nothing to end")


def test_client_kinds_are_told_apart(tmp_path: Any) -> None:
    """A URL client_id is `cimd`; a pre-registered client is `pre-registered`, or `machine` when it may
    only use client_credentials; anything else was registered here (`dcr`)."""
    from proxy.clients.directory import ClientDirectory
    from proxy.clients.registry import load_registry
    from proxy.clients.secrets import hash_secret

    path = tmp_path / "clients.toml"
    path.write_text(
        '[[client]]\nid = "desktop"\nname = "Desktop"\nredirect_uris = ["https://app.example/cb"]\n\n'
        f'[[client]]\nid = "robot"\nname = "Robot"\nsecret_hash = "{hash_secret("s" * 32)}"\n'
        'grant_types = ["client_credentials"]\n')
    registry = load_registry(path, scopes=("openid", "offline_access"), resources=("https://mcp.example.com/mcp",))
    directory = ClientDirectory(store=None, registry=registry, cimd=None, key_sets=None)  # type: ignore[arg-type]
    assert [directory.kind(client) for client in ("https://app.example/client.json", "desktop", "robot", "x1")] == [
        "cimd", "pre-registered", "machine", "dcr"]
