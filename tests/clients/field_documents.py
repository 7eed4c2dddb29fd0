"""Client ID Metadata Documents the shipping clients publish, member for member as public threads quote
them (the date is when the quoting thread fetched them). Tests serve each one from a host of their
own: `client_id` (and ChatGPT's `jwks_uri`) become the test's URLs, everything else stays as published.
"""

from __future__ import annotations

from typing import Any

# https://claude.ai/oauth/mcp-oauth-client-metadata: claude.ai's connectors (anthropics/claude-ai-mcp#518;
# quoted whole in a public CIMD test suite, 2026). It lists the jwt-bearer grant (enterprise-managed
# authorization) beside authorization_code.
CLAUDE_AI: dict[str, Any] = {
    "client_id": "https://claude.ai/oauth/mcp-oauth-client-metadata",
    "client_name": "Claude",
    "client_uri": "https://claude.ai",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
    "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}

# https://claude.ai/oauth/claude-code-client-metadata (anthropics/claude-code#42301, #44378, #64705): port-less
# loopback redirects, no application_type; Claude Code listens on an ephemeral port.
CLAUDE_CODE: dict[str, Any] = {
    "client_id": "https://claude.ai/oauth/claude-code-client-metadata",
    "client_name": "Claude Code",
    "client_uri": "https://claude.ai",
    "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}

# https://vscode.dev/oauth/client-metadata.json (microsoft/vscode#298300 and #271403; quoted whole in
# public write-ups, 2026-02 and 2026-09): native, a fixed loopback port and vscode.dev's web redirect.
VS_CODE: dict[str, Any] = {
    "client_name": "Visual Studio Code",
    "logo_uri": "https://code.visualstudio.com/assets/branding/code-stable.png",
    "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "application_type": "native",
    "client_id": "https://vscode.dev/oauth/client-metadata.json",
    "client_uri": "https://vscode.dev/product",
    "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
}

# https://chatgpt.com/oauth/<id>/client.json, one per connector (Altinity/altinity-mcp#118,
# stacklok/toolhive#6278, pocket-id/pocket-id#1718): private_key_jwt with RS256 and a jwks_uri.
CHATGPT_CONNECTOR: dict[str, Any] = {
    "client_id": "https://chatgpt.com/oauth/kDmjx77UnKOM/client.json",
    "client_uri": "https://chatgpt.com/",
    "redirect_uris": ["https://chatgpt.com/connector/oauth/kDmjx77UnKOM"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "ChatGPT",
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_signing_alg": "RS256",
    "jwks_uri": "https://chatgpt.com/oauth/jwks.json",
}

# https://chatgpt.com/oauth/client.json (django-oauth/django-oauth-toolkit#1845 and #1857): the same
# method, plus a non-standard `token_endpoint_auth_methods_supported` that also offers `none`.
CHATGPT: dict[str, Any] = {
    "client_id": "https://chatgpt.com/oauth/client.json",
    "client_uri": "https://chatgpt.com/",
    "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "ChatGPT",
    "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
    "token_endpoint_auth_signing_alg": "RS256",
    "jwks_uri": "https://chatgpt.com/oauth/jwks.json",
}

# https://opencode.ai/oauth/opencode/client.json (anomalyco/opencode PR #47737).
OPENCODE: dict[str, Any] = {
    "client_id": "https://opencode.ai/oauth/opencode/client.json",
    "client_name": "opencode",
    "client_uri": "https://opencode.ai",
    "logo_uri": "https://opencode.ai/web-app-manifest-512x512.png",
    "application_type": "native",
    "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "token_endpoint_auth_methods_supported": ["none"],
}
