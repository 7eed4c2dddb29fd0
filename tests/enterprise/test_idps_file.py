"""PROXY_ENTERPRISE_IDPS_FILE: what `serve` refuses to start with, what `check` reports, and the metadata
that advertises the jwt-bearer grant and the ID-JAG profile only while an IdP is trusted."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from proxy.app import create_app
from proxy.check import check
from proxy.enterprise.idps import EnterpriseIdp, load_enterprise_idps
from proxy.settings import Settings, SettingsError
from tests.clients import tls
from tests.conftest import Facade, FacadeFactory
from tests.enterprise.conftest import EnterpriseFacade
from tests.enterprise.conftest import EnterpriseIdp as RunningIdp

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "idps.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ('[[idp]]\nissuer = "http://idp.example"\n', "issuer must be an https URL"),
    ('[[idp]]\nissuer = "https://idp.example#x"\n', "issuer must not have a fragment"),
    ('[[idp]]\nissuer = "https://idp.example"\njwks_uri = "ftp://idp.example/keys"\n', "jwks_uri must be an https"),
    ('[[idp]]\nissuer = "https://idp.example"\nclients = "agent"\n', "clients must be a list"),
    ('[[idp]]\nissuer = "https://idp.example"\nsubject = "email"\n', "subject must be one of prefixed, unchanged"),
    ('[[idp]]\nissuer = "https://idp.example"\nsecret = "x"\n', "unknown key 'secret'"),
    ('[[idp]]\nissuer = "https://a.example"\n[[idp]]\nissuer = "https://a.example"\n', "listed twice"),
    ('[[idp]]\nissuer = "https://a.example"\nsubject = "unchanged"\n'
     '[[idp]]\nissuer = "https://b.example"\nsubject = "unchanged"\n', "only one idp may keep subjects unchanged"),
    ('[[provider]]\nissuer = "https://a.example"\n', "use [[idp]]"),
])
def test_serve_refuses_a_file_with_a_problem_and_names_it(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake stops start-up with one line naming the setting and the entry."""
    settings = Settings(_env_file=None, enterprise_idps_file=write(tmp_path, text))  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="PROXY_ENTERPRISE_IDPS_FILE") as raised:
        create_app(settings)
    assert message in str(raised.value)


def test_http_issuers_reach_only_loopback_and_never_in_production(tmp_path: Path) -> None:
    """The development IdP of `make run` is http on 127.0.0.1; production accepts https only."""
    path = write(tmp_path, '[[idp]]\nissuer = "http://127.0.0.1:8080/devidp"\n')
    assert load_enterprise_idps(path, production=False).configured
    with pytest.raises(ValueError, match="must be an https URL"):
        load_enterprise_idps(path, production=True)


def test_default_subjects_of_two_idps_never_collide() -> None:
    """`prefixed` (the default) puts the issuer before the sub with '#', which no issuer contains."""
    a, b = EnterpriseIdp("https://a.example"), EnterpriseIdp("https://a.example/x")
    assert a.subject_of("x#1") != b.subject_of("1")
    assert a.subject_of("u1") == "https://a.example#u1"
    assert EnterpriseIdp("https://a.example", subject="unchanged").subject_of("u1") == "u1"


def test_the_grant_and_profile_are_advertised_only_with_an_idp(facade: Facade) -> None:
    """No IdP file: neither jwt-bearer nor authorization_grant_profiles_supported (RFC 8414: only what works)."""
    document = facade_metadata(facade)
    assert JWT_BEARER not in document["grant_types_supported"]
    assert "authorization_grant_profiles_supported" not in document


async def test_with_an_idp_the_metadata_lists_jwt_bearer_and_the_id_jag_profile(
        make_enterprise_facade: EnterpriseFacade) -> None:
    """MCP Enterprise-Managed Authorization §6: the profile URN, and the grant type Claude reads."""
    facade = await make_enterprise_facade()
    async with facade.http.get(facade.url + "/.well-known/oauth-authorization-server") as response:
        document = await response.json()
    assert JWT_BEARER in document["grant_types_supported"]
    assert document["authorization_grant_profiles_supported"] == [PROFILE]


async def test_without_an_idp_the_grant_is_unsupported(facade: Facade) -> None:
    """A jwt-bearer request to a facade with no IdP is unsupported_grant_type, as for any unknown grant."""
    async with facade.http.post(facade.url + "/token", data={"grant_type": JWT_BEARER, "assertion": "x.y.z",
                                                             "client_id": "someone"}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"


async def test_check_fetches_each_idps_key_set(enterprise_idp: RunningIdp, enterprise_pki: tls.TestPKI,
                                               tmp_path: Path) -> None:
    """`check` finds the jwks_uri through the issuer's discovery document, fetches it and counts its keys;
    an unreachable issuer is a problem (exit 1) naming the IdP."""
    good = write(tmp_path, f'[[idp]]\nissuer = "{enterprise_idp.url}"\n')
    settings = Settings(_env_file=None, enterprise_idps_file=good, cimd_dev_hosts="localhost",  # type: ignore[call-arg]
                        cimd_ca_file=enterprise_pki.ca_file)
    out, err = io.StringIO(), io.StringIO()
    assert await check(settings, out, err) == 0, err.getvalue()
    assert f"enterprise idp {enterprise_idp.url}: 1 key(s) from {enterprise_idp.url}/jwks" in err.getvalue()
    assert JWT_BEARER in out.getvalue() and PROFILE in out.getvalue()
    bad = write(tmp_path, '[[idp]]\nissuer = "https://localhost:9"\n')
    settings = Settings(_env_file=None, enterprise_idps_file=bad, cimd_dev_hosts="localhost",  # type: ignore[call-arg]
                        cimd_ca_file=enterprise_pki.ca_file)
    err = io.StringIO()
    assert await check(settings, io.StringIO(), err) == 1
    assert "problem: PROXY_ENTERPRISE_IDPS_FILE: idp https://localhost:9:" in err.getvalue()


def facade_metadata(facade: Facade) -> dict:  # type: ignore[type-arg]
    from proxy.discovery.endpoints import DOCUMENTS

    return facade.server.app[DOCUMENTS].metadata


async def test_a_file_with_an_idp_needs_jwt_access_tokens(make_facade: FacadeFactory, tmp_path: Path) -> None:
    """PROXY_ACCESS_TOKEN_MODE=upstream hands the IdP's token through; an ID-JAG brings none."""
    path = write(tmp_path, '[[idp]]\nissuer = "https://idp.example"\n')
    with pytest.raises(SettingsError, match="PROXY_ACCESS_TOKEN_MODE=jwt"):
        await make_facade(enterprise_idps_file=str(path), access_token_mode="upstream")
