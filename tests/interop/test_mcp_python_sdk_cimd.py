"""The MCP Python SDK 2.x with a URL client id (`client_metadata_url`): it uses CIMD when the facade
advertises `client_id_metadata_document_supported`, so it never registers; the facade fetches its
document over TLS and the flow, the authenticated call and a refresh complete."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from tests.interop.browser import Browser
from tests.interop.cimd_host import metadata_host
from tests.interop.stack import InteropStack
from tests.interop.test_mcp_python_sdk import Headless, MemoryStorage, Recorder, _find, _whoami, step

pytestmark = pytest.mark.interop


async def test_python_sdk_with_a_url_client_id(interop: InteropStack) -> None:
    """No POST /register; the tokens' client_id is the document URL; the refresh works without the facade
    fetching the document again (it was fetched once, at /authorize)."""
    async with metadata_host(interop) as host:
        url = host.publish("/oauth/py-client.json", "MCP Python SDK (CIMD)")
        storage = MemoryStorage()
        headless = Headless(Browser(login="py-cimd"), interop.redirect_uri())
        provider = OAuthClientProvider(
            server_url=interop.mcp,
            client_metadata=OAuthClientMetadata(client_name="MCP Python SDK (CIMD)",
                                                redirect_uris=[AnyUrl(headless.redirect_uri)]),
            storage=storage, redirect_handler=headless.redirect_handler,
            callback_handler=headless.callback_handler, client_metadata_url=url)
        recorder = Recorder()
        hooks: dict[str, list[Callable[[httpx2.Response], Awaitable[None]]]] = {"response": [recorder]}
        async with httpx2.AsyncClient(auth=provider, event_hooks=hooks, timeout=30) as http:
            transport = streamable_http_client(interop.mcp, http_client=http)
            async with step("CIMD sign-in and first call", recorder, interop) as mark, Client(transport) as client:
                first = await _whoami(client)
                flow = recorder.since(mark)
                assert not [e for e in flow if e.url.startswith(interop.facade + "/register")], flow
                assert first["client_id"] == url and first["sub"] == "py-cimd", first
                assert storage.client_info is not None and storage.client_info.client_id == url
                provider.context.token_expiry_time = time.time() - 1
                async with step("refresh and call", recorder, interop) as refresh_mark:
                    second = await _whoami(client)
                    refresh = _find(recorder.since(refresh_mark), "POST", interop.facade + "/token")
                    assert refresh.status == 200 and refresh.grant == "refresh_token", refresh
                    assert second["client_id"] == url and second["jti"] != first["jti"]
        assert host.fetched == ["/oauth/py-client.json"]
