"""SSRF through the whole app: /authorize with a URL client_id whose host resolves (through the resolver
the test injects into create_app, the production fetch path otherwise) to a special-use address shows
an error page and never connects; the same host resolving to the allowed loopback signs in."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from proxy.app import create_app
from proxy.settings import Settings
from tests.clients.conftest import DOC_HOST, DocumentHost, ScriptedResolver
from tests.conftest import free_port
from tests.helpers import s256
from tests.security.conftest import html_error


async def start(aiohttp_client: Any, doc_host: DocumentHost, address: str) -> Any:
    port = free_port()
    settings = Settings(_env_file=None, issuer=f"http://127.0.0.1:{port}", consent=False, rate_limits=False,
                        upstream_issuer="http://127.0.0.1:9", upstream_client_id="facade",  # nobody listens
                        cimd_dev_hosts=DOC_HOST, cimd_ca_file=doc_host.pki.ca_file)  # type: ignore[call-arg]
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True, version=(7, 2))
    app = create_app(settings, redis=redis, cimd_resolve=ScriptedResolver({DOC_HOST: [address]}))
    return await aiohttp_client(app)


def authorize_query(url: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": url, "redirect_uri": "http://127.0.0.1:5599/callback",
            "code_challenge": s256("v" * 43), "code_challenge_method": "S256", "state": "s"}


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "fd00::1", "100.64.1.1", "::ffff:127.0.0.1",
                                     "64:ff9b::a9fe:a9fe", "0.0.0.0", "224.0.0.1"])
async def test_authorize_refuses_a_document_host_on_special_use_addresses(aiohttp_client: Any,
                                                                          doc_host: DocumentHost,
                                                                          address: str) -> None:
    """A page naming invalid_client, no Location, and the document host never contacted."""
    url = doc_host.serve("/client.json")
    client = await start(aiohttp_client, doc_host, address)
    response = await client.get("/authorize", params=authorize_query(url), allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    text = await response.text()
    assert html_error(text) == "invalid_client" and "may not be fetched" in text
    assert doc_host.hits == []


async def test_authorize_signs_in_when_the_host_resolves_to_allowed_loopback(aiohttp_client: Any,
                                                                             doc_host: DocumentHost) -> None:
    """The same app and document with the development exception's loopback answer: the client is trusted,
    so the answer goes to its redirect URI (here an upstream error, as no IdP runs: the point is that the
    document was fetched from the checked address and accepted)."""
    url = doc_host.serve("/client.json")
    client = await start(aiohttp_client, doc_host, "127.0.0.1")
    response = await client.get("/authorize", params=authorize_query(url), allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("http://127.0.0.1:5599/callback?")
    assert [path for path, _ in doc_host.hits] == ["/client.json"]
