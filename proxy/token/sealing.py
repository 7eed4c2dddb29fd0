"""Refresh tokens the facade can recognise as its own, and a rotated one readable only by holders of
its predecessor.

Recognising its own tokens (RFC 9700 §4.14.2 reuse detection). The family id is public (the `sid` claim,
the prefix of codes and refresh tokens), so "names a live family" proves nothing. A refresh token is
``<family>.<base64url(random ‖ MAC)>`` with MAC = HMAC-SHA256(key, family ‖ random) cut to 128 bits, the
key derived from a signing key. A token whose MAC verifies was minted here for that family: if it is no
longer current it is a replay, and the family is revoked. Anything else is `invalid_grant` and changes
nothing. Chosen over keeping hashes of rotated tokens in the family because it needs no state and has
no horizon: a bounded list can be flushed by a thief who rotates the stolen token a few dozen times,
after which the victim's replay would no longer be recognised. Every key of the keyset verifies and
the active one mints, so a key rotation that keeps the old key published keeps detection working;
a token whose key is gone only loses the revocation (it is refused all the same). Tokens minted before
the MAC existed keep working while current; a replay of the previous one is still caught by the store.

Lineage (issue 23: no family lost when Redis fails over). A token also carries, under its MAC, its
*generation* (0 for the first token of a family, +1 per rotation) and its *branch* (the generation at
which the family last resumed from a store that had lost rotations; 0 before that):
``<family>.<base64url(generation:u32 ‖ branch:u32 ‖ random ‖ MAC)>``. With asynchronous replication a
promoted replica can hold a family some rotations behind the token its client holds; the store then
recognises that token as a legitimate successor of what it knows (a later generation on the same
branch, minted here: its MAC verifies) and resumes the family from it on a new branch, so any other
token of the lost history presented afterwards is a fork and is reuse. See proxy/store/scripts.py
ROTATE_REFRESH and the README (Refresh tokens across a Redis failover).

Sealing. Within the grace window a replay of the old token must get the *same* new token (concurrent
Claude Code processes share one credential). The store cannot keep the new token in clear, so it keeps
it XORed with HMAC-SHA512(old token): a one-time pad only the old token's holder can reproduce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import weakref
from dataclasses import dataclass

from proxy.keys import Keyset

_PAD_LABEL = b"oauth-facade refresh grace v2"
_V1_PAD_LABEL = b"oauth-facade refresh grace v1"
_V1_SECRET_BYTES = 32
_MAC_LABEL = b"oauth-facade refresh-token mac v1\x00"
RANDOM_BYTES = 32
MAC_BYTES = 16
SECRET_BYTES = RANDOM_BYTES + MAC_BYTES  # a token minted before lineage: random ‖ MAC
LINEAGE_BYTES = 8
LINEAGE_SECRET_BYTES = LINEAGE_BYTES + RANDOM_BYTES + MAC_BYTES  # generation ‖ branch ‖ random ‖ MAC
MAX_GENERATION = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a refresh token stands in its family: `generation` counts rotations from the sign-in,
    `branch` is the generation the family last resumed from after a store lost rotations (0: never)."""

    generation: int
    branch: int

    def successor(self) -> Lineage:
        """The next token on the same branch (an ordinary rotation)."""
        return Lineage(self.generation + 1, self.branch)

    def resumed(self) -> Lineage:
        """The next token when a lagging store resumes the family from this one: a new branch."""
        return Lineage(self.generation + 1, self.generation)


ORIGIN = Lineage(0, 0)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RefreshTokenMinter:
    """Mints `<family>.<secret>` refresh tokens under the active key; recognises those of any key."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys

    @classmethod
    def for_keyset(cls, keyset: Keyset) -> RefreshTokenMinter:
        keys = [hashlib.sha256(_MAC_LABEL + json.dumps(key.private_jwk(), sort_keys=True).encode()).digest()
                for key in keyset.keys]
        return cls(keys)

    @staticmethod
    def _tag(key: bytes, family: str, body: bytes) -> bytes:
        return hmac.new(key, family.encode() + b"\x00" + body, hashlib.sha256).digest()[:MAC_BYTES]

    def mint(self, family: str, lineage: Lineage = ORIGIN) -> tuple[str, str]:
        """(token, its secret part), at `lineage` (a family's first token by default)."""
        if not 0 <= lineage.branch <= lineage.generation <= MAX_GENERATION:
            raise ValueError("a refresh token's generation is out of range")
        body = struct.pack(">II", lineage.generation, lineage.branch) + secrets.token_bytes(RANDOM_BYTES)
        secret = _b64(body + self._tag(self.keys[0], family, body))
        return f"{family}.{secret}", secret

    def _verified(self, token: str) -> bytes | None:
        """The MAC-covered body of a token minted here (either layout), else None."""
        family, _, secret = token.partition(".")
        if len(secret) not in (_b64_length(SECRET_BYTES), _b64_length(LINEAGE_SECRET_BYTES)):
            return None
        try:
            raw = _unb64(secret)
        except (binascii.Error, ValueError):
            return None
        if len(raw) not in (SECRET_BYTES, LINEAGE_SECRET_BYTES) or _b64(raw) != secret:
            return None
        body, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if any(hmac.compare_digest(tag, self._tag(key, family, body)) for key in self.keys):
            return body
        return None

    def issued(self, token: str) -> bool:
        """True when the token carries a valid MAC for the family it names: it was minted here."""
        return self._verified(token) is not None

    def lineage(self, token: str) -> Lineage | None:
        """The generation and branch of a token minted here; None for one that is not (or was minted
        before lineage existed: such a token only ever rotates from the store's current hash)."""
        body = self._verified(token)
        if body is None or len(body) != LINEAGE_BYTES + RANDOM_BYTES:
            return None
        generation, branch = struct.unpack(">II", body[:LINEAGE_BYTES])
        return Lineage(generation, branch)


def _b64_length(size: int) -> int:
    return (size * 4 + 2) // 3


_MINTERS: weakref.WeakKeyDictionary[Keyset, RefreshTokenMinter] = weakref.WeakKeyDictionary()


def refresh_tokens(keyset: Keyset) -> RefreshTokenMinter:
    """The minter of a keyset, derived once (a keyset never changes; a new one is a new object)."""
    minter = _MINTERS.get(keyset)
    if minter is None:
        minter = _MINTERS[keyset] = RefreshTokenMinter.for_keyset(keyset)
    return minter


def _pad(token: str, length: int) -> bytes:
    if length == _V1_SECRET_BYTES:  # sealed by a version before the MAC, during its last grace window
        return hmac.new(token.encode(), _V1_PAD_LABEL, hashlib.sha256).digest()
    return hmac.new(token.encode(), _PAD_LABEL, hashlib.sha512).digest()[:length]


def _xor(raw: bytes, pad: bytes) -> bytes:
    """raw XOR pad, as one integer operation (a generator over the bytes cost more than the HMAC)."""
    if len(raw) != len(pad):
        raise ValueError("the pad does not fit the sealed secret")
    return (int.from_bytes(raw, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(raw), "big")


def seal(secret_b64: str, old_token: str) -> str:
    raw = _unb64(secret_b64)
    return _b64(_xor(raw, _pad(old_token, len(raw))))


def unseal(sealed: str, old_token: str, family: str) -> str:
    raw = _unb64(sealed)
    return f"{family}.{_b64(_xor(raw, _pad(old_token, len(raw))))}"
