"""Signing keys: loading PEM/JWK/JWKS, the CLI, and rotation in which an old token still verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from joserfc import jwk, jwt

from proxy.keys import KeyFileError, Keyset, generate, parse_keys
from tests.conftest import FacadeFactory


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "keys", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("fmt", ["pem", "jwk", "jwks"])
def test_generate_writes_a_loadable_private_key(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"key.{fmt}"
    assert keys_cli("generate", "--format", fmt, "--out", str(path)).returncode == 0
    assert path.stat().st_mode & 0o077 == 0
    keyset = Keyset.from_file(path)
    assert keyset.active.alg == "RS256"
    assert "d" not in keyset.public_jwks["keys"][0]


def test_es256_keys_are_supported(tmp_path: Path) -> None:
    path = tmp_path / "ec.jwks"
    assert keys_cli("generate", "--alg", "ES256", "--out", str(path)).returncode == 0
    keyset = Keyset.from_file(path)
    assert keyset.algs == ["ES256"]
    header, claims = keyset.verify(keyset.sign({"a": 1}))
    assert header["alg"] == "ES256" and claims == {"a": 1}


def test_rotate_puts_a_new_key_in_front_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keys.jwks"
    keys_cli("generate", "--out", str(path))
    old = Keyset.from_file(path)
    assert keys_cli("rotate", str(path)).returncode == 0
    rotated = Keyset.from_file(path)
    assert len(rotated.keys) == 2
    assert rotated.active.kid != old.active.kid
    assert rotated.keys[1].kid == old.active.kid
    # A token signed before the rotation still verifies against the new keyset.
    token = old.sign({"sub": "x"})
    assert rotated.verify(token)[1]["sub"] == "x"


def test_several_pem_blocks_make_a_rotation(tmp_path: Path) -> None:
    first, second = generate(), generate()
    path = tmp_path / "keys.pem"
    path.write_bytes(first.key.as_pem(private=True) + b"\n" + second.key.as_pem(private=True))
    keyset = Keyset.from_file(path)
    assert [key.kid for key in keyset.keys] == [first.kid, second.kid]


@pytest.mark.parametrize(("content", "message"), [
    (b"not a key", "no private key"),
    (json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB"}).encode(), "unreadable key|at least 2048|private"),
])
def test_unusable_key_files_are_refused(content: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_keys(content)


def test_public_only_jwk_is_refused() -> None:
    public = generate().public_jwk()
    with pytest.raises(KeyFileError, match="private"):
        parse_keys(json.dumps(public).encode())


async def test_a_token_from_before_a_rotation_verifies_against_the_served_jwks(
        make_facade: FacadeFactory, tmp_path: Path) -> None:
    """Key rotation: the old key stays in /jwks, so an id_token it signed keeps verifying."""
    path = tmp_path / "keys.jwks"
    keys_cli("generate", "--out", str(path))
    before = await make_facade(signing_keys_file=str(path))
    client = before.client()
    body = await client.signed_in()
    old_kid = jwt.decode(body["id_token"], await client.jwks()).header["kid"]

    keys_cli("rotate", str(path))
    after = await make_facade(signing_keys_file=str(path))
    async with after.http.get(after.url + "/jwks") as response:
        served = jwk.KeySet.import_key_set(await response.json())
    assert len(served.keys) == 2
    token = jwt.decode(body["id_token"], served)
    assert token.header["kid"] == old_kid
    new_body = await after.client().signed_in()
    assert jwt.decode(new_body["id_token"], served).header["kid"] != old_kid


async def test_generated_key_is_shared_by_replicas_through_the_store(make_facade: FacadeFactory) -> None:
    """Two facades on one Redis and no key file serve the same JWKS (the first one's key)."""
    first = await make_facade()
    second = await make_facade(redis=first.redis)
    assert first.services.keyset.jwks_bytes == second.services.keyset.jwks_bytes
