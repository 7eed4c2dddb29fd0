"""Client secrets at rest: a salted scrypt string, checked in constant time.

    scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<key, base64url>

The file holds only this string (`oauth-facade clients hash-secret` makes it), so a leaked clients
file does not hand out credentials. Verification runs in a worker thread: scrypt is deliberately slow.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets as random

LOG2_N, R, P, KEY_BYTES = 14, 8, 1, 32
PREFIX = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=2**log2_n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * 1024 * 1024)


def hash_secret(secret: str) -> str:
    salt = random.token_bytes(16)
    return f"{PREFIX}${LOG2_N}${R}${P}${_b64(salt)}${_b64(_derive(secret, salt, LOG2_N, R, P))}"


def hash_problem(stored: str) -> str | None:
    """Why `stored` is not a hash this module can check, or None."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        return "must be a scrypt$… string made by `oauth-facade clients hash-secret`"
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return "is malformed"
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and len(salt) >= 8 and len(key) == KEY_BYTES):
        return "has parameters out of range"
    return None


def verify_secret(secret: str, stored: str) -> bool:
    """True when `secret` hashes to `stored`; the comparison takes the same time either way."""
    parts = stored.split("$")
    salt, expected = _unb64(parts[4]), _unb64(parts[5])
    actual = _derive(secret, salt, int(parts[1]), int(parts[2]), int(parts[3]))
    return hmac.compare_digest(actual, expected)


def decoy_like(stored: str) -> str:
    """A hash with `stored`'s cost parameters and a random key no secret derives to (2^-256): checking a
    secret against it for an unknown id costs what a wrong secret for a known id costs, so the answer's
    timing does not tell which ids exist. The outcome is ignored by the caller anyway."""
    parts = stored.split("$")
    return "$".join([*parts[:4], _b64(random.token_bytes(16)), _b64(random.token_bytes(KEY_BYTES))])


async def verify_secret_async(secret: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_secret, secret, stored)


def new_secret() -> str:
    """A fresh secret from [A-Za-z0-9]: Basic decodes it alike however a client encodes it."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(random.choice(alphabet) for _ in range(40))
