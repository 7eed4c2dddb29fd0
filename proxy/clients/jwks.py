"""Public key sets a client or an operator names (a `jwks_uri`, or an inline `jwks`), for checking the
JWTs they sign (private_key_jwt client assertions, ID-JAG assertions).

Public API:

    public_key_set(data) -> KeySet          check a JWKS (a dict or JSON text): public signature keys
                                            only; KeySetUnusable if it holds private or symmetric
                                            material, or no usable key
    jwks_uri_problem(url) -> str | None     why `url` cannot be a jwks_uri (https, host, no fragment...)
    KeySource(uri=..., inline=...)          where one party's keys come from (exactly one of the two)
    KeySets(redis, prefix, fetcher, ...)    the shared cache: `await key_sets.get(source, kid)`
                                            -> KeySet; KeySetUnavailable when it cannot be had
    KeySetError                             base of KeySetUnusable and KeySetUnavailable

A `jwks_uri` is fetched only through proxy/clients/fetch.py (the one outbound fetcher for URLs a
client or operator names: https, every address checked and pinned, no redirects, bounded size and
time). The validated set is cached in Redis for every replica:

    jwks:<sha256(uri)>          the validated public JWKS          cache_s
    jwks-fetch:<sha256(uri)>    a fetch happened (refetch gate)    refetch_interval_s

A `kid` the cached set does not hold triggers one refetch, and only when no replica fetched that URL
within `refetch_interval_s` (SET NX PX on the gate): a rotated key is found at the next request, and a
flood of made-up kids costs one fetch per interval, not one each. A refetch that fails transiently
keeps the cached set. Within one process, concurrent fetches of one URL share one request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import warnings
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwk
from joserfc.errors import JoseError, SecurityWarning
from redis.exceptions import RedisError

from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused
from proxy.errors import StoreUnavailable
from proxy.log import get_logger

log = get_logger()

MAX_BYTES = 64 * 1024  # a JWKS with a few RSA keys and certificate chains fits easily
MAX_KEYS = 16
MAX_URL = 2000
# Members that only a private or symmetric key has (RFC 7517 §9.3, RFC 7518 §6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
KEY_TYPES = {"RSA": jwk.RSAKey, "EC": jwk.ECKey, "OKP": jwk.OKPKey}
CURVES = {"EC": ("P-256",), "OKP": ("Ed25519",)}
MIN_RSA_BITS = 2048


class KeySetError(Exception):
    """The keys could not be had; the message is public (no attacker text)."""


class KeySetUnusable(KeySetError):
    """The key set breaks a rule (private or symmetric material, malformed, no usable key)."""


class KeySetUnavailable(KeySetError):
    """The jwks_uri could not be fetched (and nothing usable is cached)."""


def jwks_uri_problem(url: object) -> str | None:
    """Why `url` cannot be a jwks_uri, or None. The fetcher checks the host's addresses when it fetches."""
    if not isinstance(url, str) or not url:
        return "must be a string"
    if len(url) > MAX_URL:
        return "is too long"
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in url):
        return "must be printable ASCII without spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "must use https"
    if not parts.hostname or "@" in parts.netloc:
        return "must have a host and no userinfo"
    if "#" in url or "\\" in url:
        return "must not contain a fragment or a backslash"
    return None


def _usable_key(data: object, where: str) -> jwk.RSAKey | jwk.ECKey | jwk.OKPKey | None:
    """One JWK: refused if private or symmetric, skipped (None) if not a signature key we can use."""
    if not isinstance(data, dict):
        raise KeySetUnusable(f"{where} is not a JSON object")
    kty = data.get("kty")
    if kty == "oct" or PRIVATE_MEMBERS & set(data):
        raise KeySetUnusable(f"{where} holds private or symmetric key material: publish public keys only")
    if kty not in KEY_TYPES or data.get("use", "sig") != "sig":
        return None  # an encryption key, or a type we never verify with
    if "key_ops" in data and "verify" not in (data["key_ops"] or ()):
        return None
    if kty in CURVES and data.get("crv") not in CURVES[kty]:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # a short RSA key is refused just below
            key = KEY_TYPES[kty].import_key(data)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeySetUnusable(f"{where} is not a valid {kty} key") from exc
    if isinstance(key, jwk.RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        raise KeySetUnusable(f"{where} is an RSA key shorter than {MIN_RSA_BITS} bits")
    return key


def public_key_set(data: object) -> jwk.KeySet:
    """A JWKS (a dict, or JSON text/bytes) reduced to its public signature keys; KeySetUnusable when it
    holds private or symmetric material anywhere, is malformed, or has no key we can verify with."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise KeySetUnusable("the key set is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeySetUnusable("the key set must be a JSON object with a `keys` array")
    members = data["keys"]
    if len(members) > MAX_KEYS:
        raise KeySetUnusable(f"the key set holds more than {MAX_KEYS} keys")
    keys = [key for index, member in enumerate(members, start=1)
            if (key := _usable_key(member, f"key #{index}")) is not None]
    if not keys:
        raise KeySetUnusable("the key set has no public signature key (RSA, EC P-256 or Ed25519)")
    return jwk.KeySet(keys)


def public_jwks(keys: jwk.KeySet) -> dict[str, Any]:
    """The set as public JSON (what is cached and carried; never private members)."""
    return {"keys": [key.as_dict(private=False) for key in keys.keys]}


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where one party's keys come from: a `uri` fetched (and cached) or an `inline` JWKS (JSON text,
    validated when the registration or document was read)."""

    uri: str | None = None
    inline: str | None = None

    def __post_init__(self) -> None:
        if (self.uri is None) == (self.inline is None):
            raise ValueError("a key source is a jwks_uri or an inline jwks, exactly one")

    def dump(self) -> dict[str, str]:
        return {"jwks_uri": self.uri} if self.uri is not None else {"jwks": self.inline or ""}

    @classmethod
    def load(cls, data: dict[str, Any]) -> KeySource:
        return cls(uri=data["jwks_uri"]) if data.get("jwks_uri") else cls(inline=data["jwks"])


def _holds(keys: jwk.KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)


@dataclass
class KeySets:
    """The shared, bounded cache of fetched key sets (see the module docstring)."""

    redis: Any
    prefix: str
    fetcher: Fetcher
    cache_s: int = 3600
    refetch_interval_s: int = 30
    _inflight: dict[str, asyncio.Future[jwk.KeySet]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.fetcher = replace(self.fetcher, max_bytes=MAX_BYTES)  # same rules and resolver, a JWKS-sized cap

    def _key(self, kind: str, uri: str) -> str:
        return f"{self.prefix}{kind}:{hashlib.sha256(uri.encode()).hexdigest()}"

    async def get(self, source: KeySource, kid: str | None = None) -> jwk.KeySet:
        """The key set of `source`. For a jwks_uri: the cached set; fetched when none is cached, and
        refetched (at most once per interval, across replicas) when it lacks `kid`."""
        if source.inline is not None:
            return public_key_set(source.inline)
        uri = source.uri or ""
        cached = await self._cached(uri)
        if cached is not None and _holds(cached, kid):
            return cached
        if cached is not None and not await self._gate(uri):
            return cached  # fetched lately: this kid is not there; the caller refuses the JWT
        try:
            return await self._fetch_once(uri)
        except KeySetUnavailable:
            if cached is not None:
                return cached  # a failed refetch keeps what worked
            raise

    async def _cached(self, uri: str) -> jwk.KeySet | None:
        try:
            raw = await self.redis.get(self._key("jwks", uri))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"jwks cache get: {type(exc).__name__}") from exc
        if not raw:
            return None
        try:
            return public_key_set(raw)
        except KeySetUnusable:
            return None

    async def _gate(self, uri: str) -> bool:
        """True when this caller may fetch now: no replica fetched `uri` within the interval."""
        try:
            return bool(await self.redis.set(self._key("jwks-fetch", uri), "1", nx=True,
                                             px=self.refetch_interval_s * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"jwks refetch gate: {type(exc).__name__}") from exc

    async def _fetch_once(self, uri: str) -> jwk.KeySet:
        """One fetch of `uri` per process at a time: concurrent callers share its result."""
        pending = self._inflight.get(uri)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[jwk.KeySet] = asyncio.get_running_loop().create_future()
        self._inflight[uri] = future
        try:
            keys = await self._fetch(uri)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        else:
            future.set_result(keys)
            return keys
        finally:
            del self._inflight[uri]

    async def _fetch(self, uri: str) -> jwk.KeySet:
        host = (urlsplit(uri).hostname or "").lower()
        problem = jwks_uri_problem(uri)
        if problem is not None and not self.fetcher.dev_http(uri):  # the dev IdP of `make run`
            raise KeySetUnusable(f"the jwks_uri {problem}")
        try:
            fetched = await self.fetcher.fetch(uri)
        except FetchRefused as exc:
            log.warning("jwks.refused", host=host, reason=str(exc))
            raise KeySetUnavailable(f"the key set at {host} may not be fetched: {exc}") from exc
        except FetchFailed as exc:
            log.warning("jwks.failed", host=host, reason=str(exc))
            raise KeySetUnavailable(f"the key set at {host} could not be fetched: {exc}") from exc
        try:
            keys = public_key_set(fetched.body)
        except KeySetUnusable as exc:
            log.warning("jwks.invalid", host=host, reason=str(exc))
            raise KeySetUnusable(f"the key set at {host} is unusable: {exc}") from exc
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self._key("jwks", uri), json.dumps(public_jwks(keys)), ex=self.cache_s)
            pipe.set(self._key("jwks-fetch", uri), "1", px=self.refetch_interval_s * 1000)
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"jwks cache put: {type(exc).__name__}") from exc
        log.info("jwks.fetched", host=host, keys=len(keys.keys))
        return keys
