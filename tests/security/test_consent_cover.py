"""SEC-72: a remembered approval covers what the consent page showed, no more (issue 14 item 2, MCP
"Confused Deputy", OIDC Core §3.1.2.1 `prompt`).

An approval covers the client, the redirect origin (scheme, host, port; a loopback host on any port,
RFC 8252 §7.3), the resource and the scopes shown. Each attack below is the one the review ran: the user
approves `openid` for the loopback redirect, then the same browser is sent with another registered
redirect URI, wider scopes or another resource; today's facade went straight upstream and the code
landed at the attacker.
"""

from __future__ import annotations

import base64
import re

import pytest

from proxy.authorization import approvals
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client, query_of
from tests.security.conftest import html_error, snapshot

LOOPBACK = "http://127.0.0.1:5599/callback"
EVIL = "https://evil.example/cb"
SECOND_RESOURCE = "https://tools.example.com/mcp"


@pytest.fixture
async def consent_facade(make_facade: FacadeFactory) -> Facade:
    return await make_facade(consent=True, resources=("http://127.0.0.1:1/mcp", SECOND_RESOURCE))


def form_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(consent_id|csrf)" value="([^"]+)"', html))


def new_items(html: str) -> list[str]:
    """The page's "asks for more" lines."""
    found = re.search(r'<ul class="new">(.*?)</ul>', html)
    return re.findall(r"<li><strong>(.*?)</strong></li>", found.group(1)) if found else []


async def registered(facade: Facade) -> Client:
    client = facade.client()
    client.redirect_uri = LOOPBACK
    await client.register(redirect_uris=[LOOPBACK, EVIL])
    return client


async def approve(client: Client, **extra: str | None) -> None:
    """Walk the page and approve, then finish the flow (the approval is what the page showed)."""
    response, auth = await client.start(**extra)
    assert response.status == 200 and "Allow access?" in await response.text()
    upstream = await client.post_form(client.facade.url + "/consent",
                                      {**form_of(await response.text()), "decision": "approve"})
    assert upstream.status == 302
    done = await client.follow(upstream, auth)
    assert (await client.exchange(done))[0] == 200


async def test_another_redirect_origin_shows_the_page_naming_it(consent_facade: Facade) -> None:
    """The review's attack: approval of openid for the loopback redirect; the same browser sent with the
    client's other registered redirect URI gets the page again (naming the new destination), and no
    code reaches evil.example without a new approval."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    response, auth = await client.start(scope="openid", redirect_uri=EVIL)
    assert response.status == 200, response.headers.get("Location")
    assert new_items(await response.text()) == ["new destination: evil.example"]
    assert len(consent_facade.idp_state.authorize_requests) == 1  # only the approved flow went upstream
    # Approving the new destination is the user's choice, and then the flow completes there.
    upstream = await client.post_form(consent_facade.url + "/consent",
                                      {**form_of(await response.text()), "decision": "approve"})
    done = await client.follow(upstream, auth)
    assert done.location.startswith(EVIL + "?") and done.params["code"]


async def test_wider_scopes_show_the_page_naming_the_new_ones(consent_facade: Facade) -> None:
    """Approval of openid; a request for openid offline_access email profile shows the page with
    "new: offline_access, email, profile"; nothing goes upstream."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    before = len(consent_facade.idp_state.authorize_requests)
    response, _ = await client.start(scope="openid offline_access email profile")
    assert response.status == 200
    assert new_items(await response.text()) == ["new: offline_access, email, profile"]
    assert len(consent_facade.idp_state.authorize_requests) == before


async def test_another_resource_shows_the_page_naming_it(consent_facade: Facade) -> None:
    """RFC 8707: an approval for one resource does not cover another configured resource."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    response, _ = await client.start(scope="openid", resource=SECOND_RESOURCE)
    assert response.status == 200
    assert new_items(await response.text()) == [f"new resource: {SECOND_RESOURCE}"]


async def test_what_was_approved_and_less_goes_straight_upstream(consent_facade: Facade) -> None:
    """The cover is not a blanket refusal: the same request, fewer scopes, or the loopback host on
    another port (RFC 8252 §7.3: one origin) go upstream without a page, and complete."""
    client = await registered(consent_facade)
    await approve(client, scope="openid email")
    for extra in ({"scope": "openid email"}, {"scope": "openid"},
                  {"scope": "openid", "redirect_uri": "http://127.0.0.1:6001/callback"}):
        response, auth = await client.start(**extra)
        assert response.status == 302, extra
        assert response.headers["Location"].startswith(consent_facade.idp_url + "/authorize?")
        done = await client.follow(response, auth)
        assert (await client.exchange(done))[0] == 200


async def test_prompt_consent_always_shows_the_page(consent_facade: Facade) -> None:
    """OIDC Core §3.1.2.1: prompt=consent asks again even when an approval covers the request."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    response, _ = await client.start(scope="openid", prompt="consent")
    assert response.status == 200 and "Allow access?" in await response.text()
    assert new_items(await response.text()) == []


async def test_prompt_none_with_cover_proceeds_without_a_page(consent_facade: Facade) -> None:
    """prompt=none and an approval that covers the request: straight upstream, the flow completes."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    response, auth = await client.start(scope="openid", prompt="none")
    assert response.status == 302
    done = await client.follow(response, auth)
    assert (await client.exchange(done))[0] == 200


async def test_prompt_none_without_any_approval_is_consent_required(consent_facade: Facade) -> None:
    """OIDC Core §3.1.2.6: prompt=none and nothing approved: consent_required, never the page. The
    loopback client gets it as a redirect with state and iss; nothing is stored, nothing goes upstream."""
    client = await registered(consent_facade)
    before = await snapshot(consent_facade.redis)
    response, auth = await client.start(prompt="none")
    assert response.status == 302
    params = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(LOOPBACK + "?")
    assert (params["error"], params["state"], params["iss"]) == ("consent_required", auth.state, consent_facade.url)
    assert await snapshot(consent_facade.redis) == before
    assert consent_facade.idp_state.authorize_requests == []


async def test_prompt_none_to_an_unapproved_https_origin_is_an_error_page(consent_facade: Facade) -> None:
    """Item 4 decides where consent_required goes: an https origin never approved in this browser gets
    the HTML page (RFC 9700 §4.11.2), not a redirect."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")  # the loopback origin, not evil.example
    response, _ = await client.start(scope="openid", prompt="none", redirect_uri=EVIL, state="phish")
    assert response.status == 400 and "Location" not in response.headers
    assert html_error(await response.text()) == "consent_required"


async def test_prompt_none_beyond_an_approved_origin_redirects_consent_required(consent_facade: Facade) -> None:
    """The origin is approved, the scopes are wider: consent_required goes back to the client."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    response, auth = await client.start(scope="openid email", prompt="none")
    assert response.status == 302
    params = query_of(response.headers["Location"])
    assert (params["error"], params["state"]) == ("consent_required", auth.state)


async def test_prompt_none_with_another_value_is_invalid_request(consent_facade: Facade) -> None:
    """OIDC Core §3.1.2.1: none with any other prompt value is an error."""
    client = await registered(consent_facade)
    response, _ = await client.start(prompt="none consent")
    assert response.status == 302
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


async def test_the_approval_cookie_stays_bounded(consent_facade: Facade) -> None:
    """The cookie keeps the newest MAX_REMEMBERED approvals and stays under the 4096 bytes browsers keep;
    the oldest approval is the one forgotten (its page comes back), the newest is still honoured."""
    first = await registered(consent_facade)
    await approve(first, scope="openid")
    clients = [first]
    for _ in range(approvals.MAX_REMEMBERED):
        client = Client(consent_facade, cookies=first.cookies)
        client.redirect_uri = LOOPBACK
        await client.register()
        await approve(client, scope="openid offline_access email profile")
        clients.append(client)
    cookie = next(c for c in first.cookies if c.key == approvals.APPROVALS)
    assert len(f"{cookie.key}={cookie.value}") < 4096
    assert (await first.start(scope="openid"))[0].status == 200  # evicted
    assert (await clients[-1].start(scope="openid"))[0].status == 302
    assert (await clients[1].start(scope="openid"))[0].status == 302


async def test_an_approval_names_no_client_origin_or_resource_in_clear(consent_facade: Facade) -> None:
    """What the cookie holds about the approval is MACed: the client id, the origin and the resource do
    not appear in it (a cookie jar dump names no applications)."""
    client = await registered(consent_facade)
    await approve(client, scope="openid")
    cookie = next(c for c in client.cookies if c.key == approvals.APPROVALS)
    payload = base64.urlsafe_b64decode(cookie.value.rpartition(".")[0] + "==").decode()
    for plain in (client.client_id, "127.0.0.1", "mcp"):
        assert plain not in payload

