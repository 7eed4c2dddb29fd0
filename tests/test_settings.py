"""Configuration: defaults, parsing, and the one-line exit-2 error operators script against."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.settings import Settings, SettingsError, load_settings
from proxy.upstream.profiles import coherent, upstream_issuer, uses_dev_idp


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    return subprocess.run([sys.executable, "-m", "proxy", *args], env={**clean, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_defaults_serve_locally_with_the_dev_idp() -> None:
    """With no settings the facade serves on 127.0.0.1:8080 with the dev IdP, the in-memory store, one /mcp
    resource, consent and rate limits on."""
    s = settings()
    assert s.issuer == "http://127.0.0.1:8080"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert uses_dev_idp(s) and upstream_issuer(s) == "http://127.0.0.1:8080/devidp"
    assert s.effective_resources == ("http://127.0.0.1:8080/mcp",)
    assert s.redis_url is None
    assert s.scopes == ("openid", "offline_access")
    assert s.consent and s.rate_limits


@pytest.mark.parametrize("raw", ["openid email", "openid,email", " openid , email "])
def test_word_lists_accept_spaces_or_commas(raw: str) -> None:
    """List settings accept space- or comma-separated words."""
    assert settings(scopes=raw).scopes == ("openid", "email")


@pytest.mark.parametrize("raw", ["off", "false", "0", "no"])
def test_switches_accept_off(raw: str) -> None:
    """Boolean settings accept off/false/0/no."""
    s = settings(consent=raw, rate_limits=raw)
    assert not s.consent and not s.rate_limits


@pytest.mark.parametrize(("values", "variable"), [
    ({"issuer": "https://auth.example.com/"}, "PROXY_ISSUER"),
    ({"issuer": "auth.example.com"}, "PROXY_ISSUER"),
    ({"issuer": "https://auth.example.com?x=1"}, "PROXY_ISSUER"),
    ({"port": "eighty"}, "PROXY_PORT"),
    ({"redis_url": "http://localhost:6379"}, "PROXY_REDIS_URL"),
    ({"upstream_profile": "okta"}, "PROXY_UPSTREAM_PROFILE"),
    ({"log_format": "xml"}, "PROXY_LOG_FORMAT"),
    ({"redis_prefix": "a{b}"}, "PROXY_REDIS_PREFIX"),
])
def test_a_bad_value_names_its_variable(values: dict[str, object], variable: str) -> None:
    """What the CLI runs (settings, then the profile's rules) names the variable at fault."""
    with pytest.raises(SettingsError) as caught:
        coherent(load_settings(**values))
    assert str(caught.value).startswith(variable + ":")


def test_production_refuses_the_dev_idp() -> None:
    """PROXY_ENV=production refuses to run with the development IdP."""
    with pytest.raises(SettingsError, match="development IdP"):
        coherent(load_settings(env="production", redis_url="redis://localhost", signing_keys_file="k.pem"))


def test_cli_bad_value_is_one_line_and_exit_2_without_traceback() -> None:
    """A bad setting value is one stderr line naming it, exit 2, no traceback."""
    result = run_cli("serve", env={"PROXY_PORT": "eighty"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PROXY_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_reads_an_env_file_under_config(tmp_path: Path) -> None:
    """--env-file is read: an invalid value in it is reported by name with exit 2."""
    env_file = tmp_path / "bad.env"
    env_file.write_text("PROXY_ISSUER=https://auth.example.com/\n")
    result = run_cli("--env-file", str(env_file), "check")
    assert result.returncode == 2
    assert "PROXY_ISSUER" in result.stderr


def test_cli_settings_table_lists_every_setting() -> None:
    """settings --markdown lists every PROXY_* setting."""
    result = run_cli("settings", "--markdown")
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"`PROXY_{name.upper()}`" in result.stdout


def test_readme_settings_table_is_the_generated_one() -> None:
    """The README table is `oauth-facade settings --markdown`; regenerate it when a setting changes."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert run_cli("settings", "--markdown").stdout.strip() in readme, \
        "README.md's settings table is stale: replace it with the output of `oauth-facade settings --markdown`"


def test_the_dcr_description_names_exactly_the_profiles_that_mirror() -> None:
    """PROXY_UPSTREAM_DCR's row lists the profiles whose IdP has client registration, no more, no fewer."""
    from proxy.upstream import PROFILES

    description = Settings.model_fields["upstream_dcr"].description or ""
    named = set(re.search(r"\(([a-z0-9, ]+)\)", description).group(1).split(", "))  # type: ignore[union-attr]
    assert named == {name for name, profile in PROFILES.items() if profile.supports_dcr}
    for name in PROFILES:
        if name not in named:
            with pytest.raises(SettingsError, match="no client registration"):
                coherent(load_settings(upstream_profile=name, upstream_client_id="x", upstream_issuer="https://i",
                                       upstream_dcr=True))


def test_the_signing_keys_description_says_which_key_signs(tmp_path: Path) -> None:
    """"the first signs" is what Keyset does with a file of several keys."""
    from proxy.keys import Keyset, generate
    from proxy.keys.keyset import render_jwks

    first, second = generate(), generate()
    path = tmp_path / "keys.jwks"
    path.write_text(render_jwks([first, second]))
    assert Keyset.from_file(path).active.kid == first.kid
    assert "the first signs" in (Settings.model_fields["signing_keys_file"].description or "")


@pytest.mark.parametrize(("missing", "named"), [
    ({"upstream_issuer": None}, "dev IdP"),
    ({"signing_keys_file": None}, "generated keys"),
    ({"redis_url": None}, "in-memory store"),
])
def test_production_refuses_what_its_description_says(missing: dict[str, object], named: str) -> None:
    """Each shortcut PROXY_ENV=production refuses is named in its row, and refused."""
    complete: dict[str, object] = {"env": "production", "upstream_issuer": "https://idp.example.com",
                                   "upstream_client_id": "x", "signing_keys_file": "k.jwks",
                                   "redis_url": "redis://localhost"}
    coherent(load_settings(**complete))
    values = {k: v for k, v in {**complete, **missing}.items() if v is not None}
    with pytest.raises(SettingsError, match="PROXY_ENV=production"):
        coherent(load_settings(**values))
    assert named in (Settings.model_fields["env"].description or "")
