"""`oauth-facade check`: the upstream's discovery and JWKS fetched, problems found, exit code non-zero."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.check import check
from proxy.settings import Settings
from proxy.upstream.profiles import uses_dev_idp
from tests.conftest import free_port
from tests.upstreams import FakeGitHub, FakeOidc, OidcQuirks, create_github_app, create_oidc_app

CLIENT_ID, CLIENT_SECRET = "facade", "facade-secret"
ISSUER = "http://127.0.0.1:8080"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def problems(self) -> list[str]:
        return [line.removeprefix("problem: ") for line in self.err.splitlines() if line.startswith("problem: ")]

    @property
    def notes(self) -> str:
        return "\n".join(line for line in self.err.splitlines() if line.startswith("note: "))

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.out)  # stdout is the JSON document and nothing else


Run = Callable[..., Awaitable[Outcome]]


async def run(settings: Settings) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = await check(settings, out, err)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def against(aiohttp_server: Any) -> Run:
    """Start `fake` on loopback and run the check with settings pointing at it."""

    async def runner(profile: str, fake: FakeOidc | FakeGitHub, **overrides: Any) -> Outcome:
        app = create_github_app(fake) if isinstance(fake, FakeGitHub) else create_oidc_app(fake)
        server = await aiohttp_server(app)
        fake.base_url = str(server.make_url("")).rstrip("/")
        if isinstance(fake, FakeOidc):
            fake.add_client(CLIENT_ID, CLIENT_SECRET, ISSUER + "/callback")
        values: dict[str, Any] = {"issuer": ISSUER, "upstream_profile": profile, "upstream_issuer": fake.base_url,
                                  "upstream_client_id": CLIENT_ID, "upstream_client_secret": CLIENT_SECRET}
        values.update(overrides)
        settings = Settings(_env_file=None, **{k: v for k, v in values.items() if v is not None})  # type: ignore[call-arg]
        return await run(settings)

    return runner


async def test_a_healthy_upstream_passes_and_the_effective_metadata_is_printed(against: Run) -> None:
    """check against a sound generic OIDC upstream exits 0 with no problem, prints the facade's and the
    upstream's effective metadata, and notes the redirect URI to register."""
    result = await against("generic", FakeOidc())
    assert result.code == 0, result.err
    assert result.problems == []
    document = result.document
    assert document["authorization_server"]["issuer"] == ISSUER
    assert document["authorization_server"]["token_endpoint"] == ISSUER + "/token"
    upstream = document["upstream"]
    assert upstream["scope"] == "openid email profile offline_access"
    assert upstream["client_auth"] == "client_secret_basic"
    assert upstream["redirect_uri"] == ISSUER + "/callback"
    assert f"register this redirect URI at the upstream: {ISSUER}/callback" in result.notes
    assert "client credentials: accepted" in result.notes


async def test_an_unreachable_upstream_is_a_problem() -> None:
    """An upstream nobody answers at is one problem line naming its URL, exit 1; the facade's own metadata is
    still printed."""
    settings = Settings(_env_file=None, issuer=ISSUER, upstream_issuer=f"http://127.0.0.1:{free_port()}",  # type: ignore[call-arg]
                        upstream_client_id=CLIENT_ID, upstream_client_secret=CLIENT_SECRET, upstream_timeout_s=2)
    result = await run(settings)
    assert result.code == 1
    assert result.problems[0].startswith("upstream unreachable or unusable at http://127.0.0.1:")
    assert "upstream" not in result.document  # the facade's own metadata is still printed


@pytest.mark.parametrize(("quirks", "problem"), [
    ({"code_challenge_methods": ("plain",)}, "does not list PKCE S256"),
    ({"grant_types": ("authorization_code",)}, "does not list the refresh_token grant"),
    ({"auth_methods": ("private_key_jwt",)}, "which the upstream does not list"),
])
async def test_upstream_shortcomings_are_problems(against: Run, quirks: dict[str, Any], problem: str) -> None:
    """An upstream without PKCE S256, the refresh_token grant or a client auth method the facade can use is a
    problem, exit 1."""
    result = await against("generic", FakeOidc(OidcQuirks(**quirks)))
    assert result.code == 1
    assert any(problem in line for line in result.problems), result.err


async def test_clerk_without_offline_access_cannot_refresh(against: Run) -> None:
    """Clerk needs offline_access for refresh tokens: an upstream that does not list it is a problem."""
    result = await against("clerk", FakeOidc(OidcQuirks(scopes_supported=("openid", "email"))))
    assert result.code == 1
    assert "the upstream does not list the offline_access scope that earns refresh tokens" in result.problems


async def test_generic_without_offline_access_is_only_a_note(against: Run) -> None:
    """A generic upstream without offline_access is a note, not a problem, and the effective upstream scope
    drops it."""
    result = await against("generic", FakeOidc(OidcQuirks(scopes_supported=("openid",))))
    assert result.code == 0, result.err
    assert "will not ask it for refresh tokens" in result.notes
    assert result.document["upstream"]["scope"] == "openid email profile"


async def test_wrong_client_credentials_are_found_by_a_probe(against: Run) -> None:
    """check probes the token endpoint with a made-up code: invalid_client means the configured credentials
    are wrong, a problem."""
    result = await against("generic", FakeOidc(), upstream_client_secret="wrong")
    assert result.code == 1
    assert "the upstream rejects PROXY_UPSTREAM_CLIENT_ID/SECRET (invalid_client)" in result.problems


async def test_dcr_without_a_registration_endpoint_is_a_problem(against: Run) -> None:
    """PROXY_UPSTREAM_DCR against an upstream with no registration_endpoint is a problem."""
    result = await against("clerk", FakeOidc(), upstream_dcr=True, upstream_client_id=None,
                           upstream_client_secret=None)
    assert result.code == 1
    assert any("no registration_endpoint" in line for line in result.problems)


async def test_dcr_with_a_registration_endpoint_passes(against: Run) -> None:
    """PROXY_UPSTREAM_DCR with a registration_endpoint passes and reports one upstream client per
    registration."""
    result = await against("clerk", FakeOidc(OidcQuirks(registration=True)), upstream_dcr=True,
                           upstream_client_id=None, upstream_client_secret=None)
    assert result.code == 0, result.err
    assert result.document["upstream"]["client"].startswith("one per registration, via http://127.0.0.1:")


async def test_github_has_no_discovery_but_its_endpoints_are_probed(against: Run) -> None:
    """The github profile has no discovery: check probes its fixed endpoints and reports client_secret_post
    and GitHub's scopes."""
    result = await against("github", FakeGitHub(CLIENT_ID, CLIENT_SECRET))
    assert result.code == 0, result.err
    upstream = result.document["upstream"]
    assert upstream["token_endpoint"].endswith("/login/oauth/access_token")
    assert upstream["client_auth"] == "client_secret_post"
    assert upstream["scope"] == "read:user user:email"
    assert "bad_verification_code" in result.notes  # GitHub's answer to the made-up code, with HTTP 200


async def test_github_wrong_secret_is_a_problem(against: Run) -> None:
    """GitHub's HTTP 200 incorrect_client_credentials answer to the probe is recognised as wrong credentials."""
    result = await against("github", FakeGitHub(CLIENT_ID, "other"))
    assert result.code == 1
    assert "the upstream rejects PROXY_UPSTREAM_CLIENT_ID/SECRET (incorrect_client_credentials)" in result.problems


async def test_github_unknown_client_id_is_a_problem(against: Run) -> None:
    """GitHub answers 404 for an unknown client_id: a problem naming the status."""
    result = await against("github", FakeGitHub("someone-else", CLIENT_SECRET))
    assert result.code == 1
    assert any("answers HTTP 404" in line for line in result.problems)


async def test_plain_http_issuer_on_a_public_host_is_a_problem(against: Run) -> None:
    """RFC 8414 §2 / OAuth 2.1 §1.5: an http:// issuer off loopback is a problem."""
    result = await against("generic", FakeOidc(), issuer="http://auth.example.com")
    assert result.code == 1
    assert any("http:// on a non-loopback host" in line for line in result.problems)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    return subprocess.run([sys.executable, "-m", "proxy", *args], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_check_exits_1_when_the_upstream_is_unreachable() -> None:
    """The CLI: exit 1, the problem on stderr without a traceback, the JSON alone on stdout."""
    result = run_cli("check", env={"PROXY_UPSTREAM_ISSUER": f"http://127.0.0.1:{free_port()}",
                                   "PROXY_UPSTREAM_CLIENT_ID": "x", "PROXY_UPSTREAM_CLIENT_SECRET": "y",
                                   "PROXY_UPSTREAM_TIMEOUT_S": "2"})
    assert result.returncode == 1
    assert "problem: upstream unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["authorization_server"]


def test_cli_check_with_the_dev_idp_needs_no_network() -> None:
    """With no upstream configured, check passes offline and notes the bundled development IdP on stderr."""
    result = run_cli("check", env={})
    assert result.returncode == 0, result.stderr
    assert "note: upstream: the bundled development IdP" in result.stderr


@pytest.mark.parametrize("name", ["generic", "clerk", "google", "auth0", "github"])
def test_every_example_config_loads(name: str) -> None:
    """config/<profile>.env is valid as shipped (placeholders filled in)."""
    env_file = ROOT / "config" / f"{name}.env"
    lines = [line for line in env_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    assert values["PROXY_UPSTREAM_PROFILE"] == name
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.upstream_profile == name
    assert not uses_dev_idp(settings)


async def test_the_key_file_is_loaded_and_named(tmp_path: Path) -> None:
    """check loads PROXY_SIGNING_KEYS_FILE: a usable one is named with the key that signs."""
    from proxy.keys import Keyset, generate
    from proxy.keys.keyset import render_jwks

    path = tmp_path / "keys.jwks"
    path.write_text(render_jwks([generate("ES256")]))
    result = await run(Settings(_env_file=None, signing_keys_file=path))  # type: ignore[call-arg]
    assert result.code == 0, result.err
    kid = Keyset.from_file(path).active.kid
    assert f"signing keys: 1 from {path}; {kid} (ES256) signs" in result.notes
    assert result.document["authorization_server"]["id_token_signing_alg_values_supported"] == ["ES256"]


async def test_a_missing_key_file_is_a_problem(tmp_path: Path) -> None:
    """A key file that cannot be read is a problem (serving would refuse to start)."""
    result = await run(Settings(_env_file=None, signing_keys_file=tmp_path / "missing.jwks"))  # type: ignore[call-arg]
    assert result.code == 1
    assert any(line.startswith("PROXY_SIGNING_KEYS_FILE: cannot read") for line in result.problems), result.err


async def test_an_in_memory_store_is_noted() -> None:
    """Without PROXY_REDIS_URL, check says the store is in memory (nothing to contact)."""
    result = await run(Settings(_env_file=None))  # type: ignore[call-arg]
    assert result.code == 0
    assert "store: in-memory" in result.notes


@pytest.mark.parametrize("variable", ["PROXY_CLIENTS_FILE", "PROXY_RESOURCE_SERVERS_FILE", "PROXY_POLICY_FILE"])
def test_an_operator_file_serve_would_refuse_is_a_problem_not_a_traceback(tmp_path: Path, variable: str) -> None:
    """`check` loads the clients and resource-server files as `serve` does: a broken one is a named
    problem and exit 1 (it was exit 0 for the clients file, a traceback for the other), the JSON still
    parses, and a valid file is no problem."""
    broken = tmp_path / "broken.toml"
    broken.write_text("this is [[ not toml\n")
    result = run_cli("check", env={variable: str(broken)})
    assert result.returncode == 1, result.stderr
    assert f"problem: {variable}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["authorization_server"]["issuer"]
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert run_cli("check", env={variable: str(empty)}).returncode == 0
