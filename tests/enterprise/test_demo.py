"""The README's enterprise demo ("Try it locally") runs as shown: `oauth-facade serve` with the demo files
and the development IdP as the company IdP, then the three legs with curl, the last one answered with an
access token; presenting the same ID-JAG again is refused."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.conftest import free_port
from tests.processes import facade_process

ROOT = Path(__file__).resolve().parent.parent.parent
FENCE = "```bash enterprise-demo"


def demo_block() -> list[str]:
    """The block's commands, backslash continuations joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    start = text.index(FENCE) + len(FENCE)
    body = text[start:text.index("```", start)].strip("\n")
    commands: list[str] = []
    for line in body.splitlines():
        if commands and commands[-1].endswith("\\"):
            commands[-1] += "\n" + line
        elif line.strip() and not line.lstrip().startswith("#"):
            commands.append(line)
    return commands


def test_the_readme_enterprise_demo_gets_an_access_token(tmp_path: Path) -> None:
    """Leg 1 (SSO at the dev IdP), leg 2 (RFC 8693 exchange for an ID-JAG), leg 3 (jwt-bearer at the facade):
    200 with a Bearer token for /mcp and no refresh token; the replay is 400 invalid_grant."""
    commands = demo_block()
    serve = commands.pop(0)
    assert serve.endswith("make run"), serve
    env = dict(word.split("=", 1) for word in shlex.split(serve)[:-2])
    port = free_port()
    local = f"127.0.0.1:{port}"
    idps = tmp_path / "idps.toml"
    idps.write_text((ROOT / env["PROXY_ENTERPRISE_IDPS_FILE"]).read_text().replace("127.0.0.1:8080", local))
    env.update(PROXY_ENTERPRISE_IDPS_FILE=str(idps), PROXY_CLIENTS_FILE=str(ROOT / env["PROXY_CLIENTS_FILE"]),
               PROXY_PORT=str(port), PROXY_ISSUER=f"http://{local}")
    script = "set -euo pipefail\n" + "\n".join(commands) + "\necho\n" + commands[-1] + "\n"
    script = script.replace("127.0.0.1:8080", local)
    with facade_process(env):
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    first, replay = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert first["token_type"] == "Bearer" and "refresh_token" not in first, first
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", first["access_token"])
    assert replay["error"] == "invalid_grant", replay
