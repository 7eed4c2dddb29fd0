"""Where a client_id is looked up: pre-registered (PROXY_CLIENTS_FILE), a metadata document URL (CIMD),
or a registration (DCR, in the store). One place answers "who is this client" for every endpoint.

Only /authorize resolves a URL client_id (`for_authorization`). At /token a URL client is known by the
code or refresh family it presents, which carries the document's snapshot (`known_at_token`), so
no endpoint after /authorize depends on the document host being up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.clients.basic import parse_basic_header
from proxy.clients.cimd import CimdResolver
from proxy.clients.document import is_client_id_url
from proxy.clients.registry import ClientRegistry, PreRegisteredClient
from proxy.clients.secrets import verify_secret_async
from proxy.errors import InvalidClient, InvalidRequest
from proxy.store import Store


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    secret: str | None
    two_methods: bool  # Basic and client_secret in one request


@dataclass
class ClientDirectory:
    store: Store
    registry: ClientRegistry
    cimd: CimdResolver | None  # None: PROXY_CIMD=off

    async def for_authorization(self, client_id: str) -> dict[str, Any] | None:
        """The client as a registration-shaped record, or None when unknown."""
        if is_client_id_url(client_id):
            if self.cimd is None:
                return None
            return (await self.cimd.resolve(client_id)).record()
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
            return Credentials(client_id, secret, two_methods=body_secret is not None)
        if body_id:
            return Credentials(body_id, body_secret, two_methods=False)
        raise InvalidRequest("The client_id parameter is missing.")

    async def verify(self, credentials: Credentials) -> str:
        """Public clients are identified (a secret they send anyway is ignored, as before); a
        pre-registered confidential client must prove its secret with client_secret_basic
        (form-urlencoded Basic, §2.3.1) or client_secret_post, checked in constant time, and with one
        method per request (§2.3: MUST NOT use more than one)."""
        pre = self.registry.get(credentials.client_id)
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
