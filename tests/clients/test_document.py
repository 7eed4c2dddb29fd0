"""Client Identifier URLs and documents (draft-ietf-oauth-client-id-metadata-document-03 §3, §4, §4.1)."""

from __future__ import annotations

import json

import pytest

from proxy.clients.document import DocumentInvalid, is_client_id_url, url_problem, validate

URL = "https://app.example.com/oauth/client.json"


@pytest.mark.parametrize("url", [
    "http://app.example.com/client.json",  # not https
    "https://app.example.com",  # no path
    "https://app.example.com/",  # root path
    "https://app.example.com/client.json#x",  # fragment
    "https://user@app.example.com/client.json",  # userinfo
    "https://user:pw@app.example.com/client.json",
    "https://app.example.com/a/../client.json",  # dot segments
    "https://app.example.com/./client.json",
    "https://app.example.com/a/%2e%2e/client.json",
    "https://app.example.com/client.json?v=1",  # query (SHOULD NOT; refused)
    "https://app.example.com:99999/client.json",  # bad port
    "https://app.example.com/cli ent.json",
    "https:///client.json",
    "https://app.example.com\\@evil.example/client.json",
    "https://APP.example.com/client.json",  # browsers lower-case it: the string would change (SEC-71)
    "https://app.example.com:443/client.json",  # the default port, dropped by browsers
    "https://xn--bcher-kva.example/c\u00e9",  # non-ASCII
])
def test_malformed_client_id_urls_are_refused(url: str) -> None:
    """§3: https, a path, no fragment, userinfo or dot segments (and, by this server's choice, no query)."""
    assert url_problem(url) is not None


@pytest.mark.parametrize("url", [URL, "https://claude.ai/oauth/claude-code-client-metadata",
                                 "https://vscode.dev/oauth/client-metadata.json", "https://app.example.com:8443/c"])
def test_real_client_id_urls_are_accepted(url: str) -> None:
    """The URLs real clients send (Claude Code, VS Code) and a port (§3 MAY) pass."""
    assert url_problem(url) is None and is_client_id_url(url)


def _doc(**members: object) -> bytes:
    body: dict[str, object] = {"client_id": URL, "client_name": "App", "redirect_uris": ["https://app.example.com/cb"]}
    body.update(members)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(("members", "rule"), [
    ({"client_id": URL + "x"}, "differs"),
    ({"client_id": "https://APP.example.com/oauth/client.json"}, "differs"),  # byte for byte, no normalising
    ({"client_id": "https://app.example.com:443/oauth/client.json"}, "differs"),
    ({"client_id": None}, "differs"),
    ({"client_name": None}, "client_name"),
    ({"client_name": ""}, "client_name"),
    ({"client_name": 5}, "client_name"),
    ({"redirect_uris": None}, "redirect_uris"),
    ({"redirect_uris": []}, "redirect_uris"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "redirect URI"),
    ({"redirect_uris": ["http://evil.example/cb"]}, "redirect URI"),  # http only on loopback, as /register
    ({"redirect_uris": ["https://app.example.com/cb#f"]}, "redirect URI"),
    ({"client_secret": "s3cret"}, "client_secret"),
    ({"client_secret_expires_at": 0}, "client_secret_expires_at"),
    ({"token_endpoint_auth_method": "client_secret_basic"}, "shared-secret"),
    ({"token_endpoint_auth_method": "client_secret_post"}, "shared-secret"),
    ({"token_endpoint_auth_method": "client_secret_jwt"}, "shared-secret"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks_uri or a jwks, exactly one"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks",
      "jwks": {"keys": []}}, "exactly one"),
    ({"token_endpoint_auth_method": ["private_key_jwt", "none"]}, "one string"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "none or private_key_jwt"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://app.example.com/jwks"}, "https"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks",
      "token_endpoint_auth_signing_alg": "HS256"}, "token_endpoint_auth_signing_alg"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
     "private or symmetric"),
    ({"application_type": "web", "redirect_uris": ["com.example.app:/cb"]}, "private-use"),
    ({"application_type": "desktop"}, "application_type"),
])
def test_document_rules(members: dict[str, object], rule: str) -> None:
    """Each §4/§4.1 rule refuses the document, and the message names the rule."""
    with pytest.raises(DocumentInvalid, match=rule):
        validate(URL, _doc(**members))


@pytest.mark.parametrize("body", [b"[]", b"not json", b"\xff\xfe", b'"x"'])
def test_non_object_documents_are_refused(body: bytes) -> None:
    """The document is a JSON object in UTF-8 (RFC 8259)."""
    with pytest.raises(DocumentInvalid):
        validate(URL, body)


def test_claude_code_shaped_document_is_native_and_loopback_only() -> None:
    """Claude Code's document (no application_type, port-less loopback redirects) is accepted, inferred
    native, and flagged loopback-only for the consent warning."""
    body = _doc(redirect_uris=["http://localhost/callback", "http://127.0.0.1/callback"],
                token_endpoint_auth_method=None)
    document = validate(URL, body)
    assert document.application_type == "native"
    assert document.loopback_only
    assert document.host == "app.example.com"
    assert document.record()["token_endpoint_auth_method"] == "none"


def test_digest_changes_with_name_or_redirects_only() -> None:
    """A changed name or redirect list is a changed document (consent asks again); other members are not."""
    base = validate(URL, _doc()).digest
    assert validate(URL, _doc(client_name="Other")).digest != base
    assert validate(URL, _doc(redirect_uris=["https://app.example.com/cb2"])).digest != base
    assert validate(URL, _doc(logo_uri="https://app.example.com/l.png")).digest == base


@pytest.mark.parametrize("body", [
    b'{"client_id": "https://evil.example/c", "client_id": "' + URL.encode() + b'", "client_name": "x",'
    b' "redirect_uris": ["http://127.0.0.1/cb"]}',
    b'{"client_id": "' + URL.encode() + b'", "client_name": "x", "redirect_uris": ["https://evil.example/cb"],'
    b' "redirect_uris": ["http://127.0.0.1/cb"]}',
])
def test_a_member_named_twice_is_refused(body: bytes) -> None:
    """RFC 7493 §2.3: a document whose host-side validator reads the first `redirect_uris` (or `client_id`)
    and the facade the last would mean two clients; the facade refuses it instead of picking one."""
    with pytest.raises(DocumentInvalid, match="more than once"):
        validate(URL, body)


def test_private_key_jwt_document_with_jwks_uri_or_inline_jwks() -> None:
    """A ChatGPT-shaped document (private_key_jwt, RS256, jwks_uri) is accepted and says where its keys
    are; an inline jwks is kept as public JSON. Neither changes the consent digest."""
    from joserfc import jwk

    from proxy.clients.jwks import KeySource

    document = validate(URL, _doc(token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="RS256",
                                  jwks_uri="https://app.example.com/oauth/jwks.json"))
    assert document.record()["token_endpoint_auth_method"] == "private_key_jwt"
    assert document.key_source == KeySource(uri="https://app.example.com/oauth/jwks.json")
    key = jwk.generate_key("EC", "P-256", parameters={"kid": "k"})
    inline = validate(URL, _doc(token_endpoint_auth_method="private_key_jwt",
                                jwks={"keys": [key.as_dict(private=False)]}))
    assert inline.key_source is not None and inline.key_source.inline is not None
    assert json.loads(inline.key_source.inline)["keys"][0]["kid"] == "k"
    assert document.digest == inline.digest == validate(URL, _doc()).digest
    assert validate(URL, _doc()).key_source is None
