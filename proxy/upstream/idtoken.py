"""Validation of the upstream id_token (OIDC Core §3.1.3.7) against the upstream's cached JWKS."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError

from proxy.consttime import equals
from proxy.errors import IdTokenRejected, UpstreamError

if TYPE_CHECKING:
    from proxy.upstream.client import Upstream

CLOCK_SKEW_S = 120
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
REFETCH_INTERVAL_S = 5.0


class IdTokenValidator:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._keys: jwk.KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _keyset(self, *, refresh: bool = False) -> jwk.KeySet:
        if self._keys is not None and not refresh:
            return self._keys  # every sign-in asks: no lock to take once the keys are here
        async with self._lock:
            stale = refresh and time.monotonic() - self._fetched_at >= REFETCH_INTERVAL_S
            if self._keys is None or stale:
                metadata = await self.upstream.metadata()
                uri = metadata.get("jwks_uri")
                if not uri:
                    raise UpstreamError(detail="the upstream publishes no jwks_uri")
                document = await self.upstream.get_json(uri, step="jwks")
                try:
                    self._keys = jwk.KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise UpstreamError(detail=f"unusable upstream JWKS: {exc}") from exc
                self._fetched_at = time.monotonic()
            return self._keys

    async def keys(self) -> jwk.KeySet:
        """The upstream's signing keys (fetched once, then cached); `oauth-facade check` looks at them."""
        return await self._keyset()

    async def _decode(self, token: str) -> dict[str, Any]:
        """The verified claims. The token is parsed once when it verifies; only a failure reads its header
        on its own, to tell a key the IdP rotated in (a `kid` the cached set lacks: fetched again, at most
        once per REFETCH_INTERVAL_S) from a token that is malformed or not signed by the IdP."""
        keys = await self._keyset()
        try:
            return dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
        except (JoseError, ValueError, TypeError) as exc:
            failure: Exception = exc
        try:
            kid = jws.extract_compact(token.encode()).protected.get("kid")
        except (JoseError, ValueError, TypeError) as exc:
            raise IdTokenRejected(detail=f"id_token is not a JWS: {exc}") from exc
        if kid and not any(key.kid == kid for key in keys.keys):
            refreshed = await self._keyset(refresh=True)  # the IdP rotated its keys
            if refreshed is not keys:
                try:
                    return dict(jwt.decode(token, refreshed, algorithms=ALGORITHMS).claims)
                except (JoseError, ValueError, TypeError) as exc:
                    failure = exc
        raise IdTokenRejected(detail=f"id_token signature: {type(failure).__name__}: {failure}") from failure

    async def validate(self, token: str, *, nonce: str, audience: str | None = None) -> dict[str, Any]:
        """The claims of a valid id_token for `audience` (default: the static upstream client id).

        `iss` may be any of the profile's accepted spellings (Google: with or without the scheme)."""
        claims = await self._decode(token)
        audience = audience or self.upstream.client_id
        upstream = self.upstream
        now = int(time.time())
        issuers = (upstream.issuer, *upstream.profile.accepted_issuers)
        if claims.get("iss") not in issuers:
            raise IdTokenRejected(detail=f"id_token iss {claims.get('iss')!r} is not {upstream.issuer!r}")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise IdTokenRejected(detail="id_token aud does not contain our upstream client id")
        if len(audiences) > 1 and claims.get("azp") != audience:
            raise IdTokenRejected(detail="id_token has several audiences and azp is not us")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp < now - CLOCK_SKEW_S:
            raise IdTokenRejected(detail="id_token expired")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or iat > now + CLOCK_SKEW_S:
            raise IdTokenRejected(detail="id_token iat missing or in the future")
        if not equals(str(claims.get("nonce", "")), nonce):
            raise IdTokenRejected(detail="id_token nonce does not match")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise IdTokenRejected(detail="id_token has no sub")
        return claims
