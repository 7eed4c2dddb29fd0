"""Each class of ambiguous redirect URI is refused at /register, and the consent page names the host
the browser will really visit (issue 14 items 1 and 13, security-cases SEC-71).

`test_uri_differential.py` proves agreement with browsers over a corpus; this module states the
classes one by one, as a reviewer reads them, and follows a sign-in to the `Location` header.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.security.conftest import snapshot
from tests.security.whatwg import WhatwgUrl

CLASSES = {
    "backslash before @": "http://evil.example\\@127.0.0.1:5599/callback",
    "backslash in the host": "https://evil.example\\.claude.ai/cb",
    "userinfo": "https://claude.ai@evil.example/cb",
    "percent-encoded host": "https://%65vil.com/cb",
    "Unicode host (IDNA 2003 vs UTS 46)": "https://claude-acceß.ai/cb",
    "fullwidth host": "https://ｅvil.com/cb",
    "invalid punycode": "https://xn--zz.example/cb",
    "upper-case host": "https://Claude.ai/cb",
    "trailing dot": "http://localhost.:5599/callback",
    "quote in the host": 'https://a"b.example/cb',
    "angle brackets in the host": "https://a<b>.example/cb",
    "caret in the host": "https://a^b.example/cb",
    "pipe in the host": "https://a|b.example/cb",
    "lone surrogate": "https://\ud800.example/cb",
    "hex IPv4": "http://0x7f.1/callback",
    "short IPv4": "http://127.1/callback",
    "integer IPv4": "http://2130706433/callback",
    "IPv4-mapped IPv6": "http://[::ffff:127.0.0.1]/callback",
    "IPv6 zone id": "http://[fe80::1%25eth0]/callback",
    "uncompressed IPv6": "http://[0:0:0:0:0:0:0:1]/callback",
    "port 0": "http://127.0.0.1:0/callback",
    "port 65536": "http://127.0.0.1:65536/callback",
    "port with a leading zero": "http://127.0.0.1:08/callback",
    "default port": "https://claude.ai:443/cb",
    "empty path": "https://claude.ai",
    "dot segments": "http://127.0.0.1:5599/a/../callback",
    "encoded dot segments": "http://127.0.0.1:5599/a/%2e%2e/callback",
    "tab": "http://127.0.0.1:5599/call\tback",
    "newline": "http://127.0.0.1:5599/call\nback",
    "private-use scheme with a port": "com.example.app://host:1/cb",
}


@pytest.mark.parametrize("uri", list(CLASSES.values()), ids=list(CLASSES))
async def test_register_refuses_each_ambiguous_class(facade: Facade, uri: str) -> None:
    """RFC 7591 §3.2.2: 400 invalid_redirect_uri with a description that names neither a quote nor a
    backslash in clear (RFC 6749 §5.2 charset), and nothing stored."""
    before = await snapshot(facade.redis)
    body = {"redirect_uris": ["https://ok.example/cb", uri], "client_name": "x"}
    async with facade.http.post(facade.url + "/register", json=body) as response:
        document = await response.json()
    assert (response.status, document["error"]) == (400, "invalid_redirect_uri"), document
    description = document["error_description"]
    assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in description), description
    assert await snapshot(facade.redis) == before


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True)


async def _sign_in_through_the_page(client: Client) -> tuple[str, str]:
    """The consent page's HTML and the Location the browser is finally sent to after "Allow"."""
    response, auth = await client.start()
    assert response.status == 200, await response.text()
    page = await response.text()
    form = dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', page))
    approved = await client.post_form(client.facade.url + "/consent", {**form, "decision": "approve"})
    final = await client.follow(approved, auth)
    return page, final.location


@pytest.mark.parametrize(("redirect_uri", "host"), [
    ("http://[::1]:5599/callback", "[::1]:5599"),
    ("https://xn--claude-acce-56a.ai/cb", "xn--claude-acce-56a.ai"),
    ("http://127.0.0.1:41000/callback", "127.0.0.1:41000"),
])
async def test_the_page_names_the_host_in_the_location_header(consent_facade: Facade, whatwg: WhatwgUrl,
                                                              redirect_uri: str, host: str) -> None:
    """SEC-71: the host the consent page names is, character for character, the host (and port) a
    browser reads in the Location header it then follows; an IPv6 host keeps its brackets, an IDN is
    the punycode the browser visits."""
    client = consent_facade.client()
    client.redirect_uri = redirect_uri
    await client.register()
    page, location = await _sign_in_through_the_page(client)
    followed = whatwg.parse_one(location)
    visited = followed["hostname"] + (":" + followed["port"] if followed["port"] else "")
    assert visited == host
    assert f"<strong>{host}</strong>" in page
    if host.startswith("["):  # no unbracketed "::1:5599", which reads as another address
        assert "::1:5599" not in page and page.count("[::1]:5599") == 1


async def test_invisible_fillers_in_the_client_name_are_neutralised(consent_facade: Facade) -> None:
    """Issue 14 item 13: Hangul fillers (U+3164, U+115F, U+1160, U+FFA0) and the blank Braille pattern
    (U+2800) render as blank space yet are not whitespace; a name padded with them could push the real
    name out of sight or look empty. They reach the page only as U+FFFD."""
    fillers = "\u3164\u2800\u115f\u1160\uffa0"
    client = consent_facade.client()
    await client.register(client_name=f"Claude{fillers * 3}Evil")
    response, _ = await client.start()
    assert response.status == 200
    page = await response.text()
    for filler in fillers:
        assert filler not in page, hex(ord(filler))
    assert "Claude" + "\ufffd" * 15 + "Evil" in page  # one visible mark per filler


async def test_a_name_of_fillers_only_is_not_blank(consent_facade: Facade) -> None:
    """Issue 14 item 13: a client_name made only of invisible fillers is shown as replacement
    characters, never as an empty name."""
    client = consent_facade.client()
    await client.register(client_name="\u3164\u2800\u115f\u1160")
    response, _ = await client.start()
    page = await response.text()
    assert "<strong>\ufffd\ufffd\ufffd\ufffd</strong>" in page


async def test_a_stored_registration_the_parser_now_refuses_is_never_a_target(facade: Facade) -> None:
    """SEC-71 for registrations stored before the strict parser: with `redirect_uri` omitted, the one
    registered URI is the target only if it still passes; `https://evil.example\\.claude.ai/cb`, stored by
    the old code, gets the error page and no `Location`, whatever the request's other errors."""
    legacy = {"client_id": "legacy-client", "client_name": "legacy",
              "redirect_uris": [CLASSES["backslash in the host"]],
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
              "token_endpoint_auth_method": "none"}
    await facade.services.store.save_client("legacy-client", legacy)
    params = {"client_id": "legacy-client", "response_type": "x", "state": "phish",
              "code_challenge": "A" * 43, "code_challenge_method": "S256"}
    async with facade.http.get(facade.url + "/authorize", params=params, allow_redirects=False) as response:
        page = await response.text()
    assert response.status == 400
    assert "Location" not in response.headers
    assert "no longer accepted" in page
