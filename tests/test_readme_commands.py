"""Every command the README shows in a code block runs, and succeeds, as shown.

Blocks are read from README.md: fenced `sh` blocks run whole, as one bash script (`set -euo pipefail`,
so a failing command or pipe fails the block), and indented blocks contribute the lines that are commands
(a known program after optional `VAR=value` words; settings listings are not commands). What cannot run
here is listed in SKIPPED with the reason, and each entry must still be in the README.

The facade the curl lines talk to is started by the test the way `make run` starts it (`oauth-facade
serve`, embedded store, development IdP), on a free port: `127.0.0.1:8080` in a command becomes that
port. A command that serves (`oauth-facade serve`) runs until its /healthz answers, on a spare port, then
stops. `curl` fails on an HTTP error status here (`--fail-with-body`), so a 4xx cannot pass for success.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.processes import facade_process

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
PROGRAMS = ("oauth-facade", "make", "curl", "docker", "python3", "python", "openssl")

# Commands (by their start) that do not run here, and why. Each must appear in the README.
SKIPPED: dict[str, str] = {
    "make run": "serves until stopped; the test starts the same `oauth-facade serve` itself, and "
                "tests/test_cli.py checks what `make run` installs and runs",
    "make test": "is this suite",
    "oauth-facade --env-file config/clerk.env check": "needs a real Clerk instance (no network here)",
    "docker ": "no Docker engine here; tests/test_deploy_files.py checks the compose file and the image",
}
# What the test substitutes in a command before running it.
LOCAL_FACADE = "127.0.0.1:8080"
KEYS_DIR = "/etc/oauth-facade"

PRELUDE = r"""
set -euo pipefail
curl() { command curl --fail-with-body "$@"; }
serve_briefly() {  # a command that serves: run it until /healthz answers on $SPARE_PORT, then stop it
  "$@" & local pid=$! tries=0
  until command curl -sf "http://127.0.0.1:$SPARE_PORT/healthz" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return 1; }
    tries=$((tries + 1)); [ "$tries" -lt 200 ] || { kill "$pid"; return 1; }
    sleep 0.1
  done
  kill -TERM "$pid"; wait "$pid"
}
"""


@dataclass
class Block:
    line: int  # where it starts in README.md
    commands: list[str]


def _is_command(text: str) -> bool:
    words = text.split()
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words.pop(0)
    return bool(words) and words[0] in PROGRAMS


def _commands(lines: list[str], *, fenced: bool) -> list[str]:
    """Join backslash continuations; a fenced block keeps every line, an indented one only commands."""
    joined: list[str] = []
    for raw in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1] + "\n" + raw
        else:
            joined.append(raw)
    return [text for text in joined if text.strip() and (fenced or _is_command(text.strip()))]


def readme_blocks() -> list[Block]:
    lines = README.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            language, start = line[3:].strip(), index
            index += 1
            body = []
            while not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            if language in ("sh", "bash", "shell"):
                blocks.append(Block(start + 1, _commands(body, fenced=True)))
        elif line.startswith("    ") and (index == 0 or not lines[index - 1].strip()):
            start, body = index, []
            while index < len(lines) and (lines[index].startswith("    ") or not lines[index].strip()):
                body.append(lines[index][4:])
                index += 1
            commands = _commands(body, fenced=False)
            if commands:
                blocks.append(Block(start + 1, commands))
            continue
        index += 1
    return blocks


def skip_reason(command: str) -> str | None:
    text = command.strip()
    return next((reason for start, reason in SKIPPED.items() if text.startswith(start)), None)


def _serving(command: str) -> bool:
    words = [word for word in command.split() if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", word)]
    return words[:2] == ["oauth-facade", "serve"]


def script_of(block: Block, port: int, keys_dir: Path) -> str:
    out = [PRELUDE]
    for command in block.commands:
        if skip_reason(command) is not None:
            continue
        command = command.replace(LOCAL_FACADE, f"127.0.0.1:{port}").replace(KEYS_DIR, str(keys_dir))
        if _serving(command):
            command = ('serve_briefly env PROXY_PORT="$SPARE_PORT" PROXY_ISSUER="http://127.0.0.1:$SPARE_PORT" '
                       + command.split("#", 1)[0])
        out.append(command)
    return "\n".join(out) + "\n"


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def facade_port() -> Iterator[int]:
    """`make run`'s facade (embedded store, development IdP, consent on) on a free port."""
    port = free_port()
    with facade_process({"PROXY_PORT": str(port), "PROXY_ISSUER": f"http://127.0.0.1:{port}"}):
        yield port


def test_the_readme_has_runnable_blocks() -> None:
    """The parser finds the blocks this test is about (an empty list would make the test below vacuous)."""
    shown = [command for block in BLOCKS for command in block.commands]
    assert any(command.startswith("curl") for command in shown)
    assert any("oauth-facade keys generate" in command for command in shown)
    assert any("/consent" in command for command in shown)


def test_every_skipped_command_is_still_in_the_readme() -> None:
    """The skip list names only commands the README shows, so it cannot hide a command that was removed."""
    shown = [command.strip() for block in BLOCKS for command in block.commands]
    for start in SKIPPED:
        if start.strip() == "docker":
            continue  # no docker command is in a block today: the entry guards the ones that will be
        assert any(command.startswith(start) for command in shown), start


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{block.line}" for block in BLOCKS])
def test_readme_block_runs(block: Block, facade_port: int, tmp_path: Path) -> None:
    """The block's commands, as an operator would paste them, exit 0."""
    script = script_of(block, facade_port, tmp_path / "etc" / "oauth-facade")
    if all(skip_reason(command) is not None for command in block.commands):
        pytest.skip("; ".join(sorted({skip_reason(command) or "" for command in block.commands})))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", SPARE_PORT=str(free_port()), PROXY_LOG_LEVEL="warning")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"README.md:{block.line} failed:\n{script}\n--- stdout\n{result.stdout}\n" \
                                   f"--- stderr\n{result.stderr}"


def test_docs_quote_the_mcp_pin_pyproject_has() -> None:
    """docs/clients.md names the MCP SDK requirement; it must be the one in pyproject.toml's test extra."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pin = next(requirement for requirement in extras if requirement.startswith("mcp"))
    quoted = re.findall(r"`(mcp[<>=!~][^`]*)`", (ROOT / "docs" / "clients.md").read_text())
    assert quoted and all(text == pin for text in quoted), (quoted, pin)
