"""Secrets: enough randomness, only hashes at rest, constant-time comparison, nothing internal in an
error, nothing secret in a log line (the security issue §4, RFC 9700 §4.14, RFC 6749 §10.10,
OWASP Logging Cheat Sheet, CWE-208/-209/-532)."""

from __future__ import annotations

import base64
import io
import re
from typing import Any
from urllib.parse import urlencode

from proxy.consttime import equals
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client, basic, query_of
from tests.security.conftest import kinds, snapshot

FORM = re.compile(r'name="(consent_id|csrf)" value="([^"]+)"')


def random_bytes(value: str) -> int:
    """How many bytes of base64url a value carries."""
    return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


async def full_flow(facade: Facade) -> dict[str, Any]:
    """Register, consent, sign in, redeem, refresh: every credential the facade hands out, by name."""
    client = facade.client()
    registration = await client.register()
    response, auth = await client.start()
    form = dict(FORM.findall(await response.text()))
    upstream = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
    browser = next(c.value for c in client.cookies if c.key == "oauthfacade-browser")
    upstream_state = query_of(upstream.headers["Location"])["state"]
    auth = await client.follow(upstream, auth)
    status, first = await client.exchange(auth)
    assert status == 200
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    return {"client": client, "client_id": registration["client_id"], "code": auth.params["code"],
            "verifier": auth.verifier, "consent_id": form["consent_id"], "csrf": form["csrf"],
            "browser": browser, "upstream_state": upstream_state, "first": first, "second": second}


async def test_codes_tokens_and_ids_carry_at_least_128_random_bits(make_facade: FacadeFactory) -> None:
    """RFC 6749 §10.10 / the security issue §4: every code, refresh token, client_id, state, consent id,
    CSRF token and browser cookie has at least 128 bits of randomness, and none repeats."""
    facade = await make_facade(consent=True)
    flows = [await full_flow(facade), await full_flow(facade)]
    for flow in flows:
        family, secret = flow["code"].split(".")
        assert random_bytes(family) >= 16 and random_bytes(secret) >= 32
        for body in (flow["first"], flow["second"]):
            family, secret = body["refresh_token"].split(".")
            assert random_bytes(secret) >= 32
        for name in ("client_id", "consent_id", "upstream_state", "browser"):
            assert random_bytes(flow[name]) >= 16, name
        assert random_bytes(flow["csrf"]) == 32  # an HMAC-SHA256
    values = [flow[name] for flow in flows for name in ("code", "client_id", "consent_id", "upstream_state",
                                                         "browser", "csrf")]
    values += [flow[step]["refresh_token"] for flow in flows for step in ("first", "second")]
    assert len(set(values)) == len(values)


async def test_only_hashes_of_codes_and_refresh_tokens_are_stored(make_facade: FacadeFactory) -> None:
    """The security issue §4, RFC 9700 §4.14: no key or value in Redis holds a code, a refresh token or
    their secret halves, the verifier, the CSRF token or the browser cookie (a dump yields nothing usable)."""
    facade = await make_facade(consent=True)
    flow = await full_flow(facade)
    client: Client = flow["client"]
    pending = await client.authorize()  # a code issued and not yet redeemed is at rest too
    state = await snapshot(facade.redis)
    assert {"code", "family", "client"} <= set(kinds(state))
    dump = repr(state)
    secrets = {"code": flow["code"], "code secret": flow["code"].split(".")[1],
               "pending code secret": pending.params["code"].split(".")[1], "verifier": flow["verifier"],
               "csrf": flow["csrf"], "browser": flow["browser"], "consent id": flow["consent_id"],
               "upstream state": flow["upstream_state"]}
    for step in ("first", "second"):
        secrets[f"{step} refresh secret"] = flow[step]["refresh_token"].split(".")[1]
        secrets[f"{step} access token"] = flow[step]["access_token"]
    for name, value in secrets.items():
        assert value not in dump, f"{name} is stored in clear"
    # What is stored still opens for the real secrets (a store that kept nothing would pass the above):
    # the pending code redeems, the current refresh token rotates, and its access token reaches /userinfo.
    status, body = await client.exchange(pending)
    assert status == 200, body
    status, body = await client.refresh(flow["second"]["refresh_token"])
    assert status == 200, body
    async with facade.http.get(facade.url + "/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"}) as response:
        assert response.status == 200 and (await response.json())["sub"] == "demo-user"


def test_secret_comparison_is_constant_time_and_total() -> None:
    """CWE-208: comparisons go through hmac.compare_digest on bytes, so non-ASCII or lone surrogates
    (which make compare_digest on str raise) are simply unequal, never a 500."""
    assert equals("abc", "abc") and not equals("abc", "abd")
    assert not equals("é", "e") and equals("é", "é")
    assert not equals("\ud800", "x")
    assert equals(b"raw", "raw")


async def test_error_bodies_carry_no_internals(make_facade: FacadeFactory) -> None:
    """CWE-209: 4xx/5xx bodies hold a fixed description, never a traceback, the upstream's secret,
    the upstream's error text or an internal detail."""
    facade = await make_facade(idp={"faults": {"token": "html"}}, introspection_secret="rs-secret")
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    assert auth.params["error"] == "temporarily_unavailable"  # a garbled IdP answer is transient
    bodies = [auth.location]
    for path, data in (("/token", {"grant_type": "authorization_code", "code": "x.y", "code_verifier": "v" * 43,
                                   "client_id": client.client_id}),
                       ("/token", {"grant_type": "password"}), ("/introspect", {"token": "x"}),
                       ("/register", {"redirect_uris": "x"})):
        async with facade.http.post(facade.url + path, data=data) as response:
            assert response.status in (400, 401)
            bodies.append(await response.text())
    for body in bodies:
        for leak in ("Traceback", "facade secret", "rs-secret", "Maintenance", "token_exchange", "Error:"):
            assert leak not in body, (leak, body)


async def test_adversarial_requests_log_no_secret(make_facade: FacadeFactory, captured_logs: io.StringIO) -> None:
    """The security issue §4, CWE-532: the attack paths (wrong verifier, replayed code, malformed and
    foreign Basic headers, a revoked refresh token, forged CSRF, a lifted upstream URL) log what happened, but no
    value of any secret, code, token or credential they carried."""
    facade = await make_facade(consent=True)
    flow = await full_flow(facade)
    client: Client = flow["client"]
    code = flow["code"]
    for verifier in ("w" * 43, flow["verifier"]):  # a wrong verifier, then a replay that revokes the family
        await client.token({"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                            "redirect_uri": client.redirect_uri, "client_id": client.client_id})
    header = basic(client.client_id, "basic-secret-value")
    await client.token({"grant_type": "authorization_code", "code": code, "code_verifier": flow["verifier"]},
                       {"Authorization": header})
    await client.token({"grant_type": "authorization_code", "code": code},
                       {"Authorization": "Basic " + base64.b64encode(b"%zz:bad-basic-secret").decode()})
    await client.refresh(flow["first"]["refresh_token"])
    await client.post_form(facade.url + "/consent", {"consent_id": flow["consent_id"], "csrf": flow["csrf"] + "x"})
    lifted, _ = await client.start()
    stranger = Client(facade, client_id=client.client_id)
    at_idp = await stranger.get(lifted.headers["Location"])
    await stranger.get(at_idp.headers["Location"])
    await client.get(facade.url + "/callback?" + urlencode({"state": flow["upstream_state"], "code": "up-code-x"}))

    secrets = {"code": code, "verifier": flow["verifier"], "csrf": flow["csrf"], "browser": flow["browser"],
               "consent id": flow["consent_id"], "upstream state": flow["upstream_state"],
               "basic header": header.split()[1], "basic secret": "basic-secret-value",
               "bad basic": "bad-basic-secret", "upstream secret": "facade secret+1"}
    for step in ("first", "second"):
        for name in ("access_token", "refresh_token", "id_token"):
            secrets[f"{step} {name}"] = flow[step][name]
    for token in (*facade.idp_state.access_tokens, *facade.idp_state.refresh_tokens):
        secrets["upstream token " + token[:4]] = token
    lines = captured_logs.getvalue().splitlines()
    assert any('"callback.browser_mismatch"' in line for line in lines)
    assert any('"code.reused"' in line for line in lines)
    for line in lines:
        for name, value in secrets.items():
            assert value not in line, f"{name} appears in a log line: {line}"
