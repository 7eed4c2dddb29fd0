"""Where a client_id is looked up: pre-registered (PROXY_CLIENTS_FILE), a metadata document URL (CIMD),
or a registration (DCR, in the store). One place answers "who is this client" for every endpoint.

Only /authorize resolves a URL client_id (`for_authorization`). At /token a URL client is known by the
code or refresh family it presents, which carries the document's snapshot (`known_at_token`), so
no endpoint after /authorize depends on the document host being up.

A client that authenticates with private_key_jwt (RFC 7523 §2.2) has a `key_source`: a pre-registered
client's from the clients file; a URL client's from its document, recorded in the store each time
/authorize reads the document (Store.save_client_keys, kept longer than any grant the client can hold,
so /token and /revoke know, without fetching the document, that this client must send an assertion).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from proxy.clients.basic import parse_basic_header
from proxy.clients.cimd import CimdResolver
from proxy.clients.document import is_client_id_url
from proxy.clients.jwks import KeySets, KeySource
from proxy.clients.registry import ClientRegistry, PreRegisteredClient
from proxy.clients.secrets import decoy_like, verify_secret_async
from proxy.errors import InvalidClient, InvalidRequest
from proxy.store import Store


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    secret: str | None
    two_methods: bool  # Basic and client_secret in one request
    basic: bool = False  # sent in the Authorization header (an invalid_client answer then challenges)


@dataclass
class ClientDirectory:
    store: Store
    registry: ClientRegistry
    cimd: CimdResolver | None  # None: PROXY_CIMD=off
    key_sets: KeySets  # the shared cache of jwks_uri key sets (clients', enterprise IdPs')
    client_keys_ttl_s: int = 86400  # how long a URL client's key source is remembered (app.py: > any grant)

    async def for_authorization(self, client_id: str) -> dict[str, Any] | None:
        """The client as a registration-shaped record, or None when unknown."""
        if is_client_id_url(client_id):
            if self.cimd is None:
                return None
            document = await self.cimd.resolve(client_id)
            source = document.key_source
            await self.store.save_client_keys(client_id, source.dump() if source else None, self.client_keys_ttl_s)
            return document.record()
        pre = self.registry.get(client_id)
        if pre is not None:
            return pre.record()
        return await self.store.load_client(client_id)

    async def known_at_token(self, client_id: str) -> bool:
        """True when the client may still use what it was issued (a DCR registration may expire)."""
        if is_client_id_url(client_id):
            return self.cimd is not None  # the grant holds the document's snapshot; never fetched here
        if self.registry.get(client_id) is not None:
            return True
        return await self.store.load_client(client_id) is not None

    @cached_property
    def _decoy(self) -> str | None:
        """What a secret sent for any other client id is checked against (and ignored): with a confidential
        client configured, a wrong secret for an id that does not exist must cost what one for that client
        costs, or timing tells which ids exist (issue 22 finding 7). None when no client has a secret."""
        hashes = [client.secret_hash for client in self.registry.clients.values() if client.secret_hash]
        return decoy_like(hashes[0]) if hashes else None

    def registration_of(self, client_id: object) -> str | None:
        """The client id whose stored registration must still exist for the client's access tokens to be
        honoured (a DCR client's), or None when nothing in the store stands for the client (pre-registered,
        a metadata-document URL). A deleted or expired registration takes its tokens' standing along."""
        if not isinstance(client_id, str) or is_client_id_url(client_id) or self.registry.get(client_id):
            return None
        return client_id
    def kind(self, client_id: str) -> str:
        """`cimd` (a metadata document URL), `machine` (pre-registered for client_credentials only),
        `pre-registered`, or `dcr` (registered here): what operators see and access policies match."""
        if is_client_id_url(client_id):
            return "cimd"
        pre = self.registry.get(client_id)
        if pre is None:
            return "dcr"
        machine = "client_credentials" in pre.grant_types and "authorization_code" not in pre.grant_types
        return "machine" if machine else "pre-registered"

    def preregistered(self, client_id: str) -> PreRegisteredClient | None:
        return self.registry.get(client_id)

    async def key_source(self, client_id: str) -> KeySource | None:
        """Where the keys of a private_key_jwt client are; None for a client that uses no keys."""
        if is_client_id_url(client_id):
            if self.cimd is None:
                return None
            record = await self.store.client_keys(client_id)
            return KeySource.load(record) if record else None
        pre = self.registry.get(client_id)
        return pre.key_source if pre is not None else None

    @property
    def offers_private_key_jwt(self) -> bool:
        """private_key_jwt can be used: CIMD documents may declare it, or a pre-registered client has keys."""
        return self.cimd is not None or self.registry.has_private_key_jwt

    @property
    def offers_client_credentials(self) -> bool:
        """Only a deployment with a client allowed the grant supports it (else unsupported_grant_type)."""
        return any("client_credentials" in client.grant_types for client in self.registry.clients.values())

    def identify(self, header: str | None, form: dict[str, str]) -> Credentials:
        """Who the request (its Authorization `header` and its `form`) claims to be (RFC 6749 §2.3), before
        any secret is checked, so the caller can count the attempt against the rate limits first (a secret
        check is deliberately slow)."""
        body_id, body_secret = form.get("client_id"), form.get("client_secret")
        if header is not None:
            client_id, secret = parse_basic_header(header)
            if body_id is not None and body_id != client_id:
                raise InvalidClient("The client_id in the body differs from the Basic credentials.")
            return Credentials(client_id, secret, two_methods=body_secret is not None, basic=True)
        if body_id:
            return Credentials(body_id, body_secret, two_methods=False)
        raise InvalidRequest("The client_id parameter is missing.")

    async def verify(self, credentials: Credentials) -> str:
        """Public clients are identified (a secret they send anyway is ignored, as before); a
        pre-registered confidential client must prove its secret with client_secret_basic
        (form-urlencoded Basic, §2.3.1) or client_secret_post, checked in constant time, and with one
        method per request (§2.3: MUST NOT use more than one). A private_key_jwt client that sends no
        assertion (only its client_id, or a secret) is refused: it may never fall back to `none`."""
        if await self.key_source(credentials.client_id) is not None:
            raise InvalidClient("This client authenticates with private_key_jwt: send a client_assertion "
                                "(RFC 7523 Section 2.2).", challenge=credentials.basic)
        pre = self.registry.get(credentials.client_id)
        if (pre is None or pre.secret_hash is None) and credentials.secret and self._decoy is not None:
            await verify_secret_async(credentials.secret, self._decoy)  # same work as a confidential client's
        if pre is not None and pre.secret_hash is not None:
            if credentials.two_methods:
                raise InvalidRequest("Use one client authentication method: Basic or client_secret, not both.")
            secret = credentials.secret
            if not secret or not await verify_secret_async(secret, pre.secret_hash):
                raise InvalidClient(detail="wrong or missing secret of a pre-registered client")
        return credentials.client_id

    async def authenticate(self, header: str | None, form: dict[str, str]) -> str:
        """`identify` then `verify`: the requesting client's id, its secret checked when it has one."""
        return await self.verify(self.identify(header, form))
