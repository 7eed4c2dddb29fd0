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
    """The installed console script, as an operator runs it."""
    script = str(Path(sys.executable).with_name("oauth-facade"))
    return subprocess.run([script, "keys", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fmt", ["pem", "jwk", "jwks"])
def test_generate_writes_a_loadable_private_key(tmp_path: Path, fmt: str) -> None:
    """keys generate writes an owner-only RS256 private key in each format, which loads and publishes no private
    member."""
    path = tmp_path / f"key.{fmt}"
    assert keys_cli("generate", "--format", fmt, "--out", str(path)).returncode == 0
    assert path.stat().st_mode & 0o077 == 0
    keyset = Keyset.from_file(path)
    assert keyset.active.alg == "RS256"
    assert "d" not in keyset.public_jwks["keys"][0]


def test_es256_keys_are_supported(tmp_path: Path) -> None:
    """keys generate --alg ES256 writes a key that signs and verifies as ES256."""
    path = tmp_path / "ec.jwks"
    assert keys_cli("generate", "--alg", "ES256", "--out", str(path)).returncode == 0
    keyset = Keyset.from_file(path)
    assert keyset.algs == ["ES256"]
    header, claims = keyset.verify(keyset.sign({"a": 1}))
    assert header["alg"] == "ES256" and claims == {"a": 1}


def test_rotate_puts_a_new_key_in_front_and_keeps_the_old(tmp_path: Path) -> None:
    """keys rotate puts a new signing key first and keeps the old one, so tokens signed before still verify."""
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


def test_generate_creates_a_missing_directory_private_to_the_owner(tmp_path: Path) -> None:
    """The README's `--out /etc/oauth-facade/keys.jwks` on a machine without that directory: it is created
    (mode 700), the key is written (mode 600), and the key loads."""
    path = tmp_path / "etc" / "oauth-facade" / "keys.jwks"
    result = keys_cli("generate", "--out", str(path))
    assert result.returncode == 0, result.stderr
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyset.from_file(path).active.alg == "RS256"


def test_generate_says_in_one_line_why_it_cannot_write(tmp_path: Path) -> None:
    """A parent that cannot be a directory (here: a regular file) is one line and exit 1, no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = keys_cli("generate", "--out", str(blocker / "dir" / "keys.jwks"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"oauth-facade: cannot create the directory {blocker / 'dir'}: ")


def test_rotate_refuses_a_file_that_does_not_exist(tmp_path: Path) -> None:
    """A mistyped path used to become a fresh one-key file (so the real file never rotated): now exit 2."""
    path = tmp_path / "kyes.jwks"
    result = keys_cli("rotate", str(path))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "--create" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_rotate_with_create_starts_a_new_key_file(tmp_path: Path) -> None:
    """`--create` is how a new key file is meant: one key, mode 600, parent created."""
    path = tmp_path / "new" / "keys.jwks"
    result = keys_cli("rotate", "--create", str(path))
    assert result.returncode == 0, result.stderr
    assert len(Keyset.from_file(path).keys) == 1
    assert path.stat().st_mode & 0o777 == 0o600


def test_several_pem_blocks_make_a_rotation(tmp_path: Path) -> None:
    """A PEM file with several keys is a keyset in file order (the first signs)."""
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
    """A file without a usable private key is a KeyFileError saying why."""
    with pytest.raises(KeyFileError, match=message):
        parse_keys(content)


def test_public_only_jwk_is_refused() -> None:
    """A public-only JWK is refused as a signing key."""
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


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
async def test_a_facade_on_a_non_default_alg_issues_tokens_its_jwks_verifies(
        make_facade: FacadeFactory, alg: str) -> None:
    """PROXY_SIGNING_ALG=ES256|PS256: a sign-in ends in tokens signed with that alg, verifiable against
    /jwks (joserfc refuses PS256 unless the alg is named; this failed at the first token)."""
    facade = await make_facade(signing_alg=alg)
    client = facade.client()
    await client.register()
    tokens = await client.signed_in()
    keys = await client.jwks()
    for name in ("access_token", "id_token"):
        decoded = jwt.decode(tokens[name], keys, algorithms=[alg])
        assert decoded.header["alg"] == alg
