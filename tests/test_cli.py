"""The `oauth-facade` console script as an operator meets it: exit codes, one-line errors, what goes to
stdout and stderr, start-up against the store, and what `make run` installs.

Every test runs the installed console script (`.venv/bin/oauth-facade`) in a subprocess.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(Path(sys.executable).with_name("oauth-facade"))
PASSWORD = "s3cret-pw"  # a made-up Redis password that must never be printed


def env_without_settings(**values: str) -> dict[str, str]:
    """The caller's environment minus every PROXY_* variable, plus `values`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    return {**clean, **values}


def facade(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], env=env_without_settings(**(env or {})), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def unreachable_redis() -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"


# -- --env-file ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["check"], ["serve"], ["settings"]])
def test_a_named_env_file_that_does_not_exist_is_exit_2(tmp_path: Path, command: list[str]) -> None:
    """A mistyped --env-file used to be skipped silently (and the dev IdP used): now one line, exit 2."""
    result = facade("--env-file", str(tmp_path / "clerck.env"), *command, cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "--env-file" in line and "clerck.env" in line and "no such file" in line
    assert result.stdout == ""


def test_an_env_file_that_exists_is_read(tmp_path: Path) -> None:
    """The same option with a real file takes its values (the file is not refused for existing)."""
    env_file = tmp_path / "ok.env"
    env_file.write_text("PROXY_PORT=18999\n")
    result = facade("--env-file", str(env_file), "settings", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^PROXY_PORT\s+18999\s+file ", result.stdout, re.M)


# -- start-up against the store ------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_an_unreachable_redis_at_start_up_is_one_line_and_exit_1(workers: list[str]) -> None:
    """No "listening", no traceback: the URL (password masked) and the cause, from the parent with --workers."""
    url = unreachable_redis()
    env = {"PROXY_REDIS_URL": url, "PROXY_PORT": str(free_port()), "PROXY_REDIS_TIMEOUT_S": "1"}
    if workers:  # --workers needs a real upstream; it is never contacted before the store answers
        env.update(PROXY_UPSTREAM_ISSUER=f"http://127.0.0.1:{free_port()}", PROXY_UPSTREAM_CLIENT_ID="x")
    result = facade("serve", *workers, env=env)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "listening" not in line
    assert url.replace(PASSWORD, "***") in line
    assert PASSWORD not in result.stderr + result.stdout
    assert "connect" in line.lower()  # the cause: connection refused


def wait_for_line(process: subprocess.Popen[str], pattern: str, timeout_s: float = 30) -> str:
    """The first stderr line matching `pattern` (the process must still be running)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            line = process.stderr.readline()
            if re.search(pattern, line):
                return line
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"no line matching {pattern!r}; exit code {process.poll()}")


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_listening_is_said_once_the_store_answered_and_the_port_answers(
        redis_server: RedisServer, workers: list[str]) -> None:
    """When "listening" is printed, /readyz already answers 200: the store was reached and the port is bound."""
    port = free_port()
    env = {"PROXY_REDIS_URL": redis_server.url, "PROXY_PORT": str(port), "PROXY_LOG_LEVEL": "warning",
           "PROXY_REDIS_PREFIX": f"cli{port}:"}
    if workers:
        env.update(PROXY_UPSTREAM_ISSUER=f"http://127.0.0.1:{free_port()}", PROXY_UPSTREAM_CLIENT_ID="x")
    process = subprocess.Popen([SCRIPT, "serve", *workers], env=env_without_settings(**env), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = wait_for_line(process, r"listening|workers on")
        assert f"http://127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        assert process.stderr is not None
        process.stderr.close()


def test_a_port_in_use_is_one_line_and_exit_1_without_listening() -> None:
    """The port is taken: no "listening" line, no traceback, the address and the cause."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = facade("serve", env={"PROXY_PORT": str(port), "PROXY_LOG_LEVEL": "warning"})
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"oauth-facade: cannot listen on 127.0.0.1:{port}: ")
    assert "listening" not in line


# -- check ----------------------------------------------------------------------------------------------------
def test_check_output_pipes_into_a_json_tool() -> None:
    """`oauth-facade check | python -m json.tool` works: notes go to stderr, stdout is only the JSON."""
    pipeline = subprocess.run(f"'{SCRIPT}' check | '{sys.executable}' -m json.tool", shell=True,
                              env=env_without_settings(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert pipeline.returncode == 0, pipeline.stderr
    assert json.loads(pipeline.stdout)["authorization_server"]["issuer"] == "http://127.0.0.1:8080"
    assert "note: " in pipeline.stderr


def test_check_reports_an_unreachable_store() -> None:
    """check contacts the store too: an unreachable PROXY_REDIS_URL is a problem (exit 1), password masked."""
    url = unreachable_redis()
    result = facade("check", env={"PROXY_REDIS_URL": url, "PROXY_REDIS_TIMEOUT_S": "1"})
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1, result.stderr
    assert problems[0].startswith(f"problem: PROXY_REDIS_URL: the store at {url.replace(PASSWORD, '***')} "
                                  "did not answer: ")
    assert PASSWORD not in result.stderr + result.stdout
    assert json.loads(result.stdout)["authorization_server"]


def test_check_reaches_a_running_store(redis_server: RedisServer) -> None:
    """With a reachable Redis, check says so and passes."""
    result = facade("check", env={"PROXY_REDIS_URL": redis_server.url})
    assert result.returncode == 0, result.stderr
    assert f"note: store: {redis_server.url} answered PING" in result.stderr.splitlines()


# -- settings --------------------------------------------------------------------------------------------------
def test_settings_shows_effective_values_and_their_sources_with_secrets_masked(tmp_path: Path) -> None:
    """Environment beats the --env-file, the file beats the default; secrets never print."""
    env_file = tmp_path / "prod.env"
    env_file.write_text("PROXY_PORT=9443\nPROXY_LOG_LEVEL=warning\n"
                        "PROXY_UPSTREAM_CLIENT_SECRET=file-secret-value\n")
    result = facade("--env-file", str(env_file), "settings", cwd=tmp_path,
                    env={"PROXY_LOG_LEVEL": "debug", "PROXY_METRICS_TOKEN": "env-secret-value",
                         "PROXY_REDIS_URL": f"redis://:{PASSWORD}@redis.internal:6379/0"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["PROXY_PORT"] == ["9443", f"file {env_file}"]
    assert rows["PROXY_LOG_LEVEL"] == ["debug", "environment"]
    assert rows["PROXY_ISSUER"] == ["http://127.0.0.1:8080", "default"]
    assert rows["PROXY_UPSTREAM_CLIENT_SECRET"] == ["********", f"file {env_file}"]
    assert rows["PROXY_METRICS_TOKEN"] == ["********", "environment"]
    assert rows["PROXY_REDIS_URL"] == ["redis://:***@redis.internal:6379/0", "environment"]
    assert "secret-value" not in result.stdout and PASSWORD not in result.stdout


def test_settings_reads_dot_env_in_the_working_directory(tmp_path: Path) -> None:
    """`.env` is a source too, and --env-file overrides it."""
    (tmp_path / ".env").write_text("PROXY_PORT=1111\nPROXY_HOST=0.0.0.0\n")
    (tmp_path / "x.env").write_text("PROXY_PORT=2222\n")
    result = facade("--env-file", "x.env", "settings", cwd=tmp_path)
    assert re.search(r"^PROXY_PORT\s+2222\s+file x\.env$", result.stdout, re.M), result.stdout
    assert re.search(r"^PROXY_HOST\s+0\.0\.0\.0\s+file \.env$", result.stdout, re.M), result.stdout


def test_settings_still_shows_the_values_when_the_profile_rules_refuse_them(tmp_path: Path) -> None:
    """An incoherent configuration (clerk without an issuer) is shown, then named in one line, exit 2."""
    result = facade("settings", cwd=tmp_path, env={"PROXY_UPSTREAM_PROFILE": "clerk"})
    assert result.returncode == 2
    assert re.search(r"^PROXY_UPSTREAM_PROFILE\s+clerk\s+environment$", result.stdout, re.M), result.stdout
    assert "clerk needs PROXY_UPSTREAM_ISSUER" in one_line(result.stderr)


# -- logs on a terminal -----------------------------------------------------------------------------------------
def first_log_line(stdout_is_a_terminal: bool, **env: str) -> str:
    """Start the facade, read its first stdout line (through a pseudo-terminal or a pipe), stop it."""
    port = free_port()
    settings = {"PROXY_PORT": str(port), **env}
    if stdout_is_a_terminal:
        parent, child = pty.openpty()
        process = subprocess.Popen([SCRIPT, "serve"], env=env_without_settings(**settings), cwd=ROOT,
                                   stdout=child, stderr=subprocess.DEVNULL)
        os.close(child)
        reader = parent
    else:
        process = subprocess.Popen([SCRIPT, "serve"], env=env_without_settings(**settings), cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None
        reader = process.stdout.fileno()
    try:
        data = b""
        deadline = time.monotonic() + 30
        while b"\n" not in data and time.monotonic() < deadline:
            if select.select([reader], [], [], 0.2)[0]:
                data += os.read(reader, 4096)
        return data.decode(errors="replace").splitlines()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        if stdout_is_a_terminal:
            os.close(reader)
        elif process.stdout is not None:
            process.stdout.close()


def test_logs_on_a_terminal_in_development_are_console_lines() -> None:
    """Unset PROXY_LOG_FORMAT (= auto) on a terminal: readable lines, not JSON."""
    line = first_log_line(True)
    assert not line.lstrip().startswith("{"), line
    assert "startup" in line


def test_logs_into_a_pipe_stay_json() -> None:
    """Unset PROXY_LOG_FORMAT into a pipe (containers, log shippers): one JSON object a line."""
    assert json.loads(first_log_line(False))["event"].startswith("startup")


def test_an_explicit_log_format_wins_on_a_terminal() -> None:
    """PROXY_LOG_FORMAT=json on a terminal is JSON: auto never overrides what the operator said."""
    assert json.loads(first_log_line(True, PROXY_LOG_FORMAT="json"))["event"].startswith("startup")


# -- make ------------------------------------------------------------------------------------------------------
def make_dry_run(target: str, tmp_path: Path) -> str:
    """`make -n TARGET` as on a fresh clone (a venv path that does not exist yet): the commands it would run."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run([make, "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_only_what_serving_needs(tmp_path: Path) -> None:
    """`make run` installs the package with its speed extra and the verifier distribution it depends on
    (verifier/), never the test extra (pytest, ruff, mcp)."""
    commands = make_dry_run("run", tmp_path)
    installs = [line for line in commands.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/python -m pip install --quiet -e ./verifier -e '.[speed]'"]
    assert "oauth-facade serve" in commands


def test_make_test_adds_the_test_extra(tmp_path: Path) -> None:
    """`make test` installs what serving needs and then the test extra, with the verifier distribution
    (editable, so its tests run against verifier/ as it is)."""
    commands = make_dry_run("test", tmp_path)
    assert "-e '.[speed]'" in commands and "-e '.[test,speed]'" in commands
    assert "-e './verifier[mcp]'" in commands

