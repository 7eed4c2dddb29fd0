"""Validating the facade's access tokens at a resource server, and the challenges that refuse them.

This is the one place the resource side decides whether a bearer token is good: the gateway, the
forward-auth endpoint and the Python verifier all call `verify_access_token`. It knows no HTTP and no
store, so it cannot see revocation; callers that run beside the store check `Principal.jti` and
`Principal.family` there (local JWT validation alone accepts a revoked token until `exp`).

Rules enforced (RFC 9068 §4 unless said otherwise):
- a JWS signed by one of the facade's keys, with that key's algorithm only: `alg=none`, HMAC and an
  algorithm the key does not declare are refused (RFC 8725 §3.1, §3.2);
- an unknown `kid` raises `UnknownKey`, so a caller holding a cached JWKS can refetch it once;
- header `typ` is `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §2.1, RFC 7515 §4.1.9);
- `iss` equals the issuer exactly (no normalisation), `aud` is or contains the resource (RFC 8707,
  MCP: a token minted for another resource is never accepted);
- `exp` and `iat` are present, `nbf` is honoured, all with a small leeway for clock skew;
- `sub`, `client_id` and `jti` are present; `scope` is space-separated (RFC 6749 §3.3).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc import jwk, jws
from joserfc.errors import JoseError

from oauth_facade_verifier import strictjson

#: RFC 9068 §2.1 says `at+jwt`; RFC 7515 §4.1.9 lets the `application/` prefix be omitted or not.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: offline_access asks the AS for a refresh token; it is never what a resource needs (MCP scopes).
OFFLINE_ACCESS = "offline_access"
#: A facade token is about 1 KB; refusing far larger input first bounds the work a stranger can cause.
MAX_TOKEN_LENGTH = 16_384
#: The asymmetric algorithms a key of each type may verify; the key's own `alg`, if set, narrows this.
_ALGS_FOR_KEY = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",), "secp256k1": ("ES256K",)},
    "OKP": ("EdDSA", "Ed25519"),
}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_CHALLENGE_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a validated facade access token."""

    sub: str
    client_id: str
    scopes: tuple[str, ...]
    resource: str  # the audience the token was checked against
    jti: str
    family: str | None  # the token's grant family: OIDC `sid`, the facade's session (README: Refresh tokens)
    expires_at: int
    claims: Mapping[str, Any]  # every claim (email, preferred_username, ...), read-only


def safe_description(text: str) -> str:
    """`text` within RFC 6750 §3's error_description charset (%x20-21 / %x23-5B / %x5D-7E).

    Anything else (quotes, backslashes, controls, non-ASCII) becomes `?`, so the value can be put in a
    header or shown to a client as it is.
    """
    return "".join(ch if (" " <= ch <= "~" and ch not in '"\\') else "?" for ch in text)


class TokenRejected(Exception):
    """The token is not a valid facade access token for this resource: 401 `invalid_token`.

    `description` says why in words safe to send back (RFC 6750 charset, never token content).
    """

    def __init__(self, description: str) -> None:
        self.description = safe_description(description)
        super().__init__(self.description)


class UnknownKey(TokenRejected):
    """The token names a `kid` the given keys do not have: the caller may refetch the JWKS and retry."""

    def __init__(self, kid: str | None) -> None:
        super().__init__("the token is signed by an unknown key")
        self.kid = kid


class InsufficientScope(Exception):
    """The token is valid but lacks a scope the operation needs: 403 `insufficient_scope`.

    `required` is every scope the operation needs (not only the missing ones), without offline_access:
    MCP clients re-authorize for the union of what they hold and what the challenge names.
    """

    def __init__(self, required: tuple[str, ...]) -> None:
        self.required = required
        super().__init__("the token lacks a required scope: " + " ".join(required))


def verify_access_token(token: str, *, keys: jwk.KeySet, issuer: str, resource: str,
                        leeway_s: int = 30, now: float | None = None) -> Principal:
    """The principal of a facade access token minted for `resource`; `TokenRejected` otherwise."""
    header, payload = _verified_jws(token, keys)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise TokenRejected("the token is not an access token (typ is not at+jwt)")
    claims = _json_object(payload, "payload")
    now = time.time() if now is None else now
    _check_issuer_and_audience(claims, issuer, resource)
    expires_at = _check_times(claims, now, leeway_s)
    sub, client_id, jti = (_required_string(claims, name) for name in ("sub", "client_id", "jti"))
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise TokenRejected("the scope claim is not a string")
    family = claims.get("sid")
    if family is not None and not isinstance(family, str):
        raise TokenRejected("the sid claim is not a string")
    return Principal(sub=sub, client_id=client_id, scopes=tuple(scope.split()), resource=resource, jti=jti,
                     family=family, expires_at=expires_at, claims=MappingProxyType(claims))


def require_scopes(principal: Principal, needed: Iterable[str]) -> None:
    """Raise `InsufficientScope` naming every needed scope unless the token carries them all.

    offline_access is ignored: it concerns refresh at the AS, never access at a resource.
    """
    required = _unique(scope for scope in needed if scope != OFFLINE_ACCESS)
    granted = set(principal.scopes)
    if any(scope not in granted for scope in required):
        raise InsufficientScope(required)


def challenge(resource_metadata_url: str, *, scopes: Iterable[str] = (), error: str | None = None,
              description: str | None = None) -> str:
    """A `WWW-Authenticate: Bearer` value (RFC 6750 §3, RFC 9728 §5.1, MCP 2026-07-28).

    - no token sent: `challenge(url, scopes=...)`, no `error`;
    - bad token: `error="invalid_token"`; lacking scope: `error="insufficient_scope"` with every scope
      the operation needs. offline_access is never named; an empty scope list omits `scope`.
    Values are RFC 7235 quoted-strings; `description` is reduced to RFC 6750's charset.
    """
    params: list[tuple[str, str]] = []
    if error is not None:
        if error not in _CHALLENGE_ERRORS:
            raise ValueError(f"not an RFC 6750 §3.1 error code: {error!r}")
        params.append(("error", error))
        if description:
            params.append(("error_description", safe_description(description)))
    wanted = _unique(scope for scope in scopes if scope != OFFLINE_ACCESS)
    for scope in wanted:
        if not scope or any(not ("!" <= ch <= "~") or ch in '"\\' for ch in scope):
            raise ValueError(f"not an RFC 6749 §3.3 scope-token: {scope!r}")
    if wanted:
        params.append(("scope", " ".join(wanted)))
    params.append(("resource_metadata", resource_metadata_url))
    return "Bearer " + ", ".join(f"{name}={quoted_string(value)}" for name, value in params)


def denial_challenge(resource_metadata_url: str, description: str) -> str:
    """The `WWW-Authenticate` of a 403 from an access policy (proxy/access_policy.py): a valid token whose
    holder the policy refuses. `error="access_denied"` is an extension code (RFC 6750 §3 lets a challenge
    carry others; `challenge` keeps to §3.1's three): no scope would help, so never insufficient_scope,
    which sends MCP clients to re-authorize in a loop, and no `scope` parameter."""
    params = (("error", "access_denied"), ("error_description", safe_description(description)),
              ("resource_metadata", resource_metadata_url))
    return "Bearer " + ", ".join(f"{name}={quoted_string(value)}" for name, value in params)


def quoted_string(value: str) -> str:
    """RFC 7230 §3.2.6 quoted-string: `"` and `\\` escaped; characters a header cannot carry refused."""
    for ch in value:
        if not (ch == "\t" or " " <= ch <= "~"):
            raise ValueError(f"a header value cannot carry {ch!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_algorithms(key: Any) -> tuple[str, ...]:
    """The JWS algorithms `key` may verify: its declared `alg`, else those its type allows. Never HMAC
    or `none`: a public JWKS holds no shared secret, and an `oct` key in it is ignored."""
    if key.get("use") not in (None, "sig"):
        return ()
    allowed = _ALGS_FOR_KEY.get(key.key_type, ())
    if isinstance(allowed, dict):
        allowed = allowed.get(getattr(key, "curve_name", None), ())
    declared = key.get("alg")
    if declared is not None:
        return (declared,) if declared in allowed else ()
    return tuple(allowed)


def _verified_jws(token: str, keys: jwk.KeySet) -> tuple[dict[str, Any], bytes]:
    """(protected header, payload) once the signature checks out against a key of `keys`."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("the token is malformed")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise TokenRejected("the token is not a signed JWT")
    header = _json_object(_b64decode(parts[0]), "header")
    if "crit" in header:  # RFC 7515 §4.1.11: the facade defines no extension, so none can be understood
        raise TokenRejected("the token header names critical extensions")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenRejected("the token header has no alg")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRejected("the token header's kid is not a string")
    if kid is not None:
        candidates = [key for key in keys.keys if key.kid == kid]
        if not candidates:
            raise UnknownKey(kid)
    else:
        candidates = list(keys.keys)
    candidates = [key for key in candidates if alg in key_algorithms(key)]
    if not candidates:
        raise TokenRejected("the token's algorithm is not one the issuer signs with")
    for key in candidates:
        try:
            signed = jws.deserialize_compact(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            continue
        return header, signed.payload
    raise TokenRejected("the token signature is invalid")


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenRejected("the token is not base64url") from exc


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = strictjson.loads(data)  # one depth limit and unique member names for every reader
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenRejected(f"the token {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenRejected(f"the token {what} is not a JSON object")
    return value


def _check_issuer_and_audience(claims: Mapping[str, Any], issuer: str, resource: str) -> None:
    """RFC 9068 §4: `iss` exactly the facade's issuer; `aud` the resource, alone or in a list."""
    if claims.get("iss") != issuer:
        raise TokenRejected("the token was not issued by this resource's authorization server")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(value, str) and value == resource for value in audiences):
        raise TokenRejected("the token is not meant for this resource (aud)")


def _check_times(claims: Mapping[str, Any], now: float, leeway_s: int) -> int:
    """RFC 7519 §4.1.4/4.1.5/4.1.6 with a leeway for skew; returns `exp`."""
    exp = _numeric_date(claims, "exp")
    iat = _numeric_date(claims, "iat")
    nbf = _numeric_date(claims, "nbf") if "nbf" in claims else None
    if now >= exp + leeway_s:
        raise TokenRejected("the token has expired")
    if nbf is not None and now + leeway_s < nbf:
        raise TokenRejected("the token is not valid yet (nbf)")
    if now + leeway_s < iat:
        raise TokenRejected("the token was issued in the future (iat)")
    return math.floor(exp)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRejected(f"the token's {name} claim is missing or not a NumericDate")
    return value


def _required_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenRejected(f"the token has no {name} claim")
    return value


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


__all__ = [
    "InsufficientScope",
    "Principal",
    "TokenRejected",
    "UnknownKey",
    "challenge",
    "denial_challenge",
    "key_algorithms",
    "quoted_string",
    "require_scopes",
    "safe_description",
    "verify_access_token",
]
