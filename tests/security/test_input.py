"""Hostile input: oversized and non-UTF-8 bodies, deep JSON, long fields, header injection through
parameters, reflected markup and deceptive Unicode (OWASP API4:2023, CWE-113, OWASP XSS, UTS #39)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.conftest import Facade, FacadeFactory
from tests.helpers import query_of
from tests.security.conftest import html_error, json_error, snapshot

BIG = 2 * 1024 * 1024


async def test_an_oversized_token_body_is_413(facade: Facade) -> None:
    """The security issue §2: a body over PROXY_MAX_BODY_BYTES is 413 invalid_request JSON, nothing stored."""
    before = await snapshot(facade.redis)
    body = "grant_type=authorization_code&code=" + "a" * BIG
    async with facade.http.post(facade.url + "/token", data=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 413
        assert await json_error(response) == "invalid_request"
        assert response.headers["Cache-Control"] == "no-store"
    assert await snapshot(facade.redis) == before


async def test_an_oversized_registration_is_413_and_the_limit_is_the_setting(make_facade: FacadeFactory) -> None:
    """The security issue §2: 413 above PROXY_MAX_BODY_BYTES, and a body just under it is parsed
    (so the 413 comes from the configured limit, not from something else)."""
    facade = await make_facade(max_body_bytes=4096)
    before = await snapshot(facade.redis)
    document = {"redirect_uris": ["https://app.example.com/cb"], "software_statement": ""}
    document["software_statement"] = "x" * (4096 - len(json.dumps(document)))
    assert len(json.dumps(document)) == 4096
    async with facade.http.post(facade.url + "/register", data=json.dumps(document) + " ",
                                headers={"Content-Type": "application/json"}) as response:
        assert response.status == 413
        assert await json_error(response) == "invalid_request"
    assert await snapshot(facade.redis) == before
    async with facade.http.post(facade.url + "/register", data=json.dumps(document),
                                headers={"Content-Type": "application/json"}) as response:
        assert response.status == 201


async def test_an_oversized_chunked_body_is_413(facade: Facade) -> None:
    """A body without Content-Length is counted as it arrives: chunked 2 MB is 413 as well."""
    async def chunks():  # type: ignore[no-untyped-def]
        yield b"grant_type=refresh_token&refresh_token="
        for _ in range(32):
            yield b"a" * (64 * 1024)

    before = await snapshot(facade.redis)
    async with facade.http.post(facade.url + "/token", data=chunks(),
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 413
        assert await json_error(response) == "invalid_request"
    assert await snapshot(facade.redis) == before


async def test_an_oversized_consent_form_is_an_html_413(make_facade: FacadeFactory) -> None:
    """Browser endpoints answer the limit as a page, not JSON."""
    facade = await make_facade(consent=True)
    client = facade.client()
    response = await client.post_form(facade.url + "/consent", {"consent_id": "a" * BIG, "csrf": "x"})
    assert response.status == 413
    assert response.content_type == "text/html"
    assert html_error(await response.text()) == "invalid_request"


@pytest.mark.parametrize(("path", "content_type", "body", "error"), [
    ("/token", "application/x-www-form-urlencoded", b"grant_type=refresh_token&refresh_token=\xff", "invalid_request"),
    ("/token", "application/x-www-form-urlencoded", b"grant_type=%ff%fe", "invalid_request"),
    ("/register", "application/json", b'{"redirect_uris": ["https://a.example/\xff"]}', "invalid_client_metadata"),
    ("/register", "application/json", b"\xef\xbb\xbf\xff{}", "invalid_client_metadata"),
    ("/revoke", "application/x-www-form-urlencoded", b"token=\xc3\x28", "invalid_request"),
])
async def test_a_non_utf8_body_is_400(facade: Facade, path: str, content_type: str, body: bytes, error: str) -> None:
    """security-cases SEC-60: invalid UTF-8 is a 400 with the endpoint's error code, never a 500."""
    before = await snapshot(facade.redis)
    async with facade.http.post(facade.url + path, data=body, headers={"Content-Type": content_type}) as response:
        assert response.status == 400
        assert await json_error(response) == error
    assert await snapshot(facade.redis) == before


@pytest.mark.parametrize("document", ["[" * 60000, '{"a":' * 10000 + "1" + "}" * 10000,
                                      '{"redirect_uris": [[[[[["https://a.example/cb"]]]]]]}',
                                      '{"redirect_uris": ["https://a.example/cb"], "extra": '
                                      + '{"a": ' * 50 + '"x"' + "}" * 51])
async def test_deeply_nested_json_is_invalid_client_metadata(facade: Facade, document: str) -> None:
    """RFC 7591 §3.2.2 and OWASP API4:2023: nesting beyond the bound is 400, never a RecursionError 500."""
    before = await snapshot(facade.redis)
    async with facade.http.post(facade.url + "/register", data=document,
                                headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert await json_error(response) == "invalid_client_metadata"
    assert await snapshot(facade.redis) == before


@pytest.mark.parametrize(("metadata", "error"), [
    ({"client_name": "n" * 513}, "invalid_client_metadata"),
    ({"client_uri": "https://a.example/" + "p" * 600}, "invalid_client_metadata"),
    ({"scope": "openid " * 200}, "invalid_client_metadata"),
    ({"redirect_uris": ["https://a.example/" + "p" * 2000]}, "invalid_redirect_uri"),
    ({"redirect_uris": [f"https://a.example/{n}" for n in range(21)]}, "invalid_redirect_uri"),
    ({"client_name": ["not", "a", "string"]}, "invalid_client_metadata"),
    ({"grant_types": "authorization_code"}, "invalid_client_metadata"),
])
async def test_registration_fields_are_bounded(facade: Facade, metadata: dict[str, object], error: str) -> None:
    """The security issue §2 (field lengths bounded), RFC 7591 §3.2.2: each bound is a 400."""
    before = await snapshot(facade.redis)
    body = {"redirect_uris": ["https://a.example/cb"], **metadata}
    async with facade.http.post(facade.url + "/register", json=body) as response:
        assert response.status == 400
        assert await json_error(response) == error
    assert await snapshot(facade.redis) == before


async def test_query_parameters_are_bounded(facade: Facade) -> None:
    """The security issue §2: a parameter over 4096 characters, or over 64 parameters, is invalid_request."""
    client = facade.client()
    await client.register()
    before = await snapshot(facade.redis)
    for query in ({"client_id": client.client_id, "state": "s" * 5000},
                  {"client_id": client.client_id, **{f"p{n}": "x" for n in range(70)}}):
        response = await client.get(facade.url + "/authorize?" + urlencode(query))
        assert response.status == 400 and "Location" not in response.headers
        assert html_error(await response.text()) == "invalid_request"
    assert await snapshot(facade.redis) == before


async def test_crlf_in_state_cannot_inject_a_header(facade: Facade) -> None:
    """CWE-113, RFC 6749 §4.1.2: state is echoed percent-encoded inside Location; no header appears."""
    client = facade.client()
    await client.register()
    state = "x\r\nSet-Cookie: injected=1\r\nX-Injected: 1"
    response, _ = await client.start(state=state, response_type="token")  # an error redirect echoes state
    assert response.status == 302
    assert "Set-Cookie" not in response.headers and "X-Injected" not in response.headers
    assert "\r" not in response.headers["Location"] and "\n" not in response.headers["Location"]
    assert "%0D%0ASet-Cookie" in response.headers["Location"]
    assert query_of(response.headers["Location"])["state"] == state
    done = await client.authorize(state=state)
    assert done.params["state"] == state


async def test_crlf_in_scope_or_redirect_uri_is_refused_and_not_reflected(facade: Facade) -> None:
    """CWE-113: a CR/LF in scope is invalid_scope (RFC 6749 §3.3 charset); in a redirect_uri it is not
    registered; neither reaches a header."""
    client = facade.client()
    await client.register()
    before = await snapshot(facade.redis)
    response, _ = await client.start(scope="openid\r\nX-Injected: 1")
    assert response.status == 302 and "X-Injected" not in response.headers
    assert query_of(response.headers["Location"])["error"] == "invalid_scope"
    response, _ = await client.start(redirect_uri=client.redirect_uri + "\r\nX-Injected: 1")
    assert response.status == 400 and "X-Injected" not in response.headers
    async with facade.http.post(facade.url + "/register", json={
            "redirect_uris": ["https://a.example/cb\r\nX-Injected: 1"]}) as registration:
        assert registration.status == 400
        assert await json_error(registration) == "invalid_redirect_uri"
    assert await snapshot(facade.redis) == before


async def test_upstream_error_text_with_crlf_and_markup_is_never_relayed(facade: Facade) -> None:
    """CWE-113 and OWASP XSS: the IdP's error_description is dropped, its error code is checked
    against RFC 6749's charset; nothing of it reaches a header or a page."""
    client = facade.client()
    await client.register()
    response, auth = await client.start()
    upstream_state = query_of(response.headers["Location"])["state"]
    back = await client.get(facade.url + "/callback?" + urlencode({
        "state": upstream_state, "error": "x\r\nX-Injected: 1", "iss": facade.idp_url,
        "error_description": "<script>alert(1)</script>\r\nSet-Cookie: a=b"}))
    assert back.status == 302
    assert "X-Injected" not in back.headers and "Set-Cookie" not in back.headers
    params = query_of(back.headers["Location"])
    assert (params["error"], params["state"]) == ("server_error", auth.state)  # not a code of RFC 6749
    assert "alert" not in back.headers["Location"] and "%3Cscript" not in back.headers["Location"]


async def test_a_nul_in_client_id_is_a_page(facade: Facade) -> None:
    """security-cases SEC-59: %00 in client_id is no client; 400 page, nothing stored."""
    client = facade.client()
    before = await snapshot(facade.redis)
    response = await client.get(facade.url + "/authorize?client_id=a%00b&response_type=code")
    assert response.status == 400 and "Location" not in response.headers
    assert html_error(await response.text()) == "invalid_request"
    assert await snapshot(facade.redis) == before


async def test_reflected_markup_is_escaped_on_every_page(make_facade: FacadeFactory) -> None:
    """The security issue §1, OWASP XSS, RFC 9700 §4.16 (clickjacking): pages escape what they show and
    send CSP, X-Frame-Options: DENY, Referrer-Policy: no-referrer and nosniff."""
    facade = await make_facade(consent=True)
    client = facade.client()
    client.redirect_uri = "https://app.example.com/cb"
    await client.register(client_name='"><script>alert(1)</script><img src=x onerror=alert(2)>')
    pages = [
        await client.get(facade.url + "/authorize?client_id=%3Cscript%3Ealert(1)%3C/script%3E"),
        (await client.start())[0],
        (await client.start(scope="<script>"))[0],
    ]
    consent_page, error_page = pages[1], pages[0]
    for response in (consent_page, error_page):
        text = await response.text()
        assert "<script>" not in text and "<img" not in text  # markup arrives as text, never as tags
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await consent_page.text()
    # A bad scope for an https client this browser never approved is a page too (RFC 9700 §4.11.2).
    assert pages[2].status == 400 and "Location" not in pages[2].headers
    assert "<script>" not in await pages[2].text()


async def test_deceptive_unicode_in_the_client_name_is_neutralised(make_facade: FacadeFactory) -> None:
    """UTS #39 / security-cases SEC-60: bidi overrides and zero-width characters in client_name cannot
    reorder or hide text on the consent page; an IDN redirect host is shown as punycode (a Unicode host
    is refused at registration, SEC-71, so the punycode form is the one a client can register)."""
    facade = await make_facade(consent=True)
    client = facade.client()
    client.redirect_uri = "https://xn--clent-o2e.example.org/cb"  # cl\u0456ent: a Cyrillic i
    await client.register(client_name="Claude\u202egnp.exe\u200b\u2066x\u2069")
    response, _ = await client.start()
    assert response.status == 200
    text = await response.text()
    for char in ("\u202e", "\u200b", "\u2066", "\u2069"):
        assert char not in text
    assert "Claude\ufffdgnp.exe" in text
    assert "xn--clent-o2e.example.org" in text and "cl\u0456ent" not in text


async def test_a_slow_body_does_not_hold_up_other_requests(facade: Facade) -> None:
    """OWASP API4:2023: a client trickling its body occupies its own connection only."""
    reader, writer = await asyncio.open_connection("127.0.0.1", facade.settings.port)
    writer.write(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 1000\r\n\r\ngrant_type=")
    await writer.drain()
    try:
        async with aiohttp.ClientSession() as other:
            for _ in range(5):
                async with other.get(facade.url + "/.well-known/oauth-authorization-server",
                                     timeout=aiohttp.ClientTimeout(total=2)) as response:
                    assert response.status == 200
            async with other.post(facade.url + "/register", json={"redirect_uris": ["https://a.example/cb"]},
                                  timeout=aiohttp.ClientTimeout(total=2)) as response:
                assert response.status == 201
        with pytest.raises(TimeoutError):  # meanwhile the slow request is still being read, unanswered
            await asyncio.wait_for(reader.read(1), timeout=0.2)
    finally:
        writer.close()
