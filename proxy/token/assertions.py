"""Signed JWT assertions (RFC 7521, RFC 7523): checked against a party's public keys; no HTTP here.

Public API:

    verify_assertion(token, keys=..., expected=Expected(...), replay=store) -> dict
        the verified claims, or AssertionRejected (its message is public: say it in the error
        description). Client authentication maps it to 401 invalid_client (RFC 7523 §3.2 / RFC 7521
        §4.2.1), a jwt-bearer grant to 400 invalid_grant.
    unverified_claims(token) -> dict    the payload before any check, only to pick whose keys to use
    Expected(issuer, subject, audiences, typ=None, max_ahead_s=300, leeway_s=30)
    ALGORITHMS                          the algs accepted (and advertised): asymmetric only
    KeyLookup = async (kid | None) -> KeySet   e.g. `lambda kid: key_sets.get(source, kid)`
    CLIENT_ASSERTION_TYPE               RFC 7523 §2.2's client_assertion_type

The checks, in order: a compact JWS; `alg` one of ALGORITHMS (never `none`, never HMAC, whose
"key" would be public); no `crit`; `typ` when one is required; the key named by `kid` (or the set's
only key), of the type the alg needs; the signature; `iss`, `sub`, `aud` (a string, or an array
holding one of `expected.audiences`); `exp` present, not past, and at most `max_ahead_s` ahead (an
assertion is a one-shot credential, not a token); `iat` and `nbf` not in the future; `jti` present;
then `jti` is recorded once for its issuer until `exp` (Store.use_jti: SET NX PX, one key, atomic
across replicas), and a second use is refused. Every refusal happens before anything is stored.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jwk, jws
from joserfc.errors import JoseError, SecurityWarning

from proxy.clients.jwks import KeySetError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# EdDSA on Ed25519 only: RFC 9864 deprecates "EdDSA" for naming no curve; the key pins the curve here,
# and "Ed25519" is the fully-specified name for the same signature.
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
_KEY_FOR_ALG = {"RS256": ("RSA", None), "PS256": ("RSA", None), "ES256": ("EC", "P-256"),
                "EdDSA": ("OKP", "Ed25519"), "Ed25519": ("OKP", "Ed25519")}
_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))
MAX_TOKEN = 16 * 1024
MAX_JTI = 256

KeyLookup = Callable[[str | None], Awaitable[jwk.KeySet]]


class AssertionRejected(Exception):
    """The assertion fails a check; the message names the check and never echoes the assertion."""


class JtiStore(Protocol):
    async def use_jti(self, issuer: str, jti: str, ttl_ms: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Expected:
    """What the assertion must say. `subject` None: any subject (an ID-JAG's `sub` is the user)."""

    issuer: str
    subject: str | None
    audiences: tuple[str, ...]
    typ: str | None = None
    max_ahead_s: int = 300
    leeway_s: int = 30


def _segments(token: str) -> list[str]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise AssertionRejected("The assertion is not a JWT of an acceptable size.")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise AssertionRejected("The assertion is not a signed JWT (compact JWS).")
    return parts


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload as sent, unverified: only to choose whose keys verify it."""
    _segments(token)
    try:
        claims = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRejected("The assertion's payload is not a JSON object.") from exc
    if not isinstance(claims, dict):
        raise AssertionRejected("The assertion's payload is not a JSON object.")
    return claims


def _header(token: str) -> dict[str, Any]:
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRejected("The assertion's header is not valid.") from exc
    if not isinstance(header, dict):
        raise AssertionRejected("The assertion's header is not valid.")
    return header


def _check_header(header: dict[str, Any], expected: Expected) -> str:
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AssertionRejected(f"The assertion must be signed with one of {', '.join(ALGORITHMS)} "
                                "(never none or a shared-secret MAC).")
    if "crit" in header:
        raise AssertionRejected("The assertion uses a critical header extension this server does not know.")
    if expected.typ is not None and str(header.get("typ", "")).lower() != expected.typ.lower():
        raise AssertionRejected(f"The assertion's typ must be {expected.typ}.")
    return str(alg)


def _pick_key(keys: jwk.KeySet, kid: object, alg: str) -> Any:
    if kid is not None:
        if not isinstance(kid, str):
            raise AssertionRejected("The assertion's kid must be a string.")
        candidates = [key for key in keys.keys if key.kid == kid]
        if not candidates:
            raise AssertionRejected("No key of the signer has the assertion's kid.")
    else:
        candidates = list(keys.keys)
        if len(candidates) != 1:
            raise AssertionRejected("The assertion names no kid and the signer has more than one key.")
    key = candidates[0]
    kty, curve = _KEY_FOR_ALG[alg]
    if key.key_type != kty or (curve is not None and getattr(key, "curve_name", None) != curve):
        raise AssertionRejected(f"The signer's key does not fit the alg {alg}.")
    if key.get("alg") not in (None, alg):
        raise AssertionRejected("The signer's key is for another alg.")
    return key


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AssertionRejected(f"The assertion has no {name} claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AssertionRejected(f"The assertion's {name} claim is not a number.")
    return float(value)


def _check_claims(claims: dict[str, Any], expected: Expected, now: float) -> tuple[str, float]:
    if claims.get("iss") != expected.issuer:
        raise AssertionRejected("The assertion's iss is not the expected issuer.")
    if expected.subject is not None and claims.get("sub") != expected.subject:
        raise AssertionRejected("The assertion's sub is not the client_id.")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(value, str) and value in expected.audiences for value in audiences):
        raise AssertionRejected("The assertion's aud is not this server (its issuer or token endpoint).")
    leeway = expected.leeway_s
    exp = _number(claims, "exp", required=True)
    assert exp is not None
    if exp <= now - leeway:
        raise AssertionRejected("The assertion has expired.")
    if exp > now + expected.max_ahead_s + leeway:
        raise AssertionRejected(f"The assertion's exp is more than {expected.max_ahead_s} seconds ahead.")
    for name in ("iat", "nbf"):
        value = _number(claims, name, required=False)
        if value is not None and value > now + leeway:
            raise AssertionRejected(f"The assertion's {name} is in the future.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
        raise AssertionRejected("The assertion needs a jti (a string of at most 256 characters).")
    return jti, exp


async def verify_assertion(token: str, *, keys: KeyLookup, expected: Expected, replay: JtiStore,
                           now: float | None = None) -> dict[str, Any]:
    """The verified claims of `token` (see the module docstring); AssertionRejected otherwise."""
    _segments(token)
    header = _header(token)
    alg = _check_header(header, expected)
    try:
        key_set = await keys(header.get("kid") if isinstance(header.get("kid"), str) else None)
    except KeySetError as exc:
        raise AssertionRejected(f"The signer's keys cannot be used: {exc}.") from exc
    key = _pick_key(key_set, header.get("kid"), alg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA": the key's curve is pinned above
            verified = jws.deserialize_compact(token.encode(), key, algorithms=[alg], registry=_REGISTRY)
        claims = json.loads(verified.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRejected("The assertion's signature does not verify with the signer's key.") from exc
    if not isinstance(claims, dict):
        raise AssertionRejected("The assertion's payload is not a JSON object.")
    now = time.time() if now is None else now
    jti, exp = _check_claims(claims, expected, now)
    ttl_ms = int((exp + expected.leeway_s - now) * 1000) + 1000
    if not await replay.use_jti(expected.issuer, jti, ttl_ms):
        raise AssertionRejected("The assertion was used before (its jti is single use).")
    return claims
