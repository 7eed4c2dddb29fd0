"""CIMD through the whole facade: a client whose client_id is an https URL, its document served over
real TLS on 127.0.0.1 and fetched through the system resolver (`localhost`, allowed by the development
setting), completes sign-in, token and refresh; what the document says is enforced; /token and refresh
never fetch, so a document host outage never breaks a refresh."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from joserfc import jwt

from tests.clients.conftest import Answer, DocumentHost, valid_document
from tests.conftest import Facade, FacadeFactory, RedisServer
from tests.helpers import Client
from tests.security.conftest import html_error
from tests.test_consent import approve

NO_CACHE = {"Content-Type": "application/json", "Cache-Control": "max-age=0"}


@pytest.fixture
def local_docs(doc_host: DocumentHost) -> DocumentHost:
    doc_host.name = "localhost"
    return doc_host


def cimd_settings(doc_host: DocumentHost, **overrides: Any) -> dict[str, Any]:
    return {"cimd_dev_hosts": "localhost", "cimd_ca_file": str(doc_host.pki.ca_file), **overrides}


async def cimd_client(facade: Facade, url: str, port: int = 5599) -> Client:
    client = facade.client()
    client.client_id = url
    client.redirect_uri = f"http://127.0.0.1:{port}/callback"  # the document lists it without a port
    return client


async def test_metadata_advertises_cimd_and_none(make_facade: FacadeFactory) -> None:
    """CIMD §6: `client_id_metadata_document_supported: true`, and `none` stays among the auth methods
    (Claude only picks CIMD when both are present); DCR's endpoint is still there by default."""
    facade = await make_facade()
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        metadata = await response.json()
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["registration_endpoint"] == facade.url + "/register"
    assert "client_credentials" not in metadata["grant_types_supported"]


async def test_cimd_and_dcr_can_be_turned_off(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """PROXY_CIMD=off: no advertisement, a URL client_id is an unknown client. PROXY_DCR=off: no
    registration_endpoint and POST /register is gone."""
    facade = await make_facade(**cimd_settings(local_docs, cimd=False, dcr=False))
    async with facade.http.get(facade.url + "/.well-known/openid-configuration") as response:
        metadata = await response.json()
    assert "client_id_metadata_document_supported" not in metadata
    assert "registration_endpoint" not in metadata
    async with facade.http.post(facade.url + "/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}) as reg:
        assert reg.status in (404, 405)
    url = local_docs.serve("/client.json")
    response, _ = await (await cimd_client(facade, url)).start()
    assert response.status == 400 and html_error(await response.text()) == "invalid_request"
    assert local_docs.hits == []


async def test_url_client_completes_sign_in_token_and_refresh(make_facade: FacadeFactory,
                                                              local_docs: DocumentHost) -> None:
    """A Claude Code-shaped document (port-less loopback redirects) and an ephemeral port: the flow ends in
    tokens whose client_id is the URL; the id_token's aud is the URL too."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.serve("/client.json")
    client = await cimd_client(facade, url, port=49152)
    auth = await client.authorize()
    assert auth.location.startswith("http://127.0.0.1:49152/callback?")
    status, tokens = await client.exchange(auth)
    assert status == 200, tokens
    claims = jwt.decode(tokens["access_token"], await client.jwks()).claims
    assert claims["client_id"] == url
    await client.verify_id_token(tokens["id_token"], nonce=auth.nonce, access_token=tokens["access_token"])
    status, refreshed = await client.refresh(tokens["refresh_token"])
    assert status == 200 and refreshed["refresh_token"] != tokens["refresh_token"]


async def test_token_and_refresh_never_fetch_and_survive_a_host_outage(make_facade: FacadeFactory,
                                                                      local_docs: DocumentHost) -> None:
    """The document host goes down after /authorize (and the cache holds nothing: no-store): the code
    redeems, refreshes keep working, and the host saw exactly one request, from /authorize."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.serve("/client.json", headers={"Content-Type": "application/json", "Cache-Control": "no-store"})
    client = await cimd_client(facade, url)
    auth = await client.authorize()
    local_docs.down = True
    status, tokens = await client.exchange(auth)
    assert status == 200, tokens
    for _ in range(2):
        status, tokens = await client.refresh(tokens["refresh_token"])
        assert status == 200, tokens
    assert len(local_docs.hits) == 1
    async with facade.http.post(facade.url + "/revoke", data={"token": tokens["refresh_token"],
                                                               "client_id": url}) as revoked:
        assert revoked.status == 200
    assert len(local_docs.hits) == 1


async def test_redirect_uri_not_in_the_document_is_refused_without_redirect(make_facade: FacadeFactory,
                                                                           local_docs: DocumentHost) -> None:
    """Exact matching except loopback ports: another path, another host or https for http is a page."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.serve("/client.json")
    for redirect_uri in ("http://127.0.0.1:5599/other", "http://evil.example/callback",
                         "https://127.0.0.1/callback", "http://127.0.0.1:5599/callback?x=1"):
        client = await cimd_client(facade, url)
        response, _ = await client.start(redirect_uri=redirect_uri)
        assert response.status == 400 and "Location" not in response.headers
        assert html_error(await response.text()) == "invalid_request"


@pytest.mark.parametrize(("document", "answer"), [
    ({"client_secret": "s"}, None),
    ({"client_id": "https://localhost/elsewhere.json"}, None),
    ({"token_endpoint_auth_method": "client_secret_basic"}, None),
    (None, Answer(status=302, headers={"Location": "https://localhost/client.json"})),
    (None, Answer(status=404)),
])
async def test_unusable_document_is_a_clear_page_never_a_redirect(document: dict[str, Any] | None,
                                                                  answer: Answer | None, make_facade: FacadeFactory,
                                                                  local_docs: DocumentHost) -> None:
    """An invalid document, a redirect or a 404: /authorize answers an HTML page naming invalid_client,
    with no Location header (the redirect URIs are unverified), and nothing is cached."""
    facade = await make_facade(**cimd_settings(local_docs))
    url = local_docs.url("/client.json")
    if answer is not None:
        local_docs.answers["/client.json"] = answer
    else:
        local_docs.serve("/client.json", valid_document(url, **(document or {})))
    response, _ = await (await cimd_client(facade, url)).start()
    assert response.status == 400 and "Location" not in response.headers
    text = await response.text()
    assert html_error(text) == "invalid_client" and "localhost" in text
    assert not [key for key in await facade.keys() if ":cimd:" in key]


async def test_host_down_within_the_stale_window_still_signs_in(make_facade: FacadeFactory,
                                                                local_docs: DocumentHost) -> None:
    """A cached copy past its freshness serves /authorize while the host is down, for the stale window."""
    facade = await make_facade(**cimd_settings(local_docs, cimd_cache_min_s=0, cimd_stale_s=600))
    url = local_docs.serve("/client.json", headers=NO_CACHE)
    client = await cimd_client(facade, url)
    await client.authorize()
    local_docs.down = True
    auth = await client.authorize()
    assert "code=" in auth.location
    assert len(local_docs.hits) == 2


async def test_host_down_without_a_usable_copy_is_an_error_page(make_facade: FacadeFactory,
                                                                local_docs: DocumentHost) -> None:
    """No cached copy (stale window 0) and the host down: a clear page, no redirect to the client."""
    facade = await make_facade(**cimd_settings(local_docs, cimd_cache_min_s=0, cimd_stale_s=0))
    url = local_docs.serve("/client.json", headers=NO_CACHE)
    client = await cimd_client(facade, url)
    await client.authorize()
    local_docs.down = True
    response, _ = await client.start()
    assert response.status == 400 and "Location" not in response.headers
    assert "could not be fetched" in await response.text()


async def test_operator_host_patterns(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """PROXY_CIMD_ALLOWED_HOSTS: other hosts are refused before any fetch."""
    facade = await make_facade(**cimd_settings(local_docs, cimd_allowed_hosts="claude.ai *.vscode.dev"))
    url = local_docs.serve("/client.json")
    response, _ = await (await cimd_client(facade, url)).start()
    assert response.status == 400 and "not accepted" in await response.text()
    assert local_docs.hits == []


async def test_consent_names_the_client_its_host_and_warns_for_localhost(make_facade: FacadeFactory,
                                                                         local_docs: DocumentHost) -> None:
    """The page shows the document's name, the client_id's host, the redirect host and, since every
    redirect of this document is loopback, the localhost warning."""
    facade = await make_facade(**cimd_settings(local_docs, consent=True))
    url = local_docs.serve("/client.json")
    response, _ = await (await cimd_client(facade, url)).start()
    html = await response.text()
    assert response.status == 200
    assert "Test CLI" in html
    assert "described by <strong>localhost</strong>" in html
    assert "127.0.0.1:5599" in html
    assert "Warning:" in html and "localhost" in html


async def test_web_document_has_no_localhost_warning(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """A document with an https redirect is not loopback-only: no warning."""
    facade = await make_facade(**cimd_settings(local_docs, consent=True))
    url = local_docs.url("/web.json")
    local_docs.serve("/web.json", valid_document(url, redirect_uris=["https://app.example.com/cb"]))
    client = await cimd_client(facade, url)
    client.redirect_uri = "https://app.example.com/cb"
    response, _ = await client.start()
    assert response.status == 200 and "Warning:" not in await response.text()


async def test_a_changed_document_asks_for_consent_again(make_facade: FacadeFactory, local_docs: DocumentHost) -> None:
    """Approved once, the same document goes straight upstream; a new name (or new redirect URIs) in the
    document shows the page again, naming the change."""
    facade = await make_facade(**cimd_settings(local_docs, consent=True, cimd_cache_min_s=0))
    url = local_docs.serve("/client.json", headers=NO_CACHE)
    client = await cimd_client(facade, url)
    first, _ = await client.start()
    assert (await approve(client, first)).status == 302
    again, _ = await client.start()
    assert again.status == 302 and again.headers["Location"].startswith(facade.idp_url)
    local_docs.serve("/client.json", valid_document(url, client_name="Renamed CLI"), headers=NO_CACHE)
    changed, _ = await client.start()
    assert changed.status == 200
    html = await changed.text()
    assert "Renamed CLI" in html and "description changed" in html


async def test_two_facades_share_one_cached_document(make_facade: FacadeFactory, local_docs: DocumentHost,
                                                     redis_server: RedisServer) -> None:
    """Two facade apps, each with its own connection to one redis-server: the document is fetched once."""
    clients = [aioredis.Redis.from_url(redis_server.url, decode_responses=True) for _ in range(2)]
    try:
        await clients[0].flushdb()
        url = local_docs.serve("/client.json")
        for redis in clients:
            facade = await make_facade(redis=redis, **cimd_settings(local_docs))
            auth = await (await cimd_client(facade, url)).authorize()
            assert "code=" in auth.location
        assert len(local_docs.hits) == 1
        keys = [key for key in await clients[0].keys("*") if ":cimd:" in key]
        assert len(keys) == 1 and await clients[0].ttl(keys[0]) > 0
        assert json.loads(await clients[0].get(keys[0]))["doc"]["client_id"] == url
    finally:
        for redis in clients:
            await redis.aclose()
