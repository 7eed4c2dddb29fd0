"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-03): the URL and the JSON.

A client_id that starts with ``https://`` is a Client Identifier URL; ids the facade mints (DCR,
base64url) and ids an operator writes in PROXY_CLIENTS_FILE never do (§6.1). The document is checked
as the draft says and then held to the same redirect-URI rules as POST /register.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from proxy import strictjson
from proxy.clients.jwks import KeySetUnusable, KeySource, jwks_uri_problem, public_jwks, public_key_set
from proxy.clients.redirect_uris import RedirectUri, validate_redirect_uri
from proxy.uris import UriError, parse

MAX_URL = 2000
MAX_REDIRECT_URIS = 20
MAX_NAME = 200
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})
PRIVATE_KEY_JWT = "private_key_jwt"
# What a client may sign its assertions with (proxy/token/assertions.py ALGORITHMS; the shared module
# cannot import the token package, tests/test_private_key_jwt.py keeps the two equal).
SIGNING_ALGS = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
# Members echoed from the document (display only, never fetched).
TEXT_MEMBERS = ("client_uri", "logo_uri", "tos_uri", "policy_uri", "software_id", "software_version", "scope")


class DocumentInvalid(ValueError):
    """The URL or the document breaks a rule; the message names the rule, never echoes attacker text."""


def is_client_id_url(client_id: str) -> bool:
    """True for a client_id the facade treats as CIMD (§6.1: the AS's own ids never start so)."""
    return client_id.startswith("https://")


def url_problem(url: str) -> str | None:
    """Why `url` is not a Client Identifier URL (§3), or None when it is one."""
    if len(url) > MAX_URL:
        return "is too long"
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in url):
        return "must be printable ASCII without spaces"
    if "#" in url:
        return "must not contain a fragment (§3)"
    if "\\" in url:
        return "must not contain a backslash"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "must use the https scheme (§3)"
    if "@" in parts.netloc:
        return "must not contain userinfo (§3)"
    if not parts.hostname:
        return "must have a host"
    if not parts.path or parts.path == "/":
        return "must contain a path (§3)"
    segments = parts.path.split("/")
    if any(segment in (".", "..") or segment.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for segment in segments):
        return "must not contain dot segments (§3)"
    if "?" in url:
        return "must not contain a query (§3 SHOULD NOT; refused here)"
    try:
        parse(url)  # as browsers read it, unchanged: the host fetched is the host shown (SEC-71)
    except UriError as exc:
        return exc.reason
    return None


@dataclass(frozen=True, slots=True)
class ClientDocument:
    """A validated document, reduced to what the facade uses; `digest` names this exact content."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    application_type: str
    digest: str
    extra: tuple[tuple[str, str], ...] = ()
    auth_method: str = "none"  # or private_key_jwt, with exactly one of jwks_uri and jwks (JSON text)
    jwks_uri: str | None = None
    jwks: str | None = None

    @property
    def host(self) -> str:
        """The client_id's host, shown on the consent page (§8.5 SHOULD)."""
        return urlsplit(self.client_id).hostname or ""

    @property
    def key_source(self) -> KeySource | None:
        """Where this client's keys are, when it authenticates with private_key_jwt; None for `none`."""
        if self.auth_method != PRIVATE_KEY_JWT:
            return None
        return KeySource(uri=self.jwks_uri) if self.jwks_uri else KeySource(inline=self.jwks)

    @property
    def loopback_only(self) -> bool:
        """Every redirect goes to this machine: anyone can claim such a document (spec: warn)."""
        return all(_is_loopback(uri) for uri in self.redirect_uris)

    def record(self) -> dict[str, Any]:
        """The client as the rest of the facade sees one (the shape of a registration)."""
        client: dict[str, Any] = {
            "client_id": self.client_id, "client_name": self.client_name, "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.auth_method, "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "application_type": self.application_type,
            "cimd": {"digest": self.digest, "host": self.host}, "loopback_only": self.loopback_only,
        }
        client.update(dict(self.extra))
        return client

    def dump(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, data: dict[str, Any]) -> ClientDocument:
        return cls(client_id=data["client_id"], client_name=data["client_name"],
                   redirect_uris=tuple(data["redirect_uris"]), application_type=data["application_type"],
                   digest=data["digest"], extra=tuple((str(k), str(v)) for k, v in data.get("extra", ())),
                   auth_method=data.get("auth_method", "none"), jwks_uri=data.get("jwks_uri"),
                   jwks=data.get("jwks"))


def _is_loopback(uri: str) -> bool:
    checked = validate_redirect_uri(uri)
    return isinstance(checked, RedirectUri) and checked.loopback


def _redirect_uris(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise DocumentInvalid("redirect_uris is required and must be a non-empty array")
    if len(value) > MAX_REDIRECT_URIS:
        raise DocumentInvalid(f"at most {MAX_REDIRECT_URIS} redirect_uris are accepted")
    kept: list[str] = []
    for uri in value:
        checked = validate_redirect_uri(uri)  # the same rules (and canonical string) as POST /register
        if not isinstance(checked, RedirectUri):
            raise DocumentInvalid(f"a redirect URI {checked}")
        kept.append(checked.uri)
    return tuple(dict.fromkeys(kept))


def infer_application_type(redirect_uris: tuple[str, ...] | list[str]) -> str:
    """OIDC DCR: `native` for loopback or private-use-scheme redirects, else `web`."""
    for uri in redirect_uris:
        if urlsplit(uri).scheme not in ("http", "https") or _is_loopback(uri):
            return "native"
    return "web"


def validate(url: str, body: bytes) -> ClientDocument:
    """The document fetched from `url`, checked (§4, §4.1); raises DocumentInvalid."""
    try:
        document = strictjson.loads(body)
    except strictjson.DuplicateMember as exc:
        raise DocumentInvalid("the document names a member more than once (RFC 7493 §2.3)") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise DocumentInvalid("the document is not UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise DocumentInvalid("the document is not a JSON object")
    if document.get("client_id") != url:  # §4: simple string comparison, byte for byte
        raise DocumentInvalid("client_id in the document differs from the URL it was fetched from")
    for member in ("client_secret", "client_secret_expires_at"):
        if member in document:
            raise DocumentInvalid(f"the document must not contain {member} (§4.1)")
    method, jwks_uri, jwks = _authentication(document)
    name = document.get("client_name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise DocumentInvalid(f"client_name is required: a string of at most {MAX_NAME} characters")
    redirect_uris = _redirect_uris(document.get("redirect_uris"))
    application_type = document.get("application_type")
    if application_type is None:
        application_type = infer_application_type(redirect_uris)
    elif application_type not in ("native", "web"):
        raise DocumentInvalid("application_type must be native or web")
    elif application_type == "web" and any(urlsplit(u).scheme not in ("http", "https") for u in redirect_uris):
        raise DocumentInvalid("a web client must not use a private-use redirect scheme")
    extra = tuple((member, value) for member in TEXT_MEMBERS
                  if isinstance(value := document.get(member), str) and len(value) <= 512)
    digest = hashlib.sha256(json.dumps({"client_name": name, "redirect_uris": redirect_uris},
                                       sort_keys=True).encode()).hexdigest()
    return ClientDocument(url, name, redirect_uris, application_type, digest, extra, method, jwks_uri, jwks)


def _authentication(document: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(method, jwks_uri, jwks) as the document declares them. `none`, or `private_key_jwt` (RFC 7523
    §2.2) with its public keys: a `jwks_uri` or an inline `jwks`, exactly one (RFC 7591 §2). The
    member is one string (RFC 7591 §2): a list offering several methods is refused, never narrowed
    down to `none` (README: Client registration, private_key_jwt)."""
    method = document.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise DocumentInvalid("token_endpoint_auth_method must be one string: none or private_key_jwt")
    if method in SHARED_SECRET_METHODS:
        raise DocumentInvalid("a shared-secret token_endpoint_auth_method is not allowed (§4.1)")
    if method == "none":
        return method, None, None
    if method != PRIVATE_KEY_JWT:
        raise DocumentInvalid("token_endpoint_auth_method must be none or private_key_jwt")
    alg = document.get("token_endpoint_auth_signing_alg")
    if alg is not None and alg not in SIGNING_ALGS:
        raise DocumentInvalid(f"token_endpoint_auth_signing_alg must be one of {', '.join(SIGNING_ALGS)}")
    jwks_uri, jwks = document.get("jwks_uri"), document.get("jwks")
    if (jwks_uri is None) == (jwks is None):
        raise DocumentInvalid("private_key_jwt needs a jwks_uri or a jwks, exactly one (RFC 7591 §2)")
    if jwks_uri is not None:
        problem = jwks_uri_problem(jwks_uri)
        if problem is not None:
            raise DocumentInvalid(f"the jwks_uri {problem}")
        return method, jwks_uri, None
    try:
        keys = public_key_set(jwks)
    except KeySetUnusable as exc:
        raise DocumentInvalid(f"the jwks is unusable: {exc}") from exc
    return method, None, json.dumps(public_jwks(keys))
