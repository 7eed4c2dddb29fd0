"""PROXY_GATEWAY_BACKENDS and PROXY_TOOL_SCOPES: clear one-line errors, resources added to the table."""

from __future__ import annotations

import pytest

from proxy.app import create_app
from proxy.settings import Settings, SettingsError, load_settings


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("gateway_backends", "https://mcp.example.com/mcp", "RESOURCE=BACKEND"),
    ("gateway_backends", "https://mcp.example.com=http://mcp:3000/mcp", "needs a path"),
    ("gateway_backends", "https://a.example.com/mcp=http://a/mcp https://b.example.com/mcp=http://b/mcp",
     "share the path"),
    ("gateway_backends", "https://mcp.example.com/mcp=ftp://mcp/mcp", "RESOURCE=BACKEND"),
    ("tool_scopes", "deploy", "TOOL=SCOPE"),
    ("tool_scopes", "deploy=a++b", "TOOL=SCOPE"),
])
def test_bad_values_stop_with_the_variable_named(variable: str, value: str, words: str) -> None:
    """A malformed PROXY_GATEWAY_BACKENDS or PROXY_TOOL_SCOPES value is one SettingsError that starts with the
    variable's name and says what is wrong."""
    with pytest.raises(SettingsError) as error:
        load_settings(**{variable: value})
    assert str(error.value).startswith(f"PROXY_{variable.upper()}:") and words in str(error.value)


def test_gateway_resources_join_the_configured_ones() -> None:
    """Gateway resources are protected resources (tokens can be minted for them) without repeating them in
    PROXY_RESOURCES; with neither set the default `<issuer>/mcp` stays."""
    gateway = "https://mcp.example.com/mcp=http://mcp:3000/mcp"
    assert Settings(_env_file=None, gateway_backends=gateway).effective_resources == ("https://mcp.example.com/mcp",)
    both = Settings(_env_file=None, resources="https://other.example.com/x", gateway_backends=gateway)
    assert both.effective_resources == ("https://other.example.com/x", "https://mcp.example.com/mcp")
    assert Settings(_env_file=None).effective_resources == ("http://127.0.0.1:8080/mcp",)


@pytest.mark.parametrize("path", ["/token", "/authorize", "/.well-known/openid-configuration", "/devidp/x"])
def test_a_gateway_path_cannot_shadow_the_facades_own(path: str) -> None:
    """A gateway backend mounted on one of the facade's own paths (token, authorize, discovery, dev IdP) is
    refused when the app is built."""
    settings = Settings(_env_file=None, gateway_backends=f"http://127.0.0.1:8080{path}=http://mcp:3000/mcp")
    with pytest.raises(SettingsError, match="one of the facade's own paths"):
        create_app(settings)
