"""The facade's signing keys: loaded or generated once, the public JWKS rendered once.

Rotation order is "newest first": the first key of the file signs, every key is published, so tokens
signed by a key that moved back keep verifying until it is removed (`oauth-facade keys rotate`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)
_SUPPORTED_ALGS = {"RSA": ("RS256", "PS256"), "EC": ("ES256",)}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

Key = jwk.RSAKey | jwk.ECKey


class KeyFileError(ValueError):
    """A keys file that cannot be used, phrased for the operator."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: Key
    kid: str
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        data = self.key.as_dict(private=False)
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return {name: value for name, value in data.items() if name not in _PRIVATE_MEMBERS}

    def private_jwk(self) -> dict[str, Any]:
        data = self.key.as_dict(private=True)
        data.update(kid=self.kid, alg=self.alg, use="sig")
        return data


def _default_alg(key: Key) -> str:
    if isinstance(key, jwk.ECKey):
        if key.curve_name != "P-256":
            raise KeyFileError(f"EC keys must be on P-256 for ES256, not {key.curve_name}")
        return "ES256"
    return "RS256"


def signing_key(key: Key, alg: str | None = None) -> SigningKey:
    alg = alg or _default_alg(key)
    if alg not in _SUPPORTED_ALGS.get(key.key_type, ()):
        raise KeyFileError(f"alg {alg} does not fit a {key.key_type} key")
    if isinstance(key, jwk.RSAKey) and key.raw_value.key_size < 2048:
        raise KeyFileError("RSA keys must be at least 2048 bits")
    if not key.is_private:
        raise KeyFileError("a signing key needs its private part")
    return SigningKey(key, key.kid or key.thumbprint(), alg)


def generate(alg: str = "RS256") -> SigningKey:
    key: Key = jwk.ECKey.generate_key("P-256") if alg == "ES256" else jwk.RSAKey.generate_key(2048)
    return signing_key(key, alg)


def parse_keys(data: bytes) -> list[SigningKey]:
    """Keys from PEM (one or more blocks), a JWK or a JWKS, in file order."""
    text = data.strip()
    try:
        if text.startswith(b"{"):
            document = json.loads(text)
            entries = document["keys"] if "keys" in document else [document]
            return [signing_key(jwk.import_key(entry), entry.get("alg")) for entry in entries]
        blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text) if b"PRIVATE" in m.group(1)]
        if not blocks:
            raise KeyFileError("no private key found (expected PEM, JWK or JWKS)")
        return [signing_key(_import_pem(block)) for block in blocks]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, KeyFileError):
            raise
        raise KeyFileError(f"unreadable key: {exc}") from exc


def _import_pem(block: bytes) -> Key:
    try:
        return jwk.RSAKey.import_key(block)
    except (JoseError, ValueError, TypeError):
        return jwk.ECKey.import_key(block)


def render_jwks(keys: list[SigningKey]) -> str:
    return json.dumps({"keys": [key.private_jwk() for key in keys]})


class Keyset:
    """The keys in rotation; the first signs. Built once at start-up, never per request."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise KeyFileError("the keyset is empty")
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise KeyFileError("two keys share a kid; clients could not pick one")
        self.keys = keys
        self.active = keys[0]
        self._verify = jwk.KeySet([key.key for key in keys])
        self.public_jwks = {"keys": [key.public_jwk() for key in keys]}
        self.jwks_bytes = json.dumps(self.public_jwks, separators=(",", ":")).encode()
        self._header = {"alg": self.active.alg, "kid": self.active.kid}

    @classmethod
    def from_file(cls, path: Path) -> Keyset:
        try:
            return cls(parse_keys(path.read_bytes()))
        except OSError as exc:
            raise KeyFileError(f"cannot read {path}: {exc.strerror}") from exc

    @property
    def algs(self) -> list[str]:
        return sorted({key.alg for key in self.keys})

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        """A compact JWS of the claims. jws directly: jwt.encode's claim checks cost ~15% per token."""
        payload = json.dumps(claims, separators=(",", ":"))
        # joserfc signs only its "recommended" algs unless told which: name the active key's own alg
        # (PS256 is otherwise refused at the first token).
        return jws.serialize_compact({**self._header, "typ": typ}, payload, self.active.key,
                                     algorithms=[self.active.alg])

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a token we signed; raises JoseError when it is not ours."""
        decoded = jwt.decode(token, self._verify, algorithms=self.algs)
        return decoded.header, decoded.claims


__all__ = ["KeyFileError", "Keyset", "SigningKey", "generate", "parse_keys", "render_jwks"]
