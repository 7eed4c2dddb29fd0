"""The upstream identity provider: discovery, the code exchange, id_token validation, refresh."""

from proxy.upstream.client import Identity, Upstream, token_set
from proxy.upstream.profiles import PROFILES, Profile, profile_for

__all__ = ["PROFILES", "Identity", "Profile", "Upstream", "profile_for", "token_set"]
