"""What installing `oauth-facade-verifier` alone brings: its wheel requires joserfc and nothing else (no
aiohttp, no redis, not the facade), holds only its own package, and verification runs in a process where
aiohttp, redis, the facade and the MCP SDK cannot be imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

HERE = Path(__file__).resolve().parent
DISTRIBUTION = HERE.parent
FORBIDDEN = ("aiohttp", "redis", "fakeredis", "oauth_facade", "oauth-facade", "proxy")


def _wheel(tmp_path: Path) -> Path:
    """The wheel, built offline from a copy of the source (the build leaves nothing in the tree)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(DISTRIBUTION / name, source / name)
    shutil.copytree(DISTRIBUTION / "oauth_facade_verifier", source / "oauth_facade_verifier",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--wheel-dir", str(out), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    [wheel] = out.glob("oauth_facade_verifier-*.whl")
    return wheel


def test_the_wheel_requires_joserfc_alone_and_holds_only_its_package(tmp_path: Path) -> None:
    """Requires-Dist: joserfc unconditionally, the MCP SDK only under the `mcp` extra; no aiohttp or
    redis under any condition; the files are the package and its metadata."""
    with zipfile.ZipFile(_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        [metadata_name] = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert metadata["Name"] == "oauth-facade-verifier"
    requires = metadata.get_all("Requires-Dist") or []
    unconditional = [line for line in requires if ";" not in line]
    assert [line.split(">")[0].split("=")[0].strip() for line in unconditional] == ["joserfc"]
    assert all('extra == "mcp"' in line for line in requires if ";" in line)
    assert not [line for line in requires if line.lower().startswith(FORBIDDEN)]
    assert {name.split("/")[0] for name in names} == {"oauth_facade_verifier",
                                                      metadata_name.split("/")[0]}


PROBE = """
import asyncio, importlib.abc, json, sys
FORBIDDEN = {"aiohttp", "redis", "fakeredis", "proxy", "mcp", "starlette", "httpx", "multidict", "yarl"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError("not installed with the verifier: " + name)

sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
from verifier_testkit import RESOURCE, Issuer
from oauth_facade_verifier import BearerAuth, FacadeTokenVerifier, TokenRejected

issuer = Issuer()
verifier = FacadeTokenVerifier(issuer=issuer.url, resource=RESOURCE)
answer = {"sub": asyncio.run(verifier.principal(issuer.token(sub="dana"))).sub}
try:
    asyncio.run(verifier.principal(issuer.token(aud="https://other.example.com")))
except TokenRejected:
    answer["other_audience"] = "rejected"
BearerAuth(lambda scope, receive, send: None, verifier=verifier)
try:
    import aiohttp
except ImportError:
    answer["blocked"] = True
answer["loaded"] = sorted({name.split(".")[0] for name in sys.modules} & FORBIDDEN)
issuer.close()
print(json.dumps(answer))
"""


def test_verification_runs_without_aiohttp_redis_the_facade_or_the_mcp_sdk(tmp_path: Path) -> None:
    """In a process that cannot import aiohttp, redis, the facade or the MCP SDK (and so would fail if
    the package needed them), the verifier fetches the JWKS, accepts a good token, refuses one for
    another resource, and the ASGI middleware builds."""
    result = subprocess.run([sys.executable, "-I", "-c", PROBE, str(HERE)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == {"sub": "dana", "other_audience": "rejected", "blocked": True, "loaded": []}
