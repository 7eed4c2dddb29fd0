"""Duplicate JSON member names at /register (issue 14 item 9).

RFC 8259 §4 leaves the meaning of a repeated name to each parser: some keep the first value, Python
keeps the last. A body that a WAF, a log pipeline or a pre-validator reads one way and the facade
another is how registrations get smuggled (e.g. a harmless first `redirect_uris` checked, a second
one stored). The facade refuses such a body outright: 400 invalid_client_metadata (RFC 7591 §3.2.2),
nothing stored.
"""

from __future__ import annotations

import pytest

from tests.conftest import Facade
from tests.security.conftest import snapshot

GOOD = '"redirect_uris": ["https://ok.example/cb"]'
# (body, the repeated name as written the second time)
BODIES = {
    "top level": ('{' + GOOD + ', "redirect_uris": ["https://evil.example/cb"]}', '"redirect_uris"'),
    "top level, spelled with an escape": ('{' + GOOD + ', "redirect_\\u0075ris": ["https://evil.example/cb"]}',
                                          '"redirect_\\u0075ris"'),
    "client_name twice": ('{' + GOOD + ', "client_name": "Safe", "client_name": "Evil"}', '"client_name"'),
    "nested object": ('{' + GOOD + ', "jwks": {"keys": [], "keys": [{"kty": "oct"}]}}', '"keys"'),
    "object in an array": ('{' + GOOD + ', "contacts": [{"a": 1, "a": 2}]}', '"a"'),
    "three levels down": ('{' + GOOD + ', "x": {"y": {"z": 1, "z": 1}}}', '"z"'),
    "same member twice": ('{' + GOOD + ', ' + GOOD + '}', '"redirect_uris"'),
}


@pytest.mark.parametrize(("body", "repeated"), list(BODIES.values()), ids=list(BODIES))
async def test_duplicate_member_names_are_refused(facade: Facade, body: str, repeated: str) -> None:
    """A name repeated in any object of the document, at any depth and however it is escaped, is
    400 invalid_client_metadata and registers nothing; the same body with the second occurrence
    renamed is 201, so the refusal is about the duplicate."""
    headers = {"Content-Type": "application/json"}
    before = await snapshot(facade.redis)
    async with facade.http.post(facade.url + "/register", data=body.encode(), headers=headers) as response:
        document = await response.json()
    assert (response.status, document["error"]) == (400, "invalid_client_metadata"), document
    assert await snapshot(facade.redis) == before
    at = body.rindex(repeated)
    renamed = body[:at] + '"other"' + body[at + len(repeated):]
    async with facade.http.post(facade.url + "/register", data=renamed.encode(), headers=headers) as response:
        assert response.status == 201, (renamed, await response.text())
