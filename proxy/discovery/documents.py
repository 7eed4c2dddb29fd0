"""The metadata documents, built once from settings: every endpoint the facade's own, never the IdP's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from proxy.clients.resource_servers import ResourceServers, load_resource_servers
from proxy.settings import Settings

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"  # draft-ietf-oauth-identity-assertion-authz-grant

AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
PRIVATE_KEY_JWT = "private_key_jwt"
# What a private_key_jwt client may sign with: proxy/token/assertions.py ALGORITHMS (an endpoint package
# of its own; tests/test_private_key_jwt.py keeps the two equal).
ASSERTION_SIGNING_ALGS = ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"]
CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid",
          "email", "email_verified", "name", "given_name", "family_name", "preferred_username", "picture",
          "locale", "updated_at"]


def base_path(settings: Settings) -> str:
    """The issuer's path ('' for an origin issuer): every endpoint lives below it."""
    return urlsplit(settings.issuer).path.rstrip("/")


def authorization_server_metadata(settings: Settings, signing_algs: list[str], scopes: list[str],
                                  client_credentials: bool = False, *,
                                  resource_servers: ResourceServers | None = None,
                                  private_key_jwt: bool | None = None,
                                  enterprise_idps: bool = False) -> dict[str, Any]:
    """RFC 8414 §2 and OIDC Discovery §3 in one document, served under both well-known names.

    `registration_endpoint` only while DCR is on; `client_id_metadata_document_supported` (CIMD §6)
    while URL client ids are accepted, with `none` kept among the auth methods (Claude picks CIMD only
    when both are present); `client_credentials` when a pre-registered client may use it;
    `private_key_jwt` (with the algs an assertion may use) at /token and /revoke when a client can use
    it: CIMD is on (a document may declare it) or a pre-registered client has keys (`private_key_jwt`
    None: CIMD decides)."""
    url = settings.url
    grants = ["authorization_code", "refresh_token", *(["client_credentials"] if client_credentials else [])]
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "registration_endpoint": url("/register"),
        "jwks_uri": url("/jwks"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "userinfo_endpoint": url("/userinfo"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
        "id_token_signing_alg_values_supported": signing_algs,
        "subject_types_supported": ["public"],
        "scopes_supported": scopes,
        "claims_supported": CLAIMS,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,
    }
    if not settings.dcr:
        del document["registration_endpoint"]
    if settings.cimd:
        document["client_id_metadata_document_supported"] = True
    if private_key_jwt if private_key_jwt is not None else settings.cimd:
        methods = [*AUTH_METHODS, PRIVATE_KEY_JWT]
        document["token_endpoint_auth_methods_supported"] = methods
        document["token_endpoint_auth_signing_alg_values_supported"] = ASSERTION_SIGNING_ALGS
        document["revocation_endpoint_auth_methods_supported"] = methods
        document["revocation_endpoint_auth_signing_alg_values_supported"] = ASSERTION_SIGNING_ALGS
    _resource_server_features(document, settings, resource_servers)
    if enterprise_idps:  # MCP Enterprise-Managed Authorization §6: only while some IdP is trusted
        document["grant_types_supported"].append(JWT_BEARER)
        document["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
    return document


def _resource_server_features(document: dict[str, Any], settings: Settings,
                              resource_servers: ResourceServers | None) -> None:
    """`introspection_endpoint` only when some resource server may call it; the RFC 8693 grant type only
    when some resource server may use it (RFC 8414 §2: advertise what can be used)."""
    servers = resource_servers if resource_servers is not None else load_resource_servers(settings)
    if not servers.offers_introspection:
        del document["introspection_endpoint"], document["introspection_endpoint_auth_methods_supported"]
    if servers.offers_token_exchange:
        document["grant_types_supported"].append(TOKEN_EXCHANGE)


def protected_resource_metadata(settings: Settings, resource: str, scopes: list[str]) -> dict[str, Any]:
    """RFC 9728 §2: `resource` is exactly the configured URL; this facade is its one AS."""
    return {
        "resource": resource,
        "authorization_servers": [settings.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    }


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Documents:
    """Pre-rendered bodies by request path; discovery requests never build JSON."""

    by_path: dict[str, bytes]
    metadata: dict[str, Any]


def build_documents(settings: Settings, signing_algs: list[str], scopes: list[str],
                    client_credentials: bool = False, *, resource_servers: ResourceServers | None = None,
                    private_key_jwt: bool | None = None, enterprise_idps: bool = False) -> Documents:
    metadata = authorization_server_metadata(settings, signing_algs, scopes, client_credentials,
                                             resource_servers=resource_servers, private_key_jwt=private_key_jwt,
                                             enterprise_idps=enterprise_idps)
    as_body = _bytes(metadata)
    prefix = base_path(settings)
    paths: dict[str, bytes] = {}
    for name in ("oauth-authorization-server", "openid-configuration"):
        paths[f"/.well-known/{name}"] = as_body
        if prefix:
            paths[f"/.well-known/{name}{prefix}"] = as_body  # RFC 8414 §3.1 path insertion
            paths[f"{prefix}/.well-known/{name}"] = as_body  # OIDC Discovery §4 appended form
    resource_paths: list[str] = []
    for resource in settings.effective_resources:
        path = urlsplit(resource).path.rstrip("/")
        body = _bytes(protected_resource_metadata(settings, resource, scopes))
        paths.setdefault("/.well-known/oauth-protected-resource", body)
        if path:
            paths[f"/.well-known/oauth-protected-resource{path}"] = body
            resource_paths.append(path)
    for path in resource_paths:
        # Clients that append the MCP path to the AS well-known (claude.ai, Claude Code).
        for name in ("oauth-authorization-server", "openid-configuration"):
            paths.setdefault(f"/.well-known/{name}{path}", as_body)
    return Documents(paths, metadata)
