"""The document fetcher itself refuses anything but https (draft-ietf-oauth-client-id-metadata-document-03
§3), before any lookup: the caller's URL checks are not its only defence (issue 22)."""

from __future__ import annotations

import pytest

from proxy.clients.fetch import Fetcher, FetchRefused
from tests.clients.conftest import DOC_HOST, ScriptedResolver


@pytest.mark.parametrize("url", [f"http://{DOC_HOST}/client.json", f"ftp://{DOC_HOST}/client.json",
                                 "http://8.8.8.8/client.json"])
async def test_a_url_that_is_not_https_is_refused_before_any_lookup(url: str) -> None:
    """A plain-http (or other scheme) URL, even of a host resolving to a public address, is FetchRefused
    and nothing is resolved or contacted."""
    resolver = ScriptedResolver({DOC_HOST: ["8.8.8.8"]})
    fetcher = Fetcher(timeout_s=1, resolve=resolver)
    with pytest.raises(FetchRefused):
        await fetcher.fetch(url)
    assert resolver.questions == []
