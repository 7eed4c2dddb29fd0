"""Configuration: defaults, parsing, and the one-line exit-2 error operators script against."""

from __future__ import annotations

import os
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
    assert settings(scopes=raw).scopes == ("openid", "email")


@pytest.mark.parametrize("raw", ["off", "false", "0", "no"])
def test_switches_accept_off(raw: str) -> None:
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
    with pytest.raises(SettingsError, match="development IdP"):
        coherent(load_settings(env="production", redis_url="redis://localhost", signing_keys_file="k.pem"))


def test_cli_bad_value_is_one_line_and_exit_2_without_traceback() -> None:
    result = run_cli("serve", env={"PROXY_PORT": "eighty"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PROXY_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_reads_an_env_file_under_config(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("PROXY_ISSUER=https://auth.example.com/\n")
    result = run_cli("--env-file", str(env_file), "check")
    assert result.returncode == 2
    assert "PROXY_ISSUER" in result.stderr


def test_cli_settings_table_lists_every_setting() -> None:
    result = run_cli("settings", "--markdown")
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"`PROXY_{name.upper()}`" in result.stdout


def test_readme_settings_table_is_the_generated_one() -> None:
    """The README table is `oauth-facade settings`; regenerate it when a setting changes."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert run_cli("settings", "--markdown").stdout.strip() in readme
