"""Which upstream client the facade acts as: the one static client, or a per-registration mirror.

Normally the facade is one confidential client at the IdP (PROXY_UPSTREAM_CLIENT_ID/SECRET). With
PROXY_UPSTREAM_DCR=true every downstream registration is mirrored to the IdP's RFC 7591 endpoint, so
the IdP sees (and its consent screen names) each MCP client separately. The mirror's credentials are
kept in the downstream client's registration record under `MIRROR_FIELD`, which /register never
echoes: the downstream client never learns the upstream secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
MIRROR_FIELD = "upstream_client"
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class UpstreamClient:
    """Credentials at the IdP. `auth_method` None: the profile's choice (from discovery when `auto`)."""

    client_id: str
    client_secret: str | None = None
    auth_method: str | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"UpstreamClient({self.client_id!r}, secret={'***' if self.client_secret else None})"

    @classmethod
    def from_registration(cls, response: Json) -> UpstreamClient:
        """RFC 7591 §3.2.1 answer -> credentials. A secret that came back is used, even when a public
        client was asked for (Clerk does this): the IdP will check what it issued."""
        secret = response.get("client_secret")
        secret = secret if isinstance(secret, str) and secret else None
        method = response.get("token_endpoint_auth_method")
        return cls(str(response["client_id"]), secret, method if secret and method in SECRET_METHODS else None)

    def record(self) -> Json:
        """The server-side form kept in the registration record."""
        kept = {"client_id": self.client_id, "client_secret": self.client_secret,
                "token_endpoint_auth_method": self.auth_method}
        return {name: value for name, value in kept.items() if value is not None}

    @classmethod
    def from_record(cls, record: Json) -> UpstreamClient:
        return cls(record["client_id"], record.get("client_secret"), record.get("token_endpoint_auth_method"))


def mirror_request(downstream: Json, *, redirect_uri: str, scope: str, refresh: bool) -> Json:
    """The registration the facade sends upstream for one downstream client.

    Always a public client on the facade's own callback with the facade's own upstream scopes; only the
    client's name goes along (the IdP's consent screen shows it). The downstream client's redirect URIs,
    URLs and scope wishes never reach the IdP: the facade enforces them itself.
    """
    grant_types = ["authorization_code", "refresh_token"] if refresh else ["authorization_code"]
    return {"client_name": str(downstream.get("client_name") or "MCP client"), "redirect_uris": [redirect_uri],
            "grant_types": grant_types, "response_types": ["code"], "token_endpoint_auth_method": "none",
            "scope": scope}
