"""The whole authorization-code flow through the dev IdP, checked the way a strict client checks it."""

from __future__ import annotations

from joserfc import jwt

from tests.conftest import Facade, FacadeFactory


async def test_flow_yields_tokens_that_agree_with_the_metadata(facade: Facade) -> None:
    """RFC 9207 `iss`, the client's state and a re-signed id_token whose iss/aud/nonce are the facade's own."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    params = auth.params
    assert auth.location.startswith(client.redirect_uri + "?")
    assert params["iss"] == facade.url
    assert params["state"] == auth.state
    assert set(params) == {"code", "state", "iss"}

    status, body = await client.exchange(auth)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 3600
    assert body["scope"] == "openid offline_access"
    assert body["refresh_token"]
    claims = await client.verify_id_token(body["id_token"], nonce=auth.nonce, access_token=body["access_token"])
    assert claims["sub"] == "demo-user"
    assert "email" not in claims  # scope openid alone releases no email (OIDC Core §5.4)
    assert isinstance(claims["auth_time"], int)


async def test_token_response_headers_forbid_caching(facade: Facade) -> None:
    """RFC 6749 §5.1: Cache-Control: no-store and Pragma: no-cache on token responses."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    form = {"grant_type": "authorization_code", "code": auth.params["code"], "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri, "client_id": client.client_id}
    status, _, response = await client.token(form)
    assert status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.content_type == "application/json"


async def test_access_token_is_an_rfc9068_jwt_for_the_resource(facade: Facade) -> None:
    """RFC 9068: typ at+jwt, iss, sub, aud = the resource, client_id, scope, exp, iat, jti."""
    client = facade.client()
    body = await client.signed_in()
    token = jwt.decode(body["access_token"], await client.jwks())
    assert token.header["typ"] == "at+jwt"
    claims = token.claims
    assert claims["iss"] == facade.url
    assert claims["aud"] == facade.url + "/mcp"
    assert claims["client_id"] == client.client_id
    assert claims["sub"] == "demo-user"
    assert claims["scope"] == "openid offline_access"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]


async def test_no_state_sent_means_none_returned_and_no_nonce_means_none_in_id_token(facade: Facade) -> None:
    """oauth4webapi expectNoState / expectNoNonce: nothing appears that the client did not send."""
    client = facade.client()
    await client.register()
    auth = await client.authorize(state=None, nonce=None)
    assert "state" not in auth.params
    status, body = await client.exchange(auth)
    assert status == 200
    claims = await client.verify_id_token(body["id_token"], nonce=None, access_token=body["access_token"])
    assert "nonce" not in claims


async def test_upstream_sees_only_the_facades_own_callback_state_nonce_and_pkce(facade: Facade) -> None:
    """The client's redirect_uri, state, nonce and challenge never reach the IdP."""
    client = facade.client()
    await client.register()
    auth = await client.authorize()
    sent = facade.idp_state.authorize_requests[-1]
    assert sent["redirect_uri"] == facade.url + "/callback"
    assert sent["state"] != auth.state and len(sent["state"]) >= 43
    assert sent["nonce"] != auth.nonce
    assert sent["code_challenge_method"] == "S256"
    assert sent["scope"].split() == ["openid", "email", "profile", "offline_access"]
    exchange = facade.idp_state.token_requests[-1]
    assert exchange["redirect_uri"] == facade.url + "/callback"
    assert exchange["code_verifier"]


async def test_registered_redirect_query_is_kept(facade: Facade) -> None:
    """RFC 6749 §3.1.2: the query component of a registered redirect URI is retained."""
    client = facade.client()
    client.redirect_uri = "https://app.example.com/cb?tenant=7"
    await client.register()
    auth = await client.authorize()
    assert auth.location.startswith("https://app.example.com/cb?tenant=7&")
    assert auth.params["tenant"] == "7"


async def test_upstream_access_token_mode_hands_the_idps_token_through(make_facade: FacadeFactory) -> None:
    """PROXY_ACCESS_TOKEN_MODE=upstream: the IdP's own access token, its id_token still re-signed."""
    facade = await make_facade(access_token_mode="upstream")
    client = facade.client()
    body = await client.signed_in()
    assert body["access_token"] in facade.idp_state.access_tokens
    assert body["expires_in"] <= 3600
    await client.verify_id_token(body["id_token"], nonce=body["_auth"].nonce, access_token=body["access_token"])
    status, refreshed = await client.refresh(body["refresh_token"])
    assert status == 200
    assert refreshed["access_token"] in facade.idp_state.access_tokens


async def test_claims_missing_from_the_upstream_id_token_come_from_its_userinfo(make_facade: FacadeFactory) -> None:
    """OIDC Core §5.4: an IdP may keep profile claims for userinfo; the facade's id_token still has them
    (for a client granted the email and profile scopes)."""
    facade = await make_facade(idp={"id_token_claims": {"email": None, "email_verified": None, "name": None,
                                                        "preferred_username": None}})
    client = facade.client()
    body = await client.signed_in(scope="openid email profile")
    claims = await client.verify_id_token(body["id_token"], nonce=body["_auth"].nonce,
                                          access_token=body["access_token"])
    assert claims["sub"] == "demo-user"
    assert claims["email"] == "demo@example.com"
    assert claims["name"] == "Demo User"


async def test_claims_in_the_upstream_id_token_need_no_userinfo_call(facade: Facade) -> None:
    """The common case costs no extra upstream call."""
    client = facade.client()
    await client.signed_in()
    assert "token" in facade.idp_state.arrivals
    assert "userinfo" not in facade.idp_state.arrivals


async def test_with_no_upstream_configured_the_mounted_dev_idp_signs_in_the_demo_user(
        redis_client: object, aiohttp_server: object) -> None:
    """`make run`'s embedded default: the development IdP mounted under the facade at /devidp."""
    import aiohttp

    from proxy.app import create_app
    from proxy.settings import Settings
    from proxy.upstream.profiles import uses_dev_idp
    from tests.conftest import free_port
    from tests.helpers import query_of, s256

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = Settings(_env_file=None, issuer=issuer, port=port, consent=False)  # type: ignore[call-arg]
    assert uses_dev_idp(settings)
    await aiohttp_server(create_app(settings, redis=redis_client), port=port)  # type: ignore[operator]
    async with aiohttp.ClientSession() as http:
        async with http.post(issuer + "/register", json={"redirect_uris": ["http://127.0.0.1:5599/cb"]}) as r:
            client_id = (await r.json())["client_id"]
        location = issuer + "/authorize?" + "&".join(f"{k}={v}" for k, v in {
            "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:5599/cb",
            "code_challenge": s256("v" * 43), "code_challenge_method": "S256", "state": "xyz"}.items())
        for _ in range(3):  # facade -> mounted IdP -> facade callback -> client
            async with http.get(location, allow_redirects=False) as response:
                assert response.status == 302, await response.text()
                location = response.headers["Location"]
        params = query_of(location)
        assert location.startswith("http://127.0.0.1:5599/cb?") and params["state"] == "xyz"
        async with http.post(issuer + "/token", data={
                "grant_type": "authorization_code", "code": params["code"], "code_verifier": "v" * 43,
                "redirect_uri": "http://127.0.0.1:5599/cb", "client_id": client_id}) as response:
            assert response.status == 200
            assert (await response.json())["token_type"] == "Bearer"
