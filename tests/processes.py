"""Running the facade and the dev IdP as separate processes, the way users run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(overrides: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_")}
    return {**clean, "PROXY_LOG_LEVEL": "warning", **overrides}


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited with {process.returncode}: "
                                 f"{process.stderr.read().decode() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s} s")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("the process ignored SIGTERM") from None


@contextmanager
def facade_process(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`oauth-facade serve` with these settings; stopped (SIGTERM) at the end."""
    process = subprocess.Popen([sys.executable, "-m", "proxy", "serve", *args], env=_env(env), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{env['PROXY_PORT']}/healthz", process)
        yield process
    finally:
        stop(process)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


@contextmanager
def devidp_process(port: int, facade_issuer: str) -> Iterator[str]:
    """`oauth-facade devidp` on its own port; yields its issuer."""
    env = {"PROXY_ISSUER": facade_issuer, "PROXY_UPSTREAM_CLIENT_ID": "facade",
           "PROXY_UPSTREAM_CLIENT_SECRET": "facade-secret"}
    process = subprocess.Popen([sys.executable, "-m", "proxy", "devidp", "--port", str(port)], env=_env(env),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_http(issuer + "/.well-known/openid-configuration", process)
        yield issuer
    finally:
        stop(process)
        if process.stderr:
            process.stderr.close()
