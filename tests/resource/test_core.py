"""The resource side's token-validation core: facade-minted tokens pass, forged ones do not, and the
WWW-Authenticate challenges parse back to what was meant under a strict RFC 7235 parser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwk, jws

from proxy.keys.keyset import Keyset, generate
from proxy.resource.core import (
    InsufficientScope,
    Principal,
    TokenRejected,
    UnknownKey,
    challenge,
    require_scopes,
    verify_access_token,
)
from proxy.state import Services
from proxy.token import mint
from tests.conftest import Facade
from tests.resource.tokens import ISSUER, RESOURCE, Minter, make_minter, segments

METADATA = "https://auth.example.com/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def minter() -> Minter:
    return make_minter("RS256")


def verify(token: str, keys: jwk.KeySet, **overrides: Any) -> Principal:
    arguments: dict[str, Any] = {"keys": keys, "issuer": ISSUER, "resource": RESOURCE, **overrides}
    return verify_access_token(token, **arguments)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resign(minter: Minter, token: str, **changes: Any) -> str:
    """The same claims with `changes` (None deletes), signed by the facade's real key: isolates one rule."""
    header, claims = segments(token)
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return minter.keyset.sign(claims, typ=header["typ"])


# ---------------------------------------------------------------------------------------------- accepted


def test_a_minted_token_gives_its_principal(minter: Minter) -> None:
    """A token from the facade's own minting code, checked against its public JWKS, yields every field."""
    now = int(time.time())
    token = minter.mint(scope="openid  files:read offline_access", now=now, family="fam-42")
    principal = verify(token, minter.public)
    _, claims = segments(token)
    assert principal.sub == "user-1" and principal.client_id == "client-1"
    assert principal.scopes == ("openid", "files:read", "offline_access")
    assert principal.resource == RESOURCE
    assert principal.jti == claims["jti"] and principal.family == "fam-42"
    assert principal.expires_at == now + 3600
    assert dict(principal.claims) == claims
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"  # type: ignore[index]


@pytest.mark.parametrize("algs", [("ES256",), ("RS256", "ES256"), ("ES256", "RS256")])
def test_every_key_type_the_facade_signs_with_verifies(algs: tuple[str, ...]) -> None:
    """ES256 keysets and mixed keysets verify too (each key's own alg)."""
    active = make_minter(*algs)
    assert verify(active.mint(), active.public).sub == "user-1"


def test_a_ps256_key_verifies_ps256_tokens() -> None:
    """A PS256 key (PROXY_SIGNING_ALG=PS256) verifies PS256 tokens. Signed here with joserfc directly:
    `Keyset.sign` cannot sign PS256 with the installed joserfc ("not recommended" without `algorithms`)."""
    rs = make_minter("RS256")
    _, claims = segments(rs.mint())
    key = generate("PS256")
    header = {"alg": "PS256", "kid": key.kid, "typ": "at+jwt"}
    token = jws.serialize_compact(header, json.dumps(claims), key.key, algorithms=["PS256"])
    assert verify(token, jwk.KeySet.import_key_set(Keyset([key]).public_jwks)).sub == "user-1"


def test_a_token_of_the_previous_key_verifies_after_rotation() -> None:
    """After `keys rotate`, a token signed by the older key (still published) keeps verifying."""
    old = make_minter("RS256")
    token = old.mint()
    rotated = Minter(old.settings, Keyset([generate("ES256"), *old.keyset.keys]))
    assert verify(token, rotated.public).jti == segments(token)[1]["jti"]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_is_compared_case_insensitively_with_or_without_application(minter: Minter, typ: str) -> None:
    """RFC 7515 §4.1.9: media types are case-insensitive and `application/` may be omitted."""
    _, claims = segments(minter.mint())
    assert verify(minter.keyset.sign(claims, typ=typ), minter.public).sub == "user-1"


def test_aud_as_a_list_containing_the_resource_is_accepted(minter: Minter) -> None:
    """RFC 7519 §4.1.3: `aud` may be an array; the resource has to be one of its members."""
    token = resign(minter, minter.mint(), aud=["https://other.example.com/mcp", RESOURCE])
    assert verify(token, minter.public).resource == RESOURCE


def test_a_token_without_scope_or_sid_has_no_scopes_and_no_family(minter: Minter) -> None:
    """`scope` and `sid` are optional: none means no scopes and no family."""
    principal = verify(resign(minter, minter.mint(), scope=None, sid=None), minter.public)
    assert principal.scopes == () and principal.family is None


def test_clock_skew_within_the_leeway_is_tolerated(minter: Minter) -> None:
    """exp just passed, iat and nbf just ahead: inside `leeway_s` all pass, outside they do not."""
    now = int(time.time())
    token = resign(minter, minter.mint(now=now), exp=now - 10, iat=now + 10, nbf=now + 10)
    assert verify(token, minter.public, leeway_s=30, now=now).sub == "user-1"
    with pytest.raises(TokenRejected):
        verify(token, minter.public, leeway_s=5, now=now)


# ---------------------------------------------------------------------------------------------- refused


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(minter: Minter) -> None:
    """A forger who copies the facade's `kid` still needs its private key."""
    forger = make_minter("RS256")
    _, claims = segments(minter.mint())
    kid = minter.keyset.active.kid
    forged = jws.serialize_compact({"alg": "RS256", "kid": kid, "typ": "at+jwt"}, json.dumps(claims),
                                   forger.keyset.active.key)
    with pytest.raises(TokenRejected) as caught:
        verify(forged, minter.public)
    assert not isinstance(caught.value, UnknownKey)
    assert caught.value.description == "the token signature is invalid"


def test_an_unknown_kid_raises_unknown_key(minter: Minter) -> None:
    """A `kid` not in the keys is its own case, so a caller can refetch the JWKS (rotation) once."""
    other = make_minter("RS256")
    with pytest.raises(UnknownKey) as caught:
        verify(other.mint(), minter.public)
    assert caught.value.kid == other.keyset.active.kid
    assert isinstance(caught.value, TokenRejected)


def test_a_tampered_payload_is_refused(minter: Minter) -> None:
    """Changing one claim after signing breaks the signature."""
    head, _, signature = minter.mint().split(".")
    _, claims = segments(minter.mint())
    claims["sub"] = "admin"
    with pytest.raises(TokenRejected, match="signature"):
        verify(f"{head}.{b64(json.dumps(claims).encode())}.{signature}", minter.public)


@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_alg_none_is_refused(minter: Minter, signature: str) -> None:
    """RFC 8725 §3.2: an unsigned token is never accepted, with or without a signature segment."""
    _, claims = segments(minter.mint())
    header = {"alg": "none", "typ": "at+jwt", "kid": minter.keyset.active.kid}
    forged = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(TokenRejected):
        verify(forged, minter.public)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_public_key_is_refused(minter: Minter, alg: str) -> None:
    """RFC 8725 §3.1 algorithm confusion: HMAC over the facade's public key (which anyone has) fails."""
    _, claims = segments(minter.mint())
    public_pem = minter.keyset.active.key.as_pem(private=False)
    header = {"alg": alg, "typ": "at+jwt", "kid": minter.keyset.active.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    digest = getattr(hashlib, "sha" + alg[2:])
    forged = f"{signing_input}.{b64(hmac.new(public_pem, signing_input.encode(), digest).digest())}"
    with pytest.raises(TokenRejected, match="algorithm"):
        verify(forged, minter.public)


def test_an_algorithm_the_key_does_not_declare_is_refused(minter: Minter) -> None:
    """The RS256 key signing PS256 is still refused: only each key's published `alg` is allowed."""
    _, claims = segments(minter.mint())
    header = {"alg": "PS256", "typ": "at+jwt", "kid": minter.keyset.active.kid}
    forged = jws.serialize_compact(header, json.dumps(claims), minter.keyset.active.key, algorithms=["PS256"])
    with pytest.raises(TokenRejected, match="algorithm"):
        verify(forged, minter.public)


@pytest.mark.parametrize(("key_type", "declared"), [("RSA", "ES256"), ("RSA", "HS256"), ("EC", "RS256"),
                                                    ("EC", "none"), ("RSA", "RS256")])
def test_a_key_verifies_only_algorithms_of_its_own_type(key_type: str, declared: str) -> None:
    """A published key whose `alg` names another key type's algorithm (or HMAC, or none) verifies
    nothing: the JWKS is not trusted to widen what a key may verify. A matching `alg` is kept."""
    from oauth_facade_verifier.core import key_algorithms

    key = (jwk.RSAKey.generate_key(2048) if key_type == "RSA" else jwk.ECKey.generate_key("P-256"))
    published = jwk.import_key({**key.as_dict(private=False), "alg": declared})
    assert key_algorithms(published) == ((declared,) if (key_type, declared) == ("RSA", "RS256") else ())


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt ", "application/jwt", "id_token+jwt", None])
def test_a_token_that_is_not_typed_at_jwt_is_refused(minter: Minter, typ: str | None) -> None:
    """RFC 9068 §4: an id_token or any other JWT signed by the same key is not an access token."""
    _, claims = segments(minter.mint())
    header: dict[str, Any] = {"alg": "RS256", "kid": minter.keyset.active.kid}
    if typ is not None:
        header["typ"] = typ
    token = jws.serialize_compact(header, json.dumps(claims), minter.keyset.active.key)
    with pytest.raises(TokenRejected, match="typ"):
        verify(token, minter.public)


def test_the_facades_own_id_token_is_refused(minter: Minter) -> None:
    """The id_token the same facade minted (typ JWT, aud = client) is not accepted as an access token."""
    grant = {"sub": "user-1", "client_id": "client-1", "auth_time": 1}
    access = minter.mint()
    id_token = mint.id_token(cast(Services, minter), grant, access=access, nonce=None, family="f",
                             now=int(time.time()))
    with pytest.raises(TokenRejected):
        verify(id_token, minter.public)


def test_a_crit_header_is_refused(minter: Minter) -> None:
    """RFC 7515 §4.1.11: critical extensions we do not understand make the JWS invalid."""
    _, claims = segments(minter.mint())
    header = {"alg": "RS256", "kid": minter.keyset.active.kid, "typ": "at+jwt", "crit": ["kid"]}
    token = jws.serialize_compact(header, json.dumps(claims), minter.keyset.active.key)
    with pytest.raises(TokenRejected, match="critical"):
        verify(token, minter.public)


@pytest.mark.parametrize("issuer", [ISSUER + "/", ISSUER.upper(), "https://evil.example.com", ""])
def test_iss_must_equal_the_issuer_byte_for_byte(minter: Minter, issuer: str) -> None:
    """RFC 9068 §4 / RFC 8414 §3.3: no normalisation, not even a trailing slash or case."""
    with pytest.raises(TokenRejected, match="issued"):
        verify(minter.mint(), minter.public, issuer=issuer)


@pytest.mark.parametrize("aud", ["https://other.example.com/mcp", RESOURCE + "/", [RESOURCE + "/x"], [], 7])
def test_a_token_for_another_resource_is_refused(minter: Minter, aud: Any) -> None:
    """RFC 8707 / MCP: a token minted for another audience (or none) is never accepted here."""
    with pytest.raises(TokenRejected, match="aud"):
        verify(resign(minter, minter.mint(), aud=aud), minter.public)


def test_a_token_minted_for_another_resource_by_the_facade_is_refused(minter: Minter) -> None:
    """The facade's own token for resource A does not open resource B (no token passthrough)."""
    token = minter.mint(resource="https://a.example.com/mcp")
    with pytest.raises(TokenRejected, match="aud"):
        verify(token, minter.public, resource="https://b.example.com/mcp")


def test_an_expired_token_is_refused(minter: Minter) -> None:
    """Past `exp` plus the leeway, the token is refused."""
    now = int(time.time())
    token = minter.mint(now=now - 7200)
    with pytest.raises(TokenRejected, match="expired"):
        verify(token, minter.public, now=now)


def test_a_token_not_valid_yet_is_refused(minter: Minter) -> None:
    """`nbf` beyond now plus the leeway: refused."""
    now = int(time.time())
    with pytest.raises(TokenRejected, match="nbf"):
        verify(resign(minter, minter.mint(now=now), nbf=now + 120), minter.public, now=now)


def test_a_token_issued_in_the_future_is_refused(minter: Minter) -> None:
    """`iat` beyond now plus the leeway: refused (a clock far off, or a forged lifetime)."""
    now = int(time.time())
    with pytest.raises(TokenRejected, match="iat"):
        verify(minter.mint(now=now + 600), minter.public, now=now)


@pytest.mark.parametrize("claim", ["sub", "client_id", "jti", "exp", "iat", "iss", "aud"])
def test_a_token_missing_a_required_claim_is_refused(minter: Minter, claim: str) -> None:
    """RFC 9068 §2.2 required claims: without any one of them the token is refused."""
    with pytest.raises(TokenRejected):
        verify(resign(minter, minter.mint(), **{claim: None}), minter.public)


@pytest.mark.parametrize(("claim", "value"), [
    ("sub", ""), ("sub", 5), ("client_id", ["c"]), ("jti", None), ("exp", "9999999999"), ("exp", True),
    ("iat", "now"), ("nbf", "later"), ("scope", ["files:read"]), ("sid", 3),
])
def test_a_claim_of_the_wrong_type_is_refused(minter: Minter, claim: str, value: Any) -> None:
    """Claims with the wrong JSON type are refused rather than coerced."""
    token = resign(minter, minter.mint(), **{claim: value}) if value is not None else minter.mint()
    if value is None:  # jti: null
        header, claims = segments(token)
        claims["jti"] = None
        token = minter.keyset.sign(claims, typ=header["typ"])
    with pytest.raises(TokenRejected):
        verify(token, minter.public)


KEYSET = Keyset([generate("RS256")])


@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}",
                                              fullmatch=True))
def test_garbage_is_refused_with_token_rejected_only(garbage: str) -> None:
    """Whatever string arrives as a bearer token, the only outcome is TokenRejected with a safe text."""
    keys = jwk.KeySet.import_key_set(KEYSET.public_jwks)
    with pytest.raises(TokenRejected) as caught:
        verify(garbage, keys)
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", caught.value.description)


def test_an_oversized_token_is_refused_before_parsing(minter: Minter) -> None:
    """A megabyte of "token" is refused outright."""
    with pytest.raises(TokenRejected, match="malformed"):
        verify("a" * 1_000_000, minter.public)


# ---------------------------------------------------------------------------------------------- scopes


def principal_with(*scopes: str) -> Principal:
    return Principal(sub="u", client_id="c", scopes=scopes, resource=RESOURCE, jti="j", family=None,
                     expires_at=0, claims={})


def test_require_scopes_passes_when_every_scope_is_granted() -> None:
    """Granted scopes cover the need: no exception."""
    require_scopes(principal_with("a", "b", "c"), ["a", "c"])
    require_scopes(principal_with(), [])


def test_require_scopes_names_every_needed_scope_never_offline_access() -> None:
    """The 403 must carry all scopes the operation needs (MCP step-up), in order, deduplicated, and
    never offline_access, which is no resource permission."""
    with pytest.raises(InsufficientScope) as caught:
        require_scopes(principal_with("a"), ["a", "offline_access", "b", "a", "c"])
    assert caught.value.required == ("a", "b", "c")


def test_offline_access_alone_is_never_required() -> None:
    """A need of only offline_access is met by any token."""
    require_scopes(principal_with(), ["offline_access"])


# ---------------------------------------------------------------------------------------------- challenges

_TOKEN68_OR_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN68_OR_TCHAR})\s*=\s*(?:"((?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*)"'
                    rf"|({_TOKEN68_OR_TCHAR}))\s*")


def parse_bearer(value: str) -> dict[str, str]:
    """A strict RFC 7235 §2.1 parser of one `Bearer` challenge with auth-params (no token68).

    Refuses anything outside the grammar, duplicate parameters (RFC 6750 §3: MUST NOT appear more than
    once) and unescapes quoted-pairs.
    """
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        assert match is not None, f"not an auth-param at {position}: {rest[position:]!r}"
        name = match.group(1).lower()
        assert name not in params, f"duplicate {name}"
        quoted = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        position = match.end()
        if position < len(rest):
            assert rest[position] == ",", f"expected a comma at {position}: {rest!r}"
            position += 1
    return params


def test_a_401_without_a_token_has_no_error() -> None:
    """MCP 2026-07-28: no token sent → `resource_metadata` and `scope`, but no `error`."""
    value = challenge(METADATA, scopes=["files:read", "offline_access"])
    assert value == f'Bearer scope="files:read", resource_metadata="{METADATA}"'


def test_a_401_for_a_bad_token_says_invalid_token() -> None:
    """A token that was sent and refused: `error="invalid_token"` and the reason."""
    value = challenge(METADATA, error="invalid_token", description='the "token" has expired\n')
    assert parse_bearer(value) == {"error": "invalid_token", "error_description": "the ?token? has expired?",
                                   "resource_metadata": METADATA}


def test_a_403_names_every_needed_scope() -> None:
    """insufficient_scope with all scopes in one `scope` parameter."""
    value = challenge(METADATA, scopes=("files:read", "files:write"), error="insufficient_scope")
    assert value == f'Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="{METADATA}"'


def test_a_metadata_url_with_quotes_and_backslashes_is_escaped() -> None:
    """RFC 7230 §3.2.6 quoted-pair: a `"` or `\\` in a value is escaped, never ends the string."""
    url = 'https://x.example/a"b\\c'
    value = challenge(url)
    assert value == 'Bearer resource_metadata="https://x.example/a\\"b\\\\c"'
    assert parse_bearer(value) == {"resource_metadata": url}


@pytest.mark.parametrize("bad", ["https://x.example/\r\nSet-Cookie: a=b", "https://x.example/\x00", "https://é.example"])
def test_a_value_a_header_cannot_carry_is_refused(bad: str) -> None:
    """CR, LF, NUL and non-ASCII cannot be put in a quoted-string: refused rather than injected."""
    with pytest.raises(ValueError):
        challenge(bad)


@pytest.mark.parametrize("scope", ['a"b', "a\\b", "", "a b"])
def test_a_scope_that_is_no_scope_token_is_refused(scope: str) -> None:
    """RFC 6749 §3.3 scope-tokens have no space, quote or backslash."""
    with pytest.raises(ValueError):
        challenge(METADATA, scopes=[scope])


def test_an_error_code_outside_rfc_6750_is_refused() -> None:
    """Only invalid_request, invalid_token and insufficient_scope exist (RFC 6750 §3.1)."""
    with pytest.raises(ValueError):
        challenge(METADATA, error="access_denied")


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=60)
_SCOPE_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
                       min_size=1, max_size=20)


@given(url=_HEADER_TEXT, scopes=st.lists(_SCOPE_TOKEN, max_size=6),
       error=st.none() | st.sampled_from(["invalid_request", "invalid_token", "insufficient_scope"]),
       description=st.none() | st.text(max_size=80))
def test_challenges_round_trip_through_a_strict_parser(url: str, scopes: list[str], error: str | None,
                                                       description: str | None) -> None:
    """For any header-safe URL, scope-tokens, error and free text, the challenge parses back to exactly
    the URL, the scopes (deduplicated, without offline_access), the error and a description restricted
    to RFC 6750's charset."""
    params = parse_bearer(challenge(url, scopes=scopes, error=error, description=description))
    assert params.pop("resource_metadata") == url
    expected_scopes = [scope for scope in dict.fromkeys(scopes) if scope != "offline_access"]
    assert params.pop("scope", "").split() == expected_scopes
    assert params.pop("error", None) == error
    shown = params.pop("error_description", None)
    if error is None or not description:
        assert shown is None
    else:
        assert shown is not None and len(shown) == len(description)
        allowed = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]")
        assert shown == "".join(ch if allowed.fullmatch(ch) else "?" for ch in description)
    assert params == {}


# ---------------------------------------------------------------------------------------------- end to end


async def test_a_token_from_the_running_facades_token_endpoint_verifies(facade: Facade) -> None:
    """A full sign-in at a running facade: its /token answer verifies against its /jwks for its default
    resource `<issuer>/mcp`, with the facade's own `sid` as the family; for another resource it does not."""
    client = facade.client()
    body = await client.signed_in()
    keys = await client.jwks()
    principal = verify_access_token(body["access_token"], keys=keys, issuer=facade.url, resource=facade.url + "/mcp")
    assert principal.client_id == client.client_id and principal.sub
    assert set(principal.scopes) == set(body["scope"].split())
    assert principal.family and principal.family == segments(body["access_token"])[1]["sid"]
    with pytest.raises(TokenRejected, match="aud"):
        verify_access_token(body["access_token"], keys=keys, issuer=facade.url, resource=facade.url + "/other")
