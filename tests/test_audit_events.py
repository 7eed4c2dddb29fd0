"""The audit trail: its event names are an interface (documented and written, both ways), each line is
one JSON object with time, request id and source address, and no line holds a token, code or secret."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import proxy.audit
from proxy.admin.grants import Selector, end_grants
from tests.conftest import FacadeFactory

PROXY = Path(__file__).resolve().parent.parent / "proxy"
NAME = re.compile(r"audit\.[a-z_]+")


def written_events() -> dict[str, set[str]]:
    """event name -> where (module:line) the code writes it: every `audit.event("...")` call."""
    events: dict[str, set[str]] = {}
    for path in sorted(PROXY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "event"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                continue
            where = f"{path.relative_to(PROXY.parent)}:{node.lineno}"
            argument = node.args[0] if node.args else None
            assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), (
                f"{where}: the audit event is not a string literal")
            events.setdefault(argument.value, set()).add(where)
    return events


def documented_events() -> set[str]:
    """The first word of each indented line of the vocabulary in proxy/audit.py's docstring."""
    block = (proxy.audit.__doc__ or "").split("Event vocabulary", 1)[1].split("\n\n", 2)[1]
    return {line.split()[0] for line in block.splitlines() if line.startswith("    ")}


def test_every_written_audit_event_is_documented_and_every_documented_one_is_written() -> None:
    """Both directions, like the log vocabulary: the collector finds the events of the token endpoint, the
    gateway and the admin operations, every name is `audit.<word>`, and the table and the code agree."""
    written, documented = written_events(), documented_events()
    assert {"audit.token", "audit.tool_call", "audit.admin", "audit.gateway_denied"} <= set(written)
    assert all(NAME.fullmatch(name) for name in written), sorted(written)
    assert {name: sorted(written[name]) for name in set(written) - documented} == {}, "written, not documented"
    assert documented - set(written) == set(), "documented, never written"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_whole_session_leaves_its_trail_and_no_secret(make_facade: FacadeFactory, tmp_path: Path) -> None:
    """Registration, consent, sign-in, code redemption, refresh, reuse, revocation and an operator's
    ending each write their event, one JSON line each with time, request id and source address, subject
    and client where known; no token, code, verifier or secret appears anywhere in the file."""
    trail = tmp_path / "audit.log"
    facade = await make_facade(consent=True, audit_log=str(trail))
    client = facade.client()
    await client.register(client_name="Audited")
    response, auth = await client.start()
    text = await response.text()
    form = {name: text.split(f'name="{name}" value="')[1].split('"')[0] for name in ("consent_id", "csrf")}
    response = await client.post_form(facade.url + "/consent", {**form, "decision": "approve"})
    auth = await client.follow(response, auth)
    status, first = await client.exchange(auth)
    assert status == 200
    status, second = await client.refresh(first["refresh_token"])
    assert status == 200
    assert (await client.refresh(second["refresh_token"]))[0] == 200
    assert (await client.refresh(first["refresh_token"]))[0] == 400  # reuse: the family ends
    other = await client.signed_in()
    async with facade.http.post(facade.url + "/revoke", data={"token": other["refresh_token"],
                                                             "client_id": client.client_id}) as answer:
        assert answer.status == 200
    await client.signed_in()
    await end_grants(facade.services.store, facade.services.upstream, Selector(sub="demo-user"), by="cli:test",
                     approvals_lifetime_s=60)
    events = lines(trail)
    names = [line["event"] for line in events]
    for name in ("audit.client_registered", "audit.consent", "audit.sign_in", "audit.token", "audit.refresh",
                 "audit.reuse_detected", "audit.revoke", "audit.admin"):
        assert name in names, name
    for line in events:
        assert line["time"].endswith("+00:00") and "event" in line
        if line["event"] != "audit.admin":  # the operator's call was not an HTTP request
            assert re.fullmatch(r"[0-9a-f]{16}", line["request_id"]) and line["source"] == "127.0.0.1", line
    token = next(line for line in events if line["event"] == "audit.token")
    assert (token["sub"], token["client_id"], token["grant_type"]) == ("demo-user", client.client_id,
                                                                       "authorization_code")
    assert token["scope"] == "openid offline_access" and token["resource"] == facade.url + "/mcp"
    admin = next(line for line in events if line["event"] == "audit.admin")
    assert admin["by"] == "cli:test" and admin["subjects"] == ["demo-user"] and len(admin["families"]) == 1
    consent = next(line for line in events if line["event"] == "audit.consent")
    assert consent["decision"] == "approve" and consent["client_id"] == client.client_id
    raw = trail.read_text()
    for body in (first, second, other):
        for name in ("access_token", "refresh_token", "id_token"):
            assert body[name] not in raw and body[name].split(".")[-1] not in raw
    assert auth.params["code"] not in raw and auth.params["code"].split(".")[1] not in raw
    assert auth.verifier not in raw and "facade secret+1" not in raw


async def test_the_trail_is_off_by_default(make_facade: FacadeFactory, capsys: Any) -> None:
    """Without PROXY_AUDIT_LOG nothing is written anywhere and no event is formed."""
    facade = await make_facade()
    await facade.client().signed_in()
    assert not proxy.audit.enabled()
    assert "audit." not in capsys.readouterr().out
