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


def _public_jwks() -> str:
    import json

    from joserfc import jwk
    return json.dumps({"keys": [jwk.generate_key("RSA", 2048, parameters={"kid": "k1"}).as_dict(private=False)]})


def test_a_private_key_jwt_client_loads_with_jwks_uri_inline_json_or_a_table(tmp_path: Path) -> None:
    """`jwks_uri`, an inline `jwks` as a JSON string, or as a TOML table: each makes a confidential
    private_key_jwt client (client_credentials allowed), with its own access-token lifetime."""
    from joserfc import jwk
    key = jwk.generate_key("EC", "P-256", parameters={"kid": "t1"}).as_dict(private=False)
    table = ", ".join(f'{name} = "{value}"' for name, value in key.items())
    registry = load_registry(write(tmp_path, f'''
[[client]]
id = "by-uri"
name = "By URI"
grant_types = ["client_credentials"]
jwks_uri = "https://agent.example.com/jwks.json"
access_token_ttl_s = 600

[[client]]
id = "inline"
name = "Inline"
grant_types = ["client_credentials"]
jwks = '{_public_jwks()}'

[[client]]
id = "table"
name = "Table"
grant_types = ["client_credentials"]
jwks = {{ keys = [ {{ {table} }} ] }}
'''), scopes=SCOPES, resources=RESOURCES)
    for client_id in ("by-uri", "inline", "table"):
        client = registry.get(client_id)
        assert client is not None and client.confidential and client.key_source is not None, client_id
        assert client.record()["token_endpoint_auth_method"] == "private_key_jwt"
    by_uri = registry.get("by-uri")
    assert by_uri is not None and by_uri.access_token_ttl_s == 600
    assert registry.has_private_key_jwt


@pytest.mark.parametrize(("entry", "message"), [
    ('secret_hash = "{hashed}"\njwks_uri = "https://a.example/jwks"', "not both"),
    ('jwks_uri = "https://a.example/jwks"\njwks = \'{jwks}\'', "not both"),
    ('jwks_uri = "http://a.example/jwks"', "https"),
    ('jwks = \'{{"keys": [{{"kty": "oct", "k": "c2VjcmV0"}}]}}\'', "private or symmetric"),
    ('jwks = "not json"', "jwks"),
    ('jwks_uri = "https://a.example/jwks"\naccess_token_ttl_s = 0', "access_token_ttl_s"),
    ('jwks_uri = "https://a.example/jwks"\naccess_token_ttl_s = "1h"', "access_token_ttl_s"),
])
def test_bad_key_entries_name_the_problem(tmp_path: Path, entry: str, message: str) -> None:
    """Two authentication methods, an http jwks_uri, a secret key in `jwks`, a bad lifetime: refused."""
    text = entry.format(hashed=hash_secret("s"), jwks=_public_jwks())
    with pytest.raises(ClientsFileError, match=message):
        load_registry(write(tmp_path, '[[client]]\nid = "a"\nname = "A"\ngrant_types = ["client_credentials"]\n'
                            + text + "\n"), scopes=SCOPES, resources=RESOURCES)
