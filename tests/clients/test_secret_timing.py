"""Issue 22 finding 7: a wrong secret for a client id that does not exist costs the same scrypt work as
one for a confidential client that does, so the answer's timing does not tell which ids exist.

Counted, not timed: the real key derivation (`proxy.clients.secrets._derive`) is wrapped to record each
call's cost parameters, and each probe must run it exactly as often, with the same parameters, as a
wrong secret for a real id."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.clients import secrets
from proxy.clients.secrets import hash_secret
from tests.clients.test_preregistered import SECRET, clients_file, form_basic
from tests.conftest import Facade, FacadeFactory


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int, int]]]:
    """The (log2 N, r, p) of every scrypt derivation the facade runs while the test does."""
    calls: list[tuple[int, int, int]] = []
    real = secrets._derive

    def counted(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
        calls.append((log2_n, r, p))
        return real(secret, salt, log2_n, r, p)

    monkeypatch.setattr(secrets, "_derive", counted)
    yield calls


async def _work(calls: list[tuple[int, int, int]], facade: Facade, path: str, form: dict[str, str],
                headers: dict[str, str] | None = None) -> tuple[int, list[tuple[int, int, int]]]:
    calls.clear()
    async with facade.http.post(facade.url + path, data=form, headers=headers or {}) as response:
        await response.read()
        return response.status, list(calls)


async def test_token_runs_scrypt_for_an_unknown_client_id_as_for_a_known_one(
        make_facade: FacadeFactory, tmp_path: Path, derivations: list[Any]) -> None:
    """A wrong secret for an id that does not exist, or a near miss of a real one, by Basic or in the form, runs
    one scrypt derivation with the configured cost, exactly as a wrong secret for a confidential client does."""
    facade = await make_facade(clients_file=str(clients_file(tmp_path)))
    form = {"grant_type": "client_credentials"}
    known = await _work(derivations, facade, "/token", form, {"Authorization": form_basic("reporting-job", "guess")})
    assert known == (401, [(secrets.LOG2_N, secrets.R, secrets.P)])
    for client_id in ("no-such-client", "reporting-jo", "Reporting-job"):
        assert await _work(derivations, facade, "/token", form,
                           {"Authorization": form_basic(client_id, "guess")}) == known, client_id
        posted = await _work(derivations, facade, "/token",
                             {**form, "client_id": client_id, "client_secret": "guess"})
        assert posted == known, client_id
    status, work = await _work(derivations, facade, "/token", form, {"Authorization": form_basic("reporting-job",
                                                                                               SECRET)})
    assert status == 200 and work == known[1]


async def test_resource_server_authentication_runs_scrypt_for_an_unknown_id_too(
        make_facade: FacadeFactory, tmp_path: Path, derivations: list[Any]) -> None:
    """At /introspect and at token exchange an unknown resource-server id costs the scrypt work of a known id's
    wrong secret."""
    path = tmp_path / "resource-servers.toml"
    path.write_text(f'[[resource_server]]\nid = "rs-a"\nsecret_hash = "{hash_secret("right")}"\n'
                    'resources = ["https://mcp.example.com/mcp"]\ntoken_exchange = true\n')
    facade = await make_facade(resources="https://mcp.example.com/mcp", resource_servers_file=str(path))

    def basic(user: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:guess".encode()).decode()}

    exchange = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "a.b.c",
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}
    for endpoint, form in (("/introspect", {"token": "a.b.c"}), ("/token", exchange)):
        known = await _work(derivations, facade, endpoint, form, basic("rs-a"))
        assert known == (401, [(secrets.LOG2_N, secrets.R, secrets.P)]), endpoint
        assert await _work(derivations, facade, endpoint, form, basic("rs-unknown")) == known, endpoint
