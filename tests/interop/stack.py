"""The interoperability stack: each part its own process on 127.0.0.1, started and stopped by the suite.

- a real `redis-server` (the facade's store, as in production);
- the upstream IdP: panva's `oidc-provider` (js/idp.mjs), with the facade registered as a confidential
  client whose only redirect URI is the facade's /callback;
- the facade, started with `oauth-facade serve` and `PROXY_*` variables, exactly as a user runs it;
- a protected MCP endpoint (mcp_server.py): the MCP SDK's own server behind a bearer-token check.

Node and the npm packages are installed by `make test` / `make interop` (target `interop-deps`, `npm ci`
against js/package-lock.json). When they are missing the tests fail, never skip: CI has node, and a
silently skipped interop suite would look green.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from joserfc import jwk

from tests.clients.tls import TestPKI, make_pki
from tests.conftest import free_port
from tests.programs import program

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
# oidc-provider 9 calls URL.parse (Node >= 20.18) and supports only 22 LTS officially (it warns on 20,
# and runs: the suite passes on 20.20). Below this, fail with a clear message rather than mid-flow.
MIN_NODE = (20, 19)
UPSTREAM_CLIENT_ID = "oauth-facade"
# A space and a '+' in the facade's upstream secret: its Basic header must be form-urlencoded for
# oidc-provider's strict RFC 6749 §2.3.1 decoding, or the code exchange fails with invalid_client.
UPSTREAM_CLIENT_SECRET = "interop secret+1"
START_TIMEOUT_S = 30.0
AGENT_CLIENT_ID = "interop-agent"  # a machine client: client_credentials with private_key_jwt
SETUP_HINT = "run `make interop` (or `make interop-deps`), which installs node and the pinned npm packages"


def fail(message: str) -> NoReturn:
    """Fail the test with `message` only: no traceback, no chained exception (the message says it all)."""
    error = pytest.fail.Exception(message, pytrace=False)
    error.__suppress_context__ = True
    raise error


def node_binary() -> str:
    """The `node` to run the JS parts with; a clear failure (not a skip) when it is missing or too old."""
    node = program("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"v(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < MIN_NODE:
        fail(f"interop: node {version or '?'} is too old, oidc-provider needs >= "
             f"{'.'.join(map(str, MIN_NODE))}: {SETUP_HINT}")
    return node


def pinned_versions() -> dict[str, str]:
    """Each pinned npm package's version, checked against what `npm ci` actually installed."""
    wanted: dict[str, str] = json.loads((JS / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = JS / "node_modules" / name / "package.json"
        if not manifest.exists():
            fail(f"interop: npm package {name} is not installed in {JS}: {SETUP_HINT}")
        installed = json.loads(manifest.read_text())["version"]
        if installed != version:
            fail(f"interop: {name} {installed} is installed but {version} is pinned: {SETUP_HINT}")
    return wanted


@dataclass
class Service:
    """One started process, its log file, and how to tell the test what it said."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if " NOTICE: " not in line]  # oidc-provider's advice
        return "\n".join(f"    {self.name}| {line}" for line in kept[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class InteropStack:
    """URLs of the running parts; `logs()` is appended to every failure report."""

    facade: str  # the facade's issuer
    idp: str  # oidc-provider's issuer
    mcp: str  # the protected MCP endpoint (the facade's PROXY_RESOURCES)
    machine_mcp: str  # a second one, for machine clients (no user scope required): AGENT_CLIENT_ID's resource
    redis_url: str
    node: str
    versions: dict[str, str]
    pki: TestPKI  # the CA the facade trusts for client metadata documents on https://localhost (CIMD)
    agent_key: jwk.RSAKey  # private key of AGENT_CLIENT_ID, pre-registered for private_key_jwt (client_credentials)
    services: list[Service] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(tail for service in self.services if (tail := service.tail()))

    def idp_events(self) -> list[str]:
        """What oidc-provider reported so far (`grant <grant_type>`, `grant revoked`): proof that the
        facade's own refreshes and revocations really reached the upstream."""
        service = next(service for service in self.services if service.name == "oidc-provider")
        lines = service.log.read_text(errors="replace").splitlines()
        return [line.removeprefix("idp event ") for line in lines if line.startswith("idp event ")]

    def redirect_uri(self) -> str:
        """A loopback redirect URI nobody listens on: the scripted browser stops before requesting it."""
        return f"http://127.0.0.1:{free_port()}/callback"


def _env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without any PROXY_* of the developer's shell, plus `extra`."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("PROXY_")}
    return {**clean, **extra}


def _start(name: str, argv: list[str], env: dict[str, str], workdir: Path, cwd: Path) -> Service:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=subprocess.STDOUT)
    return Service(name, process, log)


def _wait(service: Service, url: str, *, method: str = "GET", expect: int = 200) -> None:
    """Poll `url` until it answers `expect`; fail with the process's own output if it died or hung."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            fail(f"interop: {service.name} exited with {service.process.returncode} at start:\n"
                 f"{service.tail(40)}")
        request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except OSError:
            time.sleep(0.1)
            continue
        if status == expect:
            return
        time.sleep(0.1)
    fail(f"interop: {service.name} did not answer {expect} at {url} within {START_TIMEOUT_S:.0f} s:\n"
         f"{service.tail(40)}")


def _clients_toml(stack: InteropStack) -> str:
    """PROXY_CLIENTS_FILE: one machine client whose public key is inline (private_key_jwt)."""
    public = json.dumps({"keys": [stack.agent_key.as_dict(private=False)]})
    return (f'[[client]]\nid = "{AGENT_CLIENT_ID}"\nname = "Interop agent"\n'
            f'grant_types = ["client_credentials"]\nresources = ["{stack.machine_mcp}"]\njwks = \'{public}\'\n')


def _facade_command() -> list[str]:
    """`oauth-facade serve`: the console script a user runs (python -m proxy where it is not installed)."""
    script = Path(sys.executable).with_name("oauth-facade")
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "proxy", "serve"]


@contextmanager
def running_stack() -> Iterator[InteropStack]:
    """Start the four processes, wait until each answers, yield their URLs; stop them all at the end."""
    node = node_binary()
    versions = pinned_versions()
    redis = program("redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="facade-interop-"))
    redis_port, idp_port, facade_port, mcp_port, machine_port = (free_port() for _ in range(5))
    facade = f"http://127.0.0.1:{facade_port}"
    idp = f"http://127.0.0.1:{idp_port}"
    mcp = f"http://127.0.0.1:{mcp_port}/mcp"
    stack = InteropStack(facade=facade, idp=idp, mcp=mcp, machine_mcp=f"http://127.0.0.1:{machine_port}/machine",
                         redis_url=f"redis://127.0.0.1:{redis_port}/0",
                         node=node, versions=versions, pki=make_pki(workdir, ("localhost",)),
                         agent_key=jwk.generate_key("RSA", 2048, parameters={"kid": "agent-1"}))
    clients_file = workdir / "clients.toml"
    clients_file.write_text(_clients_toml(stack))
    services: dict[str, Service] = {}

    def start(key: str, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        services[key] = _start(name, argv, _env(env), workdir, cwd)
        stack.services.append(services[key])  # stopped at the end even if a later one fails to start

    try:
        # All four start at once; the facade reaches the IdP lazily, on the first sign-in.
        start("redis", "redis", [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--loglevel", "warning", "--dir", str(workdir)], {}, workdir)
        start("idp", "oidc-provider", [node, str(JS / "idp.mjs")], {
            "IDP_PORT": str(idp_port), "IDP_CLIENT_ID": UPSTREAM_CLIENT_ID,
            "IDP_CLIENT_SECRET": UPSTREAM_CLIENT_SECRET, "IDP_REDIRECT_URI": f"{facade}/callback",
        }, JS)
        start("facade", "facade", _facade_command(), {
            "PROXY_ISSUER": facade, "PROXY_HOST": "127.0.0.1", "PROXY_PORT": str(facade_port),
            "PROXY_REDIS_URL": stack.redis_url,
            "PROXY_UPSTREAM_ISSUER": idp, "PROXY_UPSTREAM_CLIENT_ID": UPSTREAM_CLIENT_ID,
            "PROXY_UPSTREAM_CLIENT_SECRET": UPSTREAM_CLIENT_SECRET,
            "PROXY_RESOURCES": f"{mcp} {stack.machine_mcp}",
            # The consent page stays on (the default): the scripted browser answers it.
            "PROXY_RATE_LIMITS": "off",
            # Refresh the upstream grant on every client refresh, so each refresh in the suite also
            # exercises oidc-provider's refresh-token rotation through the facade.
            "PROXY_UPSTREAM_REFRESH_SKEW_S": "86400",
            "PROXY_LOG_LEVEL": "warning",
            # Client metadata documents (CIMD) served by the tests on https://localhost:<port>, under a CA
            # made for the session: the development exception, as a developer's machine would use it.
            "PROXY_CIMD_DEV_HOSTS": "localhost", "PROXY_CIMD_CA_FILE": str(stack.pki.ca_file),
            "PROXY_CLIENTS_FILE": str(clients_file),
        }, workdir)  # not the repository: a developer's ./.env must not change what is tested
        start("mcp", "mcp-server", [sys.executable, str(HERE / "mcp_server.py"), str(mcp_port), facade, mcp],
              {}, workdir)
        start("machine-mcp", "machine-mcp-server", [sys.executable, str(HERE / "mcp_server.py"), str(machine_port),
                                                    facade, stack.machine_mcp], {"MCP_REQUIRED_SCOPES": ""}, workdir)
        _wait(services["idp"], f"{idp}/.well-known/openid-configuration")
        _wait(services["facade"], f"{facade}/healthz")
        _wait(services["facade"], f"{facade}/readyz")
        _wait(services["mcp"], mcp, method="POST", expect=401)
        _wait(services["machine-mcp"], stack.machine_mcp, method="POST", expect=401)
        yield stack
    finally:
        for service in reversed(stack.services):
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def protected_mcp_server(issuer: str, resource: str) -> Iterator[Service]:
    """The suite's MCP server (mcp_server.py) alone, for a facade the test runs itself (the enterprise
    tests' in-process facade); `resource` is http://127.0.0.1:<free port>/<path>."""
    workdir = Path(tempfile.mkdtemp(prefix="facade-interop-mcp-"))
    port = str(int(resource.split(":")[2].split("/")[0]))
    service = _start("mcp-server", [sys.executable, str(HERE / "mcp_server.py"), port, issuer, resource],
                     _env({}), workdir, workdir)
    try:
        _wait(service, resource, method="POST", expect=401)
        yield service
    finally:
        service.stop()
        shutil.rmtree(workdir, ignore_errors=True)
