"""POST /register: RFC 7591 dynamic client registration.

Every client is public (`token_endpoint_auth_method: none`, no secret) whatever it asked for: MCP
clients are native or browser apps that cannot keep a secret, and a secret handed out here only
breaks them at /token (claude.ai asks `client_secret_post`; RFC 7591's default is Basic). The
registration is never refused for its auth method. The answer is 201 (oauth4webapi checks) and
never contains a JSON null.

What is stored is bounded (OWASP API4:2023): at most MAX_REDIRECT_URIS redirect URIs of at most
MAX_REDIRECT_URI_CHARS characters, each text member at most MAX_TEXT characters, and at most
MAX_RECORD_BYTES of JSON in all; unknown members are dropped. A registration is kept a day at most
until it is used for a sign-in (see `ratelimit.registration_lifetime` and `Store.save_client`).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from proxy import audit
from proxy.clients.document import infer_application_type
from proxy.clients.redirect_uris import DISPLAY_SAFE, RedirectUri, validate_redirect_uri
from proxy.errors import InvalidClientMetadata, InvalidRedirectUri
from proxy.state import services
from proxy.web import ratelimit
from proxy.web.forms import json_object

GRANT_TYPES = ("authorization_code", "refresh_token")
MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_CHARS = 512
MAX_TEXT = 512
MAX_RECORD_BYTES = 4000  # the stored JSON: with Redis's overhead at most 4,300 bytes (README, tested)
# Optional string members echoed when sent, bounded and type-checked.
TEXT_MEMBERS = ("client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "software_id",
                "software_version", "application_type", "id_token_signed_response_alg")


def _redirect_uris(metadata: dict[str, Any]) -> list[str]:
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise InvalidRedirectUri("redirect_uris is required and must be a non-empty array.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"At most {MAX_REDIRECT_URIS} redirect URIs may be registered.")
    kept: list[str] = []
    for uri in uris:
        checked = validate_redirect_uri(uri)
        if not isinstance(checked, RedirectUri):
            raise InvalidRedirectUri(f"Redirect URI {_quoted(uri)} {checked}.")
        kept.append(checked.uri)  # the canonical form, which is the string sent (SEC-71)
    return list(dict.fromkeys(kept))


def _quoted(uri: object) -> str:
    """A refused URI named in error_description (RFC 6749 §5.2 allows no quote, backslash or non-ASCII):
    anything else percent-encoded, so a backslash shows as %5C."""
    if not isinstance(uri, str):
        return f"<{type(uri).__name__}>"
    return "<" + quote(uri[:100], safe=DISPLAY_SAFE, errors="backslashreplace") + ">"


def _bounded_uris(metadata: dict[str, Any]) -> None:
    """The size bounds of `redirect_uris`, checked before any URI is parsed."""
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list):
        return
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"At most {MAX_REDIRECT_URIS} redirect URIs may be registered.")
    if any(isinstance(uri, str) and len(uri) > MAX_REDIRECT_URI_CHARS for uri in uris):
        raise InvalidRedirectUri(f"A redirect URI may be at most {MAX_REDIRECT_URI_CHARS} characters long.")


def _texts(metadata: dict[str, Any]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name in TEXT_MEMBERS:
        value = metadata.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise InvalidClientMetadata(f"{name} must be a string of at most {MAX_TEXT} characters.")
        kept[name] = value
    return kept


def _scope(metadata: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    scope = metadata.get("scope")
    if scope is None:
        return None
    if not isinstance(scope, str) or len(scope) > MAX_TEXT:
        raise InvalidClientMetadata("scope must be a space-separated string.")
    kept = [word for word in dict.fromkeys(scope.split()) if word in allowed]
    return " ".join(kept) if kept else None


def _reduced(metadata: dict[str, Any], name: str, allowed: tuple[str, ...], default: list[str]) -> list[str]:
    value = metadata.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings.")
    return [item for item in allowed if item in value] or default


def _application_type(sent: str | None, redirect_uris: list[str]) -> str:
    """OIDC DCR `application_type` (MCP 2026-07-28 clients send it): echoed, inferred when absent, and a
    `web` client may not use a private-use scheme (OIDC Registration §2). Clients that omit it pass."""
    if sent is None:
        return infer_application_type(redirect_uris)
    if sent not in ("native", "web"):
        raise InvalidClientMetadata("application_type must be native or web.")
    if sent == "web" and any(urlsplit(uri).scheme not in ("http", "https") for uri in redirect_uris):
        raise InvalidRedirectUri("A web client must not use a private-use redirect scheme (use native).")
    return sent


def client_record(metadata: dict[str, Any], allowed_scopes: tuple[str, ...]) -> dict[str, Any]:
    """The registration as stored and echoed: validated, reduced to what this server does."""
    _bounded_uris(metadata)
    record: dict[str, Any] = {"redirect_uris": _redirect_uris(metadata)}
    record.update(_texts(metadata))
    alg = record.get("id_token_signed_response_alg")
    if alg is not None and alg not in ("RS256", "ES256", "PS256"):
        raise InvalidClientMetadata("id_token_signed_response_alg is not supported.")
    record["application_type"] = _application_type(record.get("application_type"), record["redirect_uris"])
    record["grant_types"] = _reduced(metadata, "grant_types", GRANT_TYPES, list(GRANT_TYPES))
    record["response_types"] = ["code"]
    record["token_endpoint_auth_method"] = "none"
    scope = _scope(metadata, allowed_scopes)
    if scope is not None:
        record["scope"] = scope
    return record


async def register(request: web.Request) -> web.Response:
    s = services(request)
    await ratelimit.admit(request, "register")
    metadata = await json_object(request)
    record = client_record(metadata, s.scopes)
    alg = record.get("id_token_signed_response_alg")
    if alg is not None and alg != s.keyset.active.alg:
        raise InvalidClientMetadata(f"id_token_signed_response_alg must be {s.keyset.active.alg}.")
    client_id = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: decodes the same from raw, percent- or form-encoded Basic
    record["client_id"] = client_id
    record["client_id_issued_at"] = int(time.time())
    body = json.dumps(record, separators=(",", ":"))
    if len(body.encode()) > MAX_RECORD_BYTES:
        raise InvalidClientMetadata(f"The registration is too large: at most {MAX_RECORD_BYTES} bytes are kept.")
    lifetime_s = await ratelimit.registration_lifetime(request)  # only valid registrations are counted
    private = await s.upstream.mirror_registration(record)  # PROXY_UPSTREAM_DCR: kept, never echoed
    await s.store.save_client(client_id, json.dumps({**record, **private}) if private else body, lifetime_s)
    if audit.enabled():
        audit.event("audit.client_registered", client_id=client_id, client_name=record.get("client_name"),
                    redirect_hosts=sorted({urlsplit(uri).netloc or urlsplit(uri).scheme + ":"
                                           for uri in record["redirect_uris"]}))
    return web.Response(text=body, status=201, content_type="application/json")
