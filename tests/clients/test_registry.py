"""Pre-registered clients from PROXY_CLIENTS_FILE, and `oauth-facade clients hash-secret`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.clients.registry import ClientsFileError, load_registry
from proxy.clients.secrets import hash_secret, verify_secret

SCOPES = ("openid", "offline_access", "email")
RESOURCES = ("https://mcp.example.com/mcp",)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(text)
    return path


def test_a_confidential_client_loads(tmp_path: Path) -> None:
    """A complete entry loads; its record says client_secret_basic and carries the consent choice."""
    hashed = hash_secret("s3cret")
    registry = load_registry(write(tmp_path, f'''
[[client]]
id = "claude-connector"
name = "Claude"
redirect_uris = ["https://claude.ai/api/mcp/auth_callback"]
secret_hash = "{hashed}"
scopes = ["openid"]
resources = ["https://mcp.example.com/mcp"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
skip_consent = true
'''), scopes=SCOPES, resources=RESOURCES)
    client = registry.get("claude-connector")
    assert client is not None and client.confidential and registry.has_confidential
    assert client.record()["token_endpoint_auth_method"] == "client_secret_basic"
    assert client.record()["skip_consent"] is True
    assert client.scopes == ("openid",)


@pytest.mark.parametrize(("entry", "message"), [
    ('id = "https://x.example/c"\nname = "x"\nredirect_uris = ["https://x.example/cb"]', "id must be"),
    ('id = "a"\nredirect_uris = ["https://x.example/cb"]', "name is required"),
    ('id = "a"\nname = "A"\nredirect_uris = ["http://evil.example/cb"]', "redirect URI"),
    ('id = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\nsecret_hash = "plain"', "secret_hash"),
    ('id = "a"\nname = "A"\ngrant_types = ["client_credentials"]', "needs a secret_hash"),
    ('id = "a"\nname = "A"\ngrant_types = ["password"]', "grant type"),
    ('id = "a"\nname = "A"', "needs redirect_uris"),
    ('id = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\nscopes = ["admin"]', "scope"),
    ('id = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\nresources = ["https://o/mcp"]', "resource"),
    ('id = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\nsecret = "x"', "unknown key"),
    ('id = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\nskip_consent = "yes"', "skip_consent"),
])
def test_bad_entries_name_the_problem(tmp_path: Path, entry: str, message: str) -> None:
    """Each mistake an operator can make is refused with a line naming the entry and the key."""
    with pytest.raises(ClientsFileError, match=message):
        load_registry(write(tmp_path, "[[client]]\n" + entry + "\n"), scopes=SCOPES, resources=RESOURCES)


def test_duplicate_ids_and_bad_toml_are_refused(tmp_path: Path) -> None:
    """Two entries with one id, or a file that is not TOML, stop the start-up."""
    entry = '[[client]]\nid = "a"\nname = "A"\nredirect_uris = ["https://x.example/cb"]\n'
    with pytest.raises(ClientsFileError, match="twice"):
        load_registry(write(tmp_path, entry + entry), scopes=SCOPES, resources=RESOURCES)
    with pytest.raises(ClientsFileError, match="TOML"):
        load_registry(write(tmp_path, "[[client]\n"), scopes=SCOPES, resources=RESOURCES)


def test_secret_hash_is_salted_and_verifies_only_the_secret() -> None:
    """Two hashes of one secret differ (salt); the right secret verifies, a near miss does not."""
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second
    assert verify_secret("s3cret", first) and verify_secret("s3cret", second)
    assert not verify_secret("s3cret ", first) and not verify_secret("", first)


def test_cli_hash_secret_prints_a_hash_of_the_given_secret() -> None:
    """`oauth-facade clients hash-secret --stdin` hashes the line it reads; without --stdin it makes a
    secret, shows it once on stderr and prints its hash."""
    given = subprocess.run([sys.executable, "-m", "proxy", "clients", "hash-secret", "--stdin"], input="abc\n",
                           capture_output=True, text=True, check=True)
    assert verify_secret("abc", given.stdout.strip())
    made = subprocess.run([sys.executable, "-m", "proxy", "clients", "hash-secret"], capture_output=True,
                          text=True, check=True)
    secret = made.stderr.strip().rsplit(" ", 1)[-1]
    assert len(secret) == 40 and verify_secret(secret, made.stdout.strip())
