"""The CIMD settings: the development exception cannot reach production, and bounds must make sense."""

from __future__ import annotations

import pytest

from proxy.settings import SettingsError, load_settings

PRODUCTION = {"env": "production", "upstream_issuer": "https://idp.example", "upstream_client_id": "x",
              "signing_keys_file": "/dev/null", "redis_url": "redis://127.0.0.1:6379/0", "_env_file": None}


@pytest.mark.parametrize("override", [{"cimd_dev_hosts": "localhost"}, {"cimd_ca_file": "/tmp/ca.pem"}])
def test_production_refuses_the_development_exception(override: dict[str, str]) -> None:
    """CIMD §8.6: the loopback exception MUST NOT apply in production; PROXY_ENV=production refuses it."""
    with pytest.raises(SettingsError, match="PROXY_CIMD_DEV_HOSTS"):
        load_settings(**PRODUCTION, **override)
    assert load_settings(**PRODUCTION).cimd_dev_hosts == ()


def test_cache_floor_above_ceiling_is_refused() -> None:
    """A floor over the ceiling is a configuration error, not a silent clamp."""
    with pytest.raises(SettingsError, match="PROXY_CIMD_CACHE_MIN_S"):
        load_settings(_env_file=None, cimd_cache_min_s=100, cimd_cache_max_s=10)


def test_host_patterns_are_word_lists() -> None:
    """Patterns are given like scopes: space or comma separated."""
    settings = load_settings(_env_file=None, cimd_allowed_hosts="claude.ai, *.vscode.dev")
    assert settings.cimd_allowed_hosts == ("claude.ai", "*.vscode.dev")


def test_cimd_access_token_ttl_pairs() -> None:
    """PROXY_CIMD_ACCESS_TOKEN_TTL: HOST_PATTERN=SECONDS pairs, the first match wins, others get the
    default; a malformed pair stops the start naming the setting."""
    settings = load_settings(_env_file=None, cimd_access_token_ttl="chatgpt.com=28800 *.example.com=600")
    assert settings.cimd_access_token_ttl_s("chatgpt.com") == 28800
    assert settings.cimd_access_token_ttl_s("a.example.com") == 600
    assert settings.cimd_access_token_ttl_s("claude.ai") == settings.access_token_ttl_s
    for bad in ("chatgpt.com", "chatgpt.com=soon", "=60", "chatgpt.com=0"):
        with pytest.raises(SettingsError, match="PROXY_CIMD_ACCESS_TOKEN_TTL"):
            load_settings(_env_file=None, cimd_access_token_ttl=bad)
