"""How the facade earns an upstream refresh token (PROXY_UPSTREAM_OFFLINE_ACCESS, profile defaults), and
what it says when a sign-in brings none (issue 17 §1, OIDC Core §11)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from proxy.settings import Settings, SettingsError
from proxy.upstream import PROFILES
from proxy.upstream.offline import reset
from tests import test_profiles
from tests.security.conftest import events
from tests.test_check import Run, against  # noqa: F401 (the fixture)
from tests.test_profiles import Start
from tests.upstreams import FakeOidc, OidcQuirks

start = test_profiles.start  # the fixture: a facade in front of a fake IdP


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def missing() -> float:
    return REGISTRY.get_sample_value("oauth_facade_upstream_missing_refresh_token_total") or 0.0


@pytest.mark.parametrize(("profile", "mode", "scope_has_offline", "params"), [
    ("generic", None, True, {"prompt": "consent"}),  # OIDC Core §11 by default
    ("generic", "scope", True, {}),
    ("clerk", None, True, {}),
    ("auth0", None, True, {}),
    ("google", None, False, {"access_type": "offline", "prompt": "consent"}),
    ("github", None, False, {}),
    ("clerk", "scope+consent", True, {"prompt": "consent"}),
    ("generic", "none", False, {}),
])
def test_each_profile_earns_refresh_tokens_its_way(profile: str, mode: str | None, scope_has_offline: bool,
                                                   params: dict[str, str]) -> None:
    """The profile's default, or the operator's PROXY_UPSTREAM_OFFLINE_ACCESS, decides the scope and the
    authorize parameters that ask for a refresh token."""
    values: dict[str, Any] = {"upstream_profile": profile, "upstream_issuer": "https://idp.example",
                              "upstream_client_id": "c"}
    if mode is not None:
        values["upstream_offline_access"] = mode
    configured = settings(**values)
    chosen = PROFILES[profile]
    assert ("offline_access" in chosen.upstream_scopes(configured)) is scope_has_offline
    extras = chosen.authorize_extras(configured)
    assert {k: extras[k] for k in ("prompt", "access_type") if k in extras} == params


async def test_an_oidc_core_11_idp_issues_a_refresh_token_for_the_generic_default(start: Start) -> None:
    """Against an IdP that honours offline_access only with prompt=consent (as oidc-provider does), the
    generic profile's default sends both, and the facade holds an upstream refresh token."""
    fake = FakeOidc(OidcQuirks(offline="scope+consent"))
    facade = await start("generic", fake)
    client = facade.client()
    await client.signed_in()
    sent = fake.authorize_requests[-1]
    assert "offline_access" in sent["scope"].split() and "consent" in sent["prompt"].split()
    assert len(fake.refresh_tokens) == 1


async def test_a_sign_in_without_the_expected_refresh_token_is_said_once_and_counted(
        start: Start, captured_logs: io.StringIO) -> None:
    """PROXY_UPSTREAM_OFFLINE_ACCESS=scope against an OIDC Core §11 IdP: no refresh token comes back.
    The first such sign-in logs one warning naming the fix; every one is counted."""
    reset()
    fake = FakeOidc(OidcQuirks(offline="scope+consent"))
    facade = await start("generic", fake, upstream_offline_access="scope")
    before = missing()
    for _ in range(2):
        await facade.client().signed_in()
    assert fake.refresh_tokens == {}
    assert missing() == before + 2
    said = [e for e in events(captured_logs) if e["event"] == "upstream.no_refresh_token"]
    assert len(said) == 1 and "scope+consent" in said[0]["hint"]


async def test_check_explains_how_refresh_tokens_are_earned(against: Run) -> None:  # noqa: F811
    """`oauth-facade check` names the offline-access mode, and what a sign-in without a refresh token
    will log, with the fix."""
    outcome = await against("generic", FakeOidc(OidcQuirks()), upstream_offline_access="scope")
    [note] = [line for line in outcome.err.splitlines() if line.startswith("note: offline access")]
    assert "scope: sign-ins ask for the offline_access scope" in note
    assert "upstream.no_refresh_token" in note and "scope+consent" in note


def test_a_broken_resource_servers_file_is_one_line(tmp_path: Path) -> None:
    """A resource-server entry that names an unknown resource stops start-up with one line naming it."""
    from proxy.app import create_app

    path = tmp_path / "rs.toml"
    path.write_text('[[resource_server]]\nid = "x"\nsecret_hash = "plain"\nresources = ["https://a.example"]\n')
    with pytest.raises(SettingsError, match="PROXY_RESOURCE_SERVERS_FILE: resource_server 'x': secret_hash"):
        create_app(settings(resource_servers_file=str(path)))
