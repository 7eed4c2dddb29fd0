"""Client identification at /token: malformed Basic headers and mixed methods (RFC 6749 §2.3.1, §5.2).

Every malformed header is 401 invalid_client with a Basic challenge, as JSON, never a 500; nothing
stored changes, and the code is still redeemable by its client afterwards.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.conftest import Facade
from tests.helpers import Authorization, Client, basic
from tests.security.conftest import snapshot


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def ready(facade: Facade) -> tuple[Client, Authorization]:
    client = facade.client()
    await client.register()
    return client, await client.authorize()


def code_form(client: Client, auth: Authorization) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri}


@pytest.mark.parametrize(("case", "header"), [
    ("bad base64", "Basic !!!notbase64"),
    ("base64 with a space inside", "Basic YWJj ZGVm"),
    ("no colon", "Basic " + b64(b"no-colon-here")),
    ("% error in the id", "Basic " + b64(b"%zz:secret")),
    ("truncated % escape", "Basic " + b64(b"abc%4:secret")),
    ("% error in the secret", "Basic " + b64(b"abc:%G1")),
    ("% escape split by the colon", "Basic " + b64(b"abc%:41")),  # "abc%41" joined looks well formed
    ("% escape to invalid UTF-8", "Basic " + b64(b"%FF%FE:secret")),
    ("raw invalid UTF-8", "Basic " + b64(b"\xff\xfe:secret")),
    ("empty client_id", "Basic " + b64(b":secret")),
    ("empty credentials", "Basic "),
    ("scheme only", "Basic"),
    ("huge (5 KB)", "Basic " + b64(b"a" * 5000 + b":x")),
    ("another scheme", "Bearer sometoken"),
    ("Digest", 'Digest username="a", realm="b"'),
])
async def test_a_malformed_basic_header_is_invalid_client(facade: Facade, case: str, header: str) -> None:
    """RFC 6749 §5.2: invalid_client, 401, WWW-Authenticate: Basic; no state changes."""
    client, auth = await ready(facade)
    before = await snapshot(facade.redis)
    status, body, response = await client.token(code_form(client, auth), {"Authorization": header})
    assert (status, body["error"]) == (401, "invalid_client"), case
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.content_type == "application/json"
    assert await snapshot(facade.redis) == before
    status, _, _ = await client.token({**code_form(client, auth), "client_id": client.client_id})
    assert status == 200


async def test_a_header_beyond_the_http_limit_is_refused_by_the_server(facade: Facade) -> None:
    """OWASP API4:2023: a 64 KB Authorization header never reaches a handler (aiohttp refuses header
    lines over 8 KB with 400); nothing changes and the server keeps serving."""
    client, auth = await ready(facade)
    before = await snapshot(facade.redis)
    header = "Basic " + b64(b"a" * 65536 + b":x")
    host, port = "127.0.0.1", facade.settings.port
    body = f"grant_type=authorization_code&code={auth.params['code']}&code_verifier={auth.verifier}"
    request = (f"POST /token HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {header}\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(4096), timeout=5)).decode("latin-1")
    writer.close()
    assert answer.split(" ", 2)[1] == "400", answer[:100]
    assert await snapshot(facade.redis) == before
    status, _, _ = await client.token({**code_form(client, auth), "client_id": client.client_id})
    assert status == 200


async def test_basic_and_a_body_client_id_naming_another_client_is_refused(facade: Facade) -> None:
    """RFC 6749 §2.3: one authentication method per request; Basic for one client and client_id of
    another is invalid_client, and nothing changes."""
    client, auth = await ready(facade)
    other = facade.client()
    await other.register()
    before = await snapshot(facade.redis)
    status, body, _ = await client.token({**code_form(client, auth), "client_id": other.client_id},
                                         {"Authorization": basic(client.client_id, "")})
    assert (status, body["error"]) == (401, "invalid_client")
    assert await snapshot(facade.redis) == before
