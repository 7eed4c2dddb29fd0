"""The metadata documents the shipping clients publish (tests/clients/field_documents.py), each served
over TLS on 127.0.0.1 as its own client_id, accepted at /authorize with the redirect URI that client
really sends, and completing a sign-in: code, tokens, id_token checked as oauth4webapi does, refresh.
ChatGPT's documents authenticate with private_key_jwt, with a key of the test's own served as their
jwks_uri; the one that also lists `none` is held to private_key_jwt all the same."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from joserfc import jwk, jwt

from tests.clients import field_documents as field
from tests.clients.conftest import Answer, DocumentHost
from tests.conftest import Facade, FacadeFactory
from tests.helpers import Client
from tests.token_assertions import client_assertion_form

KEY = jwk.generate_key("RSA", 2048, parameters={"kid": "cimd-20260428030119"})  # ChatGPT's kid shape
NO_CACHE = {"Content-Type": "application/json", "Cache-Control": "max-age=0"}


@pytest.fixture
def local_docs(doc_host: DocumentHost) -> DocumentHost:
    doc_host.name = "localhost"
    return doc_host


async def facade_for(make_facade: FacadeFactory, doc_host: DocumentHost) -> Facade:
    return await make_facade(cimd_dev_hosts="localhost", cimd_ca_file=str(doc_host.pki.ca_file))


def publish(doc_host: DocumentHost, published: dict[str, Any]) -> str:
    """Serve `published` at the same path on the test's host; its client_id (and jwks_uri) become ours."""
    path = urlsplit(published["client_id"]).path
    url = doc_host.url(path)
    document = {**published, "client_id": url}
    if "jwks_uri" in document:
        jwks_path = urlsplit(published["jwks_uri"]).path
        doc_host.answers[jwks_path] = Answer(body=json.dumps({"keys": [KEY.as_dict(private=False)]}).encode())
        document["jwks_uri"] = doc_host.url(jwks_path)
    doc_host.serve(path, document, headers=NO_CACHE)
    return url


def authentication(client_id: str, facade: Facade, private_key_jwt: bool) -> dict[str, str]:
    if not private_key_jwt:
        return {"client_id": client_id}
    return client_assertion_form(client_id, facade.url, KEY)


CASES = {
    "claude.ai": (field.CLAUDE_AI, "https://claude.ai/api/mcp/auth_callback"),
    "Claude Code": (field.CLAUDE_CODE, "http://localhost:3118/callback"),
    "VS Code": (field.VS_CODE, "http://127.0.0.1:33418/"),
    "ChatGPT connector": (field.CHATGPT_CONNECTOR, "https://chatgpt.com/connector/oauth/kDmjx77UnKOM"),
    "ChatGPT": (field.CHATGPT, "https://chatgpt.com/connector_platform_oauth_redirect"),
    "opencode": (field.OPENCODE, "http://127.0.0.1:19876/callback"),
}


@pytest.mark.parametrize("name", CASES.keys())
async def test_published_document_signs_in(make_facade: FacadeFactory, local_docs: DocumentHost, name: str) -> None:
    """Accepted at /authorize (the code reaches the client's real redirect URI with iss), redeemed with
    the method the document declares, the id_token valid for that client, the refresh too."""
    published, redirect_uri = CASES[name]
    facade = await facade_for(make_facade, local_docs)
    url = publish(local_docs, published)
    keyed = published["token_endpoint_auth_method"] == "private_key_jwt"
    client = Client(facade, client_id=url, redirect_uri=redirect_uri)
    auth = await client.authorize()
    assert auth.location.startswith(redirect_uri + ("" if redirect_uri.endswith("/") else "?")), auth.location
    assert auth.params["iss"] == facade.url and "code" in auth.params
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": redirect_uri, **authentication(url, facade, keyed)}
    status, tokens, _ = await client.token(form)
    assert status == 200, tokens
    await client.verify_id_token(tokens["id_token"], nonce=auth.nonce, access_token=tokens["access_token"])
    assert jwt.decode(tokens["access_token"], await client.jwks()).claims["client_id"] == url
    status, refreshed, _ = await client.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                               **authentication(url, facade, keyed)})
    assert status == 200, refreshed


@pytest.mark.parametrize("name", ["ChatGPT connector", "ChatGPT"])
async def test_chatgpt_is_never_downgraded_to_none(make_facade: FacadeFactory, local_docs: DocumentHost,
                                                   name: str) -> None:
    """Both ChatGPT documents declare private_key_jwt; the one whose extra member also offers `none` is
    held to private_key_jwt all the same: a code redeemed with the client_id alone is 401 invalid_client
    and stays redeemable by the key holder."""
    published, redirect_uri = CASES[name]
    facade = await facade_for(make_facade, local_docs)
    url = publish(local_docs, published)
    client = Client(facade, client_id=url, redirect_uri=redirect_uri)
    auth = await client.authorize()
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": redirect_uri}
    status, body, _ = await client.token({**form, "client_id": url})
    assert (status, body["error"]) == (401, "invalid_client")
    status, body, _ = await client.token({**form, **client_assertion_form(url, facade.url, KEY)})
    assert status == 200, body


def test_fixtures_are_as_published() -> None:
    """The fixtures keep the published shapes the tests rely on (a guard against tidying them up)."""
    assert field.CLAUDE_CODE["redirect_uris"] == ["http://localhost/callback", "http://127.0.0.1/callback"]
    assert "application_type" not in field.CLAUDE_CODE
    assert field.CHATGPT["token_endpoint_auth_methods_supported"] == ["none", "private_key_jwt"]
    assert all(doc["client_id"].startswith("https://") for doc in (field.CLAUDE_AI, field.VS_CODE, field.OPENCODE))
